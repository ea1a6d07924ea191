"""A wave whose controller is killed goes on where it was cut off (issue 9): wave 2 on the test fleet,
its controller (ansible-playbook and every process it started) SIGKILLed between two hosts' deploys,
in the middle of a checkpoint's probe and in the middle of a monitoring round's observation, and
re-run each time. The same run goes on: every host flipped exactly once (its backup manifest and
the journal say so), every planned round taken exactly once on the recorded watch clock, and the
report shows each interruption. While the first run holds the fleet lock, a second operator's wave 2
is refused, naming it, and writes nothing. A kill in the middle of an automatic rollback is in
test_measurement.py (the crash test)."""

from __future__ import annotations

import datetime
import json
import os
import time

import pytest

from .conftest import (ARTIFACTS, HOSTS, ON_A_STAND_IN, controller_connected, ensure_legacy, env_flag, journal_of,
                       kill_when, podman_exec, roll_back_wave2, run_playbook, tree_runs, start_playbook)

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(900)]

# Two checkpoints per phase, a stagger to be killed in, and monitoring rounds between phase 2's checkpoints.
SCHEDULE = {"wave_stagger_seconds": 5, "wave_monitor_interval_seconds": 4,
            "wave_schedule": {"wave2": {"phase1": [{"label": "phase1-T+1h", "at": 2},
                                                   {"label": "phase1-T+2h", "at": 4}],
                                        "phase2": [{"label": "T+1h", "at": 2},
                                                   {"label": "T+24h", "at": 10}]}}}
WAVE2_AGENTS = {"wave2/phase1": "network-expert", "wave2/phase2": "tdd-expert"}


def has(records, step, **match):
    return any(r["step"] == step and all(r.get(k) == v for k, v in match.items()) for r in records)


def between_deploys(records, _controller):
    """At least one host of phase 1 deployed, not all: in a stagger or in the middle of the next deploy."""
    return 1 <= sum(1 for r in records if r["step"] == "deploy" and r["phase"] == "phase1") < len(HOSTS)


def mid_probe(records, _controller):
    # In phase 1's watch the controller's only NATS connection is a round's probe.
    return has(records, "watch", phase="phase1") and controller_connected()


def mid_observation(records, controller):
    # In phase 2's watch the only task on the stand-ins is a round's observation of the units.
    return has(records, "watch", phase="phase2") and tree_runs(controller, ON_A_STAND_IN)


def wave2_backups(since: str) -> dict:
    """{host: {label: [env file, ...]}} of the wave-2 backups taken after since (an ISO stamp)."""
    found = {}
    for host in HOSTS:
        manifest = json.loads(podman_exec(host, "cat", "/var/lib/fleetwave/backups/manifest.json"))
        for entry in manifest["backups"]:
            if entry.get("label") in WAVE2_AGENTS and entry["created"] >= since:
                found.setdefault(host, {}).setdefault(entry["label"], []).append(os.path.basename(entry["path"]))
    return found


def test_a_wave_killed_three_times_goes_on_and_flips_every_host_once(sandbox, wave1_go, tmp_path):
    ensure_legacy(tmp_path / "before")
    since = time.time()
    since_stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    try:
        run_ids = []
        for name, ready in (("between-deploys", between_deploys), ("mid-probe", mid_probe),
                            ("mid-observation", mid_observation)):
            proc = start_playbook(tmp_path, "wave2.yml", SCHEDULE, name)
            if not run_ids:
                # A second operator's wave 2 while the first holds the lock: refused, naming it, changing nothing.
                first = kill_when(proc, lambda records, _controller: has(records, "lock"), "the first run's lock", since,
                                  kill=False)
                second = run_playbook(tmp_path / "second", "wave2.yml", extravars=SCHEDULE)
                assert second.rc != 0
                assert any(m.startswith("fleet locked by ") and "(run %s, playbook wave2.yml" % first in m
                           for m in second.failed_messages()), second.failed_messages()
                assert sorted(p.name for p in (ARTIFACTS / "runs").glob("wave2-*") if p.stat().st_mtime >= since) \
                    == [first], "the refused run wrote a journal"
            run_ids.append(kill_when(proc, ready, name, since))
        final = run_playbook(tmp_path / "final", "wave2.yml", extravars=SCHEDULE)
        assert final.rc == 0, final.stdout[-3000:]

        # One run, gone on with three times.
        decision = json.loads((ARTIFACTS / "checkpoints/wave2/decision.json").read_text())
        assert decision["outcome"] == "GO" and set(run_ids) == {decision["run_id"]}, (run_ids, decision["run_id"])
        records = journal_of(decision["run_id"])
        assert [r["step"] for r in records].count("run") == 1
        resumes = [r for r in records if r["step"] == "resume"]
        assert len(resumes) == 3, [r["step"] for r in records]
        assert all(r["detail"]["interruption_seconds"] >= 0 for r in resumes)
        assert "cut off 3 time(s)" in (ARTIFACTS / "checkpoints/wave2/report.md").read_text()

        # Every host flipped exactly once: one deploy per phase and host in the journal, one backup each.
        deploys = sorted((r["phase"], r["host"]) for r in records if r["step"] == "deploy")
        assert deploys == sorted((p, h) for p in ("phase1", "phase2") for h in HOSTS), deploys
        backups = wave2_backups(since_stamp)
        assert backups == {h: {label: ["%s.env" % agent] for label, agent in WAVE2_AGENTS.items()} for h in HOSTS}, backups
        assert all(env_flag(h, agent) == "true" for h in HOSTS for agent in WAVE2_AGENTS.values())

        # Every planned round taken exactly once, as in an uninterrupted run, on the recorded clock.
        plan = records[0]["detail"]["plan"]
        planned = sorted((p["name"], r["label"]) for p in plan["phases"] for r in p["rounds"])
        taken = sorted((r["phase"], r["label"]) for r in records if r["step"] in ("checkpoint", "monitoring round"))
        assert taken == planned, (taken, planned)
        for phase in plan["phases"]:
            [watch] = [r for r in records if r["step"] == "watch" and r["phase"] == phase["name"]]
            after = {r["label"]: float(r["after"]) for r in phase["rounds"]}
            for record in records:
                if record.get("phase") == phase["name"] and record["label"] in after \
                        and record["step"] in ("checkpoint", "monitoring round"):
                    started = datetime.datetime.strptime(record["started"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
                        tzinfo=datetime.timezone.utc).timestamp()
                    assert started >= watch["detail"]["t0"] + after[record["label"]] - 0.5, (record, watch)
        # The timeline shows each cut and what came before it.
        timeline = (ARTIFACTS / "checkpoints/wave2/report.md").read_text()
        assert timeline.count("run resumed by") == 3, timeline
    finally:
        after = roll_back_wave2(tmp_path / "after")
        assert after.rc == 0, after.stdout[-3000:]
