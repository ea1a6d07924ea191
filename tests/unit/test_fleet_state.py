"""plugins/plugin_utils/fleet_state.py: the directory store's compare-and-swap (create if absent,
update and delete at the revision read), and the fleet lock's rules on a fake clock - taken when free,
refused naming the holder while its lease runs, taken over (and the takeover written) when the lease
has expired or the holder provably is gone, forced only on request, renewed only by its holder,
released idempotently, resumed by the same run. The same rules against NATS JetStream are in
tests/integration/test_fleet_lock.py. Also the fleet_lock action's number checks and redaction."""

from __future__ import annotations

import json
import os
import socket
import threading

import pytest
from ansible_collections.fleetwave.rollout.plugins.action import fleet_lock as fleet_lock_action
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_state
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import epoch_of, utc
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_state import (DirStore, FleetLock, KeyExists,
                                                                                     LockHeld, LockLost, StateError,
                                                                                     WrongRevision)

pytestmark = pytest.mark.unit

T0 = 1_764_583_200.0  # 2025-12-01T10:00:00Z
LEASE = 60.0


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


def holder(run_id, who="alice", playbook="wave2.yml", controller="ctl-a", pid=4242):
    """A holder on another controller: its liveness cannot be told from here (None)."""
    return dict(who=who, run_id=run_id, playbook=playbook, controller=controller, pid=pid, process="boot/ns/1")


@pytest.fixture
def store(tmp_path):
    return DirStore(str(tmp_path / "state"))


@pytest.fixture
def clock():
    return Clock()


def lock_of(store, clock, liveness=lambda h: None):
    return FleetLock(store, "fleet", clock=clock, liveness=liveness)


# --- DirStore ------------------------------------------------------------------------------------

def test_a_key_is_created_once_then_changed_only_at_the_revision_read(store):
    assert store.get("lock.fleet") is None
    first = store.create("lock.fleet", {"a": 1})
    with pytest.raises(KeyExists) as exists:
        store.create("lock.fleet", {"a": 2})
    assert exists.value.current == fleet_state.Entry("lock.fleet", {"a": 1}, first)
    second = store.update("lock.fleet", {"a": 3}, first)
    assert second > first and store.get("lock.fleet") == ("lock.fleet", {"a": 3}, second)
    with pytest.raises(WrongRevision, match="lock.fleet is at revision %d, not %d" % (second, first)):
        store.update("lock.fleet", {"a": 4}, first)
    with pytest.raises(WrongRevision):
        store.delete("lock.fleet", first)
    store.delete("lock.fleet", second)
    assert store.get("lock.fleet") is None
    with pytest.raises(WrongRevision, match="none \\(absent\\)"):
        store.update("lock.fleet", {"a": 5}, second)


def test_revisions_never_repeat_after_a_key_is_deleted_and_created_again(store):
    first = store.create("k", {"n": 1})
    store.delete("k", first)
    again = store.create("k", {"n": 2})
    assert again > first
    with pytest.raises(WrongRevision):  # a slow writer still holding the first revision loses
        store.update("k", {"n": 3}, first)


def test_an_entry_is_a_json_file_with_its_revision_written_atomically(store, tmp_path):
    revision = store.create("lock.fleet", {"holder": {"who": "alice"}})
    files = sorted(os.listdir(tmp_path / "state"))
    assert files == [".sequence", ".store.lock", "lock.fleet.json"]  # no temp file left behind
    document = json.loads((tmp_path / "state" / "lock.fleet.json").read_text())
    assert document["revision"] == revision and document["value"] == {"holder": {"who": "alice"}}


def test_a_damaged_entry_is_an_error_naming_the_file(store, tmp_path):
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "lock.fleet.json").write_text('{"value": {}}')
    with pytest.raises(StateError, match="lock.fleet.json is not a state entry"):
        store.get("lock.fleet")


def test_keys_that_are_not_file_and_kv_safe_are_refused(store):
    for key in ("../x", ".hidden", "a b", "a..b", "", "a/b"):
        with pytest.raises(StateError, match="not usable"):
            store.create(key, {})


def test_a_store_without_a_directory_says_which_setting_is_missing():
    with pytest.raises(fleet_state.StoreUnavailable, match="fleet_state_dir"):
        DirStore("")


def test_threads_creating_the_same_key_at_once_leave_exactly_one_winner(store):
    barrier, won, lost = threading.Barrier(8), [], []

    def create(n):
        barrier.wait()
        try:
            won.append(store.create("race", {"n": n}))
        except KeyExists:
            lost.append(n)

    threads = [threading.Thread(target=create, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(won) == 1 and len(lost) == 7


# --- the fleet lock: acquire -----------------------------------------------------------------------

def test_a_free_lock_is_taken_with_the_holder_and_its_lease(store, clock):
    done = lock_of(store, clock).acquire(holder("wave2-1"), LEASE)
    assert done["action"] == "acquired" and done["takeover"] is None and done["key"] == "lock.fleet"
    stored = store.get("lock.fleet").value
    assert stored["holder"] == dict(holder("wave2-1"), since=utc(T0), lease_until=utc(T0 + LEASE), lease_seconds=LEASE)
    assert done["holder"] == stored["holder"]


def test_a_held_lock_is_refused_naming_who_run_playbook_since_and_lease(store, clock):
    lock = lock_of(store, clock)
    lock.acquire(holder("wave2-1", who="alice"), LEASE)
    clock.advance(30)
    before = store.get("lock.fleet")
    with pytest.raises(LockHeld) as refused:
        lock.acquire(holder("rollback-2", who="bob", playbook="rollback.yml"), LEASE)
    message = str(refused.value)
    assert message.startswith("fleet locked by alice (run wave2-1, playbook wave2.yml, since %s, lease until %s); wait"
                              % (utc(T0), utc(T0 + LEASE)))
    assert "fleet_lock_force=true" in message and "Nothing was changed" in message
    assert refused.value.holder["run_id"] == "wave2-1"
    assert store.get("lock.fleet") == before  # the refused run wrote nothing


def test_an_expired_lease_is_taken_over_and_the_takeover_recorded(store, clock):
    lock = lock_of(store, clock)
    lock.acquire(holder("wave2-1", who="alice"), LEASE)
    clock.advance(LEASE + 15)
    done = lock.acquire(holder("wave2-2", who="bob"), LEASE)
    assert done["action"] == "taken over"
    took = done["takeover"]
    assert took["previous"]["run_id"] == "wave2-1" and took["previous"]["who"] == "alice"
    assert took["expired_since"] == utc(T0 + LEASE) and took["expired_for_seconds"] == 15
    assert took["forced"] is False and took["at"] == utc(T0 + LEASE + 15)
    assert took["reason"] == "its lease expired at %s" % utc(T0 + LEASE)
    stored = store.get("lock.fleet").value
    assert stored["holder"]["run_id"] == "wave2-2" and stored["takeover"] == took


def test_the_lease_runs_up_to_its_last_instant(store, clock):
    lock = lock_of(store, clock)
    lock.acquire(holder("wave2-1"), LEASE)
    clock.advance(LEASE - 0.01)
    with pytest.raises(LockHeld):
        lock.acquire(holder("wave2-2"), LEASE)
    clock.advance(0.01)
    assert lock.acquire(holder("wave2-2"), LEASE)["action"] == "taken over"


def test_an_expired_lease_whose_process_provably_runs_is_not_taken_over(store, clock):
    alive = lock_of(store, clock, liveness=lambda h: True)
    alive.acquire(holder("wave2-1"), LEASE)
    clock.advance(LEASE * 3)
    with pytest.raises(LockHeld, match="lease expired at .* but its process 4242 on this controller still runs"):
        alive.acquire(holder("wave2-2"), LEASE)


def test_a_holder_whose_process_provably_exited_is_taken_over_at_once(store, clock):
    lock_of(store, clock).acquire(holder("wave2-1"), LEASE)
    clock.advance(1)
    done = lock_of(store, clock, liveness=lambda h: False).acquire(holder("rollback-2"), LEASE)
    assert done["action"] == "taken over"
    assert done["takeover"]["reason"] == "its process 4242 on controller ctl-a has exited"
    assert done["takeover"]["expired_since"] is None and done["takeover"]["forced"] is False


def test_force_takes_over_a_live_holder_and_says_so(store, clock):
    lock = lock_of(store, clock)
    lock.acquire(holder("wave2-1"), LEASE)
    done = lock.acquire(holder("rollback-2", playbook="rollback.yml"), LEASE, force=True)
    assert done["action"] == "taken over" and done["takeover"]["forced"] is True
    assert done["takeover"]["reason"].startswith("forced (fleet_lock_force)")
    assert store.get("lock.fleet").value["takeover"]["forced"] is True


def test_force_run_id_takes_over_that_run_only(store, clock):
    lock = lock_of(store, clock)
    lock.acquire(holder("wave2-1"), LEASE)
    with pytest.raises(LockHeld):  # a wave started since is not the one handed over: refused
        lock.acquire(holder("rollback-2", playbook="rollback.yml"), LEASE, force_run_id="wave2-0")
    assert store.get("lock.fleet").value["holder"]["run_id"] == "wave2-1"
    done = lock.acquire(holder("rollback-2", playbook="rollback.yml"), LEASE, force_run_id="wave2-1")
    assert done["action"] == "taken over" and done["takeover"]["forced"] is True
    assert done["takeover"]["reason"].startswith("forced from run wave2-1, the run handed over (force_run_id) while")
    assert done["takeover"]["previous"]["run_id"] == "wave2-1"


def test_force_is_not_recorded_when_the_lock_would_be_taken_anyway(store, clock):
    lock = lock_of(store, clock)
    lock.acquire(holder("wave2-1"), LEASE)
    clock.advance(LEASE)
    assert lock.acquire(holder("rollback-2"), LEASE, force=True)["takeover"]["forced"] is False


def test_the_same_run_taking_the_lock_again_resumes_it_and_says_so(store, clock):
    # The earlier process (pid 100) was killed; a re-run of the same run resumes it at once.
    lock = lock_of(store, clock, liveness=lambda h: h.get("pid") != 100)
    lock.acquire(holder("wave2-1", pid=100), LEASE)
    clock.advance(20)
    done = lock.acquire(holder("wave2-1", pid=200), LEASE)
    assert done["action"] == "resumed" and done["previous"]["pid"] == 100
    assert done["holder"]["pid"] == 200 and done["holder"]["since"] == utc(T0)  # held since the first time
    assert done["holder"]["lease_until"] == utc(T0 + 20 + LEASE)


@pytest.mark.parametrize("alive, advance", [(True, 20), (True, LEASE + 1), (None, 20)])
def test_the_same_run_is_not_resumed_while_its_process_may_still_drive_it(store, clock, alive, advance):
    # Still running here, or on another controller within its lease: two processes must never drive one run.
    lock = lock_of(store, clock, liveness=lambda h: alive if h.get("pid") == 100 else True)
    lock.acquire(holder("wave2-1", pid=100), LEASE)
    clock.advance(advance)
    with pytest.raises(LockHeld, match="the same run is still held by process 100"):
        lock.acquire(holder("wave2-1", pid=200), LEASE)
    assert lock.peek()["holder"]["pid"] == 100


def test_the_same_run_from_another_controller_resumes_once_the_lease_expired(store, clock):
    lock = lock_of(store, clock)
    lock.acquire(holder("wave2-1", pid=100), LEASE)
    clock.advance(LEASE)
    assert lock.acquire(holder("wave2-1", pid=200), LEASE)["action"] == "resumed"


def test_a_malformed_lease_counts_as_expired(store, clock):
    store.create("lock.fleet", {"holder": dict(holder("wave2-1"), lease_until="soon")})
    done = lock_of(store, clock).acquire(holder("wave2-2"), LEASE)
    assert done["action"] == "taken over" and done["takeover"]["expired_for_seconds"] is None


class Interleaved:
    """A store that lets a competitor write just after our read: our compare-and-swap must lose."""

    def __init__(self, store, competitor):
        self.store, self.competitor, self.where = store, competitor, store.where

    def get(self, key):
        entry = self.store.get(key)
        competitor, self.competitor = self.competitor, None
        if competitor:
            competitor()
        return entry

    def __getattr__(self, name):
        return getattr(self.store, name)


def test_losing_the_race_after_reading_a_free_lock_is_a_refusal_naming_the_winner(store, clock):
    winner = lock_of(store, clock)
    racing = lock_of(Interleaved(store, lambda: winner.acquire(holder("wave2-A", who="ann"), LEASE)), clock)
    with pytest.raises(LockHeld, match=r"^fleet locked by ann \(run wave2-A"):
        racing.acquire(holder("wave2-B", who="ben"), LEASE)
    assert store.get("lock.fleet").value["holder"]["run_id"] == "wave2-A"


def test_losing_the_race_for_an_expired_lock_is_a_refusal_naming_the_winner(store, clock):
    lock_of(store, clock).acquire(holder("wave2-old"), LEASE)
    clock.advance(LEASE + 1)
    winner = lock_of(store, clock)
    racing = lock_of(Interleaved(store, lambda: winner.acquire(holder("wave2-A", who="ann"), LEASE)), clock)
    with pytest.raises(LockHeld, match=r"^fleet locked by ann \(run wave2-A"):
        racing.acquire(holder("wave2-B", who="ben"), LEASE)


def test_a_preview_writes_nothing_and_tells_what_would_happen(store, clock):
    lock = lock_of(store, clock)
    assert lock.preview_acquire(holder("wave2-1"), LEASE)["action"] == "acquired"
    assert store.get("lock.fleet") is None
    lock.acquire(holder("wave2-1"), LEASE)
    refused = lock.preview_acquire(holder("wave2-2", who="bob"), LEASE)
    assert refused["action"] == "refused" and refused["msg"].startswith("fleet locked by alice (run wave2-1")
    clock.advance(LEASE)
    assert lock.preview_acquire(holder("wave2-2"), LEASE)["action"] == "taken over"
    assert store.get("lock.fleet").value["holder"]["run_id"] == "wave2-1"


def test_a_fleet_name_that_cannot_be_a_key_token_is_refused(store, clock):
    for fleet in ("a.b", "", "../x", "-x"):
        with pytest.raises(StateError, match="fleet name"):
            FleetLock(store, fleet, clock=clock)


# --- renew and release -----------------------------------------------------------------------------

def test_the_holder_renews_its_lease(store, clock):
    lock = lock_of(store, clock)
    lock.acquire(holder("wave2-1"), LEASE)
    clock.advance(50)
    done = lock.renew("wave2-1", LEASE)
    assert done["action"] == "renewed" and done["lapsed_seconds"] == 0
    assert store.get("lock.fleet").value["holder"]["lease_until"] == utc(T0 + 50 + LEASE)
    clock.advance(LEASE - 1)
    with pytest.raises(LockHeld):  # the renewed lease holds off others
        lock.acquire(holder("wave2-2"), LEASE)


def test_a_lapsed_lease_nobody_took_is_renewed_and_says_how_late(store, clock):
    lock = lock_of(store, clock)
    lock.acquire(holder("wave2-1"), LEASE)
    clock.advance(LEASE + 7)
    assert lock.renew("wave2-1", LEASE)["lapsed_seconds"] == 7


def test_renewing_after_a_takeover_fails_naming_who_took_it(store, clock):
    lock = lock_of(store, clock)
    lock.acquire(holder("wave2-1"), LEASE)
    clock.advance(LEASE + 1)
    lock.acquire(holder("rollback-2", who="bob", playbook="rollback.yml"), LEASE)
    with pytest.raises(LockLost) as lost:
        lock.renew("wave2-1", LEASE)
    message = str(lost.value)
    assert message.startswith("run wave2-1 no longer holds the fleet lock lock.fleet: it is held by bob (run rollback-2, "
                              "playbook rollback.yml")
    assert "taken over from this run at %s (its lease expired" % utc(T0 + LEASE + 1) in message
    assert lost.value.holder["run_id"] == "rollback-2"
    assert store.get("lock.fleet").value["holder"]["run_id"] == "rollback-2"


def test_renewing_a_lock_nobody_holds_fails(store, clock):
    with pytest.raises(LockLost, match="nobody holds it"):
        lock_of(store, clock).renew("wave2-1", LEASE)


def test_release_is_by_the_holder_only_and_idempotent(store, clock):
    lock = lock_of(store, clock)
    lock.acquire(holder("wave2-1"), LEASE)
    assert lock.release("wave2-2")["action"] == "not held"
    assert store.get("lock.fleet").value["holder"]["run_id"] == "wave2-1"
    assert lock.release("wave2-1", dry_run=True)["action"] == "released"
    assert store.get("lock.fleet") is not None
    assert lock.release("wave2-1")["action"] == "released"
    assert store.get("lock.fleet") is None
    assert lock.release("wave2-1")["action"] == "already released"
    assert lock.acquire(holder("wave2-2"), LEASE)["action"] == "acquired"


# --- whose process ---------------------------------------------------------------------------------

def me(**changes):
    pid = os.getpid()
    return dict(dict(controller=socket.gethostname(), pid=pid, process=fleet_state.process_identity(pid)), **changes)


@pytest.mark.skipif(not os.path.exists("/proc/self/ns/pid"), reason="needs Linux /proc")
def test_liveness_is_told_only_where_a_pid_means_the_same_process():
    assert fleet_state.holder_liveness(me()) is True
    assert fleet_state.holder_liveness(me(pid=2 ** 22 + 1)) is False  # no such process
    token = me()["process"]
    assert fleet_state.holder_liveness(me(process=token.rsplit("/", 1)[0] + "/1")) is False  # pid reused
    assert fleet_state.holder_liveness(me(controller="another-controller")) is None
    other_ns = token.replace("pid:[", "pid:[9")
    assert fleet_state.holder_liveness(me(process=other_ns)) is None  # another container's pids
    rebooted = "00000000-0000-0000-0000-000000000000/" + token.split("/", 1)[1]
    assert fleet_state.holder_liveness(me(process=rebooted)) is False
    assert fleet_state.holder_liveness(me(process=None)) is None


def test_timestamps_round_trip():
    assert epoch_of(utc(T0 + 0.123)) == pytest.approx(T0 + 0.123)
    assert epoch_of("2025-12-01 10:00") is None and epoch_of(None) is None


# --- the fleet_lock action's checks ----------------------------------------------------------------

ARGS = dict(state="acquired", backend="directory", lease_seconds=900.0, renew_interval=300.0, connect_timeout=2.0)


@pytest.mark.parametrize("lease", [float("inf"), float("nan"), 9.99, 86_401, True])
def test_a_lease_out_of_range_is_refused_naming_variable_and_range(lease):
    [problem] = fleet_lock_action.problems_of(dict(ARGS, lease_seconds=lease, renew_interval=None))
    assert problem.startswith("lease_seconds (fleet_lock_lease_seconds): must be a number in [10, 86,400] seconds, got ")


def test_a_lease_shorter_than_two_rounds_is_refused_with_the_interval():
    [problem] = fleet_lock_action.problems_of(dict(ARGS, lease_seconds=500.0))
    assert problem == ("lease_seconds (fleet_lock_lease_seconds) = 500 s is too short for a renewal every 300 s "
                       "(wave_monitor_interval_seconds): the lease is renewed once per round, so it must last a round's "
                       "wait and the round itself - at least 600 s, twice the interval")
    assert fleet_lock_action.problems_of(dict(ARGS, lease_seconds=600.0)) == []
    assert fleet_lock_action.problems_of(dict(ARGS, state="renewed", lease_seconds=500.0)) == []


def test_the_production_and_sandbox_leases_fit_their_intervals():
    assert fleet_lock_action.problems_of(dict(ARGS, lease_seconds=900.0, renew_interval=300.0)) == []
    assert fleet_lock_action.problems_of(dict(ARGS, lease_seconds=60.0, renew_interval=6.0)) == []


def test_a_connect_timeout_out_of_range_is_refused_for_jetstream_only():
    bad = dict(ARGS, connect_timeout=float("inf"), renew_interval=None)
    assert fleet_lock_action.problems_of(bad) == []
    assert fleet_lock_action.problems_of(dict(bad, backend="jetstream")) == [
        "connect_timeout: must be a number in (0, 60] seconds, got inf"]


def test_results_are_scrubbed_of_nats_credentials():
    connection = dict(url="nats://joe:s3cr%40t@nats:4222", user="joe", password="hunter22", token="", creds_file=None,
                      connect_timeout=2.0)
    scrubbed = fleet_lock_action.scrub(dict(msg="bad hunter22 at nats://joe:s3cr%40t@nats:4222 (s3cr@t)",
                                            nested=[{"x": "hunter22"}], n=1), connection)
    text = json.dumps(scrubbed)
    assert "hunter22" not in text and "s3cr" not in text and scrubbed["n"] == 1
    assert "nats://***@nats:4222" in scrubbed["msg"]


# --- the run journal's lock step -----------------------------------------------------------------

def test_a_wave_journals_its_lock_and_the_timeline_names_a_takeover(tmp_path, clock):
    from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import ArtifactStore
    from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_journal import (Journal, record_step,
                                                                                           render_timeline)
    state = DirStore(str(tmp_path / "state"))
    lock_of(state, clock).acquire(holder("wave2-1", who="alice"), LEASE)
    clock.advance(LEASE + 1)
    done = lock_of(state, clock).acquire(holder("wave2-2", who="bob"), LEASE)
    artifacts = ArtifactStore(str(tmp_path / "artifacts"))
    args = dict(run_id="wave2-2", wave="wave2", step="lock", outcome="ok", reasons=["taken over"],
                detail=dict(lock={"key": done["key"]}, holder=done["holder"], takeover=done["takeover"]))
    record, beside = record_step(artifacts, args)
    assert beside is None and (record["step"], record["next_step"]) == ("lock", "proceed")
    assert record["detail"]["takeover"]["previous"]["run_id"] == "wave2-1"
    [row] = render_timeline(Journal(artifacts, "wave2-2").records())[2:]
    assert "| fleet lock taken over from alice (run wave2-1) |" in row
    record, _ = record_step(artifacts, dict(args, run_id="wave2-3", detail=dict(takeover=None)))
    assert "| fleet lock taken |" in render_timeline([record])[2]
