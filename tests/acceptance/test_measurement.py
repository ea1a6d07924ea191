"""The measurement engine on the test fleet: faults switched on with the reference agent's knobs in
one agent instance (network-expert on dgx-2) are measured by the checkpoints, judged against
criteria/default.yml and acted on - the wave stops at the go/no-go gate before phase 2 touches
any host, or rolls itself back."""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
import time

import pytest
import yaml

from tests.conftest import ROOT

from .conftest import (ARTIFACTS, HOSTS, ON_A_STAND_IN, ensure_legacy, env_flag, gather, kill_when,
                       remember_legacy, run_playbook, set_fault_knobs, tree_runs, start_playbook, subject)

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(900)]

AGENT, HOST = "network-expert", "dgx-2"
INSTANCE = "%s@%s" % (AGENT, HOST)
# Phase 1's verification checkpoint judges the fault; a NO-GO there ends the run.
QUICK = {"wave_stagger_seconds": 0,
         "wave_schedule": {"wave2": {"phase1": [{"label": "phase1-T+2h", "at": 1}],
                                     "phase2": [{"label": "T+24h", "at": 1}]}}}


def checkpoint(label: str, monitor: bool = False) -> dict:
    folder = ARTIFACTS / "checkpoints/wave2" / ("monitor" if monitor else "") / label
    return json.loads((folder / "decision.json").read_text())


def row(decision: dict, name: str, instance: str | None) -> dict:
    [found] = [r for r in decision["criteria"] if r["name"] == name and r["agent"] == instance]
    return found


def instance_events(label: str) -> dict:
    """The events the probe counted for INSTANCE in the checkpoint's window: legacy, unified, paired."""
    probe = json.loads((ARTIFACTS / "checkpoints/wave2" / label / "observations.json").read_text())["probe"]
    [agent] = [a for a in probe["agents"] if a["name"] == AGENT]
    [instance] = [i for i in agent["instances"] if i["host"] == HOST]
    return instance["events"]


def set_knobs(how: str = "restart", **knobs: str) -> None:
    set_fault_knobs(HOST, AGENT, how, **knobs)


@contextlib.contextmanager
def legacy_fleet_after(tmp_path):
    """Start legacy-only and leave the fleet legacy-only without fault knobs, whatever happens.
    (A rollback restores the pre-flip backup, which holds the knobs when they were set before
    the flip: they are removed after it.)"""
    def clean():
        ensure_legacy(tmp_path)  # after the test, or after one that left it unclean: a rollback
        set_knobs()  # none
        remember_legacy()  # knobs off, flag untouched: the next test starts here without a rollback

    clean()
    try:
        yield
    finally:
        clean()


def criteria_with_an_unmeasured_criterion(tmp_path):
    """criteria/default.yml plus a primary criterion no probe or host module measures."""
    criteria = yaml.safe_load((ROOT / "criteria/default.yml").read_text())
    criteria["primary"].append(dict(name="gpu_memory_errors", metric="gpu_memory_errors", comparator="==",
                                    threshold=0, unit="count", scope="per_agent",
                                    description="No probe or host module measures this."))
    path = tmp_path / "criteria.yml"
    path.write_text(yaml.safe_dump(criteria))
    return path


def test_dual_publish_loss_is_measured_and_names_the_instance(sandbox, wave1_go, tmp_path):
    """One run shows two things: the lossy instance named, and a criterion nobody measures failing
    with "no data" (never a pass) while every other figure is measured."""
    with legacy_fleet_after(tmp_path):
        set_knobs(FAULT_DROP_UNIFIED_RATE="0.03")
        run = run_playbook(tmp_path, "wave2.yml", extravars=dict(
            QUICK, wave_criteria_file=str(criteria_with_an_unmeasured_criterion(tmp_path))))
        assert run.rc != 0, run.stdout[-3000:]
        decision = checkpoint("phase1-verification")
        assert decision["outcome"] == "NO-GO", decision["reasons"]
        lossy = row(decision, "dual_publish_success", INSTANCE)
        # The agent drops every 1/0.03-th unified copy counted from its start, so a window of n
        # events loses floor(0.03 n) or ceil(0.03 n) of them, depending on where it begins.
        events = instance_events("phase1-verification")
        lost = events["legacy"] - events["paired"]
        assert math.floor(0.03 * events["legacy"]) <= lost <= math.ceil(0.03 * events["legacy"]), events
        assert lossy["passed"] is False, lossy
        assert lossy["measured"] == pytest.approx(100.0 * events["paired"] / events["legacy"], abs=1e-4), lossy
        for host in set(HOSTS) - {HOST}:
            healthy = row(decision, "dual_publish_success", "%s@%s" % (AGENT, host))
            assert healthy["passed"] and healthy["measured"] == 100.0, healthy
        assert any("dual_publish_success" in f and INSTANCE in f for f in decision["reasons"]), decision["reasons"]
        # The criterion without data fails on every instance; every other primary figure was measured
        # and only the lossy instance's dual publishing failed.
        rows = [r for r in decision["criteria"] if r["name"] == "gpu_memory_errors"]
        assert len(rows) == len(HOSTS) and all(not r["passed"] and r["reason"] == "no data" for r in rows), rows
        others = [r for r in decision["criteria"] if r["kind"] == "primary" and r["name"] != "gpu_memory_errors"]
        assert all(r["measured"] is not None for r in others), others
        assert [(r["name"], r["agent"]) for r in others if not r["passed"]] == [("dual_publish_success", INSTANCE)]
        # No trigger fired: the wave stopped at the gate without rolling back, before phase 2.
        assert decision["next_step"] == "stop"
        assert all(env_flag(host, "tdd-expert") == "false" for host in HOSTS)


def test_added_reply_latency_is_measured_and_names_the_instance(sandbox, wave1_go, tmp_path):
    with legacy_fleet_after(tmp_path):
        set_knobs(FAULT_REPLY_DELAY_MS="150")
        run = run_playbook(tmp_path, "wave2.yml", extravars=QUICK)
        assert run.rc != 0, run.stdout[-3000:]
        decision = checkpoint("phase1-verification")
        assert decision["outcome"] != "GO"
        p50 = row(decision, "latency_p50", INSTANCE)
        assert p50["passed"] is False and 142.5 <= p50["measured"] <= 157.5, p50
        # p99 is measured and kept with its limit; a fixed 150 ms delay stays under 200 ms.
        p99 = row(decision, "latency_p99", INSTANCE)
        assert p99["measured"] >= p50["measured"] and p99["threshold"] == 200, p99
        for host in set(HOSTS) - {HOST}:
            assert row(decision, "latency_p50", "%s@%s" % (AGENT, host))["passed"]
        assert any("latency_p50" in f and INSTANCE in f for f in decision["reasons"]), decision["reasons"]
        # The sequential test compares each instance with its own latency before its flip: this one
        # was as slow before (the knob was set before the wave), so the flip is not blamed for it.
        slow = sequential_rows(decision)[INSTANCE]
        assert slow["verdict"] == "no difference so far" and 142.5 <= slow["baseline_median_ms"] <= 157.5, slow
        assert slow["references"]["control"]["share_up"] > 0.9, slow


def sequential_rows(decision: dict, metric: str = "latency_ms") -> dict:
    return {c["instance"]: c for c in decision["comparisons"] if c.get("test") == "sequential" and c["metric"] == metric}


def test_latency_added_by_the_flip_is_degraded_by_the_sequential_test_with_its_effect(sandbox, wave1_go, tmp_path):
    """150 ms added to the instance right after its flip (once its deploy is journaled, before the
    watch): the sequential test (criteria/default.yml) finds it degraded against its own pre-flip
    latency and the control group, says by how much, and leaves the healthy instances alone. More
    than 20 % and found by the test: performance_degradation fires and the wave rolls back."""
    with legacy_fleet_after(tmp_path):
        since = time.time()
        proc = start_playbook(tmp_path, "wave2.yml", QUICK, "slowed-after-flip")

        def flipped(records, pid):
            return any(r["step"] == "deploy" and r.get("host") == HOST and r.get("outcome") == "ok" for r in records)

        kill_when(proc, flipped, "the deploy of %s" % INSTANCE, since, kill=False)
        set_knobs(FAULT_REPLY_DELAY_MS="150")
        assert proc.wait(timeout=600) != 0, (tmp_path / "slowed-after-flip.log").read_text()[-3000:]
        decision = checkpoint("phase1-verification")
        rows = sequential_rows(decision)
        assert set(rows) == {"%s@%s" % (AGENT, h) for h in HOSTS}, sorted(rows)
        slow = rows[INSTANCE]
        assert slow["verdict"] == "degraded", slow
        assert 140 <= slow["shift_ms"] <= 160 and slow["baseline_median_ms"] < 10, slow
        # alpha shared by the wave's 2 agents on every host, each compared on 2 metrics
        assert slow["shift_pct"] > 1000 and slow["alpha"] == pytest.approx(0.05 / (2 * len(HOSTS) * 2)), slow
        for ref in ("baseline", "control"):
            assert slow["references"][ref]["share_up"] > 0.9 and slow["references"][ref]["share_up_bounds"][0] > 0.5
        for host in set(HOSTS) - {HOST}:
            assert rows["%s@%s" % (AGENT, host)]["verdict"] == "no difference so far", rows
        assert (decision["outcome"], decision["next_step"]) == ("ROLLBACK", "rollback"), decision["reasons"]
        fired = [r for r in decision["criteria"] if r["fired"]]
        assert [(r["name"], r["agent"]) for r in fired] == [("performance_degradation", INSTANCE)], fired
        assert fired[0]["measured"] > 1000 and fired[0]["also"]["measured"] == 1, fired
        assert any(r.startswith("comparison latency_ms degraded: %s: median " % INSTANCE) for r in decision["reasons"])
        summary = (ARTIFACTS / "checkpoints/wave2/phase1-verification/summary.md").read_text()
        assert re.search(r"\| latency_ms \| %s \| [0-9.]+ \(\d+\) \| [0-9.]+ \| \+1[45]\d(\.\d+)? ms " % INSTANCE,
                         summary), summary
        # The wave rolled back at phase 1's gate: every flipped agent is back on legacy, and phase 2's
        # agent was never flipped.
        assert all(env_flag(host, AGENT) == "false" and env_flag(host, "tdd-expert") == "false" for host in HOSTS)


def crash_after_verification(started_at: float, stop: threading.Event) -> None:
    """Once this run's phase-1 verification is written, kill the instance; systemd starts it
    again with FAULT_CRASH_AFTER_S, so it crashes (exit 70) every few seconds until rolled back."""
    marker = ARTIFACTS / "checkpoints/wave2/phase1-verification/decision.json"
    while not stop.wait(0.2):
        if marker.exists() and marker.stat().st_mtime > started_at:
            set_knobs("kill", FAULT_CRASH_AFTER_S="2")
            return


def mid_rollback(records, controller):
    """The automatic rollback is under way: decided, with a task of it running on the stand-ins
    (issue 9's fourth kill point)."""
    return any(r.get("next_step") == "rollback" for r in records) and tree_runs(controller, ON_A_STAND_IN)


def test_a_crash_during_monitoring_rolls_the_wave_back_automatically(sandbox, wave1_go, tmp_path):
    """The crash is caught by a monitoring round, which rolls the wave back. The controller is killed
    while that rollback runs on the stand-ins; the wave re-run goes on with the same run and
    finishes that rollback (issue 9), recorded once."""
    # Phase 1 watched for 45 s with a monitoring round every 6 s between its checkpoints.
    slow = {"wave_monitor_interval_seconds": 6,
            "wave_schedule": {"wave2": {"phase1": [{"label": "phase1-T+1h", "at": 40}],
                                        "phase2": [{"label": "T+24h", "at": 1}]}}}
    with legacy_fleet_after(tmp_path):
        stop = threading.Event()
        started = time.time()
        crasher = threading.Thread(target=crash_after_verification, args=(started, stop), daemon=True)
        crasher.start()
        try:
            cut = kill_when(start_playbook(tmp_path, "wave2.yml", slow, "mid-rollback"), mid_rollback,
                            "the automatic rollback under way", started)
            run = run_playbook(tmp_path, "wave2.yml", extravars=slow)
        finally:
            stop.set()
            crasher.join()
        assert run.rc != 0, run.stdout[-3000:]
        wave = json.loads((ARTIFACTS / "checkpoints/wave2/decision.json").read_text())
        assert wave["run_id"] == cut, (wave["run_id"], cut)
        records = [json.loads(line) for line in (ARTIFACTS / wave["journal"]).read_text().splitlines() if line]
        [rollback] = [r for r in records if r["step"] == "rollback"]
        [resume] = [r for r in records if r["step"] == "resume"]
        detail = rollback["detail"]
        assert rollback["outcome"] == "rolled back" and rollback["next_step"] == "stop", rollback
        assert "agent_crash" in detail["triggers"]
        assert rollback["label"].startswith("phase1-monitor-"), rollback
        # Cut off after the round that fired, before its rollback was recorded; taken by the re-run.
        fired_seq = next(r["seq"] for r in records if r.get("label") == rollback["label"] and r["step"] == "monitoring round")
        assert fired_seq < resume["seq"] < rollback["seq"], records
        assert resume["detail"]["after"].startswith("phase1: monitoring round %s" % rollback["label"]), resume
        # The console said so (the message as a person reads it: colours off, lines unwrapped).
        shown = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", run.stdout).split())
        assert "then its rollback after %s" % rollback["label"] in shown, run.stdout[-3000:]
        # From detection to legacy-only proven: under a minute of the tool's own time, the cut aside.
        assert float(detail["seconds_detection_to_completion"]) - resume["detail"]["interruption_seconds"] < 60, (
            rollback, resume)
        # One clock format: detection <= decision <= start of the rollback <= its completion.
        assert detail["detected_at"] <= detail["decided_at"] <= rollback["started"] <= rollback["finished"], rollback
        # The same proof, in the same shape, as playbooks/rollback.yml records.
        proof = detail["legacy_only"]
        assert proof["proven"] is True and proof["hosts"] == list(HOSTS), detail
        # ... and the contract's watch after it (compressed): judged stable, part of the rollback's record.
        watch = detail["post_rollback"]
        assert watch["stable"] is True and watch["reasons"] == [] and len(watch["rounds"]) >= 1, watch
        assert sorted(proof["instances"]) == ["%s@%s" % (AGENT, host) for host in HOSTS], proof
        assert any("Rolled back automatically" in m for m in run.failed_messages()), run.failed_messages()
        assert "Rolled back automatically after %s" % rollback["label"] in (
            ARTIFACTS / "checkpoints/wave2/report.md").read_text()

        # The gate stopped the wave there: nothing more was waited for or taken, phase 2 never started.
        rows = {c["label"]: c for c in wave["checkpoints"]}
        assert rows["phase1-verification"]["outcome"] == "GO"
        assert [rows[label]["outcome"] for label in ("phase1-T+1h", "phase2-verification", "T+24h")] == [
            "NOT REACHED"] * 3
        assert all(env_flag(host, "tdd-expert") == "false" for host in HOSTS)
        assert [r["step"] for r in records][-3:] == ["rollback", "gate", "decision"], records

        # The monitoring round that fired keeps the evidence and the times, under its manifest.
        folder = ARTIFACTS / "checkpoints/wave2/monitor" / rollback["label"]
        fired = checkpoint(rollback["label"], monitor=True)
        assert fired["outcome"] == "ROLLBACK" and fired["next_step"] == "rollback" and fired["step"] == "monitoring round"
        assert row(fired, "agent_crash", INSTANCE)["fired"] is True
        assert "rollback.json" in (folder / "MANIFEST.sha256").read_text()
        assert json.loads((folder / "rollback.json").read_text()) == rollback

        # Legacy-only, proven over NATS: every host answers on legacy with the flag off, nobody on unified.
        legacy = gather(subject(AGENT, "legacy"))
        assert legacy["hosts"] == sorted(HOSTS) and legacy["unified"] == [False], legacy
        assert gather(subject(AGENT, "unified"))["no_responders"] is True
        assert all(env_flag(host, AGENT) == "false" for host in HOSTS)

        # The run's checklist, rendered from the same journal, shows the rollback with its real times.
        checklist = (ARTIFACTS / "runs" / wave["run_id"] / "checklist.md").read_text()
        assert "- [x] Rollback: restore, restart, legacy-only proven — **rolled back** — %s → %s" % (
            rollback["started"], rollback["finished"]) in checklist, checklist
        assert "- [!] Go/no-go after phase1 — **NO-GO**" in checklist
