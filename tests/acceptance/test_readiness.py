"""playbooks/readiness.yml on the test fleet (real nats-server, the reference agents in systemd
stand-ins, ansible-runner as AWX runs it), with the sandbox's compressed scenarios: the load area -
the fleet state read from the env files, the six load scenarios against every agent's ping subject,
their records, the comparison with the previous run, the performance gate - the five failure modes
injected with traffic through each, undone, each accounted for in its ledger - then the runbooks
rendered from the inventory, the gates decided from their evidence, the evidence collected, indexed
and judged (compliance), and the authorization certificate signed by the sandbox's approvers: a
certificate that scripts/verify-certificate accepts, refuses once a file, its payload type, its
signers or its window is not what was signed, and that a wave requiring it refuses to start on. The
status page with its completion markers throughout. A second run of one scenario that cannot hold
its rate shows the shortfall said and counted, the comparison with the first run, and a gate that
fails naming what is missing; its kill -9 over a budget of no loss fails the deployment gate and the
decision, naming what was lost. Bad scenarios are refused before anything is sent."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
import subprocess

import pytest
import yaml

from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_charts, fleet_state
from tests.browser import check_page, needs_chromium

from .conftest import (ARTIFACTS, AGENTS, HOSTS, ROOT, env_flag, fleet_snapshot, gather, run_playbook,
                       server_subscribers, subject)

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(900)]

SIX = ["10-concurrent", "50-concurrent", "ramp-up", "spike", "endurance", "soak"]
AREAS_RUN = ["rollback-rehearsal", "load", "stress", "failure-modes", "runbooks", "gates", "evidence", "authorization",
             "reports"]
MODES = ["agent-kill", "standin-stop", "nats-restart", "node-freeze", "env-corrupt-or-disk-full"]
STRESS = ["2x-peak", "5x-peak", "saturation-knee", "large-payloads", "slow-consumer", "connection-storm",
          "overload-recovery"]
GATES = ["code", "security", "performance", "compliance", "docs", "testing", "deployment", "support"]


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
    before = fleet_snapshot()
    done = run_playbook(tmp_path_factory.mktemp("readiness"), "readiness.yml", extravars=dict(readiness_run=run))
    assert done.rc == 0, done.stdout[-4000:]
    FLEET_AFTER.update(before=before, after=fleet_snapshot())
    return run, done


FLEET_AFTER: dict = {}  # the fleet before and after the first run (its failure modes undone)


def test_the_failure_modes_are_injected_undone_and_each_accounted_for_in_a_ledger(first_run):
    run, done = first_run
    status = read(run, "status.json")["areas"]["failure-modes"]
    ledgers = {mode: read(run, "failure-modes/%s/ledger.json" % mode) for mode in MODES}
    passed = [mode for mode, ledger in ledgers.items() if ledger["verdict"] == "PASS"]
    assert (status["state"], status["done"], status["total"]) == ("complete", 5, 5)
    assert status["outcome"] == "%d/5 failure modes within their budgets" % len(passed)
    assert status["links"]["agent-kill"] == "failure-modes/agent-kill/ledger.json"
    for mode, ledger in ledgers.items():
        window, measured = ledger["window"], ledger["measured"]
        # Every request sent and every event published accounted for, by the traffic's own records.
        traffic = read(run, "failure-modes/%s/traffic.json" % mode)
        assert measured["requests"] == traffic["counts"]["requests"] > 100, mode
        assert measured["events"] > 100 and measured["unmatched"] == 0, (mode, ledger["reasons"])
        totals = ledger["requests"]["totals"]
        assert totals["answered"] + totals["late"] + totals["lost"] == totals["sent"], mode
        # The failure was seen by the traffic and undone: injected < detected, recovered after it.
        assert window["injected_at"] < window["recovered_at"] and ledger["detected_by"] == "traffic", (mode, window)
        assert 0 < ledger["timings"]["detection_seconds"] <= 2 * 2 + 1, (mode, ledger["timings"])
        assert (ledger["verdict"] == "PASS") == (ledger["reasons"] == []), (mode, ledger["reasons"])
    # What each failure costs is where it was injected: the killed instance, the stopped host's instances.
    assert {g["target"] for g in ledgers["agent-kill"]["requests"]["groups"].values() if g["lost"]} <= \
        {"nats-expert@dgx-3"}
    assert ledgers["agent-kill"]["requests"]["totals"]["lost"] > 0
    assert {g["target"].split("@")[1] for g in ledgers["standin-stop"]["requests"]["groups"].values() if g["lost"]} \
        == {"dgx-3"}
    assert ledgers["nats-restart"]["requests"]["totals"]["unsent"] > 0  # cut off from the server, never buffered
    # Undone: the env files and flags are as before the run; every instance answers. The backups too,
    # but for those the rollback rehearsal took of the instance it rolled back (next test).
    before, after = FLEET_AFTER["before"], FLEET_AFTER["after"]
    assert {h: before[h]["files"] for h in HOSTS} == {h: after[h]["files"] for h in HOSTS}
    assert {h: before[h]["manifest"] for h in HOSTS if h != "dgx-3"} == \
        {h: after[h]["manifest"] for h in HOSTS if h != "dgx-3"}
    for agent in AGENTS:  # the server's view: the contract agent names no host, and answers once per request
        assert len(server_subscribers(subject(agent, "legacy"))) == len(HOSTS), agent
        assert gather(subject(agent, "legacy"))["replies"] >= 1, agent
    assert "corrupted" not in after["dgx-3"]["files"]


def test_a_rollback_is_rehearsed_on_one_instance_timed_recorded_and_put_back(first_run):
    run, done = first_run
    rehearsal = read(run, "rollback-rehearsal/rehearsal.json")
    status = read(run, "status.json")["areas"]["rollback-rehearsal"]
    assert (rehearsal["host"], rehearsal["agent"]) == ("dgx-3", "nats-expert")
    assert status["state"] == "complete" and status["links"]["rehearsal"] == "rollback-rehearsal/rehearsal.json"
    assert status["outcome"] == "rolled back in %s s (limit 600 s)" % rehearsal["rollback_seconds"]
    # Rolled back as rollback.yml does it: restored, legacy-only proven over NATS, watched, journaled and signed.
    record = json.loads((ARTIFACTS / "rollbacks" / ("rehearsal-%s.json" % run)).read_text())
    assert rehearsal["rollback_record"] == str(ARTIFACTS / "rollbacks" / ("rehearsal-%s.json" % run))
    assert (record["step"], record["outcome"], record["wave"]) == ("rollback", "rolled back", "readiness-rehearsal")
    assert record["evidence"] and record["detail"]["rehearsal"] == dict(run=run, host="dgx-3", agent="nats-expert")
    assert record["detail"]["legacy_only"]["proven"] is True and record["detail"]["post_rollback"]["stable"] is True
    assert record["detail"]["changed"] == {"dgx-3": ["nats-expert"]}
    assert 0 < record["detail"]["seconds"] == rehearsal["rollback_seconds"] <= 600
    assert status["started"] <= record["started"] <= record["finished"] <= status["finished"]
    # Put back byte for byte; the backups it took are all of that one file, added after those before the run.
    assert rehearsal["env_sha256"]["before"] == rehearsal["env_sha256"]["after"]
    manifests = [json.loads(FLEET_AFTER[when]["dgx-3"]["manifest"] or '{"backups": []}')["backups"]
                 for when in ("before", "after")]
    assert manifests[1][:len(manifests[0])] == manifests[0] and len(manifests[1]) > len(manifests[0])
    assert {entry["path"] for entry in manifests[1][len(manifests[0]):]} == {"/etc/agents/nats-expert.env"}
    # The deployment gate judged this rehearsal: nothing it says is about the rollback.
    gate = read(run, "gates/deployment.json")
    assert gate["measured"]["run_id"] == "rehearsal-%s" % run and gate["measured"]["proven"] is True
    assert all(r.startswith("failure mode ") for r in gate["reasons"]), gate["reasons"]


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
    assert len(tasks_ok(done, "Renew the fleet lock before scenario")) == len(SIX) + len(STRESS)
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
    assert gate["gate"] == "performance" and sorted(gate["measured"]) == sorted(SIX + ["stress"])
    assert sorted(gate["measured"]["stress"]) == sorted(STRESS)
    assert (gate["outcome"] == "PASS") == (gate["reasons"] == []), gate["reasons"]
    evidence = {item["path"]: item["sha256"] for item in gate["evidence"]}
    assert {str(ARTIFACTS / "readiness" / run / area / "results.json") for area in ("load", "stress")} <= set(evidence)
    for name in SIX:
        assert gate["measured"][name]["requests"] == read(run, "load/%s.json" % name)["requests"]
    for name in STRESS:
        assert gate["measured"]["stress"][name]["requests"] == read(run, "stress/%s.json" % name)["requests"]


def test_the_stress_area_runs_seven_scenarios_beyond_the_peak(first_run):
    run, done = first_run
    results = read(run, "stress/results.json")
    assert sorted(results["scenarios"]) == sorted(STRESS)
    records = {name: read(run, "stress/%s.json" % name) for name in STRESS}
    for name, record in records.items():
        assert record == results["scenarios"][name] and record["requests"] > 0, record["summary"]
        assert record["summary"] in shown(done, "Show scenario %s" % name)
    assert records["2x-peak"]["requested_rate"] == pytest.approx(200, rel=0.05)
    assert records["5x-peak"]["requested_rate"] == pytest.approx(500, rel=0.05)
    assert records["large-payloads"]["payload_bytes"] == 262144 and records["large-payloads"]["bytes_sent"] > 0
    storm = records["connection-storm"]["connections"]
    assert (storm["count"], storm["connect"]) == (200, "storm") and storm["opened"] + storm["failed"] == 200
    assert storm["connect_ms"]["p50"] is not None
    slow = records["slow-consumer"]["slow_consumer"]
    assert slow["subject"] == ">" and slow["received"] > 0
    knee = records["saturation-knee"]
    assert knee["stages_run"] and (knee["knee"] is not None or knee["knee_note"].startswith("no knee up to"))
    assert isinstance(records["overload-recovery"]["recovery"]["recovered"], bool)
    status = read(run, "status.json")["areas"]["stress"]
    assert (status["state"], status["done"], status["total"]) == ("complete", 7, 7)
    passed = sum(1 for record in records.values() if record["thresholds_passed"])
    assert status["outcome"] == "%d/7 scenarios within their thresholds" % passed


def test_the_status_page_shows_the_areas_run_complete_and_the_rest_pending(first_run):
    run, _ = first_run
    folder = ARTIFACTS / "readiness" / run
    status = read(run, "status.json")
    load = status["areas"]["load"]
    passed = sum(1 for name in SIX if read(run, "load/%s.json" % name)["thresholds_passed"])
    assert (load["state"], load["done"], load["total"], load["progress"]) == ("complete", 6, 6, 1.0)
    assert load["outcome"] == "%d/6 scenarios within their thresholds" % passed
    assert load["links"]["results"] == "load/results.json" and load["links"]["targets"] == "load/targets.json"
    assert status["areas"]["gates"]["links"]["performance"] == "gates/performance.json"
    assert set(status["areas"]) == set(AREAS_RUN)
    assert all(status["areas"][area]["state"] == "complete" for area in AREAS_RUN)
    assert status["state"] == "complete" and status["complete"] is True
    for area in AREAS_RUN:
        assert json.loads((folder / area / "complete").read_text())["outcome"] == status["areas"][area]["outcome"]
    assert all((folder / ("complete-phase-%d" % phase)).exists() for phase in (1, 2, 3))
    assert status["areas"]["authorization"]["links"]["certificate"] == "certificate.json"
    assert (folder / "complete").exists()
    assert "http-equiv=\"refresh\"" not in (folder / "status.html").read_text()  # complete: nothing to wait for
    assert "| load |" in (folder / "status.md").read_text()


def test_a_run_named_again_does_not_run_its_complete_load_area_twice(first_run, tmp_path):
    run, _ = first_run
    results = ARTIFACTS / "readiness" / run / "load/results.json"
    certificate = ARTIFACTS / "readiness" / run / "certificate.json"
    before = [(f.stat().st_mtime_ns, f.read_bytes()) for f in (results, certificate)]
    done = run_playbook(tmp_path, "readiness.yml", extravars=dict(readiness_run=run))
    assert done.rc == 0, done.stdout[-4000:]
    assert [(f.stat().st_mtime_ns, f.read_bytes()) for f in (results, certificate)] == before
    for area in AREAS_RUN:
        assert shown(done, "Say that this area is complete already: %s" % area), area
    assert shown(done, "Say that this area is complete already: load")[0].startswith("Load: complete already in %s" % run)
    assert not any(e.get("event") == "runner_on_ok" and e["event_data"].get("task", "").startswith("Load scenario")
                   for e in done.events)


def test_a_rate_that_cannot_be_held_and_a_failure_over_budget_fail_their_gates_and_the_decision(first_run, tmp_path):
    run, _ = first_run
    second = "readiness-test-second"
    # One request in flight at most, 3,000 due each second: far more than one connection's round trips.
    scenario = {"soak": dict(executor="constant-arrival-rate", rate=3000, duration=60, max_vus=1)}
    # kill -9 loses what was addressed to the instance until systemd has restarted it: over a budget of none.
    budgets = yaml.safe_load((ROOT / "inventory/production/group_vars/all/00-contract.yml").read_text())[
        "readiness_loss_budgets"]
    budgets["agent-kill"]["max_lost_pct"] = 0
    done = run_playbook(tmp_path, "readiness.yml", extravars=dict(
        readiness_run=second, readiness_areas=["load", "failure-modes", "gates", "evidence", "authorization"],
        readiness_failure_modes_to_run=["agent-kill"], readiness_load_scenarios=scenario,
        readiness_loss_budgets=budgets, readiness_failure_tail_seconds=6))
    assert done.rc == 0, done.stdout[-4000:]
    ledger = read(second, "failure-modes/agent-kill/ledger.json")
    lost = ledger["requests"]["totals"]["lost"]
    assert ledger["verdict"] == "FAIL" and lost > 0
    [reason] = [r for r in ledger["reasons"] if r.startswith("requests lost: %d of " % lost)]
    assert "at most 0 %" in reason and "requests to nats-expert@dgx-3 on agent.nats-expert.cmd.ping" in reason
    group = ledger["requests"]["groups"]["nats-expert@dgx-3 agent.nats-expert.cmd.ping"]
    assert group["lost_in_window_ids"] and all(i in reason for i in group["lost_in_window_ids"][:3])
    deployment = read(second, "gates/deployment.json")
    assert deployment["outcome"] == "FAIL"
    assert any(r.startswith("failure mode agent-kill: ") and "requests lost: %d of " % lost in r
               for r in deployment["reasons"]), deployment["reasons"]
    predicate = json.loads(base64.b64decode(read(second, "certificate.json")["payload"]))["predicate"]
    assert predicate["decision"] == "NO-GO"
    assert any(r.startswith("gate deployment FAIL") and "agent-kill" in r for r in predicate["reasons"]), \
        predicate["reasons"]
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
    assert any(reason.startswith("no evidence: the stress results") for reason in gate["reasons"]), gate["reasons"]
    status = read(second, "status.json")["areas"]
    assert status["load"]["state"] == "complete" and status["stress"]["state"] == "pending"
    assert (status["failure-modes"]["state"], status["failure-modes"]["total"]) == ("complete", 1)
    # Only the mode named was injected; the gate says the others are missing.
    assert not (ARTIFACTS / "readiness" / second / "failure-modes" / "standin-stop").exists()
    assert any(r.startswith("no evidence: no ledger of failure mode standin-stop") for r in deployment["reasons"])


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


def test_a_rehearsal_that_cannot_be_done_stops_the_run_gives_the_lock_up_and_changes_nothing(sandbox, tmp_path):
    run = "readiness-test-no-rehearsal"
    before = fleet_snapshot()
    done = run_playbook(tmp_path, "readiness.yml", extravars=dict(readiness_run=run,
                                                                  readiness_rehearsal_agent="no-such-agent"))
    assert done.rc != 0
    assert any("The rollback rehearsal of no-such-agent@dgx-3 failed" in m and "has no env file on" in m
               and "Nothing had been changed" in m for m in done.failed_messages()), \
        done.failed_messages() or done.stdout[-3000:]
    status = read(run, "status.json")["areas"]
    assert status["rollback-rehearsal"]["state"] == "failed" and status["load"]["state"] == "pending"
    assert lock_holder() is None
    assert fleet_snapshot() == before


def test_check_mode_validates_the_scenarios_and_sends_nothing(sandbox, tmp_path):
    run = "readiness-test-check"
    done = run_playbook(tmp_path, "readiness.yml", "--check", extravars=dict(readiness_run=run))
    assert done.rc == 0, done.stdout[-4000:]
    assert "valid; check mode, no request sent" in done.stdout
    assert not (ARTIFACTS / "readiness" / run).exists()


def test_an_unanswered_run_id_is_a_new_run(sandbox, tmp_path):
    """AWX may send an optional question left blank as null (ansible/awx#16205), and an extra var
    outranks any fact: the run still gets a new id, never a folder named None."""
    done = run_playbook(tmp_path, "readiness.yml", "--check", extravars=dict(readiness_run=None))
    assert done.rc == 0, done.stdout[-4000:]
    assert re.search(r"Readiness run readiness-\d{8}T\d{6}Z:", " ".join(done.stdout.split())), done.stdout[-3000:]
    assert not (ARTIFACTS / "readiness" / "None").exists()


def test_a_host_left_out_stops_the_run_before_anything_is_sent(sandbox, tmp_path):
    run = "readiness-test-limited"
    done = run_playbook(tmp_path, "readiness.yml", "--limit", "localhost,dgx-1", extravars=dict(readiness_run=run))
    assert done.rc != 0
    assert any("certifies the whole fleet, but dgx-2, dgx-3 was not read" in m for m in done.failed_messages()), \
        done.failed_messages() or done.stdout[-3000:]
    assert not (ARTIFACTS / "readiness" / run).exists()
    assert lock_holder() is None  # given up on the way out


# ================================================================================ gates, evidence, certificate

def verify_certificate(run, *args, trusted=None):
    """scripts/verify-certificate on the run's certificate, as an operator runs it offline."""
    folder = ARTIFACTS / "readiness" / run
    return subprocess.run([str(ROOT / "scripts/verify-certificate"), str(folder / "certificate.json"),
                           "--trusted-keys", str(trusted or folder / "trusted-keys.json"),
                           "--base-dir", str(folder / "evidence"), *args], capture_output=True, text=True)


def test_every_gate_is_decided_from_evidence_and_the_evidence_is_indexed(first_run):
    run, done = first_run
    folder = ARTIFACTS / "readiness" / run
    records = {gate: read(run, "gates/%s.json" % gate) for gate in GATES}
    for gate, record in records.items():
        assert record["gate"] == gate and record["outcome"] in ("PASS", "FAIL"), record
        assert (record["outcome"] == "PASS") == (record["reasons"] == []), record
    # Each gate is decided on what this fleet and repository really hold.
    assert records["docs"]["outcome"] == "PASS", records["docs"]["reasons"]       # the runbooks rendered
    assert records["support"]["outcome"] == "PASS", records["support"]["reasons"]
    assert records["compliance"]["outcome"] == "PASS", records["compliance"]["reasons"]
    assert records["code"]["measured"]["lint_rc"] == 0                           # ansible-lint ran, clean
    assert records["security"]["measured"]["hardening"]["score"] == 100.0         # the unit as systemd runs it
    assert records["security"]["measured"]["declared_public"] == ["fleet_evidence_key", "readiness_signing_keys"]
    assert not records["security"]["measured"]["leaks"]                            # no key written in the artifacts
    # The production inventory as shipped has no TLS: said, not hidden.
    assert any("TLS" in reason for reason in records["security"]["reasons"]), records["security"]["reasons"]
    # The deployment gate read every failure mode's ledger and this run's rehearsed rollback.
    assert set(records["deployment"]["measured"]["failure_modes"]) == set(MODES)
    assert not any("no ledger of failure mode" in r for r in records["deployment"]["reasons"])
    assert records["deployment"]["measured"]["outcome"] == "rolled back"
    index = json.loads((folder / "evidence/evidence-index.json").read_text())
    listed = {entry["path"] for entry in index["files"]}
    assert {"gates/%s.json" % gate for gate in GATES} <= listed
    assert {"summary.md", "technical-report.md", "criteria.yml", "load/results.json", "runbooks/index.md"} <= listed
    assert {"failure-modes/%s/ledger.json" % mode for mode in MODES} <= listed
    trails = [path for path in listed if path.startswith("audit/readiness-")]
    assert len(trails) == 1 and "audit/anchors.jsonl" in listed
    summary = (folder / "evidence/summary.md").read_text()
    assert "**Gates: FAIL**" in summary and "- docs: PASS" in summary


def test_the_decision_is_signed_and_verify_accepts_it(first_run):
    run, done = first_run
    envelope = read(run, "certificate.json")
    statement = json.loads(base64.b64decode(envelope["payload"]))
    predicate = statement["predicate"]
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["subject"][0]["name"] == "evidence-index.json" and len(statement["subject"]) > 20
    # Every area complete: the decision names every blocking gate, and no missing area.
    assert predicate["decision"] == "NO-GO"
    assert not any(r.startswith("area ") for r in predicate["reasons"]), predicate["reasons"]
    assert any(r.startswith("gate security FAIL") for r in predicate["reasons"])  # no TLS in production, above
    assert predicate["approvers"] == ["release-manager", "sre-lead"]
    assert predicate["fleet_state"]["hosts"] == list(HOSTS)
    assert [a["agent"] for a in predicate["fleet_state"]["agents"]] == list(AGENTS)
    assert "error_rate_high (per_agent): error_rate_pct > 1 %" in predicate["rollback_triggers"]
    assert [a for a in predicate["audit"] if a["path"].startswith("audit/readiness-")], predicate["audit"]
    verified = verify_certificate(run)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    handed = done.handed_over()["fleetwave_readiness"]  # for the workflow's sign-off
    certificate = ARTIFACTS / "readiness" / run / "certificate.json"
    assert (handed["run_id"], handed["decision"], handed["complete"]) == (run, "NO-GO", True)
    assert handed["certificate_sha256"] == hashlib.sha256(certificate.read_bytes()).hexdigest()
    assert ": VALID: NO-GO, signed by release-manager, sre-lead (2 distinct trusted keys, threshold 2)" in verified.stdout
    [decision] = shown(done, "Show the decision and how to verify the certificate")
    assert decision.startswith("Readiness run %s: NO-GO - gate " % run), decision
    # No signing key was written anywhere in the run's folder.
    written = b"".join(p.read_bytes() for p in (ARTIFACTS / "readiness" / run).rglob("*") if p.is_file())
    for key in ("75ba90f73d839f7a25c3fd99d56f66ae7c72acfb152aad46f15d75d242afab1b",
                "94d48970f3dd03e2f5e0537e9f882b1b97cada1bd37f2937cd1fb074ab0af4a9"):
        assert key.encode() not in written


def test_verify_refuses_an_edited_file_payload_type_too_few_keys_or_an_expired_window(first_run):
    run, _ = first_run
    folder = ARTIFACTS / "readiness" / run
    copy = ARTIFACTS / "readiness" / (run + "-copy")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(folder, copy)
    try:
        edited = copy / "evidence/gates/docs.json"
        edited.write_text(edited.read_text().replace('"PASS"', '"PASSED"'))
        refused = verify_certificate(run + "-copy")
        assert refused.returncode == 1 and "REFUSED" in refused.stdout
        assert any("gates/docs.json" in line for line in refused.stdout.splitlines() if line.startswith("FAILED:")), \
            refused.stdout
        shutil.copy2(folder / "evidence/gates/docs.json", edited)
        assert verify_certificate(run + "-copy").returncode == 0
        envelope = json.loads((copy / "certificate.json").read_text())
        (copy / "certificate.json").write_text(json.dumps(dict(envelope, payloadType="application/json")))
        refused = verify_certificate(run + "-copy")
        assert refused.returncode == 1 and "FAILED: payloadType is 'application/json'" in refused.stdout, refused.stdout
        (copy / "certificate.json").write_text(json.dumps(envelope))
        assert verify_certificate(run + "-copy").returncode == 0
    finally:
        shutil.rmtree(copy, ignore_errors=True)
    three = verify_certificate(run, "--threshold", "3")
    assert three.returncode == 1 and "3 required" in three.stdout, three.stdout
    expired = verify_certificate(run, "--at", "2099-01-01T00:00:00Z")
    assert expired.returncode == 1 and "expired" in expired.stdout, expired.stdout


def test_a_wave_that_requires_a_go_certificate_refuses_to_start_on_this_one(first_run, tmp_path):
    run, _ = first_run
    before = {host: {agent: env_flag(host, agent) for agent in AGENTS} for host in HOSTS}
    done = run_playbook(tmp_path, "wave1.yml", extravars=dict(
        wave_require_certificate=True, wave_certificate=str(ARTIFACTS / "readiness" / run / "certificate.json")))
    assert done.rc != 0
    assert any("needs a valid readiness certificate" in m and "its decision is NO-GO" in m
               for m in done.failed_messages()), done.failed_messages() or done.stdout[-3000:]
    assert {host: {agent: env_flag(host, agent) for agent in AGENTS} for host in HOSTS} == before
    assert lock_holder() is None


@needs_chromium
def test_the_reports_render_every_chart_in_headless_chromium(first_run, tmp_path):
    run, _ = first_run
    reports = ARTIFACTS / "readiness" / run / "reports"
    report = (reports / "report.html").read_text()
    ids = fleet_charts.chart_ids(report)
    # Requested vs achieved rate, and each scenario's latency and throughput over time; the areas' durations.
    assert {"load-rate", "timeline-durations"} <= set(ids)
    assert {"load-%s-%s" % (name, kind) for name in SIX for kind in ("latency", "throughput")} <= set(ids)
    assert "NO-GO" in report and "Not available" in report  # the decision; the ledgers are not there yet
    assert {"stress-rate"} | {"stress-%s-latency" % name for name in STRESS} <= set(ids)
    check_page(tmp_path, reports / "report.html", ids, 1200, fleet_charts.PALETTE[:3], charts_in_view=False)
    brief_ids = fleet_charts.chart_ids((reports / "brief.html").read_text())
    assert "load-rate" in brief_ids
    check_page(tmp_path, reports / "brief.html", brief_ids, 2000, fleet_charts.PALETTE[:1], charts_in_view=True)
    for name in ("report.md", "brief.md"):
        assert (reports / name).read_text().startswith("# ")
    assert (reports / "charts/load-rate.svg").read_text().startswith("<svg")
