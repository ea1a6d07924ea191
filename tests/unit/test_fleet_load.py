"""plugins/module_utils/fleet_load.py: the load scenarios of the readiness run (issue 10). Scenarios
as validated data, compression for the sandbox, the open model holding its rate by dropping (latency
from the intended time), the closed model, ramps, thresholds over sliding windows and aborts, the
record the performance gate reads, and the comparison with a previous run.

Most runs are on virtual time (exact); a few drive a fake server with real asyncio sleeps of a few
ms over well under a second each."""

from __future__ import annotations

import asyncio
import copy
import heapq
import itertools
import json
import math

import pytest
import yaml
from ansible_collections.fleetwave.rollout.plugins.module_utils import fleet_load as fl
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_probe import Latency, Schedule
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_gates

from tests.unit.conftest import REPO

pytestmark = pytest.mark.unit

CRITERIA = str(REPO / "criteria/default.yml")
VAR = "readiness_load_scenarios"
CONTRACT = REPO / "inventory/production/group_vars/all/00-contract.yml"


def production_scenarios():
    """The contract's six scenarios at production durations, as the production inventory holds them."""
    return yaml.safe_load(CONTRACT.read_text())[VAR]


# --- virtual time for many tasks ---------------------------------------------------------------

class VirtualTime:
    """sleep() parks the caller until the clock reaches its wake-up; the clock moves to the earliest
    wake-up only when no task can run any more. freeze(at, seconds) stalls the whole process once
    (every wake-up after `at` comes `seconds` late), as a SIGSTOP of the load generator would."""

    def __init__(self, start=0.0):
        self.start = self.now = start
        self._heap = []
        self._order = itertools.count()
        self._freeze = None

    def __call__(self):
        return self.now

    def wall(self):
        return 1_800_000_000.0 + self.now - self.start

    def freeze(self, at, seconds):
        self._freeze = (self.start + at, seconds)

    async def sleep(self, seconds):
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future = asyncio.get_running_loop().create_future()
        # a nanosecond clock, as time.monotonic: sums of 10 ms steps do not drift off the grid, and a
        # sleep shorter than a nanosecond still lets time pass
        wake = max(round(self.now + seconds, 9), round(self.now + 1e-9, 9))
        heapq.heappush(self._heap, (wake, next(self._order), future))
        await future

    async def _idle(self):
        loop = asyncio.get_running_loop()
        for _ in range(200):
            await asyncio.sleep(0)
            if not getattr(loop, "_ready", True):  # nothing else can run
                return

    def run(self, coro):
        async def drive():
            task = asyncio.ensure_future(coro)
            while True:
                await self._idle()
                if task.done():
                    return task.result()
                while self._heap and self._heap[0][2].done():  # cancelled sleeps
                    heapq.heappop(self._heap)
                assert self._heap, "every task waits and none sleeps"
                self.now = max(self.now, self._heap[0][0])
                if self._freeze and self.now >= self._freeze[0]:
                    self.now += self._freeze[1]
                    self._freeze = None
                while self._heap and self._heap[0][0] <= self.now:
                    future = heapq.heappop(self._heap)[2]
                    if not future.done():
                        future.set_result(None)

        return asyncio.run(drive())

    def scenario(self, scenario, send, name="s", grace=1.0):
        return self.run(fl.run_scenario(scenario, send, clock=self, sleep=self.sleep, name=name, grace=grace,
                                        wall=self.wall))


class Server:
    """A fake agent on virtual (or real) time: `latency(i, now)` seconds per request, or a FIFO queue
    of `workers` serving `service` seconds each; `error(i, now)` True answers with an error reply."""

    def __init__(self, clock, sleep, latency=None, workers=None, service=0.0, error=None, raises=None):
        self.clock, self.sleep = clock, sleep
        self.latency, self.workers, self.service = latency, workers, service
        self.error, self.raises = error, raises
        self.free_at = [0.0] * (workers or 0)
        self.calls = []   # (index, time of the call)
        self.active = 0
        self.peak = 0

    async def __call__(self, index):
        now = self.clock()
        self.calls.append((index, now))
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            if self.workers:
                worker = min(range(self.workers), key=self.free_at.__getitem__)
                done = max(now, self.free_at[worker]) + self.service
                self.free_at[worker] = done
                await self.sleep(done - now)
            else:
                await self.sleep(self.latency(index, now) if self.latency else self.service)
            if self.raises:
                raise self.raises
            return not (self.error and self.error(index, now))
        finally:
            self.active -= 1


def vt_server(vt, **kwargs):
    return Server(vt, vt.sleep, **kwargs)


def open_rate(rate, duration, max_vus=1000, **extra):
    return dict(executor="constant-arrival-rate", rate=rate, duration=duration, max_vus=max_vus, **extra)


def threshold(name, metric, comparator, limit, **extra):
    return dict(name=name, metric=metric, comparator=comparator, threshold=limit, **extra)


def totals_match_series(record):
    for field, key in (("sent", "requests"), ("answered", "answered"), ("errors", "errors"), ("dropped", "dropped")):
        assert sum(point[field] for point in record["series"]) == record[key], field


# ================================================================================ scenarios as data

def test_the_production_inventory_holds_the_contracts_six_valid_with_endurance_and_soak_in_hours():
    scenarios = production_scenarios()
    assert tuple(scenarios) == fleet_gates.LOAD_SCENARIOS
    assert fl.validate_scenarios(scenarios) == []
    assert (scenarios["10-concurrent"]["executor"], scenarios["10-concurrent"]["vus"]) == ("constant-vus", 10)
    assert (scenarios["50-concurrent"]["executor"], scenarios["50-concurrent"]["vus"]) == ("constant-vus", 50)
    assert scenarios["ramp-up"]["executor"] == "ramping-vus"
    assert scenarios["spike"]["executor"] == "ramping-arrival-rate"
    for name in ("endurance", "soak"):
        assert scenarios[name]["executor"] == "constant-arrival-rate" and scenarios[name]["duration"] >= 3600


def test_compress_shortens_durations_windows_and_intervals_but_keeps_the_load():
    production = production_scenarios()
    before = copy.deepcopy(production)
    short = fl.compress(production, 60)
    assert production == before
    assert fl.validate_scenarios(short) == []
    soak, spike = short["soak"], short["spike"]
    assert soak["duration"] == production["soak"]["duration"] / 60 and soak["rate"] == production["soak"]["rate"]
    assert soak["compressed"] == dict(factor=60, production_seconds=production["soak"]["duration"])
    assert [s["duration"] for s in spike["stages"]] == [s["duration"] / 60 for s in production["spike"]["stages"]]
    assert [s["target"] for s in spike["stages"]] == [s["target"] for s in production["spike"]["stages"]]
    assert spike["thresholds"][2]["window_seconds"] == production["spike"]["thresholds"][2]["window_seconds"] / 60
    # the time series keeps its number of points
    for name in short:
        assert round(fl.scenario_seconds(short[name]) / fl.interval_of(short[name])) == round(
            fl.scenario_seconds(production[name]) / fl.interval_of(production[name]))
    capped = fl.compress(production, 60, max_seconds=2)
    assert all(fl.scenario_seconds(s) <= 2 + 1e-9 for s in capped.values())
    assert capped["soak"]["compressed"]["factor"] == production["soak"]["duration"] / 2
    assert capped["10-concurrent"]["duration"] == 600 / 300  # 10 min / 60 = 10 s, then to 2 s
    again = fl.compress(short, 2)
    assert again["soak"]["compressed"] == dict(factor=120, production_seconds=production["soak"]["duration"])


def test_compress_refuses_a_factor_or_scenarios_out_of_range():
    with pytest.raises(ValueError, match=r"factor: must be a number in \[1, 1,000,000\] times shorter, got 0.5"):
        fl.compress(production_scenarios(), 0.5)
    bad = production_scenarios()
    bad["soak"]["rate"] = float("inf")
    with pytest.raises(ValueError, match=r"soak\.rate: must be a number in \(0, 10,000\]"):
        fl.compress(bad, 10)


def scenarios_with(name, change=None, remove=(), **top):
    data = production_scenarios()
    data[name].update(change or {})
    for key in remove:
        del data[name][key]
    data.update(top)
    return data


@pytest.mark.parametrize("data, expected", [
    (scenarios_with("soak", dict(duration=float("inf"))),
     VAR + ".soak.duration: must be a number in (0, 604,800] seconds, got inf"),
    (scenarios_with("soak", dict(duration=float("nan"))),
     VAR + ".soak.duration: must be a number in (0, 604,800] seconds, got nan"),
    (scenarios_with("soak", dict(duration=8 * 86400)),
     VAR + ".soak.duration: must be a number in (0, 604,800] seconds, got 691200"),
    (scenarios_with("10-concurrent", dict(vus=True)),
     VAR + ".10-concurrent.vus: must be an integer in [1, 1,000] VUs, got True"),
    (scenarios_with("10-concurrent", dict(vus=10.0)),
     VAR + ".10-concurrent.vus: must be an integer in [1, 1,000] VUs, got 10.0"),
    (scenarios_with("50-concurrent", dict(vus=10 ** 6)),
     VAR + ".50-concurrent.vus: must be an integer in [1, 1,000] VUs, got 1000000"),
    (scenarios_with("endurance", dict(rate="100")),
     VAR + ".endurance.rate: must be a number in (0, 10,000] requests per second, got '100'"),
    (scenarios_with("spike", dict(maxvus=5)),
     VAR + ".spike: unknown key maxvus (allowed: executor, stages, max_vus, start_rate, recovery, "
           "thresholds, interval_seconds, compressed, payload_bytes, connections, connect, slow_consumer)"),
    (scenarios_with("spike", remove=("max_vus",)),
     VAR + ".spike.max_vus: missing (an integer in [1, 10,000] requests in flight)"),
    (scenarios_with("ramp-up", remove=("stages",)),
     VAR + ".ramp-up.stages: missing (a list of 1 to 100 stages {duration, target})"),
    (scenarios_with("spike", dict(executor="per-vu-iterations")),
     VAR + ".spike.executor: must be one of constant-vus, ramping-vus, constant-arrival-rate, "
           "ramping-arrival-rate, rate-search, got 'per-vu-iterations'"),
    (scenarios_with("spike", dict(stages=[dict(duration=10, target=1e9)])),
     VAR + ".spike.stages[0].target: must be a number in [0, 10,000] requests per second, got 1000000000.0"),
    (scenarios_with("ramp-up", dict(stages=[dict(duration=10, target=2.5)])),
     VAR + ".ramp-up.stages[0].target: must be an integer in [0, 1,000] VUs, got 2.5"),
    (scenarios_with("spike", dict(stages=[dict(duration=-1, target=5)])),
     VAR + ".spike.stages[0].duration: must be a number in [0, 604,800] seconds, got -1"),
    (scenarios_with("spike", dict(stages=[dict(duration=10, target=5, ramp="linear")])),
     VAR + ".spike.stages[0]: unknown key ramp (allowed: duration, target)"),
    (scenarios_with("spike", dict(stages=[])),
     VAR + ".spike.stages: must be a list of 1 to 100 stages {duration, target}, got 0"),
    (scenarios_with("spike", dict(stages=[dict(duration=1, target=1)] * 101)),
     VAR + ".spike.stages: must be a list of 1 to 100 stages {duration, target}, got 101"),
    (scenarios_with("spike", dict(stages=[dict(duration=400_000, target=5)] * 2)),
     VAR + ".spike.stages: the stages' total duration must be a number in (0, 604,800] seconds, got 800000"),
    (scenarios_with("spike", dict(start_rate=0, stages=[dict(duration=10, target=0)])),
     VAR + ".spike.stages: every level is 0, nothing would be sent"),
    (scenarios_with("soak", dict(interval_seconds=10)),
     VAR + ".soak.interval_seconds: 10 s gives 4320 intervals over 43200 s, at most 3600"),
    (scenarios_with("soak", dict(thresholds=[threshold("p99", "latency_p99", "<", 200)])),
     VAR + ".soak.thresholds[0].metric: must be one of error_rate_pct, dropped, dropped_pct, latency_p50_ms, "
           "latency_p90_ms, latency_p95_ms, latency_p99_ms, latency_max_ms, throughput_rps, got 'latency_p99'"),
    (scenarios_with("soak", dict(thresholds=[threshold("p99", "latency_p99_ms", "==", 200)])),
     VAR + ".soak.thresholds[0].comparator: must be one of < <= > >= (the PASS condition), got '=='"),
    (scenarios_with("soak", dict(thresholds=[threshold("e", "error_rate_pct", "<", 150)])),
     VAR + ".soak.thresholds[0].threshold: must be a number in [0, 100] percent, got 150"),
    (scenarios_with("soak", dict(thresholds=[threshold("p99", "latency_p99_ms", "<", float("inf"))])),
     VAR + ".soak.thresholds[0].threshold: must be a number in [0, 60,000] ms, got inf"),
    (scenarios_with("soak", dict(thresholds=[threshold("e", "error_rate_pct", "<", 1, abort="yes")])),
     VAR + ".soak.thresholds[0].abort: must be true or false, got 'yes'"),
    (scenarios_with("soak", dict(thresholds=[threshold("e", "error_rate_pct", "<", 1, window_seconds=50_000)])),
     VAR + ".soak.thresholds[0].window_seconds: 50000 s is longer than the scenario (43200 s)"),
    (scenarios_with("soak", dict(thresholds=[threshold("e", "error_rate_pct", "<", 1, window_seconds=10)])),
     VAR + ".soak.thresholds[0].window_seconds: 10 s is shorter than the scenario's interval_seconds (72 s)"),
    (scenarios_with("soak", dict(interval_seconds=12,
                                 thresholds=[threshold("e", "error_rate_pct", "<", 1, window_seconds=12_000)])),
     VAR + ".soak.thresholds[0].window_seconds: 12000 s is 1000 intervals of 12 s, at most 600"),
    (scenarios_with("soak", dict(thresholds=[threshold("e", "error_rate_pct", "<", 1, min_samples=0)])),
     VAR + ".soak.thresholds[0].min_samples: must be an integer in [1, 1,000,000] samples, got 0"),
    (scenarios_with("soak", dict(thresholds=[threshold("e", "error_rate_pct", "<", 1)] * 2)),
     VAR + ".soak.thresholds[1].name: e names another threshold of the scenario too"),
    (scenarios_with("soak", dict(thresholds=[dict(name="e", metric="dropped", comparator="<=")])),
     VAR + ".soak.thresholds[0].threshold: missing ({name, metric, comparator, threshold, window_seconds, abort, "
           "min_samples})"),
    (scenarios_with("soak", dict(thresholds="p99 < 200")),
     VAR + ".soak.thresholds: must be a list of at most 20 thresholds, got 'p99 < 200'"),
    (dict(production_scenarios(), **{"../etc": dict(executor="constant-vus", vus=1, duration=1)}),
     VAR + '.../etc: a scenario name is 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit'),
    (dict(("s%d" % n, dict(executor="constant-vus", vus=1, duration=1)) for n in range(21)),
     VAR + ": 21 scenarios, at most 20"),
    (["10-concurrent"], VAR + ": must be a mapping of 1 to 20 scenario names to scenarios, got ['10-concurrent']"),
], ids=lambda value: None if not isinstance(value, str) else value.split(": ")[0][-40:])
def test_validation_names_the_key_path_and_the_allowed_range(data, expected):
    assert fl.validate_scenarios(data) == [expected]


def test_validation_reports_every_problem_at_once_and_run_scenario_refuses_them():
    data = scenarios_with("spike", dict(max_vus=0, start_rate=-1, extra=1))
    problems = fl.validate_scenarios(data)
    assert problems == [
        VAR + ".spike: unknown key extra (allowed: executor, stages, max_vus, start_rate, recovery, "
              "thresholds, interval_seconds, compressed, payload_bytes, connections, connect, slow_consumer)",
        VAR + ".spike.max_vus: must be an integer in [1, 10,000] requests in flight, got 0",
        VAR + ".spike.start_rate: must be a number in [0, 10,000] requests per second, got -1"]
    vt = VirtualTime()
    with pytest.raises(ValueError, match=r"^spike: unknown key extra .*; spike\.max_vus: must be an integer"):
        vt.run(fl.run_scenario(data["spike"], vt_server(vt), clock=vt, sleep=vt.sleep, name="spike"))


# ================================================================================ schedules

def test_a_ramp_schedule_sends_request_i_when_the_rate_integral_reaches_i():
    # 0 -> 10/s over 2 s: N(t) = 2.5 t^2, so request i is due at sqrt(i / 2.5); then 10/s for 1 s
    schedule = fl.ArrivalSchedule(fl.Profile(0, [dict(duration=2, target=10), dict(duration=1, target=10)]))
    assert schedule.total == 20
    for slot in range(10):
        assert schedule.offset(slot) == pytest.approx(math.sqrt(slot / 2.5), abs=1e-12)
    for slot in range(10, 20):
        assert schedule.offset(slot) == pytest.approx(2 + (slot - 10) / 10, abs=1e-12)
    for slot in range(20):  # due() agrees with offset(), which fleet_probe.generate relies on
        assert schedule.due(schedule.offset(slot)) > slot and schedule.due(schedule.offset(slot) - 1e-6) <= slot
    flat = fl.ArrivalSchedule(fl.Profile(25, [dict(duration=2, target=25)]))
    constant = Schedule(25, 2, 1)
    assert flat.total == constant.total and all(
        flat.offset(s) == pytest.approx(constant.offset(s)) for s in range(constant.total))


def test_a_profile_jumps_on_a_zero_length_stage_and_finds_when_a_level_is_reached():
    profile = fl.Profile(0, [dict(duration=1, target=4), dict(duration=0, target=1), dict(duration=1, target=1)])
    assert [profile.level(t) for t in (0, 0.5, 0.999)] == pytest.approx([0, 2, 3.996])
    assert profile.level(1.0) == 1 and profile.level(1.5) == 1
    assert profile.first_time_at_least(3, 0) == pytest.approx(0.75)
    assert profile.first_time_at_least(1, 1.2) == 1.2
    assert profile.first_time_at_least(2, 1.2) is None


def test_a_sliding_window_merges_exactly_the_last_k_intervals():
    intervals = []
    for index in range(40):
        interval = fl._Interval(index, index * 0.5, 0.5)
        interval.tally.sent, interval.tally.errors, interval.tally.dropped = index, index % 3, index % 2
        for sample in range(index % 5):
            interval.tally.latency.record((index * 7 + sample * 13) % 50 / 1000.0)
        intervals.append(interval)
    for k in (1, 3, 7):
        window = fl._Window(k)
        for index, interval in enumerate(intervals):
            window.push(interval)
            assert window.full() is (index + 1 >= k)
            if not window.full():
                continue
            tally, seconds, start, end = window.merged()
            naive = fl._Tally()
            for item in intervals[index + 1 - k:index + 1]:
                naive.add(item.tally)
            assert (tally.sent, tally.errors, tally.dropped) == (naive.sent, naive.errors, naive.dropped)
            assert tally.latency.count == naive.latency.count and tally.latency.max_s == naive.latency.max_s
            assert tally.latency.percentiles_ms((50, 99)) == naive.latency.percentiles_ms((50, 99))
            assert (seconds, start, end) == (k * 0.5, (index + 1 - k) * 0.5, (index + 1) * 0.5)


# ================================================================================ the open model

def test_the_open_model_holds_its_rate_against_a_slow_server_by_dropping_never_by_slowing_down():
    # 100/s asked of a server that serves 2 at a time, 50 ms each (40/s), with at most 4 in flight
    vt = VirtualTime()
    server = vt_server(vt, workers=2, service=0.05)
    record = vt.scenario(open_rate(100, 1.0, max_vus=4, interval_seconds=0.1), server, name="endurance")
    assert record["scheduled"] == 100 and record["requested_rate"] == 100
    assert record["requests"] + record["dropped"] == 100 and record["dropped"] > 40
    assert record["dropped_reasons"] == dict(max_vus=record["dropped"], late=0)
    assert record["achieved_rate"] < 60 and record["rate_reached"] is False and record["rate_ratio"] < 0.6
    assert record["max_in_flight"] == 4 and server.peak == 4
    assert record["errors"] == 0 and record["answered"] == record["requests"]
    # every request sent went out at its intended time: 10 ms apart on the grid
    assert all(abs((at - vt.start) * 100 - round((at - vt.start) * 100)) < 1e-6 for _, at in server.calls)
    assert record["summary"].startswith("endurance: open model (constant-arrival-rate, max 4 in flight); "
                                        "DID NOT REACH the requested rate: achieved %s/s of 100/s"
                                        % fl._num(record["achieved_rate"]))
    assert "%d dropped (%d at the 4 in flight cap" % (record["dropped"], record["dropped"]) in record["summary"]
    totals_match_series(record)


def test_latency_is_measured_from_the_intended_send_time_so_a_stall_shows_as_latency():
    # The generator is frozen for 200 ms at t=0.3 s: the requests due meanwhile go out late, all at
    # once, with their intended times; nothing is dropped and the stall is in their latency.
    vt = VirtualTime()
    vt.freeze(0.3, 0.2)
    server = vt_server(vt, service=0.002)
    record = vt.scenario(open_rate(100, 1.0, interval_seconds=0.1), server)
    assert record["requests"] == 100 and record["dropped"] == 0 and record["rate_reached"] is True
    assert record["latency_ms"]["max"] >= 200 - 1e-6  # the request due just after 0.3 s waited out the stall
    assert record["latency_ms"]["p50"] == pytest.approx(2, abs=0.01)
    assert record["send_lag_ms"]["max"] >= 190
    burst = [at for _, at in server.calls if abs(at - vt.start - 0.5) < 1e-9]
    assert len(burst) >= 19  # the overdue ones went out together when the stall ended


def test_requests_due_but_still_unsent_when_the_window_ends_are_dropped_as_late():
    # frozen from 0.8 s to 1.3 s: the requests due from 0.8 s on never went out
    vt = VirtualTime()
    vt.freeze(0.8, 0.5)
    record = vt.scenario(open_rate(100, 1.0, interval_seconds=0.1), vt_server(vt, service=0.002))
    assert record["requests"] == 80 and record["dropped"] == 20
    assert record["dropped_reasons"] == dict(max_vus=0, late=20) and record["rate_reached"] is False
    assert record["achieved_rate"] == 80 and record["requested_rate"] == 100
    assert "20 dropped (0 at the 1,000 in flight cap, 20 due but unsent when the window ended)" in record["summary"]
    totals_match_series(record)


def test_latency_from_the_intended_time_grows_while_a_queue_builds():
    # One worker, 20 ms each, asked for 100/s: request i waits for the i before it
    vt = VirtualTime()
    record = vt.scenario(open_rate(100, 0.5, interval_seconds=0.1), vt_server(vt, workers=1, service=0.02))
    assert record["requests"] == 50 and record["dropped"] == 0
    assert record["latency_ms"]["max"] == pytest.approx(20 + 10 * 49)  # (i+1) x 20 ms - i x 10 ms, i = 49
    p50s = [point["p50_ms"] for point in record["series"] if point["p50_ms"] is not None]
    assert p50s == sorted(p50s) and p50s[-1] > 5 * p50s[0]


def test_a_ramping_arrival_rate_sends_on_its_ramp():
    vt = VirtualTime()
    server = vt_server(vt, service=0.001)
    scenario = dict(executor="ramping-arrival-rate", start_rate=0, max_vus=10, interval_seconds=0.25,
                    stages=[dict(duration=1, target=100), dict(duration=0.5, target=100)])
    record = vt.scenario(scenario, server, name="spike")
    schedule = fl.ArrivalSchedule(fl.Profile(0, scenario["stages"]))
    assert record["scheduled"] == schedule.total == 100 and record["requests"] == 100
    assert record["requested_rate"] == pytest.approx(100 / 1.5, abs=1e-3)
    assert [at - vt.start for _, at in server.calls] == pytest.approx([schedule.offset(i) for i in range(100)])
    sent = [point["sent"] for point in record["series"]]
    assert sent[:4] == sorted(sent[:4]) and sent[0] < sent[3]  # more per interval as the rate climbs
    assert sent[4] == sent[5] == 25  # 100/s for 0.25 s
    totals_match_series(record)


def test_requests_still_in_flight_after_the_grace_period_are_interrupted_errors():
    vt = VirtualTime()
    record = vt.scenario(open_rate(20, 0.5, interval_seconds=0.1), vt_server(vt, service=10.0), grace=0.2)
    assert record["requests"] == 10 and record["interrupted"] == 10 and record["errors"] == 10
    assert record["error_rate_pct"] == 100 and record["answered"] == 0 and record["latency_ms"]["count"] == 0
    totals_match_series(record)


def test_failures_are_counted_per_exception_class_and_timeouts_apart():
    vt = VirtualTime()
    record = vt.scenario(open_rate(20, 0.5, interval_seconds=0.1),
                         vt_server(vt, service=0.01, raises=asyncio.TimeoutError()))
    assert record["errors"] == record["timeouts"] == 10 and record["failures"] == {"TimeoutError": 10}
    record = vt.scenario(open_rate(20, 0.5, interval_seconds=0.1),
                         vt_server(vt, service=0.01, error=lambda i, now: i % 2 == 0))
    assert record["error_replies"] == 5 and record["errors"] == 5 and record["answered"] == 5
    assert record["error_rate_pct"] == 50 and record["latency_ms"]["count"] == 10  # error replies have a latency


# ================================================================================ the closed model

def test_the_closed_model_loops_each_vu_and_has_no_requested_rate():
    vt = VirtualTime()
    server = vt_server(vt, service=0.01)
    record = vt.scenario(dict(executor="constant-vus", vus=4, duration=1.0, interval_seconds=0.1), server,
                         name="10-concurrent")
    assert record["model"] == "closed" and record["requests"] == 400  # 4 VUs x 100 requests of 10 ms
    assert record["achieved_rate"] == 400 and record["requested_rate"] is None and record["rate_reached"] is None
    assert record["dropped"] == 0 and record["max_in_flight"] == server.peak == 4
    assert record["latency_ms"]["p50"] == pytest.approx(10, abs=0.01) and record["latency_from"] == "send"
    assert record["concurrency"] == dict(requested_mean=4.0, achieved_mean=4.0)
    assert all(point["vus"] == 4 and point["sent"] == 40 for point in record["series"])
    assert "400 requests at 400/s (no requested rate: the VUs set the concurrency)" in record["summary"]
    totals_match_series(record)


def test_ramping_vus_start_as_the_level_reaches_them_and_stop_as_it_falls():
    vt = VirtualTime()
    stages = [dict(duration=1, target=4), dict(duration=1, target=4), dict(duration=0.5, target=0)]
    profile = fl.Profile(0, stages)
    over = []

    async def send(index):
        started = vt() - vt.start
        server.active += 1
        if started < 2 and server.active > math.floor(profile.level(started) + 1e-9):
            over.append((started, server.active))
        server.calls.append((index, started))
        await vt.sleep(0.01)
        server.active -= 1

    server = vt_server(vt)
    record = vt.scenario(dict(executor="ramping-vus", stages=stages, interval_seconds=0.25), send, name="ramp-up")
    assert over == []  # never more VUs than the ramp allows
    assert min(at for _, at in server.calls) == pytest.approx(0.25)  # VU 1 starts when the level reaches 1
    assert max(at for _, at in server.calls) < 2.375  # the last VU stops when the level falls below 1
    in_hold = [at for _, at in server.calls if 1 <= at < 2]
    assert 396 <= len(in_hold) <= 400  # 4 VUs x 100 requests of 10 ms
    assert [point["vus"] for point in record["series"]] == [1, 2, 3, 4, 4, 4, 4, 4, 2, 0]  # at each interval end
    assert record["max_vus"] == 4 and record["concurrency"]["requested_mean"] == pytest.approx(
        profile.integral(2.5) / 2.5, abs=1e-3)
    totals_match_series(record)


# ================================================================================ thresholds

BLIP = dict(executor="constant-arrival-rate", rate=500, duration=1.0, max_vus=100, interval_seconds=0.05)


def blip_server(vt):
    # 2 ms, except 4 requests in a row at 100 ms (0.8 % of 500: the whole run's p99 does not see them)
    return vt_server(vt, latency=lambda index, now: 0.1 if 250 <= index < 254 else 0.002)


def test_a_sliding_window_threshold_fails_where_the_whole_run_passes():
    vt = VirtualTime()
    scenario = dict(BLIP, thresholds=[
        threshold("p99 windowed", "latency_p99_ms", "<", 50, window_seconds=0.1),
        threshold("p99 whole run", "latency_p99_ms", "<", 50)])
    record = vt.scenario(scenario, blip_server(vt))
    windowed, whole = record["thresholds"]
    assert whole["passed"] is True and whole["measured"] == whole["whole_run"] < 3
    assert windowed["whole_run"] == whole["whole_run"]
    assert windowed["passed"] is False and windowed["measured"] == pytest.approx(100, rel=0.01)
    windows = windowed["windows"]
    assert windows["seconds"] == pytest.approx(0.1) and windows["judged"] == 19 and windows["skipped"] == 0
    assert windows["breached"] == 2  # the two windows holding t=0.6 s, when the slow replies came back
    # the first slow reply came at 0.6 s, the first instant of the interval 0.6-0.65
    assert windows["first_breach"]["start_s"] == pytest.approx(0.55) and windows["first_breach"]["end_s"] == \
        pytest.approx(0.65)
    assert windowed["judged_by"] == "window 0.55-0.65 s" and record["thresholds_passed"] is False
    assert record["aborted"] is False
    assert "failed: p99 windowed (window 0.55-0.65 s: latency_p99_ms 100" in record["summary"]


def test_a_window_with_fewer_samples_than_min_samples_is_not_judged():
    vt = VirtualTime()
    scenario = dict(BLIP, thresholds=[threshold("p99", "latency_p99_ms", "<", 50, window_seconds=0.1,
                                                min_samples=60)])
    record = vt.scenario(scenario, blip_server(vt))
    assert record["thresholds"][0]["windows"]["judged"] == 0 and record["thresholds"][0]["windows"]["skipped"] == 19
    assert record["thresholds"][0]["passed"] is True


@pytest.mark.parametrize("metric, comparator, limit, holds", [
    ("error_rate_pct", "<", 1, True), ("dropped", "<=", 0, True), ("dropped_pct", "<", 1, True),
    ("throughput_rps", ">=", 450, True), ("throughput_rps", ">=", 550, False), ("latency_p50_ms", "<", 3, True),
    ("latency_p90_ms", "<", 3, True), ("latency_p95_ms", "<", 1, False), ("latency_max_ms", "<", 50, False),
])
def test_every_metric_is_judged_with_its_comparator(metric, comparator, limit, holds):
    vt = VirtualTime()
    record = vt.scenario(dict(BLIP, thresholds=[threshold("t", metric, comparator, limit)]), blip_server(vt))
    result = record["thresholds"][0]
    assert result["passed"] is holds and result["measured"] is not None
    assert fl.COMPARATORS[comparator](result["measured"], limit) is holds


def test_an_abort_threshold_stops_the_scenario_over_its_window():
    # error replies from t=0.3 s on; errors over 5 % in a 0.1 s window abort
    vt = VirtualTime()
    server = vt_server(vt, service=0.002, error=lambda index, now: now - vt.start >= 0.3)
    scenario = open_rate(100, 1.0, interval_seconds=0.05, thresholds=[
        threshold("abort on errors", "error_rate_pct", "<", 5, window_seconds=0.1, abort=True, min_samples=5),
        threshold("p99", "latency_p99_ms", "<", 200)])
    record = vt.scenario(scenario, server, name="soak")
    assert record["aborted"] is True
    abort = record["abort"]
    assert abort["threshold"] == "abort on errors" and abort["at_seconds"] == pytest.approx(0.35)
    assert abort["window"] == dict(start_s=pytest.approx(0.25), end_s=pytest.approx(0.35), measured=50.0)
    assert abort["reason"] == "threshold abort on errors: error_rate_pct 50 over the window 0.25-0.35 s, the limit " \
                              "is < 5"
    assert record["elapsed_seconds"] == pytest.approx(0.35) and record["requests"] == 35
    assert record["scheduled"] == 35 and record["dropped"] == 0  # what was due before the abort
    assert max(at for _, at in server.calls) - vt.start < 0.35
    aborting = record["thresholds"][0]
    assert aborting["passed"] is False and aborting["measured"] == 50
    assert len(record["series"]) == 7 and record["summary"].endswith(
        "ABORTED at 0.35 s by threshold abort on errors: error_rate_pct 50 over the window 0.25-0.35 s, the limit "
        "is < 5")
    totals_match_series(record)


def test_an_abort_over_the_whole_run_waits_for_min_samples():
    vt = VirtualTime()
    scenario = open_rate(100, 1.0, interval_seconds=0.05, thresholds=[
        threshold("errors", "error_rate_pct", "<", 1, abort=True, min_samples=20)])
    record = vt.scenario(scenario, vt_server(vt, service=0.001, error=lambda index, now: True))
    # 5 replies per interval: 20 by the close of the 4th interval (t = 0.2 s), not before
    assert record["abort"]["at_seconds"] == pytest.approx(0.2) and record["abort"]["window"] is None
    assert record["abort"]["reason"] == "threshold errors: error_rate_pct 100 over the run so far, the limit is < 1"
    assert record["thresholds"][0]["judged_by"] == "whole run at 0.2 s (abort check)"
    assert record["requests"] == 20


def test_an_abort_stops_the_closed_model_too():
    vt = VirtualTime()
    scenario = dict(executor="constant-vus", vus=2, duration=1.0, interval_seconds=0.1, thresholds=[
        threshold("errors", "error_rate_pct", "<", 1, abort=True, min_samples=10)])
    server = vt_server(vt, service=0.01, error=lambda index, now: True)
    record = vt.scenario(scenario, server)
    assert record["aborted"] is True and record["abort"]["at_seconds"] == pytest.approx(0.1)
    assert record["requests"] == len(server.calls) <= 22 and record["elapsed_seconds"] == pytest.approx(0.1)


# ================================================================================ real time

def test_on_real_time_the_open_model_drops_what_a_slow_server_cannot_take():
    async def slow(index):
        await asyncio.sleep(0.04)  # at most 4 in flight: ~100/s of the 200/s asked

    record = asyncio.run(fl.run_scenario(open_rate(200, 0.5, max_vus=4, interval_seconds=0.05), slow, grace=0.5))
    assert record["scheduled"] == 100 and record["requests"] + record["dropped"] == 100
    assert record["dropped"] >= 30 and record["achieved_rate"] <= 0.7 * record["requested_rate"]
    assert record["rate_reached"] is False and "DID NOT REACH the requested rate" in record["summary"]
    assert record["latency_ms"]["p50"] >= 40
    totals_match_series(record)


def test_on_real_time_the_closed_model_and_a_fast_open_model_do_what_was_asked():
    async def fast(index):
        await asyncio.sleep(0.003)

    async def both():
        closed = await fl.run_scenario(dict(executor="constant-vus", vus=5, duration=0.4), fast, grace=0.5)
        opened = await fl.run_scenario(open_rate(100, 0.4, max_vus=50), fast, grace=0.5)
        return closed, opened

    closed, opened = asyncio.run(both())
    assert closed["requests"] >= 100 and closed["max_in_flight"] == 5 and closed["errors"] == 0
    assert closed["latency_ms"]["p50"] >= 3 and len(closed["series"]) == 10  # the default interval: 1/10
    assert opened["requests"] == 40 and opened["dropped"] == 0 and opened["rate_reached"] is True
    assert opened["achieved_rate"] == opened["requested_rate"] == 100


# ================================================================================ the gate and the record

def run_all(vt, scenarios, send):
    return [vt.scenario(scenarios[name], send, name=name) for name in scenarios]


def write_results(tmp_path, records):
    path = tmp_path / "load" / "results.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(fl.results_document(records, run="r1")))
    return str(path)


def test_the_records_of_the_six_scenarios_pass_the_performance_gate_when_good(tmp_path):
    vt = VirtualTime()
    scenarios = fl.compress(production_scenarios(), 60, max_seconds=0.5)
    records = run_all(vt, scenarios, vt_server(vt, service=0.02))
    for record in records:
        assert record["thresholds_passed"] and not record["aborted"] and record["dropped"] == 0, record["summary"]
        assert record["config"]["compressed"]["factor"] >= 60
        totals_match_series(record)
    gate = fleet_gates.performance_gate(write_results(tmp_path, records), CRITERIA)
    assert gate["outcome"] == "PASS", gate["reasons"]
    assert gate["measured"]["10-concurrent"]["rate_check"] == "not applicable (closed model)"
    assert gate["measured"]["soak"]["achieved_rate"] == gate["measured"]["soak"]["requested_rate"] == 50


def test_the_gate_fails_naming_the_scenario_that_could_not_reach_its_rate(tmp_path):
    vt = VirtualTime()
    scenarios = fl.compress(production_scenarios(), 60, max_seconds=0.5)
    good = run_all(vt, {n: s for n, s in scenarios.items() if n != "spike"}, vt_server(vt, service=0.02))
    spike = vt.scenario(dict(scenarios["spike"], max_vus=2), vt_server(vt, workers=1, service=0.15), name="spike")
    assert spike["dropped"] > 0 and spike["rate_reached"] is False
    results = write_results(tmp_path, good + [spike])
    gate = fleet_gates.performance_gate(results, CRITERIA)
    assert gate["outcome"] == "FAIL"
    assert {reason.split(" (")[0] for reason in gate["reasons"]} == {"load scenario spike"}
    assert any("request(s) dropped" in reason for reason in gate["reasons"])
    assert any("achieved %s/s of the requested" % fl._num(spike["achieved_rate"]) in r for r in gate["reasons"])
    assert any("latency_p99" in reason for reason in gate["reasons"])  # 150 ms each, queued: p99 over 200 ms


def test_the_gate_fails_a_scenario_whose_sliding_window_threshold_failed(tmp_path):
    vt = VirtualTime()
    scenarios = fl.compress(production_scenarios(), 60, max_seconds=0.5)
    records = run_all(vt, scenarios, vt_server(vt, service=0.02))
    blip = vt.scenario(dict(BLIP, thresholds=[threshold("p99 windowed", "latency_p99_ms", "<", 50,
                                                        window_seconds=0.1)]), blip_server(vt), name="endurance")
    records = [r for r in records if r["scenario"] != "endurance"] + [blip]
    gate = fleet_gates.performance_gate(write_results(tmp_path, records), CRITERIA)
    assert gate["outcome"] == "FAIL" and len(gate["reasons"]) == 1
    assert gate["reasons"][0].startswith("load scenario endurance (") and \
        "threshold p99 windowed failed: measured 100" in gate["reasons"][0]


# ================================================================================ comparison

def test_compare_with_previous_gives_the_change_per_scenario_and_figure_without_a_verdict():
    vt = VirtualTime()
    scenario = open_rate(50, 0.4, interval_seconds=0.1)
    before = vt.scenario(scenario, vt_server(vt, service=0.002), name="soak")
    after = vt.scenario(scenario, vt_server(vt, service=0.004), name="soak")
    other = vt.scenario(dict(scenario, rate=25), vt_server(vt, service=0.002), name="spike")
    old = vt.scenario(scenario, vt_server(vt, service=0.002), name="endurance")
    comparison = fl.compare_with_previous(fl.results_document([after, other]),
                                          fl.results_document([before, old], run="previous-run"))
    assert comparison["previous"] == dict(run="previous-run") and comparison["note"] is None
    soak = comparison["scenarios"]["soak"]
    assert soak["status"] == "compared" and soak["same_configuration"] is True and soak["differences"] == []
    p50 = soak["metrics"]["latency_p50_ms"]
    assert (p50["previous"], p50["current"]) == (before["latency_ms"]["p50"], after["latency_ms"]["p50"])
    assert p50["change"] == pytest.approx(2, abs=0.01) and p50["change_pct"] == pytest.approx(100, abs=1)
    assert soak["metrics"]["dropped"] == dict(current=0, previous=0, change=0, change_pct=None)
    assert comparison["scenarios"]["spike"] == dict(status="new: not in the previous run")
    assert comparison["scenarios"]["endurance"] == dict(status="missing: in the previous run only")
    assert set(soak) == {"status", "same_configuration", "differences", "metrics"}  # no verdict
    # a compressed run against a production one is not like for like, and says so
    compressed = dict(after, config=dict(after["config"], rate=100))
    differs = fl.compare_with_previous({"scenarios": {"soak": compressed}}, {"scenarios": {"soak": before}})
    assert differs["scenarios"]["soak"]["differences"] == ["rate: 100 now, 50 before"]
    # so is a run whose load went to other subjects (legacy before, unified now)
    moved = fl.compare_with_previous({"scenarios": {"soak": dict(after, subjects=["agents.x.1.cmd.ping"])}},
                                     {"scenarios": {"soak": dict(before, subjects=["agent.x.cmd.ping"])}})
    assert moved["scenarios"]["soak"]["same_configuration"] is False
    assert moved["scenarios"]["soak"]["differences"] == [
        "subjects: ['agents.x.1.cmd.ping'] now, ['agent.x.cmd.ping'] before"]


def test_compare_without_a_previous_run_says_so():
    comparison = fl.compare_with_previous({"scenarios": {"soak": {"requests": 1}}}, None)
    assert comparison == dict(previous=None, note="no previous readiness run: nothing to compare with",
                              scenarios={"soak": dict(status="no previous run")})


def test_the_load_summary_of_latency_adds_p95_without_changing_the_probes():
    latency = Latency(keep_samples=False)
    for ms in range(1, 101):
        latency.record(ms / 1000.0)
    assert latency.samples_ms is None
    assert set(latency.summary(fl.PERCENTILES)) == {"p50", "p90", "p95", "p99", "max", "mean", "count"}
    assert latency.summary(fl.PERCENTILES)["p95"] == pytest.approx(95, abs=0.1)
    assert "p95" not in Latency().summary()
