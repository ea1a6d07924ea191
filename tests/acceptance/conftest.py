"""Acceptance fixtures: the test fleet (FLEETWAVE_FLEET=test scripts/sandbox: nats-server on
127.0.0.1:24222, systemd stand-ins fleetwave-test-dgx-1..3 running the reference agents, inventory
tests/fleet) driven by real playbook runs through ansible-runner, the way AWX runs them. Nothing
here is mocked.

These tests take over the test fleet: they reset it, flip it and break it on purpose. They never
touch the user's sandbox (fleetwave-dgx-1..3, 127.0.0.1:4222, <repo>/artifacts): their checkpoints,
decisions, rollback records and audit trails land in the test fleet's artifacts dir, and
scripts/test checks that the sandbox is left as it was.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import itertools
import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import ansible_runner
import pytest
import yaml

from tests.conftest import ROOT, nats_connect, run_async

pytestmark = pytest.mark.acceptance

HOSTS = ("dgx-1", "dgx-2", "dgx-3")
# The test fleet: its inventory (which links the production contract and the sandbox's timings),
# and from it where its NATS server and artifacts are.
FLEET = ROOT / "tests/fleet"
INVENTORY = FLEET / "hosts.yml"
FLEET_VARS = yaml.safe_load((FLEET / "group_vars/all/60-test-fleet.yml").read_text())
CONTAINER = "fleetwave-test-{}".format
NATS_URL = FLEET_VARS["fleet_nats_url"]
ARTIFACTS = Path(FLEET_VARS["fleet_artifacts_dir"])
CONTRACT = yaml.safe_load((ROOT / "inventory/production/group_vars/all/00-contract.yml").read_text())
AGENTS = CONTRACT["fleet_agents"]
# For runs whose subject is not the schedule itself: wave 2 with one short checkpoint per phase.
QUICK_WAVE2 = {"wave_stagger_seconds": 0, "wave_verify_window_seconds": 1,
               "wave_schedule": {"wave2": {"phase1": [{"label": "phase1-T+2h", "at": 1}],
                                           "phase2": [{"label": "T+24h", "at": 1}]}}}
# What the user may set for the sandbox's names and ports (scripts/sandbox): left out when the tests
# run scripts/sandbox on a fleet of their own, so that it keeps its own.
SANDBOX_SETTINGS = ("FLEETWAVE_NATS_PORT", "FLEETWAVE_NATS_MONITOR_PORT", "FLEETWAVE_CONTAINER_PREFIX")
FLEET_ENV = dict({k: v for k, v in os.environ.items() if k not in SANDBOX_SETTINGS}, FLEETWAVE_FLEET="test")
_RUNS = itertools.count(1)


def podman_exec(host: str, *cmd: str, check: bool = True) -> str:
    done = subprocess.run(["podman", "exec", CONTAINER(host), *cmd], capture_output=True, text=True)
    if check and done.returncode != 0:
        raise AssertionError("podman exec %s %s failed: %s" % (host, " ".join(cmd), done.stderr))
    return done.stdout


def podman_write(host: str, path: str, content: str) -> None:
    subprocess.run(["podman", "exec", "-i", CONTAINER(host), "sh", "-c", "cat > '%s'" % path],
                   input=content, text=True, check=True)


def set_fault_knobs(host: str, agent: str, how: str = "restart", **knobs: str) -> None:
    """Replace the reference agent's fault knobs (FAULT_*) in an instance's env file, none when none
    are given, then restart it (or SIGKILL it: a crash, after which systemd starts it with them)."""
    env = "/etc/agents/%s.env" % agent
    lines = "".join("%s=%s\\n" % item for item in knobs.items())
    podman_exec(host, "sh", "-c", "sed -i '/^FAULT_/d' %s && printf '%s' >> %s" % (env, lines, env))
    if how == "kill":
        podman_exec(host, "systemctl", "kill", "--signal=SIGKILL", "agent@%s.service" % agent)
    else:
        podman_exec(host, "systemctl", "restart", "agent@%s.service" % agent)


@dataclass
class PlaybookRun:
    rc: int
    status: str
    stdout: str
    events: list

    def failed_messages(self) -> list[str]:
        return [str(e["event_data"]["res"].get("msg", "")) for e in self.events
                if e.get("event") == "runner_on_failed" and not e["event_data"].get("ignore_errors")]

    def handed_over(self) -> dict:
        """What the run handed over with set_stats, as ansible-runner records it for AWX (the
        playbook_on_stats event's artifact_data: the extra vars of the workflow's next nodes)."""
        [stats] = [e for e in self.events if e.get("event") == "playbook_on_stats"]
        return stats["event_data"].get("artifact_data") or {}


def playbook_env(playbook: str, tag: str = "") -> dict:
    """The environment of a playbook run on the test fleet: this repository's ansible.cfg (its
    collections_path; criteria/ beside it) and no other ANSIBLE_ setting, and its audit trail in the
    test fleet's artifacts (audit/<playbook>[-<tag>]-<UTC stamp>-<n>.jsonl), never in the working
    directory's artifacts/audit (the repository's, the user's sandbox's)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    name = "-".join(part for part in (Path(playbook).stem, tag, stamp) if part)
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
               FLEETWAVE_AUDIT_PATH=str(ARTIFACTS / "audit" / ("%s-%03d.jsonl" % (name, next(_RUNS)))))
    return env


def run_playbook(tmp_path: Path, playbook: str, *args: str, extravars: dict | None = None) -> PlaybookRun:
    """Run a playbook of this repo against the test fleet's inventory with ansible-runner (playbook_env)."""
    private = tmp_path / ("runner-" + Path(playbook).stem)
    if private.exists():
        shutil.rmtree(private)
    private.mkdir(parents=True)
    env = playbook_env(playbook)
    runner = ansible_runner.run(
        private_data_dir=str(private),
        project_dir=str(ROOT),
        playbook=str(ROOT / "playbooks" / playbook),
        inventory=str(INVENTORY),
        extravars=extravars or {},
        cmdline=" ".join(args) or None,
        envvars=env,
        quiet=True,
        timeout=600,
    )
    stdout = runner.stdout.read()
    (tmp_path / (Path(playbook).stem + ".log")).write_text(stdout)
    return PlaybookRun(rc=runner.rc, status=runner.status, stdout=stdout, events=list(runner.events))


def start_playbook(tmp_path: Path, playbook: str, extravars: dict, name: str) -> subprocess.Popen:
    """A playbook as an operator starts it (ansible-playbook, the test fleet's inventory), in a session
    of its own, its output in tmp_path/<name>.log."""
    env = playbook_env(playbook, "killed-" + name)
    given = tmp_path / ("%s.json" % name)
    given.write_text(json.dumps(extravars))
    with open(tmp_path / ("%s.log" % name), "w") as log:
        return subprocess.Popen(["ansible-playbook", "-i", str(INVENTORY), str(ROOT / "playbooks" / playbook),
                                 "-e", "@%s" % given], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)


# A module running on a stand-in: its `podman exec -i` (pipelined, fleetwave.rollout.podman).
ON_A_STAND_IN = "podman\0exec\0-i\0"


def descendants(root: int) -> list[int]:
    """root and every process descending from it (Ansible's workers start sessions of their own, so
    neither the session nor the process group holds the whole controller)."""
    children = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open("/proc/%s/stat" % entry.name, encoding="utf-8", errors="replace") as handle:
                    ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def tree_runs(root: int, needle: str) -> bool:
    """Whether a process of root's tree runs a command line (arguments joined by NUL) containing needle."""
    for pid in descendants(root):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                if needle.encode() in handle.read():
                    return True
        except OSError:
            continue
    return False


def kill_tree(root: int) -> None:
    """SIGKILL a controller as a crash does: root and all its descendants, stopped first so that
    none of them forks or finishes a step meanwhile."""
    pids = descendants(root)
    for sig in (signal.SIGSTOP, signal.SIGKILL):
        for pid in pids + [p for p in descendants(root) if p not in pids]:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass


def journal_of(run_id: str) -> list[dict]:
    """A run's journal records as written so far (a line torn by a kill is not a record)."""
    path = ARTIFACTS / "runs" / run_id / "journal.jsonl"
    records = []
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            records.append(json.loads(line))
        except ValueError:
            pass
    return records


def kill_when(proc: subprocess.Popen, ready, what: str, since: float, wave: str = "wave2", limit: float = 300,
              kill: bool = True) -> str:
    """SIGKILL the whole controller of proc (kill_tree) once ready(records of its run, its pid)
    holds (with kill=False, only wait for it): the run is the latest of the wave written since
    `since`. Returns its run id."""
    deadline = time.time() + limit
    while time.time() < deadline:
        assert proc.poll() is None, "the run ended (rc %s) before %s" % (proc.returncode, what)
        runs = [p for p in (ARTIFACTS / "runs").glob(wave + "-*") if p.stat().st_mtime >= since]
        run_id = max(runs, key=lambda p: p.stat().st_mtime).name if runs else None
        if run_id and ready(journal_of(run_id), proc.pid):
            if kill:
                kill_tree(proc.pid)
                proc.wait()
            return run_id
        time.sleep(0.05)
    kill_tree(proc.pid)
    proc.wait()
    raise AssertionError("never reached within %d s: %s" % (limit, what))


def controller_connected() -> bool:
    """Whether the controller has a NATS connection open on the test fleet's server (the probe's)."""
    with urllib.request.urlopen(FLEET_VARS["fleet_nats_monitor_url"] + "/connz?limit=4096", timeout=5) as r:
        return any(c.get("name") == "fleetwave-controller" for c in json.load(r)["connections"])


def fleet_snapshot() -> dict:
    """Everything a run could change on a host: env files, backups manifest, unit PIDs and restarts.
    (The nine podman execs are read-only and run at once.)"""
    reads = {(host, key): cmd for host in HOSTS for key, cmd in (
        ("files", dict(cmd=("sh", "-c", "for f in /etc/agents/*.env; do echo \"== $f\"; cat \"$f\"; done"))),
        ("manifest", dict(cmd=("cat", "/var/lib/fleetwave/backups/manifest.json"), check=False)),
        ("units", dict(cmd=("systemctl", "show", "--property=Id,MainPID,NRestarts",
                            *["agent@%s.service" % a for a in AGENTS]))))}
    with concurrent.futures.ThreadPoolExecutor(len(reads)) as pool:
        done = {k: pool.submit(podman_exec, k[0], *r["cmd"], check=r.get("check", True)) for k, r in reads.items()}
    return {host: {key: done[host, key].result() for key in ("files", "manifest", "units")} for host in HOSTS}


def env_flag(host: str, agent: str) -> str:
    for line in podman_exec(host, "cat", "/etc/agents/%s.env" % agent).splitlines():
        if line.startswith("ENABLE_UNIFIED_SUBJECTS="):
            return line.split("=", 1)[1].strip().strip('"')
    raise AssertionError("no flag in %s's env file on %s" % (agent, host))


def subject(agent: str, via: str, verb: str = "ping") -> str:
    a = AGENTS[agent]
    prefix = "agent.%s" % agent if via == "legacy" else "agents.%s.%s" % (a["cluster"], a["id"])
    return "%s.cmd.%s" % (prefix, verb)


def gather(subj: str, timeout: float = 1.5) -> dict:
    """Send one request and collect every reply: {'hosts': [...], 'no_responders': bool}."""
    async def go():
        import asyncio
        nc = await nats_connect(NATS_URL)
        try:
            inbox = nc.new_inbox()
            replies, no_responders = [], asyncio.Event()

            async def on_reply(msg):
                if msg.headers and msg.headers.get("Status") == "503":
                    no_responders.set()
                else:
                    replies.append(json.loads(msg.data))

            await nc.subscribe(inbox, cb=on_reply)
            await nc.publish(subj, b"", reply=inbox)
            try:
                await asyncio.wait_for(no_responders.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            # An agent written to the contract alone names neither its host nor its flag in a reply.
            return dict(hosts=sorted(r["host"] for r in replies if r.get("host")), replies=len(replies),
                        no_responders=no_responders.is_set(),
                        unified=sorted({r["unified"] for r in replies if "unified" in r}))
        finally:
            await nc.close()
    return run_async(go())


def server_subscribers(subj: str) -> list:
    """The client connections the test fleet's nats-server lists (its /connz) as subscribed so that
    they receive `subj`: an agent's instances seen by the server, whatever they put in replies."""
    from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_server import subject_matches
    with urllib.request.urlopen(FLEET_VARS["fleet_nats_monitor_url"] + "/connz?subs=detail&limit=4096", timeout=5) as r:
        connections = json.load(r)["connections"]
    return [c for c in connections
            if any(subject_matches(s["subject"], subj) for s in c.get("subscriptions_list_detail") or [])]


@pytest.fixture(scope="session")
def sandbox():
    """A freshly installed test fleet (FLEETWAVE_FLEET=test scripts/sandbox reset): every agent
    legacy-only with no backup, whatever an earlier session left on this machine. (The name is
    historical: this is the tests' own fleet, never the user's sandbox.)"""
    if os.geteuid() != 0:
        pytest.fail("acceptance tests need root (podman); run them through scripts/test")
    done = subprocess.run([str(ROOT / "scripts/sandbox"), "reset"], env=FLEET_ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return HOSTS


@pytest.fixture(scope="session")
def wave1_go(sandbox, tmp_path_factory):
    """Wave 1 GO recorded, as wave 2's pre-flight requires."""
    from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_artifacts, fleet_evidence, fleet_journal
    decision = ARTIFACTS / "checkpoints/wave1/decision.json"
    sandbox_vars = yaml.safe_load((ROOT / "inventory/sandbox/group_vars/all/50-sandbox.yml").read_text())
    try:  # a GO left by a run before the evidence key (unsigned) does not count: wave 2 would refuse it
        recorded = fleet_journal.previous_outcome(fleet_artifacts.ArtifactStore(ARTIFACTS), "wave1",
                                                  fleet_evidence.key_from(sandbox_vars["fleet_evidence_key"]))
    except fleet_evidence.EvidenceError:
        recorded = None
    if recorded != "GO":
        run = run_playbook(tmp_path_factory.mktemp("wave1"), "wave1.yml")
        assert run.rc == 0, run.stdout[-3000:]
    return decision


# fleet_snapshot() just after the last rollback of wave 2 that succeeded (proven legacy-only), or
# None: see ensure_legacy().
_legacy_snapshot: dict | None = None


def roll_back_wave2(tmp_path: Path) -> PlaybookRun:
    """rollback.yml for wave 2's agents. When it succeeds, the fleet as it left it is remembered
    (fleet_snapshot) for ensure_legacy."""
    global _legacy_snapshot
    _legacy_snapshot = None
    # Proven legacy-only as every rollback is; no post-rollback watch after it, though (the test
    # fleet's is one round 1 s after the proof, ~10 s of tasks): these rollbacks put the fleet
    # back between tests. The watch is tested where it is the subject
    # (test_wave2_sandbox.py::test_rollback_returns_every_flipped_agent_to_legacy_only).
    run = run_playbook(tmp_path, "rollback.yml", extravars={"rollback_wave": "wave2", "wave_rollback_watch_seconds": 0})
    if run.rc == 0:
        _legacy_snapshot = fleet_snapshot()
    return run


def ensure_legacy(tmp_path: Path) -> None:
    """Wave 2's agents legacy-only, as a successful rollback.yml leaves them. The rollback (25-40 s
    on the stand-ins) is run unless every host is exactly as the last successful one left it:
    the same env files, backups manifest, unit PIDs and restart counts (fleet_snapshot), so
    nothing was flipped, restarted or edited since it proved them legacy-only."""
    if _legacy_snapshot is not None and fleet_snapshot() == _legacy_snapshot:
        return
    run = roll_back_wave2(tmp_path)
    assert run.rc == 0, run.stdout[-3000:]


def remember_legacy() -> None:
    """After a step that keeps the fleet legacy-only (removing fault knobs from a legacy-only
    agent's env file and restarting it), the fleet as it is now stands for the proven state."""
    global _legacy_snapshot
    _legacy_snapshot = fleet_snapshot()


@pytest.fixture
def legacy_fleet(sandbox, tmp_path):
    """Wave 2's agents rolled back to legacy before the test."""
    ensure_legacy(tmp_path)
    return sandbox
