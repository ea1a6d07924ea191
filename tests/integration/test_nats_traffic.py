"""plugins/modules/nats_traffic.py run in-process against a real nats-server and the reference agent as a
process, its observations turned into the failure mode's ledger (fleet_traffic.ledger_inputs, then
fleet_ledger.build_ledger) as the readiness run does: healthy traffic accounts for every request and event,
an agent killed with SIGKILL and restarted loses what was addressed to it meanwhile (inside the window,
nothing outside), a nats-server restart is ridden through by reconnecting with the unsent requests counted,
and check mode and bad input send nothing. Each test runs a few seconds of traffic."""

from __future__ import annotations

import concurrent.futures
import json
import pathlib
import time

import pytest

from tests.conftest import DEFAULT_AGENT
from tests.unit.conftest import run_module  # noqa: F401  (the fixture, shared with the unit tests)

from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_traffic import ledger_inputs
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_ledger import build_ledger

pytestmark = pytest.mark.integration

PING = "agent.network-expert.cmd.ping"
EVENTS = [dict(subject="agent.network-expert.evt.>", family="legacy"),
          dict(subject="agents.%s.%s.evt.>" % (DEFAULT_AGENT["cluster"], DEFAULT_AGENT["id"]), family="unified")]
TARGETS = [dict(subject=PING, host=DEFAULT_AGENT["host"], target="network-expert@dgx-1")]
TIMEOUT = 0.5
BUDGET = dict(max_lost_pct=0, max_lost_outside_window=0, max_duplicated=0, max_reordered=0, max_late=0,
              max_detection_seconds=30, max_recovery_seconds=30)


@pytest.fixture
def traffic(run_module, tmp_path):  # noqa: F811
    """traffic(url, duration, rate, check=False, **options) -> a running future of (result, observations)."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)

    def start(url, duration, rate, check=False, **options):
        dest = tmp_path / "failure-modes" / ("traffic-%d.json" % time.monotonic_ns())
        args = dict(dict(url=url, targets=TARGETS, event_subjects=EVENTS, duration=duration, rate=rate,
                         timeout=TIMEOUT, dest=str(dest), name="test"), **options)

        def run():
            result = run_module("nats_traffic", args, check=check)
            observations = json.loads(dest.read_text()) if dest.exists() else None
            return result, observations
        return pool.submit(run)

    yield start
    pool.shutdown(wait=True)


def ledger(observations, injected_at, recovered_at, mode="agent-kill", budget=BUDGET):
    window = dict(injected_at=injected_at, detected_at=injected_at, recovered_at=recovered_at)
    return build_ledger(mode, window, **ledger_inputs(observations), timeout=TIMEOUT, budget=budget)


def test_healthy_traffic_is_answered_and_every_event_accounted_for(reference_agent, nats_server, traffic):
    reference_agent(unified=True)
    result, observations = traffic(nats_server.url, 3.0, 50).result(timeout=20)
    assert not result.get("failed"), result.get("msg")
    counts = result["counts"]
    assert counts["requests"] == counts["sent"] == counts["answered"] == counts["replies"] == 150, counts
    assert counts["unsent"] == counts["no_responders"] == counts["duplicate_replies"] == 0
    assert counts["events"] >= 2 * 14 and counts["events_unaccountable"] == 0
    assert result["event_accounting"].startswith("sequence") and result["changed"] is True
    assert result["connection"]["disconnects"] == 0 and observations["overflow"] is None
    written = pathlib.Path(result["dest"])  # atomically, into the folder it made: no temporary file left
    assert written.stat().st_mode & 0o777 == 0o644 and [p.name for p in written.parent.iterdir()] == [written.name]
    start = observations["started_at"]
    record = ledger(observations, start + 1.0, start + 1.1)
    requests, events = record["requests"]["totals"], record["events"]["totals"]
    assert requests["sent"] == requests["answered"] == 150 and requests["lost"] == requests["late"] == 0
    assert events["published"] == events["received"] >= 28 and events["lost"] == events["duplicated"] == 0
    assert events["reordered"] == 0 and events["unmatched"] == 0
    assert set(record["events"]["groups"]) == {"network-expert@dgx-1 legacy", "network-expert@dgx-1 unified"}
    assert record["verdict"] == "PASS", record["reasons"]


def test_an_agent_killed_and_restarted_loses_only_inside_the_window(reference_agent, nats_server, traffic):
    agent = reference_agent(unified=True)
    running = traffic(nats_server.url, 5.0, 50)
    time.sleep(1.8)  # the connection, the status round and about 1.5 s of traffic
    agent.kill()  # SIGKILL: no drain, no unsubscribe
    injected_at = time.time()
    time.sleep(1.0)
    reference_agent(unified=True)  # waits until it answers a targeted ping
    recovered_at = time.time()
    result, observations = running.result(timeout=20)
    assert not result.get("failed"), result.get("msg")
    counts = result["counts"]
    assert counts["requests"] == 250 and counts["unsent"] == 0 and counts["no_responders"] >= 40, counts
    record = ledger(observations, injected_at, recovered_at)
    requests, events = record["requests"]["totals"], record["events"]["totals"]
    assert requests["lost"] == requests["lost_in_window"] >= 50 and requests["lost_outside_window"] == 0, requests
    assert requests["answered"] + requests["lost"] == 250 and requests["duplicated"] == 0
    assert events["lost_outside_window"] == 0 and events["reordered"] == 0 and events["unmatched"] == 0, events
    assert events["published"] >= 2 * 15  # both processes' heartbeats, the new one counted from seq 1
    group = record["requests"]["groups"]["network-expert@dgx-1 %s" % PING]
    assert len(group["lost_in_window_ids"]) == min(20, requests["lost"])
    assert record["verdict"] == "FAIL" and any(r.startswith("requests lost: %d of 250" % requests["lost"])
                                               for r in record["reasons"]), record["reasons"]
    assert record["lost"][0].startswith("requests to network-expert@dgx-1 on %s: %d of 250 lost (%d in the failure "
                                        "window, 0 outside)" % (PING, requests["lost"], requests["lost"]))


def test_a_nats_server_restart_is_ridden_through_and_its_losses_counted(reference_agent, nats_server_factory,
                                                                         traffic):
    server = nats_server_factory()
    agent = reference_agent(unified=True, url=server.url)
    running = traffic(server.url, 6.0, 50)
    time.sleep(1.5)
    server.stop()
    injected_at = time.time()
    time.sleep(0.5)
    server.start()  # the same port
    agent.wait_ready(timeout=10)  # the agent waits 2 s between its reconnect attempts
    recovered_at = time.time()
    result, observations = running.result(timeout=25)
    assert not result.get("failed"), result.get("msg")
    counts, connection = result["counts"], result["connection"]
    assert connection["disconnects"] >= 1 and connection["reconnects"] >= 1, connection
    assert connection["disconnected_at_end"] is False and connection["outages"][0][1] is not None
    assert counts["requests"] == 300 and counts["unsent"] > 0, counts
    record = ledger(observations, injected_at, recovered_at, mode="nats-restart")
    requests, events = record["requests"]["totals"], record["events"]["totals"]
    assert requests["unsent"] == counts["unsent"] and requests["lost"] >= requests["unsent"]
    assert requests["lost_outside_window"] == 0 and events["lost_outside_window"] == 0, record["lost"]
    assert requests["answered"] >= 100 and record["timings"]["recovery_seconds"] is not None
    assert events["unmatched"] == 0 and events["reordered"] == 0


def test_check_mode_sends_nothing_and_bad_input_is_refused(run_module, traffic, tmp_path):  # noqa: F811
    # Nothing listens on port 1: check mode validates without connecting.
    result, observations = traffic("nats://127.0.0.1:1", 1.0, 10, check=True).result(timeout=10)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False and result["dest"] is None and observations is None
    assert "check mode, nothing sent" in result["summary"]
    for (duration, rate, options), why in (
            ((1.0, float("inf"), {}), "rate must be a number in (0, 10,000] requests per second, got inf"),
            ((float("nan"), 10, {}), "duration must be a number in (0, 3,600] seconds, got nan"),
            ((3600, 100, {}), "= 360000 requests"),
            ((1.0, 10, dict(targets=[dict(subject="agent.*.cmd.ping")])), "targets[0].subject")):
        result, observations = traffic("nats://127.0.0.1:1", duration, rate, **options).result(timeout=10)
        assert result["failed"] and why in result["msg"] and "nothing was sent" in result["msg"], result["msg"]
        assert observations is None
