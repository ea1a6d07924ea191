"""plugins/plugin_utils/fleet_artifacts.py: artifacts are written atomically, never outside the
store, and malformed ones are reported by name; utc() is the one timestamp format and Layout the one
place an artifact's path is spelled; the run journal's JSON lines are appended under a lock and
fsync'ed, a line torn by a killed writer is skipped and anything else malformed is reported by file
and line."""

from __future__ import annotations

import datetime
import fcntl
import hashlib
import json
import os
import re
import stat
import threading
import time

import pytest
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_artifacts
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import (MANIFEST, ArtifactError,
                                                                                         ArtifactStore, Layout, utc)

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_path):
    return ArtifactStore(str(tmp_path / "artifacts"))


def files_under(path):
    return sorted(os.path.relpath(os.path.join(d, n), path) for d, _, names in os.walk(path) for n in names)


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


# --- utc -------------------------------------------------------------------------------------------

STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
EPOCH = datetime.datetime(2025, 1, 14, 9, 30, tzinfo=datetime.timezone.utc).timestamp()


@pytest.mark.parametrize("epoch, expected", [
    (0, "1970-01-01T00:00:00.000Z"),
    (EPOCH, "2025-01-14T09:30:00.000Z"),
    (EPOCH + 0.125, "2025-01-14T09:30:00.125Z"),
    (EPOCH + 61.5, "2025-01-14T09:31:01.500Z"),
    (EPOCH + 0.0009, "2025-01-14T09:30:00.000Z"),   # milliseconds are cut, never rounded up a second
    (EPOCH + 59.9999, "2025-01-14T09:30:59.999Z"),
    (int(EPOCH), "2025-01-14T09:30:00.000Z"),
    (str(EPOCH + 1), "2025-01-14T09:30:01.000Z"),   # an epoch as templated by Ansible (a string)
])
def test_utc_formats_an_epoch(epoch, expected):
    assert utc(epoch) == expected and STAMP.match(utc(epoch))


def test_utc_without_an_epoch_is_now():
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    stamp = utc()
    after = datetime.datetime.now(datetime.timezone.utc)
    assert STAMP.match(stamp)
    when = datetime.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
    assert before <= when <= after


def test_utc_does_not_depend_on_the_local_time_zone(monkeypatch):
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert utc(EPOCH) == "2025-01-14T09:30:00.000Z"
    finally:
        monkeypatch.undo()
        time.tzset()


# --- Layout ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("path, expected", [
    (Layout.wave_dir("wave2"), "checkpoints/wave2"),
    (Layout.round_dir("wave2", "T+1h"), "checkpoints/wave2/T+1h"),
    (Layout.round_dir("wave2", "phase2-monitor-004", monitoring=True), "checkpoints/wave2/monitor/phase2-monitor-004"),
    (Layout.history_dir("wave2", "run-1", "T+1h"), "checkpoints/wave2/history/run-1/T+1h"),
    (Layout.history_dir("wave2", "run-1", "phase2-monitor-004", True),
     "checkpoints/wave2/history/run-1/monitor/phase2-monitor-004"),
    (Layout.history_dir("wave2", None, "T+1h"), "checkpoints/wave2/history/None/T+1h"),
    (Layout.wave_decision("wave2"), "checkpoints/wave2/decision.json"),
    (Layout.wave_report("wave2"), "checkpoints/wave2/report.md"),
    (Layout.run_dir("run-1"), "runs/run-1"),
    (Layout.journal("run-1"), "runs/run-1/journal.jsonl"),
    (Layout.checklist("run-1"), "runs/run-1/checklist.md"),
    (Layout.rollback_record("rollback-20250114T093000Z"), "rollbacks/rollback-20250114T093000Z.json"),
    (Layout.round_rollback("wave2", "T+1h"), "checkpoints/wave2/T+1h/rollback.json"),
    (Layout.round_rollback("wave2", "phase2-monitor-004", True),
     "checkpoints/wave2/monitor/phase2-monitor-004/rollback.json"),
    (Layout.round_approval("wave2", "T+1h"), "checkpoints/wave2/T+1h/approval.json"),
    (Layout.round_approval("wave2", "phase2-monitor-004", True),
     "checkpoints/wave2/monitor/phase2-monitor-004/approval.json"),
])
def test_layout_spells_every_artifact_path(path, expected):
    assert path == expected


def test_layout_paths_are_relative_and_inside_the_store(store):
    for path in (Layout.journal("run-1"), Layout.round_approval("wave2", "T+1h", True), Layout.rollback_record("r")):
        assert not os.path.isabs(path) and store.path(path).startswith(store.root + os.sep)


# --- locked ----------------------------------------------------------------------------------------

def try_lock(path):
    """Whether another open file could take the lock now (flock is per open file)."""
    with open(path, "a") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return True


def test_locked_holds_an_exclusive_lock_beside_the_file(store):
    lock = store.path("runs/run-1/journal.jsonl") + ".lock"
    with store.locked("runs/run-1/journal.jsonl"):
        assert os.path.isfile(lock)  # the folders are made for it
        assert not try_lock(lock)
    assert try_lock(lock)
    assert not os.path.exists(store.path("runs/run-1/journal.jsonl"))  # locking creates only the lock file


def test_locked_releases_the_lock_when_the_block_raises(store):
    with pytest.raises(RuntimeError):
        with store.locked("a.jsonl"):
            raise RuntimeError("boom")
    assert try_lock(store.path("a.jsonl") + ".lock")


def test_locked_outside_the_store_is_refused(store, tmp_path):
    with pytest.raises(ArtifactError):
        with store.locked("../escape.jsonl"):
            pass
    assert files_under(tmp_path) == []


# --- append_jsonl / read_jsonl ---------------------------------------------------------------------

def test_appended_records_are_read_back_in_order(store):
    for n in range(3):
        store.append_jsonl("runs/run-1/journal.jsonl", dict(seq=n + 1, step="deploy", host="dgx-%d" % n))
    assert store.read_jsonl("runs/run-1/journal.jsonl") == [dict(seq=n + 1, step="deploy", host="dgx-%d" % n)
                                                           for n in range(3)]


def test_each_record_is_one_line_of_sorted_json(store):
    dest = store.append_jsonl("j.jsonl", {"b": 1, "a": "x\ny"})
    store.append_jsonl("j.jsonl", {"when": datetime.datetime(2025, 1, 14, tzinfo=datetime.timezone.utc)})
    assert dest == store.path("j.jsonl")
    assert open(dest, "rb").read() == b'{"a": "x\\ny", "b": 1}\n{"when": "2025-01-14 00:00:00+00:00"}\n'


def test_every_appended_line_is_fsynced_under_the_lock(store, monkeypatch):
    synced, locked = [], []
    real_fsync, real_locked = os.fsync, store.locked

    def fsync(fd):
        synced.append(os.readlink("/proc/self/fd/%d" % fd))
        real_fsync(fd)

    def spy_locked(relpath):
        locked.append(relpath)
        return real_locked(relpath)

    monkeypatch.setattr(fleet_artifacts.os, "fsync", fsync)
    monkeypatch.setattr(store, "locked", spy_locked)
    store.append_jsonl("runs/r/journal.jsonl", {"a": 1})
    store.append_jsonl("runs/r/journal.jsonl", {"a": 2})
    assert synced == [store.path("runs/r/journal.jsonl")] * 2
    assert locked == ["runs/r/journal.jsonl"] * 2


def test_append_without_lock_leaves_the_lock_to_the_caller(store, monkeypatch):
    with store.locked("j.jsonl"):
        monkeypatch.setattr(store, "locked", lambda relpath: pytest.fail("append_jsonl took the lock again"))
        store.append_jsonl("j.jsonl", {"a": 1}, lock=False)
    assert store.read_jsonl("j.jsonl") == [{"a": 1}]


def test_reading_a_missing_file_is_empty(store):
    assert store.read_jsonl("runs/none/journal.jsonl") == []


def test_blank_lines_are_skipped(store):
    store.write_bytes("j.jsonl", b'{"a": 1}\n\n  \n{"a": 2}\n')
    assert store.read_jsonl("j.jsonl") == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize("torn", [b'{"a": 2, "b": "hal', b'{', b'{"a": 2, "b": [1, 2'])
def test_a_torn_last_line_is_skipped(store, torn):
    store.write_bytes("j.jsonl", b'{"a": 1}\n' + torn)
    assert store.read_jsonl("j.jsonl") == [{"a": 1}]


def test_an_append_after_a_torn_line_starts_a_new_line_and_is_read(store):
    store.write_bytes("j.jsonl", b'{"a": 1}\n{"a": 2, "b": "hal')
    store.append_jsonl("j.jsonl", {"a": 3})
    assert open(store.path("j.jsonl"), "rb").read() == b'{"a": 1}\n{"a": 2, "b": "hal\n{"a": 3}\n'
    assert store.read_jsonl("j.jsonl") == [{"a": 1}, {"a": 3}]
    store.append_jsonl("j.jsonl", {"a": 4})
    assert store.read_jsonl("j.jsonl") == [{"a": 1}, {"a": 3}, {"a": 4}]


def test_a_file_without_a_final_newline_is_continued_on_a_new_line(store):
    store.write_bytes("j.jsonl", b'{"a": 1}')
    store.append_jsonl("j.jsonl", {"a": 2})
    assert store.read_jsonl("j.jsonl") == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize("bad", [b'{"a": 1,, "b": 2}', b'{"a": nope}', b'{"a": "\xff"}', b'not json at all }'])
def test_a_corrupt_complete_line_is_an_error_naming_file_and_line(store, bad):
    path = store.write_bytes("runs/r/journal.jsonl", b'{"a": 1}\n' + bad + b'\n{"a": 3}\n')
    with pytest.raises(ArtifactError) as exc:
        store.read_jsonl("runs/r/journal.jsonl")
    assert str(exc.value).startswith("%s: line 2 is not valid JSON: " % path)


def test_reading_jsonl_outside_the_store_is_refused(store):
    with pytest.raises(ArtifactError):
        store.read_jsonl("../../etc/passwd")


def test_sixteen_writers_at_once_lose_nothing(store):
    writers, each = 16, 25
    start = threading.Barrier(writers)
    errors = []

    def write(n):
        try:
            start.wait()
            for i in range(each):
                store.append_jsonl("runs/r/journal.jsonl", dict(writer=n, i=i, pad="x" * (n * 100)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    records = store.read_jsonl("runs/r/journal.jsonl")
    assert len(records) == writers * each
    assert sorted((r["writer"], r["i"]) for r in records) == [(n, i) for n in range(writers) for i in range(each)]
    for n in range(writers):  # each writer's records in the order it wrote them
        assert [r["i"] for r in records if r["writer"] == n] == list(range(each))
    assert len(open(store.path("runs/r/journal.jsonl"), "rb").read().splitlines()) == writers * each
