# -*- coding: utf-8 -*-
"""Tamper-evident audit trail: a hash-chained JSON-lines log, its verifier and the recorder that
the ``audit_trail`` callback plugin drives. Standard library only, so ``scripts/audit-verify``
can load this file with a bare python3.

The log
=======
One JSON object per line, serialised canonically: ``json.dumps(record, sort_keys=True,
separators=(',', ':'))`` (ASCII, keys sorted, no spaces), ending in ``\\n``. Every record has

``event``   what happened (``playbook_start``, ``host_result``, ...);
``seq``     1 for the first line, then +1 per line;
``ts``      UTC time of writing, ISO-8601 with microseconds and ``Z``;
``prev``    SHA-256 (hex) of the previous line's exact bytes without its newline; 64 zeros on
            the first line;
``sha256``  SHA-256 (hex) of the record's own canonical serialisation *without* the ``sha256``
            key;

plus the event's own fields. Two hashes per line give two independent checks:

* ``sha256`` binds a line to its own content, so an edit of line k (a value, a key, a space) is
  named as line k itself — also when k is the last line, which no ``prev`` covers. A line whose
  bytes are not the canonical serialisation of what it parses to (an added space) is named too.
* ``prev`` binds each line to its predecessor, and ``seq`` counts, so a deleted, inserted, swapped
  or replaced line breaks the chain where it happens: the first line whose ``seq`` is not the
  previous one + 1, or whose ``prev`` is not the hash of the line before it.

``verify`` names the first line that fails any of: valid JSON object with the five fields,
``sha256`` matches the content, canonical bytes, ``seq`` = previous + 1, ``prev`` = hash of the
previous valid line, a final newline. What no chain can show on its own is the removal of whole
lines *from the end* (the shortened log is a valid log) or a consistent rewrite with recomputed
hashes. For that, keep the head — ``SEQ:HASH`` of the last line, which the callback prints at the
end of the run (so AWX keeps it in the job output) — and pass it as ``anchor``: verify then also
fails if the log does not contain that exact line.

Keyed logs and anchors
======================
With the evidence key (fleet_evidence, ``fleet_evidence_key``) each record also carries ``key_id``
and ``mac``, the HMAC-SHA256 of its canonical form without ``mac`` (so over ``prev`` and
``sha256``: the MACs chain). A consistent rewrite with recomputed hashes then fails at its first
line when verified with the key; no anchor is needed for that. For the end of the log, the writer
appends the head (``trail``, ``seq``, ``head``, signed) to ``anchors.jsonl`` beside the trail every
``anchor_every`` records or ``anchor_seconds``, and at close, each fsync'd: a killed run, which
prints no anchor, still leaves its last heads there, and verify(anchors=...) requires each of them.

Writing and interrupted writes
==============================
``AuditLog`` opens the file with ``O_APPEND`` and writes each line (with whatever prefix recovery
needs, below) in one ``os.write`` of an unbuffered descriptor followed by ``os.fsync``, under an
exclusive ``flock`` so that two runs sharing one file still chain correctly: a run killed at any
moment loses at most the line it was writing.

Opening an existing file continues its chain from its last line. If the file ends in a fragment
(an unterminated line, or lines that are not records, left by a killed writer), the next append
first terminates it and writes a ``log_recovered`` record whose ``fragments`` lists the SHA-256
of each such line, chained (``seq``, ``prev``) to the last valid record before them. The fragment
stays visible: verify reports it as the first bad line (``ok`` is False, the reason says the
chain resumes intact at the recovery record) and keeps checking the rest of the log.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import sys
import threading
import time

from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_evidence
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import Layout

GENESIS = '0' * 64
CHAIN_KEYS = ('event', 'seq', 'ts', 'prev', 'sha256')
MAC_KEYS = ('key_id', 'mac')  # a keyed log: the key's id and HMAC-SHA256 of the line (sha256 included)
ANCHORS = Layout.AUDIT_ANCHORS  # beside the trails: their heads, appended during the run
KEY_ENV = 'FLEET_EVIDENCE_KEY'  # the key for audit-verify (and the callback's fallback), never an argument
# Where the callback writes this run's trail, set in the controller's environment when it opens the
# trail, so that the run's tasks (forked after) can name it and its head (audit_trail_info).
TRAIL_ENV = 'FLEETWAVE_AUDIT_TRAIL'
STATUS_KEYS = ('changed', 'failed', 'skipped', 'unreachable')
CENSORED = "the output has been hidden due to the fact that 'no_log: true' was specified for this result"
RECOVERED = 'log_recovered'
MAX_FRAGMENTS = 3  # more non-record lines than this at the end: not an interrupted write, refuse
_CHUNK = 65536


class AuditError(Exception):
    """The log cannot be continued (its end is not an audit record) or an event is malformed."""


def canonical(record):
    """The bytes of one line (without its newline)."""
    return json.dumps(record, sort_keys=True, separators=(',', ':'), ensure_ascii=True,
                      allow_nan=False, default=str).encode('ascii')


def line_hash(body):
    return hashlib.sha256(body).hexdigest()


def utc_stamp(moment):
    """ISO-8601 UTC with microseconds and Z: 2025-01-14T09:30:00.000000Z."""
    return moment.astimezone(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')


def utc_now():
    return datetime.datetime.now(datetime.timezone.utc)


def censor(result, no_log):
    """What may be kept of a task result: all of it, or with no_log only its status and a notice."""
    if not no_log:
        return dict(result)
    kept = {key: result[key] for key in STATUS_KEYS if key in result}
    kept['censored'] = CENSORED
    return kept


def _parse(body):
    """The record a line holds, or None when it is not one (not JSON, not an object, chain fields
    missing or mistyped); second value: why not."""
    try:
        record = json.loads(body.decode('utf-8'))
    except ValueError as exc:  # UnicodeDecodeError is a ValueError
        return None, 'not valid JSON (%s)' % exc
    if not isinstance(record, dict):
        return None, 'not a JSON object'
    for key, kind in (('event', str), ('seq', int), ('ts', str), ('prev', str), ('sha256', str)):
        if not isinstance(record.get(key), kind) or isinstance(record.get(key), bool):
            return None, 'field %r is missing or not a %s' % (key, kind.__name__)
    return record, None


def _content_hash(record):
    return line_hash(canonical({k: v for k, v in record.items() if k not in ('sha256', 'mac')}))


def _mac_body(record):
    return canonical({k: v for k, v in record.items() if k != 'mac'})


# ================================================================================ writing

class AuditLog:
    """Appends hash-chained records to ``path`` (created with its folders, mode 0640).

    key (fleet_evidence.EvidenceKey): each line also carries its HMAC, so that a rewrite with every
    hash recomputed no longer verifies. anchors: a file outside the trail where the head
    (SEQ:HASH) is appended every anchor_every records or anchor_seconds, and at close, so that a run
    killed before its end still leaves heads to check the trail's end against."""

    def __init__(self, path, clock=utc_now, key=None, anchors=None, anchor_every=100, anchor_seconds=30.0,
                 monotonic=time.monotonic):
        self.path = os.fspath(path)
        self._clock = clock
        self.key, self.anchors = key, (os.fspath(anchors) if anchors else None)
        self._anchor_every, self._anchor_seconds, self._monotonic = anchor_every, anchor_seconds, monotonic
        self._anchored_seq, self._anchored_at = 0, monotonic()
        self._lock = threading.Lock()
        folder = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(folder, exist_ok=True)
        created = not os.path.exists(self.path)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            if created:  # make the new directory entry durable too
                dir_fd = os.open(folder, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            with self._flocked():
                self._load()
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise

    # The state of the chain: seq and hash of the last record, what precedes the next line.
    seq = 0
    head = GENESIS
    _size = 0
    _fragments = ()
    _unterminated = False

    @property
    def anchor(self):
        """``SEQ:HASH`` of the last line written, to keep apart from the log (see verify)."""
        return '%d:%s' % (self.seq, self.head)

    @contextlib.contextmanager
    def _flocked(self):
        """Exclusive use of the file among processes (another run appending to the same log)."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _lines_backwards(self, size):
        """(body, terminated) of each line from the end of the file, reading blocks backwards.

        Each block is read and searched once and a line's pieces are joined once, so a line of L
        bytes costs O(L): prepending every block to one buffer and searching it again (as this did)
        made reopening a log whose last line is 100 MB take about a minute."""
        pos, pieces, last = size, [], True  # pieces: the current line's blocks, last one first
        while pos > 0:
            step = min(_CHUNK, pos)
            pos -= step
            block = os.pread(self._fd, step, pos)
            end = len(block)
            cut = block.rfind(b'\n', 0, end)
            while cut >= 0:
                body = block[cut + 1:end] + b''.join(reversed(pieces))
                pieces, end = [], cut
                if last:
                    last = False
                    if body:  # bytes after the final newline: an unterminated line
                        yield body, False
                else:
                    yield body, True
                cut = block.rfind(b'\n', 0, end)
            pieces.append(block[:end])
        if size:  # what precedes the first newline: the first line
            yield b''.join(reversed(pieces)), not last

    def _load(self):
        """Read where the chain stands from the end of the file (under the lock)."""
        size = os.fstat(self._fd).st_size
        seq, head, fragments, unterminated = 0, GENESIS, [], False
        for index, (body, terminated) in enumerate(self._lines_backwards(size)):
            if index == 0:
                unterminated = not terminated
            record, _why = _parse(body)
            if record is not None:
                seq, head = record['seq'], line_hash(body)
                break
            fragments.insert(0, line_hash(body))
            if len(fragments) > MAX_FRAGMENTS:
                raise AuditError('%s: will not continue this log: its last %d lines are not audit records '
                                 '(not an audit log, or edited); check it with scripts/audit-verify or '
                                 'choose another path' % (self.path, len(fragments)))
        self.seq, self.head, self._size = seq, head, size
        self._fragments, self._unterminated = tuple(fragments), unterminated

    def _record(self, event, fields, seq, head):
        """The record following (seq, head) and its line (without newline)."""
        record = json.loads(canonical(dict(fields)))  # plain JSON types, as verify will read them
        clash = sorted(set(record) & set(CHAIN_KEYS + MAC_KEYS))
        if clash:
            raise AuditError('event fields may not use the chain keys %s' % ', '.join(clash))
        record.update(event=event, seq=seq + 1, ts=utc_stamp(self._clock()), prev=head)
        if self.key is not None:
            record['key_id'] = self.key.key_id
        record['sha256'] = line_hash(canonical(record))
        if self.key is not None:
            record['mac'] = self.key.sign(_mac_body(record))
        return record, canonical(record)

    def append(self, event, **fields):
        """Write one record and fsync it; returns the record as written."""
        if self._fd is None:
            raise AuditError('%s: the log is closed' % self.path)
        with self._lock, self._flocked():
            if os.fstat(self._fd).st_size != self._size:  # another writer, a truncation, a failed write
                self._load()
            seq, head = self.seq, self.head
            data = b'\n' if self._unterminated else b''
            if self._fragments:
                recovery, body = self._record(RECOVERED, dict(fragments=list(self._fragments)), seq, head)
                data += body + b'\n'
                seq, head = recovery['seq'], line_hash(body)
            record, body = self._record(event, fields, seq, head)
            data += body + b'\n'
            written = os.write(self._fd, data)
            while written < len(data):  # a short write (e.g. a signal): finish the same line
                written += os.write(self._fd, data[written:])
            os.fsync(self._fd)
            self.seq, self.head = record['seq'], line_hash(body)
            self._size += len(data)
            self._fragments, self._unterminated = (), False
            if self.anchors and (self.seq - self._anchored_seq >= self._anchor_every
                                 or self._monotonic() - self._anchored_at >= self._anchor_seconds):
                self.anchor_now()
            return record

    def anchor_now(self):
        """Append the head to the anchors file (fsync'd, under its own lock): the trail must still
        hold that line later, whatever happens to the run."""
        if not self.anchors or self.seq == 0:
            return None
        entry = fleet_evidence.seal(self.key, dict(trail=os.path.basename(self.path), seq=self.seq, head=self.head,
                                                   ts=utc_stamp(self._clock())))
        fd = os.open(self.anchors, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, canonical(entry) + b'\n')
            os.fsync(fd)
        finally:
            os.close(fd)
        self._anchored_seq, self._anchored_at = self.seq, self._monotonic()
        return entry

    def close(self):
        if self._fd is not None:
            if self.anchors and self.seq != self._anchored_seq:
                try:
                    self.anchor_now()
                finally:
                    os.close(self._fd)
                    self._fd = None
                return
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ================================================================================ verifying

class Verdict:
    """What verify found: ok, first_bad_line (1-based), reason, lines read, and the head anchor."""

    def __init__(self, ok, first_bad_line, reason, lines=0, anchor=None):
        self.ok, self.first_bad_line, self.reason, self.lines, self.anchor = ok, first_bad_line, reason, lines, anchor

    def __iter__(self):
        return iter((self.ok, self.first_bad_line, self.reason))

    def __repr__(self):
        return 'Verdict(%r, %r, %r, lines=%r)' % (self.ok, self.first_bad_line, self.reason, self.lines)


def _check_record(record, body, seq, head):
    """Why a parsed line does not continue the chain after (seq, head), or None."""
    if _content_hash(record) != record['sha256']:
        return 'content does not match its own sha256 (the line was edited)'
    if canonical(record) != body:
        return 'not in canonical form (the line was edited)'
    if record['seq'] != seq + 1:
        return 'seq is %d where %d was expected (a line was deleted, inserted or moved)' % (record['seq'], seq + 1)
    if record['prev'] != head:
        return 'prev is not the hash of the line before (that line was replaced, or lines were moved)'
    return None


def _check_mac(record, key):
    """Why a record does not carry a valid HMAC of key, or None."""
    if 'mac' not in record:
        return 'not signed (no mac): written without the evidence key, or rewritten without it'
    if record.get('key_id') != key.key_id:
        return 'signed with key %s, but the key given is key %s' % (record.get('key_id'), key.key_id)
    if not key.matches(_mac_body(record), record['mac']):
        return ('its mac does not match (the line was edited and its hashes recomputed without the key)')
    return None


def read_anchors(anchors, trail, key=None):
    """{seq: head} of the anchors file's entries for the trail named trail (its file name); with a
    key each entry must verify. ValueError names the anchors file's line that does not."""
    heads = {}
    try:
        with open(anchors, 'rb') as stream:
            lines = stream.read().split(b'\n')
    except FileNotFoundError:
        return heads
    for number, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            entry = json.loads(raw.decode('utf-8'))
        except ValueError:
            if number == len(lines):  # torn by a killed writer: it anchors nothing
                continue
            raise ValueError('%s line %d: not valid JSON' % (anchors, number))
        if not isinstance(entry, dict) or entry.get('trail') != os.path.basename(trail):
            continue
        if key is not None:
            try:
                fleet_evidence.verify(key, entry, '%s line %d' % (anchors, number))
            except fleet_evidence.EvidenceError as exc:
                raise ValueError(str(exc))
        if heads.get(entry.get('seq'), entry.get('head')) != entry.get('head'):
            raise ValueError('%s line %d: anchors seq %s twice with different heads' % (anchors, number, entry.get('seq')))
        heads[entry.get('seq')] = entry.get('head')
    return heads


def _parse_anchor(anchor):
    if isinstance(anchor, (tuple, list)):
        seq, digest = anchor
    else:
        seq, _sep, digest = str(anchor).partition(':')
    try:
        seq = int(seq)
    except ValueError:
        raise ValueError('anchor must be SEQ:SHA256, got %r' % (anchor,))
    if len(digest) != 64:
        raise ValueError('anchor must be SEQ:SHA256, got %r' % (anchor,))
    return seq, digest.lower()


def check(path, anchor=None, key=None, anchors=None):
    """Recompute the chain of ``path`` (or of an open binary file); a Verdict naming the first bad
    line, if any.

    anchor: ``SEQ:HASH`` (or a tuple) of a line known to have been written; the log must still
    contain exactly that line, which catches lines removed from the end.
    key: the evidence key; every line must then carry its valid HMAC, so a rewrite with recomputed
    hashes is caught without any anchor.
    anchors: the anchors file written during the run (ANCHORS beside the trail): each head it
    holds for this trail must still be in it (ValueError when that file itself does not verify).
    """
    anchor = _parse_anchor(anchor) if anchor is not None else None
    heads = read_anchors(anchors, path, key) if anchors else {}
    seq, head = 0, GENESIS
    first = None  # (line, reason) of a recovered fragment: reported, but the checking goes on
    pending = []  # (line, hash, why) of non-record lines since the last record
    anchored = None
    number = 0
    with (open(path, 'rb') if isinstance(path, (str, bytes, os.PathLike)) else contextlib.nullcontext(path)) as stream:
        for number, raw in enumerate(stream, 1):
            terminated = raw.endswith(b'\n')
            body = raw[:-1] if terminated else raw
            record, why = _parse(body)
            if record is None:
                if not terminated:
                    why = 'incomplete (no newline: the writer was interrupted), ' + why
                pending.append((number, line_hash(body), why))
                if len(pending) > MAX_FRAGMENTS:
                    break
                continue
            problem = _check_record(record, body, seq, head)
            if problem is None and key is not None:
                problem = _check_mac(record, key)
            if problem is None and heads.get(record['seq'], line_hash(body)) != line_hash(body):
                problem = 'not the line anchored as seq %d in %s (the line was replaced)' % (record['seq'], anchors)
            if pending:
                recovers = (problem is None and record['event'] == RECOVERED
                            and record.get('fragments') == [digest for _n, digest, _w in pending])
                if not recovers:
                    return _bad(first, pending[0][0], pending[0][2], number)
                if first is None:
                    first = (pending[0][0], '%s: the fragment of an interrupted write, recovered at line %d '
                             'where the chain resumes intact' % (pending[0][2], number))
                pending = []
            if problem is not None:
                return _bad(first, number, problem, number)
            if not terminated:
                return _bad(first, number, 'no newline at its end: its write was interrupted', number)
            seq, head = record['seq'], line_hash(body)
            if anchor is not None and seq == anchor[0]:
                anchored = (number, head)
    if pending:
        return _bad(first, pending[0][0], pending[0][2], number)
    if first is not None:
        return Verdict(False, first[0], first[1], number, '%d:%s' % (seq, head))
    if heads and max(heads) > seq:
        return Verdict(False, number + 1, 'the log ends at seq %d (line %d) but %s anchors seq %d: lines were '
                       'removed from the end' % (seq, number, anchors, max(heads)), number, '%d:%s' % (seq, head))
    if anchor is not None:
        if anchored is None:
            return Verdict(False, number + 1, 'the log ends at seq %d (line %d) but the anchor names seq %d: lines '
                           'were removed from the end' % (seq, number, anchor[0]), number, '%d:%s' % (seq, head))
        if anchored[1] != anchor[1]:
            return Verdict(False, anchored[0], 'seq %d is not the line the anchor names' % anchor[0], number,
                           '%d:%s' % (seq, head))
    proven = (', every mac valid (key %s)' % key.key_id if key is not None else '') + (
        ', %d anchors hold' % len(heads) if heads else '')
    return Verdict(True, None, '%d lines, chain intact%s' % (number, proven), number, '%d:%s' % (seq, head))


def _bad(first, line, reason, lines):
    """The verdict for a problem at line; after a recovered fragment, that fragment comes first."""
    if first is not None:
        return Verdict(False, first[0], '%s; then line %d: %s' % (first[1], line, reason), lines)
    return Verdict(False, line, reason, lines)


def verify(path, anchor=None, key=None, anchors=None):
    """(ok, first_bad_line, reason) for the log at ``path``; see check()."""
    return tuple(check(path, anchor, key, anchors))


def head(path):
    """(lines, ``SEQ:HASH``) of the last complete record of a trail being written (a line still being
    appended is not yet one), or (0, None) before the first. Reads only; the chain is check()'s."""
    with open(path, 'rb') as stream:
        lines = stream.read().split(b'\n')[:-1]  # the piece after the last newline is incomplete
    for body in reversed(lines):
        record, _why = _parse(body)
        if record is not None:
            return len(lines), '%d:%s' % (record['seq'], line_hash(body))
    return len(lines), None


# ================================================================================ recording

class AuditRecorder:
    """Turns what happens in a playbook run into audit events, from plain values only.

    The callback plugin maps Ansible's hooks onto these methods; tests call them directly. It
    never receives module arguments, and of a task result it keeps the status, ``changed``,
    ``msg`` (truncated to ``max_msg_chars``; 0 keeps none) and the loop item's label — or, under
    no_log, only the censored form.

    clock: monotonic seconds, for each result's duration since its task started.
    """

    def __init__(self, log, clock=time.monotonic, max_msg_chars=2000):
        self.log = log
        self._clock = clock
        self.max_msg_chars = max(0, int(max_msg_chars))
        self._started = None
        self._tasks = {}  # task id -> clock at its (latest) start

    def _text(self, value):
        """A message or label as bounded text, or None when messages are not kept."""
        if value is None or value == '' or not self.max_msg_chars:
            return None, None
        if isinstance(value, str):
            text = value
        else:
            try:
                text = json.dumps(value, sort_keys=True, default=str)
            except (TypeError, ValueError):  # keys that do not sort together
                text = str(value)
        if len(text) <= self.max_msg_chars:
            return text, None
        return text[:self.max_msg_chars], len(text)

    def playbook_start(self, playbook, run_id, user, check_mode, limit, extra_vars=()):
        """extra_vars: their names (a mapping's keys are taken, never its values)."""
        if self._started is None:
            self._started = self._clock()
        return self.log.append('playbook_start', playbook=playbook, run_id=run_id, user=user,
                               check_mode=bool(check_mode), limit=limit,
                               extra_vars=sorted(str(name) for name in extra_vars))

    def play_start(self, name, hosts, serial=None):
        return self.log.append('play_start', name=name, hosts=hosts, serial=serial)

    def task_start(self, task_id, name, action, role=None, path=None, handler=False):
        self._tasks[task_id] = self._clock()
        return self.log.append('handler_start' if handler else 'task_start', name=name, action=action,
                               role=role, path=path)

    def host_result(self, task_id, host, status, result, task=None, action=None, no_log=False,
                    ignored=False, item=False):
        """status: ok, failed, skipped or unreachable as the hook said; ok becomes changed when the
        result says so. item: this is one loop item's result."""
        no_log = bool(no_log) or bool(result.get('_ansible_no_log'))
        kept = censor(result, no_log)
        changed = bool(kept.get('changed'))
        if status == 'ok' and changed:
            status = 'changed'
        started = self._tasks.get(task_id)
        event = dict(host=host, task=task, action=action, status=status, changed=changed,
                     duration_ms=None if started is None else int(round((self._clock() - started) * 1000)))
        if ignored:
            event['ignored'] = True
        if no_log:
            event['censored'] = kept['censored']
        else:
            msg, full = self._text(kept.get('msg'))
            if msg is not None:
                event['msg'] = msg
            if full is not None:
                event['msg_chars'] = full  # the length before truncation
            if item:
                event['item'] = self._text(kept.get('_ansible_item_label', kept.get('item')))[0]
            elif isinstance(kept.get('results'), list):
                event['items'] = len(kept['results'])
        if item:
            event['loop_item'] = True
        return self.log.append('host_result', **event)

    def stats(self, hosts):
        """hosts: {host: {ok, changed, failures, unreachable, skipped, ...}}."""
        return self.log.append('stats', hosts={h: dict(counts) for h, counts in sorted(hosts.items())})

    def playbook_end(self, hosts=None, aborted=False):
        """hosts: the stats, for the outcome (failed when a host failed or was unreachable); aborted:
        the run ended without stats (an error stopped it, or it was interrupted)."""
        failed = sorted(h for h, c in (hosts or {}).items() if c.get('failures') or c.get('unreachable'))
        duration = None if self._started is None else int(round((self._clock() - self._started) * 1000))
        outcome = 'aborted' if aborted else 'failed' if failed else 'ok'
        return self.log.append('playbook_end', outcome=outcome, failed_hosts=failed, duration_ms=duration)


# --- scripts/audit-verify ---------------------------------------------------------------------------

AUDIT_VERIFY_USAGE = """Check audit trails written by the audit_trail callback: scripts/audit-verify [--key-file KEYFILE] [--anchor SEQ:SHA256] FILE...

Prints, per file, `FILE: OK (N lines, chain intact...)` or `FILE: BROKEN at line K: reason`, and exits 1
if any file is broken or unreadable (2 on a usage error). The evidence key (fleet_evidence_key) comes
from --key-file (a file holding it) or the environment variable FLEET_EVIDENCE_KEY, never the command
line; with it every line's HMAC is checked, so a rewrite with recomputed hashes is named at its first
line. The heads anchored during the run in anchors.jsonl beside each FILE are checked too (lines cut
from the end). --anchor is the `SEQ:SHA256` the callback printed at the end of the run: the file must
still hold that exact line (give it with a single FILE). Needs only python3 and its standard library."""


def main(argv):
    parser = argparse.ArgumentParser(prog='audit-verify', description=AUDIT_VERIFY_USAGE.splitlines()[0])
    parser.add_argument('--anchor', metavar='SEQ:SHA256', help='head of the log as printed at the end of the run')
    parser.add_argument('--key-file', metavar='KEYFILE', help='a file holding the evidence key (else $%s)' % KEY_ENV)
    parser.add_argument('files', metavar='FILE', nargs='+')
    args = parser.parse_args(argv)
    if args.anchor and len(args.files) != 1:
        parser.error('--anchor applies to a single FILE')
    try:
        if args.key_file:
            with open(args.key_file, encoding='utf-8') as handle:
                key = fleet_evidence.key_from(handle.read().strip())
        else:
            key = fleet_evidence.key_from(os.environ.get(KEY_ENV))
    except OSError as exc:
        parser.error('--key-file %s: %s' % (args.key_file, exc.strerror or exc))
    except fleet_evidence.EvidenceError as exc:  # names the variable, never the value
        parser.error(str(exc))
    if key is None:
        print('audit-verify: no evidence key (--key-file or $%s): hashes only, a rewrite with recomputed hashes '
              'is not caught' % KEY_ENV, file=sys.stderr)
    broken = False
    for path in args.files:
        anchors = Layout.audit_anchors(os.path.abspath(path))
        try:
            verdict = check(path, anchor=args.anchor, key=key, anchors=anchors)
        except ValueError as exc:  # a malformed --anchor, or an anchors file that does not verify
            if args.anchor and 'anchor must be' in str(exc):
                parser.error(str(exc))
            print('%s: BROKEN anchors: %s' % (path, exc))
            broken = True
            continue
        except OSError as exc:
            print('%s: UNREADABLE: %s' % (path, exc.strerror or exc))
            broken = True
            continue
        if verdict.ok:
            print('%s: OK (%s)' % (path, verdict.reason))
        else:
            print('%s: BROKEN at line %d: %s' % (path, verdict.first_bad_line, verdict.reason))
            broken = True
    return 1 if broken else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
