"""plugins/plugin_utils/fleet_gates.py: the eight readiness gates (issue 10), each decided from its
evidence: PASS with good evidence, FAIL without it ("no evidence: ...") and FAIL on each kind of bad
evidence, every reason naming what failed and where; then the overall decision and its table."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import stat

import pytest
import yaml

from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_attest, fleet_gates as fg, fleet_ledger as fl
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import ArtifactStore, Layout
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_audit import AuditLog
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_evidence import EvidenceKey
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_journal import record_step

from tests.conftest import render_agent_unit_text
from tests.unit.conftest import REPO

pytestmark = pytest.mark.unit

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
COMMIT = "62ab867" + "0" * 33
KEY = EvidenceKey("gates-test-evidence-key-0123")
CRITERIA = str(REPO / "criteria/default.yml")


def write(path, text):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(str(path), "w", encoding="utf-8") as handle:
        handle.write(text if isinstance(text, str) else json.dumps(text))
    return str(path)


def failed(record, *parts):
    """The record failed, and one of its reasons holds every part (what and where)."""
    assert record["outcome"] == fg.FAIL, record
    assert any(all(part in reason for part in parts) for reason in record["reasons"]), (parts, record["reasons"])
    return record


def passed(record):
    assert record["outcome"] == fg.PASS, record["reasons"]
    assert record["reasons"] == [] and record["evidence"], record
    for item in record["evidence"]:
        assert item["sha256"] == hashlib.sha256(open(item["path"], "rb").read()).hexdigest()
    return record


def junit(tests=3, failures=(), errors=(), skipped=0):
    cases = []
    for number in range(tests):
        name = "test_%d" % number
        body = ('<failure message="assert 1 == 2">trace</failure>' if name in failures else
                '<error message="boom">trace</error>' if name in errors else
                "<skipped/>" if number < skipped else "")
        cases.append('<testcase classname="tests.unit.test_x" name="%s">%s</testcase>' % (name, body))
    return ('<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="%d">%s</testsuite></testsuites>'
            % (tests, "".join(cases)))


# ================================================================================ code

@pytest.fixture
def code_evidence(tmp_path):
    return dict(lint=write(tmp_path / "lint.json", {"tool": "ansible-lint", "rc": 0, "issues": []}),
                junit=write(tmp_path / "unit.xml", junit()))


def test_code_passes_on_a_clean_lint_and_passing_unit_tests(code_evidence):
    record = passed(fg.code_gate(**code_evidence))
    assert record["measured"]["lint_rc"] == 0 and record["measured"]["unit_tests"]["tests"] == 3
    assert {e["path"] for e in record["evidence"]} == set(code_evidence.values())


def test_code_fails_without_its_evidence(tmp_path, code_evidence):
    failed(fg.code_gate(str(tmp_path / "none.json"), code_evidence["junit"]), "no evidence", "none.json")
    failed(fg.code_gate(code_evidence["lint"], str(tmp_path / "none.xml")), "no evidence", "none.xml")


def test_code_fails_on_lint_issues_naming_them(tmp_path, code_evidence):
    issue = {"check_name": "no-changed-when", "severity": "major",
             "location": {"path": "roles/x/tasks/main.yml", "lines": {"begin": 12}}}
    lint = write(tmp_path / "lint.json", {"tool": "ansible-lint", "rc": 2, "issues": [issue]})
    failed(fg.code_gate(lint, code_evidence["junit"]), "ansible-lint exited 2", "no-changed-when at roles/x/tasks/main.yml:12",
           lint)
    no_rc = write(tmp_path / "norc.json", {"tool": "ansible-lint", "issues": []})
    failed(fg.code_gate(no_rc, code_evidence["junit"]), "no exit status", no_rc)
    failed(fg.code_gate(write(tmp_path / "bad.json", "{not json"), code_evidence["junit"]), "not readable JSON")


def test_code_fails_on_failed_erroring_or_absent_unit_tests(tmp_path, code_evidence):
    bad = write(tmp_path / "bad.xml", junit(failures=("test_1",), errors=("test_2",)))
    record = failed(fg.code_gate(code_evidence["lint"], bad), "1 failed, 1 in error", "tests.unit.test_x::test_1", bad)
    assert record["measured"]["unit_tests"]["failures"] == 1
    failed(fg.code_gate(code_evidence["lint"], write(tmp_path / "empty.xml", junit(tests=0))), "no test case")
    failed(fg.code_gate(code_evidence["lint"], write(tmp_path / "x.xml", "<html/>")), "not JUnit XML")


# ================================================================================ security

SECRET = "S3cret/Pass-For-Gates"
GOOD_VARS = {
    "fleet_nats_url": "tls://nats.internal:4222",
    "fleet_nats_controller_url": "{{ fleet_nats_url }}",
    "fleet_nats_user": "fleetwave-controller",
    "fleet_nats_password": "{{ vault_nats_password }}",
}
VAULT = ("vault_nats_password: !vault |\n  $ANSIBLE_VAULT;1.1;AES256\n  6231383465663739\n")


def make_inventory(folder, variables=None, vault=VAULT):
    write(folder / "group_vars/all/00-main.yml", yaml.safe_dump(GOOD_VARS if variables is None else variables))
    if vault is not None:
        write(folder / "group_vars/all/vault.yml", vault)
    return str(folder)


def make_project(folder, tasks, defaults=None):
    """A project with the collection's modules and one role whose tasks are given."""
    shutil.copytree(REPO / "plugins/modules", folder / "plugins/modules")
    shutil.copytree(REPO / "plugins/action", folder / "plugins/action")
    shutil.copytree(REPO / "meta", folder / "meta")
    write(folder / "playbooks/site.yml", yaml.safe_dump([{"name": "Site", "hosts": "all", "roles": ["r"]}]))
    write(folder / "roles/r/tasks/main.yml", yaml.safe_dump(tasks))
    write(folder / "roles/r/defaults/main.yml", yaml.safe_dump(defaults or {"r_plain": 1}))
    return str(folder)


@pytest.fixture
def security(tmp_path):
    artifacts = tmp_path / "artifacts"
    write(artifacts / "report.md", "# report\nnothing secret here\n")
    unit = write(tmp_path / "agent@.service", render_agent_unit_text())
    return dict(secrets={"NATS password": SECRET}, scan_roots=[str(artifacts)], project_root=str(REPO),
                inventory=make_inventory(tmp_path / "inventory"), unit_file=unit)


def test_security_passes_on_the_project_as_it_is_with_tls_auth_and_a_hardened_unit(security):
    record = passed(fg.security_gate(**security))
    measured = record["measured"]
    # Not vacuous: the project's tasks that handle NATS credentials were found, and each is covered.
    assert measured["no_log"]["tasks_handling_secrets"] >= 8 and measured["no_log"]["uncovered"] == 0
    assert {"fleet_nats_connection", "_agent_service_secrets"} <= set(
        measured["no_log"]["secret_variables"])
    assert measured["hardening"]["score"] == 100.0 and measured["files_scanned"] == 1


def test_security_fails_without_its_evidence(security, tmp_path):
    failed(fg.security_gate(**dict(security, secrets={})), "no evidence", "no secret values")
    failed(fg.security_gate(**dict(security, scan_roots=[str(tmp_path / "gone")])), "no evidence", "gone")
    failed(fg.security_gate(**dict(security, unit_file=str(tmp_path / "no.service"))), "no evidence", "no.service")
    failed(fg.security_gate(**dict(security, inventory=str(tmp_path / "noinv"))), "no evidence", "group_vars")
    failed(fg.security_gate(**dict(security, project_root=str(tmp_path))), "no evidence", "playbooks/ and roles/")


def test_security_names_the_file_a_secret_leaked_to_never_the_secret(security, tmp_path):
    leak = write(tmp_path / "artifacts/runs/r1/journal.jsonl", '{"msg": "connect nats://ctl:%s@host"}\n'
                 % SECRET.replace("/", "%2F"))
    record = failed(fg.security_gate(**security), "secret NATS password (%-encoded) found in", leak)
    assert not any(SECRET in r or SECRET.replace("/", "%2F") in r for r in record["reasons"])
    # The controller connection's credentials are searched in every spelling too.
    os.unlink(leak)
    write(tmp_path / "artifacts/x.log", "token tok-abcdef-123456 seen")
    failed(fg.security_gate(**dict(security, nats_connection={"url": "tls://tok-abcdef-123456@nats:4222"})),
           "NATS credential", "x.log")


def test_a_secret_split_across_read_blocks_is_found(tmp_path):
    path = write(tmp_path / "big.bin", "x" * ((1 << 20) - 5) + SECRET)
    assert fg.scan_for_secrets({"s": SECRET}, [str(tmp_path)])[0] == {"s": [path]}


def test_security_fails_on_a_task_that_shows_a_secret_without_no_log(security, tmp_path):
    tasks = [{"name": "Show the password", "ansible.builtin.debug": {"msg": "{{ fleet_nats_password }}"}}]
    project = make_project(tmp_path / "p", tasks)
    failed(fg.security_gate(**dict(security, project_root=project)), "Show the password", "ansible.builtin.debug",
           "msg", "without no_log", os.path.join("roles", "r", "tasks", "main.yml"))
    # no_log on the task, or on the block around it, covers it.
    assert fg.no_log_problems(make_project(tmp_path / "q", [dict(tasks[0], no_log=True)]))[0] == []
    assert fg.no_log_problems(make_project(tmp_path / "b", [{"block": tasks, "no_log": True}]))[0] == []


def test_a_secret_reached_through_other_variables_is_still_a_secret(tmp_path):
    defaults = {"r_conn": {"pw": "{{ fleet_nats_password }}"}, "r_wrapped": "{{ r_conn }}"}
    tasks = [{"name": "Log it", "ansible.builtin.debug": {"var": "r_wrapped"}},
             {"name": "Fact it", "ansible.builtin.set_fact": {"r_fact": "{{ vault_nats_token }}"}},
             {"name": "Check it is there", "ansible.builtin.assert": {"that": "r_conn is defined"}}]
    problems = fg.no_log_problems(make_project(tmp_path / "p", tasks, defaults))[0]
    assert [p.split(": ")[0].rsplit("(", 1)[1] for p in problems] == ["Log it)", "Fact it)"], problems


def test_collection_modules_that_declare_the_secret_no_log_need_no_task_no_log(tmp_path):
    # agent_env declares secret_values no_log (it masks them): the project's rule, not a blanket no_log.
    masked = [{"name": "Env", "fleetwave.rollout.agent_env": {"path": "/x", "secret_values": "{{ fleet_nats_password }}"}}]
    assert fg.no_log_problems(make_project(tmp_path / "a", masked))[0] == []
    unmasked = [{"name": "Env", "fleetwave.rollout.agent_env": {"path": "/x", "values": {"P": "{{ fleet_nats_password }}"}}}]
    assert "values" in fg.no_log_problems(make_project(tmp_path / "b", unmasked))[0][0]
    # module_defaults: the NATS group declares password/token no_log; agent_host_info does not.
    group = [{"module_defaults": {"group/fleetwave.rollout.nats": "{{ fleet_nats_connection }}"},
              "block": [{"name": "Ping", "fleetwave.rollout.nats_request": {"subject": "x"}}]}]
    defaults = {"fleet_nats_connection": {"password": "{{ fleet_nats_password }}"}}
    assert fg.no_log_problems(make_project(tmp_path / "c", group, defaults))[0] == []
    other = [{"module_defaults": {"fleetwave.rollout.agent_host_info": "{{ fleet_nats_connection }}"},
              "block": [{"name": "Info", "fleetwave.rollout.agent_host_info": {}}]}]
    problems = fg.no_log_problems(make_project(tmp_path / "d", other, defaults))[0]
    assert len(problems) == 1 and "agent_host_info" in problems[0] and "password/token" in problems[0]


def test_the_projects_own_conditional_no_log_counts_only_when_it_is_about_a_secret(tmp_path):
    task = {"name": "Env", "ansible.builtin.copy": {"dest": "/x", "content": "{{ fleet_nats_password }}"}}
    about = dict(task, no_log="{{ fleet_nats_password | length > 0 }}")
    assert fg.no_log_problems(make_project(tmp_path / "a", [about]))[0] == []
    unrelated = dict(task, no_log="{{ ansible_check_mode }}")
    assert fg.no_log_problems(make_project(tmp_path / "b", [unrelated]))[0]


def test_removing_no_log_from_the_projects_env_file_task_fails_the_gate(tmp_path):
    project = tmp_path / "p"
    shutil.copytree(REPO / "plugins", project / "plugins", symlinks=True)
    shutil.copytree(REPO / "meta", project / "meta")
    shutil.copytree(REPO / "playbooks", project / "playbooks")
    shutil.copytree(REPO / "roles", project / "roles")
    configure = project / "roles/agent_service/tasks/configure.yml"
    text = configure.read_text()
    assert 'no_log: "{{ _agent_service_secrets | length > 0 }}"' in text
    # Without no_log the secrets would still go in secret_values (masked); a value in `values` would not.
    configure.write_text(text.replace('  no_log: "{{ _agent_service_secrets | length > 0 }}"\n', "").replace(
        "agent_service_extra_env,", "agent_service_extra_env, _agent_service_secrets,"))
    problems = fg.no_log_problems(str(project))[0]
    assert len(problems) == 1 and "configure.yml" in problems[0] and "values" in problems[0], problems


@pytest.mark.parametrize("change, expected", [
    ({"fleet_nats_url": "nats://nats.internal:4222"}, ("NATS TLS", "fleet_nats_url", "not TLS", "00-main.yml")),
    ({"fleet_nats_url": "tls://a:4222,nats://b:4222"}, ("NATS TLS", "nats://b:4222")),
    ({"fleet_nats_controller_url": "nats://ctl:4222"}, ("NATS TLS", "fleet_nats_controller_url")),
    ({"fleet_nats_url": "tls://ctl:pw1234@nats:4222"}, ("NATS auth", "credentials in plain text", "tls://***@nats")),
    ({"fleet_nats_user": ""}, ("NATS auth", "fleet_nats_user is not set")),
    ({"fleet_nats_password": ""}, ("NATS auth", "fleet_nats_password is not set")),
    ({"fleet_nats_password": "hunter2hunter2"}, ("NATS auth", "plain text", "00-main.yml")),
    ({"fleet_nats_password": "{{ vault_other | default('') }}"}, ("vault_other", "not defined as a !vault")),
])
def test_security_fails_without_nats_auth_or_tls_in_the_production_inventory(security, tmp_path, change, expected):
    inventory = make_inventory(tmp_path / "inv", dict(GOOD_VARS, **change))
    record = failed(fg.security_gate(**dict(security, inventory=inventory)), *expected)
    assert "hunter2hunter2" not in json.dumps(record) and "pw1234" not in json.dumps(record)


def test_the_production_inventory_as_shipped_is_not_yet_tls(security):
    record = fg.security_gate(**dict(security, inventory=str(REPO / "inventory/production")))
    failed(record, "NATS TLS", "fleet_nats_url", "00-contract.yml")
    failed(record, "vault_nats_password", "not defined as a !vault")
    # Its fleet_lock_defaults carries the NATS connection: the fleet_lock module_defaults handle a secret, covered.
    assert "fleet_lock_defaults" in record["measured"]["no_log"]["secret_variables"]
    assert record["measured"]["no_log"]["tasks_handling_secrets"] >= 14 and record["measured"]["no_log"]["uncovered"] == 0


def test_a_vault_file_encrypted_whole_cannot_be_read_and_says_so(security, tmp_path):
    inventory = make_inventory(tmp_path / "inv", vault="$ANSIBLE_VAULT;1.1;AES256\n6231\n")
    failed(fg.security_gate(**dict(security, inventory=inventory)), "vault.yml", "encrypted whole")


def test_security_fails_on_an_unhardened_agent_unit_naming_what_is_missing(security, tmp_path):
    plain = write(tmp_path / "plain.service", render_agent_unit_text(agent_service_hardening=False))
    record = failed(fg.security_gate(**dict(security, unit_file=plain)), "hardening 0%", "plain.service",
                    "ProtectSystem=strict", "DynamicUser=yes or User=<not root>")
    assert record["measured"]["hardening"]["score"] == 0.0
    one_off = write(tmp_path / "one.service", render_agent_unit_text().replace("ProtectHome=yes\n", ""))
    record = failed(fg.security_gate(**dict(security, unit_file=one_off)), "ProtectHome=yes")
    assert 90 < record["measured"]["hardening"]["score"] < 100
    # A static non-root user counts as dropping root (the stand-ins' setting).
    static = write(tmp_path / "static.service", render_agent_unit_text(agent_service_user="fleetwave-agent"))
    passed(fg.security_gate(**dict(security, unit_file=static)))
    root = write(tmp_path / "root.service", render_agent_unit_text(agent_service_user="root"))
    failed(fg.security_gate(**dict(security, unit_file=root)), "DynamicUser=yes or User=<not root>")


# ================================================================================ performance

def scenario(**change):
    base = {"model": "open", "requested_rate": 100, "achieved_rate": 99.5, "requests": 6000, "errors": 0,
            "dropped": 0, "latency_ms": {"p50": 2.0, "p95": 8.0, "p99": 15.0},
            "thresholds": [{"name": "p99 under 200 ms", "metric": "latency_p99_ms", "comparator": "<",
                            "threshold": 200, "measured": 15.0, "passed": True}]}
    base.update(change)
    return base


def load_results(tmp_path, **scenarios):
    data = {name: scenario() for name in fg.LOAD_SCENARIOS}
    data.update(scenarios)
    return write(tmp_path / "load/results.json", {"scenarios": {k: v for k, v in data.items() if v is not None}})


def test_performance_passes_when_every_scenario_meets_the_criteria(tmp_path):
    record = passed(fg.performance_gate(load_results(tmp_path), CRITERIA))
    assert set(record["measured"]) == set(fg.LOAD_SCENARIOS)
    assert record["measured"]["spike"]["latency_p99_ms"] == 15.0 and record["measured"]["soak"]["error_rate_pct"] == 0.0


def test_performance_fails_without_its_evidence(tmp_path):
    failed(fg.performance_gate(str(tmp_path / "none.json"), CRITERIA), "no evidence", "none.json")
    failed(fg.performance_gate(load_results(tmp_path, soak=None), CRITERIA), "no evidence", "load scenario soak",
           "results.json")
    failed(fg.performance_gate(load_results(tmp_path), str(tmp_path / "nocriteria.yml")), "no evidence",
           "nocriteria.yml")
    failed(fg.performance_gate(write(tmp_path / "x.json", {"runs": []}), CRITERIA), "no scenarios")


def test_performance_does_not_ask_a_closed_model_for_a_requested_rate_but_for_its_achieved_rate(tmp_path):
    closed = scenario(model="closed", requested_rate=None, achieved_rate=480.0)
    record = passed(fg.performance_gate(load_results(tmp_path, **{"10-concurrent": closed}), CRITERIA))
    assert record["measured"]["10-concurrent"]["rate_check"] == "not applicable (closed model)"
    failed(fg.performance_gate(load_results(tmp_path, **{"10-concurrent": dict(closed, achieved_rate=None)}),
                               CRITERIA), "load scenario 10-concurrent", "no data for the achieved rate")
    # an open model (or one that does not say) still needs its requested rate
    failed(fg.performance_gate(load_results(tmp_path, spike=scenario(requested_rate=None)), CRITERIA),
           "load scenario spike", "no data for the requested and achieved rates")


@pytest.mark.parametrize("change, expected", [
    (dict(latency_ms={"p50": 2.0, "p95": 8.0, "p99": 250.0}), ("latency_p99_ms 250 ms", "latency_p99 is < 200")),
    (dict(latency_ms={"p50": 120.0, "p95": 150.0, "p99": 190.0}), ("latency_p50_ms 120",)),
    (dict(latency_ms={"p50": 2.0, "p95": 8.0}), ("no data for latency_p99_ms",)),
    (dict(errors=60), ("error_rate_pct 1 %", "error_rate is < 0.1")),
    (dict(requests=None), ("no data for error_rate_pct",)),
    (dict(achieved_rate=60), ("achieved 60/s of the requested 100/s", "60%")),
    (dict(achieved_rate=None), ("no data for the requested and achieved rates",)),
    (dict(dropped=40), ("40 request(s) dropped",)),
    (dict(thresholds=[]), ("no thresholds recorded",)),
    (dict(thresholds=[{"name": "p99", "comparator": "<", "threshold": 200, "passed": True}]),
     ("threshold p99: no measured value",)),
    (dict(thresholds=[{"name": "p99", "comparator": "<", "threshold": 10, "measured": 15.0, "passed": True}]),
     ("threshold p99: passed=True but measured 15 < 10 says otherwise",)),
    (dict(thresholds=[{"name": "p99", "comparator": "<", "threshold": 10, "measured": 15.0, "passed": False}]),
     ("threshold p99 failed: measured 15, limit < 10",)),
])
def test_performance_fails_on_each_kind_of_bad_result_naming_scenario_and_file(tmp_path, change, expected):
    results = load_results(tmp_path, spike=scenario(**change))
    record = failed(fg.performance_gate(results, CRITERIA), "load scenario spike", results, *expected)
    assert all("spike" in reason for reason in record["reasons"])


def stress_results(tmp_path, **changes):
    """Stress results: every stress scenario as it ran, beyond the peak (drops and a missed rate are
    figures there, not failures); changes replace a scenario (None leaves it out)."""
    scenarios = {name: scenario(requested_rate=500.0, achieved_rate=310.0, dropped=900, config={})
                 for name in fg.STRESS_SCENARIOS}
    scenarios["saturation-knee"] = scenario(executor="rate-search", config={}, thresholds=[],
                                            knee={"rate": 400.0, "stage": 3, "reason": "latency_p99_ms 250 > 200"})
    scenarios["overload-recovery"] = scenario(config={"recovery": {"metric": "latency_p99_ms"}},
                                              recovery={"recovered": True, "seconds": 1.2})
    for name, change in changes.items():
        scenarios[name] = None if change is None else dict(scenarios[name], **change)
    return write(tmp_path / "stress.json", {"scenarios": {k: v for k, v in scenarios.items() if v is not None}})


def test_stress_scenarios_are_held_to_their_own_thresholds_and_recovery_not_to_the_peak_criteria(tmp_path):
    record = passed(fg.performance_gate(load_results(tmp_path), CRITERIA, stress=stress_results(tmp_path)))
    stress = record["measured"]["stress"]
    assert sorted(stress) == sorted(fg.STRESS_SCENARIOS)
    assert stress["5x-peak"]["dropped"] == 900 and stress["saturation-knee"]["knee_rate"] == 400.0
    assert stress["overload-recovery"]["recovery_seconds"] == 1.2
    results = stress_results(tmp_path, **{"overload-recovery": dict(recovery={"recovered": False, "seconds": None,
                                                                               "note": "never back under 200 ms"})})
    failed(fg.performance_gate(load_results(tmp_path), CRITERIA, stress=results), "stress scenario overload-recovery",
           "did not recover after the overload: never back under 200 ms")
    failed(fg.performance_gate(load_results(tmp_path), CRITERIA, stress=stress_results(
        tmp_path, **{"2x-peak": dict(thresholds=[{"name": "p99", "comparator": "<", "threshold": 500, "measured": 800.0,
                                                  "passed": False}])})),
           "stress scenario 2x-peak", "threshold p99 failed: measured 800")
    failed(fg.performance_gate(load_results(tmp_path), CRITERIA, stress=stress_results(tmp_path, **{"large-payloads": None})),
           "no evidence: stress scenario large-payloads missing")
    failed(fg.performance_gate(load_results(tmp_path), CRITERIA, stress=str(tmp_path / "none.json")),
           "no evidence: the stress results expected at")


# ================================================================================ compliance

@pytest.fixture
def evidence_dir(tmp_path):
    folder = tmp_path / "evidence"
    write(folder / "load/results.json", {"scenarios": {}})
    write(folder / "summary.md", "# summary\n")
    with AuditLog(str(folder / "audit/readiness.jsonl"), key=KEY, anchors=str(folder / "audit/anchors.jsonl")) as log:
        for number in range(4):
            log.append("task_start", name="step %d" % number)
    fleet_attest.write_index(str(folder), now=NOW)
    return folder


def test_compliance_passes_when_index_and_signed_audit_trails_hold(evidence_dir):
    record = passed(fg.compliance_gate(str(evidence_dir), ["audit/readiness.jsonl"], KEY, required=["summary.md"]))
    assert record["measured"]["trails"]["audit/readiness.jsonl"]["ok"] is True
    assert record["measured"]["indexed_files"] == 4


def test_compliance_fails_without_its_evidence(evidence_dir, tmp_path):
    failed(fg.compliance_gate(str(evidence_dir), [], KEY), "no evidence", "no audit trail")
    failed(fg.compliance_gate(str(evidence_dir), ["audit/gone.jsonl"], KEY), "no evidence", "gone.jsonl")
    failed(fg.compliance_gate(str(tmp_path / "nothing"), ["audit/readiness.jsonl"], KEY), "no evidence", "nothing")
    os.unlink(evidence_dir / Layout.EVIDENCE_INDEX)
    failed(fg.compliance_gate(str(evidence_dir), ["audit/readiness.jsonl"], KEY), "no evidence", "evidence-index.json")


def test_compliance_fails_when_signatures_cannot_be_checked_or_do_not_hold(evidence_dir):
    failed(fg.compliance_gate(str(evidence_dir), ["audit/readiness.jsonl"], None), "no evidence key")
    failed(fg.compliance_gate(str(evidence_dir), ["audit/readiness.jsonl"], EvidenceKey("another-key-0123456789")),
           "audit/readiness.jsonl", "signed with key")


def test_compliance_fails_on_an_edited_trail_or_evidence_changed_since_its_index(evidence_dir):
    trail = evidence_dir / "audit/readiness.jsonl"
    lines = trail.read_text().splitlines(True)
    trail.write_text("".join(lines[:2] + [lines[2].replace('"step ', '"stop ')] + lines[3:]))
    record = failed(fg.compliance_gate(str(evidence_dir), ["audit/readiness.jsonl"], KEY), str(trail),
                    "broken at line 3")
    failed(record, "evidence-index.json is stale", "audit/readiness.jsonl changed")
    write(evidence_dir / "late.txt", "added after the index\n")
    failed(fg.compliance_gate(str(evidence_dir), ["audit/readiness.jsonl"], KEY), "late.txt added")


def test_compliance_fails_when_required_evidence_is_not_indexed_or_a_trail_lies_outside(evidence_dir, tmp_path):
    failed(fg.compliance_gate(str(evidence_dir), ["audit/readiness.jsonl"], KEY, required=["gates/gates.md"]),
           "evidence incomplete", "gates/gates.md")
    outside = tmp_path / "elsewhere.jsonl"
    shutil.copy(evidence_dir / "audit/readiness.jsonl", outside)
    failed(fg.compliance_gate(str(evidence_dir), [str(outside)], KEY), "outside the evidence folder", "elsewhere.jsonl")


# ================================================================================ docs

def make_runbooks(folder, **texts):
    for name in fg.RUNBOOKS:
        write(folder / ("%s.md" % name), texts.get(name, "# %s\n\nOn dgx-1: `systemctl status agent@tdd-expert`.\n" % name))
    write(folder / "index.md", texts.get("index", "# Runbooks\n\n" + "".join(
        "- [%s](%s.md)\n" % (n, n) for n in fg.RUNBOOKS)))
    return str(folder)


def test_docs_passes_with_rendered_runbooks_and_the_readme_commands(tmp_path):
    runbooks = make_runbooks(tmp_path / "runbooks")
    record = passed(fg.docs_gate(runbooks, str(REPO / "README.md"), str(REPO), mentions=("dgx-1", "dgx-2")))
    assert len(record["evidence"]) == len(fg.RUNBOOKS) + 2


def test_docs_fails_without_its_evidence(tmp_path):
    runbooks = make_runbooks(tmp_path / "runbooks")
    os.unlink(os.path.join(runbooks, "incident-response.md"))
    failed(fg.docs_gate(runbooks, str(REPO / "README.md"), str(REPO)), "no evidence", "runbook incident-response",
           "incident-response.md")
    os.unlink(os.path.join(runbooks, "index.md"))
    failed(fg.docs_gate(runbooks, str(REPO / "README.md"), str(REPO)), "no evidence", "runbook index")
    failed(fg.docs_gate(make_runbooks(tmp_path / "r2"), str(tmp_path / "README.md"), str(REPO)), "no evidence", "README")


@pytest.mark.parametrize("text, expected", [
    ("", "empty"),
    ("Deployment\n\nsteps on dgx-1\n", "no title"),
    ("# Deployment\n\nOn {{ inventory_hostname }}\n", "template syntax left unrendered"),
    ("# Deployment\n\nOn dgx-1: TODO write the steps\n", "placeholder 'TODO' on line 3"),
    ("# Deployment\n\nCall <on-call phone> on dgx-1\n", "placeholder '<on-call phone>'"),
    ("# Deployment\n\nOn the hosts\n", "names none of dgx-1"),
])
def test_docs_fails_on_a_runbook_not_rendered(tmp_path, text, expected):
    runbooks = make_runbooks(tmp_path / "runbooks", deployment=text)
    failed(fg.docs_gate(runbooks, str(REPO / "README.md"), str(REPO), mentions=("dgx-1",)),
           "runbook deployment", "deployment.md", expected)


def test_docs_fails_on_an_index_that_does_not_link_every_runbook(tmp_path):
    runbooks = make_runbooks(tmp_path / "runbooks", index="# Runbooks\n\n- [deployment](deployment.md)\n")
    failed(fg.docs_gate(runbooks, str(REPO / "README.md"), str(REPO)), "does not link", "troubleshooting.md")


def test_docs_fails_on_a_readme_without_the_commands_or_a_command_that_is_not_there(tmp_path):
    runbooks = make_runbooks(tmp_path / "runbooks")
    readme = write(tmp_path / "README.md", "# x\n\nRun scripts/test to test.\n\n```sh\nscripts/wave2-sandbox\n```\n")
    failed(fg.docs_gate(runbooks, readme, str(REPO)), "does not show the command scripts/test", "README.md")
    readme = write(tmp_path / "README2.md", "```sh\nscripts/wave2-sandbox\nscripts/test\nscripts/nope --x\n```\n")
    failed(fg.docs_gate(runbooks, readme, str(REPO), commands=fg.README_COMMANDS + ("scripts/nope",)),
           "scripts/nope", "not an executable file")


# ================================================================================ testing

def test_results(folder, commit=COMMIT, **change):
    summary = dict(commit=commit, rc=0, started="2026-12-02T05:40:00.000Z", finished="2026-12-02T05:50:00.000Z",
                   tests=3, failures=0, errors=0, skipped=0)
    summary.update(change)
    write(folder / commit / "summary.json", summary)
    write(folder / commit / "junit.xml", junit())
    return str(folder)


test_results.__test__ = False  # a helper, not a test


def test_testing_passes_on_fresh_green_results_for_this_commit(tmp_path):
    record = passed(fg.testing_gate(test_results(tmp_path / "results"), COMMIT, 3600, now=NOW))
    assert record["measured"]["age_seconds"] == 600.0 and record["measured"]["tests"] == 3
    assert [os.path.basename(e["path"]) for e in record["evidence"]] == ["summary.json", "junit.xml"]


def test_testing_fails_when_the_results_are_missing_naming_other_commits(tmp_path):
    results = tmp_path / "results"
    failed(fg.testing_gate(str(results), COMMIT, 3600, now=NOW), "no evidence", "no test results for commit " + COMMIT)
    test_results(results, commit="a" * 40)
    failed(fg.testing_gate(str(results), COMMIT, 3600, now=NOW), "no evidence", str(results / COMMIT),
           "other commits only: " + "a" * 40)
    test_results(results)
    os.unlink(results / COMMIT / "junit.xml")
    failed(fg.testing_gate(str(results), COMMIT, 3600, now=NOW), "no evidence", "junit.xml")
    failed(fg.testing_gate(str(results), "HEAD", 3600, now=NOW), "not a commit id")


def test_testing_fails_on_results_of_another_commit(tmp_path):
    results = test_results(tmp_path / "results")
    summary = json.loads(open(os.path.join(results, COMMIT, "summary.json")).read())
    write(tmp_path / "results" / COMMIT / "summary.json", dict(summary, commit="b" * 40))
    failed(fg.testing_gate(results, COMMIT, 3600, now=NOW), "another commit", "b" * 40, COMMIT)


@pytest.mark.parametrize("change, expected", [
    (dict(rc=1), "the test command exited 1"),
    (dict(failures=2, tests=3), "2 failures"),
    (dict(errors=1), "1 errors"),
])
def test_testing_fails_on_failing_results(tmp_path, change, expected):
    failed(fg.testing_gate(test_results(tmp_path / "results", **change), COMMIT, 3600, now=NOW), "failing", expected,
           "summary.json")


def test_testing_fails_on_a_junit_file_with_failures_or_counts_the_summary_does_not_match(tmp_path):
    results = test_results(tmp_path / "results")
    write(tmp_path / "results" / COMMIT / "junit.xml", junit(failures=("test_0",)))
    record = failed(fg.testing_gate(results, COMMIT, 3600, now=NOW), "the test suite", "1 failed", "junit.xml")
    failed(record, "disagree on failures (0 vs 1)")


def test_testing_fails_on_stale_results(tmp_path):
    results = test_results(tmp_path / "results", finished="2026-12-01T04:00:00.000Z")
    failed(fg.testing_gate(results, COMMIT, 3600, now=NOW), "stale", "2026-12-01T04:00:00.000Z", "at most 3600 s")
    results = test_results(tmp_path / "r2", finished="yesterday")
    failed(fg.testing_gate(results, COMMIT, 3600, now=NOW), "not a time with its zone")


# ================================================================================ deployment

SINCE = "2026-12-02T05:00:00.000Z"
PROOF = {"proven": True, "reasons": [], "hosts": ["dgx-1"], "instances": {}}
WATCH = {"seconds": 4.1, "rounds": [{"stable": True}], "stable": True, "reasons": []}


def rollback_record(tmp_path, started=NOW.timestamp() - 120, seconds="42.5", proof=PROOF, watch=WATCH,
                    outcome="rolled back"):
    """A rollback record written as playbooks/rollback.yml writes it (wave_journal -> record_step)."""
    store = ArtifactStore(str(tmp_path / "artifacts"))
    args = dict(run_id="rollback-20261202T055800Z", wave="wave2", step="rollback", started=started,
                finished=NOW.timestamp() - 60, outcome=outcome,
                detail=dict(targets=["network-expert"], seconds=seconds, legacy_only=proof, post_rollback=watch))
    return record_step(store, args, KEY)[1]


def test_deployment_passes_on_a_rollback_rehearsed_in_this_run_within_its_limit(tmp_path):
    path = rollback_record(tmp_path)
    assert path.endswith(Layout.rollback_record("rollback-20261202T055800Z"))
    record = passed(fg.deployment_gate(path, SINCE, 600, KEY))
    assert record["measured"]["seconds"] == 42.5 and record["measured"]["limit_seconds"] == 600


def test_deployment_fails_without_its_evidence(tmp_path):
    failed(fg.deployment_gate(str(tmp_path / "rollbacks/none.json"), SINCE, 600, KEY), "no evidence", "none.json")
    failed(fg.deployment_gate(rollback_record(tmp_path), None, 600, KEY), "no evidence", "start of this run")


@pytest.mark.parametrize("change, expected", [
    (dict(started=NOW.timestamp() - 7200), "not rehearsed in this run"),
    (dict(seconds="700.0"), "took 700 s, over its limit of 600 s"),
    (dict(seconds=None), "no duration"),
    (dict(proof=dict(PROOF, proven=False, reasons=["tdd-expert@dgx-1: 3 answer(s) on its unified subject"])),
     "legacy-only not proven after the rollback"),
    (dict(proof=None), "no detail.legacy_only proof"),
    (dict(watch=dict(WATCH, stable=False, reasons=["dgx-2: agent@tdd-expert restarted"])), "restarted"),
    (dict(outcome="failed"), "did not complete (outcome 'failed')"),
])
def test_deployment_fails_on_each_kind_of_bad_rollback(tmp_path, change, expected):
    path = rollback_record(tmp_path, **change)
    failed(fg.deployment_gate(path, SINCE, 600, KEY), expected, path)


def test_deployment_fails_on_an_edited_rollback_record(tmp_path):
    path = rollback_record(tmp_path, seconds="900.0")
    data = json.loads(open(path).read())
    data["detail"]["seconds"] = "42.0"  # made to look in time
    write(path, data)
    failed(fg.deployment_gate(path, SINCE, 600, KEY), path, "does not match its content")
    failed(fg.deployment_gate(path, SINCE, 600, EvidenceKey("another-key-0123456789")), "signed with key")


def test_deployment_with_the_failure_ledgers_passes_only_when_every_mode_is_within_budget(tmp_path):
    from tests.unit.test_fleet_ledger import ledger, traffic, write_all
    path = rollback_record(tmp_path)
    ledgers = write_all(tmp_path)
    record = passed(fg.deployment_gate(path, SINCE, 600, KEY, ledgers=ledgers))
    assert list(record["measured"]["failure_modes"]) == list(fl.FAILURE_MODES)
    assert {e["path"] for e in record["evidence"]} == {path, *ledgers}
    over = write_all(tmp_path, **{"node-freeze": ledger("node-freeze", requests=traffic(drop=("dgx-1-02",)))})
    failed(fg.deployment_gate(path, SINCE, 600, KEY, ledgers=over), "failure mode node-freeze",
           "node-freeze/ledger.json", "lost outside the failure window: 1 (at most 0)", "dgx-1-02")
    failed(fg.deployment_gate(path, SINCE, 600, KEY, ledgers=[]), "no evidence: no ledger of failure mode agent-kill")


# ================================================================================ support

SUPPORT = {"on_call": {"rotation": "fleetwave-platform-primary", "contact": "pagerduty:fleetwave-platform-primary"},
           "escalation": [{"name": "platform secondary", "contact": "pagerduty:secondary", "after_minutes": 15},
                          {"name": "infrastructure lead", "contact": "infra-lead@fleet.internal", "after_minutes": 30}],
           "runbook_url": "https://wiki.fleet.internal/fleetwave/runbooks"}


def test_support_passes_on_the_production_inventory():
    record = passed(fg.support_gate(str(REPO / "inventory/production")))
    assert record["measured"]["escalation_levels"] >= 2
    assert record["evidence"][0]["path"].endswith("00-contract.yml")


def test_support_fails_without_its_evidence(tmp_path):
    failed(fg.support_gate(make_inventory(tmp_path / "inv")), "no evidence", "fleet_support", "group_vars")
    failed(fg.support_gate(str(tmp_path / "nowhere")), "no evidence", "group_vars")


@pytest.mark.parametrize("change, expected", [
    (dict(on_call=None), "fleet_support.on_call is not set"),
    (dict(on_call={"rotation": "", "contact": "pagerduty:x"}), "fleet_support.on_call.rotation is empty"),
    (dict(on_call={"rotation": "x", "contact": "TBD"}), "fleet_support.on_call.contact is a placeholder ('TBD')"),
    (dict(on_call={"rotation": "x", "contact": "oncall@example.com"}), "placeholder ('example.com')"),
    (dict(on_call={"rotation": "x", "contact": "<pager>"}), "placeholder ('<pager>')"),
    (dict(on_call={"rotation": "x", "contact": "{{ vault_pager }}"}), "on_call.contact is a template"),
    (dict(escalation=[]), "fleet_support.escalation has no level"),
    (dict(escalation=[dict(SUPPORT["escalation"][0], after_minutes=30), SUPPORT["escalation"][1]]),
     "fleet_support.escalation[2].after_minutes 30"),
    (dict(escalation=[dict(SUPPORT["escalation"][0], name="TODO")]), "fleet_support.escalation[1].name is a placeholder"),
    (dict(runbook_url=None), "fleet_support.runbook_url is empty"),
])
def test_support_fails_on_empty_or_placeholder_values(tmp_path, change, expected):
    inventory = make_inventory(tmp_path / "inv", dict(GOOD_VARS, fleet_support=dict(SUPPORT, **change)))
    failed(fg.support_gate(inventory), expected, "00-main.yml")


# ================================================================================ all eight

def records(**outcomes):
    return [dict(gate=gate, outcome=outcomes.get(gate, fg.PASS), reasons=[] if outcomes.get(gate, fg.PASS) == fg.PASS
                 else ["%s: something" % gate], evidence=[], measured={}) for gate in fg.GATES]


def test_decide_gates_passes_only_when_all_eight_pass():
    assert fg.decide_gates(records()) == dict(outcome=fg.PASS, summary="8/8 gates PASS", failed=[], problems=[])
    decided = fg.decide_gates(records(security=fg.FAIL, testing=fg.FAIL))
    assert decided == dict(outcome=fg.FAIL, summary="6/8 gates PASS; FAIL: security, testing",
                           failed=["security", "testing"], problems=[])


def test_decide_gates_fails_on_a_gate_not_decided_or_decided_twice():
    decided = fg.decide_gates(records()[:-1])
    assert decided["outcome"] == fg.FAIL and decided["failed"] == ["support"] and "support not decided" in decided["summary"]
    assert decided["problems"] == ["support not decided"]
    decided = fg.decide_gates(records() + [records()[0]])
    assert decided["outcome"] == fg.FAIL and "code decided twice" in decided["summary"]
    assert decided["problems"] == ["code decided twice"]


def test_render_markdown_has_one_row_per_gate_with_its_evidence_linked(tmp_path):
    base = tmp_path / "readiness"
    results = load_results(base)
    rows = records(code=fg.FAIL)
    rows[2] = fg.performance_gate(results, CRITERIA)
    text = fg.render_markdown(rows, base_dir=str(base))
    lines = text.splitlines()
    assert lines[0] == "# Readiness gates: FAIL" and "7/8 gates PASS; FAIL: code" in text
    table = [line for line in lines if line.startswith("| ") and not line.startswith("| gate")]
    assert [line.split(" | ")[0][2:] for line in table] == list(fg.GATES)
    digest = hashlib.sha256(open(results, "rb").read()).hexdigest()[:12]
    assert "[results.json](load/results.json) `%s`" % digest in table[2]
    assert "code: something" in table[0]
    # A gate left out still has its row, failed.
    table = [line for line in fg.render_markdown(rows[:-1]).splitlines() if line.startswith("| support")]
    assert table == ["| support | FAIL | not decided | none |"]


def test_declared_public_test_values_are_searched_for_in_the_artifacts_only(security, tmp_path):
    # The sandbox's committed keys: in the repository by design, never in the artifacts.
    repo = tmp_path / "repo"
    write(repo / "inventory/sandbox/group_vars/all/50-sandbox.yml", "fleet_evidence_key: sandbox-key-not-a-secret\n")
    given = dict(security, secrets={"NATS password": SECRET, "fleet_evidence_key": "sandbox-key-not-a-secret"},
                 scan_roots=[str(repo), str(tmp_path / "artifacts")], public_scan_roots=[str(tmp_path / "artifacts")],
                 declared_public=["fleet_evidence_key"])
    record = passed(fg.security_gate(**given))
    assert record["measured"]["declared_public"] == ["fleet_evidence_key"]
    # The password (as given and %-encoded) in both roots, the public key in the artifacts only.
    assert record["measured"]["secrets_searched"] == 3
    leak = write(tmp_path / "artifacts/runs/journal.jsonl", '{"key": "sandbox-key-not-a-secret"}\n')
    failed(fg.security_gate(**given), "secret fleet_evidence_key found in", leak)
    # Not declared public, the same value in the repository is a leak.
    os.unlink(leak)
    failed(fg.security_gate(**dict(given, declared_public=())), "secret fleet_evidence_key found in", "50-sandbox.yml")


def test_a_production_inventory_that_declares_public_secrets_fails(security, tmp_path):
    inventory = make_inventory(tmp_path / "prod", dict(GOOD_VARS, readiness_public_secrets=["fleet_evidence_key"]))
    failed(fg.security_gate(**dict(security, inventory=inventory)), "readiness_public_secrets is set in the production")
