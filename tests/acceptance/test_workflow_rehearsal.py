"""The wave workflow (awx/controller/workflows.yml) rehearsed without an AWX server.

The graph is walked from the data as AWX's workflow manager walks it (awx_config.run_workflow, unit
tested against AWX's rules in tests/unit/test_awx_config.py); each job node's playbook runs through
ansible-runner, as AWX runs it, on the test fleet, with the extra vars AWX would give that job: its
template's survey defaults, the node's answers, everything the jobs before it handed over with
set_stats (through the approval nodes), and the workflow's launch extra vars - here the test fleet's
compressed timings. The approvals are answered by the test.

What this proves: the edges, surveys and node answers of the data work with the real playbooks, and
each job finds in its extra vars what the jobs before it handed over. What it does not: AWX's own
scheduler, its credential injection, the execution environment image, or the controller's API.

Two paths, in this order (the file runs last: the healthy path leaves every wave flipped):
- a fault in wave 2 (a reference agent that loses 3 % of its unified copies) stops wave 2 at its
  first go/no-go, wave 2's first job fails, the approval after it is denied, and the rollback node
  rolls wave 2 back, taking over the lock of the run that job handed over;
- the healthy path: wave 1 GO; wave 2's first job pauses its run after phase 1's go/no-go, and the
  second, after an approval, resumes that run with phase 2; wave 3 GO; the readiness run and its
  sign-off.
The runner folders of each node (under pytest's tmp_path) hold what AWX's job would show: the extra
vars (env/extravars) and the set_stats data (the playbook_on_stats event's artifact_data).
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import awx_config

from tests.conftest import ROOT

from .conftest import (ARTIFACTS, CONTRACT, HOSTS, ensure_legacy, env_flag, journal_of, remember_legacy,
                       run_playbook, set_fault_knobs)

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(1200)]

WORKFLOW = "fleetwave waves"
DATA = awx_config.load_data(ROOT / "awx/controller")
# The workflow's launch extra vars (AWX gives them to every node, over everything else): one
# checkpoint per phase, no stagger; the readiness run's quick areas only (the test_readiness module
# runs them all).
LAUNCH = {"wave_stagger_seconds": 0,
          "wave_schedule": {"wave1": {"phase1": [{"label": "T+6h", "at": 1}]},
                            "wave2": {"phase1": [{"label": "phase1-T+2h", "at": 1}],
                                      "phase2": [{"label": "T+24h", "at": 1}]},
                            "wave3": {"phase1": [{"label": "T+24h", "at": 1}]}},
          "readiness_areas": ["runbooks", "gates", "evidence", "authorization", "reports"]}
FAULTY = ("dgx-2", "network-expert")


def wave_agents(wave: str) -> list[str]:
    return [agent for phase in CONTRACT["fleet_waves"][wave]["phases"] for agent in phase["agents"]]


class Rehearsal:
    """Runs each job node's playbook on the test fleet (ansible-runner, a folder per node) and
    answers the approvals from `denied`."""

    def __init__(self, tmp: Path, denied=()):
        self.tmp, self.denied, self.approvals = tmp, set(denied), []

    def run_job(self, node: str, template: dict, extra_vars: dict):
        playbook = str(Path(template["playbook"]).relative_to("playbooks"))
        run = run_playbook(self.tmp / node, playbook, extravars=extra_vars)
        return run.rc == 0, run.handed_over()

    def approve(self, node: str, approval: dict) -> bool:
        self.approvals.append((node, approval["name"], approval["timeout"]))
        return node not in self.denied

    def walk(self):
        status, steps = awx_config.run_workflow(DATA, WORKFLOW, self.run_job, self.approve, LAUNCH)
        (self.tmp / "walk.json").write_text(json.dumps(dict(status=status, steps=steps), indent=2, default=str))
        return status, {s["node"]: s for s in steps}, [(s["node"], s["status"]) for s in steps]


def run_events(tmp: Path, node: str) -> list[dict]:
    """The events ansible-runner kept of a node's job."""
    [private] = (tmp / node).glob("runner-*")
    return [json.loads(p.read_text()) for p in (private / "artifacts").glob("*/job_events/*.json")]


def runner_record(tmp: Path, node: str) -> tuple[dict, dict]:
    """What ansible-runner kept on disk of a node's job: the extra vars it was given, and what it
    handed over (artifact_data of its playbook_on_stats event: AWX's artifacts of the job)."""
    [private] = (tmp / node).glob("runner-*")
    given = json.loads((private / "env/extravars").read_text())
    [stats] = [e for e in run_events(tmp, node) if e.get("event") == "playbook_on_stats"]
    return given, stats["event_data"].get("artifact_data") or {}


@pytest.fixture(scope="module")
def fault_path(sandbox, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("workflow-fault")
    ensure_legacy(tmp)  # wave 1's agents flipped, the others legacy-only: as after wave 1
    host, agent = FAULTY
    set_fault_knobs(host, agent, FAULT_DROP_UNIFIED_RATE="0.03")
    try:
        walked = Rehearsal(tmp, denied={"wave2-stopped"}).walk()
    finally:
        # The rollback restored the pre-flip env file, which holds the knob: take it out (legacy-only still).
        set_fault_knobs(host, agent)
    remember_legacy()
    return tmp, walked


@pytest.fixture(scope="module")
def healthy_path(sandbox, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("workflow-healthy")
    ensure_legacy(tmp)
    return tmp, Rehearsal(tmp).walk()


def test_a_fault_in_wave2_takes_the_failure_edge_and_the_rollback_runs(fault_path):
    tmp, (status, steps, order) = fault_path
    assert order == [("wave1", "successful"), ("approve-wave2", "successful"), ("wave2-phase1", "failed"),
                     ("wave2-stopped", "failed"), ("rollback-wave2", "successful")], (order, tmp)
    assert status == "successful"  # the failure was handled: its edge led to the rollback
    # Wave 2 stopped at its first go/no-go, on the fault, before phase 2.
    gate = json.loads((ARTIFACTS / "checkpoints/wave2/phase1-verification/decision.json").read_text())
    assert gate["run_id"] == steps["wave2-phase1"]["artifacts"]["fleetwave_wave2"]["run_id"], gate["run_id"]
    assert gate["outcome"] == "NO-GO" and gate["next_step"] == "stop", gate["reasons"]
    assert any("dual_publish_success" in reason and "%s@%s" % (FAULTY[1], FAULTY[0]) in reason
               for reason in gate["reasons"]), gate["reasons"]
    # Every wave 2 agent is back on legacy subjects only, everywhere; wave 1's is not touched.
    for host in HOSTS:
        assert all(env_flag(host, agent) == "false" for agent in wave_agents("wave2")), host
        assert all(env_flag(host, agent) == "true" for agent in wave_agents("wave1")), host


def test_the_failed_wave_hands_its_run_to_the_rollback_which_takes_its_lock_over(fault_path):
    tmp, (_, steps, _) = fault_path
    given, handed = runner_record(tmp, "wave2-phase1")
    # wave 2's job got wave 1's hand-over through the approval node, and handed its own run over
    # at its pre-flight; it never got to a decision, nor to its pause.
    assert given["fleetwave_wave1"] == runner_record(tmp, "wave1")[1]["fleetwave_wave1"]
    assert given["fleetwave_wave1"]["decision"] == "GO"
    run_id = handed["fleetwave_wave2"]["run_id"]
    assert {k: v for k, v in handed["fleetwave_wave2"].items() if not k.startswith("audit_")} == {
        "run_id": run_id, "lock_holder": run_id, "decision": None}
    # The rollback node: its own answer (rollback_wave), its survey's default, and both hand-overs.
    given, handed = runner_record(tmp, "rollback-wave2")
    assert given == steps["rollback-wave2"]["extra_vars"]
    assert given["rollback_wave"] == "wave2" and given["fleet_lock_force"] == "false"
    assert given["fleetwave_wave2"]["run_id"] == run_id and "fleetwave_wave1" in given
    rollback = handed["fleetwave_rollback"]
    assert rollback["took_over"] == run_id, rollback
    assert rollback["wave"] == "wave2" and rollback["proven"] is True and rollback["stable"] is True, rollback
    phase1 = CONTRACT["fleet_waves"]["wave2"]["phases"][0]["agents"]
    assert set(phase1) <= set(rollback["restored"]) <= set(wave_agents("wave2")), rollback
    record = json.loads(Path(rollback["record"]).read_text())
    assert record["step"] == "rollback" and record["outcome"] == "rolled back", record
    # Only phase 1's agent had been flipped: it alone was changed, on every host.
    assert {host: sorted(agents) for host, agents in record["detail"]["changed"].items()} == {
        host: sorted(phase1) for host in HOSTS}, record["detail"]["changed"]


def test_the_healthy_path_ends_go_through_wave3_and_the_readiness_run(healthy_path):
    tmp, (status, steps, order) = healthy_path
    assert order == [(node, "successful") for node in
                     ("wave1", "approve-wave2", "wave2-phase1", "approve-wave2-phase2", "wave2", "approve-wave3",
                      "wave3", "readiness", "sign-off")], (order, tmp)
    assert status == "successful"
    for wave in ("wave1", "wave2", "wave3"):
        handed = steps[wave]["artifacts"]["fleetwave_" + wave]
        decision = ARTIFACTS / "checkpoints" / wave / "decision.json"
        assert handed["decision"] == "GO" and handed["lock_holder"] is None, handed
        assert json.loads(decision.read_text())["run_id"] == handed["run_id"]
        assert handed["decision_sha256"] == hashlib.sha256(decision.read_bytes()).hexdigest()
        for host in HOSTS:
            assert all(env_flag(host, agent) == "true" for agent in wave_agents(wave)), (wave, host)


def test_wave2s_second_job_resumes_the_run_its_first_job_paused(healthy_path):
    tmp, (_, steps, _) = healthy_path
    given, handed = runner_record(tmp, "wave2-phase1")
    assert given["wave_pause_after_phase"] == "phase1"  # the node's answer
    paused = handed["fleetwave_wave2"]
    assert {k: v for k, v in paused.items() if not k.startswith("audit_")} == {
        "run_id": paused["run_id"], "lock_holder": paused["run_id"], "decision": None, "paused_after": "phase1"}
    given, handed = runner_record(tmp, "wave2")
    assert given["fleetwave_wave2"] == paused and "wave_pause_after_phase" not in given
    # One run: the second job went on with it (its decision is that run's), and deployed phase 2 only.
    assert handed["fleetwave_wave2"]["run_id"] == paused["run_id"]
    records = journal_of(paused["run_id"])
    steps_taken = [(r["step"], r.get("phase")) for r in records]
    pause, resume = steps_taken.index(("pause", "phase1")), steps_taken.index(("resume", None))
    assert pause + 1 == resume and steps_taken.count(("run", None)) == 1, steps_taken
    assert {p for s, p in steps_taken[:pause] if s == "deploy"} == {"phase1"}
    assert {p for s, p in steps_taken[resume:] if s == "deploy"} == {"phase2"}
    assert steps_taken[-1] == ("decision", None) and records[-1]["outcome"] == "GO"


def test_each_wave_is_handed_the_run_of_the_wave_before_it(healthy_path):
    tmp, (_, steps, _) = healthy_path
    for wave, previous in (("wave2", "wave1"), ("wave3", "wave2")):
        given, _ = runner_record(tmp, wave)
        assert given == steps[wave]["extra_vars"]
        handed = runner_record(tmp, previous)[1]["fleetwave_" + previous]
        assert given["fleetwave_" + previous] == handed
        # The previous job's audit trail and its head when it handed over: the pre-flight checked it.
        assert Path(handed["audit_trail"]).is_file() and re.fullmatch(r"\d+:[0-9a-f]{64}", handed["audit_anchor"])
        checked = [e["event_data"]["res"] for e in run_events(tmp, wave) if e.get("event") == "runner_on_ok"
                   and e["event_data"].get("task") == "Ensure the previous wave's audit trail still holds its anchor"]
        assert len(checked) == 1 and "chain intact" in checked[0]["msg"], checked
        # The template's survey defaults, and the workflow's launch extra vars over them.
        assert given["wave_criteria_file"] == "criteria/default.yml" and given["wave_resume"] == "true"
        assert given["wave_schedule"] == LAUNCH["wave_schedule"]


def test_the_readiness_run_gets_every_wave_and_hands_its_certificate_over(healthy_path):
    tmp, (_, steps, _) = healthy_path
    given, handed = runner_record(tmp, "readiness")
    assert {"fleetwave_wave1", "fleetwave_wave2", "fleetwave_wave3"} <= set(given)
    # The survey's multiselect default is lines, not a list: AWX leaves it out of a node's job, so
    # the areas are the launch's (without them, the inventory's: every area).
    assert given["readiness_areas"] == LAUNCH["readiness_areas"]
    readiness = handed["fleetwave_readiness"]
    certificate = Path(readiness["certificate"])
    assert readiness["certificate_sha256"] == hashlib.sha256(certificate.read_bytes()).hexdigest()
    assert readiness["decision"] in ("GO", "NO-GO") and readiness["run_id"], readiness
    status = json.loads((ARTIFACTS / "readiness" / readiness["run_id"] / "status.json").read_text())
    assert [a for a in LAUNCH["readiness_areas"] if status["areas"][a]["state"] != "complete"] == [], status["areas"]
