"""plugins/module_utils/fleet_decision.py and fleet_artifacts.py: a wave is GO only when every
checkpoint of the plan was taken in this run and is GO; artifacts are written atomically, never
outside the store, and malformed ones are reported by name."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import stat

import pytest
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_artifacts
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import MANIFEST, ArtifactError, ArtifactStore
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_decision import GO, NO_GO, decide_wave, render_report

pytestmark = pytest.mark.unit

RUN = "20250114T093000Z-abc123"
PLAN = dict(
    wave="wave2",
    agents=["network-expert", "tdd-expert"],
    control=[dict(name="git-expert"), dict(name="graph-expert")],
    phases=[dict(name="phase1", watch=[dict(label="phase1-verification", after=5),
                                       dict(label="phase1-T+1h", after=7)]),
            dict(name="phase2", watch=[dict(label="phase2-verification", after=5), dict(label="T+1h", after=7)])],
)
LABELS = ["phase1-verification", "phase1-T+1h", "phase2-verification", "T+1h"]


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(str(tmp_path / "artifacts"))


def record(store, label, decision=GO, run_id=RUN, failures=(), wave="wave2"):
    store.write_json(os.path.join("checkpoints", wave, label, "decision.json"),
                     dict(wave=wave, label=label, run_id=run_id, decision=decision, failures=list(failures),
                          taken_at="2025-01-14T10:%02d:00Z" % LABELS.index(label) if label in LABELS else None))


def all_go(store):
    for label in LABELS:
        record(store, label)


def files_under(path):
    return sorted(os.path.relpath(os.path.join(d, n), path) for d, _, names in os.walk(path) for n in names)


# --- decide_wave ---------------------------------------------------------------------------------

def test_all_checkpoints_go_in_this_run_is_go(store):
    all_go(store)
    result = decide_wave(store, PLAN, RUN)
    assert result["decision"] == GO and result["reasons"] == []
    assert [(r["phase"], r["label"], r["decision"]) for r in result["checkpoints"]] == [
        ("phase1", "phase1-verification", GO), ("phase1", "phase1-T+1h", GO),
        ("phase2", "phase2-verification", GO), ("phase2", "T+1h", GO)]
    assert result["checkpoints"][3]["taken_at"] == "2025-01-14T10:03:00Z"


def test_missing_checkpoint_is_not_reached_and_no_go(store):
    all_go(store)
    os.remove(store.path("checkpoints/wave2/T+1h/decision.json"))
    result = decide_wave(store, PLAN, RUN)
    assert result["decision"] == NO_GO
    assert result["reasons"] == ["checkpoint T+1h was not reached in this run"]
    assert result["checkpoints"][3] == dict(phase="phase2", label="T+1h", decision="NOT REACHED", taken_at=None,
                                            failures=[])


def test_checkpoint_of_another_run_is_not_reached(store):
    all_go(store)
    record(store, "phase1-T+1h", run_id="an-earlier-run")
    result = decide_wave(store, PLAN, RUN)
    assert result["decision"] == NO_GO and result["checkpoints"][1]["decision"] == "NOT REACHED"
    assert result["reasons"] == ["checkpoint phase1-T+1h was not reached in this run"]


def test_checkpoint_of_another_wave_does_not_count(store):
    for label in LABELS:
        record(store, label, wave="wave3")
    result = decide_wave(store, PLAN, RUN)
    assert [r["decision"] for r in result["checkpoints"]] == ["NOT REACHED"] * 4


def test_no_go_checkpoint_gives_its_failures_as_the_reason(store):
    all_go(store)
    record(store, "T+1h", decision=NO_GO, failures=["tdd-expert unit active on dgx-2: expected active, measured failed",
                                                     "tdd-expert no restarts on dgx-2: expected 0, measured 1"])
    result = decide_wave(store, PLAN, RUN)
    assert result["decision"] == NO_GO
    assert result["reasons"] == ["checkpoint T+1h is NO-GO: tdd-expert unit active on dgx-2: expected active, "
                                 "measured failed; tdd-expert no restarts on dgx-2: expected 0, measured 1"]
    assert result["checkpoints"][3]["failures"][1].startswith("tdd-expert no restarts")


def test_no_go_checkpoint_without_failures_says_no_detail(store):
    all_go(store)
    record(store, "phase1-verification", decision=NO_GO)
    assert decide_wave(store, PLAN, RUN)["reasons"] == ["checkpoint phase1-verification is NO-GO: no detail"]


def test_every_problem_is_a_reason_in_plan_order(store):
    record(store, "phase1-verification", decision=NO_GO, failures=["x"])
    record(store, "phase2-verification", run_id="other")
    assert decide_wave(store, PLAN, RUN)["reasons"] == [
        "checkpoint phase1-verification is NO-GO: x",
        "checkpoint phase1-T+1h was not reached in this run",
        "checkpoint phase2-verification was not reached in this run",
        "checkpoint T+1h was not reached in this run"]


def test_plan_without_checkpoints_is_no_go(store):
    result = decide_wave(store, dict(PLAN, phases=[dict(name="phase1", watch=[])]), RUN)
    assert result == dict(decision=NO_GO, reasons=[], checkpoints=[], rollback=None)


def test_malformed_checkpoint_raises_naming_the_file(store):
    all_go(store)
    store.write_text("checkpoints/wave2/phase1-T+1h/decision.json", '{"run_id": ')
    with pytest.raises(ArtifactError) as exc:
        decide_wave(store, PLAN, RUN)
    assert str(exc.value).startswith(store.path("checkpoints/wave2/phase1-T+1h/decision.json") + " is not valid JSON")


def test_deciding_writes_nothing(store, tmp_path):
    all_go(store)
    before = files_under(tmp_path)
    decide_wave(store, PLAN, RUN)
    assert files_under(tmp_path) == before


# --- render_report -------------------------------------------------------------------------------

TIMELINE = [dict(step="preflight", started="09:30", finished="09:31", result="ok"), dict(step="phase1: deploy")]


def report(store, timeline=TIMELINE, plan=PLAN):
    return render_report(plan, RUN, decide_wave(store, plan, RUN), timeline, "2025-01-14T09:30:00Z",
                         "2025-01-15T09:30:00Z")


def test_go_report(store):
    all_go(store)
    text = report(store)
    assert text.startswith("# wave2: GO\n")
    assert "Run `%s`, started 2025-01-14T09:30:00Z, decided 2025-01-15T09:30:00Z." % RUN in text
    assert "Agents: network-expert, tdd-expert. Control group: git-expert, graph-expert." in text
    assert text.rstrip().endswith("GO: all 4 checkpoints passed.")
    assert "rollback" not in text


def test_no_go_report_lists_reasons_and_the_rollback_command(store):
    all_go(store)
    failure = "tdd-expert unit active on dgx-2: expected active, measured failed"
    record(store, "T+1h", decision=NO_GO, failures=[failure])
    os.remove(store.path("checkpoints/wave2/phase1-T+1h/decision.json"))
    text = report(store)
    assert text.startswith("# wave2: NO-GO\n")
    decision = text.split("## Decision\n\n", 1)[1]
    assert decision.splitlines()[:3] == [
        "NO-GO:", "- checkpoint phase1-T+1h was not reached in this run",
        "- checkpoint T+1h is NO-GO: tdd-expert unit active on dgx-2: expected active, measured failed"]
    assert "`ansible-playbook playbooks/rollback.yml -e rollback_wave=wave2`" in decision


def test_report_checkpoint_table(store):
    all_go(store)
    record(store, "T+1h", decision=NO_GO, failures=["a", "b"])
    os.remove(store.path("checkpoints/wave2/phase1-T+1h/decision.json"))
    text = report(store)
    assert "| phase1 | phase1-verification | 2025-01-14T10:00:00Z | GO | - |" in text
    assert "| phase1 | phase1-T+1h | - | NOT REACHED | - |" in text
    assert "| phase2 | T+1h | 2025-01-14T10:03:00Z | NO-GO | a; b |" in text


def test_report_timeline_fills_missing_fields_with_a_dash(store):
    all_go(store)
    text = report(store)
    assert "## Timeline" in text
    assert "| preflight | 09:30 | 09:31 | ok |" in text and "| phase1: deploy | - | - | - |" in text


def test_report_without_timeline_or_control_group(store):
    all_go(store)
    text = report(store, timeline=[], plan=dict(PLAN, control=[]))
    assert "## Timeline" not in text and "Control group: none." in text


# --- monitoring rounds, operator approval, automatic rollback --------------------------------------

def with_rounds(plan, monitors):
    """PLAN with phase.rounds: the watch as checkpoints plus the given monitoring rounds per phase."""
    phases = []
    for phase in plan["phases"]:
        rounds = [dict(w, kind="checkpoint") for w in phase["watch"]]
        rounds += [dict(label=label, after=after, kind="monitor") for label, after in monitors.get(phase["name"], [])]
        phases.append(dict(phase, rounds=sorted(rounds, key=lambda r: r["after"])))
    return dict(plan, phases=phases)


MON_PLAN = with_rounds(PLAN, {"phase1": [("phase1-monitor-001", 3), ("phase1-monitor-002", 6)],
                              "phase2": [("phase2-monitor-001", 3)]})


def monitor_record(store, label, decision=GO, run_id=RUN, failures=(), taken_at="2025-01-14T10:30:00Z"):
    store.write_json(os.path.join("checkpoints", "wave2", "monitor", label, "decision.json"),
                     dict(wave="wave2", label=label, kind="monitor", run_id=run_id, decision=decision,
                          failures=list(failures), taken_at=taken_at))


def approval(store, label, approved=True, run_id=RUN, folder=None):
    store.write_json(os.path.join(folder or os.path.join("checkpoints", "wave2", label), "approval.json"),
                     dict(run_id=run_id, label=label, approved=approved, answered_at="2025-01-14T11:00:00Z"))


ROLLBACK = dict(run_id=RUN, completed=True, triggers=["agent_crash", "message_loss"],
                reasons=["trigger agent_crash fired on tdd-expert@dgx-2: agent_crashes 1 > 0 count"],
                agents=["network-expert", "tdd-expert"], hosts=["dgx-1", "dgx-2"],
                detected_at="2025-01-14T10:30:00.120+00:00", decided_at="2025-01-14T10:30:00.125+00:00",
                completed_at="2025-01-14T10:30:21Z", seconds_detection_to_completion=20.9)


def rollback_record(store, folder, **changes):
    store.write_json(os.path.join(folder, "rollback.json"), dict(ROLLBACK, **changes))


def test_monitoring_rounds_that_were_go_do_not_show(store):
    all_go(store)
    for label in ("phase1-monitor-001", "phase1-monitor-002", "phase2-monitor-001"):
        monitor_record(store, label)
    result = decide_wave(store, MON_PLAN, RUN)
    assert result["decision"] == GO and result["reasons"] == [] and result["rollback"] is None
    assert [r["label"] for r in result["checkpoints"]] == LABELS


def test_monitoring_rounds_not_reached_do_not_count(store):
    all_go(store)  # no monitoring round recorded at all
    result = decide_wave(store, MON_PLAN, RUN)
    assert result["decision"] == GO and [r["label"] for r in result["checkpoints"]] == LABELS


def test_monitoring_round_not_go_stops_the_wave(store):
    all_go(store)
    monitor_record(store, "phase1-monitor-001")
    monitor_record(store, "phase1-monitor-002", decision="ROLLBACK",
                   failures=["trigger agent_crash fired on network-expert@dgx-2: agent_crashes 1 > 0 count"])
    result = decide_wave(store, MON_PLAN, RUN)
    assert result["decision"] == NO_GO
    assert result["reasons"] == ["monitoring round phase1-monitor-002 is ROLLBACK: trigger agent_crash fired on "
                                 "network-expert@dgx-2: agent_crashes 1 > 0 count"]
    [row] = [r for r in result["checkpoints"] if "monitor" in r["label"]]
    assert row == dict(phase="phase1", label="phase1-monitor-002 (monitoring)", decision="ROLLBACK",
                       taken_at="2025-01-14T10:30:00Z",
                       failures=["trigger agent_crash fired on network-expert@dgx-2: agent_crashes 1 > 0 count"])


def test_monitoring_round_rows_follow_their_phase_checkpoints(store):
    all_go(store)
    monitor_record(store, "phase1-monitor-001", decision=NO_GO, failures=["x"])
    result = decide_wave(store, MON_PLAN, RUN)
    assert [r["label"] for r in result["checkpoints"]] == [
        "phase1-verification", "phase1-T+1h", "phase1-monitor-001 (monitoring)", "phase2-verification", "T+1h"]


def test_monitoring_round_of_another_run_does_not_count(store):
    all_go(store)
    monitor_record(store, "phase2-monitor-001", decision="ROLLBACK", run_id="an-earlier-run", failures=["x"])
    result = decide_wave(store, MON_PLAN, RUN)
    assert result["decision"] == GO and len(result["checkpoints"]) == 4


def test_monitoring_rounds_are_read_from_the_monitor_folder_only(store):
    all_go(store)
    record(store, "phase1-monitor-001", decision=NO_GO, failures=["in the wrong folder"])
    assert decide_wave(store, MON_PLAN, RUN)["decision"] == GO


def test_plan_without_rounds_reads_no_monitoring_round(store):
    all_go(store)
    monitor_record(store, "phase1-monitor-001", decision=NO_GO, failures=["x"])
    assert decide_wave(store, PLAN, RUN)["decision"] == GO


def test_checkpoints_listed_in_rounds_are_not_counted_twice(store):
    all_go(store)
    record(store, "T+1h", decision=NO_GO, failures=["x"])
    result = decide_wave(store, MON_PLAN, RUN)
    assert len(result["checkpoints"]) == 4 and result["reasons"] == ["checkpoint T+1h is NO-GO: x"]


def test_malformed_monitoring_round_raises_naming_the_file(store):
    all_go(store)
    store.write_text("checkpoints/wave2/monitor/phase1-monitor-002/decision.json", "{")
    with pytest.raises(ArtifactError) as exc:
        decide_wave(store, MON_PLAN, RUN)
    assert str(exc.value).startswith(store.path("checkpoints/wave2/monitor/phase1-monitor-002/decision.json"))


def test_inconclusive_checkpoint_accepted_by_an_operator_counts_as_go(store):
    all_go(store)
    record(store, "phase1-T+1h", decision="INCONCLUSIVE",
           failures=["comparison latency_ms too few samples (required): n 12 test / 40 control, need 20 on each side"])
    approval(store, "phase1-T+1h")
    result = decide_wave(store, PLAN, RUN)
    assert result["decision"] == GO and result["reasons"] == []
    row = result["checkpoints"][1]
    assert row["decision"] == GO
    assert row["failures"] == ["comparison latency_ms too few samples (required): n 12 test / 40 control, need 20 "
                               "on each side", "INCONCLUSIVE, accepted by an operator (approval.json)"]


def test_inconclusive_checkpoint_without_approval_is_no_go(store):
    all_go(store)
    record(store, "T+1h", decision="INCONCLUSIVE", failures=["too few samples"])
    result = decide_wave(store, PLAN, RUN)
    assert result["decision"] == NO_GO and result["reasons"] == ["checkpoint T+1h is INCONCLUSIVE: too few samples"]


@pytest.mark.parametrize("approved, run_id", [
    (False, RUN),               # the operator said no (or was not asked: AWX)
    ("true", RUN),              # only JSON true counts
    (1, RUN),
    (True, "an-earlier-run"),   # an approval left by another run
])
def test_approval_must_be_true_and_of_this_run(store, approved, run_id):
    all_go(store)
    record(store, "T+1h", decision="INCONCLUSIVE", failures=["too few samples"])
    approval(store, "T+1h", approved=approved, run_id=run_id)
    result = decide_wave(store, PLAN, RUN)
    assert result["decision"] == NO_GO and result["checkpoints"][3]["decision"] == "INCONCLUSIVE"


@pytest.mark.parametrize("decision", [NO_GO, "ROLLBACK"])
def test_approval_does_not_turn_a_failed_checkpoint_into_go(store, decision):
    all_go(store)
    record(store, "T+1h", decision=decision, failures=["x"])
    approval(store, "T+1h")
    result = decide_wave(store, PLAN, RUN)
    assert result["decision"] == NO_GO and result["checkpoints"][3]["decision"] == decision


def test_approval_of_a_checkpoint_of_another_run_does_not_count(store):
    all_go(store)
    record(store, "T+1h", decision="INCONCLUSIVE", run_id="an-earlier-run")
    approval(store, "T+1h")
    assert decide_wave(store, PLAN, RUN)["checkpoints"][3]["decision"] == "NOT REACHED"


def test_rollback_beside_a_checkpoint_is_returned_with_its_label(store):
    all_go(store)
    record(store, "phase1-T+1h", decision="ROLLBACK", failures=["trigger agent_crash fired"])
    rollback_record(store, "checkpoints/wave2/phase1-T+1h")
    result = decide_wave(store, PLAN, RUN)
    assert result["decision"] == NO_GO and result["rollback"] == dict(ROLLBACK, label="phase1-T+1h")


def test_rollback_beside_a_monitoring_round_is_returned_with_its_label(store):
    all_go(store)
    monitor_record(store, "phase2-monitor-001", decision="ROLLBACK", failures=["trigger message_loss fired"])
    rollback_record(store, "checkpoints/wave2/monitor/phase2-monitor-001")
    result = decide_wave(store, MON_PLAN, RUN)
    assert result["rollback"] == dict(ROLLBACK, label="phase2-monitor-001")


def test_rollback_of_another_run_is_not_returned(store):
    all_go(store)
    record(store, "T+1h", decision="ROLLBACK", failures=["x"])
    rollback_record(store, "checkpoints/wave2/T+1h", run_id="an-earlier-run")
    assert decide_wave(store, PLAN, RUN)["rollback"] is None


def test_failed_rollback_is_returned_as_recorded(store):
    all_go(store)
    record(store, "T+1h", decision="ROLLBACK", failures=["x"])
    store.write_json("checkpoints/wave2/T+1h/rollback.json",
                     dict(run_id=RUN, completed=False, triggers=["agent_crash"], error="unit did not start"))
    assert decide_wave(store, PLAN, RUN)["rollback"] == dict(run_id=RUN, completed=False, triggers=["agent_crash"],
                                                             error="unit did not start", label="T+1h")


def test_no_rollback_when_none_was_recorded(store):
    all_go(store)
    record(store, "T+1h", decision="ROLLBACK", failures=["x"])
    assert decide_wave(store, PLAN, RUN)["rollback"] is None


def test_report_of_an_automatic_rollback(store):
    all_go(store)
    monitor_record(store, "phase2-monitor-001", decision="ROLLBACK", failures=["trigger message_loss fired"])
    rollback_record(store, "checkpoints/wave2/monitor/phase2-monitor-001")
    text = report(store, plan=MON_PLAN)
    decision = text.split("## Decision\n\n", 1)[1]
    assert decision.splitlines()[:2] == ["NO-GO:", "- monitoring round phase2-monitor-001 is ROLLBACK: trigger "
                                                   "message_loss fired"]
    assert ("Rolled back automatically after phase2-monitor-001 (triggers: agent_crash, message_loss): detected "
            "2025-01-14T10:30:00.120+00:00, decided 2025-01-14T10:30:00.125+00:00, legacy-only verified "
            "2025-01-14T10:30:21Z, 20.9 s from detection.") in decision
    assert "playbooks/rollback.yml" not in text
    row = "| phase2 | phase2-monitor-001 (monitoring) | 2025-01-14T10:30:00Z | ROLLBACK | trigger message_loss fired |"
    assert row in text


def test_report_of_an_automatic_rollback_without_triggers(store):
    all_go(store)
    record(store, "T+1h", decision="ROLLBACK", failures=["x"])
    rollback_record(store, "checkpoints/wave2/T+1h", triggers=[])
    assert "Rolled back automatically after T+1h (triggers: -)" in report(store)


def test_report_of_an_incomplete_rollback_gives_the_manual_command(store):
    all_go(store)
    record(store, "T+1h", decision="ROLLBACK", failures=["x"])
    rollback_record(store, "checkpoints/wave2/T+1h", completed=False)
    text = report(store)
    assert "Rolled back automatically" not in text
    assert "`ansible-playbook playbooks/rollback.yml -e rollback_wave=wave2`" in text


def test_report_of_an_approved_inconclusive_checkpoint_is_go(store):
    all_go(store)
    record(store, "T+1h", decision="INCONCLUSIVE", failures=["too few samples"])
    approval(store, "T+1h")
    text = report(store)
    assert text.startswith("# wave2: GO\n") and "GO: all 4 checkpoints passed." in text
    assert "| phase2 | T+1h | 2025-01-14T10:03:00Z | GO | too few samples; INCONCLUSIVE, accepted by an operator " \
           "(approval.json) |" in text


# --- ArtifactStore -------------------------------------------------------------------------------

def test_write_json_creates_folders_and_is_readable_back(store):
    dest = store.write_json("checkpoints/wave2/T+1h/decision.json", {"b": 1, "a": [1, 2]})
    assert dest == store.path("checkpoints", "wave2", "T+1h", "decision.json")
    assert open(dest).read() == '{\n  "a": [\n    1,\n    2\n  ],\n  "b": 1\n}\n'
    assert store.read_json("checkpoints/wave2/T+1h/decision.json") == {"a": [1, 2], "b": 1}


def test_written_files_are_world_readable(store):
    dest = store.write_text("r/report.md", "# x\n")
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o644


def test_write_text_is_utf8(store):
    dest = store.write_text("r/report.md", "wave2 \u2014 GO\n")
    assert open(dest, "rb").read() == "wave2 \u2014 GO\n".encode("utf-8")


def test_write_replaces_and_leaves_no_temp_files(store):
    store.write_text("a/x.txt", "old")
    store.write_text("a/x.txt", "new")
    assert os.listdir(store.path("a")) == ["x.txt"] and open(store.path("a/x.txt")).read() == "new"


def test_failed_write_keeps_the_old_file_and_removes_the_temp_file(store, monkeypatch):
    store.write_text("a/x.txt", "old")

    def broken_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(fleet_artifacts.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        store.write_text("a/x.txt", "new")
    monkeypatch.undo()
    assert os.listdir(store.path("a")) == ["x.txt"] and open(store.path("a/x.txt")).read() == "old"


def test_values_json_cannot_encode_are_written_as_strings(store):
    when = datetime.datetime(2025, 1, 14, 9, 30, tzinfo=datetime.timezone.utc)
    store.write_json("a.json", {"when": when})
    assert store.read_json("a.json") == {"when": "2025-01-14 09:30:00+00:00"}


@pytest.mark.parametrize("relpath", ["../escape.json", "/etc/fleetwave.json", "a/../../escape.json",
                                     "../artifacts-evil/x.json"])
def test_paths_outside_the_store_are_refused(store, tmp_path, relpath):
    with pytest.raises(ArtifactError) as exc:
        store.write_json(relpath, {})
    assert "is outside the artifact store %s" % store.root in str(exc.value)
    assert files_under(tmp_path) == []


def test_reading_outside_the_store_is_refused(store):
    with pytest.raises(ArtifactError):
        store.read_json("../../etc/passwd")


def test_paths_inside_the_store_with_dots_are_fine(store):
    assert store.path("a/./b/../c.json") == os.path.join(store.root, "a", "c.json")


def test_read_json_of_a_missing_file_is_none(store):
    assert store.read_json("checkpoints/wave2/T+1h/decision.json") is None


@pytest.mark.parametrize("content", [b"{not json", b"", b'{"a": 1}\n{"b": 2}', b'"\xff\xfe"'])
def test_malformed_json_is_an_error_naming_the_file(store, content):
    path = store.write_bytes("checkpoints/wave2/T+1h/decision.json", content)
    with pytest.raises(ArtifactError) as exc:
        store.read_json("checkpoints/wave2/T+1h/decision.json")
    assert str(exc.value).startswith("%s is not valid JSON: " % path)


def test_archive_moves_the_folder_aside_with_its_contents(store):
    store.write_text("checkpoints/wave2/T+1h/summary.md", "old run")
    dest = store.archive("checkpoints/wave2/T+1h", "checkpoints/wave2/history/run-1/T+1h")
    assert dest == store.path("checkpoints/wave2/history/run-1/T+1h")
    assert not os.path.exists(store.path("checkpoints/wave2/T+1h"))
    assert open(os.path.join(dest, "summary.md")).read() == "old run"


def test_archive_of_a_missing_folder_does_nothing(store, tmp_path):
    assert store.archive("checkpoints/wave2/T+1h", "checkpoints/wave2/history/run-1/T+1h") is None
    assert files_under(tmp_path) == []


def test_archive_never_overwrites_an_earlier_archive(store):
    store.write_text("cp/T+1h/summary.md", "first")
    first = store.archive("cp/T+1h", "history/run-1/T+1h")
    store.write_text("cp/T+1h/summary.md", "second")
    second = store.archive("cp/T+1h", "history/run-1/T+1h")
    assert second != first and os.path.dirname(second) == os.path.dirname(first)
    assert open(os.path.join(first, "summary.md")).read() == "first"
    assert open(os.path.join(second, "summary.md")).read() == "second"


def test_archive_outside_the_store_is_refused(store):
    store.write_text("cp/T+1h/summary.md", "x")
    with pytest.raises(ArtifactError):
        store.archive("cp/T+1h", "../history/T+1h")
    assert os.path.exists(store.path("cp/T+1h/summary.md"))


def test_manifest_is_in_sha256sum_format_sorted(store):
    store.write_text("cp/summary.md", "# GO\n")
    store.write_json("cp/decision.json", {"decision": "GO"})
    manifest = open(store.write_manifest("cp")).read()
    expected = "".join("%s  %s\n" % (hashlib.sha256(open(store.path("cp", n), "rb").read()).hexdigest(), n)
                       for n in ("decision.json", "summary.md"))
    assert manifest == expected


def test_manifest_leaves_out_itself_hidden_files_and_folders(store):
    store.write_text("cp/summary.md", "x")
    store.write_text("cp/.partial", "x")
    store.write_text("cp/sub/inner.txt", "x")
    store.write_manifest("cp")
    manifest = store.write_manifest("cp")  # a second time: the old manifest is not listed
    assert [line.split("  ", 1)[1] for line in open(manifest).read().splitlines()] == ["summary.md"]
    assert os.path.basename(manifest) == MANIFEST


def test_manifest_detects_a_changed_file(store):
    store.write_text("cp/summary.md", "x")
    before = open(store.write_manifest("cp")).read().split()[0]
    store.write_text("cp/summary.md", "tampered")
    after = open(store.write_manifest("cp")).read().split()[0]
    assert after == hashlib.sha256(b"tampered").hexdigest() and after != before


def test_store_root_is_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert ArtifactStore("artifacts").root == str(tmp_path / "artifacts")
    assert json.loads(open(ArtifactStore("artifacts").write_json("a.json", [1])).read()) == [1]
