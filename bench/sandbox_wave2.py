#!/usr/bin/env python3
"""Wall-clock figures of the main job on the sandbox fleet: wave 2 from a legacy-only fleet, a
second (no-op) wave 2, and the rollback of wave 2 to legacy-only. One run of each, bounded.

    scripts/sandbox up && source scripts/lib.sh && use_venv && python bench/sandbox_wave2.py

Goals (issue 2): wave 2 under 5 minutes, rollback under 60 s. Printed, never asserted.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import ArtifactStore, Layout
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_journal import previous_outcome

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"


def playbook(name: str, *args: str) -> float:
    env = dict(os.environ, ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    started = time.monotonic()
    done = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "playbooks/" + name, *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        sys.exit("%s failed (rc=%d):\n%s" % (name, done.returncode, done.stdout[-3000:]))
    return elapsed


def main() -> None:
    playbook("rollback.yml", "-e", "rollback_wave=wave2")  # start from legacy-only, untimed
    store = ArtifactStore(str(ARTIFACTS))
    if previous_outcome(store, "wave1") != "GO":
        playbook("wave1.yml")  # wave 2's pre-flight requires it
    first = playbook("wave2.yml")
    decision = store.read_json(Layout.wave_decision("wave2"))
    again = playbook("wave2.yml")
    rollback = playbook("rollback.yml")
    record = json.loads(sorted((ARTIFACTS / "rollbacks").glob("rollback-*.json"))[-1].read_text())
    print("wave 2 from legacy-only        %6.1f s  (%s, %d checkpoints; goal < 300 s)"
          % (first, decision["outcome"], len(decision["checkpoints"])))
    print("wave 2 again (nothing to flip) %6.1f s" % again)
    print("rollback of wave 2             %6.1f s  (playbook wall clock; goal < 60 s)" % rollback)
    print("rollback, first to last play   %6.1f s  (as recorded in %s)" % (record["detail"]["seconds"], "artifacts/rollbacks"))


if __name__ == "__main__":
    main()
