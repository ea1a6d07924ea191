"""plugins/plugin_utils/fleet_journal.py and scripts/render-checklist: the run journal (one record per
step, appended under a lock, numbered), the files written beside it (a round's folder and manifest,
approval.json, rollback.json, the wave's decision.json, report.md and the run's checklist.md), and
the seed's execution checklist rendered from it. Every journal here is written through the real
Journal and record_* functions into an artifact store under tmp_path, step by step as the playbooks
would; every time in a checklist must be a time of one of its records.

(This replaces test_fleet_checklist.py, whose checklist was parsed from the audit trail.)"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import threading

import pytest
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_checkpoint, fleet_gate
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import (MANIFEST, ArtifactError,
                                                                                         ArtifactStore, Layout, utc)
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_journal import (
    FIELDS, STEPS, Journal, JournalError, main, plan_of, previous_outcome, progress, record_gate, record_round,
    record_step, record_wave, render_checklist, render_report, render_timeline, resumable, sequential_state, unfinished)

pytestmark = pytest.mark.unit

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN = "20260123T200000Z-abc123"
T0 = datetime.datetime(2026, 1, 23, 20, 0, tzinfo=datetime.timezone.utc).timestamp()
HOSTS = ["dgx-1", "dgx-2", "dgx-3"]
STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def make_plan(wave, phases):
    """A wave plan as fleet_plan builds it (only what the journal reads): phases of (agents, labels)."""
    plan_phases = []
    for number, (agents, labels) in enumerate(phases, 1):
        plan_phases.append(dict(name="phase%d" % number, agents=[dict(name=a) for a in agents],
                                watch=[dict(label=label, after=300 * (i + 1)) for i, label in enumerate(labels)]))
    return dict(wave=wave, agents=[a for agents, _ in phases for a in agents], control=[dict(name="git-expert")],
                phases=plan_phases)


WAVE2 = make_plan("wave2", [(["network-expert"], ["phase1-verification", "phase1-T+1h"]),
                            (["tdd-expert"], ["phase2-verification", "T+1h", "T+6h"])])
WAVE1 = make_plan("wave1", [(["nats-expert"], ["phase1-verification", "T+1h"])])


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(str(tmp_path / "artifacts"))


def judged_round(args, outcome="GO", next_step="proceed", reasons=(), fired=(), decided=None):
    """What fleet_checkpoint.judge_round returns for a round, with the given verdict."""
    monitoring = args.get("kind") == "monitor"
    step = "monitoring round" if monitoring else "checkpoint"
    folder = Layout.round_dir(args["wave"], args["label"], monitoring)
    decision = dict(wave=args["wave"], phase=args["phase"], label=args["label"], step=step, run_id=args["run_id"],
                    detected_at=utc(decided - 0.25), decided_at=utc(decided), outcome=outcome, next_step=next_step,
                    headline="%s: ..." % outcome, reasons=list(reasons))
    files = {"decision.json": decision, "measurements.json": dict(per_agent={}, wave={}),
             "summary.md": "# %s %s %s: %s\n" % (args["wave"], step, args["label"], outcome)}
    result = dict(outcome=outcome, next_step=next_step, reasons=list(reasons), folder=folder, step=step,
                  detected_epoch=decided - 0.25, decided_epoch=decided, fired=list(fired))
    return dict(result=result, decision=decision, files=files, monitoring=monitoring)


class Run:
    """Journals a wave run step by step, as the playbooks do, with a clock that moves only when told."""

    def __init__(self, store, plan=WAVE2, run_id=RUN, hosts=HOSTS, clock=T0):
        self.store, self.plan, self.run_id, self.hosts, self.clock = store, plan, run_id, hosts, clock
        self.journal = Journal(store, run_id)

    def tick(self, seconds=1.0):
        self.clock += seconds
        return self.clock

    def step(self, step, seconds=5, **args):
        started = self.tick()
        return record_step(self.store, dict(dict(run_id=self.run_id, wave=self.plan["wave"], step=step,
                                                 started=started, finished=self.tick(seconds)), **args))

    def start(self):
        return self.step("run", 0, outcome="ok", detail=dict(plan=self.plan, hosts=self.hosts, operator="alice"))

    def preflight(self, failed_host=None):
        self.step("preflight", outcome="ok")
        for host in self.hosts:
            failed = host == failed_host
            self.step("preflight", host=host, outcome="failed" if failed else "ok",
                      reasons=["Ensure the agent units are active: tdd-expert is failed"] if failed else [])
            if failed:
                return False
        self.step("preflight", label="pre-flip probe", outcome="ok",
                  detail=dict(latency_baseline={"%s@%s" % (a, h): 0.8 for a in ("network-expert", "tdd-expert")
                                                for h in self.hosts}))
        return True

    def deploy(self, phase, failed_host=None):
        for host in self.hosts:
            failed = host == failed_host
            self.step("deploy", 10, phase=phase["name"], host=host, outcome="failed" if failed else "ok",
                      reasons=["Ensure each agent answers on its unified subject: no reply"] if failed else [],
                      detail=dict(agents=[a["name"] for a in phase["agents"]]))
            if failed:
                return False
        return True

    def round(self, phase, label, outcome="GO", next_step="proceed", reasons=(), kind="checkpoint", fired=()):
        args = dict(run_id=self.run_id, wave=self.plan["wave"], phase=phase, label=label, kind=kind)
        started = self.tick(60)
        return record_round(self.store, args, judged_round(args, outcome, next_step, reasons, fired, self.tick(2)),
                            started)

    def answer(self, phase, label, approved, kind="checkpoint"):
        return self.step("approval", 30, phase=phase, label=label, kind=kind, approved=approved,
                         detail=dict(how="prompt", operator="alice"))

    def roll_back(self, phase, label, kind="checkpoint", outcome="rolled back"):
        return self.step("rollback", 20, phase=phase, label=label, kind=kind, outcome=outcome,
                         reasons=[] if outcome == "rolled back" else ["Ensure legacy-only: dgx-2 still on unified"],
                         detail=dict(triggers=["agent_crash"], agents=self.plan["agents"], detected_at="d",
                                     decided_at="e", seconds_detection_to_completion=21.0))

    def gate(self, phase):
        return record_gate(self.store, self.plan, self.run_id, phase)

    def decide(self):
        return record_wave(self.store, self.plan, self.run_id)

    def records(self):
        return self.journal.records()


def go_run(store, plan=WAVE2, monitor_rounds=2, until=None):
    """A whole GO run: pre-flight, each phase deployed, watched (checkpoints with monitoring rounds
    between them in the last phase) and gated, then the wave decided. until: the label of the round
    after which the run is cut short (still running)."""
    run = Run(store, plan)
    run.start()
    run.preflight()
    for index, phase in enumerate(plan["phases"]):
        run.deploy(phase)
        for number, watch in enumerate(phase["watch"]):
            if index == len(plan["phases"]) - 1 and 0 < number <= monitor_rounds:
                run.round(phase["name"], "%s-monitor-%03d" % (phase["name"], number), kind="monitor")
            run.round(phase["name"], watch["label"])
            if watch["label"] == until:
                return run
        run.gate(phase["name"])
    run.decide()
    return run


def section(text, number):
    """The lines of '## Phase <number> — ...' up to the next section."""
    match = re.search(r"^## Phase %d — .*?(?=^## |\Z)" % number, text, re.S | re.M)
    assert match, "no section %d in:\n%s" % (number, text)
    return match.group(0)


def items(text):
    return [line for line in text.splitlines() if line.startswith("- [")]


def find(records, step, **match):
    return [r for r in records if r["step"] == step and all(r.get(k) == v for k, v in match.items())][-1]


def assert_times_are_record_times(text, records):
    stamps = {r.get(k) for r in records for k in ("started", "finished")}
    found = set(STAMP.findall(text))
    assert found and found <= stamps, found - stamps


# ================================================================================ Journal

def test_append_numbers_the_records_and_reads_them_back(store):
    journal = Journal(store, RUN)
    first = journal.append("wave2", "run", outcome="ok", next_step="proceed", detail=dict(plan=WAVE2))
    second = journal.append("wave2", "preflight", host="dgx-1", outcome="ok", next_step="proceed")
    third = journal.append("wave2", "deploy", phase="phase1", host="dgx-1", outcome="failed", next_step="stop",
                           reasons=("no reply",))
    assert [first["seq"], second["seq"], third["seq"]] == [1, 2, 3]
    assert journal.records() == [first, second, third]
    assert journal.relpath == "runs/%s/journal.jsonl" % RUN and os.path.isfile(store.path(journal.relpath))
    assert set(first) == set(FIELDS) | {"seq", "run_id", "wave", "step"}
    assert (first["run_id"], first["wave"], first["host"], first["reasons"]) == (RUN, "wave2", None, [])
    assert third["reasons"] == ["no reply"]


def test_append_formats_epochs_with_utc_and_keeps_stamps(store):
    record = Journal(store, RUN).append("wave2", "deploy", started=T0, finished=int(T0) + 61.25)
    assert (record["started"], record["finished"]) == ("2026-01-23T20:00:00.000Z", "2026-01-23T20:01:01.250Z")
    record = Journal(store, RUN).append("wave2", "deploy", started="2026-01-23T20:00:00.000Z")
    assert record["started"] == "2026-01-23T20:00:00.000Z"


def test_finished_defaults_to_now(store):
    before = utc()
    record = Journal(store, RUN).append("wave2", "preflight")
    assert STAMP.fullmatch(record["finished"]) and before <= record["finished"] <= utc()
    assert record["started"] is None


def test_an_unknown_step_is_refused_and_nothing_written(store):
    with pytest.raises(JournalError, match=r"unknown journal step 'halt' \(one of run, resume, lock, preflight, "
                                           r"deploy, watch, checkpoint, monitoring round, approval, rollback, gate, "
                                           r"pause, decision\)"):
        Journal(store, RUN).append("wave2", "halt")
    assert Journal(store, RUN).records() == []
    assert STEPS[0] == "run" and STEPS[-1] == "decision"


def test_an_unknown_field_is_refused_and_nothing_written(store):
    with pytest.raises(JournalError, match=r"unknown journal field\(s\) action, paused"):
        Journal(store, RUN).append("wave2", "checkpoint", action="pause", paused=True, outcome="NO-GO")
    assert Journal(store, RUN).records() == []


@pytest.mark.parametrize("run_id", ["", None, "a/b", ".hidden", ".."])
def test_a_run_id_that_cannot_name_a_journal_is_refused(store, run_id):
    with pytest.raises(JournalError, match="cannot name a journal"):
        Journal(store, run_id)


def test_sixteen_writers_at_once_get_distinct_numbers(store):
    writers, each = 16, 10
    barrier, errors = threading.Barrier(writers), []

    def write(n):
        try:
            barrier.wait()
            for i in range(each):
                Journal(store, RUN).append("wave2", "deploy", host="dgx-%d" % n, detail=dict(i=i))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    records = Journal(store, RUN).records()
    # seq is the line number: no two writers read the same length before appending.
    assert [r["seq"] for r in records] == list(range(1, writers * each + 1))
    assert sorted((r["host"], r["detail"]["i"]) for r in records) == sorted(
        ("dgx-%d" % n, i) for n in range(writers) for i in range(each))


def test_a_torn_last_record_is_skipped_and_the_next_numbered_after_it(store):
    journal = Journal(store, RUN)
    journal.append("wave2", "run", outcome="ok")
    with open(store.path(journal.relpath), "ab") as handle:
        handle.write(b'{"seq": 2, "step": "prefl')  # a killed writer
    record = journal.append("wave2", "preflight", outcome="ok")
    assert record["seq"] == 2 and [r["step"] for r in journal.records()] == ["run", "preflight"]


# ================================================================================ record_step

def test_steps_not_judged_by_criteria_proceed_when_ok_and_stop_otherwise(store):
    run = Run(store)
    record, beside = run.start()
    assert (record["step"], record["outcome"], record["next_step"], beside) == ("run", "ok", "proceed", None)
    assert record["detail"]["plan"] == WAVE2 and plan_of(run.records()) == WAVE2
    assert run.step("preflight", host="dgx-1", outcome="ok")[0]["next_step"] == "proceed"
    record, _ = run.step("deploy", phase="phase1", host="dgx-2", outcome="failed", reasons=["no reply"],
                         detail=dict(agents=["network-expert"]))
    assert (record["next_step"], record["reasons"], record["detail"]) == ("stop", ["no reply"],
                                                                         dict(agents=["network-expert"]))
    # The run record at T0 + 1, the pre-flight from T0 + 2 to T0 + 7, the deploy from T0 + 8 for 5 s.
    assert record["started"] == utc(T0 + 8) and record["finished"] == utc(T0 + 13)


def test_plan_of_a_journal_without_a_run_record_is_none(store):
    assert plan_of([]) is None and plan_of([dict(step="preflight")]) is None


def test_an_answer_needs_a_round_that_asked(store):
    run = Run(store)
    run.start()
    with pytest.raises(JournalError, match=r"no round T\+1h of phase2 waits for an answer in run %s" % RUN):
        run.answer("phase2", "T+1h", True)
    run.round("phase2", "T+1h")  # GO: nothing to answer
    with pytest.raises(JournalError, match=r"checkpoint T\+1h did not ask for a person \(next step proceed\) in run"):
        run.answer("phase2", "T+1h", True)
    assert [r["step"] for r in run.records()] == ["run", "checkpoint"]
    assert not os.path.exists(store.path(Layout.round_approval("wave2", "T+1h")))


def test_an_accepted_answer_is_journaled_and_written_beside_its_round(store):
    run = Run(store)
    run.start()
    run.round("phase2", "T+1h", "INCONCLUSIVE", "ask", ["too few samples"])
    record, beside = run.answer("phase2", "T+1h", True)
    assert (record["step"], record["outcome"], record["next_step"]) == ("approval", "GO", "proceed")
    assert record["reasons"] == ["too few samples", "INCONCLUSIVE, accepted by a person"]
    assert record["artifact"] == "checkpoints/wave2/T+1h"
    assert record["detail"] == dict(how="prompt", operator="alice", approved=True)
    assert beside == store.path("checkpoints/wave2/T+1h/approval.json")
    assert store.read_json("checkpoints/wave2/T+1h/approval.json") == record
    manifest = open(store.path("checkpoints/wave2/T+1h", MANIFEST)).read()
    digest = hashlib.sha256(open(beside, "rb").read()).hexdigest()
    assert "%s  approval.json\n" % digest in manifest
    # Answered once: a second answer finds nothing waiting.
    with pytest.raises(JournalError, match="waits for an answer"):
        run.answer("phase2", "T+1h", True)


def test_a_refused_answer_to_a_monitoring_round_stops(store):
    run = Run(store)
    run.start()
    run.round("phase2", "phase2-monitor-001", "INCONCLUSIVE", "ask", ["too few samples"], kind="monitor")
    record, beside = run.answer("phase2", "phase2-monitor-001", False, kind="monitor")
    assert (record["outcome"], record["next_step"]) == ("INCONCLUSIVE", "stop")
    assert record["detail"]["approved"] is False
    assert beside == store.path("checkpoints/wave2/monitor/phase2-monitor-001/approval.json")
    assert "approval.json" in open(store.path("checkpoints/wave2/monitor/phase2-monitor-001", MANIFEST)).read()


def test_an_automatic_rollback_is_written_beside_its_round(store):
    run = Run(store)
    run.start()
    run.round("phase2", "phase2-monitor-003", "ROLLBACK", "rollback", ["trigger agent_crash fired"], kind="monitor",
              fired=["agent_crash"])
    record, beside = run.roll_back("phase2", "phase2-monitor-003", kind="monitor")
    folder = "checkpoints/wave2/monitor/phase2-monitor-003"
    assert (record["step"], record["outcome"], record["next_step"], record["artifact"]) == (
        "rollback", "rolled back", "stop", folder)
    assert beside == store.path(folder, "rollback.json") and store.read_json(folder + "/rollback.json") == record
    assert "rollback.json" in open(store.path(folder, MANIFEST)).read()
    assert record["detail"]["triggers"] == ["agent_crash"]


def test_a_failed_rollback_stops_too(store):
    run = Run(store)
    run.start()
    run.round("phase1", "phase1-T+1h", "ROLLBACK", "rollback", ["x"])
    record, _ = run.roll_back("phase1", "phase1-T+1h", outcome="failed")
    assert (record["outcome"], record["next_step"]) == ("failed", "stop")
    assert store.read_json("checkpoints/wave2/phase1-T+1h/rollback.json")["outcome"] == "failed"


def test_a_rollback_run_is_recorded_under_rollbacks(store):
    record, beside = record_step(store, dict(run_id="rollback-20260124T080000Z", wave="wave2", step="rollback",
                                             started=T0, finished=T0 + 31, outcome="rolled back",
                                             detail=dict(targets=["network-expert"], seconds=31.0)))
    assert beside == store.path("rollbacks/rollback-20260124T080000Z.json")
    assert record["artifact"] == "rollbacks/rollback-20260124T080000Z.json" and record["next_step"] == "stop"
    assert store.read_json("rollbacks/rollback-20260124T080000Z.json") == record
    assert os.listdir(store.path("rollbacks")) == ["rollback-20260124T080000Z.json"]  # no manifest there
    assert Journal(store, "rollback-20260124T080000Z").records() == [record]


# ================================================================================ record_round

def test_a_round_is_written_with_its_manifest_and_journaled(store):
    run = Run(store)
    run.start()
    path = run.round("phase1", "phase1-T+1h", "NO-GO", "stop", ["primary latency_p99 failed"])
    folder = "checkpoints/wave2/phase1-T+1h"
    assert path == store.path(folder)
    assert sorted(os.listdir(path)) == sorted(["decision.json", "measurements.json", "summary.md", MANIFEST])
    assert store.read_json(folder + "/decision.json")["outcome"] == "NO-GO"
    assert open(os.path.join(path, "summary.md")).read() == "# wave2 checkpoint phase1-T+1h: NO-GO\n"
    manifest = open(os.path.join(path, MANIFEST)).read().splitlines()
    assert [line.split("  ")[1] for line in manifest] == ["decision.json", "measurements.json", "summary.md"]
    for line in manifest:
        digest, name = line.split("  ")
        assert hashlib.sha256(open(os.path.join(path, name), "rb").read()).hexdigest() == digest
    record = run.records()[-1]
    assert (record["step"], record["phase"], record["label"], record["outcome"], record["next_step"]) == (
        "checkpoint", "phase1", "phase1-T+1h", "NO-GO", "stop")
    assert record["reasons"] == ["primary latency_p99 failed"] and record["artifact"] == folder
    # Started a minute after the run record (T0 + 1), decided 2 s later: the round's decided epoch.
    assert (record["started"], record["finished"]) == (utc(T0 + 61), utc(T0 + 63))
    assert record["detail"] == dict(fired=[], detected_at=utc(T0 + 62.75), decided_at=utc(T0 + 63))


def test_a_monitoring_round_goes_under_monitor(store):
    run = Run(store)
    run.start()
    path = run.round("phase2", "phase2-monitor-001", kind="monitor")
    assert path == store.path("checkpoints/wave2/monitor/phase2-monitor-001")
    assert run.records()[-1]["step"] == "monitoring round"


def test_an_earlier_runs_folder_is_moved_to_history_not_overwritten(store):
    earlier = Run(store, run_id="20260122T080000Z-old")
    earlier.start()
    earlier.round("phase2", "T+1h", "INCONCLUSIVE", "ask", ["too few samples"])
    earlier.answer("phase2", "T+1h", False)
    earlier.round("phase2", "phase2-monitor-001", kind="monitor")
    run = Run(store)
    run.start()
    run.round("phase2", "T+1h")
    run.round("phase2", "phase2-monitor-001", kind="monitor")
    old = store.path("checkpoints/wave2/history/20260122T080000Z-old/T+1h")
    assert sorted(os.listdir(old)) == sorted(["approval.json", "decision.json", "measurements.json", "summary.md",
                                              MANIFEST])
    assert store.read_json("checkpoints/wave2/history/20260122T080000Z-old/T+1h/decision.json")["outcome"] == \
        "INCONCLUSIVE"
    assert os.path.isdir(store.path("checkpoints/wave2/history/20260122T080000Z-old/monitor/phase2-monitor-001"))
    new = store.path("checkpoints/wave2/T+1h")
    assert "approval.json" not in os.listdir(new) and store.read_json("checkpoints/wave2/T+1h/decision.json")[
        "run_id"] == RUN
    # The earlier run's journal is untouched.
    assert [r["step"] for r in earlier.records()] == ["run", "checkpoint", "approval", "monitoring round"]


def test_the_same_run_rewrites_its_own_folder_in_place(store):
    run = Run(store)
    run.start()
    run.round("phase2", "T+1h", "NO-GO", "stop", ["x"])
    run.round("phase2", "T+1h")
    assert not os.path.exists(store.path("checkpoints/wave2/history"))
    assert store.read_json("checkpoints/wave2/T+1h/decision.json")["outcome"] == "GO"


def test_a_round_judged_by_judge_round_is_recorded_end_to_end(store):
    units = dict(unit="agent@x.service", active_state="active", n_restarts=0, active_seconds=5000.0, main_pid=1,
                 cpu_seconds=10.0, memory_bytes=100)
    info = {"dgx-1": dict(units={"network-expert": units}, load_per_cpu=0.2, sampled_at_uptime=1600.0)}
    baseline = {"dgx-1": dict(units={"network-expert": units}, load_per_cpu=0.2, sampled_at_uptime=1000.0)}
    with open(os.path.join(REPO, "criteria", "default.yml")) as handle:
        criteria = handle.read()
    args = dict(criteria=criteria, criteria_file="criteria/default.yml",
                kind="checkpoint", hosts=["dgx-1"], info=info, baseline=baseline, probe=None,
                probe_error="nats: connection refused", test=["network-expert"], reference=[], control=[],
                wave="wave2", phase="phase1", label="phase1-verification", run_id=RUN, reference_kind="control")
    assert fleet_gate.load_criteria(criteria, "criteria/default.yml")["on_trigger"] == "rollback"
    judged = fleet_checkpoint.judge_round(args)
    Run(store).start()
    path = record_round(store, args, judged, T0)
    assert sorted(os.listdir(path)) == sorted(["comparison.json", "decision.json", "measurements.json",
                                               "observations.json", "summary.md", MANIFEST])
    record = Journal(store, RUN).records()[-1]
    assert (record["outcome"], record["next_step"]) == ("NO-GO", "stop")
    assert record["reasons"][0] == "probe failed, so every NATS figure is missing: nats: connection refused"
    assert record["finished"] == judged["decision"]["decided_at"] and record["started"] == utc(T0)
    assert store.read_json("checkpoints/wave2/phase1-verification/observations.json")["probe_error"] == \
        "nats: connection refused"


# ================================================================================ record_gate, record_wave

def test_a_go_gate_is_journaled(store):
    run = Run(store)
    run.start()
    run.round("phase1", "phase1-verification")
    run.round("phase1", "phase1-T+1h")
    assert run.gate("phase1") == dict(outcome="GO", next_step="proceed", reasons=[])
    record = run.records()[-1]
    assert (record["step"], record["phase"], record["outcome"], record["next_step"]) == ("gate", "phase1", "GO",
                                                                                        "proceed")


def test_a_no_go_gate_is_journaled_with_its_reasons(store):
    run = Run(store)
    run.start()
    run.round("phase1", "phase1-verification", "NO-GO", "stop", ["primary x failed"])
    gate = run.gate("phase1")
    assert gate == dict(outcome="NO-GO", next_step="stop",
                        reasons=["checkpoint phase1-verification is NO-GO: primary x failed"])
    assert run.records()[-1]["reasons"] == gate["reasons"]


def test_a_go_wave_writes_its_decision_report_and_checklist(store):
    run = go_run(store)
    records = run.records()
    decided = records[-1]
    assert (decided["step"], decided["outcome"], decided["next_step"]) == ("decision", "GO", "proceed")
    assert decided["artifact"] == "checkpoints/wave2/decision.json"
    recorded = store.read_json("checkpoints/wave2/decision.json")
    assert recorded == dict(wave="wave2", run_id=RUN, outcome="GO", reasons=[], checkpoints=recorded["checkpoints"],
                            started=records[0]["started"], decided=decided["finished"],
                            journal="runs/%s/journal.jsonl" % RUN)
    assert [c["label"] for c in recorded["checkpoints"]] == ["phase1-verification", "phase1-T+1h",
                                                             "phase2-verification", "T+1h", "T+6h"]
    report = open(store.path("checkpoints/wave2/report.md")).read()
    assert report.startswith("# wave2: GO\n") and "GO: all 5 checkpoints passed." in report
    assert open(store.path("runs", RUN, "checklist.md")).read() == render_checklist(records)
    assert previous_outcome(store, "wave2") == "GO"


def test_record_wave_returns_what_it_wrote(store):
    run = go_run(store, until="T+6h")
    result = run.decide()
    assert result["outcome"] == "GO" and result["report"] == open(result["report_path"]).read()
    assert result["report_path"] == store.path("checkpoints/wave2/report.md")
    assert result["checklist_path"] == store.path("runs/%s/checklist.md" % RUN)


def test_a_no_go_wave_is_recorded_with_its_reasons(store):
    run = Run(store)
    run.start()
    run.preflight()
    run.deploy(WAVE2["phases"][0])
    run.round("phase1", "phase1-verification")
    run.round("phase1", "phase1-T+1h", "NO-GO", "stop", ["primary latency_p99 failed on network-expert@dgx-2"])
    assert run.gate("phase1")["outcome"] == "NO-GO"
    result = run.decide()
    assert result["outcome"] == "NO-GO"
    assert result["reasons"][0] == ("checkpoint phase1-T+1h is NO-GO: primary latency_p99 failed on "
                                    "network-expert@dgx-2")
    assert result["reasons"][1:] == ["checkpoint %s was not reached in this run" % label
                                     for label in ("phase2-verification", "T+1h", "T+6h")]
    decided = run.records()[-1]
    assert (decided["outcome"], decided["next_step"]) == ("NO-GO", "stop")
    assert store.read_json("checkpoints/wave2/decision.json")["outcome"] == "NO-GO"
    assert "rollback.yml -e rollback_wave=wave2" in open(store.path("checkpoints/wave2/report.md")).read()
    assert previous_outcome(store, "wave2") == "NO-GO"


def test_previous_outcome_without_a_recorded_decision(store):
    assert previous_outcome(store, "wave1") is None and previous_outcome(store, None) is None


def test_the_timeline_folds_monitoring_rounds_that_proceeded_unless_asked(store):
    records = go_run(store).records()
    folded = render_timeline(records)
    assert not [line for line in folded if "monitoring round phase2" in line]
    [row] = [line for line in folded if "monitoring rounds, all proceeded" in line]
    rounds = [r for r in records if r["step"] == "monitoring round"]
    assert row == "| %d-%d | phase2: 2 monitoring rounds, all proceeded | %s | %s | GO | proceed | %s |" % (
        rounds[0]["seq"], rounds[-1]["seq"], rounds[0]["started"], rounds[-1]["finished"], "checkpoints/wave2/monitor")
    # The folded row stands where the first folded round happened, between the records around it.
    seqs = [line.split(" | ")[0].lstrip("| ") for line in folded[2:]]
    before = [r["seq"] for r in records if r["seq"] < rounds[0]["seq"]]
    assert seqs[len(before)] == "%d-%d" % (rounds[0]["seq"], rounds[-1]["seq"])
    assert [int(s) for s in seqs[:len(before)]] == before
    unfolded = render_timeline(records, monitoring_rounds=True)
    assert len([line for line in unfolded if "monitoring round phase2" in line]) == 2
    assert len(unfolded) == 2 + len(records)


# ================================================================================ render_checklist

def test_a_complete_go_run_fills_every_phase_of_the_seed_checklist(store):
    records = go_run(store).records()
    text = render_checklist(records)
    assert text.startswith("# wave2 execution checklist\n")
    assert "Run `%s`, rendered from its journal (`runs/%s/journal.jsonl`)" % (RUN, RUN) in text
    assert re.findall(r"^## (.*)$", text, re.M) == [
        "Phase 0 — pre-deployment", "Phase 1 — deploy network-expert (phase1)", "Phase 2 — phase1 stabilization",
        "Phase 3 — deploy tdd-expert (phase2)", "Phase 4 — monitoring", "Phase 5 — final analysis",
        "Phase 6 — rollback"]
    assert "- [!]" not in text
    assert [line for line in items(text) if line.startswith("- [ ]")] == ["- [ ] Rollback: not needed (GO)"]
    assert len(items(text)) == 1 + 3 + 1 + 3 + 2 + 1 + 3 + 3 + 1 + 1 + 1 + 1  # every step of the seed checklist
    assert_times_are_record_times(text, records)


def test_every_item_has_the_real_times_and_outcome_of_its_step(store):
    records = go_run(store).records()
    text = render_checklist(records)
    for host in HOSTS:
        pre = find(records, "preflight", host=host)
        assert "- [x] %s: agents installed, units active, answering — **ok** — %s → %s" % (
            host, pre["started"], pre["finished"]) in section(text, 0)
        deploy = find(records, "deploy", phase="phase2", host=host)
        assert "- [x] Flag on, restarted, dual subscription verified on %s — **ok** — %s → %s" % (
            host, deploy["started"], deploy["finished"]) in section(text, 3)
    probe = find(records, "preflight", label="pre-flip probe")
    assert "- [x] Every agent instance's latency before its flip (the sequential comparison's baseline) — **ok** — %s → %s" % (
        probe["started"], probe["finished"]) in section(text, 0)
    controller = find(records, "preflight", host=None, label=None)
    assert "- [x] Controller: plan valid, previous wave GO, NATS reachable — **ok** — %s → %s" % (
        controller["started"], controller["finished"]) in section(text, 0)
    for label in ("phase2-verification", "T+1h", "T+6h"):
        cp = find(records, "checkpoint", label=label)
        assert "- [x] Checkpoint %s — **GO** — %s → %s" % (label, cp["started"], cp["finished"]) in section(text, 4)
    rounds = [r for r in records if r["step"] == "monitoring round"]
    assert "- [x] Continuous monitoring: 2 rounds, all GO — %s → %s" % (rounds[0]["started"], rounds[-1]["finished"]) \
        in section(text, 4)
    gate = find(records, "gate", phase="phase1")
    # The go/no-go spans the phase's watch: from its first round to the decision.
    assert gate["started"] == find(records, "checkpoint", label="phase1-verification")["started"]
    assert "- [x] Go/no-go after phase1 — **GO** — %s → %s" % (gate["started"], gate["finished"]) in section(text, 2)
    decision = find(records, "decision")
    # The wave decision spans the run: from its start to the decision.
    assert decision["started"] == find(records, "run")["started"]
    assert "- [x] Wave decision recorded — **GO** — %s → %s" % (decision["started"], decision["finished"]) \
        in section(text, 5)
    # Hosts in the order of the run record, not of the records.
    assert [re.search(r"on (dgx-\d)", line).group(1) for line in items(section(text, 1))] == HOSTS


def test_a_nogo_at_the_phase_1_gate_leaves_the_later_phases_not_reached(store):
    run = Run(store)
    run.start()
    run.preflight()
    run.deploy(WAVE2["phases"][0])
    run.round("phase1", "phase1-verification")
    reason = "primary agent_uptime failed on network-expert@dgx-2: uptime_pct 98 is not > 99.9 %"
    run.round("phase1", "phase1-T+1h", "NO-GO", "stop", [reason])
    run.gate("phase1")
    run.decide()
    records = run.records()
    text = render_checklist(records)
    cp = find(records, "checkpoint", label="phase1-T+1h")
    assert "- [!] Checkpoint phase1-T+1h — **NO-GO** — %s → %s: %s" % (cp["started"], cp["finished"], reason) \
        in section(text, 2)
    gate = find(records, "gate")
    assert "- [!] Go/no-go after phase1 — **NO-GO** — %s → %s: checkpoint phase1-T+1h is NO-GO: %s" % (
        gate["started"], gate["finished"], reason) in section(text, 2)
    assert items(section(text, 3)) == ["- [ ] Flag on, restarted, dual subscription verified on %s" % h for h in HOSTS]
    assert items(section(text, 4)) == ["- [ ] Checkpoint phase2-verification", "- [ ] Checkpoint T+1h",
                                       "- [ ] Checkpoint T+6h", "- [ ] Go/no-go after phase2"]
    assert items(section(text, 5))[0].startswith("- [!] Wave decision recorded — **NO-GO** — %s → "
                                                 % find(records, "run")["started"])
    assert "checkpoint T+6h was not reached in this run" in section(text, 5)
    assert items(section(text, 6)) == ["- [ ] Rollback: not run"]
    assert_times_are_record_times(text, records)


def test_a_rollback_is_listed_in_the_rollback_section(store):
    run = Run(store)
    run.start()
    run.preflight()
    for phase in WAVE2["phases"]:
        run.deploy(phase)
    run.round("phase2", "phase2-verification")
    run.round("phase2", "phase2-monitor-001", kind="monitor")
    run.round("phase2", "phase2-monitor-002", "ROLLBACK", "rollback", ["trigger agent_crash fired"], kind="monitor",
              fired=["agent_crash"])
    rollback, _ = run.roll_back("phase2", "phase2-monitor-002", kind="monitor")
    run.gate("phase2")
    run.decide()
    records = run.records()
    text = render_checklist(records)
    assert items(section(text, 6)) == ["- [x] Rollback: restore, restart, legacy-only proven — **rolled back** — "
                                       "%s → %s" % (rollback["started"], rollback["finished"])]
    rounds = [r for r in records if r["step"] == "monitoring round"]
    assert "- [!] Continuous monitoring: 2 rounds, stopped at phase2-monitor-002 (ROLLBACK) — %s → %s" % (
        rounds[0]["started"], rounds[-1]["finished"]) in section(text, 4)
    assert items(section(text, 5))[0].startswith("- [!] Wave decision recorded — **NO-GO**")
    assert "monitoring round phase2-monitor-002 is ROLLBACK: trigger agent_crash fired" in section(text, 5)
    assert_times_are_record_times(text, records)


def test_a_failed_rollback_is_marked_failed_with_its_reason(store):
    run = Run(store)
    run.start()
    run.round("phase1", "phase1-T+1h", "ROLLBACK", "rollback", ["x"])
    rollback, _ = run.roll_back("phase1", "phase1-T+1h", outcome="failed")
    text = render_checklist(run.records())
    assert items(section(text, 6)) == [
        "- [!] Rollback: restore, restart, legacy-only proven — **failed** — %s → %s: Ensure legacy-only: dgx-2 still "
        "on unified" % (rollback["started"], rollback["finished"])]


def test_an_answered_checkpoint_shows_the_answer(store):
    run = Run(store)
    run.start()
    run.round("phase2", "T+1h", "INCONCLUSIVE", "ask", ["too few samples"])
    accepted, _ = run.answer("phase2", "T+1h", True)
    run.round("phase2", "T+6h", "INCONCLUSIVE", "ask", ["too few samples"])
    refused, _ = run.answer("phase2", "T+6h", False)
    text = render_checklist(run.records())
    assert "- [x] Checkpoint T+1h — **GO** — %s → %s" % (accepted["started"], accepted["finished"]) in text
    assert ("- [!] Checkpoint T+6h — **INCONCLUSIVE** — %s → %s: too few samples; INCONCLUSIVE, not accepted: the run "
            "stops here" % (refused["started"], refused["finished"])) in text


def test_a_round_still_waiting_for_an_answer_is_not_done(store):
    run = Run(store)
    run.start()
    run.round("phase2", "T+1h", "INCONCLUSIVE", "ask", ["too few samples"])
    assert "- [!] Checkpoint T+1h — **INCONCLUSIVE**" in render_checklist(run.records())


def test_a_deploy_failure_on_dgx_2_is_marked_failed_and_the_rest_not_reached(store):
    run = Run(store)
    run.start()
    run.preflight()
    run.deploy(WAVE2["phases"][0], failed_host="dgx-2")
    records = run.records()
    text = render_checklist(records)
    failed = find(records, "deploy", host="dgx-2")
    assert items(section(text, 1)) == [
        items(section(text, 1))[0],
        "- [!] Flag on, restarted, dual subscription verified on dgx-2 — **failed** — %s → %s: Ensure each agent "
        "answers on its unified subject: no reply" % (failed["started"], failed["finished"]),
        "- [ ] Flag on, restarted, dual subscription verified on dgx-3"]
    assert items(section(text, 1))[0].startswith("- [x] Flag on, restarted, dual subscription verified on dgx-1")
    for number in (2, 3, 4, 5):
        assert "- [x]" not in section(text, number)
    assert items(section(text, 6)) == ["- [ ] Rollback: not run"]
    assert_times_are_record_times(text, records)


def test_a_failed_pre_flight_changes_nothing(store):
    run = Run(store)
    run.start()
    run.preflight(failed_host="dgx-3")
    records = run.records()
    text = render_checklist(records)
    pre = find(records, "preflight", host="dgx-3")
    assert ("- [!] dgx-3: agents installed, units active, answering — **failed** — %s → %s: Ensure the agent units "
            "are active: tdd-expert is failed" % (pre["started"], pre["finished"])) in section(text, 0)
    assert "- [x]" not in "".join(section(text, n) for n in range(1, 7))


def test_a_run_in_progress_shows_where_it_is(store):
    records = go_run(store, until="T+1h").records()
    text = render_checklist(records)
    assert "- [x] Checkpoint T+1h — **GO**" in section(text, 4)
    assert "- [ ] Checkpoint T+6h" in section(text, 4) and "- [ ] Go/no-go after phase2" in section(text, 4)
    assert items(section(text, 5)) == ["- [ ] Wave decision recorded"]
    assert items(section(text, 6)) == ["- [ ] Rollback: not run"]


def test_wave_1_has_a_single_phase(store):
    records = go_run(store, plan=WAVE1, monitor_rounds=1).records()
    text = render_checklist(records)
    assert re.findall(r"^## (.*)$", text, re.M) == [
        "Phase 0 — pre-deployment", "Phase 1 — deploy nats-expert (phase1)", "Phase 2 — monitoring",
        "Phase 3 — final analysis", "Phase 4 — rollback"]
    assert "- [!]" not in text and "Rollback: not needed (GO)" in text


def test_hosts_come_from_the_records_when_the_run_record_has_none(store):
    run = Run(store, hosts=[])
    run.start()
    for host in ("dgx-2", "dgx-1"):
        run.step("preflight", host=host, outcome="ok")
    text = render_checklist(run.records())
    assert [line.split()[2] for line in items(section(text, 0))[1:-1]] == ["dgx-1:", "dgx-2:"]


def test_a_journal_without_its_run_record_cannot_be_rendered(store):
    journal = Journal(store, RUN)
    journal.append("wave2", "preflight", outcome="ok", next_step="proceed")
    with pytest.raises(JournalError, match="no run record with a plan"):
        render_checklist(journal.records())


# ================================================================================ scripts/render-checklist

def test_the_script_prints_the_checklist(store, capsys):
    records = go_run(store).records()
    assert main([store.path(Layout.journal(RUN))]) == 0
    assert capsys.readouterr().out == render_checklist(records)


def test_the_script_takes_the_runs_folder(store, capsys):
    go_run(store)
    assert main([store.path(Layout.run_dir(RUN))]) == 0
    assert capsys.readouterr().out.startswith("# wave2 execution checklist\n")


def test_the_script_writes_the_output_file(store, tmp_path, capsys):
    records = go_run(store).records()
    out = tmp_path / "CHECKLIST.md"
    assert main([store.path(Layout.journal(RUN)), "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert captured.out == "" and "render-checklist: wrote %s" % out in captured.err
    assert out.read_text() == render_checklist(records)


@pytest.mark.parametrize("content", [None, b"", b"\n\n"], ids=["missing", "empty", "blank"])
def test_the_script_exits_1_without_records(tmp_path, capsys, content):
    path = tmp_path / "runs" / RUN / "journal.jsonl"
    if content is not None:
        path.parent.mkdir(parents=True)
        path.write_bytes(content)
    assert main([str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == "render-checklist: %s: no journal records\n" % path


def test_the_script_exits_1_on_a_corrupt_journal_naming_the_line(store, capsys):
    go_run(store)
    path = store.path(Layout.journal(RUN))
    lines = open(path, "rb").read().splitlines(keepends=True)
    lines[3] = b'{"seq": 4, "step": deploy}\n'
    with open(path, "wb") as handle:
        handle.write(b"".join(lines))
    assert main([path]) == 1
    assert "render-checklist: %s: line 4 is not valid JSON" % path in capsys.readouterr().err


def test_the_script_exits_1_on_a_journal_without_a_run_record(store, capsys):
    Journal(store, RUN).append("wave2", "preflight", outcome="ok")
    assert main([store.path(Layout.journal(RUN))]) == 1
    assert "the journal has no run record with a plan" in capsys.readouterr().err


def test_the_script_wrapper_runs_this_module():
    with open(os.path.join(REPO, "scripts", "render-checklist")) as handle:
        wrapper = handle.read()
    assert "python3 -m ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_journal" in wrapper


def test_records_are_plain_json(store):
    records = go_run(store).records()
    assert json.loads(json.dumps(records)) == records
    with pytest.raises(ArtifactError):
        store.read_jsonl("../outside.jsonl")


# --- where a run stands (runs/<run_id>/status.json, status.json), rewritten with every record ------

def with_rounds(plan):
    """The plan with each phase's rounds as fleet_plan.watch_rounds plans them (checkpoints only here)."""
    plan = json.loads(json.dumps(plan))
    for phase in plan["phases"]:
        phase["rounds"] = [dict(w, kind="checkpoint") for w in phase["watch"]]
    return plan


def test_status_follows_the_run_step_by_step_with_the_next_round_and_when_it_is_due(store):
    plan = with_rounds(WAVE2)
    run = Run(store, plan)
    run.start()
    run.preflight()
    run.deploy(plan["phases"][0])
    status = store.read_json(Layout.status(RUN))
    assert status == store.read_json(Layout.status())  # the latest run's, at the store's root
    assert status["state"] == "running" and status["deployed"] == {"phase1": HOSTS}
    assert status["last"]["step"] == "deploy" and status["last"]["host"] == "dgx-3"
    # Before any round, the watch starts when the phase's last deploy finished.
    last_deploy = run.records()[-1]["finished"]
    due = utc(datetime.datetime.strptime(last_deploy, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp() + 300)
    assert status["next"] == dict(phase="phase1", label="phase1-verification", kind="checkpoint", due_at=due)
    assert status["line"] == "wave2 %s: deploy phase1 dgx-3 ok; next checkpoint phase1-verification due %s" % (RUN, due)

    run.round("phase1", "phase1-verification")
    status = store.read_json(Layout.status(RUN))
    # From then on the watch's start is read back from the round taken: started - after.
    first = run.records()[-1]
    t0 = datetime.datetime.strptime(first["started"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=datetime.timezone.utc).timestamp() - 300
    assert status["next"]["label"] == "phase1-T+1h" and status["next"]["due_at"] == utc(t0 + 600)
    assert status["rounds_taken"] == 1 and status["rounds_planned"] == 5


def test_status_says_when_the_run_stopped_or_ended(store):
    run = Run(store, with_rounds(WAVE2))
    run.start()
    run.preflight()
    run.deploy(run.plan["phases"][0])
    run.round("phase1", "phase1-verification", outcome="NO-GO", next_step="stop", reasons=["x"])
    status = store.read_json(Layout.status(RUN))
    assert status["state"] == "stopped" and status["next"] is None
    assert status["line"].endswith("checkpoint phase1 phase1-verification NO-GO; run stopped")
    ended = go_run(ArtifactStore(str(store.root) + "-go"), plan=with_rounds(WAVE2))
    final = ended.store.read_json(Layout.status(RUN))
    assert final["state"] == "ended" and final["last"]["step"] == "decision"


# ================================================================ resuming a run cut off mid-way

def test_progress_of_a_run_cut_off_between_two_hosts_deploys(store):
    run = Run(store)
    run.start()
    run.preflight()
    phase = WAVE2["phases"][0]
    run.step("deploy", 10, phase="phase1", host="dgx-1", outcome="ok", detail=dict(agents=["network-expert"]))
    done = progress(run.records())
    assert list(done["deployed"]) == ["phase1"] and list(done["deployed"]["phase1"]) == ["dgx-1"]
    assert done["deployed"]["phase1"]["dgx-1"] == pytest.approx(T0 + 1 + 5 * 4 + 1, abs=30)
    assert done["watch"] == {} and done["rounds"] == {} and done["gates"] == {} and done["pending"] is None
    assert done["preflight"] == HOSTS and resumable(run.records()) is None
    assert phase["name"] == "phase1"


def test_progress_keeps_the_pre_flip_latency_baseline_and_the_sequential_counts_go_on(store):
    run = Run(store)
    run.start()
    assert progress(run.records())["latency_baseline"] is None
    run.preflight()
    done = progress(run.records())
    assert done["latency_baseline"] == {"%s@%s" % (a, h): 0.8 for a in ("network-expert", "tdd-expert") for h in HOSTS}
    # The controller's own pre-flight record (no label) carries no baseline.
    assert [r.get("label") for r in run.records() if r["step"] == "preflight" and not r.get("host")] == [
        None, "pre-flip probe"]
    assert sequential_state(run.records()) is None
    counts = {"latency_ms": {"network-expert@dgx-1": {"baseline": dict(n=80, up=2, down=0),
                                                      "control": dict(n=80, up=1, down=0)}}}
    Journal(store, RUN).append("wave2", "checkpoint", phase="phase1", label="phase1-verification", outcome="GO",
                               next_step="proceed", detail=dict(fired=[], sequential_state=counts))
    Journal(store, RUN).append("wave2", "gate", phase="phase1", outcome="GO", next_step="proceed")
    assert sequential_state(Journal(store, RUN).records()) == counts


def test_a_host_whose_pre_flight_failed_or_was_not_reached_is_not_in_the_progress(store):
    run = Run(store)
    run.start()
    run.step("preflight", host="dgx-1", outcome="ok")
    run.step("preflight", host="dgx-2", outcome="failed", reasons=["units inactive"])
    assert progress(run.records())["preflight"] == ["dgx-1"]


def test_progress_keeps_the_watch_clock_and_every_round_taken(store):
    run = go_run(store, until="phase2-verification")
    run.step("watch", 0, phase="phase2", outcome="ok", detail=dict(t0=T0 + 500.5, baseline={"dgx-1": {"units": {}}}))
    run.round("phase2", "T+1h")
    done = progress(run.records())
    assert done["watch"]["phase2"] == dict(t0=T0 + 500.5, baseline={"dgx-1": {"units": {}}})
    assert done["rounds"]["phase1"] == {"phase1-verification": "proceed", "phase1-T+1h": "proceed"}
    assert set(done["rounds"]["phase2"]) == {"phase2-verification", "T+1h"}
    assert done["gates"] == {"phase1": "proceed"} and done["pending"] is None
    assert set(done["deployed"]["phase2"]) == set(HOSTS)


def test_a_rollback_decided_but_not_taken_is_pending_and_taking_it_ends_the_run(store):
    run = go_run(store, until="phase2-verification")
    run.round("phase2", "T+1h", outcome="NO-GO", next_step="rollback", reasons=["tdd-expert crashed"],
              fired=["agent_crash"])
    pending = progress(run.records())["pending"]
    assert pending["phase"] == "phase2" and pending["label"] == "T+1h" and pending["next_step"] == "rollback"
    assert pending["fired"] == ["agent_crash"] and pending["reasons"] == ["tdd-expert crashed"]
    assert pending["detected_epoch"] < pending["decided_epoch"] and pending["kind"] == "checkpoint"
    assert resumable(run.records()) is None  # cut off before its rollback: the re-run takes it
    run.roll_back("phase2", "T+1h")
    assert progress(run.records())["pending"] is None
    assert "it stopped at rollback" in resumable(run.records())


def test_an_answered_question_is_not_pending_and_its_answer_is_the_rounds_last_word(store):
    run = go_run(store, until="phase2-verification")
    run.round("phase2", "T+1h", outcome="INCONCLUSIVE", next_step="ask")
    assert progress(run.records())["pending"]["next_step"] == "ask"
    run.answer("phase2", "T+1h", approved=True)
    done = progress(run.records())
    assert done["pending"] is None and done["rounds"]["phase2"]["T+1h"] == "proceed"


@pytest.mark.parametrize("ending, why", [
    ("decided", "its decision is recorded (GO)"),
    ("nogo", "it stopped at checkpoint phase1 phase1-verification (NO-GO)"),
    ("failed deploy", "it stopped at deploy phase1 dgx-2 (failed)"),
    ("refused", "it stopped at approval"),
])
def test_a_run_that_ended_or_stopped_is_not_resumed(store, ending, why):
    if ending == "decided":
        run = go_run(store)
    else:
        run = Run(store)
        run.start()
        run.preflight()
        if ending == "failed deploy":
            run.deploy(WAVE2["phases"][0], failed_host="dgx-2")
        elif ending == "nogo":
            run.deploy(WAVE2["phases"][0])
            run.round("phase1", "phase1-verification", outcome="NO-GO", next_step="stop", reasons=["p50 up"])
        else:
            run.deploy(WAVE2["phases"][0])
            run.round("phase1", "phase1-verification", outcome="INCONCLUSIVE", next_step="ask")
            run.answer("phase1", "phase1-verification", approved=False)
    assert why in resumable(run.records())
    assert unfinished(store, "wave2") is None


def test_unfinished_is_the_latest_run_of_the_wave_only(store):
    older = Run(store, run_id="wave2-20260123T200000Z")
    older.start()
    older.preflight()  # cut off, then given up when a newer run started
    assert unfinished(store, "wave2")["run_id"] == "wave2-20260123T200000Z"
    newer = Run(store, run_id="wave2-20260123T210000Z", clock=T0 + 3600)
    newer.start()
    newer.preflight()
    newer.deploy(WAVE2["phases"][0])
    found = unfinished(store, "wave2")
    assert found["run_id"] == "wave2-20260123T210000Z" and found["plan"] == WAVE2
    assert found["last"]["step"] == "deploy" and found["interrupted_at"] == found["last"]["finished"]
    assert unfinished(store, "wave1") is None  # another wave's runs are not this wave's
    canary = Run(store, plan=make_plan("wave2-canary", [(["graph-expert"], ["T+1h"])]),
                 run_id="wave2-canary-20260123T220000Z", clock=T0 + 7200)
    canary.start()  # a wave whose name starts with this one's is not this one
    assert unfinished(store, "wave2")["run_id"] == "wave2-20260123T210000Z"
    newer.decide()
    assert unfinished(store, "wave2") is None  # the latest ended: the older one is not brought back


def test_a_run_paused_after_a_phase_is_unfinished_and_goes_on_with_the_next(store):
    """wave_pause_after_phase: a job ends after phase 1's go/no-go; the next job resumes the run."""
    run = Run(store, run_id="wave2-20260123T200000Z")
    run.start()
    run.preflight()
    run.deploy(WAVE2["phases"][0])
    for watch in WAVE2["phases"][0]["watch"]:
        run.round("phase1", watch["label"])
    run.gate("phase1")
    run.step("pause", 0, phase="phase1", outcome="ok", detail=dict(next_phase="phase2"))
    records = run.records()
    assert resumable(records) is None and unfinished(store, "wave2")["run_id"] == run.run_id
    done = progress(records)
    assert done["gates"] == {"phase1": "proceed"} and set(done["deployed"]) == {"phase1"}
    assert records[-1]["next_step"] == "proceed"
    assert "| phase1: paused, the next job goes on |" in "\n".join(render_timeline(records))
    status = json.loads(open(os.path.join(store.root, Layout.status(run.run_id))).read())
    assert status["line"].endswith("; run paused"), status["line"]


def test_a_check_mode_run_is_never_resumed(store):
    run = Run(store, run_id="wave2-20260123T200000Z")
    run.step("run", 0, outcome="ok", detail=dict(plan=WAVE2, hosts=HOSTS, check_mode=True))
    assert resumable(run.records()) == "it was a check-mode preview"
    assert unfinished(store, "wave2") is None


def test_the_resume_record_says_after_what_and_how_long_and_the_report_shows_it(store):
    run = go_run(store, until="phase1-verification")
    cut = run.records()[-1]
    record, _ = record_step(store, dict(run_id=RUN, wave="wave2", step="resume", outcome="ok",
                                        detail=dict(operator="bob")))
    detail = record["detail"]
    assert detail["interrupted_at"] == cut["finished"] and detail["after"] == "phase1: checkpoint phase1-verification (#%d)" % cut["seq"]
    assert detail["interruption_seconds"] > 0 and record["next_step"] == "proceed"
    records = run.records()
    timeline = "\n".join(render_timeline(records))
    assert "run resumed by bob after %s s cut off" % detail["interruption_seconds"] in timeline
    report = render_report(WAVE2, dict(outcome="GO", reasons=[], rows=[]), records)
    assert "## Interruptions" in report and "cut off 1 time(s)" in report
    assert "after phase1: checkpoint phase1-verification (#%d) at %s" % (cut["seq"], cut["finished"]) in report
