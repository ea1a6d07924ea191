"""plugins/modules/nats_load.py run in-process against a real nats-server and a real reference agent on
loopback: an open-model scenario that holds its rate, one that cannot (a slow agent, a small in-flight
cap: the drops are counted and said), a closed model, error replies and no responders counted by kind,
check mode sending nothing, a bad scenario refused before anything is sent, and the record accepted
by the readiness run's performance gate. Short windows (at most 1.5 s each)."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.conftest import ROOT
from tests.unit.conftest import run_module  # noqa: F401  (the fixture, shared with the unit tests)

from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_gates import performance_gate

pytestmark = pytest.mark.integration

PING = "agent.network-expert.cmd.ping"
FAIL = "agent.network-expert.cmd.fail"


@pytest.fixture
def load(run_module, nats_server):  # noqa: F811
    def run(subject, scenario, check=False, **options):
        targets = {} if subject is None else dict(subject=subject)
        return run_module("nats_load", dict(dict(url=nats_server.url, timeout=1.0, name="probe-load"),
                                            scenario=scenario, **targets, **options), check=check)
    return run


def test_an_open_model_scenario_holds_its_rate_and_measures_from_the_intended_time(reference_agent, load):
    reference_agent()
    result = load(PING, dict(executor="constant-arrival-rate", rate=100, duration=1.0, max_vus=50))
    assert not result.get("failed"), result.get("msg")
    record = result["record"]
    assert record["model"] == "open" and record["requested_rate"] == pytest.approx(100, rel=0.02)
    assert record["requests"] == record["answered"] == record["scheduled"] and record["requests"] >= 98
    assert record["dropped"] == 0 and record["errors"] == 0 and record["rate_reached"] is True
    assert record["latency_from"] == "intended send time"
    assert 0 < record["latency_ms"]["p50"] <= record["latency_ms"]["p95"] <= record["latency_ms"]["p99"]
    assert sum(point["sent"] for point in record["series"]) == record["requests"]
    assert result["summary"] == record["summary"] and "none dropped" in result["summary"]
    assert result["changed"] is False and result["subjects"] == record["subjects"] == [PING]


def test_requests_go_to_several_subjects_in_turn(reference_agent, load):
    # Every other request goes where nobody listens: half answered, half no responders.
    reference_agent()
    nobody = "agents.nobody.%s.cmd.ping" % uuid.uuid4()
    result = load(None, dict(executor="constant-arrival-rate", rate=20, duration=1.0, max_vus=10),
                  subjects=[PING, nobody])
    record = result["record"]
    assert record["subjects"] == result["subjects"] == [PING, nobody]
    assert record["requests"] >= 18 and record["answered"] == (record["requests"] + 1) // 2, record
    assert sum(record["failures"].values()) == record["requests"] // 2, record["failures"]


@pytest.mark.parametrize("targets, why", [
    (dict(subject=PING, subjects=[PING]), "mutually exclusive"),
    (dict(subjects=[]), "subjects must name at least one subject"),
    (dict(subjects=[PING, " "]), "none empty"),
    (dict(), "one of the following is required"),
])
def test_the_subjects_are_one_subject_or_a_list_of_them(run_module, targets, why):  # noqa: F811
    result = run_module("nats_load", dict(url="nats://127.0.0.1:1", scenario=dict(executor="constant-vus", vus=1,
                                                                                  duration=0.2), **targets))
    assert result["failed"] and why in result["msg"], result["msg"]


def test_a_rate_the_agent_cannot_carry_is_said_with_what_was_dropped(reference_agent, load):
    # 200 ms per reply and 2 in flight carry 10 requests/s at most: 50/s is asked.
    reference_agent(FAULT_REPLY_DELAY_MS="200")
    result = load(PING, dict(executor="constant-arrival-rate", rate=50, duration=1.0, max_vus=2))
    record = result["record"]
    assert record["dropped"] > 0 and record["dropped_reasons"]["max_vus"] > 0, record["dropped_reasons"]
    assert record["achieved_rate"] < 0.5 * record["requested_rate"] and record["rate_reached"] is False
    assert record["requests"] + record["dropped"] == record["scheduled"]
    assert "DID NOT REACH the requested rate" in result["summary"]
    # Each request waited its turn: latency from the intended time exceeds the agent's own 200 ms.
    assert record["latency_ms"]["p50"] >= 200


def test_a_closed_model_loops_its_virtual_users(reference_agent, load):
    reference_agent()
    result = load(PING, dict(executor="constant-vus", vus=3, duration=0.5))
    record = result["record"]
    assert record["model"] == "closed" and record["requested_rate"] is None
    assert record["requests"] > 10 and record["errors"] == 0 and record["max_in_flight"] <= 3


def test_error_replies_and_silence_are_errors_by_kind(reference_agent, load):
    reference_agent()
    failed = load(FAIL, dict(executor="constant-arrival-rate", rate=20, duration=0.5, max_vus=10))["record"]
    assert failed["requests"] >= 9 and failed["error_replies"] == failed["requests"] == failed["errors"]
    assert failed["error_rate_pct"] == 100.0
    nobody = "agents.nobody.%s.cmd.ping" % uuid.uuid4()
    silent = load(nobody, dict(executor="constant-arrival-rate", rate=20, duration=0.5, max_vus=10))["record"]
    assert silent["answered"] == 0 and silent["errors"] == silent["requests"] >= 9
    assert sum(silent["failures"].values()) == silent["requests"] and silent["error_replies"] == 0, silent["failures"]


def test_check_mode_validates_and_sends_nothing(nats_server, load):
    # Nobody listens here: a single request sent would come back as no responders.
    nobody = "agents.nobody.%s.cmd.ping" % uuid.uuid4()
    result = load(nobody, dict(executor="constant-vus", vus=2, duration=0.5), check=True)
    assert not result.get("failed") and result["record"] is None and "check mode, no request sent" in result["summary"]
    bad = load(nobody, dict(executor="constant-vus", vus=float("inf"), duration=0.5), check=True)
    assert bad["failed"]


def test_a_bad_scenario_is_refused_naming_where_and_the_range(load):
    result = load(PING, dict(executor="constant-arrival-rate", rate=float("inf"), duration=-1, max_vus=5, colour=1),
                  url="nats://127.0.0.1:1")
    assert result["failed"] and result["msg"].startswith("the load scenario is refused (nothing was sent):")
    problems = result["problems"]
    assert any(p.startswith("readiness_load_scenarios.probe-load.rate: must be a number in") and "got inf" in p
               for p in problems), problems
    assert any(p.startswith("readiness_load_scenarios.probe-load.duration:") for p in problems), problems
    assert any("colour" in p for p in problems), problems


def test_an_unreachable_server_fails_without_its_credentials(load):
    result = load(PING, dict(executor="constant-vus", vus=1, duration=0.2), url="svc:s3/cret@127.0.0.1:1",
                  connect_timeout=0.5)
    assert result["failed"] and result["msg"].startswith("cannot connect to NATS at ***@127.0.0.1:1")
    assert "s3/cret" not in json.dumps(result)


def test_the_record_is_what_the_performance_gate_reads(reference_agent, load, tmp_path):
    reference_agent()
    scenario = dict(executor="constant-arrival-rate", rate=50, duration=1.0, max_vus=20, thresholds=[
        dict(name="p99", metric="latency_p99_ms", comparator="<", threshold=200)])
    record = load(PING, scenario)["record"]
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"scenarios": {"spike": record}}))
    gate = performance_gate(str(results), str(ROOT / "criteria/default.yml"), scenarios=("spike",))
    assert gate["outcome"] == "PASS", gate["reasons"]
    assert gate["measured"]["spike"]["requests"] == record["requests"]


# ---------------------------------------------------------------- stress (issue 10, "Stress")

def test_a_payload_over_the_servers_max_payload_is_refused_before_anything_is_sent(nats_server, load):
    # Nobody listens: a request sent would come back as no responders, not as this refusal.
    nobody = "agents.nobody.%s.cmd.ping" % uuid.uuid4()
    result = load(nobody, dict(executor="constant-arrival-rate", rate=10, duration=0.5, max_vus=5,
                               payload_bytes=2 * 1024 * 1024))
    assert result["failed"] and "exceeds the server's max_payload of 1048576 bytes" in result["msg"], result["msg"]
    assert "nothing was sent" in result["msg"] and "record" not in result


def test_a_large_payload_within_max_payload_is_sent_and_its_bytes_counted(reference_agent, load):
    reference_agent()
    result = load(PING, dict(executor="constant-arrival-rate", rate=20, duration=0.5, max_vus=10,
                             payload_bytes=256 * 1024), payload={"note": "large"})
    record = result["record"]
    assert not result.get("failed") and record["errors"] == 0 and record["requests"] == 10, record["summary"]
    assert record["payload_bytes"] == 256 * 1024 and record["max_payload"] == 1024 * 1024
    assert record["bytes_sent"] == 10 * 256 * 1024 and record["bytes_sent_per_s"] == pytest.approx(20 * 256 * 1024)


def test_requests_are_spread_over_three_connections(reference_agent, load):
    reference_agent()
    result = load(PING, dict(executor="constant-arrival-rate", rate=30, duration=1.0, max_vus=20, connections=3))
    record = result["record"]
    assert record["errors"] == 0 and record["requests"] == 30, record["summary"]
    connections = record["connections"]
    assert connections["connect"] == "ahead" and connections["opened"] == 3 and connections["failed"] == 0
    assert connections["requests_per_connection"] == [10, 10, 10]


def test_a_rate_search_finds_the_knee_of_a_slow_agent(reference_agent, load):
    # 100 ms per reply and at most 3 in flight carry 30/s: 5 and 15/s fit, 45/s drops
    reference_agent(FAULT_REPLY_DELAY_MS="100")
    result = load(PING, dict(executor="rate-search", start_rate=5, factor=3, max_rate=135, stage_duration=1.0,
                             max_vus=3, knee=[dict(metric="dropped", comparator=">", threshold=0)]))
    record = result["record"]
    assert [stage["rate"] for stage in record["stages_run"]] == [5, 15, 45], record["stages_run"]
    assert record["stages_run"][0]["dropped"] == record["stages_run"][1]["dropped"] == 0
    assert record["knee"]["rate"] == 45 and record["knee"]["stage"] == 2 and record["stages_run"][2]["dropped"] > 0
    assert record["stages_run"][1]["p99_ms"] >= 100  # the agent's delay is in every reply
    assert record["elapsed_seconds"] == pytest.approx(3.0, abs=0.05)  # the 135/s stage never ran
    assert "knee at 45 requests/s (stage 2)" in result["summary"]


def test_a_storm_of_twenty_connections_records_the_connect_times(reference_agent, load):
    reference_agent()
    result = load(PING, dict(executor="constant-arrival-rate", rate=100, duration=1.0, max_vus=50, connections=20,
                             connect="storm"))
    record = result["record"]
    connections = record["connections"]
    assert connections["connect"] == "storm" and connections["opened"] == 20 and connections["failed"] == 0
    connect_ms = connections["connect_ms"]  # HDR percentiles (3 digits) against the exact max
    assert connect_ms["count"] == 20 and 0 < connect_ms["p50"] <= connect_ms["p99"] <= connect_ms["max"] * 1.01 < 2000
    assert sum(connections["requests_per_connection"]) == record["requests"] == 100 and record["errors"] == 0
    assert "20 connection(s) opened at once (storm), 0 failed" in result["summary"]


def test_a_slow_consumer_on_the_loaded_subject_drops_what_it_cannot_queue(reference_agent, load):
    # it sees every request of the load: 100/s against 20/s handled and 5 queued at most
    reference_agent()
    result = load(PING, dict(executor="constant-arrival-rate", rate=100, duration=1.0, max_vus=50,
                             slow_consumer=dict(subject=PING, pending_limit=5, delay_ms=50)))
    record = result["record"]
    slow = record["slow_consumer"]
    assert record["requests"] == record["answered"] == 100, record["summary"]
    assert slow["subject"] == PING and slow["dropped"] > 50 and 10 <= slow["received"] <= 30, slow
    assert slow["received"] + slow["dropped"] + slow["pending"] == 100 and slow["errors"] == 0, slow


def test_check_mode_sends_nothing_and_opens_no_connection_for_a_storm(load):
    scenario = dict(executor="constant-arrival-rate", rate=10, duration=0.5, max_vus=5, connections=20,
                    connect="storm", payload_bytes=1024)
    result = load(PING, scenario, check=True, url="nats://127.0.0.1:1")
    assert not result.get("failed") and result["record"] is None, result.get("msg")
    bad = load(PING, dict(scenario, connections=float("nan")), check=True, url="nats://127.0.0.1:1")
    assert bad["failed"] and any(p.startswith("readiness_load_scenarios.probe-load.connections: must be an integer "
                                              "in [1, 500]") for p in bad["problems"]), bad["problems"]
