"""Wave 2 and rollback end to end on the sandbox fleet, proven over real NATS requests."""

from __future__ import annotations

import json
import re
import subprocess
import time

import pytest

from .conftest import (AGENTS, ARTIFACTS, HOSTS, env_flag, fleet_snapshot, gather, podman_exec,
                       run_playbook, subject)

pytestmark = pytest.mark.acceptance

WAVE2 = ("network-expert", "tdd-expert")
CONTROL = ("graph-expert", "git-expert", "location-expert")


def assert_wave2_flipped():
    for host in HOSTS:
        for agent in WAVE2:
            assert env_flag(host, agent) == "true", (host, agent)
        for agent in CONTROL:
            assert env_flag(host, agent) == "false", (host, agent)
    for agent in WAVE2:
        unified = gather(subject(agent, "unified"))
        assert unified["hosts"] == list(HOSTS) and unified["unified"] == [True], (agent, unified)
        assert gather(subject(agent, "legacy"))["hosts"] == list(HOSTS)
    for agent in CONTROL:
        assert gather(subject(agent, "unified"))["no_responders"], agent


def assert_legacy_only(agents):
    for agent in agents:
        for host in HOSTS:
            assert env_flag(host, agent) == "false", (host, agent)
        unified = gather(subject(agent, "unified"))
        assert unified["no_responders"] and unified["hosts"] == [], (agent, unified)
        legacy = gather(subject(agent, "legacy"))
        assert legacy["hosts"] == list(HOSTS) and legacy["unified"] == [False], (agent, legacy)


def test_wave2_goes_from_legacy_to_go_and_a_second_run_is_safe(legacy_fleet, wave1_go, tmp_path):
    run = run_playbook(tmp_path, "wave2.yml")
    assert run.rc == 0, run.stdout[-4000:]
    decision = json.loads((ARTIFACTS / "checkpoints/wave2/decision.json").read_text())
    assert decision["decision"] == "GO"
    labels = [c["label"] for c in decision["checkpoints"]]
    assert labels == ["phase1-verification", "phase1-T+1h", "phase1-T+2h",
                      "phase2-verification", "T+1h", "T+6h", "T+12h", "T+24h"]
    report = (ARTIFACTS / "checkpoints/wave2/report.md").read_text()
    assert report.startswith("# wave2: GO") and "deploy network-expert on dgx-2" in report
    # Phase 1 is host by host: dgx-1, then dgx-2, then dgx-3, before phase 2 starts.
    steps = [s["step"] for s in decision["timeline"]]
    assert steps.index("phase1: deploy network-expert on dgx-1") < steps.index(
        "phase1: deploy network-expert on dgx-3") < steps.index("phase2: deploy tdd-expert on dgx-1")
    for label in labels:
        folder = ARTIFACTS / "checkpoints/wave2" / label
        subprocess.run(["sha256sum", "--quiet", "-c", "MANIFEST.sha256"], cwd=folder, check=True)
    assert_wave2_flipped()

    # Again: nothing to flip, no agent restarted, no new backup, still GO.
    before = fleet_snapshot()
    again = run_playbook(tmp_path, "wave2.yml")
    assert again.rc == 0, again.stdout[-4000:]
    assert fleet_snapshot() == before
    assert json.loads((ARTIFACTS / "checkpoints/wave2/decision.json").read_text())["decision"] == "GO"


def test_rollback_returns_every_flipped_agent_to_legacy_only(legacy_fleet, wave1_go, tmp_path):
    assert run_playbook(tmp_path, "wave2.yml").rc == 0
    started = time.monotonic()
    run = run_playbook(tmp_path, "rollback.yml")
    elapsed = time.monotonic() - started
    assert run.rc == 0, run.stdout[-4000:]
    assert_legacy_only(WAVE2)
    records = sorted((ARTIFACTS / "rollbacks").glob("rollback-*.json"))
    record = json.loads(records[-1].read_text())
    assert record["verified_fleet_wide"] is True
    assert {h: sorted(a) for h, a in record["changed"].items()} == {h: sorted(WAVE2) for h in HOSTS}
    print("rollback of wave 2 took %.1f s (playbook run, measured by the test)" % elapsed)


def test_rollback_of_one_agent_on_one_host_leaves_the_rest(legacy_fleet, wave1_go, tmp_path):
    assert run_playbook(tmp_path, "wave2.yml").rc == 0
    run = run_playbook(tmp_path, "rollback.yml", "--limit", "dgx-2", extravars={"rollback_agents": "tdd-expert"})
    assert run.rc == 0, run.stdout[-4000:]
    assert env_flag("dgx-2", "tdd-expert") == "false"
    assert env_flag("dgx-2", "network-expert") == "true"
    assert env_flag("dgx-1", "tdd-expert") == "true"
    assert gather(subject("tdd-expert", "unified"))["hosts"] == ["dgx-1", "dgx-3"]
    assert gather(subject("tdd-expert", "legacy"))["hosts"] == list(HOSTS)


def test_check_mode_previews_the_flip_and_changes_nothing(legacy_fleet, wave1_go, tmp_path):
    before = fleet_snapshot()
    run = run_playbook(tmp_path, "wave2.yml", "--check", "--diff")
    assert run.rc == 0, run.stdout[-4000:]
    assert "+ENABLE_UNIFIED_SUBJECTS=true" in run.stdout
    assert fleet_snapshot() == before
