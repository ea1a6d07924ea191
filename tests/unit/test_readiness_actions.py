"""The readiness run's controller actions, readiness_gate and readiness_status, called as Ansible calls
their act() (arguments already validated against their stubs): what they write, what check mode leaves
alone, and the messages of what they refuse."""

from __future__ import annotations

import json
import types

import pytest
from ansible_collections.fleetwave.rollout.plugins.action import readiness_gate, readiness_status

from tests.unit.conftest import REPO

pytestmark = pytest.mark.unit

RUN = "readiness-20261202T150000Z"


def action(module, check=False):
    act = object.__new__(module.ActionModule)
    act._task = types.SimpleNamespace(check_mode=check)
    act.evidence_key = None
    return act


def gate(tmp_path, evidence, check=False, name="performance"):
    return action(readiness_gate, check).act(dict(artifacts_dir=str(tmp_path), run=RUN, gate=name, evidence=evidence),
                                             {})


def test_a_gate_is_decided_from_its_evidence_and_recorded_in_the_run(tmp_path):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"scenarios": {}}))
    result = gate(tmp_path, dict(results=str(results), criteria_file=str(REPO / "criteria/default.yml")))
    assert not result.get("failed") and result["changed"] is True
    written = tmp_path / "readiness" / RUN / "gates/performance.json"
    assert result["dest"] == str(written) and json.loads(written.read_text()) == result["record"]
    assert result["record"]["outcome"] == "FAIL"
    assert "no evidence: load scenario 10-concurrent missing from %s" % results in result["record"]["reasons"]


def test_check_mode_decides_the_gate_and_writes_nothing(tmp_path):
    result = gate(tmp_path, dict(results=str(tmp_path / "none.json"), criteria_file=str(REPO / "criteria/default.yml")),
                  check=True)
    assert result["changed"] is False and result["record"]["outcome"] == "FAIL"
    assert not (tmp_path / "readiness").exists()


@pytest.mark.parametrize("evidence, message", [
    (dict(results="r.json", criteria_file="c.yml", colour="red"), "unknown evidence colour"),
    (dict(results="r.json"), "missing evidence criteria_file"),
    (dict(results="RESULTS", criteria_file=str(REPO / "criteria/default.yml"), scenarios=["spike"],
          min_rate_ratio="most"), "the evidence is not usable: can't multiply sequence"),
])
def test_evidence_the_gate_does_not_take_is_refused_naming_what_it_takes(tmp_path, evidence, message):
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"scenarios": {"spike": dict(
        model="open", requested_rate=10, achieved_rate=10, requests=10, errors=0, dropped=0,
        latency_ms=dict(p50=1, p95=2, p99=3), thresholds=[])}}))
    result = gate(tmp_path, {key: str(results) if value == "RESULTS" else value for key, value in evidence.items()})
    assert result["failed"] and message in result["msg"], result["msg"]
    if message.startswith(("unknown", "missing")):
        assert result["msg"].endswith("(the gate takes: results, criteria_file, scenarios, min_rate_ratio, max_dropped, "
                                      "stress, stress_scenarios)")
    assert not (tmp_path / "readiness").exists()


def status(tmp_path, check=False, **changes):
    args = dict(dict.fromkeys(("state", "done", "total", "progress", "message", "outcome", "links")),
                artifacts_dir=str(tmp_path), run=RUN, area="load")
    return action(readiness_status, check).act(dict(args, **changes), {})


def test_the_status_of_an_area_is_written_with_its_pages(tmp_path):
    result = status(tmp_path, state="running", done=2, total=6, message="spike")
    assert not result.get("failed") and (result["state"], result["complete"]) == ("running", False)
    assert result["area"]["progress"] == pytest.approx(2 / 6) and result["area"]["message"] == "spike"
    folder = tmp_path / "readiness" / RUN
    assert result["page"] == str(folder / "status.html")
    assert json.loads((folder / "status.json").read_text())["areas"]["load"]["done"] == 2
    assert (folder / "status.md").exists()


def test_check_mode_validates_the_change_and_writes_nothing(tmp_path):
    result = status(tmp_path, check=True, state="running")
    assert result["changed"] is False and result["area"]["state"] == "running"
    assert not (tmp_path / "readiness").exists()
    refused = status(tmp_path, check=True, state="complete", progress=2.0)
    assert refused["failed"] and "progress must be a finite number from 0 to 1" in refused["msg"]


def test_a_change_the_record_refuses_fails_naming_it_and_changes_nothing(tmp_path):
    status(tmp_path, state="complete", outcome="PASS")
    before = (tmp_path / "readiness" / RUN / "status.json").read_bytes()
    result = status(tmp_path, state="running")
    assert result["failed"] and "state cannot go from complete to running" in result["msg"]
    assert (tmp_path / "readiness" / RUN / "status.json").read_bytes() == before


def test_a_run_name_that_would_leave_the_store_is_refused(tmp_path):
    result = action(readiness_status).act(dict(dict.fromkeys(("state", "done", "total", "progress", "message",
                                                              "outcome", "links")),
                                               artifacts_dir=str(tmp_path), run="../escape", area="load",
                                               ), {})
    assert result["failed"] and "readiness run: '../escape' is not usable as a folder name" in result["msg"]


def test_the_security_gate_takes_its_secrets_from_the_inventory_never_from_arguments(tmp_path):
    act = action(readiness_gate)
    act._templar = types.SimpleNamespace(template=lambda value: value)
    act.task_vars = dict(fleet_nats_password="pw-1234567890", fleet_evidence_key="sandbox-key-not-a-secret",
                         readiness_signing_keys={"sre-lead": "ab" * 32}, readiness_public_secrets=["fleet_evidence_key",
                                                                                                  "readiness_signing_keys"])
    secrets, public = act.inventory_secrets()
    assert secrets == {"fleet_nats_password": "pw-1234567890", "fleet_evidence_key": "sandbox-key-not-a-secret",
                       "readiness_signing_keys[sre-lead]": "ab" * 32}
    assert public == ["fleet_evidence_key", "readiness_signing_keys"]
    # Given as an argument, a secret is refused: the gate takes it from the inventory only.
    refused = gate(tmp_path, dict(secrets={"x": "y"}, scan_roots=[], project_root=str(REPO), inventory=str(REPO),
                                  unit_file="u"), name="security")
    assert refused["failed"] and "unknown evidence secrets" in refused["msg"]


@pytest.mark.parametrize("keys, found", [
    # An AWX credential injects the approvers' keys as JSON text: still each key, searched for.
    ('{"sre-lead": "%s"}' % ("cd" * 32), {"readiness_signing_keys[sre-lead]": "cd" * 32}),
    # Text that is no mapping is no usable key, but is still a secret to search for.
    ("not json at all", {"readiness_signing_keys[(text)]": "not json at all"}),
])
def test_the_security_gate_searches_for_keys_given_as_text(keys, found):
    act = action(readiness_gate)
    act._templar = types.SimpleNamespace(template=lambda value: value)
    act.task_vars = dict(readiness_signing_keys=keys)
    assert act.inventory_secrets() == (found, [])


def test_the_approvers_keys_are_a_mapping_or_its_json_text_never_shown_when_refused():
    from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_attest
    assert fleet_attest.signing_keys_of('{"a": "k1"}') == {"a": "k1"} == fleet_attest.signing_keys_of({"a": "k1"})
    assert fleet_attest.signing_keys_of(None) == {} == fleet_attest.signing_keys_of("")
    for bad in ("secret-text-k9", '["secret-text-k9"]'):
        with pytest.raises(ValueError) as raised:
            fleet_attest.signing_keys_of(bad)
        assert "secret-text-k9" not in str(raised.value) and "readiness_signing_keys" in str(raised.value)
