#!/usr/bin/env python3
"""Wall clock of the main operations at two fleet sizes, side by side (issue 9): for each size N,
the bench fleet (FLEETWAVE_FLEET=bench scripts/sandbox, stand-ins dgx-1..N in racks of 8) is
brought up empty, then timed: site.yml (install every agent), a compressed wave 2 (no stagger,
one checkpoint per phase), the checkpoint rounds of that wave (as journaled: observation, probe,
server view, judgement), and a full rollback (restore, proof, post-rollback watch). The fleet is
taken down at the end. Needs root; touches neither the sandbox nor the test fleet.

    source scripts/lib.sh && use_venv && python bench/fleet_scale.py [--sizes 3,48] [--forks 50]

Goals: a checkpoint round at 48 hosts within 2x of 3 hosts; the rollback of 48 hosts under 3
minutes. Printed, never asserted. Bounded: every playbook has a timeout (--timeout, 3600 s).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STATE = Path(os.environ.get("FLEETWAVE_STATE", "/var/lib/fleetwave"))
INVENTORY = STATE / "bench/inventory/hosts.yml"
ARTIFACTS = STATE / "bench/artifacts"
# Wave 2 compressed to its steps: no stagger, one checkpoint per phase, no wave-1 GO needed (recorded).
WAVE2 = {"wave_stagger_seconds": 0, "wave_verify_window_seconds": 1, "wave_require_previous_go": False,
         "wave_schedule": {"wave2": {"phase1": [{"label": "phase1-T+2h", "at": 1}],
                                     "phase2": [{"label": "T+24h", "at": 1}]}}}


def sandbox(size: int, command: str, **env: str) -> None:
    done = subprocess.run([str(ROOT / "scripts/sandbox"), command], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, FLEETWAVE_FLEET="bench", FLEETWAVE_HOSTS=str(size), **env))
    if done.returncode != 0:
        sys.exit("scripts/sandbox %s (%d hosts) failed:\n%s%s" % (command, size, done.stdout[-3000:],
                                                                done.stderr[-3000:]))


def playbook(name: str, forks: int, timeout: float, extravars: dict | None = None, may_stop: bool = False) -> float:
    """Wall clock of one playbook run; a failure ends the bench, except a wave stopped at its go/no-go
    (may_stop), whose decision is then read like a GO's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORKS=str(forks),
               FLEETWAVE_AUDIT_PATH=str(ARTIFACTS / "audit" / ("%s-%d.jsonl" % (Path(name).stem, time.time_ns()))))
    argv = ["ansible-playbook", "-i", str(INVENTORY), str(ROOT / "playbooks" / name)]
    if extravars:
        argv += ["-e", json.dumps(extravars)]
    started = time.monotonic()
    try:
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        output = exc.stdout.decode(errors="replace") if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        sys.exit("%s did not finish within %.0f s (--timeout); its last output:\n%s" % (name, timeout, output[-3000:]))
    elapsed = time.monotonic() - started
    stopped = may_stop and "NO-GO for wave2" in done.stdout and (ARTIFACTS / "checkpoints/wave2/decision.json").exists()
    if done.returncode != 0 and not stopped:
        sys.exit("%s failed (rc=%d) after %.0f s:\n%s" % (name, done.returncode, elapsed, done.stdout[-4000:]))
    return elapsed


def noop_task(forks: int, timeout: float) -> float:
    """Wall clock of one no-op task (ansible.builtin.ping) on every host, without Ansible's start-up
    (the same run on localhost alone, subtracted): the floor under any step that touches each host."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    # The ad-hoc command loads no callback (bin_ansible_callbacks is off): no audit trail to write.
    env.update(ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"), ANSIBLE_FORKS=str(forks))
    walls = {}
    for pattern in ("localhost", "dgx"):
        argv = ["ansible", "-i", str(INVENTORY), pattern, "-m", "ansible.builtin.ping"]
        started = time.monotonic()
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        walls[pattern] = time.monotonic() - started
        if done.returncode != 0:
            sys.exit("ansible %s -m ping failed (rc=%d):\n%s" % (pattern, done.returncode, done.stdout[-3000:]))
    return max(0.0, walls["dgx"] - walls["localhost"])


def bench_settings() -> dict:
    """What scripts/sandbox chose for this size: the probe's load and the criteria judged."""
    import yaml
    settings = yaml.safe_load((INVENTORY.parent / "group_vars/all/60-bench.yml").read_text())
    criteria = yaml.safe_load(Path(settings["wave_criteria_file"]).read_text())
    return dict(probe_rate=settings["wave_probe_rate"], probe_events=settings["wave_probe_emit_events"],
                criteria=sorted(c["name"] for kind in ("primary", "secondary", "rollback_triggers")
                                for c in criteria[kind]))


def latest_wave2() -> tuple[dict, list[dict]]:
    """The latest wave 2 run's decision and journal records."""
    decision = json.loads((ARTIFACTS / "checkpoints/wave2/decision.json").read_text())
    return decision, [json.loads(line) for line in (ARTIFACTS / decision["journal"]).read_text().splitlines() if line]


def seconds(record: dict) -> float:
    from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import epoch_of
    return epoch_of(record["finished"]) - epoch_of(record["started"])


def latest_rollback() -> dict:
    """The record of the latest rollback.yml run on the bench fleet."""
    records = sorted((ARTIFACTS / "rollbacks").glob("*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(records[-1].read_text()) if records else {}


def measure(size: int, forks: int, timeout: float) -> dict:
    print("fleet of %d: starting the stand-ins (untimed)" % size, file=sys.stderr, flush=True)
    # The bench fleet's own artifacts (an earlier size or run) go first: every figure is this run's.
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    sandbox(size, "reset", FLEETWAVE_SKIP_INSTALL="1")
    figures = {}
    print("fleet of %d: site.yml" % size, file=sys.stderr, flush=True)
    figures["site"] = playbook("site.yml", forks, timeout)
    figures["noop"] = statistics.median(noop_task(forks, timeout) for _ in range(3))
    print("fleet of %d: wave 2" % size, file=sys.stderr, flush=True)
    figures["wave2"] = playbook("wave2.yml", forks, timeout, WAVE2, may_stop=True)
    decision, journal = latest_wave2()
    rounds = [seconds(r) for r in journal if r["step"] in ("checkpoint", "monitoring round")]
    figures["round"] = statistics.median(rounds) if rounds else None
    figures["rounds"] = len(rounds)
    outcome = figures["outcome"] = dict(
        wave2=decision.get("outcome"), hosts=size,
        racks=sorted(set(re.findall(r"^        (rack\d+):$", INVENTORY.read_text(), re.M))),
        **bench_settings())
    if decision.get("outcome") != "GO":
        # Stopped at a go/no-go: its reasons, and the automatic rollback's time when one was taken;
        # rollback.yml would find little left to do, so it is not timed.
        outcome["reasons"] = [reason[:300] for reason in (decision.get("reasons") or [])[:5]]
        automatic = [r for r in journal if r["step"] == "rollback"]
        figures["rollback"] = (automatic[-1].get("detail") or {}).get("seconds_detection_to_completion") \
            if automatic else None
        outcome["rollback"] = "automatic, after %s" % automatic[-1].get("label") if automatic else "none"
        return figures
    print("fleet of %d: rollback.yml" % size, file=sys.stderr, flush=True)
    figures["rollback"] = playbook("rollback.yml", forks, timeout, {"rollback_wave": "wave2"})
    # What the figures are of: the rollback's proof, for --json.
    rollback = latest_rollback().get("detail") or {}
    outcome.update(rollback="rollback.yml", rolled_back_legacy_only=(rollback.get("legacy_only") or {}).get("proven"),
                   post_rollback_stable=(rollback.get("post_rollback") or {}).get("stable"))
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="3,48", help="fleet sizes, comma-separated (default 3,48)")
    parser.add_argument("--forks", type=int, default=50, help="ansible forks (default 50: one per host up to 50)")
    # site.yml on 48 stand-ins took 1,145 s on one day and more than 1,800 s on another, same machine.
    parser.add_argument("--timeout", type=float, default=3600, help="seconds allowed to each playbook (default 3600)")
    parser.add_argument("--json", type=Path, help="also write the figures and what they are of to this file")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if os.geteuid() != 0:
        sys.exit("fleet_scale.py needs root (podman, as scripts/sandbox)")
    results = {}
    try:
        for size in sizes:
            results[size] = measure(size, args.forks, args.timeout)
            print("fleet of %d: %s" % (size, json.dumps(results[size])), file=sys.stderr, flush=True)
    finally:
        sandbox(max(sizes), "down")
    if args.json:
        args.json.write_text(json.dumps(dict(forks=args.forks, sizes=results), indent=2))
    small, large = results[sizes[0]], results[sizes[-1]]
    print("fleet size                        %s" % "".join("%10d" % s for s in sizes) + "     ratio")
    for key, label in (("site", "site.yml (install) s"), ("wave2", "wave 2, compressed s"),
                       ("round", "checkpoint round, median s"), ("noop", "no-op task on every host s"),
                       ("rollback", "full rollback s")):
        cells = "".join("%10s" % ("n/a" if results[s][key] is None else "%.1f" % results[s][key]) for s in sizes)
        ratio = large[key] / small[key] if large[key] is not None and small[key] else None
        print("%-33s %s %10s" % (label, cells, "n/a" if ratio is None else "%.2fx" % ratio))
    print("wave 2 outcome                    %s" % "".join("%10s" % results[s]["outcome"]["wave2"] for s in sizes))
    print("(forks %d; rounds per wave %s; goals: round at the largest size within 2x of the smallest, "
          "rollback of 48 under 180 s)" % (args.forks, "/".join(str(results[s]["rounds"]) for s in sizes)))
    # A round observes every host once (agent_host_info): on stand-ins that share this machine's
    # cores, that step cannot be faster than a no-op task on every host.
    print("(no-op task: ansible.builtin.ping on every host, median of 3, Ansible's start-up subtracted; "
          "a round's per-host observation cannot cost less)")
    for size in sizes:
        outcome = results[size]["outcome"]
        if outcome["wave2"] != "GO":
            print("fleet of %d: wave 2 stopped (%s; rollback %s): %s" % (
                size, outcome["wave2"], outcome["rollback"], "; ".join(outcome["reasons"])))
    # Figures of a wave that did not go through are not the figures asked for.
    return 0 if all(results[s]["outcome"]["wave2"] == "GO" for s in sizes) else 1


if __name__ == "__main__":
    sys.exit(main())
