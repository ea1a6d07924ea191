"""plugins/module_utils/fleet_load.py, the stress keys (issue 10, "Stress"): payload_bytes, connections
(ahead or a storm), the rate-search executor (saturation knee), recovery after an overload, and the
slow_consumer key's validation (the module runs it). Virtual time, fake servers and connections."""

from __future__ import annotations

import asyncio

import pytest
from ansible_collections.fleetwave.rollout.plugins.module_utils import fleet_load as fl

from tests.unit.test_fleet_load import VirtualTime, open_rate, totals_match_series, vt_server

pytestmark = pytest.mark.unit

VAR = "readiness_load_scenarios"


def run(vt, scenario, send, name="s", **options):
    return vt.run(fl.run_scenario(scenario, send, clock=vt, sleep=vt.sleep, name=name, grace=1.0, wall=vt.wall,
                                  **options))


def search(**extra):
    scenario = dict(executor="rate-search", start_rate=10, factor=2, max_rate=160, stage_duration=1.0, max_vus=1000,
                    knee=dict(metric="latency_p99_ms", comparator=">", threshold=100))
    scenario.update(extra)
    for key in [key for key, value in scenario.items() if value is None]:
        del scenario[key]
    return scenario


# ================================================================================ rate-search

def test_a_rate_search_stops_at_the_first_stage_past_the_knee():
    # one worker, 20 ms each: 50/s. 10, 20, 40/s queue nothing (20 ms); at 80/s the queue grows
    vt = VirtualTime()
    server = vt_server(vt, workers=1, service=0.02)
    record = run(vt, search(), server, name="knee")
    assert record["model"] == "open" and record["executor"] == "rate-search"
    assert [stage["rate"] for stage in record["stages_run"]] == [10, 20, 40, 80]
    assert [stage["knee"] for stage in record["stages_run"]] == [False, False, False, True]
    assert [stage["p99_ms"] for stage in record["stages_run"][:3]] == pytest.approx([20, 20, 20], rel=0.01)
    assert record["stages_run"][3]["p99_ms"] > 100
    assert [stage["requests"] for stage in record["stages_run"]] == [10, 20, 40, 80]
    assert [stage["achieved_rate"] for stage in record["stages_run"]] == [10, 20, 40, 80]
    knee = record["knee"]
    assert (knee["rate"], knee["stage"], knee["at_seconds"]) == (80, 3, 4.0)
    assert knee["reason"].startswith("latency_p99_ms ") and knee["reason"].endswith("> 100 at 80 requests/s (stage 3)")
    assert record["knee_note"] is None
    # nothing of the 160/s stage was sent: the search stopped at the knee
    assert max(at for _, at in server.calls) - vt.start < 4.0
    assert record["elapsed_seconds"] == pytest.approx(4.0) and record["scheduled"] == record["requests"] == 150
    assert record["aborted"] is False and "knee at 80 requests/s (stage 3)" in record["summary"]
    totals_match_series(record)


def test_a_knee_of_dropped_requests_with_a_step_and_a_capped_last_stage():
    # 50 ms each and at most 1 in flight: 20/s; 10/s fits, 25/s drops
    vt = VirtualTime()
    scenario = search(factor=None, step=15, max_rate=30, max_vus=1, knee=[
        dict(metric="latency_p99_ms", comparator=">", threshold=5000), dict(metric="dropped", comparator=">",
                                                                            threshold=0)])
    assert fl.search_rates(scenario) == [10, 25, 30]
    record = run(vt, scenario, vt_server(vt, service=0.05))
    assert record["stages_run"][0]["dropped"] == 0 and record["stages_run"][1]["dropped"] > 0
    assert record["knee"]["stage"] == 1 and record["knee"]["rate"] == 25
    assert record["knee"]["reason"].startswith("dropped ") and "> 0 at 25 requests/s" in record["knee"]["reason"]


def test_a_rate_search_without_a_knee_says_so_up_to_max_rate():
    vt = VirtualTime()
    record = run(vt, search(max_rate=40), vt_server(vt, service=0.002))
    assert record["knee"] is None and record["knee_note"] == "no knee up to max_rate 40 requests/s"
    assert [stage["rate"] for stage in record["stages_run"]] == [10, 20, 40]
    assert record["requests"] == 70 and record["elapsed_seconds"] == 3.0
    assert record["summary"].endswith("no knee up to max_rate 40 requests/s")


def test_a_rate_search_keeps_whole_intervals_per_stage():
    scenario = search(stage_duration=7.0)
    interval = fl.interval_of(scenario)
    assert fl.scenario_seconds(scenario) == 35.0
    assert (7.0 / interval) == pytest.approx(round(7.0 / interval))
    assert fl.validate_scenarios({"k": dict(scenario, interval_seconds=3)}) == [
        VAR + ".k.interval_seconds: 3 s must divide stage_duration (7 s) into whole intervals"]


@pytest.mark.parametrize("change, expected", [
    (dict(step=10), VAR + ".k: exactly one of factor (each stage's rate times the previous) and step (plus the "
                          "previous) is needed, got both"),
    (dict(factor=None), VAR + ".k: exactly one of factor (each stage's rate times the previous) and step (plus "
                              "the previous) is needed, got neither"),
    (dict(factor=1), VAR + ".k.factor: must be a number in (1, 100] times the previous rate, got 1"),
    (dict(factor=float("nan")), VAR + ".k.factor: must be a number in (1, 100] times the previous rate, got nan"),
    (dict(start_rate=0), VAR + ".k.start_rate: must be a number in (0, 10,000] requests per second, got 0"),
    (dict(max_rate=float("inf")), VAR + ".k.max_rate: must be a number in (0, 10,000] requests per second, got inf"),
    (dict(max_rate=5), VAR + ".k.max_rate: 5 is below start_rate (10)"),
    (dict(stage_duration=0), VAR + ".k.stage_duration: must be a number in (0, 604,800] seconds, got 0"),
    (dict(factor=None, step=0.01, max_rate=10_000), VAR + ".k: from start_rate 10 to max_rate 10000 takes more "
                                                          "than 100 stages"),
    (dict(stage_duration=200_000), VAR + ".k.stage_duration: the 5 stages' total duration must be a number in "
                                         "(0, 604,800] seconds, got 1000000"),
    (dict(knee=dict(metric="p99", comparator=">", threshold=1)),
     VAR + ".k.knee.metric: must be one of error_rate_pct, dropped, dropped_pct, latency_p50_ms, latency_p90_ms, "
           "latency_p95_ms, latency_p99_ms, latency_max_ms, throughput_rps, got 'p99'"),
    (dict(knee=[dict(metric="error_rate_pct", comparator="!=", threshold=1)]),
     VAR + ".k.knee[0].comparator: must be one of < <= > >=, got '!='"),
    (dict(knee=[dict(metric="error_rate_pct", comparator=">", threshold=float("inf"))]),
     VAR + ".k.knee[0].threshold: must be a number in [0, 100] percent, got inf"),
    (dict(knee=[]), VAR + ".k.knee: must be a condition {metric, comparator, threshold} or a list of 1 to 5, got 0"),
    (dict(knee=None), VAR + ".k.knee: missing (a condition {metric, comparator, threshold} or a list of them)"),
])
def test_a_rate_search_is_validated_naming_the_key_and_the_range(change, expected):
    assert fl.validate_scenarios({"k": search(**change)}) == [expected]


# ================================================================================ recovery

def overload(after=1.5, tail=2.0, overload_rate=200):
    # 50/s, then overload_rate for 0.5 s, then 50/s again
    return dict(executor="ramping-arrival-rate", start_rate=50, max_vus=1000, interval_seconds=0.1, stages=[
        dict(duration=1.0, target=50), dict(duration=0, target=overload_rate), dict(duration=0.5, target=overload_rate),
        dict(duration=0, target=50), dict(duration=tail, target=50)],
        recovery=dict(metric="latency_p99_ms", comparator="<", threshold=20, after_seconds=after))


def test_recovery_is_the_time_from_the_overload_end_until_latency_holds_for_the_rest_of_the_run():
    # one worker, 10 ms each (100/s): 0.5 s at 200/s leaves 50 requests queued, drained at 50/s net
    # in 1 s: latency is back under 20 ms in the interval after 2.5 s
    vt = VirtualTime()
    record = run(vt, overload(), vt_server(vt, workers=1, service=0.01), name="overload")
    recovery = record["recovery"]
    assert recovery["recovered"] is True and recovery["after_seconds"] == 1.5
    # the interval 2.5-2.6 s still holds the last queued request (20.1 ms); from 2.6 s on all hold
    assert recovery["seconds"] == pytest.approx(1.2) and recovery["at_seconds"] == pytest.approx(2.7)
    assert recovery["judged_intervals"] == 20
    points = {round(point["t"], 1): point["p99_ms"] for point in record["series"]}
    assert points[2.0] > 500 and points[2.5] > 20 and all(points[round(t / 10, 1)] < 20 for t in range(26, 35))
    assert record["summary"].endswith("recovered 1.2 s after 1.5 s (latency_p99_ms < 20 per interval)")


def test_an_overload_that_never_ends_is_not_recovered():
    vt = VirtualTime()
    scenario = overload(after=1.0, tail=0.5, overload_rate=400)  # the queue is still draining at the end
    record = run(vt, scenario, vt_server(vt, workers=1, service=0.01))
    assert record["recovery"]["recovered"] is False and record["recovery"]["seconds"] is None
    assert record["recovery"]["note"] == "the last interval still fails latency_p99_ms < 20"
    assert "NOT RECOVERED after 1 s" in record["summary"]


def test_recovery_from_the_first_interval_when_the_overload_did_no_harm():
    vt = VirtualTime()
    record = run(vt, overload(), vt_server(vt, service=0.002))  # no queue: 2 ms always
    assert record["recovery"]["recovered"] is True and record["recovery"]["seconds"] == pytest.approx(0.1)


@pytest.mark.parametrize("recovery, expected", [
    (dict(metric="latency_p99_ms", comparator="<", threshold=20, after_seconds=3.5),
     VAR + ".o.recovery.after_seconds: 3.5 s is not before the end of the scenario (3.5 s)"),
    (dict(metric="latency_p99_ms", comparator="<", threshold=20, after_seconds=float("nan")),
     VAR + ".o.recovery.after_seconds: must be a number in [0, 604,800] seconds, got nan"),
    (dict(metric="latency_p99_ms", comparator="<", threshold=-1, after_seconds=1),
     VAR + ".o.recovery.threshold: must be a number in [0, 60,000] ms, got -1"),
    (dict(metric="latency_p99_ms", comparator="<", threshold=20),
     VAR + ".o.recovery.after_seconds: missing ({metric, comparator, threshold, after_seconds})"),
    ("p99 < 20", VAR + ".o.recovery: must be a mapping ({metric, comparator, threshold, after_seconds}), "
                       "got 'p99 < 20'"),
])
def test_recovery_is_validated_naming_the_key_and_the_range(recovery, expected):
    assert fl.validate_scenarios({"o": dict(overload(), recovery=recovery)}) == [expected]


def test_recovery_is_only_for_ramping_arrival_rate():
    problems = fl.validate_scenarios({"o": open_rate(10, 1, recovery=overload()["recovery"])})
    assert problems[0].startswith(VAR + ".o: unknown key recovery (allowed:")


def test_compress_shortens_stage_duration_and_after_seconds():
    scenarios = {"knee": search(stage_duration=60.0), "overload": overload(after=90, tail=120)}
    scenarios["overload"]["stages"][0]["duration"] = 60
    short = fl.compress(scenarios, 60)
    assert short["knee"]["stage_duration"] == 1.0 and short["overload"]["recovery"]["after_seconds"] == 1.5
    assert fl.validate_scenarios(short) == []
    assert fl.scenario_seconds(short["knee"]) == fl.scenario_seconds(scenarios["knee"]) / 60
    assert round(short["knee"]["stage_duration"] / fl.interval_of(short["knee"]), 6) == \
        round(scenarios["knee"]["stage_duration"] / fl.interval_of(scenarios["knee"]), 6)


# ================================================================================ payload_bytes

def test_the_record_reports_the_payload_size_and_the_bytes_sent_per_second():
    vt = VirtualTime()
    record = run(vt, open_rate(50, 1.0, payload_bytes=4096), vt_server(vt, service=0.002))
    assert record["payload_bytes"] == 4096 and record["requests"] == 50
    assert record["bytes_sent"] == 50 * 4096 and record["bytes_sent_per_s"] == 50 * 4096
    # without the key: the size the caller says it sends; unknown: None
    default = run(vt, open_rate(50, 1.0), vt_server(vt, service=0.002), payload_bytes=2)
    assert default["payload_bytes"] == 2 and default["bytes_sent_per_s"] == 100
    unknown = run(vt, open_rate(50, 1.0), vt_server(vt, service=0.002))
    assert unknown["payload_bytes"] is None and unknown["bytes_sent_per_s"] is None


@pytest.mark.parametrize("value, shown", [(8 * 1024 * 1024 + 1, "8388609"), (float("inf"), "inf"), (True, "True"),
                                          (-1, "-1"), (10.0, "10.0")])
def test_payload_bytes_out_of_range_is_refused(value, shown):
    assert fl.validate_scenarios({"p": open_rate(10, 1, payload_bytes=value)}) == [
        VAR + ".p.payload_bytes: must be an integer in [0, 8,388,608] bytes, got %s" % shown]


# ================================================================================ connections

class Connections:
    """open_connection for tests: connection k takes delays[k] seconds (virtual) to open, or fails."""

    def __init__(self, vt, delays=None, fail=()):
        self.vt, self.delays, self.fail = vt, delays or {}, set(fail)
        self.opened_at = {}

    async def __call__(self, number):
        await self.vt.sleep(self.delays.get(number, 0.0))
        if number in self.fail:
            raise ConnectionRefusedError("refused")
        self.opened_at[number] = self.vt()
        return "conn-%d" % number


def sender(vt, service=0.002):
    calls = []

    async def send(index, connection):
        calls.append((index, connection, vt()))
        await vt.sleep(service)
        return True

    return send, calls


def test_requests_are_spread_over_the_connections_opened_ahead_of_the_clock():
    vt = VirtualTime()
    connections = Connections(vt, delays={0: 0.05, 1: 0.1, 2: 0.02})
    send, calls = sender(vt)
    record = run(vt, open_rate(30, 1.0, connections=3), send, open_connection=connections)
    assert record["requests"] == 30 and record["errors"] == 0
    assert [c for i, c, _ in calls] == ["conn-%d" % (i % 3) for i, _, _ in calls]
    conn = record["connections"]
    assert conn["requests_per_connection"] == [10, 10, 10] and conn["opened"] == 3 and conn["failed"] == 0
    assert conn["connect"] == "ahead" and conn["connect_ms"]["max"] == pytest.approx(100, rel=0.01)
    # opened before the clock started: the first request went out at once and waited for nothing
    assert min(at for _, _, at in calls) == pytest.approx(0.1) and record["latency_ms"]["max"] == pytest.approx(2)


def test_a_connection_that_fails_ahead_is_counted_and_the_others_carry_the_load():
    vt = VirtualTime()
    send, calls = sender(vt)
    record = run(vt, open_rate(30, 1.0, connections=3), send, open_connection=Connections(vt, fail={1}))
    assert record["connections"]["failed"] == 1 and record["connections"]["failures"] == {"ConnectionRefusedError": 1}
    assert record["connections"]["requests_per_connection"] == [15, 15] and record["errors"] == 0
    assert {c for _, c, _ in calls} == {"conn-0", "conn-2"}


def test_when_every_connection_fails_ahead_the_run_fails_before_sending():
    vt = VirtualTime()
    send, calls = sender(vt)
    with pytest.raises(ConnectionRefusedError):
        run(vt, open_rate(30, 1.0, connections=2), send, open_connection=Connections(vt, fail={0, 1}))
    assert calls == []


def test_a_connection_storm_opens_all_at_the_start_and_its_requests_wait_for_them():
    # 20 connections at t0, connection k opens after (k + 1) x 10 ms, connection 7 is refused
    vt = VirtualTime()
    connections = Connections(vt, delays={k: (k + 1) * 0.01 for k in range(20)}, fail={7})
    send, calls = sender(vt)
    record = run(vt, open_rate(100, 1.0, connections=20, connect="storm", max_vus=100), send,
                 open_connection=connections)
    assert sorted(connections.opened_at) == [k for k in range(20) if k != 7]
    assert all(at - vt.start == pytest.approx((k + 1) * 0.01) for k, at in connections.opened_at.items())
    conn = record["connections"]
    assert conn["connect"] == "storm" and conn["opened"] == 19 and conn["failed"] == 1
    assert conn["failures"] == {"ConnectionRefusedError": 1}
    assert conn["connect_ms"]["count"] == 19 and conn["connect_ms"]["max"] == pytest.approx(200, rel=0.01)
    assert conn["connect_ms"]["p50"] == pytest.approx(110, rel=0.02)
    # the 5 requests of the refused connection fail with it; the others waited for theirs
    assert record["failures"] == {"ConnectionRefusedError": 5} and record["errors"] == 5
    assert conn["requests_per_connection"][7] == 0 and sum(conn["requests_per_connection"]) == 95
    first = [at for index, _, at in calls if index == 19][0]
    assert first - vt.start == pytest.approx(0.2)  # due at 0.19 s, its connection opened at 0.2 s
    assert record["latency_ms"]["max"] >= 10
    assert "19 connection(s) opened at once (storm), 1 failed" in record["summary"]


def test_connections_need_open_connection_and_a_valid_range():
    vt = VirtualTime()
    with pytest.raises(ValueError, match=r"^s\.connections: 3 connection\(s\), connect: ahead needs open_connection"):
        run(vt, open_rate(10, 1.0, connections=3), vt_server(vt))
    assert fl.validate_scenarios({"c": open_rate(10, 1, connections=501, connect="burst")}) == [
        VAR + ".c.connections: must be an integer in [1, 500] connections, got 501",
        VAR + ".c.connect: must be one of ahead, storm, got 'burst'"]
    assert fl.validate_scenarios({"c": open_rate(10, 1, connections=float("inf"))}) == [
        VAR + ".c.connections: must be an integer in [1, 500] connections, got inf"]


def test_the_closed_model_spreads_its_vus_over_connections_too():
    vt = VirtualTime()
    send, calls = sender(vt, service=0.01)
    record = run(vt, dict(executor="constant-vus", vus=4, duration=0.5, connections=2), send,
                 open_connection=Connections(vt))
    assert record["requests"] == 200 and record["connections"]["requests_per_connection"] == [100, 100]


# ================================================================================ slow consumer (validated here)

@pytest.mark.parametrize("slow, expected", [
    (dict(subject="agent.x.evt.>", pending_limit=10, delay_ms=50), None),
    (dict(subject="agent x", pending_limit=10, delay_ms=50),
     VAR + ".c.slow_consumer.subject: must be a NATS subject (wildcards allowed), got 'agent x'"),
    (dict(subject="a.b", pending_limit=0, delay_ms=50),
     VAR + ".c.slow_consumer.pending_limit: must be an integer in [1, 1,000,000] messages, got 0"),
    (dict(subject="a.b", pending_limit=5, delay_ms=float("inf")),
     VAR + ".c.slow_consumer.delay_ms: must be a number in [0, 60,000] ms, got inf"),
    (dict(subject="a.b", pending_limit=5),
     VAR + ".c.slow_consumer.delay_ms: missing ({subject, pending_limit, delay_ms})"),
])
def test_slow_consumer_is_validated_naming_the_key_and_the_range(slow, expected):
    assert fl.validate_scenarios({"c": open_rate(10, 1, slow_consumer=slow)}) == ([expected] if expected else [])


def test_the_record_of_a_plain_scenario_keeps_its_fields_and_adds_the_stress_ones_empty():
    vt = VirtualTime()
    record = run(vt, open_rate(10, 1.0), vt_server(vt, service=0.001))
    assert record["connections"] is None and "knee" not in record and "recovery" not in record
    assert asyncio.iscoroutinefunction(fl.run_scenario)
