"""plugins/module_utils/fleet_audit.py, the log: each line chains to the one before (seq, prev) and
hashes its own content (sha256), so verify names exactly the line that was edited, deleted, inserted,
moved or cut short; a reopened log continues its chain; what a killed writer left is recovered
visibly; censor keeps only the status of a no_log result."""

from __future__ import annotations

import datetime
import hashlib
import io
import json
import re
import string

import pytest
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_evidence import EvidenceKey
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_audit import (CENSORED, GENESIS, RECOVERED, AuditError, AuditLog, canonical,
                                              censor, check, head, verify)

pytestmark = pytest.mark.unit

LINES = 20
TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


class WallClock:
    """A fake UTC clock that moves 1.5 ms per reading."""

    def __init__(self):
        self.now = datetime.datetime(2025, 1, 14, 9, 30, tzinfo=datetime.timezone.utc)

    def __call__(self):
        self.now += datetime.timedelta(microseconds=1500)
        return self.now


def sha(data):
    return hashlib.sha256(data).hexdigest()


def write_log(path, count=LINES):
    with AuditLog(path, clock=WallClock()) as log:
        for n in range(count):
            log.append("host_result", host="dgx-%d" % (n % 3 + 1), task="Task %d" % n, changed=n % 2 == 0,
                       duration_ms=n * 7, msg="message %d" % n)
    return path.read_bytes().splitlines(keepends=True)


@pytest.fixture(scope="module")
def log20_bytes(tmp_path_factory):
    return b"".join(write_log(tmp_path_factory.mktemp("log20") / "audit.jsonl"))


@pytest.fixture
def log20(tmp_path, log20_bytes):
    """(path, lines with their newlines) of a 20-line log (written once, with fsyncs, per module)."""
    path = tmp_path / "audit.jsonl"
    path.write_bytes(log20_bytes)
    return path, log20_bytes.splitlines(keepends=True)


def rewrite(path, lines):
    path.write_bytes(b"".join(lines))
    return verify(path)


# ---------------------------------------------------------------- the format


def test_a_new_log_chains_from_zeros_with_seq_ts_prev_and_own_hash(log20):
    path, lines = log20
    assert verify(path) == (True, None, "20 lines, chain intact")
    previous = GENESIS
    for n, raw in enumerate(lines, 1):
        assert raw.endswith(b"\n")
        record = json.loads(raw)
        assert record["seq"] == n and record["prev"] == previous
        assert TS.match(record["ts"]), record["ts"]
        assert record["sha256"] == sha(canonical({k: v for k, v in record.items() if k != "sha256"}))
        assert raw[:-1] == json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
        previous = sha(raw[:-1])
    assert json.loads(lines[0])["prev"] == "0" * 64
    assert json.loads(lines[1])["ts"] == "2025-01-14T09:30:00.003000Z"


def test_the_file_is_a_valid_log_after_every_append(tmp_path):
    path = tmp_path / "deep" / "er" / "audit.jsonl"
    with AuditLog(path) as log:
        for n in range(1, 6):
            record = log.append("tick", n=n)
            assert path.read_bytes().endswith(b"\n")
            assert verify(path) == (True, None, "%d lines, chain intact" % n)
            assert record["seq"] == n and log.anchor == "%d:%s" % (n, sha(path.read_bytes().splitlines()[-1]))
    assert oct(path.stat().st_mode & 0o777) == oct(0o640)


def test_reopening_continues_the_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 3)
    with AuditLog(path) as log:
        assert log.seq == 3
        log.append("second_run", n=1)
        log.append("second_run", n=2)
    lines = path.read_bytes().splitlines()
    assert verify(path) == (True, None, "5 lines, chain intact")
    assert json.loads(lines[3])["seq"] == 4 and json.loads(lines[3])["prev"] == sha(lines[2])


def test_reopening_a_log_whose_last_line_is_10_mb_continues_its_chain(tmp_path):
    """issue 8 part 6: the backwards read was quadratic in the last line's length (a 100 MB line
    took 57 s). Behaviour only here; bench/audit_reopen.py prints the time."""
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        log.append("small")
        log.append("huge", msg="x" * (10 * 1024 * 1024 + 3))  # not a multiple of the read block
        head = log.anchor
    with AuditLog(path) as log:
        assert log.anchor == head
        log.append("after")
    assert verify(path) == (True, None, "3 lines, chain intact")


def test_reopening_after_a_10_mb_torn_line_recovers_it(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path, 2)
    with open(path, "ab") as handle:
        handle.write(b'{"event":"torn","msg":"' + b"y" * (10 * 1024 * 1024) )
    torn = path.read_bytes().split(b"\n")[-1]
    with AuditLog(path) as log:
        assert log.seq == 2
        record = log.append("after")
    assert record["seq"] == 4
    recovery = json.loads(path.read_bytes().split(b"\n")[-3])
    assert recovery["event"] == RECOVERED and recovery["fragments"] == [sha(torn)]


def test_two_writers_on_one_file_keep_one_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    first, second = AuditLog(path), AuditLog(path)
    for n in range(6):
        (first if n % 2 else second).append("interleaved", n=n)
    first.close()
    second.close()
    assert verify(path) == (True, None, "6 lines, chain intact")


def test_event_fields_cannot_overwrite_the_chain(tmp_path):
    with AuditLog(tmp_path / "audit.jsonl") as log:
        log.append("one")
        with pytest.raises(AuditError, match="seq"):
            log.append("two", seq=99)
        assert log.append("three")["seq"] == 2
    with pytest.raises(AuditError, match="closed"):
        log.append("four")


def test_values_that_are_not_json_are_written_as_text(tmp_path):
    path = tmp_path / "audit.jsonl"
    with AuditLog(path) as log:
        record = log.append("odd", when=datetime.date(2025, 1, 14), hosts=("a", "b"))
    assert record["when"] == "2025-01-14" and record["hosts"] == ["a", "b"]
    assert verify(path)[0]


def test_an_empty_log_verifies_and_a_missing_one_raises(tmp_path):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    assert verify(tmp_path / "empty.jsonl") == (True, None, "0 lines, chain intact")
    with pytest.raises(OSError):
        verify(tmp_path / "missing.jsonl")


# ---------------------------------------------------------------- every edit is named


def other(char):
    """A different character of the same kind, so the edit is as quiet as possible."""
    for pool in (string.digits, "abcdef", string.ascii_lowercase, string.ascii_uppercase):
        if char in pool:
            return pool[(pool.index(char) + 1) % len(pool)]
    return "x"


@pytest.mark.parametrize("k", range(1, LINES + 1))
def test_changing_a_value_names_that_line(log20, k):
    path, lines = log20
    record = json.loads(lines[k - 1])
    edited = lines[k - 1].replace(b'"changed":%s' % json.dumps(record["changed"]).encode(),
                                  b'"changed":%s' % json.dumps(not record["changed"]).encode())
    assert edited != lines[k - 1]
    ok, line, reason = rewrite(path, lines[:k - 1] + [edited] + lines[k:])
    assert (ok, line) == (False, k) and "own sha256" in reason


def test_every_single_character_edit_names_its_line(log20):
    """Each byte of the first, a middle and the last line, every 7th byte of the others."""
    _path, lines = log20
    for k, raw in enumerate(lines, 1):
        step = 1 if k in (1, 10, LINES) else 7
        for at in range(0, len(raw) - 1, step):
            edited = raw[:at] + other(chr(raw[at])).encode() + raw[at + 1:]
            ok, line, reason = verify(io.BytesIO(b"".join(lines[:k - 1] + [edited] + lines[k:])))
            assert (ok, line) == (False, k), (k, at, edited, reason)


@pytest.mark.parametrize("k", range(1, LINES + 1))
def test_an_added_space_names_that_line(log20, k):
    path, lines = log20
    edited = lines[k - 1].replace(b'","', b'", "', 1)
    assert rewrite(path, lines[:k - 1] + [edited] + lines[k:]) == (False, k,
                                                                  "not in canonical form (the line was edited)")


@pytest.mark.parametrize("k", range(1, LINES))
def test_deleting_a_line_names_the_line_now_in_its_place(log20, k):
    path, lines = log20
    ok, line, reason = rewrite(path, lines[:k - 1] + lines[k:])
    assert (ok, line) == (False, k) and "seq is %d where %d was expected" % (k + 1, k) in reason


def test_deleting_the_last_line_needs_the_anchor(log20):
    path, lines = log20
    anchor = check(path).anchor
    assert anchor == "20:%s" % sha(lines[-1][:-1])
    assert rewrite(path, lines[:-1]) == (True, None, "19 lines, chain intact")  # a shorter log is a valid log
    ok, line, reason = verify(path, anchor=anchor)
    assert (ok, line) == (False, 20) and "removed from the end" in reason


def test_the_anchor_must_name_the_very_line(log20):
    path, lines = log20
    seq, digest = check(path).anchor.split(":")
    assert verify(path, anchor=(int(seq), digest)) == (True, None, "20 lines, chain intact")
    assert verify(path, anchor="5:%s" % sha(lines[4][:-1])) == (True, None, "20 lines, chain intact")
    assert verify(path, anchor="5:%s" % ("0" * 64)) == (False, 5, "seq 5 is not the line the anchor names")
    for bad in ("5", "x:%s" % digest, "5:abc"):
        with pytest.raises(ValueError, match="SEQ:SHA256"):
            verify(path, anchor=bad)


@pytest.mark.parametrize("k", range(1, LINES))
def test_swapping_two_lines_names_the_first(log20, k):
    path, lines = log20
    swapped = list(lines)
    swapped[k - 1], swapped[k] = swapped[k], swapped[k - 1]
    ok, line, reason = rewrite(path, swapped)
    assert (ok, line) == (False, k) and "seq is %d where %d was expected" % (k + 1, k) in reason


@pytest.mark.parametrize("k", range(1, LINES + 2))
@pytest.mark.parametrize("inserted", ["junk", "copy of line 10", "copy of the line before", "forged record"])
def test_inserting_a_line_names_it(log20, k, inserted):
    path, lines = log20
    if inserted == "junk":
        new = b"hello\n"
    elif inserted == "copy of line 10":
        new = lines[9] if k != 10 else lines[8]  # (before line 10 it would be a duplicate: see below)
    elif inserted == "copy of the line before":
        new = lines[k - 2] if k > 1 else lines[5]
    else:  # well-formed, own hash right, but not part of this chain
        record = dict(event="host_result", seq=k, ts="2025-01-14T09:31:00.000000Z", prev="f" * 64, changed=True)
        record["sha256"] = sha(canonical(record))
        new = canonical(record) + b"\n"
    ok, line, _reason = rewrite(path, lines[:k - 1] + [new] + lines[k - 1:])
    assert (ok, line) == (False, k), inserted


@pytest.mark.parametrize("k", range(1, LINES + 1))
def test_a_duplicated_line_names_the_second_copy(log20, k):
    path, lines = log20
    ok, line, reason = rewrite(path, lines[:k] + [lines[k - 1]] + lines[k:])
    assert (ok, line) == (False, k + 1) and "seq is %d where %d was expected" % (k, k + 1) in reason


@pytest.mark.parametrize("cut", [1, 2, 40, "half", "all but one byte"])
def test_truncating_the_last_line_names_it(log20, cut):
    path, lines = log20
    last = lines[-1]
    keep = {"half": len(last) // 2, "all but one byte": 1}.get(cut, len(last) - cut if isinstance(cut, int) else 0)
    ok, line, reason = rewrite(path, lines[:-1] + [last[:keep]])
    assert (ok, line) == (False, LINES)
    assert reason == "no newline at its end: its write was interrupted" if cut == 1 else "incomplete" in reason


# ---------------------------------------------------------------- an interrupted writer


def test_a_truncated_last_line_is_recovered_visibly_and_the_chain_goes_on(log20):
    path, lines = log20
    fragment = lines[-1][:50]
    path.write_bytes(b"".join(lines[:-1]) + fragment)
    with AuditLog(path) as log:
        assert log.seq == LINES - 1
        log.append("next_run", n=1)
    after = path.read_bytes().splitlines(keepends=True)
    assert after[LINES - 1] == fragment + b"\n"
    recovery, nxt = json.loads(after[LINES]), json.loads(after[LINES + 1])
    assert recovery["event"] == RECOVERED and recovery["fragments"] == [sha(fragment)]
    assert recovery["seq"] == LINES and recovery["prev"] == sha(lines[-2][:-1])
    assert nxt["seq"] == LINES + 1 and nxt["prev"] == sha(after[LINES][:-1])
    ok, line, reason = verify(path)
    assert (ok, line) == (False, LINES)
    assert "interrupted write, recovered at line %d where the chain resumes intact" % (LINES + 1) in reason
    assert "then" not in reason


def test_after_a_recovery_later_edits_are_still_reported(log20):
    path, lines = log20
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][:50])
    with AuditLog(path) as log:
        log.append("next_run", n=1)
        log.append("next_run", n=2)
    after = path.read_bytes().splitlines(keepends=True)
    after[-1] = after[-1].replace(b'"n":2', b'"n":3')
    ok, line, reason = rewrite(path, after)
    assert (ok, line) == (False, LINES) and reason.endswith("then line %d: content does not match its own sha256 "
                                                            "(the line was edited)" % (LINES + 3))


def test_a_recovery_record_that_does_not_match_its_fragment_is_not_one(log20):
    path, lines = log20
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][:50])
    with AuditLog(path) as log:
        log.append("next_run", n=1)
    after = path.read_bytes().splitlines(keepends=True)
    after[LINES - 1] = b"something else\n"
    ok, line, reason = rewrite(path, after)
    assert (ok, line) == (False, LINES) and reason.startswith("not valid JSON") and "recovered" not in reason


def test_a_last_line_without_its_newline_is_continued(log20):
    path, lines = log20
    path.write_bytes(b"".join(lines)[:-1])
    assert verify(path) == (False, LINES, "no newline at its end: its write was interrupted")
    with AuditLog(path) as log:
        log.append("next_run")
    assert verify(path) == (True, None, "21 lines, chain intact")


def test_a_log_that_a_writer_cut_twice_still_recovers(log20):
    path, lines = log20
    # killed once mid-line, then again after the newline that ends the fragment
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][:50] + b"\n" + b'{"event":"log_rec')
    with AuditLog(path) as log:
        log.append("next_run")
    recovery = json.loads(path.read_bytes().splitlines()[LINES + 1])
    assert recovery["fragments"] == [sha(lines[-1][:50]), sha(b'{"event":"log_rec')]
    ok, line, reason = verify(path)
    assert (ok, line) == (False, LINES) and "resumes intact" in reason and "then" not in reason


def test_a_file_that_is_not_an_audit_log_is_not_continued(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("".join("note %d\n" % n for n in range(10)))
    with pytest.raises(AuditError, match="not audit records"):
        AuditLog(path)
    ok, line, reason = verify(path)
    assert (ok, line) == (False, 1) and reason.startswith("not valid JSON")


def test_a_line_missing_a_chain_field_is_named(log20):
    path, lines = log20
    record = json.loads(lines[3])
    del record["ts"]
    ok, line, reason = rewrite(path, lines[:3] + [canonical(record) + b"\n"] + lines[4:])
    assert (ok, line, reason) == (False, 4, "field 'ts' is missing or not a str")


# ---------------------------------------------------------------- censor


def test_censor_keeps_everything_without_no_log():
    result = dict(changed=True, msg="hello", stdout="out")
    kept = censor(result, False)
    assert kept == result and kept is not result


def test_censor_keeps_only_status_keys_under_no_log():
    result = dict(changed=True, failed=False, skipped=False, unreachable=False, msg="S3cretValue",
                  invocation=dict(module_args=dict(password="S3cretValue")), _ansible_no_log=True, rc=0)
    assert censor(result, True) == dict(changed=True, failed=False, skipped=False, unreachable=False,
                                        censored=CENSORED)
    assert censor(dict(msg="S3cretValue"), True) == dict(censored=CENSORED)
    assert CENSORED == "the output has been hidden due to the fact that 'no_log: true' was specified for this result"


# --- issue 8 part 6, "Artifacts are trusted as input": the chain had no key, a killed run no anchor ---

def _rehash(lines):
    """Recompute sha256 and prev of every line, as anyone who can write the file could (no key)."""
    out, head = [], GENESIS
    for raw in lines:
        record = json.loads(raw)
        record["prev"] = head
        record["sha256"] = sha(canonical({k: v for k, v in record.items() if k not in ("sha256", "mac")}))
        out.append(canonical(record))
        head = sha(out[-1])
    return b"\n".join(out) + b"\n"


def test_artifacts_are_trusted_as_input_a_rehashed_forgery_fails_with_the_key(tmp_path):
    key = EvidenceKey("unit-tests-audit-key-not-a-secret")
    path = tmp_path / "audit.jsonl"
    with AuditLog(path, key=key) as log:
        for n in range(5):
            log.append("host_result", host="dgx-1", status="ok" if n != 2 else "failed")
    assert verify(path, key=key) == (True, None, "5 lines, chain intact, every mac valid (key %s)" % key.key_id)
    lines = path.read_bytes().splitlines()
    lines[2] = lines[2].replace(b'"status":"failed"', b'"status":"ok"')
    forged = tmp_path / "forged.jsonl"
    forged.write_bytes(_rehash(lines))
    assert verify(forged)[0] is True  # the finding: hashes alone prove nothing
    assert verify(forged, key=key) == (False, 3, "its mac does not match (the line was edited and its hashes "
                                                 "recomputed without the key)")
    stripped = tmp_path / "stripped.jsonl"  # the macs removed as well
    stripped.write_bytes(_rehash([canonical({k: v for k, v in json.loads(raw).items() if k not in ("mac", "key_id")})
                                  for raw in lines]))
    assert verify(stripped, key=key)[:2] == (False, 1)
    other = EvidenceKey("another-audit-key-not-a-secret")
    assert verify(path, key=other)[2] == "signed with key %s, but the key given is key %s" % (key.key_id, other.key_id)


def test_artifacts_are_trusted_as_input_a_killed_run_leaves_anchors_that_catch_a_cut_end(tmp_path):
    path, anchors = tmp_path / "audit.jsonl", tmp_path / "anchors.jsonl"
    key = EvidenceKey("unit-tests-audit-key-not-a-secret")
    log = AuditLog(path, key=key, anchors=anchors, anchor_every=3, anchor_seconds=3600)
    for n in range(7):
        log.append("host_result", n=n)
    # killed here: no close, no printed anchor; the heads of seq 3 and 6 were anchored as it ran
    entries = [json.loads(line) for line in anchors.read_text().splitlines()]
    assert [(e["trail"], e["seq"]) for e in entries] == [("audit.jsonl", 3), ("audit.jsonl", 6)]
    assert verify(path, key=key, anchors=anchors)[0] is True
    cut = tmp_path / "cut" / "audit.jsonl"
    cut.parent.mkdir()
    cut.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[:5]))
    ok, line, reason = verify(cut, key=key, anchors=anchors)
    assert (ok, line) == (False, 6) and "anchors seq 6: lines were removed from the end" in reason


def test_anchors_are_written_every_so_many_seconds(tmp_path):
    now = [0.0]
    log = AuditLog(tmp_path / "a.jsonl", anchors=tmp_path / "anchors.jsonl", anchor_every=1000, anchor_seconds=10,
                   monotonic=lambda: now[0])
    for n in range(4):
        now[0] += 6
        log.append("tick", n=n)
    assert [json.loads(x)["seq"] for x in (tmp_path / "anchors.jsonl").read_text().splitlines()] == [2, 4]
    log.close()  # nothing new since seq 4: no new anchor
    assert len((tmp_path / "anchors.jsonl").read_text().splitlines()) == 2


def test_a_forged_anchor_is_refused_with_the_key(tmp_path):
    key = EvidenceKey("unit-tests-audit-key-not-a-secret")
    path, anchors = tmp_path / "audit.jsonl", tmp_path / "anchors.jsonl"
    with AuditLog(path, key=key, anchors=anchors) as log:
        log.append("one")
    anchors.write_text(anchors.read_text().replace('"seq":1', '"seq":2'))
    with pytest.raises(ValueError, match="anchors.jsonl line 1: the hmac-sha256 signature"):
        verify(path, key=key, anchors=anchors)


def test_the_head_of_a_trail_being_written_is_its_last_complete_line_and_anchors_it(tmp_path):
    """What a job hands over (audit_trail_info): the head now, which check() later holds the trail to."""
    path = tmp_path / "trail.jsonl"
    lines = write_log(path)
    with AuditLog(path) as log:
        anchor = log.anchor
    assert head(path) == (LINES, anchor) == (LINES, "%d:%s" % (LINES, sha(lines[-1].rstrip(b"\n"))))
    with open(path, "ab") as stream:  # a line still being appended is not yet one
        stream.write(b'{"seq": 21, "ev')
    assert head(path) == (LINES, anchor)
    path.write_bytes(b"".join(lines))
    assert check(path, anchor).ok
    path.write_bytes(b"".join(lines[:-2]))  # lines removed from the end: the anchor no longer holds
    verdict = check(path, anchor)
    assert not verdict.ok and "anchor names seq %d" % LINES in verdict.reason
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    assert head(empty) == (0, None)
