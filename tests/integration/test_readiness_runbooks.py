"""The readiness_runbooks role through real ansible-playbook runs on localhost, with this repository's
ansible.cfg, against the production and the sandbox inventories (it only reads them: no host is
reached). The runbooks it writes must pass the readiness run's docs gate (fleet_gates.docs_gate),
name the inventory's hosts and the facts of the inventory (on-call rotation, subjects, thresholds as
judged, scenarios, loss budgets, the rollback command), hold no secret, and be written idempotently
and never in check mode."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml
from ansible_collections.fleetwave.rollout.plugins.module_utils.agent_env import FLAG_KEY
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_gates

pytestmark = pytest.mark.integration

REPO = pathlib.Path(__file__).resolve().parents[2]
PLAYBOOK = pathlib.Path(sys.executable).parent / "ansible-playbook"
ROLE = REPO / "roles/readiness_runbooks"
CONTRACT = yaml.safe_load((REPO / "inventory/production/group_vars/all/00-contract.yml").read_text())
SANDBOX = yaml.safe_load((REPO / "inventory/sandbox/group_vars/all/50-sandbox.yml").read_text())
INVENTORIES = ("inventory/production", "inventory/sandbox")
RUN_ID = "readiness-20261202T061500Z"
# Credentials as vault or an AWX credential would give them, in every place the inventory takes them:
# none of these values may reach a runbook.
CREDENTIALS = dict(vault_nats_user="fleetwave-controller", vault_nats_password="Pw-9f3kQ-never-shown",
                   fleet_nats_url="nats://fleetwave-controller:Pw-9f3kQ-never-shown@nats.internal:4222",
                   fleet_nats_controller_url="tls://Tok-7Hq2-never-shown@controller-side.internal:4222",
                   fleet_nats_monitor_url="http://monitor:Mon-4Jd8-never-shown@nats.internal:8222/",
                   fleet_evidence_key="Key-2Vb6-never-shown-0123456789")
# ... nor any secret the sandbox commits (public there, and still never to be written out).
SECRET_VALUES = ["Pw-9f3kQ-never-shown", "Tok-7Hq2-never-shown", "Mon-4Jd8-never-shown", "Key-2Vb6-never-shown",
                 SANDBOX["fleet_evidence_key"], *(SANDBOX.get("readiness_signing_keys") or {}).values()]


class Run:
    """One ansible-playbook run of the role: its exit status, output and localhost's counts."""

    def __init__(self, proc):
        self.rc = proc.returncode
        self.output = proc.stdout + proc.stderr
        try:
            self.stats = json.loads(proc.stdout)["stats"]["localhost"]
        except (ValueError, KeyError):
            self.stats = None


def run_role(workdir, inventory, runbooks_dir, *args, extra=None):
    """The role on localhost as the readiness run calls it, from a play of its own in workdir."""
    workdir.mkdir(parents=True, exist_ok=True)
    play = dict(name="Render the runbooks", hosts="localhost", gather_facts=False,
                roles=[dict(role="fleetwave.rollout.readiness_runbooks")])
    (workdir / "play.yml").write_text(yaml.safe_dump([play], sort_keys=False))
    variables = dict(readiness_runbooks_dir=str(runbooks_dir), readiness_runbooks_inventory=inventory,
                     ansible_python_interpreter=sys.executable, **(extra or {}))
    (workdir / "vars.json").write_text(json.dumps(variables))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_LOCAL_TEMP=str(workdir / ".tmp"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(PLAYBOOK), "-i", str(REPO / inventory), "play.yml", "-e", "@vars.json", *args],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=180)
    return Run(proc)


def dgx_hosts(inventory):
    return list(yaml.safe_load((REPO / inventory / "hosts.yml").read_text())["all"]["children"]["dgx"]["hosts"])


def files(folder):
    return {p.name: p.read_text() for p in sorted(pathlib.Path(folder).iterdir())}


@pytest.fixture(scope="module", params=INVENTORIES)
def rendered(request, tmp_path_factory):
    """The runbooks of one inventory, rendered with credentials set and a run id, then rendered again."""
    inventory = request.param
    workdir = tmp_path_factory.mktemp(inventory.replace("/", "-"))
    runbooks = workdir / "readiness" / RUN_ID / "runbooks"
    extra = dict(CREDENTIALS, readiness_runbooks_run=RUN_ID)
    first = run_role(workdir, inventory, runbooks, extra=extra)
    assert first.rc == 0, first.output
    written = files(runbooks)
    second = run_role(workdir, inventory, runbooks, extra=extra)
    assert second.rc == 0, second.output
    return dict(inventory=inventory, dir=runbooks, first=first, second=second, written=written,
                text=files(runbooks), workdir=workdir)


def test_the_role_renders_the_runbooks_the_docs_gate_expects():
    names = yaml.safe_load((ROLE / "vars/main.yml").read_text())
    assert tuple(names["_readiness_runbooks_names"]) == fleet_gates.RUNBOOKS
    assert names["_readiness_runbooks_index"] + ".md" == fleet_gates.RUNBOOK_INDEX
    assert names["_readiness_runbooks_flag"] == FLAG_KEY


def test_the_five_runbooks_and_their_index_are_written(rendered):
    expected = {"%s.md" % name for name in fleet_gates.RUNBOOKS} | {fleet_gates.RUNBOOK_INDEX}
    assert set(rendered["text"]) == expected
    assert rendered["first"].stats["changed"] > 0
    for name in expected:
        assert oct((rendered["dir"] / name).stat().st_mode & 0o777) == "0o644", name


def test_the_docs_gate_passes_on_them(rendered):
    record = fleet_gates.docs_gate(str(rendered["dir"]), readme=str(REPO / "README.md"), project_root=str(REPO),
                                   mentions=dgx_hosts(rendered["inventory"]))
    assert record["outcome"] == fleet_gates.PASS, record["reasons"]
    assert sorted(record["measured"]["runbooks"]) == sorted(fleet_gates.RUNBOOKS)


def test_the_index_links_every_runbook(rendered):
    index = rendered["text"][fleet_gates.RUNBOOK_INDEX]
    for name in fleet_gates.RUNBOOKS:
        assert "](%s.md)" % name in index


def test_every_runbook_names_every_host_the_inventory_and_the_run(rendered):
    for name, text in rendered["text"].items():
        assert text.startswith("# "), name
        for host in dgx_hosts(rendered["inventory"]):
            assert "`%s`" % host in text, (name, host)
        assert "`%s`" % rendered["inventory"] in text, name
        assert RUN_ID in text, name


def test_no_secret_and_no_url_user_info_is_rendered(rendered):
    for name, text in rendered["text"].items():
        assert [value for value in SECRET_VALUES if value in text] == [], name
        assert "fleetwave-controller:" not in text and "***" not in text, name
    header = rendered["text"]["deployment.md"]
    assert "`nats://nats.internal:4222`" in header
    assert "`tls://controller-side.internal:4222`" in header
    assert "`http://nats.internal:8222`" in header


def test_incident_response_names_the_rotation_the_escalation_and_the_rollback(rendered):
    text, inventory = rendered["text"]["incident-response.md"], rendered["inventory"]
    support = CONTRACT["fleet_support"]
    assert "`%s`" % support["on_call"]["rotation"] == "`fleetwave-platform-primary`"
    assert "`fleetwave-platform-primary`" in text and support["on_call"]["contact"] in text
    for number, level in enumerate(support["escalation"], 1):
        assert "| %d | %s | %s | no answer for %d min |" % (number, level["name"], level["contact"],
                                                          level["after_minutes"]) in text
    assert support["runbook_url"] in text
    for wave in CONTRACT["fleet_waves"]:
        assert "`ansible-playbook -i %s playbooks/rollback.yml -e rollback_wave=%s`" % (inventory, wave) in text
    assert "-e fleet_lock_force=true" in text
    for mode, budget in CONTRACT["readiness_loss_budgets"].items():
        assert "| `%s`:" % mode in text
        assert "| %s %% (%s outside the window) |" % (budget["max_lost_pct"], budget["max_lost_outside_window"]) in text


def test_troubleshooting_gives_every_agents_subjects_unit_and_env_file(rendered):
    text = rendered["text"]["troubleshooting.md"]
    for name, agent in CONTRACT["fleet_agents"].items():
        legacy = CONTRACT["fleet_subject_legacy"].format(name=name, **agent)
        unified = CONTRACT["fleet_subject_unified"].format(name=name, **agent)
        row = "| `%s` | `%s` | `%s` | `%s.cmd.ping` | `%s.cmd.ping` | `agent@%s.service` | `/etc/agents/%s.env` |" % (
            name, agent["cluster"], agent["id"], legacy, unified, name, name)
        assert row in text
    assert "agents.quality-assurance.01936faa-f4cb-7000-8000-00000000000a.cmd.ping" in text
    assert "journalctl -u agent@$AGENT.service" in text and "systemctl status agent@$AGENT.service" in text


def test_deployment_gives_the_wave_commands_and_this_inventorys_timings(rendered):
    text, inventory = rendered["text"]["deployment.md"], rendered["inventory"]
    assert "ansible-playbook -i %s playbooks/wave2.yml\n" % inventory in text
    assert "`playbooks/wave1.yml`, `playbooks/wave3.yml`" in text
    assert "| `wave2` | `wave1` GO | `phase2` | `tdd-expert` | T+1h, T+6h, T+12h, T+24h |" in text
    if inventory == "inventory/production":
        assert "hosts of a phase 30 s apart (start to start), then a verification window of 9 min;" in text
        assert "24 h 10 min |" in text
    else:
        assert "hosts of a phase 2 s apart (start to start), then a verification window of 5 s;" in text


def test_monitoring_quotes_the_criteria_as_this_inventory_judges_them(rendered):
    text = rendered["text"]["monitoring-alerting.md"]
    assert "| `message_loss` | `delivery_pct` | < 100 % |" in text
    assert "| `latency_p99` | `latency_p99_ms` | < 200 ms |" in text
    assert "| `performance_degradation` | `latency_degradation_pct` | > 20 % and `latency_degraded` == 1 |" in text
    # wave_criteria_thresholds replaces a threshold by name: the sandbox judges system load at 4 and 8.
    instability, load = ("> 4 per CPU", "< 1 per CPU") if rendered["inventory"] == "inventory/production" \
        else ("> 8 per CPU", "< 4 per CPU")
    assert "| `system_instability` | `system_load` | %s |" % instability in text
    assert "| `system_load` | `system_load` | %s |" % load in text
    assert "curl -fsS http://nats.internal:8222/varz" in text


def test_performance_lists_every_load_scenario_and_the_readiness_commands(rendered):
    text, inventory = rendered["text"]["performance.md"], rendered["inventory"]
    for name in CONTRACT["readiness_load_scenarios"]:
        assert "| `%s` |" % name in text
    assert "| `spike` | open, `ramping-arrival-rate` | 20 → 20 → 500 → 500 → 20 → 20 requests/s, at most 500 in flight |" in text
    assert "ansible-playbook -i %s playbooks/readiness.yml" % inventory in text
    assert "run=%s\n" % RUN_ID in text
    if inventory == "inventory/sandbox":
        assert "divided by 60, each scenario at most 6 s" in text


def test_a_second_run_changes_nothing(rendered):
    assert rendered["second"].stats["changed"] == 0, rendered["second"].output
    assert rendered["text"] == rendered["written"]


def test_check_mode_writes_nothing(rendered, tmp_path):
    fresh = tmp_path / "fresh"
    run = run_role(tmp_path / "work", rendered["inventory"], fresh, "--check")
    assert run.rc == 0, run.output
    assert not fresh.exists()
    # A runbook edited by hand: check mode reports it would be rendered again, and leaves it.
    edited = tmp_path / "edited"
    edited.mkdir()
    for name, text in rendered["text"].items():
        (edited / name).write_text(text.replace(RUN_ID, "another run"))
    run = run_role(tmp_path / "work", rendered["inventory"], edited, "--check", extra=dict(readiness_runbooks_run=RUN_ID))
    assert run.rc == 0, run.output
    assert run.stats["changed"] == 1
    assert all(RUN_ID not in text for text in files(edited).values())


@pytest.mark.parametrize("folder", ["", "runbooks"])
def test_a_folder_that_is_not_an_absolute_path_is_refused(tmp_path, folder):
    run = run_role(tmp_path, "inventory/sandbox", folder)
    assert run.rc != 0
    assert "readiness_runbooks_dir must be the absolute path" in run.output
    assert not (tmp_path / "runbooks").exists()
