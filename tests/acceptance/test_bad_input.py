"""Bad input gets a clear error that says what and where, and changes nothing on any host."""

from __future__ import annotations

import copy
import json
import re

import pytest
import yaml

from tests.conftest import ROOT

from .conftest import ARTIFACTS, CONTRACT, fleet_snapshot, podman_exec, podman_write, run_playbook

pytestmark = pytest.mark.acceptance


def refused(tmp_path, playbook, *args, extravars=None):
    before = fleet_snapshot()
    run = run_playbook(tmp_path, playbook, *args, extravars=extravars)
    assert run.rc != 0, "the run should have been refused:\n" + run.stdout[-3000:]
    assert fleet_snapshot() == before, "a refused run changed a host"
    return "\n".join(run.failed_messages())


def test_unknown_agent_in_a_wave_definition(sandbox, wave1_go, tmp_path):
    waves = copy.deepcopy(CONTRACT["fleet_waves"])
    waves["wave2"]["phases"][1]["agents"] = ["tdd-expert", "netwrk-expert"]
    msg = refused(tmp_path, "wave2.yml", extravars={"fleet_waves": waves})
    assert "fleet_waves.wave2.phases[1].agents: unknown agent 'netwrk-expert'" in msg


def test_bad_timing_from_extra_vars(sandbox, wave1_go, tmp_path):
    msg = refused(tmp_path, "wave2.yml", extravars={"wave_stagger_seconds": -5})
    assert "wave_stagger_seconds: must be a number in [0, 3,600] seconds, got -5" in msg


def test_a_pause_after_the_last_phase_is_refused(sandbox, wave1_go, tmp_path):
    msg = refused(tmp_path, "wave2.yml", extravars={"wave_pause_after_phase": "phase2"})
    assert "wave_pause_after_phase is phase2: it must name a phase of wave2 that another follows (phase1)" in msg
    msg = refused(tmp_path, "wave1.yml", extravars={"wave_pause_after_phase": "phase1"})
    assert "(none: wave1 has one phase)" in msg


def test_a_paused_run_handed_over_that_is_not_the_one_to_go_on_with_is_refused(sandbox, wave1_go, tmp_path):
    handed = {"run_id": "wave2-20990101T000000Z", "lock_holder": "wave2-20990101T000000Z", "decision": None,
              "paused_after": "phase1"}
    msg = refused(tmp_path, "wave2.yml", extravars={"fleetwave_wave2": handed})
    assert "The workflow handed over wave2 run wave2-20990101T000000Z, paused after phase1, to go on with, but" in msg
    assert "Nothing was changed." in msg


def test_a_previous_wave_whose_audit_trail_lost_lines_is_refused(sandbox, wave1_go, tmp_path):
    """The trail wave 1's job handed over, with its anchor, has lost its last lines since."""
    from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_audit import head
    wave1 = json.loads(wave1_go.read_text())
    trails = sorted((ARTIFACTS / "audit").glob("wave1-*.jsonl"), key=lambda p: p.stat().st_mtime)
    trail = tmp_path / "wave1-trail.jsonl"
    trail.write_bytes(trails[-1].read_bytes())
    _lines, anchor = head(trail)
    trail.write_bytes(b"".join(trail.read_bytes().splitlines(keepends=True)[:-3]))
    msg = refused(tmp_path, "wave2.yml", extravars={"fleetwave_wave1": {
        "run_id": wave1["run_id"], "decision": "GO", "audit_trail": str(trail), "audit_anchor": anchor}})
    assert "The audit trail %s that wave1's job handed over does not verify against its anchor" % trail in msg
    assert "Nothing was changed." in msg


def fleet_lock_holder():
    from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_state
    return fleet_state.FleetLock(fleet_state.DirStore(str(ARTIFACTS / "state")), "fleet").peek()


def test_rollback_with_no_backup_to_restore(sandbox, tmp_path):
    msg = refused(tmp_path, "rollback.yml", extravars={"rollback_agents": "graph-expert"})
    assert "graph-expert on dgx-1: no backup recorded for /etc/agents/graph-expert.env" in msg
    assert fleet_lock_holder() is None  # refused at its pre-flight, it gave the lock up


def test_rollback_of_an_unknown_agent(sandbox, tmp_path):
    msg = refused(tmp_path, "rollback.yml", extravars={"rollback_agents": "nope-expert"})
    assert "rollback_agents names nope-expert, not in the catalogue" in msg
    assert fleet_lock_holder() is None  # refused before it took the fleet lock


def test_nats_unreachable_during_verification(sandbox, wave1_go, tmp_path):
    msg = refused(tmp_path, "wave2.yml", extravars={"fleet_nats_controller_url": "nats://127.0.0.1:1"})
    assert "cannot connect to NATS at nats://127.0.0.1:1" in msg


def test_malformed_env_file(sandbox, wave1_go, tmp_path):
    path = "/etc/agents/network-expert.env"
    original = podman_exec("dgx-3", "cat", path)
    podman_exec("dgx-3", "sh", "-c", "printf 'this line is not an assignment\\n' >> %s" % path)
    try:
        msg = refused(tmp_path, "wave2.yml")
        assert re.search(r"%s line \d+" % re.escape(path), msg), msg
    finally:
        podman_write("dgx-3", path, original)


def test_missing_previous_wave_go(sandbox, tmp_path):
    msg = refused(tmp_path, "wave2.yml", extravars={"fleet_artifacts_dir": str(tmp_path / "empty-artifacts")})
    assert "wave2 needs wave1's GO recorded in" in msg and "there is no such file" in msg


def test_malformed_criteria_file_is_refused_before_any_host_is_touched(sandbox, wave1_go, tmp_path):
    criteria = yaml.safe_load((ROOT / "criteria/default.yml").read_text())
    criteria["primary"][3]["threshold"] = "fast"
    criteria["secondary"][0]["comparator"] = "=<"
    path = tmp_path / "criteria.yml"
    path.write_text(yaml.safe_dump(criteria))
    msg = refused(tmp_path, "wave2.yml", extravars={"wave_criteria_file": str(path)})
    assert "%s: primary[3].threshold: 'fast' is not a number" % path in msg
    assert "%s: secondary[0].comparator: '=<' is not one of" % path in msg


def test_criteria_file_with_a_yaml_error_names_the_line(sandbox, wave1_go, tmp_path):
    path = tmp_path / "criteria.yml"
    path.write_text((ROOT / "criteria/default.yml").read_text().replace("primary:\n", "primary:\n  - [\n", 1))
    msg = refused(tmp_path, "wave2.yml", extravars={"wave_criteria_file": str(path)})
    assert re.search(r"%s: line \d+, column \d+: YAML syntax error" % re.escape(str(path)), msg), msg
