"""The wave decision and its report, from the run journal: fleet_policy.decide_wave reads the
journal of a run (GO only when every checkpoint of the plan was taken in this run and settled on
proceed, and no monitoring round stopped it) and fleet_journal.render_report writes report.md from
the same records. The journals are written with the real fleet_journal.Journal and record_step into
an artifact store under tmp_path, as the playbooks' wave_checkpoint and wave_journal tasks do.

(The artifact store's own tests, formerly here, are in test_fleet_artifacts.py.)"""

from __future__ import annotations

import datetime
import os

import pytest
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import (ArtifactError, ArtifactStore,
                                                                                         Layout)
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_journal import (Journal, JournalError,
                                                                                       record_step, record_wave,
                                                                                       render_report)
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_policy import GO, NO_GO, decide_wave

pytestmark = pytest.mark.unit

RUN = "20250114T093000Z-abc123"
T0 = datetime.datetime(2025, 1, 14, 9, 30, tzinfo=datetime.timezone.utc).timestamp()
HOSTS = ["dgx-1", "dgx-2"]
PLAN = dict(
    wave="wave2",
    agents=["network-expert", "tdd-expert"],
    control=[dict(name="git-expert"), dict(name="graph-expert")],
    phases=[dict(name="phase1", agents=[dict(name="network-expert")],
                 watch=[dict(label="phase1-verification", after=5), dict(label="phase1-T+1h", after=7)]),
            dict(name="phase2", agents=[dict(name="tdd-expert")],
                 watch=[dict(label="phase2-verification", after=5), dict(label="T+1h", after=7)])],
)
LABELS = ["phase1-verification", "phase1-T+1h", "phase2-verification", "T+1h"]
PHASE = {"phase1-verification": "phase1", "phase1-T+1h": "phase1", "phase2-verification": "phase2", "T+1h": "phase2"}


def at(minutes):
    """An epoch so many minutes after 10:00 on the run's day."""
    return T0 + 1800 + 60 * minutes


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(str(tmp_path / "artifacts"))


def start(store, run_id=RUN, wave="wave2", plan=PLAN):
    """The run's first record, as preflight.yml journals it."""
    record_step(store, dict(run_id=run_id, wave=wave, step="run", started=T0, finished=T0, outcome="ok",
                            detail=dict(plan=plan, hosts=HOSTS, operator="alice")))
    return Journal(store, run_id)


def journal_round(store, label, outcome=GO, next_step="proceed", reasons=(), run_id=RUN, wave="wave2",
                  kind="checkpoint", phase=None, minutes=None, fired=()):
    """A round's record as fleet_journal.record_round appends it."""
    monitoring = kind == "monitor"
    minutes = LABELS.index(label) if minutes is None else minutes
    return Journal(store, run_id).append(
        wave, "monitoring round" if monitoring else "checkpoint", phase=phase or PHASE.get(label, "phase1"),
        label=label, started=at(minutes) - 5, finished=at(minutes), outcome=outcome, next_step=next_step,
        reasons=list(reasons), artifact=Layout.round_dir(wave, label, monitoring),
        detail=dict(fired=list(fired), detected_at="detected", decided_at="decided"))


def all_go(store, run_id=RUN, wave="wave2", skip=()):
    journal = start(store, run_id, wave)
    for label in LABELS:
        if label not in skip:
            journal_round(store, label, run_id=run_id, wave=wave)
    return journal


def answer(store, label, approved=True, kind="checkpoint", run_id=RUN):
    return record_step(store, dict(run_id=run_id, wave="wave2", step="approval", phase=PHASE.get(label, "phase2"),
                                   label=label, kind=kind, approved=approved, finished=at(60),
                                   detail=dict(how="prompt", operator="alice")))[0]


ROLLBACK_DETAIL = dict(triggers=["agent_crash", "message_loss"], agents=["network-expert", "tdd-expert"], hosts=HOSTS,
                       detected_at="2025-01-14T10:30:00.120Z", decided_at="2025-01-14T10:30:00.125Z",
                       seconds_detection_to_decision=0.005, seconds_detection_to_completion=20.9)


def roll_back(store, label, kind="checkpoint", outcome="rolled back", run_id=RUN, **detail):
    """An automatic rollback after a round, as autorollback.yml journals it (done at 10:30:21)."""
    return record_step(store, dict(run_id=run_id, wave="wave2", step="rollback", phase=PHASE.get(label, "phase2"),
                                   label=label, kind=kind, started=at(30), finished=at(30) + 21.0, outcome=outcome,
                                   reasons=["trigger fired"], detail=dict(ROLLBACK_DETAIL, **detail)))[0]


def decide(store, plan=PLAN, run_id=RUN):
    return decide_wave(plan, Journal(store, run_id).records())


def files_under(path):
    return sorted(os.path.relpath(os.path.join(d, n), path) for d, _, names in os.walk(path) for n in names)


# --- decide_wave over the journal ----------------------------------------------------------------

def test_all_checkpoints_go_in_this_run_is_go(store):
    all_go(store)
    result = decide(store)
    assert result["outcome"] == GO and result["reasons"] == []
    assert [(r["phase"], r["label"], r["outcome"]) for r in result["rows"]] == [
        ("phase1", "phase1-verification", GO), ("phase1", "phase1-T+1h", GO),
        ("phase2", "phase2-verification", GO), ("phase2", "T+1h", GO)]
    assert result["rows"][3]["at"] == "2025-01-14T10:03:00.000Z"


def test_missing_checkpoint_is_not_reached_and_no_go(store):
    all_go(store, skip=["T+1h"])
    result = decide(store)
    assert result["outcome"] == NO_GO
    assert result["reasons"] == ["checkpoint T+1h was not reached in this run"]
    assert result["rows"][3] == dict(phase="phase2", label="T+1h", outcome="NOT REACHED", at=None, reasons=[])


def test_checkpoint_of_another_run_is_not_reached(store):
    all_go(store, run_id="an-earlier-run")
    all_go(store, skip=["phase1-T+1h"])
    result = decide(store)
    assert result["outcome"] == NO_GO and result["rows"][1]["outcome"] == "NOT REACHED"
    assert result["reasons"] == ["checkpoint phase1-T+1h was not reached in this run"]


def test_checkpoint_of_another_wave_does_not_count(store):
    all_go(store, run_id="20250114T080000Z-wave3", wave="wave3")
    start(store)
    result = decide(store)
    assert [r["outcome"] for r in result["rows"]] == ["NOT REACHED"] * 4


def test_no_go_checkpoint_gives_its_reasons(store):
    all_go(store, skip=["T+1h"])
    journal_round(store, "T+1h", NO_GO, "stop",
                  ["health: tdd-expert unit active on dgx-2: expected active, measured failed",
                   "health: tdd-expert no restarts on dgx-2: expected 0, measured 1"])
    result = decide(store)
    assert result["outcome"] == NO_GO
    assert result["reasons"] == ["checkpoint T+1h is NO-GO: health: tdd-expert unit active on dgx-2: expected active, "
                                 "measured failed; health: tdd-expert no restarts on dgx-2: expected 0, measured 1"]
    assert result["rows"][3]["reasons"][1].startswith("health: tdd-expert no restarts")


def test_no_go_checkpoint_without_reasons_says_no_detail(store):
    all_go(store, skip=["phase1-verification"])
    journal_round(store, "phase1-verification", NO_GO, "stop")
    assert decide(store)["reasons"] == ["checkpoint phase1-verification is NO-GO: no detail"]


def test_every_problem_is_a_reason_in_plan_order(store):
    start(store)
    journal_round(store, "phase1-verification", NO_GO, "stop", ["x"])
    journal_round(store, "phase2-verification", run_id="other")
    assert decide(store)["reasons"] == [
        "checkpoint phase1-verification is NO-GO: x",
        "checkpoint phase1-T+1h was not reached in this run",
        "checkpoint phase2-verification was not reached in this run",
        "checkpoint T+1h was not reached in this run"]


def test_plan_without_checkpoints_is_no_go(store):
    all_go(store)
    assert decide(store, dict(PLAN, phases=[dict(name="phase1", agents=[], watch=[])])) == dict(
        outcome=NO_GO, reasons=[], rows=[])


def test_malformed_journal_raises_naming_the_file_and_line(store):
    all_go(store)
    path = store.path(Layout.journal(RUN))
    lines = open(path, "rb").read().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"outcome": "GO"', b'"outcome": GO')
    store.write_bytes(Layout.journal(RUN), b"".join(lines))
    with pytest.raises(ArtifactError) as exc:
        decide(store)
    assert str(exc.value).startswith("%s: line 3 is not valid JSON" % path)
    with pytest.raises(ArtifactError):
        record_wave(store, PLAN, RUN)


def test_deciding_writes_nothing(store, tmp_path):
    all_go(store)
    before = {name: open(os.path.join(tmp_path, name), "rb").read() for name in files_under(tmp_path)}
    decide(store)
    assert {name: open(os.path.join(tmp_path, name), "rb").read() for name in files_under(tmp_path)} == before


# --- render_report -------------------------------------------------------------------------------

def report(store, plan=PLAN, run_id=RUN):
    records = Journal(store, run_id).records()
    return render_report(plan, decide_wave(plan, records), records)


def decision_section(text):
    return text.split("## Decision\n\n", 1)[1].split("\n## Timeline", 1)[0]


def test_go_report(store):
    all_go(store)
    text = report(store)
    assert text.startswith("# wave2: GO\n")
    assert "Run `%s`, started 2025-01-14T09:30:00.000Z, decided 2025-01-14T10:03:00.000Z." % RUN in text
    assert "Agents: network-expert, tdd-expert. Control group: git-expert, graph-expert." in text
    assert decision_section(text).strip() == "GO: all 4 checkpoints passed."
    assert "rollback" not in text


def test_no_go_report_lists_reasons_and_the_rollback_command(store):
    all_go(store, skip=["phase1-T+1h", "T+1h"])
    failure = "health: tdd-expert unit active on dgx-2: expected active, measured failed"
    journal_round(store, "T+1h", NO_GO, "stop", [failure])
    text = report(store)
    assert text.startswith("# wave2: NO-GO\n")
    decision = decision_section(text)
    assert decision.splitlines()[:3] == [
        "NO-GO:", "- checkpoint phase1-T+1h was not reached in this run",
        "- checkpoint T+1h is NO-GO: " + failure]
    assert "`ansible-playbook playbooks/rollback.yml -e rollback_wave=wave2`" in decision


def test_report_checkpoint_table(store):
    all_go(store, skip=["phase1-T+1h", "T+1h"])
    journal_round(store, "T+1h", NO_GO, "stop", ["a", "b|c"])
    text = report(store)
    assert "| phase1 | phase1-verification | 2025-01-14T10:00:00.000Z | GO | - |" in text
    assert "| phase1 | phase1-T+1h | - | NOT REACHED | - |" in text
    assert "| phase2 | T+1h | 2025-01-14T10:03:00.000Z | NO-GO | a; b\\|c |" in text


def test_report_timeline_has_every_record_of_the_journal(store):
    journal = all_go(store)
    record_step(store, dict(run_id=RUN, wave="wave2", step="deploy", phase="phase1", host="dgx-1", outcome="ok",
                            started=T0 + 60, finished=T0 + 70, detail=dict(agents=["network-expert"])))
    text = report(store)
    timeline = text.split("## Timeline\n\n", 1)[1]
    assert timeline.startswith("From the run journal `runs/%s/journal.jsonl`.\n" % RUN)
    assert "| 1 | run started by alice | 2025-01-14T09:30:00.000Z | 2025-01-14T09:30:00.000Z | ok | proceed | - |" \
        in timeline
    assert ("| 3 | phase1: checkpoint phase1-T+1h | 2025-01-14T10:00:55.000Z | 2025-01-14T10:01:00.000Z | GO | proceed "
            "| checkpoints/wave2/phase1-T+1h |") in timeline
    assert ("| 6 | phase1: deploy network-expert on dgx-1 | 2025-01-14T09:31:00.000Z | 2025-01-14T09:31:10.000Z | ok "
            "| proceed | - |") in timeline
    assert len([line for line in timeline.splitlines() if line.startswith("| ") and line[2].isdigit()]) == len(
        journal.records())


def test_report_folds_monitoring_rounds_that_proceeded(store):
    all_go(store)
    for n in range(1, 4):
        journal_round(store, "phase2-monitor-%03d" % n, kind="monitor", phase="phase2", minutes=10 + n)
    text = report(store)
    assert "phase2: 3 monitoring rounds, all proceeded" in text and "monitoring round phase2-monitor-002" not in text


def test_report_without_control_group(store):
    all_go(store)
    text = report(store, plan=dict(PLAN, control=[]))
    assert "Control group: none." in text and "## Timeline" in text


# --- monitoring rounds, a person's answer, automatic rollback --------------------------------------

def test_monitoring_rounds_that_were_go_do_not_show(store):
    all_go(store)
    for label, phase in (("phase1-monitor-001", "phase1"), ("phase1-monitor-002", "phase1"),
                         ("phase2-monitor-001", "phase2")):
        journal_round(store, label, kind="monitor", phase=phase, minutes=20)
    result = decide(store)
    assert result["outcome"] == GO and result["reasons"] == []
    assert [r["label"] for r in result["rows"]] == LABELS


def test_monitoring_rounds_not_reached_do_not_count(store):
    all_go(store)  # no monitoring round recorded at all
    result = decide(store)
    assert result["outcome"] == GO and [r["label"] for r in result["rows"]] == LABELS


def test_monitoring_round_not_go_stops_the_wave(store):
    all_go(store)
    reason = "trigger agent_crash fired on network-expert@dgx-2: agent_crashes 1 > 0 count"
    journal_round(store, "phase1-monitor-001", kind="monitor", phase="phase1", minutes=20)
    journal_round(store, "phase1-monitor-002", "ROLLBACK", "rollback", [reason], kind="monitor", phase="phase1",
                  minutes=30)
    result = decide(store)
    assert result["outcome"] == NO_GO
    assert result["reasons"] == ["monitoring round phase1-monitor-002 is ROLLBACK: " + reason]
    [row] = [r for r in result["rows"] if "monitor" in r["label"]]
    assert row == dict(phase="phase1", label="phase1-monitor-002 (monitoring)", outcome="ROLLBACK",
                       at="2025-01-14T10:30:00.000Z", reasons=[reason])


def test_monitoring_round_rows_follow_their_phase_checkpoints(store):
    all_go(store)
    journal_round(store, "phase1-monitor-001", NO_GO, "stop", ["x"], kind="monitor", phase="phase1", minutes=20)
    assert [r["label"] for r in decide(store)["rows"]] == [
        "phase1-verification", "phase1-T+1h", "phase1-monitor-001 (monitoring)", "phase2-verification", "T+1h"]


def test_monitoring_round_of_another_run_does_not_count(store):
    start(store, run_id="an-earlier-run")
    journal_round(store, "phase2-monitor-001", "ROLLBACK", "rollback", ["x"], run_id="an-earlier-run", kind="monitor",
                  phase="phase2", minutes=20)
    all_go(store)
    result = decide(store)
    assert result["outcome"] == GO and len(result["rows"]) == 4


def test_only_monitoring_round_records_are_monitoring_rounds(store):
    all_go(store)
    journal_round(store, "phase1-monitor-001", NO_GO, "stop", ["recorded as a checkpoint not in the plan"],
                  phase="phase1", minutes=20)
    assert decide(store)["outcome"] == GO


def test_monitoring_rounds_of_a_phase_not_in_the_plan_do_not_count(store):
    all_go(store)
    journal_round(store, "phase3-monitor-001", NO_GO, "stop", ["x"], kind="monitor", phase="phase3", minutes=20)
    assert decide(store)["outcome"] == GO


def test_checkpoints_among_the_rounds_are_not_counted_twice(store):
    plan = dict(PLAN, phases=[dict(p, rounds=[dict(w, kind="checkpoint") for w in p["watch"]]
                                   + [dict(label="%s-monitor-001" % p["name"], after=6, kind="monitor")])
                              for p in PLAN["phases"]])
    all_go(store, skip=["T+1h"])
    journal_round(store, "T+1h", NO_GO, "stop", ["x"])
    result = decide(store, plan)
    assert len(result["rows"]) == 4 and result["reasons"] == ["checkpoint T+1h is NO-GO: x"]


def test_inconclusive_checkpoint_accepted_by_a_person_counts_as_go(store):
    all_go(store, skip=["phase1-T+1h"])
    reason = "comparison latency_ms too few samples (required): n 12 test / 40 control, need 20 on each side"
    journal_round(store, "phase1-T+1h", "INCONCLUSIVE", "ask", [reason])
    answer(store, "phase1-T+1h")
    result = decide(store)
    assert result["outcome"] == GO and result["reasons"] == []
    row = result["rows"][1]
    assert row["outcome"] == GO
    assert row["reasons"] == [reason, "INCONCLUSIVE, accepted by a person"]


def test_inconclusive_checkpoint_without_an_answer_is_no_go(store):
    all_go(store, skip=["T+1h"])
    journal_round(store, "T+1h", "INCONCLUSIVE", "ask", ["too few samples"])
    result = decide(store)
    assert result["outcome"] == NO_GO and result["reasons"] == ["checkpoint T+1h is INCONCLUSIVE: too few samples"]


@pytest.mark.parametrize("approved", [False, None], ids=["refused", "no-answer-given"])
def test_only_an_acceptance_counts(store, approved):
    all_go(store, skip=["T+1h"])
    journal_round(store, "T+1h", "INCONCLUSIVE", "ask", ["too few samples"])
    answer(store, "T+1h", approved=approved)
    result = decide(store)
    assert result["outcome"] == NO_GO and result["rows"][3]["outcome"] == "INCONCLUSIVE"
    assert result["reasons"] == ["checkpoint T+1h is INCONCLUSIVE: too few samples; INCONCLUSIVE, not accepted: the "
                                 "run stops here"]


def test_an_answer_in_another_run_does_not_count(store):
    all_go(store, skip=["T+1h"])
    journal_round(store, "T+1h", "INCONCLUSIVE", "ask", ["too few samples"])
    start(store, run_id="a-later-run")
    with pytest.raises(JournalError, match="no round T\\+1h of phase2 waits for an answer in run a-later-run"):
        answer(store, "T+1h", run_id="a-later-run")
    assert decide(store)["rows"][3]["outcome"] == "INCONCLUSIVE"


@pytest.mark.parametrize("outcome, next_step", [(NO_GO, "stop"), ("ROLLBACK", "rollback")])
def test_an_answer_cannot_turn_a_failed_checkpoint_into_go(store, outcome, next_step):
    all_go(store, skip=["T+1h"])
    journal_round(store, "T+1h", outcome, next_step, ["x"])
    with pytest.raises(JournalError, match="did not ask for a person"):
        answer(store, "T+1h")
    result = decide(store)
    assert result["outcome"] == NO_GO and result["rows"][3]["outcome"] == outcome


def test_an_answer_to_a_checkpoint_of_another_run_does_not_count(store):
    all_go(store, run_id="an-earlier-run", skip=["T+1h"])
    journal_round(store, "T+1h", "INCONCLUSIVE", "ask", ["too few samples"], run_id="an-earlier-run")
    all_go(store, skip=["T+1h"])
    with pytest.raises(JournalError):
        answer(store, "T+1h")
    assert decide(store)["rows"][3]["outcome"] == "NOT REACHED"


def test_report_of_an_automatic_rollback(store):
    all_go(store)
    journal_round(store, "phase2-monitor-001", "ROLLBACK", "rollback", ["trigger message_loss fired"], kind="monitor",
                  phase="phase2", minutes=30)
    roll_back(store, "phase2-monitor-001", kind="monitor")
    text = report(store)
    decision = decision_section(text)
    assert decision.splitlines()[:2] == ["NO-GO:", "- monitoring round phase2-monitor-001 is ROLLBACK: trigger "
                                                   "message_loss fired"]
    assert ("Rolled back automatically after phase2-monitor-001 (triggers: agent_crash, message_loss): detected "
            "2025-01-14T10:30:00.120Z, decided 2025-01-14T10:30:00.125Z, legacy-only verified "
            "2025-01-14T10:30:21.000Z, 20.9 s from detection.") in decision
    assert "playbooks/rollback.yml" not in text
    row = ("| phase2 | phase2-monitor-001 (monitoring) | 2025-01-14T10:30:00.000Z | ROLLBACK | trigger message_loss "
           "fired |")
    assert row in text
    assert ("| rollback of network-expert, tdd-expert after phase2-monitor-001 | 2025-01-14T10:30:00.000Z | "
            "2025-01-14T10:30:21.000Z | rolled back | stop | checkpoints/wave2/monitor/phase2-monitor-001 |") in text


def test_report_of_an_automatic_rollback_after_a_checkpoint(store):
    all_go(store, skip=["phase1-T+1h", "phase2-verification", "T+1h"])
    journal_round(store, "phase1-T+1h", "ROLLBACK", "rollback", ["trigger agent_crash fired"])
    roll_back(store, "phase1-T+1h")
    decision = decision_section(report(store))
    assert decision.splitlines()[1] == "- checkpoint phase1-T+1h is ROLLBACK: trigger agent_crash fired"
    assert "Rolled back automatically after phase1-T+1h (triggers: agent_crash, message_loss)" in decision


def test_report_of_an_automatic_rollback_without_triggers(store):
    all_go(store, skip=["T+1h"])
    journal_round(store, "T+1h", "ROLLBACK", "rollback", ["x"])
    roll_back(store, "T+1h", triggers=[])
    assert "Rolled back automatically after T+1h (triggers: -)" in report(store)


def test_report_of_a_failed_rollback_gives_the_manual_command(store):
    all_go(store, skip=["T+1h"])
    journal_round(store, "T+1h", "ROLLBACK", "rollback", ["x"])
    roll_back(store, "T+1h", outcome="failed")
    text = report(store)
    assert "Rolled back automatically" not in text
    assert "`ansible-playbook playbooks/rollback.yml -e rollback_wave=wave2`" in text
    assert "| failed | stop | checkpoints/wave2/T+1h |" in text  # the failed rollback stays in the timeline


def test_report_without_a_rollback_recorded_gives_the_manual_command(store):
    all_go(store, skip=["T+1h"])
    journal_round(store, "T+1h", "ROLLBACK", "rollback", ["x"])
    text = report(store)
    assert "Rolled back automatically" not in text and "rollback.yml -e rollback_wave=wave2" in text


def test_a_rollback_of_another_run_is_not_reported(store):
    start(store, run_id="an-earlier-run")
    journal_round(store, "T+1h", "ROLLBACK", "rollback", ["x"], run_id="an-earlier-run")
    roll_back(store, "T+1h", run_id="an-earlier-run")
    all_go(store, skip=["T+1h"])
    journal_round(store, "T+1h", "ROLLBACK", "rollback", ["x"])
    text = report(store)
    assert "Rolled back automatically" not in text and "rollback.yml -e rollback_wave=wave2" in text


def test_report_of_an_accepted_inconclusive_checkpoint_is_go(store):
    all_go(store, skip=["T+1h"])
    journal_round(store, "T+1h", "INCONCLUSIVE", "ask", ["too few samples"])
    answer(store, "T+1h")
    text = report(store)
    assert text.startswith("# wave2: GO\n") and "GO: all 4 checkpoints passed." in text
    assert "| phase2 | T+1h | 2025-01-14T11:00:00.000Z | GO | too few samples; INCONCLUSIVE, accepted by a person |" \
        in text
    assert "| phase2: a person answered for T+1h (prompt) |" in text
