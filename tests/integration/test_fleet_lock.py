"""The fleet lock on both state backends - a directory, and NATS JetStream Key-Value on a real
nats-server with JetStream (the session's nats_server fixture) - through the SAME test functions:
taken and refused naming the holder, two runs started at once (threads, and processes) with exactly
one winner, a stale lock taken over after its lease and the takeover recorded, renewed by its holder
and refused after a takeover, released idempotently, resumed by the same run id. Then the fleet_lock
action through real ansible-playbook runs: a second run is refused, non-zero, naming the first; the
lock of a killed run is taken over at once from the same controller; credentials never show."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid

import pytest
import yaml
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_state
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import utc
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_state import FleetLock, LockHeld, LockLost

from tests.conftest import wait_for

pytestmark = pytest.mark.integration

REPO = pathlib.Path(__file__).resolve().parents[2]
PLAYBOOK = pathlib.Path(sys.executable).parent / "ansible-playbook"
LEASE = 60.0


class Clock:
    def __init__(self, now=1_764_583_200.0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class Backend:
    """One store per caller (each run opens its own), all on the same directory or bucket."""

    def __init__(self, name, tmp_path, nats_server):
        self.name = name
        self.state_dir = str(tmp_path / "state")
        self.bucket = "locktest-%s" % uuid.uuid4().hex[:12]
        self.url = nats_server.url
        self.opened = []

    def store(self):
        store = fleet_state.open_store(self.name, self.state_dir, self.bucket, dict(url=self.url, connect_timeout=2.0))
        self.opened.append(store)
        return store

    def lock(self, clock=time.time, liveness=lambda holder: None):
        return FleetLock(self.store(), "fleet", clock=clock, liveness=liveness)

    @property
    def settings(self):
        """fleet_lock's module_defaults for this backend."""
        return dict(backend=self.name, state_dir=self.state_dir, bucket=self.bucket, url=self.url, lease_seconds=LEASE)

    def close(self):
        for store in self.opened:
            store.close()


@pytest.fixture(params=fleet_state.BACKENDS)
def backend(request, tmp_path, nats_server):
    chosen = Backend(request.param, tmp_path, nats_server)
    yield chosen
    chosen.close()


def holder(run_id, who="alice", playbook="wave2.yml"):
    # on another controller: only the lease says whether it is stale
    return dict(who=who, run_id=run_id, playbook=playbook, controller="ctl-%s" % who, pid=4242, process="b/ns/1")


# ================================================================ the same tests on both backends

def test_the_server_runs_jetstream(nats_server):
    assert nats_server.monitor("varz").get("jetstream", {}).get("config"), "the nats_server fixture lacks -js"


def test_taken_then_refused_naming_the_holder(backend):
    clock = Clock()
    done = backend.lock(clock).acquire(holder("wave2-1", who="alice"), LEASE)
    assert done["action"] == "acquired" and done["revision"] >= 1
    clock.advance(5)
    other = backend.lock(clock)
    with pytest.raises(LockHeld) as refused:
        other.acquire(holder("rollback-2", who="bob", playbook="rollback.yml"), LEASE)
    assert str(refused.value).startswith(
        "fleet locked by alice (run wave2-1, playbook wave2.yml, since %s, lease until %s); wait"
        % (utc(clock.now - 5), utc(clock.now - 5 + LEASE)))
    assert other.peek()["holder"]["run_id"] == "wave2-1"


def test_two_threads_started_at_once_exactly_one_wins(backend):
    barrier, won, refused = threading.Barrier(6), [], []
    locks = [backend.lock() for _ in range(6)]  # connected before the start

    def run(n):
        barrier.wait()
        try:
            won.append(locks[n].acquire(holder("run-%d" % n, who="op%d" % n), LEASE)["holder"]["run_id"])
        except LockHeld as exc:
            refused.append((n, exc.holder["run_id"], str(exc)))

    threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(won) == 1 and len(refused) == 5
    assert {winner for _, winner, _ in refused} == set(won)
    assert all(("run %s," % won[0]) in message for _, _, message in refused)
    assert backend.lock().peek()["holder"]["run_id"] == won[0]


RACER = textwrap.dedent("""
    import json, sys, time
    from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_state
    name, state_dir, bucket, url, run_id, start = sys.argv[1:7]
    store = fleet_state.open_store(name, state_dir, bucket, dict(url=url, connect_timeout=2.0))
    lock = fleet_state.FleetLock(store, 'fleet', liveness=lambda holder: None)
    store.get('warm-up')  # connected before the start
    while time.time() < float(start):
        time.sleep(0.001)
    try:
        done = lock.acquire(dict(who=run_id, run_id=run_id, playbook='wave2.yml', controller='x', pid=1), 60.0)
        print(json.dumps(dict(won=True, run_id=run_id)))
    except fleet_state.LockHeld as exc:
        print(json.dumps(dict(won=False, run_id=run_id, holder=exc.holder['run_id'], msg=str(exc))))
    finally:
        store.close()
""")


def test_two_processes_started_at_once_exactly_one_wins(backend):
    start = time.time() + 3.0
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO / "collections"), str(REPO)]))
    procs = [subprocess.Popen([sys.executable, "-c", RACER, backend.name, backend.state_dir, backend.bucket,
                               backend.url, "run-%s" % n, repr(start)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env) for n in "AB"]
    outcomes = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        outcomes.append(json.loads(out))
    winners = [o for o in outcomes if o["won"]]
    losers = [o for o in outcomes if not o["won"]]
    assert len(winners) == 1 and len(losers) == 1
    assert losers[0]["holder"] == winners[0]["run_id"]
    assert losers[0]["msg"].startswith("fleet locked by %s (run %s," % (winners[0]["run_id"], winners[0]["run_id"]))


def test_a_stale_lock_is_taken_over_after_its_lease_and_the_takeover_recorded(backend):
    clock = Clock()
    backend.lock(clock).acquire(holder("wave2-dead", who="alice"), LEASE)
    clock.advance(LEASE - 1)
    with pytest.raises(LockHeld):
        backend.lock(clock).acquire(holder("wave2-new", who="bob"), LEASE)
    clock.advance(11)
    done = backend.lock(clock).acquire(holder("wave2-new", who="bob"), LEASE)
    assert done["action"] == "taken over"
    assert done["takeover"]["previous"]["run_id"] == "wave2-dead"
    assert done["takeover"]["expired_since"] == utc(clock.now - 10) and done["takeover"]["expired_for_seconds"] == 10
    stored = backend.lock().peek()
    assert stored["holder"]["run_id"] == "wave2-new" and stored["takeover"] == done["takeover"]


def test_a_stale_lock_is_taken_over_in_real_time(backend):
    backend.lock().acquire(holder("wave2-dead"), 1.0)
    with pytest.raises(LockHeld):
        backend.lock().acquire(holder("wave2-new", who="bob"), LEASE)
    time.sleep(1.2)
    assert backend.lock().acquire(holder("wave2-new", who="bob"), LEASE)["action"] == "taken over"


def test_renewed_by_its_holder_and_refused_after_a_takeover(backend):
    clock = Clock()
    mine = backend.lock(clock)
    mine.acquire(holder("wave2-1"), LEASE)
    clock.advance(LEASE - 5)
    assert mine.renew("wave2-1", LEASE)["action"] == "renewed"
    clock.advance(LEASE - 5)
    with pytest.raises(LockHeld):  # the renewal kept it
        backend.lock(clock).acquire(holder("rollback-2", who="bob", playbook="rollback.yml"), LEASE)
    clock.advance(10)
    backend.lock(clock).acquire(holder("rollback-2", who="bob", playbook="rollback.yml"), LEASE)
    with pytest.raises(LockLost) as lost:
        mine.renew("wave2-1", LEASE)
    assert "it is held by bob (run rollback-2, playbook rollback.yml" in str(lost.value)
    assert "taken over from this run" in str(lost.value)
    assert backend.lock().peek()["holder"]["run_id"] == "rollback-2"


def test_forced_takeover_of_a_live_holder_is_recorded(backend):
    backend.lock().acquire(holder("wave2-live"), LEASE)
    done = backend.lock().acquire(holder("rollback-2", who="bob"), LEASE, force=True)
    assert done["takeover"]["forced"] is True and done["takeover"]["previous"]["run_id"] == "wave2-live"
    assert backend.lock().peek()["takeover"]["forced"] is True


def test_release_is_idempotent_and_leaves_another_runs_lock(backend):
    lock = backend.lock()
    lock.acquire(holder("wave2-1"), LEASE)
    assert lock.release("someone-else")["action"] == "not held"
    assert lock.release("wave2-1")["action"] == "released"
    assert lock.peek() is None
    assert lock.release("wave2-1")["action"] == "already released"
    assert backend.lock().acquire(holder("wave2-2"), LEASE)["action"] == "acquired"


def test_the_same_run_id_resumes_its_lock(backend):
    clock = Clock()
    backend.lock(clock).acquire(holder("wave2-1"), LEASE)
    clock.advance(30)
    # The first process is gone (killed): the same run id, re-run, resumes it.
    gone = backend.lock(clock, liveness=lambda h: h.get("pid") != holder("wave2-1")["pid"])
    done = gone.acquire(dict(holder("wave2-1"), pid=999), LEASE)
    assert done["action"] == "resumed" and done["holder"]["since"] == utc(clock.now - 30)
    assert done["holder"]["pid"] == 999


# ================================================================ through ansible-playbook

def playbook(workdir, name, settings, tasks, *args, wait=True):
    """Write a one-play playbook running `tasks` on localhost with fleet_lock's module_defaults, and run
    it (the json stdout callback). wait=False returns the Popen."""
    workdir.mkdir(parents=True, exist_ok=True)
    play = dict(name=name, hosts="localhost", gather_facts=False,
                module_defaults={"fleetwave.rollout.fleet_lock": settings}, tasks=tasks)
    (workdir / ("%s.yml" % name)).write_text(yaml.safe_dump([play], sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_LOCAL_TEMP=str(workdir / ".tmp"), ANSIBLE_NOCOLOR="1")
    argv = [str(PLAYBOOK), "-i", "localhost,", "-c", "local", "%s.yml" % name,
            "-e", "ansible_python_interpreter=%s" % sys.executable, *args]
    proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if not wait:
        return proc
    return finished(proc)


def finished(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    try:
        report = json.loads(out[out.find("\n{") + 1 if not out.startswith("{") else 0:])  # after -v's first line
    except ValueError:
        raise AssertionError("ansible-playbook did not print JSON:\n%s%s" % (out, err))
    results = {t["task"]["name"]: t["hosts"]["localhost"] for play in report["plays"] for t in play["tasks"]}
    return proc.returncode, results, out + err


def lock_task(name, state, run_id, **args):
    return {"name": name, "fleetwave.rollout.fleet_lock": dict(state=state, run_id=run_id, **args)}


def test_a_second_playbook_run_is_refused_non_zero_naming_the_first(backend, tmp_path):
    go = tmp_path / "go"
    first = playbook(tmp_path / "one", "first", backend.settings, [
        lock_task("take", "acquired", "run-one", playbook="first.yml"),
        {"name": "hold it", "ansible.builtin.wait_for": {"path": str(go), "timeout": 90}},
        lock_task("release", "released", "run-one"),
    ], "-e", "awx_user_name=alice", wait=False)
    try:
        held = wait_for(backend.lock().peek, 60, what="the first run's lock")
        assert held["holder"]["who"] == "alice" and held["holder"]["pid"] == first.pid  # the AWX user; the run
        rc, results, output = playbook(tmp_path / "two", "second", backend.settings, [
            lock_task("take", "acquired", "run-two", playbook="second.yml"),
            {"name": "change the fleet", "ansible.builtin.debug": {"msg": "must not happen"}},
        ], "-e", "awx_user_name=bob")
        assert rc != 0
        refused = results["take"]
        assert refused["failed"] and refused["outcome"] == "refused"
        assert refused["msg"].startswith("fleet locked by alice (run run-one, playbook first.yml, since %s, lease until %s)"
                                         % (held["holder"]["since"], held["holder"]["lease_until"]))
        assert "change the fleet" not in results  # the run stopped before anything else
        assert backend.lock().peek() == held  # and changed nothing
    finally:
        go.touch()
    rc, results, output = finished(first)
    assert rc == 0, output
    assert results["take"]["outcome"] == "acquired" and results["release"]["outcome"] == "released"
    assert backend.lock().peek() is None
    rc, results, _ = playbook(tmp_path / "three", "third", backend.settings, [
        lock_task("take", "acquired", "run-three"), lock_task("release", "released", "run-three")])
    assert rc == 0 and results["take"]["outcome"] == "acquired"


def hanging_holder(backend, tmp_path, run_id, playbook_name):
    """A run that takes the lock and hangs (until killed); returns its Popen once it holds the lock."""
    proc = playbook(tmp_path / "one", "first", backend.settings, [
        lock_task("take", "acquired", run_id, playbook=playbook_name),
        {"name": "hang", "ansible.builtin.wait_for": {"path": str(tmp_path / "never"), "timeout": 120}},
    ], wait=False)
    wait_for(backend.lock().peek, 60, what="the first run's lock")
    return proc


def test_the_lock_of_a_killed_run_is_taken_over_at_once_from_the_same_controller(backend, tmp_path):
    first = hanging_holder(backend, tmp_path, "run-one", "first.yml")
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    rc, results, output = playbook(tmp_path / "two", "second", backend.settings, [
        lock_task("take", "acquired", "run-two", playbook="second.yml"),
        lock_task("release", "released", "run-two")])
    assert rc == 0, output
    took = results["take"]
    assert took["outcome"] == "taken over" and took["changed"]
    assert took["takeover"]["previous"]["run_id"] == "run-one"
    assert took["takeover"]["reason"].startswith("its process %d on controller " % first.pid)
    assert took["takeover"]["reason"].endswith(" has exited")
    assert any("taken over from" in w for w in took.get("warnings", []))


def test_a_killed_run_named_for_resuming_is_resumed_under_its_own_run_id(backend, tmp_path):
    first = hanging_holder(backend, tmp_path, "wave2-one", "wave2.yml")
    # While it runs, naming it for resuming is refused like any other holder: never two drivers of a run.
    rc, results, _ = playbook(tmp_path / "early", "early", backend.settings, [
        lock_task("take", "acquired", "wave2-early", resume_run_id="wave2-one")])
    assert rc != 0 and results["take"]["outcome"] == "refused", results
    assert "the same run is still held by process %d" % first.pid in results["take"]["msg"]
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    rc, results, output = playbook(tmp_path / "two", "second", backend.settings, [
        lock_task("take", "acquired", "wave2-two", resume_run_id="wave2-one"),
        lock_task("release", "released", "wave2-one")])
    assert rc == 0, output
    took = results["take"]
    assert took["outcome"] == "resumed" and took["run_id"] == "wave2-one" and took["takeover"] is None
    assert took["holder"]["run_id"] == "wave2-one" and took["holder"]["pid"] != first.pid
    assert results["release"]["outcome"] == "released"


def test_a_run_named_for_resuming_that_no_longer_holds_the_lock_is_not_resumed(backend, tmp_path):
    # wave2-one was cut off, then a rollback took the fleet (forced) and runs from another controller.
    backend.lock().acquire(holder("rollback-9", playbook="rollback.yml"), LEASE)
    rc, results, output = playbook(tmp_path / "two", "second", backend.settings, [
        lock_task("take", "acquired", "wave2-two", resume_run_id="wave2-one", force=True)])
    assert rc == 0, output
    assert results["take"]["outcome"] == "taken over" and results["take"]["run_id"] == "wave2-two"
    assert backend.lock().peek()["holder"]["run_id"] == "wave2-two"


def test_a_paused_run_handed_over_is_resumed_from_another_controller_and_never_replaced(backend, tmp_path):
    # A workflow's job paused wave2-one (its lease still runs; its controller, another AWX pod, cannot be
    # asked) and handed it over: the next job goes on with it, forced against that run only.
    backend.lock().acquire(holder("wave2-one"), LEASE)
    paused = dict(resume_run_id="wave2-one", force_run_id="wave2-one", resume_required=True)
    rc, results, output = playbook(tmp_path / "two", "second", backend.settings, [
        lock_task("take", "acquired", "wave2-two", **paused)])
    assert rc == 0, output
    assert results["take"]["outcome"] == "resumed" and results["take"]["run_id"] == "wave2-one"
    # A run that took the fleet since (a rollback) ended it: refused, and the lock left to that run.
    backend.lock().acquire(holder("rollback-9", playbook="rollback.yml"), LEASE, force=True)
    before = backend.lock().peek()
    rc, results, _ = playbook(tmp_path / "three", "third", backend.settings, [
        lock_task("take", "acquired", "wave2-three", **paused)])
    assert rc != 0 and results["take"]["outcome"] == "refused", results
    assert results["take"]["msg"].startswith("fleet_lock: run wave2-one is to be gone on with, but the fleet lock "
                                             "names alice (run rollback-9, playbook rollback.yml")
    assert backend.lock().peek() == before
    # Nor is a new run started in its place when the lock is free.
    backend.lock().release("rollback-9")
    rc, results, _ = playbook(tmp_path / "four", "fourth", backend.settings, [
        lock_task("take", "acquired", "wave2-four", **paused)])
    assert rc != 0 and "the fleet lock is free" in results["take"]["msg"], results
    assert backend.lock().peek() is None


def test_check_mode_acquires_nothing_and_warns_of_a_holder(backend, tmp_path):
    backend.lock().acquire(holder("wave2-live", who="alice"), LEASE)
    before = backend.lock().peek()
    rc, results, output = playbook(tmp_path / "check", "preview", backend.settings, [
        lock_task("take", "acquired", "run-check")], "--check")
    assert rc == 0, output
    assert results["take"]["outcome"] == "refused" and not results["take"]["changed"]
    assert results["take"]["warnings"][0].startswith("check mode: the run would be refused - fleet locked by alice")
    assert backend.lock().peek() == before


def test_a_lease_out_of_range_or_shorter_than_two_rounds_is_refused_before_locking(backend, tmp_path):
    rc, results, _ = playbook(tmp_path / "bad", "bad", backend.settings, [
        dict(lock_task("inf", "acquired", "run-1", lease_seconds="inf"), ignore_errors=True),
        dict(lock_task("nan", "acquired", "run-1", lease_seconds="nan"), ignore_errors=True),
        dict(lock_task("short", "acquired", "run-1", lease_seconds=60, renew_interval=300), ignore_errors=True)])
    assert results["inf"]["msg"] == ("fleet_lock: lease_seconds (fleet_lock_lease_seconds): must be a number in "
                                     "[10, 86,400] seconds, got inf (nothing was locked)")
    assert "got nan (nothing was locked)" in results["nan"]["msg"]
    assert "at least 600 s, twice the interval" in results["short"]["msg"]
    assert backend.lock().peek() is None


def test_jetstream_credentials_never_show(nats_server_factory, tmp_path):
    password = "pw-%s" % uuid.uuid4().hex
    server = nats_server_factory(extra_config='authorization { user: fleet, password: "%s" }' % password)
    settings = dict(backend="jetstream", bucket="fleetwave", url=server.url, user="fleet", lease_seconds=LEASE)
    rc, results, output = playbook(tmp_path / "creds", "creds", settings, [
        dict(lock_task("wrong password", "acquired", "run-1", password=password[::-1]), ignore_errors=True),
        dict(lock_task("password in the url", "acquired", "run-1",
                       url="nats://fleet:%s@127.0.0.1:1" % password[::-1], connect_timeout=0.5), ignore_errors=True),
        lock_task("right password", "acquired", "run-1", password=password),
        lock_task("release", "released", "run-1", password=password)], "-v")
    assert rc == 0, output
    assert results["wrong password"]["failed"] and "cannot acquire the fleet lock" in results["wrong password"]["msg"]
    assert "nats://***@127.0.0.1:1" in results["password in the url"]["msg"]
    assert results["right password"]["outcome"] == "acquired" and results["release"]["outcome"] == "released"
    assert password not in output and password[::-1] not in output
    audit = "".join(p.read_text() for p in (tmp_path / "creds").rglob("*.jsonl"))
    assert audit and password not in audit and password[::-1] not in audit


# ================================================================ the playbooks' wiring, on a local "host"

def local_fleet(tmp_path, nats_server, **overrides):
    """An inventory whose one dgx host is this machine (connection local, no become), with every path the
    playbooks write under tmp_path, the production contract and the directory lock."""
    inventory = tmp_path / "inventory"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    (inventory / "group_vars" / "all" / "00-contract.yml").symlink_to(
        REPO / "inventory/production/group_vars/all/00-contract.yml")
    local = dict(fleet_nats_url=nats_server.url, fleet_artifacts_dir=str(tmp_path / "artifacts"),
                 fleet_env_dir=str(tmp_path / "env"), fleet_backup_dir=str(tmp_path / "backups"),
                 fleet_evidence_key="fleet-lock-tests-key-not-a-secret", fleet_lock_lease_seconds=60,
                 wave_monitor_interval_seconds=5, **overrides)
    (inventory / "group_vars" / "all" / "90-local.yml").write_text(yaml.safe_dump(local))
    host = dict(ansible_connection="local", ansible_python_interpreter=sys.executable, ansible_become=False)
    (inventory / "hosts.yml").write_text(yaml.safe_dump({"all": {
        "children": {"dgx": {"hosts": {"dgx-1": host}}}, "hosts": {"localhost": host}}}))
    return inventory


def run_project_playbook(inventory, name, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_LOCAL_TEMP=str(inventory.parent / ".tmp"),
               ANSIBLE_NOCOLOR="1")
    return subprocess.run([str(PLAYBOOK), "-i", str(inventory / "hosts.yml"), str(REPO / "playbooks" / name), *args],
                          cwd=inventory.parent, env=env, capture_output=True, text=True, timeout=300)


def hold_lock(tmp_path, settings, run_id="wave2-live", who="alice"):
    """A live run holding the lock (an ansible-playbook waiting for tmp_path/go); returns its Popen."""
    proc = playbook(tmp_path / "holder", "holder", settings, [
        lock_task("take", "acquired", run_id, playbook="wave2.yml"),
        {"name": "hold it", "ansible.builtin.wait_for": {"path": str(tmp_path / "go"), "timeout": 120}},
    ], "-e", "awx_user_name=%s" % who, wait=False)
    return proc


def directory_lock(state_dir):
    return FleetLock(fleet_state.DirStore(state_dir), "fleet")


@contextlib.contextmanager
def live_wave_lock(tmp_path, state_dir):
    """A live wave (wave2-live, alice) holding the directory lock in state_dir for the block; yields
    the lock as held, and lets the holder finish afterwards."""
    holder_proc = hold_lock(tmp_path, dict(backend="directory", state_dir=state_dir, lease_seconds=LEASE))
    try:
        yield wait_for(directory_lock(state_dir).peek, 60, what="the live wave's lock")
    finally:
        (tmp_path / "go").touch()
        holder_proc.communicate(timeout=60)


def test_a_wave_whose_host_pre_flight_fails_journals_its_lock_and_releases_it(nats_server, tmp_path):
    inventory = local_fleet(tmp_path, nats_server)  # no agent is installed on this "host"
    proc = run_project_playbook(inventory, "wave1.yml")
    assert proc.returncode != 0 and "not installed on dgx-1" in proc.stdout, proc.stdout + proc.stderr
    assert "Release the fleet lock (no host was changed)" in proc.stdout
    assert directory_lock(str(tmp_path / "artifacts" / "state")).peek() is None
    [journal] = (tmp_path / "artifacts" / "runs").glob("wave1-*/journal.jsonl")
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [(r["step"], r["host"], r["outcome"]) for r in records] == [
        ("run", None, "ok"), ("lock", None, "ok"), ("preflight", None, "ok"), ("preflight", "dgx-1", "failed")]
    lock = records[1]["detail"]
    assert lock["holder"]["run_id"] == journal.parent.name and lock["takeover"] is None
    assert lock["lock"]["key"] == "lock.fleet" and lock["lock"]["backend"] == "directory"


def test_a_wave_refused_by_the_lock_stops_before_its_journal(nats_server, tmp_path):
    inventory = local_fleet(tmp_path, nats_server)
    with live_wave_lock(tmp_path, str(tmp_path / "artifacts" / "state")):
        proc = run_project_playbook(inventory, "wave1.yml")
        assert proc.returncode != 0
        assert "fleet locked by alice (run wave2-live, playbook wave2.yml, since " in proc.stdout, proc.stdout
        assert not (tmp_path / "artifacts" / "runs").exists()  # no journal: the run changed nothing


def test_a_readiness_run_is_refused_by_a_live_wave_before_it_sends_anything(nats_server, tmp_path):
    sandbox = yaml.safe_load((REPO / "inventory/sandbox/group_vars/all/50-sandbox.yml").read_text())
    inventory = local_fleet(tmp_path, nats_server, **{name: sandbox[name] for name in (
        "readiness_signing_keys", "readiness_trusted_keys")})  # the approvers can sign
    state_dir = str(tmp_path / "artifacts" / "state")
    with live_wave_lock(tmp_path, state_dir) as held:
        proc = run_project_playbook(inventory, "readiness.yml", "-e", "readiness_run=readiness-refused")
        assert proc.returncode != 0
        assert "fleet locked by alice (run wave2-live, playbook wave2.yml" in proc.stdout, proc.stdout + proc.stderr
        assert "Load scenario" not in proc.stdout and "Start area" not in proc.stdout
        assert not (tmp_path / "artifacts" / "readiness" / "readiness-refused").exists()
        assert directory_lock(state_dir).peek() == held  # left to the wave


def test_a_rollback_is_refused_by_a_live_wave_unless_forced_and_records_the_takeover(nats_server, tmp_path):
    inventory = local_fleet(tmp_path, nats_server)
    state_dir = str(tmp_path / "artifacts" / "state")
    with live_wave_lock(tmp_path, state_dir) as held:
        refused = run_project_playbook(inventory, "rollback.yml")
        assert refused.returncode != 0
        assert "fleet locked by alice (run wave2-live, playbook wave2.yml" in refused.stdout, refused.stdout
        assert "fleet_lock_force=true" in refused.stdout
        assert "Decide what each host restores" not in refused.stdout  # stopped before looking at any host
        assert not (tmp_path / "artifacts" / "rollbacks").exists()
        assert directory_lock(state_dir).peek() == held
        forced = run_project_playbook(inventory, "rollback.yml", "-e", "fleet_lock_force=true")
        assert forced.returncode == 0, forced.stdout + forced.stderr
        [record] = (tmp_path / "artifacts" / "rollbacks").glob("rollback-*.json")
        took = json.loads(record.read_text())["detail"]["lock"]["takeover"]
        assert took["forced"] is True and took["previous"]["run_id"] == "wave2-live"
        assert directory_lock(state_dir).peek() is None  # released at the end of the rollback


def test_a_rollback_after_a_failed_wave_in_a_workflow_takes_over_that_wave_only(nats_server, tmp_path):
    # Under AWX the failed wave's job hands its run over (set_stats fleetwave_wave2), its process gone
    # with its container but its lease still running: the rollback takes over that run and no other.
    inventory = local_fleet(tmp_path, nats_server)
    state_dir = str(tmp_path / "artifacts" / "state")
    with live_wave_lock(tmp_path, state_dir) as held:
        other = run_project_playbook(inventory, "rollback.yml", "-e", json.dumps(dict(
            rollback_wave="wave2", wave_monitor_interval_seconds=300,  # a production wave 2 plan
            fleetwave_wave2=dict(run_id="wave2-started-since", lock_holder="wave2-started-since"))))
        assert other.returncode != 0
        assert "fleet locked by alice (run wave2-live, playbook wave2.yml" in other.stdout, other.stdout
        assert directory_lock(state_dir).peek() == held
        handed = run_project_playbook(inventory, "rollback.yml", "-e", json.dumps(dict(
            rollback_wave="wave2", wave_monitor_interval_seconds=300,
            fleetwave_wave2=dict(run_id="wave2-live", lock_holder="wave2-live"))))
        assert handed.returncode == 0, handed.stdout + handed.stderr
        [record] = (tmp_path / "artifacts" / "rollbacks").glob("rollback-*.json")
        took = json.loads(record.read_text())["detail"]["lock"]["takeover"]
        assert took["forced"] is True and took["previous"]["run_id"] == "wave2-live"
        assert took["reason"].startswith("forced from run wave2-live, the run handed over (force_run_id) while")
        assert directory_lock(state_dir).peek() is None


def test_a_rollback_takes_over_the_lock_of_a_dead_wave(nats_server, tmp_path):
    inventory = local_fleet(tmp_path, nats_server)
    state_dir = str(tmp_path / "artifacts" / "state")
    holder_proc = hold_lock(tmp_path, dict(backend="directory", state_dir=state_dir, lease_seconds=LEASE))
    wait_for(directory_lock(state_dir).peek, 60, what="the wave's lock")
    holder_proc.send_signal(signal.SIGKILL)
    holder_proc.wait(30)
    proc = run_project_playbook(inventory, "rollback.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [record] = (tmp_path / "artifacts" / "rollbacks").glob("rollback-*.json")
    took = json.loads(record.read_text())["detail"]["lock"]["takeover"]
    assert took["forced"] is False and took["previous"]["run_id"] == "wave2-live"
    assert took["reason"].endswith("has exited")
