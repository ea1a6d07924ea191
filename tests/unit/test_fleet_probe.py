"""plugins/module_utils/fleet_probe.py (and the parameter checks of plugins/modules/nats_probe.py):
open-loop scheduling on a fake clock, reply matching and aggregation on a simulated NATS
connection, HDR percentiles, event pairing, and null (never 0 or 1) where there is no data.
No network, no subprocesses, no real sleeps."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import json

import pytest
from ansible_collections.fleetwave.rollout.plugins.module_utils import fleet_probe
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_probe import (
    EventLedger, Latency, Schedule, TargetStats, counts, downsample, dual_publish_success, generate,
    latency_summary, plan_targets, publish_time, ratio, reply_is_error, run_probe, unified_share, validate)
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_server import subject_matches

pytestmark = pytest.mark.unit

AGENT = dict(name="network-expert", legacy="agent.network-expert",
             unified="agents.infrastructure.01936f88-d2a9-7000-8000-000000000008", unified_enabled=True)
CONTROL = dict(name="graph-expert", legacy="agent.graph-expert", unified="agents.knowledge.0193-b",
               unified_enabled=False)
HOSTS = ["dgx-1", "dgx-2"]


def params(**overrides):
    base = dict(url="nats://127.0.0.1:4222", user="", password="", token="", creds_file=None, connect_timeout=2.0,
                agents=[dict(AGENT)], hosts=list(HOSTS), rate=10.0, window=2.0, timeout=1.0, emit_events=0,
                verbs=["ping"])
    base.update(overrides)
    return base


# --- a fake clock and a simulated NATS connection -----------------------------------------------

class FakeClock:
    """Virtual time: sleep() advances it and delivers the messages that fall due meanwhile."""

    def __init__(self, start=1000.0):
        self.now = start
        self._queue = []
        self._order = itertools.count()
        self.sleeps = []

    def __call__(self):
        return self.now

    def at(self, when, callback, msg):
        heapq.heappush(self._queue, (when, next(self._order), callback, msg))

    async def sleep(self, seconds):
        self.sleeps.append(seconds)
        until = self.now + max(0.0, seconds)
        while self._queue and self._queue[0][0] <= until:
            when, _, callback, msg = heapq.heappop(self._queue)
            self.now = max(self.now, when)
            await callback(msg)
        self.now = until


class Msg:
    def __init__(self, subject, data=b"", headers=None):
        self.subject, self.data, self.headers = subject, data, headers


class FakeNats:
    """Just enough of a nats-py client: publish() asks `respond(subject, headers, payload)` for
    [(delay, subject, data, headers)] and delivers them to matching subscriptions after delay."""

    def __init__(self, clock, respond):
        self.clock, self.respond = clock, respond
        self.subs = []
        self.published = []
        self.stats = {"out_msgs": 0, "in_msgs": 0}
        self.client_id = 7
        self.is_closed = False

    def new_inbox(self):
        return "_INBOX.fake"

    async def subscribe(self, subject, cb):
        nc = self

        class Sub:
            async def unsubscribe(self):
                nc.subs.remove(entry)

        entry = (subject, cb)
        self.subs.append(entry)
        return Sub()

    async def flush(self, timeout=None):
        pass

    async def close(self):
        self.is_closed = True

    async def publish(self, subject, payload=b"", reply="", headers=None):
        self.stats["out_msgs"] += 1
        self.published.append((self.clock(), subject, reply, dict(headers or {}), payload))
        answers = self.respond(subject, dict(headers or {}), payload)
        if answers is None:  # nobody subscribes: the server's no-responders status
            answers = [(0.0005, reply, b"", {"Status": "503"})] if reply else []
        for delay, to, data, hdrs in answers:
            to = reply if to == "REPLY" else to
            for pattern, cb in list(self.subs):
                if subject_matches(pattern, to):
                    self.clock.at(self.clock() + delay, self._deliver(cb), Msg(to, data, hdrs))

    def _deliver(self, cb):
        async def deliver(msg):
            self.stats["in_msgs"] += 1
            await cb(msg)

        return deliver


def fleet(latency=None, unified_on=True, drop_every=0, drop_hosts=None, error_hosts=(), silent_hosts=(),
          event_host_header=True):
    """A responder playing agents AGENT and CONTROL on HOSTS: replies after latency[host] s,
    events dual-published (every drop_every-th unified copy dropped, on drop_hosts or all hosts)
    with their instance in Agent-Host (unless event_host_header is false, like an older agent),
    errors or silence per host."""
    latency = latency or {}
    seq = itertools.count(1)
    agents = {a["name"]: a for a in (AGENT, CONTROL)}

    def respond(subject, headers, payload):
        for agent in agents.values():
            on = unified_on if agent is AGENT else False
            for via in ("legacy", "unified"):
                prefix = agent[via] + ".cmd."
                if not subject.startswith(prefix):
                    continue
                if via == "unified" and not on:
                    return None
                host = headers.get("Agent-Target")
                if host in silent_hosts:
                    return []
                verb = subject[len(prefix):]
                delay = latency.get(host, 0.002)
                if host in error_hosts:
                    return [(delay, "REPLY", b'{"ok": false}', {"Agent-Error": "requested"})]
                if verb == "emit":
                    count = json.loads(payload)["count"]
                    out = []
                    for _ in range(count):
                        n = next(seq)
                        hdr = {"Nats-Msg-Id": "%s.%s.%d" % (agent["name"], host, n)}
                        if event_host_header:
                            hdr["Agent-Host"] = host
                        out.append((0.001, agent["legacy"] + ".evt.probe", b"{}", hdr))
                        dropping = drop_every and (drop_hosts is None or host in drop_hosts)
                        if on and not (dropping and n % drop_every == 0):
                            out.append((0.001, agent["unified"] + ".evt.probe", b"{}", hdr))
                    out.append((0.002, "REPLY", json.dumps({"ok": True, "emitted": count}).encode(), {}))
                    return out
                if verb == "status":
                    body = {"ok": True, "unified": on, "pid": 1, "uptime_s": 9.0,
                            "counters": {"requests": {"legacy": 1, "unified": 0, "errors": 0}},
                            "faults": {}, "publish_time_ms": {"count": 10, "mean": 0.05, "p50": 0.04,
                                                              "p99": 0.2 if host == "dgx-1" else 0.3, "max": 0.5}}
                    return [(delay, "REPLY", json.dumps(body).encode(), {"Agent-Host": host})]
                return [(delay, "REPLY", json.dumps({"ok": True, "via": via}).encode(), {"Agent-Host": host})]
        return None

    return respond


def probe(respond, **overrides):
    clock = FakeClock()
    nc = FakeNats(clock, respond)

    async def connect(_params):
        return nc

    result = asyncio.run(run_probe(params(**overrides), connect=connect, clock=clock, sleep=clock.sleep))
    return result, nc, clock


# --- scheduling ----------------------------------------------------------------------------------

def test_schedule_interleaves_targets_evenly():
    s = Schedule(rate=20, window=10, n_targets=4)
    assert (s.per_target, s.total, s.total_rate) == (200, 800, 80.0)
    # request i of target k is due at i/R + k/(R*N)
    for slot in (0, 1, 5, 799):
        i, k = divmod(slot, 4)
        assert s.target_of(slot) == k
        assert s.offset(slot) == pytest.approx(i / 20 + k / 80)
    assert s.offset(s.total - 1) < s.window


def test_schedule_due_counts_slots_whose_time_has_come():
    s = Schedule(rate=10, window=1, n_targets=1)
    assert [s.due(t) for t in (-0.01, 0.0, 0.05, 0.1, 0.35, 0.9, 5.0)] == [0, 1, 1, 2, 4, 10, 10]


def test_schedule_sends_at_least_one_request_and_rounds_down():
    assert Schedule(rate=0.1, window=1, n_targets=3).total == 3
    assert Schedule(rate=3, window=2.5, n_targets=1).per_target == 7
    assert Schedule(rate=0.3, window=10, n_targets=1).per_target == 3  # 0.3 x 10 is 2.9999...


def run_generator(schedule, stall=None):
    """generate() on a fake clock; stall = (slot, seconds) makes that send block the loop."""
    clock = FakeClock(start=0.0)
    sent, lags = [], []

    async def send(slot, intended):
        sent.append((slot, intended, clock()))
        if stall and slot == stall[0]:
            clock.now += stall[1]

    count = asyncio.run(generate(schedule, send, t0=0.0, clock=clock, sleep=clock.sleep, on_lag=lags.append))
    return count, sent, lags, clock


def test_generator_sends_every_slot_on_time_and_lasts_the_window():
    schedule = Schedule(rate=5, window=2, n_targets=2)
    count, sent, lags, clock = run_generator(schedule)
    assert count == schedule.total == 20
    assert [s for s, _, _ in sent] == list(range(20))
    assert all(actual == pytest.approx(intended) for _, intended, actual in sent)
    assert max(lags) == pytest.approx(0.0, abs=1e-9)
    assert clock() == pytest.approx(2.0)  # returns at the end of the window, not after the last send


def test_generator_catches_up_after_a_stall_without_moving_intended_times():
    schedule = Schedule(rate=10, window=2, n_targets=1)
    count, sent, lags, _ = run_generator(schedule, stall=(3, 0.55))  # slot 3 blocks 550 ms
    assert count == 20  # the rate holds: the overdue slots go out at once
    intended = [i for _, i, _ in sent]
    assert intended == pytest.approx([j / 10 for j in range(20)])
    burst = [actual for slot, _, actual in sent if 4 <= slot <= 8]
    assert burst == pytest.approx([0.85] * 5)  # slots due during the stall, sent together at its end
    assert lags[4] == pytest.approx(0.45) and lags[8] == pytest.approx(0.05)
    assert sent[9][2] == pytest.approx(0.9)  # back on schedule


def test_generator_sends_nothing_after_the_window():
    schedule = Schedule(rate=10, window=1, n_targets=1)
    count, sent, _, _ = run_generator(schedule, stall=(2, 5.0))
    assert count == 3 and all(actual <= 0.2 for _, _, actual in sent)


# --- latency, percentiles, samples ---------------------------------------------------------------

def test_latency_percentiles_from_the_hdr_histogram():
    latency = Latency()
    for ms in range(1, 101):  # 1..100 ms
        latency.record(ms / 1000)
    summary = latency.summary()
    assert summary["count"] == 100
    for key, expected in (("p50", 50), ("p90", 90), ("p99", 99)):
        assert summary[key] == pytest.approx(expected, rel=1e-3)  # 3 significant digits
    assert summary["max"] == 100.0 and summary["mean"] == pytest.approx(50.5)


def test_latency_without_replies_is_null_not_zero():
    assert latency_summary(Latency()) == dict(p50=None, p90=None, p99=None, max=None, mean=None, count=0)


def test_latency_merge_and_clamping():
    a, b = Latency(), Latency()
    a.record(0.001)
    b.record(0.150)
    b.record(-1.0)    # clamped to 0 (recorded as 1 us in the histogram)
    b.record(3600.0)  # beyond 60 s: the histogram keeps 60 s, the exact max keeps the truth
    merged = Latency().merge(a).merge(b).merge(Latency())
    assert merged.count == 4 and merged.summary()["max"] == 3600000.0
    assert merged.hist.get_max_value() <= fleet_probe.HIGHEST_US * 1.001


def test_downsample_keeps_the_distribution_in_at_most_the_limit():
    values = [float(v) for v in range(10000, 0, -1)]
    sample = downsample(values, 1000)
    assert len(sample) == 1000 and sample == sorted(sample)
    assert sample[0] <= 10 and sample[-1] >= 9990 and sample[499] == pytest.approx(5000, abs=10)
    assert downsample([3.14159, 1.0], 1000) == [1.0, 3.142]


# --- replies and counters ------------------------------------------------------------------------

@pytest.mark.parametrize("headers, data, error", [
    ({"Agent-Error": "bad-request"}, b'{"ok": false}', True),
    ({"agent-error": "x"}, b"", True),
    (None, b'{"ok": false, "error": "x"}', True),
    ({"Agent-Host": "dgx-1"}, b'{"ok": true}', False),
    (None, b"pong", False),
    (None, b"{not json", False),
])
def test_error_replies(headers, data, error):
    assert reply_is_error(headers, data) is error


def test_counts_are_null_when_nothing_was_sent():
    stats = TargetStats(dict(agent="a", host="h", via="legacy", verb="ping", subject="s", expected=True))
    assert counts([stats])["delivery"] is None and counts([stats])["error_rate"] is None
    assert counts([])["delivery"] is None


def test_counts_delivery_and_error_rate():
    stats = TargetStats({})
    stats.sent = 10
    for error in (False,) * 6 + (True,):
        stats.add_reply(0.001, error)
    stats.timeouts, stats.no_responders = 2, 1
    got = counts([stats])
    assert got["replies_ok"] == 6 and got["delivery"] == 0.6 and got["error_rate"] == 0.4
    assert ratio(1, 3) == 0.333333 and ratio(0, 0) is None


def test_targets_cover_agents_hosts_vias_and_verbs():
    targets = plan_targets([AGENT, CONTROL], HOSTS, ["ping", "status"])
    assert len(targets) == 2 * 2 * 2 * 2
    control_unified = [t for t in targets if t["agent"] == "graph-expert" and t["via"] == "unified"]
    assert control_unified and not any(t["expected"] for t in control_unified)
    assert {t["subject"] for t in targets if t["agent"] == "network-expert" and t["verb"] == "ping"} == {
        "agent.network-expert.cmd.ping", AGENT["unified"] + ".cmd.ping"}


# --- event pairing -------------------------------------------------------------------------------

def test_events_pair_by_message_id_within_the_window():
    ledger = EventLedger()
    ledger.add(0, "legacy", "id-1", 10.0)
    ledger.add(0, "unified", "id-1", 10.001)
    ledger.add(0, "legacy", "id-2", 10.5)            # unified copy dropped
    ledger.add(0, "legacy", "id-3", 11.999)
    ledger.add(0, "unified", "id-3", 12.01)          # late copy of an event of the window: still paired
    ledger.add(0, "legacy", "id-0", 9.0)             # before the window
    ledger.add(0, "unified", "id-4", 12.5)           # after the window
    ledger.add(1, "legacy", "id-1", 10.0)            # another agent's id space
    ledger.add(0, "legacy", None, 10.2)              # no id: cannot pair
    ledger.add(0, "legacy", "id-1", 10.3)            # a duplicate copy counts once
    events = ledger.summary(0, 10.0, 12.0)
    assert events == dict(legacy=4, unified=2, paired=2)
    assert dual_publish_success(events, True) == 0.5
    assert ledger.summary(1, 10.0, 12.0) == dict(legacy=1, unified=0, paired=0)


def test_events_are_attributed_to_the_instance_named_by_agent_host():
    ledger = EventLedger()
    ledger.add(0, "legacy", "a-1", 10.0, "dgx-1")
    ledger.add(0, "unified", "a-1", 10.001, "dgx-1")
    ledger.add(0, "legacy", "b-1", 10.1, "dgx-2")        # unified copy dropped on dgx-2
    ledger.add(0, "unified", "b-2", 10.2)                # first copy without the header...
    ledger.add(0, "legacy", "b-2", 10.3, "dgx-2")        # ...the other copy names the host
    ledger.add(0, "legacy", "old-1", 10.4)               # an agent that sends no Agent-Host
    ledger.add(0, "legacy", "a-0", 9.0, "dgx-1")         # before the window
    ledger.add(1, "legacy", "x-1", 10.0, "dgx-1")        # another agent
    assert ledger.summary(0, 10.0, 12.0, host="dgx-1") == dict(legacy=1, unified=1, paired=1)
    assert ledger.summary(0, 10.0, 12.0, host="dgx-2") == dict(legacy=2, unified=1, paired=1)
    assert ledger.summary(0, 10.0, 12.0, host=None) == dict(legacy=1, unified=0, paired=0)
    assert ledger.summary(0, 10.0, 12.0, host="dgx-9") == dict(legacy=0, unified=0, paired=0)
    # Without a host filter every event counts, attributed or not (the agent-level figures).
    assert ledger.summary(0, 10.0, 12.0) == dict(legacy=4, unified=2, paired=2)
    assert ledger.by_host(0, 10.0, 12.0) == {"dgx-1": dict(legacy=1, unified=1, paired=1),
                                             "dgx-2": dict(legacy=2, unified=1, paired=1),
                                             None: dict(legacy=1, unified=0, paired=0)}
    assert ledger.by_host(2, 10.0, 12.0) == {}


def test_dual_publish_and_share_are_null_without_data_or_flag():
    nothing = dict(legacy=0, unified=0, paired=0)
    assert dual_publish_success(nothing, True) is None
    assert dual_publish_success(dict(legacy=5, unified=5, paired=5), False) is None
    assert unified_share(nothing, 0, 0) is None
    assert unified_share(dict(legacy=10, unified=0, paired=0), 0, 20) == 0.0
    assert unified_share(dict(legacy=10, unified=10, paired=10), 20, 40) == 0.5


def test_publish_time_is_the_worst_instance_and_null_without_reports():
    instances = [dict(publish_time_ms=dict(count=3, p50=0.1, p99=0.4, max=1.0)),
                 dict(publish_time_ms=dict(count=5, p50=0.2, p99=0.3, max=0.5)),
                 dict(publish_time_ms=dict(count=0, p50=None, p99=None, max=None)),
                 dict(publish_time_ms=None)]
    assert publish_time(instances) == dict(p50=0.2, p99=0.4, max=1.0, count=8)
    assert publish_time(instances[2:]) == dict(p50=None, p99=None, max=None, count=0)


# --- the whole probe on a simulated connection ---------------------------------------------------

def test_probe_measures_each_instance_from_the_intended_send_time():
    result, nc, _ = probe(fleet(latency={"dgx-1": 0.002, "dgx-2": 0.150}), emit_events=50)
    by = {(t["host"], t["via"]): t for t in result["targets"]}
    assert len(by) == 4
    for (host, _), target in by.items():
        assert target["sent"] == target["scheduled"] == target["replies"] == 20
        assert target["delivery"] == 1.0 and target["error_rate"] == 0.0
        expected = 2.0 if host == "dgx-1" else 150.0
        assert target["latency_ms"]["p50"] == pytest.approx(expected, rel=2e-3)
        assert len(target["samples_ms"]) == 20
    # Each request is addressed to its instance and has its own reply subject.
    pings = [p for p in nc.published if p[1].endswith(".cmd.ping")]
    assert len(pings) == 80 and len({p[2] for p in pings}) == 80
    assert {p[3]["Agent-Target"] for p in pings} == set(HOSTS)
    agent = result["agents"][0]
    assert agent["delivery"] == 1.0 and agent["dual_publish_success"] == 1.0
    assert agent["events"] == dict(legacy=100, unified=100, paired=100, emitted=100)
    assert agent["unified_share"] == 0.5  # 100 + 40 unified of 280 agent messages
    assert agent["latency_ms"]["count"] == 80
    assert agent["publish_time_ms"] == dict(p50=0.04, p99=0.3, max=0.5, count=20)
    assert [i["answered"] for i in agent["instances"]] == [True, True]
    assert result["achieved_rate"] == pytest.approx(40.0) and result["requested_rate"] == 40.0
    # Two seconds of requests, after one 10 ms poll for the emits' confirmations.
    assert result["window"]["requests_seconds"] == pytest.approx(2.0)
    assert result["window"]["seconds"] == pytest.approx(2.01)
    assert result["connection"]["published"] == 80 + 2 + 2  # pings, emits, status requests
    assert result["totals"]["unmatched_replies"] == 0


class LateClock(FakeClock):
    """A fake clock whose sleeps wake up `late` seconds after they were due (the asyncio timer's
    error), and once, at the first sleep after `stall_at`, `stall` seconds late (a probe stalled)."""

    def __init__(self, late, stall_at=None, stall=0.0):
        super().__init__()
        self.late, self.stall_at, self.stall = late, stall_at, stall

    async def sleep(self, seconds):
        extra = self.late
        if self.stall_at is not None and self.now >= self.stall_at:
            extra, self.stall_at = self.stall, None
        await super().sleep(seconds + extra)


def probe_on(clock, respond, **overrides):
    nc = FakeNats(clock, respond)

    async def connect(_params):
        return nc

    return asyncio.run(run_probe(params(**overrides), connect=connect, clock=clock, sleep=clock.sleep)), nc


def test_a_request_its_timer_sent_a_millisecond_late_is_timed_from_when_it_left():
    result, _ = probe_on(LateClock(late=0.001), fleet(latency={"dgx-1": 0.002, "dgx-2": 0.005}), rate=5.0)
    lags = result["send_lag_ms"]
    assert lags["p50"] == pytest.approx(1.0, rel=1e-2)  # every request left 1 ms late...
    by = {t["host"]: t["latency_ms"] for t in result["targets"] if t["via"] == "legacy"}
    assert by["dgx-1"]["p50"] == pytest.approx(2.0, rel=2e-3)  # ...and the agents' 2 and 5 ms are what is measured
    assert by["dgx-2"]["max"] == pytest.approx(5.0, rel=2e-3)


def test_a_stalled_probe_still_counts_its_stall_beyond_the_timer_tolerance():
    # The probe stalls 300 ms once, 0.5 s into the window: the requests due meanwhile leave late,
    # and their latency counts from their intended time (less the 5 ms tolerance), as in wrk2.
    clock = LateClock(late=0.0, stall_at=1000.5, stall=0.3)
    result, _ = probe_on(clock, fleet(latency={"dgx-1": 0.002, "dgx-2": 0.002}), rate=10.0)
    latencies = [t["latency_ms"] for t in result["targets"]]
    worst = max(lat["max"] for lat in latencies)
    assert worst > 250  # a ~300 ms stall, not hidden as a 2 ms reply
    assert worst == pytest.approx(300 - 5 + 2, abs=30)
    assert min(lat["p50"] for lat in latencies) == pytest.approx(2.0, rel=2e-3)


def test_emits_are_confirmed_before_the_first_request_and_their_events_still_count():
    result, nc = probe_on(FakeClock(), fleet(), emit_events=50)
    emits = [p[0] for p in nc.published if p[1].endswith(".cmd.emit")]
    pings = [p[0] for p in nc.published if p[1].endswith(".cmd.ping")]
    # The fake fleet confirms an emit 2 ms after it and sends its events 1 ms after it.
    assert len(emits) == 2 and max(emits) + 0.002 <= min(pings)
    assert result["agents"][0]["events"] == dict(legacy=100, unified=100, paired=100, emitted=100)


def test_an_emit_never_confirmed_holds_the_requests_back_at_most_the_grace_period():
    respond = fleet()

    def no_emit_replies(subject, headers, payload):
        answers = respond(subject, headers, payload)
        if subject.endswith(".cmd.emit"):
            return [a for a in answers if a[1] != "REPLY"]
        return answers

    result, nc = probe_on(FakeClock(), no_emit_replies, emit_events=5, timeout=0.5)
    emits = [p[0] for p in nc.published if p[1].endswith(".cmd.emit")]
    pings = [p[0] for p in nc.published if p[1].endswith(".cmd.ping")]
    assert min(pings) - max(emits) == pytest.approx(0.5, abs=0.011)
    assert result["targets"][0]["sent"] == 20 and result["agents"][0]["events"]["emitted"] is None


def test_probe_counts_no_responders_timeouts_and_errors_apart():
    result, _, _ = probe(fleet(unified_on=False, error_hosts=("dgx-2",)), agents=[dict(AGENT, unified_enabled=False)])
    by = {(t["host"], t["via"]): t for t in result["targets"]}
    assert by["dgx-1", "unified"]["no_responders"] == 20 and by["dgx-1", "unified"]["expected"] is False
    assert by["dgx-1", "unified"]["latency_ms"]["p50"] is None and by["dgx-1", "unified"]["delivery"] == 0.0
    assert by["dgx-2", "legacy"]["errors"] == 20 and by["dgx-2", "legacy"]["error_rate"] == 1.0
    agent = result["agents"][0]  # expected targets only: the legacy ones
    assert agent["sent"] == 40 and agent["delivery"] == 0.5 and agent["error_rate"] == 0.5
    assert agent["unified_replies"] == 0 and agent["unified_share"] == 0.0
    assert agent["dual_publish_success"] is None  # flag off: not measured, not a pass


def test_probe_counts_unanswered_requests_as_timeouts_and_nulls_what_it_cannot_measure():
    result, _, clock = probe(fleet(silent_hosts=("dgx-1", "dgx-2")), timeout=1.5, emit_events=10)
    assert all(t["timeouts"] == t["sent"] == 20 and t["replies"] == 0 for t in result["targets"])
    agent = result["agents"][0]
    assert agent["delivery"] == 0.0 and agent["error_rate"] == 1.0
    assert agent["latency_ms"]["p50"] is None and agent["dual_publish_success"] is None
    assert agent["unified_share"] is None and agent["events"]["emitted"] is None
    assert agent["publish_time_ms"] == dict(p50=None, p99=None, max=None, count=0)
    assert [i["answered"] for i in agent["instances"]] == [False, False]
    # 1.5 s for the unconfirmed emits, window 2 s, 1.5 s grace for replies, 1.5 s for the status
    # replies, then it gives up.
    assert clock() - 1000.0 == pytest.approx(6.5, abs=0.05)


def test_probe_dual_publish_success_counts_dropped_unified_copies():
    result, _, _ = probe(fleet(drop_every=25), emit_events=100)
    agent = result["agents"][0]
    assert agent["events"]["legacy"] == 200 and agent["events"]["paired"] == 192
    assert agent["dual_publish_success"] == 0.96 and result["totals"]["dual_publish_success"] == 0.96


INSTANCE_REQUEST_KEYS = ("sent", "replies", "replies_ok", "errors", "timeouts", "no_responders")


def test_probe_reports_each_instance_on_its_own():
    # dgx-2 drops every 10th unified copy and answers in 150 ms; dgx-1 is healthy and fast.
    result, _, _ = probe(fleet(latency={"dgx-1": 0.002, "dgx-2": 0.150}, drop_every=10, drop_hosts=("dgx-2",)),
                         agents=[dict(AGENT), dict(CONTROL)], emit_events=50)
    agent, control = result["agents"]
    assert agent["events"] == dict(legacy=100, unified=95, paired=95, emitted=100)
    assert agent["dual_publish_success"] == 0.95  # the agent level hides which instance loses copies
    one, two = agent["instances"]
    assert (one["host"], two["host"]) == ("dgx-1", "dgx-2")
    assert one["events"] == dict(legacy=50, unified=50, paired=50) and one["dual_publish_success"] == 1.0
    assert two["events"] == dict(legacy=50, unified=45, paired=45) and two["dual_publish_success"] == 0.9
    assert one["unified_share"] == 0.5                     # (50 + 20) / (100 + 40)
    assert two["unified_share"] == round(65 / 135, 6)      # (45 + 20) / (95 + 40)
    # Request figures over the instance's expected targets (legacy and unified here).
    for instance, p50 in ((one, 2.0), (two, 150.0)):
        assert instance["sent"] == instance["replies"] == instance["replies_ok"] == 40
        assert instance["errors"] == instance["timeouts"] == instance["no_responders"] == 0
        assert instance["delivery"] == 1.0 and instance["error_rate"] == 0.0
        assert instance["latency_ms"]["count"] == 40
        assert instance["latency_ms"]["p50"] == pytest.approx(p50, rel=2e-3)
        assert len(instance["samples_ms"]) == 40 and instance["samples_ms"] == sorted(instance["samples_ms"])
    for key in INSTANCE_REQUEST_KEYS:
        assert one[key] + two[key] == agent[key], key
    assert one["latency_ms"]["count"] + two["latency_ms"]["count"] == agent["latency_ms"]["count"]
    # Flag off: the unified targets are not expected, dual publishing is not measured, and the
    # share still counts the (unanswered) unified subject as none of the instance's traffic.
    for instance in control["instances"]:
        assert instance["sent"] == 20 and instance["delivery"] == 1.0 and instance["no_responders"] == 0
        assert instance["events"] == dict(legacy=50, unified=0, paired=0)
        assert instance["dual_publish_success"] is None and instance["unified_share"] == 0.0


def test_instance_events_are_null_when_no_event_names_its_host():
    # Events without Agent-Host (an older agent), and a silent dgx-2: the request figures are still
    # the instance's own, the event figures are not attributable rather than zero.
    result, _, _ = probe(fleet(event_host_header=False, silent_hosts=("dgx-2",)), emit_events=20)
    agent = result["agents"][0]
    assert agent["events"]["legacy"] == 20 and agent["dual_publish_success"] == 1.0  # the agent level still counts
    one, two = agent["instances"]
    for instance in (one, two):
        assert instance["events"] is None
        assert instance["dual_publish_success"] is None and instance["unified_share"] is None
    assert one["sent"] == one["replies_ok"] == 40 and one["delivery"] == 1.0 and len(one["samples_ms"]) == 40
    assert two["sent"] == two["timeouts"] == 40 and two["replies"] == 0
    assert two["delivery"] == 0.0 and two["error_rate"] == 1.0
    assert two["latency_ms"] == dict(p50=None, p90=None, p99=None, max=None, mean=None, count=0)
    assert two["samples_ms"] == []


def test_instance_without_events_of_its_own_has_no_data_when_others_are_attributed():
    # dgx-2 answers nothing (so it emits nothing) while dgx-1's events name it: dgx-2 has zero
    # attributed events, so its dual publishing success is null (no data), never 0 or 1.
    result, _, _ = probe(fleet(silent_hosts=("dgx-2",)), emit_events=20)
    one, two = result["agents"][0]["instances"]
    assert one["events"] == dict(legacy=20, unified=20, paired=20) and one["dual_publish_success"] == 1.0
    assert two["events"] == dict(legacy=0, unified=0, paired=0)
    assert two["dual_publish_success"] is None and two["unified_share"] is None


def test_probe_late_reply_after_the_grace_is_a_timeout_not_a_latency():
    result, _, _ = probe(fleet(latency={"dgx-1": 5.0, "dgx-2": 0.001}), timeout=1.0)
    by = {(t["host"], t["via"]): t for t in result["targets"]}
    assert by["dgx-1", "legacy"]["timeouts"] == 20 and by["dgx-1", "legacy"]["replies"] == 0
    assert by["dgx-2", "legacy"]["timeouts"] == 0


# --- parameters ------------------------------------------------------------------------------------

@pytest.mark.parametrize("overrides, words", [
    (dict(rate=0), "rate must be a number in (0, 10,000] requests per second per target"),
    (dict(rate=-5.0), "rate must be a number in (0, 10,000]"),
    (dict(window=0), "window must be a number in (0, 3,600] seconds"),
    (dict(timeout=0), "timeout must be a number in (0, 300] seconds"),
    (dict(emit_events=20000), "emit_events must be an integer in [0, 10,000] events per instance"),
    (dict(agents=[]), "agents is empty"),
    (dict(agents=[dict(AGENT, unified="agents.*.x")]), "not a literal NATS subject"),
    (dict(agents=[dict(AGENT, unified=AGENT["legacy"])]), "must differ"),
    (dict(agents=[AGENT, AGENT]), "twice"),
    (dict(hosts=[]), "hosts is empty"),
    (dict(hosts=["dgx 1"]), "whitespace"),
    (dict(verbs=["cmd.ping"]), "one subject token"),
    (dict(rate=5000, window=3600), "over the limit of 1000000"),
])
def test_nonsense_parameters_are_named(overrides, words):
    assert words in validate(params(**overrides))
    with pytest.raises(ValueError, match=words.split()[0]):
        asyncio.run(run_probe(params(**overrides), connect=None))


def test_sane_parameters_pass():
    assert validate(params()) is None


# The range of each number (fleet_limits.LIMITS), as the message states it.
RANGES = dict(rate="(0, 10,000] requests per second per target", window="(0, 3,600] seconds",
              timeout="(0, 300] seconds", connect_timeout="(0, 60] seconds")


@pytest.mark.parametrize("name", sorted(RANGES))
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), 1e300, -1.0, True, "1"])
def test_probe_numbers_outside_their_range_are_refused_with_the_range(name, value):
    assert validate(params(**{name: value})) == "%s must be a number in %s, got %r" % (name, RANGES[name], value)


@pytest.mark.parametrize("name, value", [("rate", 10000), ("window", 3600), ("timeout", 300), ("connect_timeout", 60)])
def test_probe_numbers_at_the_top_of_their_range_pass(name, value):
    assert validate(params(**dict(dict(rate=0.01, window=1), **{name: value}))) is None


@pytest.mark.parametrize("emit", [-1, 10001, 2.5, True])
def test_emit_events_outside_its_range_is_refused(emit):
    assert validate(params(emit_events=emit)) == (
        "emit_events must be an integer in [0, 10,000] events per instance, got %r" % (emit,))


def test_probe_rate_window_overflow_is_refused():
    # rate x window overflowed to inf in the load check (int(inf) raised OverflowError).
    assert validate(params(rate=1e300, window=1e300)) == (
        "rate must be a number in (0, 10,000] requests per second per target, got 1e+300")
    assert validate(params(rate=10000, window=3600)).startswith("rate x window x targets + emit_events")


def test_emit_events_count_toward_the_request_cap():
    hosts = ["dgx-%d" % i for i in range(100)]
    # 1 request x 200 targets + 10,000 events x 1 agent x 100 hosts: the events alone fill the cap.
    problem = validate(params(rate=1.0, window=1.0, hosts=hosts, emit_events=10000))
    assert problem == ("rate x window x targets + emit_events x agents x hosts = 1 x 1 s x 200 + 10000 x 1 x 100 = "
                       "1000200 requests and events, over the limit of 1000000 per probe; lower rate, window or "
                       "emit_events")
    assert validate(params(rate=1.0, window=1.0, hosts=hosts, emit_events=9998)) is None


class CountedHost(str):
    """A host name that counts its equality comparisons, to tell a linear duplicate check from a
    quadratic one without timing anything."""
    comparisons = 0

    def __eq__(self, other):
        CountedHost.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_duplicate_host_check_is_linear(monkeypatch):
    n = 2000
    hosts = [CountedHost("dgx-%d" % i) for i in range(n)] + [CountedHost("dgx-7"), CountedHost("dgx-1999")]
    monkeypatch.setattr(CountedHost, "comparisons", 0)
    problem = validate(params(rate=0.5, window=1.0, hosts=hosts))
    assert problem == "hosts names a host twice: dgx-1999, dgx-7"
    # A list.count() per host compared every pair (millions); a Counter compares each duplicate once.
    assert CountedHost.comparisons <= 2 * len(hosts)


def test_duplicate_check_of_a_large_host_list_names_every_duplicate():
    hosts = ["h%d" % i for i in range(100000)] + ["h0", "h99999", "h0"]
    assert validate(params(rate=0.5, window=1.0, hosts=hosts)) == "hosts names a host twice: h0, h99999"


def test_load_cap_is_checked_before_the_host_list_is_walked():
    hosts = ["dgx 1"] * 600000  # also malformed: the cap answers first, from the list's length
    assert validate(params(rate=0.5, window=1.0, hosts=hosts)).startswith("rate x window x targets")


# --- the module --------------------------------------------------------------------------------------

def test_module_docs_match_the_argument_spec(check_docs):
    check_docs("nats_probe")


MODULE_ARGS = dict(url="nats://127.0.0.1:1", agents=[AGENT], hosts=HOSTS)


@pytest.mark.parametrize("overrides, words", [
    (dict(rate=0), "rate must be a number in (0, 10,000] requests per second per target, got 0.0"),
    (dict(window=-1), "window must be a number in (0, 3,600] seconds, got -1.0"),
    (dict(rate="inf"), "rate must be a number in (0, 10,000] requests per second per target, got inf"),
])
def test_module_fails_on_nonsense_before_connecting(run_module, overrides, words):
    result = run_module("nats_probe", dict(MODULE_ARGS, **overrides))
    assert result["failed"] and result["msg"] == words


def test_module_reports_a_missing_hdrhistogram(run_module, monkeypatch):
    monkeypatch.setattr(fleet_probe, "HAS_HDRH", False)
    result = run_module("nats_probe", MODULE_ARGS)
    assert result["failed"] and "hdrhistogram" in result["msg"]


def test_a_second_responder_is_counted_as_duplicates_of_its_target_and_strangers_as_unmatched():
    """Two answers to one request mean two responders (an impostor, or an agent without a queue
    group); a reply to no request of the probe is unmatched. Neither is silently dropped."""
    honest = fleet()

    def respond(subject, headers, payload):
        answers = honest(subject, headers, payload)
        if answers and subject == AGENT["unified"] + ".cmd.ping" and headers.get("Agent-Target") == "dgx-2":
            answers = answers + [(0.003, "REPLY", b'{"ok": true}', {})]          # a second answer
        if answers and subject == AGENT["legacy"] + ".cmd.ping" and headers.get("Agent-Target") == "dgx-1":
            answers = answers + [(0.001, "_INBOX.fake.999999", b'{"ok": true}', {})]  # to no request
        return answers

    result, _, _ = probe(respond)
    by = {(t["host"], t["via"]): t for t in result["targets"] if t["agent"] == AGENT["name"]}
    assert by["dgx-2", "unified"]["duplicates"] == by["dgx-2", "unified"]["sent"] == 20
    assert by["dgx-2", "unified"]["replies"] == 20 and by["dgx-2", "unified"]["delivery"] == 1.0
    assert sum(t["duplicates"] for k, t in by.items() if k != ("dgx-2", "unified")) == 0
    assert result["agents"][0]["duplicates"] == 20
    assert result["totals"]["duplicates"] == 20 and result["totals"]["unmatched_replies"] == 20


def test_the_gap_between_an_events_two_copies_is_measured_from_the_subscribers_side():
    """An agent that reports no publish time of its own: the dual publish is timed as any subscriber
    sees it, from the first copy to the other."""
    ledger = EventLedger()
    ledger.add(0, "legacy", "a", 10.000)
    ledger.add(0, "unified", "a", 10.004)
    ledger.add(0, "unified", "b", 11.000)    # unified first this time
    ledger.add(0, "legacy", "b", 11.010)
    ledger.add(0, "legacy", "b", 11.500)     # a duplicate copy changes nothing
    ledger.add(0, "legacy", "c", 12.000)     # never paired: no gap
    ledger.add(0, "legacy", "d", 99.000)     # outside the window
    ledger.add(0, "unified", "d", 99.001)
    assert sorted(round(g, 6) for g in ledger.copy_gaps(0, 9.0, 20.0)) == [0.004, 0.01]


def test_agents_report_the_copy_gap_beside_their_own_publish_time():
    result, _, _ = probe(fleet(), emit_events=50)
    gap = result["agents"][0]["copy_gap_ms"]
    # The fake delivers both copies of an event 1 ms after the emit: the gap is 0 (HDR floor 1 us).
    assert gap["count"] == result["agents"][0]["events"]["paired"] == 100 and gap["p99"] < 0.01
