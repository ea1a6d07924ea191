"""The go/no-go gate on the sandbox: an agent that crashes during phase 1's watch stops wave 2
at the gate, before phase 2 touches any host, and the remaining checkpoints are not taken."""

from __future__ import annotations

import json
import threading
import time

import pytest

from .conftest import ARTIFACTS, HOSTS, env_flag, podman_exec, run_playbook

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(900)]

# Phase 1 watched long enough to crash an agent between two checkpoints.
SLOW_PHASE1 = {"wave_schedule": {"wave2": {
    "phase1": [{"label": "phase1-T+1h", "at": 10}, {"label": "phase1-T+2h", "at": 20}],
    "phase2": [{"label": "T+24h", "at": 1}]}}}


def crash_after_verification(started_at: float, stop: threading.Event) -> None:
    """Once this run's phase-1 verification checkpoint is written, kill dgx-2's network-expert
    (systemd restarts it, so only its restart count tells)."""
    marker = ARTIFACTS / "checkpoints/wave2/phase1-verification/decision.json"
    while not stop.wait(0.2):
        if marker.exists() and marker.stat().st_mtime > started_at:
            podman_exec("dgx-2", "systemctl", "kill", "--signal=SIGKILL", "agent@network-expert.service")
            return


def test_a_crash_in_phase1_stops_wave2_at_the_gate(sandbox, wave1_go, tmp_path):
    assert run_playbook(tmp_path, "rollback.yml", extravars={"rollback_wave": "wave2"}).rc == 0
    stop = threading.Event()
    killer = threading.Thread(target=crash_after_verification, args=(time.time(), stop), daemon=True)
    killer.start()
    try:
        run = run_playbook(tmp_path, "wave2.yml", extravars=SLOW_PHASE1)
    finally:
        stop.set()
        killer.join()
    try:
        assert run.rc != 0, run.stdout[-3000:]
        decision = json.loads((ARTIFACTS / "checkpoints/wave2/decision.json").read_text())
        assert decision["decision"] == "NO-GO"
        rows = {c["label"]: c for c in decision["checkpoints"]}
        assert rows["phase1-verification"]["decision"] == "GO"
        assert rows["phase1-T+1h"]["decision"] == "NO-GO"
        assert any(f.startswith("network-expert no restarts on dgx-2") for f in rows["phase1-T+1h"]["failures"])
        # After the NO-GO nothing more is waited for or taken, and phase 2 never starts.
        assert [rows[label]["decision"] for label in ("phase1-T+2h", "phase2-verification", "T+24h")] == [
            "NOT REACHED"] * 3
        assert all(env_flag(host, "tdd-expert") == "false" for host in HOSTS)
        assert any("rollback.yml -e rollback_wave=wave2" in m for m in run.failed_messages())
    finally:
        assert run_playbook(tmp_path, "rollback.yml", extravars={"rollback_wave": "wave2"}).rc == 0
