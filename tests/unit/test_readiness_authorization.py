"""The readiness run's evidence, authorization and reports actions (readiness_evidence,
readiness_authorize, readiness_certificate_info, readiness_reports) called as Ansible calls their act(), on a run folder built here: evidence
collected and indexed (audit trails copied whole lines only, with their anchors), the decision made from
the gate records and the areas, the certificate signed with keys read from the inventory and verified,
and a certificate refused when a file, its payload type or its signers are not what was signed. Also
the decision itself (fleet_gates.authorization_decision) and the criteria stated in the certificate."""

from __future__ import annotations

import base64
import json
import os
import types

import pytest
from ansible_collections.fleetwave.rollout.plugins.action import (readiness_authorize, readiness_certificate_info,
                                                                   readiness_evidence, readiness_reports)
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import (fleet_attest, fleet_gate, fleet_gates,
                                                                        fleet_status)
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_audit import AuditLog

from tests.unit.conftest import REPO

pytestmark = pytest.mark.unit

RUN = "readiness-20261203T100000Z"
CRITERIA = str(REPO / "criteria/default.yml")
SEEDS = {"release-manager": bytes([0x11]) * 32, "sre-lead": bytes([0x22]) * 32}
PRIVATE = {name: seed.hex() for name, seed in SEEDS.items()}
TRUSTED = [fleet_attest.SigningKey(name, value).trusted_entry() for name, value in PRIVATE.items()]
PHASE1 = [area for area in fleet_status.AREAS if fleet_status.PHASE_OF[area] == 1]


def gate_record(gate, outcome="PASS", reasons=()):
    return dict(gate=gate, outcome=outcome, reasons=list(reasons), evidence=[], measured={})


def action(module, check=False, **task_vars):
    act = object.__new__(module.ActionModule)
    act._task = types.SimpleNamespace(check_mode=check)
    act._templar = types.SimpleNamespace(template=lambda value: value)
    act.evidence_key = None
    act.task_vars = dict(task_vars)
    return act


def make_run(tmp_path, failed_gates=(), complete=PHASE1):
    """A run folder as the playbook leaves it before phase 2: the areas' status, the gates' records,
    the load results and an audit trail (with its anchors) under the run's audit folder."""
    run_dir = tmp_path / "readiness" / RUN
    for area in complete:
        fleet_status.update(str(run_dir), area, state="complete", outcome="done")
    for gate in fleet_gates.GATES:
        record = gate_record(gate, "FAIL", ["broken on purpose"]) if gate in failed_gates else gate_record(gate)
        (run_dir / "gates").mkdir(parents=True, exist_ok=True)
        (run_dir / "gates" / ("%s.json" % gate)).write_text(json.dumps(record))
    (run_dir / "load").mkdir(exist_ok=True)
    (run_dir / "load/results.json").write_text(json.dumps({"scenarios": {"spike": {"summary": "spike: open model, 100/s"}}}))
    audit = tmp_path / "audit"
    audit.mkdir(exist_ok=True)
    trail = audit / "readiness-20261203T100000Z.jsonl"
    with AuditLog(str(trail), anchors=str(audit / "anchors.jsonl")) as log:
        for number in range(3):
            log.append("task_start", name="step %d" % number)
    with AuditLog(str(audit / "wave2-x.jsonl"), anchors=str(audit / "anchors.jsonl")) as log:
        log.append("task_start", name="another trail's step")
    return run_dir, trail


def collect(tmp_path, run_dir, trail, check=False):
    return action(readiness_evidence, check).act(dict(
        artifacts_dir=str(tmp_path), run=RUN, files={"criteria.yml": CRITERIA, "missing.json": str(tmp_path / "nope")},
        folders={"gates": str(run_dir / "gates"), "load": str(run_dir / "load"), "later": str(run_dir / "later")},
        audit_trails=[str(trail)]), {})


def authorize(tmp_path, keys=None, check=False, **changes):
    args = dict(artifacts_dir=str(tmp_path), run=RUN, approvers=list(PRIVATE), trusted_keys=TRUSTED, threshold=2,
                valid_hours=24.0, fleet_state={"hosts": ["dgx-1"], "agents": [{"agent": "tdd-expert", "via": "unified"}]},
                criteria_file=CRITERIA, criteria_thresholds={}, constraint_gates=[], next_step="the final cut-over",
                audit_trails=["audit/readiness-20261203T100000Z.jsonl"], keys_only=False)
    args.update(changes)
    act = action(readiness_authorize, check, readiness_signing_keys=PRIVATE if keys is None else keys)
    return act.act(args, {})


def certificate_info(tmp_path, **changes):
    args = dict(certificate=str(tmp_path / "readiness" / RUN / "certificate.json"), base_dir=None,
                trusted_keys=TRUSTED, threshold=2)
    args.update(changes)
    return action(readiness_certificate_info).act(args, {})


def test_the_evidence_is_collected_indexed_and_summarized(tmp_path):
    run_dir, trail = make_run(tmp_path)
    result = collect(tmp_path, run_dir, trail)
    evidence = run_dir / "evidence"
    assert not result.get("failed") and result["changed"] is True, result
    assert result["missing"] == [str(tmp_path / "nope"), str(run_dir / "later")]
    index = json.loads((evidence / "evidence-index.json").read_text())
    listed = {entry["path"] for entry in index["files"]}
    assert {"criteria.yml", "gates/code.json", "load/results.json", "summary.md", "technical-report.md",
            "audit/readiness-20261203T100000Z.jsonl", "audit/anchors.jsonl"} <= listed
    assert result["files"] == len(index["files"]) and fleet_attest.check_index(str(evidence))
    # The anchors copied are this trail's only, and the copy verifies with them.
    anchors = [json.loads(line) for line in (evidence / "audit/anchors.jsonl").read_text().splitlines()]
    assert anchors and {entry["trail"] for entry in anchors} == {trail.name}
    summary = (evidence / "summary.md").read_text()
    assert summary.startswith("# Readiness run %s: executive summary" % RUN)
    assert "**Gates: PASS** (8/8 gates PASS)." in summary and "spike: open model, 100/s" in summary
    report = (evidence / "technical-report.md").read_text()
    assert "## Readiness gates: PASS" in report and "## Gate security: PASS" in report


def test_a_trail_still_being_written_is_copied_up_to_its_last_whole_line(tmp_path):
    run_dir, trail = make_run(tmp_path)
    whole = trail.read_bytes()
    with open(trail, "ab") as handle:
        handle.write(b'{"seq": 4, "event": "task_st')  # the writer is mid-line
    collect(tmp_path, run_dir, trail)
    copied = run_dir / "evidence/audit" / trail.name
    assert copied.read_bytes() == whole
    verdict = fleet_attest.fleet_audit.check(str(copied), anchors=str(copied.parent / "anchors.jsonl"))
    assert verdict.ok, verdict


def test_check_mode_collects_nothing_and_names_what_is_missing(tmp_path):
    run_dir, trail = make_run(tmp_path)
    result = collect(tmp_path, run_dir, trail, check=True)
    assert result["changed"] is False and str(tmp_path / "nope") in result["missing"]
    assert not (run_dir / "evidence/evidence-index.json").exists() and not (run_dir / "evidence/gates").exists()


def test_all_gates_passing_and_phase_1_complete_is_a_go_signed_and_verified(tmp_path, capsys):
    run_dir, trail = make_run(tmp_path)
    collect(tmp_path, run_dir, trail)
    result = authorize(tmp_path)
    assert not result.get("failed"), result
    assert (result["decision"], result["reasons"], result["constraints"]) == ("GO", [], [])
    assert result["signers"] == ["release-manager", "sre-lead"] and result["certificate"] == str(run_dir / "certificate.json")
    envelope = json.loads((run_dir / "certificate.json").read_text())
    statement = json.loads(base64.b64decode(envelope["payload"]))
    predicate = statement["predicate"]
    # The certificate states the next step's criteria as the criteria file has them.
    stated = fleet_gate.criteria_lines(fleet_gate.load_criteria(CRITERIA))
    assert predicate["success_criteria"] == stated["success_criteria"]
    assert predicate["rollback_triggers"] == stated["rollback_triggers"]
    assert "error_rate_high (per_agent): error_rate_pct > 1 %" in predicate["rollback_triggers"]
    assert predicate["next_step"] == "the final cut-over" and predicate["audit"][0]["path"].startswith("audit/readiness-")
    # The private keys are nowhere in what was written.
    written = b"".join(p.read_bytes() for p in run_dir.rglob("*") if p.is_file())
    for seed in SEEDS.values():
        assert seed.hex().encode() not in written and base64.b64encode(seed) not in written
    # scripts/verify-certificate accepts it, with the trusted keys written beside it.
    assert fleet_attest.main([str(run_dir / "certificate.json"), "--trusted-keys", str(run_dir / "trusted-keys.json"),
                              "--base-dir", str(run_dir / "evidence")]) == 0
    assert ": VALID: GO, signed by release-manager, sre-lead" in capsys.readouterr().out
    info = certificate_info(tmp_path)
    assert (info["valid"], info["decision"], info["signers"], info["run"]) == (True, "GO", ["release-manager", "sre-lead"], RUN)
    assert info["changed"] is False


def test_a_failed_gate_or_an_incomplete_area_is_a_no_go_naming_them(tmp_path):
    run_dir, trail = make_run(tmp_path, failed_gates=("deployment",), complete=[a for a in PHASE1 if a != "stress"])
    collect(tmp_path, run_dir, trail)
    result = authorize(tmp_path)
    assert result["decision"] == "NO-GO" and result["constraints"] == []
    assert result["reasons"] == ["area stress not complete", "gate deployment FAIL: broken on purpose"]
    predicate = json.loads(base64.b64decode(json.loads((run_dir / "certificate.json").read_text())["payload"]))["predicate"]
    assert predicate["decision"] == "NO-GO" and predicate["reasons"] == result["reasons"]
    info = certificate_info(tmp_path)
    assert info["valid"] is True and info["decision"] == "NO-GO"  # valid, and it says NO-GO


def test_a_failed_constraint_gate_is_a_go_with_constraints(tmp_path):
    run_dir, trail = make_run(tmp_path, failed_gates=("docs",))
    collect(tmp_path, run_dir, trail)
    result = authorize(tmp_path, constraint_gates=["docs", "support"])
    assert (result["decision"], result["reasons"]) == ("GO with constraints", [])
    assert result["constraints"] == ["gate docs FAIL: broken on purpose"]


def test_check_mode_decides_and_signs_nothing(tmp_path):
    run_dir, trail = make_run(tmp_path)
    collect(tmp_path, run_dir, trail)
    result = authorize(tmp_path, check=True)
    assert result["decision"] == "GO" and result["changed"] is False
    assert not (run_dir / "certificate.json").exists()


@pytest.mark.parametrize("keys, changes, message", [
    ({"release-manager": PRIVATE["release-manager"]}, {}, "no signing key for approver(s) sre-lead in readiness_signing_keys"),
    ({"release-manager": PRIVATE["release-manager"], "sre-lead": PRIVATE["release-manager"]}, {},
     "the signing key of sre-lead is not the trusted key of that approver"),
    ({"release-manager": PRIVATE["release-manager"], "sre-lead": "not-a-key-at-all"}, {},
     "the private key given for approver 'sre-lead' is not an Ed25519 private key"),
    (None, {"threshold": 3}, "threshold 3: at least 1 and at most the number of approvers who sign (2)"),
    (None, {"valid_hours": float("inf")}, "valid_hours inf: more than 0"),
    (None, {"constraint_gates": ["colour"]}, "constraint_gates names colour, not a gate"),
])
def test_what_cannot_be_signed_is_refused_naming_it_never_showing_a_key(tmp_path, keys, changes, message):
    run_dir, trail = make_run(tmp_path)
    collect(tmp_path, run_dir, trail)
    result = authorize(tmp_path, keys=keys, **changes)
    assert result["failed"] and message in result["msg"], result["msg"]
    for value in PRIVATE.values():
        assert value not in result["msg"]
    assert not (run_dir / "certificate.json").exists()


def test_keys_only_checks_the_keys_before_the_run_and_writes_nothing(tmp_path):
    assert authorize(tmp_path, keys_only=True, fleet_state={})["signers"] == list(PRIVATE)
    refused = authorize(tmp_path, keys={}, keys_only=True, fleet_state={})
    assert refused["failed"] and "no signing key for approver(s) release-manager, sre-lead" in refused["msg"]
    assert not (tmp_path / "readiness").exists()


def test_a_certificate_whose_evidence_or_payload_type_changed_is_refused_naming_it(tmp_path):
    run_dir, trail = make_run(tmp_path)
    collect(tmp_path, run_dir, trail)
    authorize(tmp_path)
    results = run_dir / "evidence/load/results.json"
    results.write_text(results.read_text().replace("100/s", "900/s"))
    info = certificate_info(tmp_path)
    assert info["valid"] is False and any("load/results.json" in f for f in info["failures"]), info["failures"]
    results.write_text(results.read_text().replace("900/s", "100/s"))
    assert certificate_info(tmp_path)["valid"] is True
    cert = run_dir / "certificate.json"
    envelope = json.loads(cert.read_text())
    cert.write_text(json.dumps(dict(envelope, payloadType="application/json")))
    info = certificate_info(tmp_path)
    assert info["valid"] is False and any("payloadType" in f for f in info["failures"])
    assert certificate_info(tmp_path, certificate=str(tmp_path / "none.json"))["failures"][0].endswith("No such file or directory")
    # One trusted key short of the threshold: refused.
    cert.write_text(json.dumps(dict(envelope, signatures=envelope["signatures"][:1])))
    info = certificate_info(tmp_path)
    assert info["valid"] is False and info["failures"] == [
        "1 distinct trusted approver key(s) signed (release-manager); 2 required"]


def test_the_decision_is_made_once_from_the_gates_and_the_areas():
    records = [gate_record(gate) for gate in fleet_gates.GATES]
    assert fleet_gates.authorization_decision(records) == ("GO", [], [])
    missing = records[:-1]  # support not decided
    assert fleet_gates.authorization_decision(missing) == ("NO-GO", ["gate support not decided (no record)"], [])
    assert fleet_gates.authorization_decision(missing, constraint_gates=["support"]) == (
        "GO with constraints", [], ["gate support not decided (no record)"])
    assert fleet_gates.authorization_decision(records, incomplete_areas=["reports"])[0] == "NO-GO"
    twice = records + [gate_record("code", "FAIL", ["x"])]
    decision, reasons, _ = fleet_gates.authorization_decision(twice, constraint_gates=list(fleet_gates.GATES))
    assert decision == "NO-GO" and "code decided twice" in reasons


def test_the_reports_are_rendered_from_the_run_folder_and_not_in_check_mode(tmp_path):
    run_dir, trail = make_run(tmp_path)
    collect(tmp_path, run_dir, trail)
    authorize(tmp_path)
    assert action(readiness_reports, check=True).act(dict(artifacts_dir=str(tmp_path), run=RUN), {})["written"] == []
    assert not (run_dir / "reports").exists()
    result = action(readiness_reports).act(dict(artifacts_dir=str(tmp_path), run=RUN), {})
    assert not result.get("failed") and result["changed"] is True
    assert {"reports/report.html", "reports/brief.html", "reports/report.md", "reports/brief.md"} <= set(result["written"])
    report = (run_dir / "reports/report.html").read_text()
    assert result["report"] == str(run_dir / "reports/report.html") and ">GO<" in report.replace(" ", "")
