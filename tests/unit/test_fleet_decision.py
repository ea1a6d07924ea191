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
from ansible.module_utils import fleet_artifacts
from ansible.module_utils.fleet_artifacts import MANIFEST, ArtifactError, ArtifactStore
from ansible.module_utils.fleet_decision import GO, NO_GO, decide_wave, render_report

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
    assert result == dict(decision=NO_GO, reasons=[], checkpoints=[])


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
