"""The reference agent as a real subprocess against a real nats-server (loopback only).

Each test exercises one promise of the agent contract (subjects, targeting, fault knobs,
lifecycle); none would pass if that feature broke.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import nats
import pytest
from nats.errors import NoRespondersError

from tests.conftest import (REFERENCE_AGENT, EventRecorder, gather_replies, nats_connect, render_agent_unit,
                            run_async, wait_for)

pytestmark = pytest.mark.integration

BOOKWORM_PYTHON = Path("/usr/bin/python3")


# ---------------------------------------------------------------- helpers


async def request_json(nc, subject: str, body: object = b"", timeout: float = 2.0, headers=None):
    """Request and decode: returns (payload dict, headers dict)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    msg = await nc.request(subject, data, timeout=timeout, headers=headers)
    return json.loads(msg.data), msg.headers or {}


# ---------------------------------------------------------------- flag off / on


def test_flag_off_serves_and_publishes_on_legacy_only(reference_agent, nats_server):
    agent = reference_agent(unified=False)

    async def scenario():
        nc = await nats_connect(nats_server.url)
        recorder = EventRecorder()
        legacy_events, unified_events = agent.event_subject(">"), agent.event_subject(">", "unified")
        await recorder.watch(nc, legacy_events, unified_events)

        reply, headers = await request_json(nc, agent.command_subject("ping"))
        with pytest.raises(NoRespondersError):
            await nc.request(agent.command_subject("ping", "unified"), b"", timeout=2)

        await asyncio.sleep(0.7)  # about three heartbeats at 0.2 s
        await nc.close()
        return reply, headers, recorder

    reply, headers, recorder = run_async(scenario())
    assert reply["ok"] is True and reply["via"] == "legacy" and reply["unified"] is False
    assert (reply["agent"], reply["id"], reply["cluster"], reply["host"]) == (
        agent.name,
        agent.id,
        agent.cluster,
        agent.host,
    )
    assert reply["pid"] == agent.pid and reply["subject"] == agent.command_subject("ping")
    assert headers["Agent-Host"] == agent.host
    heartbeats = recorder.messages[agent.event_subject(">")]
    assert len(heartbeats) >= 2
    assert {msg.subject for msg in heartbeats} == {agent.event_subject("heartbeat")}
    assert recorder.count(agent.event_subject(">", "unified")) == 0


def test_flag_on_answers_on_both_subjects(reference_agent, nats_server):
    agent = reference_agent(unified=True)

    async def scenario():
        nc = await nats_connect(nats_server.url)
        legacy, _ = await request_json(nc, agent.command_subject("ping"))
        unified, headers = await request_json(nc, agent.command_subject("ping", "unified"))
        status, _ = await request_json(nc, agent.command_subject("status", "unified"))
        await nc.close()
        return legacy, unified, headers, status

    legacy, unified, headers, status = run_async(scenario())
    assert (legacy["via"], legacy["subject"]) == ("legacy", agent.command_subject("ping"))
    assert (unified["via"], unified["subject"]) == ("unified", agent.command_subject("ping", "unified"))
    assert legacy["unified"] is unified["unified"] is True
    assert headers["Agent-Host"] == agent.host
    assert status["subscriptions"] == [f"{agent.legacy_prefix}.cmd.>", f"{agent.unified_prefix}.cmd.>"]
    assert status["counters"]["requests"]["legacy"] >= 2  # readiness ping + ping
    assert status["counters"]["requests"]["unified"] == 2  # ping + this status


def test_flag_on_publishes_every_event_on_both_subjects(reference_agent, nats_server):
    agent = reference_agent(unified=True)

    async def scenario():
        nc = await nats_connect(nats_server.url)
        recorder = EventRecorder()
        await recorder.watch(nc, agent.event_subject(">"), agent.event_subject(">", "unified"))
        await asyncio.sleep(0.5)  # a few heartbeats
        emitted, _ = await request_json(nc, agent.command_subject("emit"), {"count": 25})
        await recorder.settle()
        await nc.close()
        return emitted, recorder

    emitted, recorder = run_async(scenario())
    assert emitted["ok"] is True and emitted["emitted"] == 25
    assert emitted["last_seq"] - emitted["first_seq"] == 24

    # Events up to the emit's last seq were fully published before its reply was sent.
    def by_msg_id(via):
        received = recorder.messages[agent.event_subject(">", via)]
        return {m.headers["Nats-Msg-Id"]: m for m in received if json.loads(m.data)["seq"] <= emitted["last_seq"]}

    legacy, unified = by_msg_id("legacy"), by_msg_id("unified")
    assert len(legacy) >= 27 and legacy.keys() == unified.keys()
    for msg_id, msg in legacy.items():
        twin = unified[msg_id]
        assert twin.data == msg.data and twin.headers == msg.headers
        assert msg.headers["Agent-Host"] == agent.host  # attributes the event to its instance
        assert twin.subject.removeprefix(agent.unified_prefix) == msg.subject.removeprefix(agent.legacy_prefix)
        payload = json.loads(msg.data)
        assert payload["msg_id"] == msg_id == f"{agent.id}.{agent.host}.{msg_id.split('.')[2]}.{payload['seq']}"
        assert (payload["agent"], payload["cluster"], payload["host"], payload["unified"]) == (
            agent.name,
            agent.cluster,
            agent.host,
            True,
        )
    probes = sorted(json.loads(m.data)["seq"] for m in legacy.values() if m.subject.endswith(".evt.probe"))
    assert probes == list(range(emitted["first_seq"], emitted["last_seq"] + 1))


# ---------------------------------------------------------------- three instances


def test_three_instances_reply_all_or_only_the_target(reference_agent, nats_server):
    agents = [reference_agent(host=f"dgx-{n}", unified=True, wait=False) for n in (1, 2, 3)]
    for agent in agents:
        agent.wait_ready()
    subject = agents[0].command_subject("ping", "unified")

    async def scenario():
        nc = await nats_connect(nats_server.url)
        everyone = await gather_replies(nc, subject)
        targeted = await gather_replies(nc, subject, headers={"Agent-Target": "dgx-2"})
        elsewhere = await gather_replies(nc, subject, headers={"Agent-Target": "dgx-9"})
        await nc.close()
        return everyone, targeted, elsewhere

    everyone, targeted, elsewhere = run_async(scenario())
    assert elsewhere == []
    assert sorted(json.loads(msg.data)["host"] for msg in everyone) == ["dgx-1", "dgx-2", "dgx-3"]
    assert len(targeted) == 1
    assert json.loads(targeted[0].data)["host"] == targeted[0].headers["Agent-Host"] == "dgx-2"
    assert json.loads(targeted[0].data)["pid"] == agents[1].pid


# ---------------------------------------------------------------- fault knobs


def test_drop_knob_drops_exactly_three_percent_of_unified_copies(reference_agent, nats_server):
    agent = reference_agent(unified=True, heartbeat_interval=3600, FAULT_DROP_UNIFIED_RATE="0.03")

    async def scenario():
        nc = await nats_connect(nats_server.url)
        recorder = EventRecorder()
        legacy, unified = agent.event_subject("probe"), agent.event_subject("probe", "unified")
        await recorder.watch(nc, legacy, unified)
        before, _ = await request_json(nc, agent.command_subject("status"))
        emitted, _ = await request_json(nc, agent.command_subject("emit"), {"count": 1000}, timeout=10)
        await recorder.settle()
        after, _ = await request_json(nc, agent.command_subject("status"))
        await nc.close()
        return recorder.count(legacy), recorder.count(unified), emitted, before, after

    legacy, unified, emitted, before, after = run_async(scenario())
    assert (emitted["emitted"], emitted["last_seq"] - emitted["first_seq"]) == (1000, 999)
    assert (legacy, unified) == (1000, 970)
    delta = {
        key: after["counters"]["events"][key] - before["counters"]["events"][key]
        for key in before["counters"]["events"]
    }
    assert delta == {"legacy": 1000, "unified": 970, "unified_dropped": 30, "failed": 0}
    assert after["faults"] == {"drop_unified_rate": 0.03}
    assert after["publish_time_ms"]["count"] == min(1000, after["counters"]["events"]["legacy"])
    assert 0 <= after["publish_time_ms"]["p50"] <= after["publish_time_ms"]["p99"] <= after["publish_time_ms"]["max"]


def test_reply_delay_adds_latency_without_serialising(reference_agent, nats_server):
    agent = reference_agent(FAULT_REPLY_DELAY_MS=150)
    subject = agent.command_subject("ping")

    async def scenario():
        nc = await nats_connect(nats_server.url)
        single = []
        for _ in range(3):
            started = time.perf_counter()
            await nc.request(subject, b"", timeout=2)
            single.append(time.perf_counter() - started)
        started = time.perf_counter()
        await asyncio.gather(*(nc.request(subject, b"", timeout=5) for _ in range(10)))
        concurrent = time.perf_counter() - started
        await nc.close()
        return single, concurrent

    single, concurrent = run_async(scenario())
    assert all(0.150 <= rtt < 0.250 for rtt in single), single
    assert concurrent < 0.5, concurrent  # serialised would take 10 x 150 ms = 1.5 s


def test_crash_knob_exits_70_after_the_delay(reference_agent):
    agent = reference_agent(FAULT_CRASH_AFTER_S=1)
    assert agent.wait_exit(timeout=5) == 70
    elapsed = time.monotonic() - agent.started_at
    assert 1.0 <= elapsed < 3.0, elapsed  # the timer starts once Python is up
    assert "crashing" in agent.stdout and "drain" not in agent.output


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        pytest.param({"name": None}, "AGENT_NAME", id="name-missing"),
        pytest.param({"unified": "maybe"}, "ENABLE_UNIFIED_SUBJECTS", id="flag-not-boolean"),
        pytest.param({"url": ""}, "NATS_URL", id="url-empty"),
        pytest.param({"heartbeat_interval": "fast"}, "HEARTBEAT_INTERVAL", id="interval-not-number"),
        pytest.param({"FAULT_DROP_UNIFIED_RATE": "1.5"}, "FAULT_DROP_UNIFIED_RATE", id="rate-above-1"),
        pytest.param({"FAULT_REPLY_DELAY_MS": "-1"}, "FAULT_REPLY_DELAY_MS", id="delay-negative"),
        pytest.param({"UNIFIED_SUBJECT_PREFIX": "agents.{team}.{id}"}, "UNIFIED_SUBJECT_PREFIX", id="unknown-field"),
        pytest.param({"id": "not a token"}, "AGENT_ID", id="id-with-spaces"),
        pytest.param({"FAULT_REFUSE_START": "true"}, "FAULT_REFUSE_START", id="refuse-start"),
    ],
)
def test_bad_config_exits_78_naming_the_variable(reference_agent, env, variable):
    agent = reference_agent(wait=False, **env)
    assert agent.wait_exit(timeout=3) == 78
    lines = agent.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("reference-agent: config error: ") and variable in lines[0]
    assert agent.stdout == ""


# ---------------------------------------------------------------- commands


def test_fail_and_unknown_verbs_give_error_replies(reference_agent, nats_server):
    agent = reference_agent()

    async def scenario():
        nc = await nats_connect(nats_server.url)
        results = [
            await request_json(nc, agent.command_subject("fail")),
            await request_json(nc, agent.command_subject("reboot")),
            await request_json(nc, agent.command_subject("emit"), b"not json"),
        ]
        status, _ = await request_json(nc, agent.command_subject("status"))
        await nc.close()
        return results, status

    (fail, unknown, bad_emit), status = run_async(scenario())
    assert fail[0] == {"ok": False, "verb": "fail", "error": "requested failure"}
    assert fail[1]["Agent-Error"] == "requested"
    assert unknown[0] == {"ok": False, "verb": "reboot", "error": "unknown verb 'reboot'"}
    assert unknown[1]["Agent-Error"] == "unknown-verb"
    assert bad_emit[0]["ok"] is False and bad_emit[1]["Agent-Error"] == "bad-request"
    assert all(headers["Agent-Host"] == agent.host for _, headers in (fail, unknown, bad_emit))
    assert status["counters"]["requests"]["errors"] == 3


# ---------------------------------------------------------------- lifecycle


def test_sigterm_drains_and_exits_0_after_in_flight_replies(reference_agent, nats_server):
    agent = reference_agent(FAULT_REPLY_DELAY_MS=300)

    async def scenario():
        nc = await nats_connect(nats_server.url)
        pending = asyncio.ensure_future(request_json(nc, agent.command_subject("ping"), timeout=3))
        await asyncio.sleep(0.1)  # the agent holds the request in its reply delay
        os.kill(agent.pid, signal.SIGTERM)
        reply, _ = await pending
        await nc.close()
        return reply

    started = time.monotonic()
    reply = run_async(scenario())
    assert agent.wait_exit(timeout=5) == 0
    assert time.monotonic() - started < 5
    assert reply["ok"] is True  # answered although SIGTERM arrived first
    assert "draining NATS connection" in agent.stdout and "drained; exiting" in agent.stdout


def test_agent_started_before_the_server_connects_once_it_is_up(reference_agent, nats_server_factory):
    server = nats_server_factory(start=False)  # port chosen, nothing listening yet
    agent = reference_agent(url=server.url, wait=False)
    wait_for(lambda: "cannot connect to NATS (attempt 1)" in agent.stdout, timeout=5, what="first failure logged")
    time.sleep(0.5)
    assert agent.proc.poll() is None, agent.output
    server.start()
    reply = agent.wait_ready(timeout=10)
    assert reply["host"] == agent.host
    assert f"connected to 127.0.0.1:{server.port}" in agent.stdout


def test_agent_reconnects_after_server_restart(reference_agent, nats_server_factory):
    server = nats_server_factory()
    agent = reference_agent(url=server.url)
    server.stop()
    wait_for(lambda: "disconnected from NATS" in agent.stdout, timeout=5, what="disconnect logged")
    server.start()
    agent.wait_ready(timeout=15)
    assert "reconnected to" in agent.stdout
    assert agent.stop() == 0


def test_credentials_are_used_but_never_logged(reference_agent, nats_server_factory):
    password = "pw-6f1c-never-logged"
    server = nats_server_factory(extra_config=f'authorization {{ user: fleet, password: "{password}" }}')
    url = server.url.replace("nats://", f"nats://fleet:{password}@")  # for the readiness probe only

    agent = reference_agent(url=server.url, wait=False, NATS_USER="fleet", NATS_PASSWORD=password)
    agent.wait_ready(url=url)

    rejected = reference_agent(url=server.url, wait=False, host="dgx-2", NATS_USER="fleet", NATS_PASSWORD="wrong")
    wait_for(lambda: "cannot connect to NATS" in rejected.stdout, timeout=5, what="auth failure logged")
    assert rejected.proc.poll() is None  # keeps retrying: a wrong secret may be fixed at the server
    assert agent.stop() == 0 and rejected.stop() == 0
    assert password not in agent.output and "wrong" not in rejected.output


@pytest.mark.skipif(not BOOKWORM_PYTHON.exists(), reason="needs the system /usr/bin/python3")
def test_runs_on_system_python_with_nats_py_from_a_zip(reference_agent, tmp_path):
    # A wheel is a zip with the package at its root; zipimport loads it from PYTHONPATH.
    package = Path(nats.__file__).parent
    archive = tmp_path / "nats_py.whl.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in package.rglob("*.py"):
            zipped.write(path, path.relative_to(package.parent))
    agent = reference_agent(python=str(BOOKWORM_PYTHON), pythonpath=str(archive), unified=True)
    probe = subprocess.run(
        [str(BOOKWORM_PYTHON), "-c", "import nats, sys; print(nats.__file__)"],
        env={"PYTHONPATH": str(archive), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.startswith(str(archive))  # nats-py really came from the zip
    assert agent.stop() == 0


# ---------------------------------------------------------------- issue 8: the reference agent amplifies


async def collect(sub, expected: int, timeout: float) -> list:
    """Messages from sub until expected of them arrived or timeout seconds passed."""
    received = []
    deadline = time.monotonic() + timeout
    while len(received) < expected and (left := deadline - time.monotonic()) > 0:
        try:
            received.append(await sub.next_msg(timeout=left))
        except nats.errors.TimeoutError:
            break
    return received


def test_reference_agent_amplifies_no_more_a_flood_of_emits_to_every_host(reference_agent, nats_server):
    # No refill during the test (0.001 event/s): every instance may emit its burst once, no more.
    agents = [
        reference_agent(host=f"dgx-{n}", heartbeat_interval=3600, EMIT_RATE="0.001", EMIT_BURST="500", wait=False)
        for n in (1, 2)
    ]
    for agent in agents:
        agent.wait_ready()
    subject = agents[0].command_subject("emit")

    async def scenario():
        nc = await nats_connect(nats_server.url)
        recorder = EventRecorder()
        await recorder.watch(nc, agents[0].event_subject("probe"))
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox, max_msgs=0)
        # The finding: 100 small requests without Agent-Target, each asking every instance for 10,000.
        for count in (10_000, 500):
            for _ in range(100):
                await nc.publish(subject, json.dumps({"count": count}).encode(), reply=inbox)
        replies = await collect(sub, 400, timeout=20)
        await recorder.settle()
        await nc.close()
        return replies, recorder.count(agents[0].event_subject("probe"))

    replies, events = run_async(scenario())
    assert len(replies) == 400  # 200 requests x 2 instances, every one answered
    bodies = [(json.loads(m.data), m.headers or {}) for m in replies]
    accepted = sorted(m.headers["Agent-Host"] for m in replies if json.loads(m.data)["ok"])
    assert accepted == ["dgx-1", "dgx-2"]  # one burst each
    refused = [(body, headers) for body, headers in bodies if not body["ok"]]
    assert len(refused) == 398
    assert all(headers["Agent-Error"] == "rate-limited" and "EMIT_BURST=500" in body["error"] for body, headers in refused)
    assert sum("above the limit of 500 events per request" in body["error"] for body, _ in refused) == 200
    assert events == 2 * 500  # instead of 2,000,000


def test_reference_agent_amplifies_no_more_requests_beyond_the_in_flight_bound_are_busy(reference_agent, nats_server):
    agent = reference_agent(heartbeat_interval=3600, MAX_INFLIGHT_REQUESTS="2", FAULT_REPLY_DELAY_MS="400")

    async def scenario():
        nc = await nats_connect(nats_server.url)
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        for _ in range(10):
            await nc.publish(agent.command_subject("ping"), b"", reply=inbox)
        replies = await collect(sub, 10, timeout=10)
        for _ in range(20):  # busy itself until the delayed pings are out
            status, _ = await request_json(nc, agent.command_subject("status"), timeout=5)
            if status["ok"]:
                break
            await asyncio.sleep(0.5)
        await nc.close()
        return replies, status

    replies, status = run_async(scenario())
    assert len(replies) == 10
    answered = [m for m in replies if json.loads(m.data)["ok"]]
    busy = [m for m in replies if not json.loads(m.data)["ok"]]
    # At most 2 answered (readiness pings, delayed too, may still hold a slot), the rest at once.
    assert len(answered) <= 2 and len(busy) >= 8
    for msg in busy:
        assert msg.headers["Agent-Error"] == "busy" and msg.headers["Agent-Host"] == agent.host
        assert "MAX_INFLIGHT_REQUESTS=2" in json.loads(msg.data)["error"]
    assert status["counters"]["requests"]["busy"] >= len(busy)
    assert status["limits"]["max_inflight"] == 2


def test_reference_agent_amplifies_no_more_heartbeats_go_on_during_a_maximal_emit(reference_agent, nats_server):
    # The largest emits the agent allows (EMIT_BURST at its ceiling) at a rate it cannot keep up with.
    agent = reference_agent(heartbeat_interval=0.2, EMIT_RATE="20000", EMIT_BURST="10000")

    async def scenario():
        nc = await nats_connect(nats_server.url)
        beats = 0

        async def count_beat(_msg):
            nonlocal beats
            beats += 1

        heartbeats = await nc.subscribe(agent.event_subject("heartbeat"), cb=count_beat)
        before, _ = await request_json(nc, agent.command_subject("status"))
        await nc.flush()
        beats = 0
        # A 3 s flood: one maximal emit request every 50 ms.
        for _ in range(60):
            await nc.publish(agent.command_subject("emit"), json.dumps({"count": 10_000}).encode())
            await asyncio.sleep(0.05)
        await nc.flush()
        flood_beats = beats
        await heartbeats.unsubscribe()
        after, _ = await request_json(nc, agent.command_subject("status"), timeout=10)
        await nc.close()
        return flood_beats, after["counters"]["events"]["legacy"] - before["counters"]["events"]["legacy"]

    beats, events = run_async(scenario())
    assert events >= 10_000  # the flood did make the agent emit at its ceiling
    assert beats >= 5  # 15 are due in 3 s at 0.2 s; the old agent sent none until its queue of emits ran dry


# ---------------------------------------------------------------- issue 8: the agent units ran as root


def hardening_properties() -> list[str]:
    """The unit template's hardening (what it adds to the plain unit), as systemd-run properties."""
    plain = render_agent_unit(agent_service_hardening=False)
    hardened = render_agent_unit()
    return [f"{key}={value}" for key, values in hardened.items() if key not in plain for value in values]


def systemd_run_argv(unit: str, env_file: Path, program: Path, library: Path, properties: list[str]) -> list[str]:
    """A transient service running the agent like agent@.service, under the given properties.

    The program and library are bound read-only into /run, since PrivateTmp and ProtectHome hide
    where tests keep them and a DynamicUser could not read pytest's 0700 directories anyway."""
    where = "/run/fleetwave-agent"
    return [
        "systemd-run",
        "--quiet",
        "--collect",
        f"--unit={unit}",
        f"--property=EnvironmentFile={env_file}",
        f"--property=BindReadOnlyPaths={program}:{where}/reference_agent.py {library}:{where}/nats_py.zip",
        f"--setenv=PYTHONPATH={where}/nats_py.zip",
        "--setenv=PYTHONUNBUFFERED=1",
        *(f"--property={prop}" for prop in properties),
        str(BOOKWORM_PYTHON),
        f"{where}/reference_agent.py",
    ]


def test_reference_agent_no_longer_runs_as_root_unhardened(nats_server, tmp_path):
    properties = hardening_properties()
    assert "DynamicUser=yes" in properties and "NoNewPrivileges=yes" in properties
    if os.geteuid() != 0 or not shutil.which("systemd-run") or not Path("/run/systemd/system").is_dir():
        pytest.skip("needs root and systemd as the service manager (systemd-run)")
    trial = subprocess.run(
        ["systemd-run", "--quiet", "--wait", "--collect", *(f"--property={p}" for p in properties), "/bin/true"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if trial.returncode != 0:  # e.g. a container whose systemd cannot set up mount namespaces
        pytest.skip(f"systemd here cannot start a unit with the template's hardening: {trial.stderr.strip()}")

    package = Path(nats.__file__).parent
    library = tmp_path / "nats_py.zip"
    with zipfile.ZipFile(library, "w") as zipped:
        for path in package.rglob("*.py"):
            zipped.write(path, path.relative_to(package.parent))
    library.chmod(0o644)
    host = f"hardened-{os.getpid()}"
    env_file = tmp_path / "agent.env"
    env_file.write_text(
        f"AGENT_NAME=network-expert\nAGENT_ID=01936f88-d2a9-7000-8000-000000000008\n"
        f"CAPABILITY_CLUSTER=infrastructure\nAGENT_HOST={host}\nNATS_URL={nats_server.url}\n"
        "ENABLE_UNIFIED_SUBJECTS=false\nHEARTBEAT_INTERVAL=1\n"
    )
    env_file.chmod(0o600)  # root's alone: systemd reads it before dropping privileges
    unit = f"fleetwave-test-hardened-agent-{os.getpid()}.service"
    subprocess.run(systemd_run_argv(unit, env_file, REFERENCE_AGENT, library, properties), check=True, timeout=60)
    try:

        async def ping():
            nc = await nats_connect(nats_server.url)
            try:
                for _ in range(150):
                    try:
                        return await request_json(
                            nc, "agent.network-expert.cmd.ping", timeout=0.5, headers={"Agent-Target": host}
                        )
                    except (NoRespondersError, nats.errors.TimeoutError):
                        await asyncio.sleep(0.1)
            finally:
                await nc.close()
            raise AssertionError(f"{unit} never answered a ping")

        reply, headers = run_async(ping())
        main_pid = int(
            subprocess.run(
                ["systemctl", "show", "--property=MainPID", "--value", unit], capture_output=True, text=True
            ).stdout
        )
        status = dict(
            line.split(":", 1) for line in Path(f"/proc/{main_pid}/status").read_text().splitlines() if ":" in line
        )
    finally:
        subprocess.run(["systemctl", "stop", unit], capture_output=True, timeout=60)
    assert reply["ok"] is True and reply["host"] == headers["Agent-Host"] == host and reply["pid"] == main_pid
    assert int(status["Uid"].split()[0]) != 0  # the agent is not root
    assert status["NoNewPrivs"].strip() == "1" and int(status["CapEff"], 16) == 0 and status["Seccomp"].strip() == "2"
