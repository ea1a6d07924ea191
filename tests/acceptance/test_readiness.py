"""playbooks/readiness.yml on the test fleet (real nats-server, the reference agents in systemd
stand-ins, ansible-runner as AWX runs it), with the sandbox's compressed scenarios: phase 1's load
area - the fleet state read from the env files, the six load scenarios against every agent's ping
subject, their records, the comparison with the previous run, the performance gate and the status
page with its completion marker. A second run of one scenario that cannot hold its rate shows the
shortfall said and counted, the comparison with the first run, and a gate that fails naming what is
missing. Bad scenarios are refused before anything is sent."""

from __future__ import annotations

import json
import shutil

import pytest

from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_state

from .conftest import ARTIFACTS, AGENTS, HOSTS, env_flag, run_playbook, subject

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(900)]

SIX = ["10-concurrent", "50-concurrent", "ramp-up", "spike", "endurance", "soak"]


def lock_holder():
    """The test fleet's fleet lock as its store holds it (None when free)."""
    return fleet_state.FleetLock(fleet_state.DirStore(str(ARTIFACTS / "state")), "fleet").peek()


def tasks_ok(done, task_prefix: str) -> list:
    return [e for e in done.events
            if e.get("event") == "runner_on_ok" and e["event_data"].get("task", "").startswith(task_prefix)]


def read(run: str, relpath: str):
    return json.loads((ARTIFACTS / "readiness" / run / relpath).read_text())


def shown(done, task_prefix: str) -> list:
    """What the run's debug tasks whose names start with task_prefix printed (from its events: the
    console's YAML output wraps long lines)."""
    return [e["event_data"]["res"]["msg"] for e in done.events
            if e.get("event") == "runner_on_ok" and e["event_data"].get("task", "").startswith(task_prefix)]


@pytest.fixture(scope="module")
def first_run(sandbox, tmp_path_factory):
    # The test fleet's own artifacts: earlier runs of these tests would be previous runs.
    shutil.rmtree(ARTIFACTS / "readiness", ignore_errors=True)
    run = "readiness-test-first"
    done = run_playbook(tmp_path_factory.mktemp("readiness"), "readiness.yml", extravars=dict(readiness_run=run))
    assert done.rc == 0, done.stdout[-4000:]
    return run, done


def test_the_load_area_runs_the_six_scenarios_against_every_agent(first_run):
    run, done = first_run
    results = read(run, "load/results.json")
    assert sorted(results["scenarios"]) == sorted(SIX)
    for name in SIX:
        record = read(run, "load/%s.json" % name)
        assert record == results["scenarios"][name]
        assert record["scenario"] == name and record["requests"] > 0 and record["achieved_rate"] > 0, record["summary"]
        # Compressed for the sandbox (a minute is a second, at most 6 s), never run at production length.
        assert record["config"]["compressed"]["factor"] >= 60 and record["duration_seconds"] <= 6.001
        # Requested against achieved: the open model asks for a rate, the closed model for users.
        if record["model"] == "open":
            assert record["requested_rate"] > 0 and record["rate_reached"] == (record["dropped"] == 0)
        else:
            assert record["requested_rate"] is None and record["concurrency"]["requested_mean"] > 0
        assert record["latency_ms"]["p50"] <= record["latency_ms"]["p99"] and record["series"]
        assert [t["name"] for t in record["thresholds"]] == ["error_rate", "latency_p50", "latency_p99",
                                                            "abort_on_errors"]
        assert record["summary"] in shown(done, "Show scenario %s" % name)
        assert record["summary"].startswith("%s: %s model" % (name, record["model"]))
    assert results["previous"] is None
    assert results["comparison"]["scenarios"] == {name: {"status": "no previous run"} for name in SIX}
    # It held the fleet lock as readiness.yml, renewed it before each scenario and gave it up at the end.
    [taken] = tasks_ok(done, "Take the fleet lock")
    assert taken["event_data"]["res"]["holder"]["run_id"] == run
    assert taken["event_data"]["res"]["holder"]["playbook"] == "readiness.yml"
    assert len(tasks_ok(done, "Renew the fleet lock before scenario")) == len(SIX)
    assert lock_holder() is None


def test_the_load_goes_where_the_env_files_say(first_run):
    run, _ = first_run
    targets = read(run, "load/targets.json")
    assert targets["hosts"] == list(HOSTS) and [t["agent"] for t in targets["targets"]] == list(AGENTS)
    for target in targets["targets"]:
        flags = {host: env_flag(host, target["agent"]) == "true" for host in HOSTS}
        assert target["flags"] == flags, target
        via = "unified" if all(flags.values()) else "legacy"
        assert (target["via"], target["subject"]) == (via, subject(target["agent"], via)), target
    record = read(run, "load/spike.json")
    assert record["subjects"] == [t["subject"] for t in targets["targets"]]


def test_the_performance_gate_is_decided_from_the_records(first_run):
    run, _ = first_run
    gate = read(run, "gates/performance.json")
    assert gate["gate"] == "performance" and sorted(gate["measured"]) == sorted(SIX)
    assert (gate["outcome"] == "PASS") == (gate["reasons"] == []), gate["reasons"]
    evidence = {item["path"]: item["sha256"] for item in gate["evidence"]}
    assert str(ARTIFACTS / "readiness" / run / "load/results.json") in evidence
    for name in SIX:
        assert gate["measured"][name]["requests"] == read(run, "load/%s.json" % name)["requests"]


def test_the_status_page_shows_the_load_area_complete_and_the_rest_pending(first_run):
    run, _ = first_run
    folder = ARTIFACTS / "readiness" / run
    status = read(run, "status.json")
    load = status["areas"]["load"]
    gate = read(run, "gates/performance.json")
    assert (load["state"], load["done"], load["total"], load["progress"]) == ("complete", 6, 6, 1.0)
    assert load["outcome"] == "performance gate %s" % gate["outcome"]
    assert load["links"]["results"] == "load/results.json" and load["links"]["gate"] == "gates/performance.json"
    assert {area for area, entry in status["areas"].items() if entry["state"] == "pending"} == \
        set(status["areas"]) - {"load"}
    assert status["state"] == "running" and status["complete"] is False
    assert json.loads((folder / "load/complete").read_text())["outcome"] == load["outcome"]
    assert not (folder / "complete").exists()
    assert "http-equiv=\"refresh\"" in (folder / "status.html").read_text()
    assert "| load |" in (folder / "status.md").read_text()


def test_a_run_named_again_does_not_run_its_complete_load_area_twice(first_run, tmp_path):
    run, _ = first_run
    results = ARTIFACTS / "readiness" / run / "load/results.json"
    before = (results.stat().st_mtime_ns, results.read_bytes())
    done = run_playbook(tmp_path, "readiness.yml", extravars=dict(readiness_run=run))
    assert done.rc == 0, done.stdout[-4000:]
    assert shown(done, "Say that the load area is complete already")[0].startswith("Load: complete already in %s" % run)
    assert (results.stat().st_mtime_ns, results.read_bytes()) == before
    assert not any(e.get("event") == "runner_on_ok" and e["event_data"].get("task", "").startswith("Load scenario")
                   for e in done.events)


def test_a_rate_that_cannot_be_held_is_said_compared_and_fails_the_gate(first_run, tmp_path):
    run, _ = first_run
    second = "readiness-test-second"
    # One request in flight at most, 3,000 due each second: far more than one connection's round trips.
    scenario = {"soak": dict(executor="constant-arrival-rate", rate=3000, duration=60, max_vus=1)}
    done = run_playbook(tmp_path, "readiness.yml", extravars=dict(readiness_run=second,
                                                                  readiness_load_scenarios=scenario))
    assert done.rc == 0, done.stdout[-4000:]
    record = read(second, "load/soak.json")
    assert record["rate_reached"] is False and record["dropped"] > 0 and record["dropped_reasons"]["max_vus"] > 0
    assert record["requests"] + record["dropped"] == record["scheduled"]
    assert record["achieved_rate"] < record["requested_rate"] == pytest.approx(3000, rel=0.05)
    assert "DID NOT REACH the requested rate" in record["summary"] and shown(done, "Show scenario") == [record["summary"]]
    results = read(second, "load/results.json")
    assert results["previous"].endswith("/readiness/%s/load/results.json" % run), results["previous"]
    compared = results["comparison"]["scenarios"]["soak"]
    assert compared["status"] == "compared" and compared["same_configuration"] is False
    assert compared["metrics"]["dropped"]["current"] == record["dropped"]
    gate = read(second, "gates/performance.json")
    assert gate["outcome"] == "FAIL"
    assert any("soak" in reason and "dropped" in reason for reason in gate["reasons"]), gate["reasons"]
    for name in set(SIX) - {"soak"}:
        assert any(reason.startswith("no evidence: load scenario %s missing" % name) for reason in gate["reasons"])
    assert read(second, "status.json")["areas"]["load"]["outcome"] == "performance gate FAIL"


@pytest.mark.parametrize("scenarios, message", [
    ({"soak": dict(executor="constant-arrival-rate", rate="inf", duration=60, max_vus=1)},
     "readiness_load_scenarios.soak.rate: must be a number in (0, 10,000]"),
    ({"soak": dict(executor="constant-vus", vus=1, duration=60, colour="red")}, "colour"),
])
def test_bad_scenarios_are_refused_before_anything_is_sent(sandbox, tmp_path, scenarios, message):
    run = "readiness-test-refused"
    done = run_playbook(tmp_path, "readiness.yml", extravars=dict(readiness_run=run, readiness_load_scenarios=scenarios))
    assert done.rc != 0
    assert any("refused (nothing was sent)" in m and message in m for m in done.failed_messages()), \
        done.failed_messages() or done.stdout[-3000:]
    assert not (ARTIFACTS / "readiness" / run).exists()
    assert lock_holder() is None  # given up on the way out


def test_check_mode_validates_the_scenarios_and_sends_nothing(sandbox, tmp_path):
    run = "readiness-test-check"
    done = run_playbook(tmp_path, "readiness.yml", "--check", extravars=dict(readiness_run=run))
    assert done.rc == 0, done.stdout[-4000:]
    assert "valid; check mode, no request sent" in done.stdout
    assert not (ARTIFACTS / "readiness" / run).exists()


def test_a_host_left_out_stops_the_run_before_anything_is_sent(sandbox, tmp_path):
    run = "readiness-test-limited"
    done = run_playbook(tmp_path, "readiness.yml", "--limit", "localhost,dgx-1", extravars=dict(readiness_run=run))
    assert done.rc != 0
    assert any("certifies the whole fleet, but dgx-2, dgx-3 was not read" in m for m in done.failed_messages()), \
        done.failed_messages() or done.stdout[-3000:]
    assert not (ARTIFACTS / "readiness" / run).exists()
    assert lock_holder() is None  # given up on the way out
