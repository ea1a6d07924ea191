"""The failure-modes area's pure parts: the plan from the inventory (readiness_failure_modes with
readiness_loss_budgets, every problem named with its path and range; the production and sandbox
inventories' own plans), the traffic's targets and event subjects, detection from the traffic (the first
failure it could see, never before the injection), and the readiness_ledger action that writes the
ledger from nats_traffic's observations (a run over budget is a FAIL result naming what was lost, bad
input a failed task naming what)."""

from __future__ import annotations

import json
import types

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.fleetwave.rollout.plugins.action import readiness_ledger
from ansible_collections.fleetwave.rollout.plugins.filter import fleet as filters
from ansible_collections.fleetwave.rollout.plugins.module_utils import fleet_traffic as ft
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_ledger

from tests.unit.conftest import REPO
from tests.unit.test_fleet_traffic import BUDGET, T0, TIMEOUT, WINDOW, observations

pytestmark = pytest.mark.unit

RUN = "readiness-20261203T150000Z"
HOSTS = ["dgx-1", "dgx-2", "dgx-3", "localhost"]
STEP = {"on": "dgx-3", "argv": ["systemctl", "kill", "--signal=SIGKILL", "agent@nats-expert.service"]}


def modes(**changes):
    plan = {mode: dict(inject=dict(STEP), undo=dict(STEP), hold_seconds=2) for mode in fleet_ledger.FAILURE_MODES}
    plan.update(changes)
    return plan


def budgets():
    return {mode: dict(BUDGET) for mode in fleet_ledger.FAILURE_MODES}


def test_the_plan_keeps_the_contracts_order_with_each_modes_budget():
    plan = fleet_ledger.failure_plan(modes(**{"agent-kill": dict(inject=STEP, undo=None)}), budgets(), HOSTS)
    assert [entry["mode"] for entry in plan] == list(fleet_ledger.FAILURE_MODES)
    assert plan[0] == dict(mode="agent-kill", inject=STEP, undo=None, hold_seconds=0, tail_seconds=None, budget=BUDGET)
    plan = fleet_ledger.failure_plan(modes(**{"nats-restart": dict(inject=STEP, tail_seconds=60)}), budgets(), HOSTS)
    assert plan[2]["tail_seconds"] == 60


@pytest.mark.parametrize("change, message", [
    (dict(modes={"agent-kill": None}), "readiness_failure_modes.agent-kill: must be a mapping of inject, undo, hold_seconds"),
    (dict(drop="nats-restart"), "readiness_failure_modes.nats-restart: missing (every failure mode is injected"),
    (dict(modes={"disk-fill": {}}), "readiness_failure_modes.disk-fill: unknown failure mode (allowed: agent-kill"),
    (dict(modes={"node-freeze": dict(inject=dict(STEP, on="dgx-9"))}),
     "readiness_failure_modes.node-freeze.inject.on: 'dgx-9' is not a host of the inventory (allowed: dgx-1"),
    (dict(modes={"node-freeze": dict(inject=dict(STEP, argv="systemctl stop x"))}),
     "readiness_failure_modes.node-freeze.inject.argv: must be a non-empty list of non-empty strings"),
    (dict(modes={"node-freeze": dict(inject=dict(STEP), undo=dict(argv=["x"]))}),
     "readiness_failure_modes.node-freeze.undo.on: missing (required: on, argv)"),
    (dict(modes={"node-freeze": dict(inject=dict(STEP), hold_seconds=float("inf"))}),
     "readiness_failure_modes.node-freeze.hold_seconds: must be a number in [0, 86,400] seconds, got inf"),
    (dict(modes={"node-freeze": dict(inject=dict(STEP), pause=3)}),
     "readiness_failure_modes.node-freeze.pause: unknown key (allowed: inject, undo, hold_seconds, tail_seconds)"),
    (dict(modes={"nats-restart": dict(inject=dict(STEP), tail_seconds=-1)}),
     "readiness_failure_modes.nats-restart.tail_seconds: must be a number in [0, 86,400] seconds, got -1"),
    (dict(modes={"node-freeze": dict(undo=dict(STEP))}), "readiness_failure_modes.node-freeze.inject: must be a mapping"),
    (dict(budget=("agent-kill", "max_lost_pct", -1)), "readiness_loss_budgets.agent-kill.max_lost_pct: must be a number in"),
])
def test_a_bad_plan_is_refused_naming_where_and_what_is_allowed(change, message):
    plan, limits = modes(**change.get("modes", {})), budgets()
    plan.pop(change.get("drop"), None)
    if "budget" in change:
        mode, key, value = change["budget"]
        limits[mode][key] = value
    with pytest.raises(fleet_ledger.LedgerError) as raised:
        fleet_ledger.failure_plan(plan, limits, HOSTS)
    assert message in str(raised.value)
    with pytest.raises(AnsibleFilterError, match="refused \\(nothing was injected\\)"):
        filters.readiness_failure_plan(plan, limits, HOSTS)


@pytest.mark.parametrize("inventory", ["production", "sandbox"])
def test_the_shipped_inventories_name_every_mode_with_an_injection_and_a_budget(inventory):
    """The inventories' plans as data: every mode, an argv each, the budgets in range (the Jinja in the
    commands is templated by the playbook; here each is a string or a list)."""
    contract = yaml.safe_load((REPO / "inventory/production/group_vars/all/00-contract.yml").read_text())
    data = dict(contract)
    if inventory == "sandbox":
        data.update(yaml.safe_load((REPO / "inventory/sandbox/group_vars/all/50-sandbox.yml").read_text()))
    assert set(data["readiness_failure_modes"]) == set(fleet_ledger.FAILURE_MODES)
    fleet_ledger.validate_budgets(data["readiness_loss_budgets"])
    assert "failure-modes" in data["readiness_areas"]
    assert data["readiness_areas"].index("stress") < data["readiness_areas"].index("failure-modes") \
        < data["readiness_areas"].index("gates")


def test_the_traffic_addresses_every_instance_and_hears_both_families():
    catalog = {"nats-expert": dict(id="01936f66-b087-7000-8000-000000000001", cluster="infrastructure")}
    traffic = filters.readiness_failure_traffic(["nats-expert"], catalog, ["dgx-1", "dgx-2"], "agent.{name}",
                                                "agents.{cluster}.{id}")
    assert traffic["targets"] == [
        dict(subject="agent.nats-expert.cmd.ping", host=host, target="nats-expert@%s" % host) for host in ("dgx-1", "dgx-2")]
    assert traffic["event_subjects"] == [
        dict(subject="agent.nats-expert.evt.>", family="legacy"),
        dict(subject="agents.infrastructure.01936f66-b087-7000-8000-000000000001.evt.>", family="unified")]


def detect(obs, window):
    return fleet_ledger.build_ledger("agent-kill", window, **ft.ledger_inputs(obs), timeout=TIMEOUT, budget=BUDGET,
                                     detect_from_traffic=True)


def test_detection_is_when_the_traffic_first_saw_a_failure_after_the_injection():
    window = dict(injected_at=T0 + 20, recovered_at=T0 + 25)
    # r21 (sent at T0+21.001) had no reply: seen when its 2 s ran out. r17's ran out before the injection.
    record = detect(observations(no_reply=("r17", "r21", "r22"), end=60), window)
    assert record["detected_by"] == "traffic"
    assert record["timings"]["detection_seconds"] == pytest.approx(3.001)
    # Unsent at T0+22: seen at once.
    assert detect(observations(unsent=("r22",), end=60), window)["timings"]["detection_seconds"] == pytest.approx(2.0)
    # r19's timeout ran out at T0+21.001, after the injection: not before the injection it is seen.
    assert detect(observations(no_reply=("r19",), end=60), window)["timings"]["detection_seconds"] == pytest.approx(1.001)


def test_a_declared_detection_stands_and_no_failure_seen_is_not_detected():
    assert detect(observations(no_reply=("r21",), end=60), WINDOW)["detected_by"] == "declared"
    record = detect(observations(end=60), dict(injected_at=T0 + 20, recovered_at=T0 + 25))
    assert record["detected_by"] is None and record["verdict"] == "FAIL"
    assert "not detected: the failure window has no detected_at" in record["reasons"]


def ledger_action(tmp_path, obs, check=False, **args):
    traffic = tmp_path / "traffic.json"
    traffic.write_bytes(ft.encode_observations(obs) if isinstance(obs, dict) else obs.encode())
    act = object.__new__(readiness_ledger.ActionModule)
    act._task = types.SimpleNamespace(check_mode=check)
    given = dict(artifacts_dir=str(tmp_path), run=RUN, mode="agent-kill", traffic=str(traffic),
                 injected_at=T0 + 20, detected_at=None, recovered_at=T0 + 25, timeout=TIMEOUT, budget=BUDGET)
    given.update(args)
    return act.act(given, {})


def test_the_action_writes_the_ledger_where_the_gate_reads_it(tmp_path):
    result = ledger_action(tmp_path, observations(no_reply=("r21",), end=60))
    written = tmp_path / "readiness" / RUN / "failure-modes/agent-kill/ledger.json"
    assert result["ledger"] == str(written) and result["changed"] is True
    record = json.loads(written.read_text())
    assert record["verdict"] == result["verdict"] == "PASS" and record["detected_by"] == "traffic"
    assert fleet_ledger.check_record(record, "ledger") == []
    assert result["measured"]["requests"] == 60 and result["timings"]["failed_requests"] == 1


def test_over_budget_is_a_fail_result_naming_what_was_lost_not_a_failed_task(tmp_path):
    result = ledger_action(tmp_path, observations(no_reply=("r21", "r22", "r23", "r24"), end=60),
                           budget=dict(BUDGET, max_lost_pct=1))
    assert not result.get("failed") and result["verdict"] == "FAIL"
    assert any(r.startswith("requests lost: 4 of 60") and "r21, r22, r23, r24" in r for r in result["reasons"])
    assert result["lost"] == ["requests to tdd-expert@dgx-1 on agent.tdd-expert.cmd.ping: 4 of 60 lost "
                              "(4 in the failure window, 0 outside): r21, r22, r23, r24"]


def test_check_mode_judges_and_writes_nothing(tmp_path):
    result = ledger_action(tmp_path, observations(end=60), check=True, detected_at=T0 + 21)
    assert result["changed"] is False and result["verdict"] == "PASS"
    assert not (tmp_path / "readiness").exists()


@pytest.mark.parametrize("obs, args, message", [
    ("{not json", {}, "readiness_ledger agent-kill: Expecting property name"),
    (dict(version=99), {}, "not nats_traffic observations of version"),
    (None, dict(recovered_at=T0 + 10), "window.recovered_at: 2026"),
    (None, dict(budget=dict(BUDGET, max_late=float("nan"))), "readiness_loss_budgets.agent-kill.max_late: must be"),
    (None, dict(run="../escape"), "readiness run"),
])
def test_bad_input_fails_the_task_naming_what(tmp_path, obs, args, message):
    result = ledger_action(tmp_path, observations(end=60) if obs is None else obs, **args)
    assert result["failed"] is True and message in result["msg"], result["msg"]
    assert not (tmp_path / "readiness" / RUN / "failure-modes").exists()
