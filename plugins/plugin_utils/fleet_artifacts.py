# -*- coding: utf-8 -*-
# Every artifact (checkpoints, decisions, reports, the run journal) is written through
# ArtifactStore, so that writes are atomic everywhere and a durable backend can replace the local
# directory later. Layout is the one place where an artifact's path is spelled; utc() the one
# clock format.

from __future__ import annotations

import contextlib
import datetime
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time

from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_evidence

MANIFEST = 'MANIFEST.sha256'
MANIFEST_MAC = MANIFEST + '.hmac'  # the manifest's keyed signature (fleet_evidence.sidecar)

# The one rule for a name that becomes a folder of the store (a wave, a checkpoint label, a phase):
# matched with fullmatch (`$` would accept a trailing newline); it cannot start with '.' nor hold
# '/', so no name climbs out of its parent.
FOLDER_NAME_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9+._-]*')
FOLDER_NAME_RULE = 'a letter or digit, then letters, digits, +, ., _ or - (%s)' % FOLDER_NAME_RE.pattern
# Names that already mean something where such a folder sits: the store's top folders and the
# files and folders beside the checkpoint folders (a wave named 'audit' could otherwise be
# mistaken for the audit trails, a label named 'history' for the archive of earlier runs).
RESERVED_NAMES = frozenset({'audit', 'checkpoints', 'runs', 'rollbacks', 'history', 'monitor',
                            'decision.json', 'report.md', MANIFEST, MANIFEST_MAC})


def utc(epoch=None):
    """The one timestamp format of every artifact: UTC, ISO 8601, milliseconds, 'Z'."""
    moment = datetime.datetime.fromtimestamp(time.time() if epoch is None else float(epoch), datetime.timezone.utc)
    return moment.strftime('%Y-%m-%dT%H:%M:%S.') + '%03dZ' % (moment.microsecond // 1000)


def epoch_of(stamp):
    """The epoch of a utc() stamp, or None when it is not one."""
    try:
        moment = datetime.datetime.strptime(stamp, '%Y-%m-%dT%H:%M:%S.%fZ')
    except (TypeError, ValueError):
        return None
    return moment.replace(tzinfo=datetime.timezone.utc).timestamp()


def file_digest(path):
    """(size in bytes, SHA-256 hex) of the file at path, read in blocks (evidence files can be large)."""
    digest, size = hashlib.sha256(), 0
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
            size += len(block)
    return size, digest.hexdigest()


def name_problem(var, value):
    """Why value cannot name a folder of the store, as '<var>: <value> ...<allowed>', or None."""
    if not isinstance(value, str) or not FOLDER_NAME_RE.fullmatch(value):
        return '%s: %r is not usable as a folder name (allowed: %s)' % (var, value, FOLDER_NAME_RULE)
    if value in RESERVED_NAMES:
        return '%s: %r is reserved (it names a file or folder of the artifact store; reserved: %s)' % (
            var, value, ', '.join(sorted(RESERVED_NAMES)))
    return None


def checked_name(var, value):
    """value, or ArtifactError naming var and the allowed pattern."""
    problem = name_problem(var, value)
    if problem:
        raise ArtifactError(problem)
    return value


class Layout:
    """Where each artifact lives, relative to the store's root (fleet_artifacts_dir). Every wave
    and label is checked here (checked_name), whichever caller it comes from."""

    @staticmethod
    def wave_dir(wave):
        return os.path.join('checkpoints', checked_name('wave', wave))

    @staticmethod
    def round_dir(wave, label, monitoring=False):
        """A checkpoint's folder, or a monitoring round's (under monitor/)."""
        return os.path.join(Layout.wave_dir(wave), *(('monitor',) if monitoring else ()), checked_name('label', label))

    @staticmethod
    def history_dir(wave, run_id, label, monitoring=False):
        """Where a round's folder left by an earlier run is moved before it is rewritten."""
        return os.path.join(Layout.wave_dir(wave), 'history', checked_name('run_id', str(run_id)),
                            *(('monitor',) if monitoring else ()), checked_name('label', label))

    @staticmethod
    def wave_decision(wave):
        return os.path.join(Layout.wave_dir(wave), 'decision.json')

    @staticmethod
    def wave_report(wave):
        return os.path.join(Layout.wave_dir(wave), 'report.md')

    # The audit trails (plugins/callback/audit_trail.py) live under the working directory's
    # artifacts/audit/, with the heads anchored during each run in this file beside them.
    AUDIT_DIR = 'audit'
    AUDIT_ANCHORS = 'anchors.jsonl'

    @staticmethod
    def audit_trail(stem, stamp):
        return os.path.join(Layout.AUDIT_DIR, '%s-%s.jsonl' % (stem, stamp))

    @staticmethod
    def audit_anchors(trail):
        """The anchors file of a trail: beside it, outside the trail itself."""
        return os.path.join(os.path.dirname(trail), Layout.AUDIT_ANCHORS)

    # A folder of evidence (the readiness run's) lists every file it holds, with size and SHA-256,
    # in this file at its top (fleet_attest.write_index); the authorization certificate signs it.
    EVIDENCE_INDEX = 'evidence-index.json'
    # The readiness run's evidence folder (the certificate's subjects are relative to it), with the
    # executive summary and the technical report rendered from what was collected; the certificate and
    # the trusted public keys it was checked with sit beside the folder, in the run's.
    READINESS_EVIDENCE = 'evidence'
    EVIDENCE_SUMMARY = 'summary.md'
    EVIDENCE_REPORT = 'technical-report.md'
    CERTIFICATE = 'certificate.json'
    TRUSTED_KEYS = 'trusted-keys.json'
    # The readiness run's data-integrity ledger of a failure mode (fleet_ledger), in that mode's folder
    # of the failure-modes area's (the playbook writes the traffic's observations beside it).
    FAILURE_MODES_DIR = 'failure-modes'
    LEDGER = 'ledger.json'

    @staticmethod
    def failure_ledger(folder, mode):
        return os.path.join(folder, checked_name('failure mode', mode), Layout.LEDGER)

    # The production-readiness run (issue 10) writes under artifacts/readiness/<run>/: one folder per
    # area, and at the top the status record with its two pages (fleet_status) and the `complete`
    # markers: an area's in its folder, a phase's and the run's beside the status record.
    READINESS_DIR = 'readiness'
    STATUS_RECORD = 'status.json'
    STATUS_HTML = 'status.html'
    STATUS_MARKDOWN = 'status.md'
    COMPLETE_MARKER = 'complete'

    @staticmethod
    def readiness_run(run):
        return os.path.join(Layout.READINESS_DIR, checked_name('readiness run', run))

    @staticmethod
    def area_marker(area):
        """An area's completion marker, relative to the readiness run's folder."""
        return os.path.join(checked_name('area', area), Layout.COMPLETE_MARKER)

    @staticmethod
    def phase_marker(phase):
        """A phase's completion marker (phase: its number), relative to the readiness run's folder."""
        return '%s-phase-%d' % (Layout.COMPLETE_MARKER, int(phase))

    @staticmethod
    def run_dir(run_id):
        return os.path.join('runs', run_id)

    @staticmethod
    def journal(run_id):
        return os.path.join('runs', run_id, 'journal.jsonl')

    @staticmethod
    def status(run_id=None):
        """Where a run stands (fleet_journal.run_status), rewritten with every journal record; without a
        run id, the latest run's."""
        return os.path.join('runs', run_id, 'status.json') if run_id else 'status.json'

    @staticmethod
    def checklist(run_id):
        return os.path.join('runs', run_id, 'checklist.md')

    @staticmethod
    def rollback_record(run_id):
        """A rollback run's record (playbooks/rollback.yml); automatic rollbacks write theirs in
        the round's folder (round_rollback)."""
        return os.path.join('rollbacks', '%s.json' % run_id)

    @staticmethod
    def round_rollback(wave, label, monitoring=False):
        return os.path.join(Layout.round_dir(wave, label, monitoring), 'rollback.json')

    @staticmethod
    def round_approval(wave, label, monitoring=False):
        return os.path.join(Layout.round_dir(wave, label, monitoring), 'approval.json')


class ArtifactError(Exception):
    pass


class ArtifactStore:
    """A local directory. Writes go to a temp file in the target folder, are fsync'ed and
    renamed into place: a killed run leaves either the old file or the new one, never half."""

    def __init__(self, root):
        self.root = os.path.abspath(root)

    def path(self, *parts):
        full = os.path.abspath(os.path.join(self.root, *parts))
        if os.path.commonpath([full, self.root]) != self.root:
            raise ArtifactError('%s is outside the artifact store %s' % (full, self.root))
        return full

    def write_bytes(self, relpath, data):
        dest = self.path(relpath)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.%s.' % os.path.basename(dest), dir=os.path.dirname(dest))
        try:
            with os.fdopen(fd, 'wb') as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, dest)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return dest

    def write_text(self, relpath, text):
        return self.write_bytes(relpath, text.encode('utf-8'))

    def write_json(self, relpath, obj):
        return self.write_text(relpath, json.dumps(obj, indent=2, sort_keys=True, default=str) + '\n')

    def read_json(self, relpath):
        """The parsed file, or None when it does not exist; a malformed file is an error naming it."""
        full = self.path(relpath)
        try:
            with open(full, 'rb') as handle:
                return json.loads(handle.read().decode('utf-8'))
        except FileNotFoundError:
            return None
        except (ValueError, UnicodeDecodeError) as exc:
            raise ArtifactError('%s is not valid JSON: %s' % (full, exc))

    @contextlib.contextmanager
    def locked(self, relpath):
        """An exclusive lock beside relpath (relpath.lock), for read-modify-write and appends
        by writers that may meet (two plays, two operators)."""
        lock = self.path(relpath) + '.lock'
        os.makedirs(os.path.dirname(lock), exist_ok=True)
        with open(lock, 'a', encoding='utf-8') as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def append_jsonl(self, relpath, record, lock=True):
        """Append one JSON object as one line, fsync'ed, under the lock (lock=False: the caller
        holds it): a killed run loses at most the line being written, which read_jsonl skips."""
        dest = self.path(relpath)
        line = (json.dumps(record, sort_keys=True, default=str) + '\n').encode('utf-8')
        with self.locked(relpath) if lock else contextlib.nullcontext():
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, 'ab') as handle:
                if handle.tell() and not self._ends_with_newline(dest):
                    handle.write(b'\n')  # a torn line from a killed writer stays on its own
                handle.write(line)
                handle.flush()
                os.fsync(handle.fileno())
        return dest

    @staticmethod
    def _ends_with_newline(full):
        with open(full, 'rb') as handle:
            handle.seek(-1, os.SEEK_END)
            return handle.read(1) == b'\n'

    def read_jsonl(self, relpath):
        """The objects of a JSON-lines file ([] when it does not exist). A line torn by a killed
        writer (cut short, so not closed by '}') is skipped; any other line that does not parse
        is an error naming file and line."""
        full = self.path(relpath)
        try:
            with open(full, 'rb') as handle:
                lines = handle.read().split(b'\n')
        except FileNotFoundError:
            return []
        records = []
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                records.append(json.loads(raw.decode('utf-8')))
            except (ValueError, UnicodeDecodeError) as exc:
                if not raw.rstrip().endswith(b'}'):
                    continue
                raise ArtifactError('%s: line %d is not valid JSON: %s' % (full, number, exc))
        return records

    def archive(self, reldir, into):
        """Move an existing folder aside (never delete evidence) before it is rewritten."""
        src = self.path(reldir)
        if not os.path.isdir(src):
            return None
        dest = self.path(into)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if os.path.exists(dest):
            dest = '%s.%d' % (dest, len(os.listdir(os.path.dirname(dest))))
        shutil.move(src, dest)
        return dest

    def write_manifest(self, reldir, key=None):
        """SHA-256 of every file in the folder (sha256sum format, so `sha256sum -c` checks it), and
        with a key its signature beside it (MANIFEST_MAC): without it anyone who can write the
        folder could edit a file and recompute the manifest."""
        folder = self.path(reldir)
        lines = []
        for name in sorted(os.listdir(folder)):
            full = os.path.join(folder, name)
            if name in (MANIFEST, MANIFEST_MAC) or name.startswith('.') or not os.path.isfile(full):
                continue
            lines.append('%s  %s\n' % (file_digest(full)[1], name))
        data = ''.join(lines).encode('utf-8')
        if key is not None:
            self.write_text(os.path.join(reldir, MANIFEST_MAC), fleet_evidence.sidecar(key, data))
        elif os.path.exists(os.path.join(folder, MANIFEST_MAC)):
            os.unlink(os.path.join(folder, MANIFEST_MAC))  # a stale signature would name the old manifest
        return self.write_bytes(os.path.join(reldir, MANIFEST), data)

    def verify_manifest(self, reldir, key):
        """Raise EvidenceError unless the folder's manifest is signed with key and every file it
        lists has its hash; names the file and what failed."""
        where = os.path.join(self.path(reldir), MANIFEST)
        try:
            with open(self.path(reldir, MANIFEST), 'rb') as handle:
                data = handle.read()
            with open(self.path(reldir, MANIFEST_MAC), encoding='utf-8') as handle:
                signature = handle.read()
        except FileNotFoundError as exc:
            raise fleet_evidence.EvidenceError('%s: missing (%s)' % (exc.filename, 'the folder is not signed'))
        fleet_evidence.verify_sidecar(key, data, signature, where)
        for line in data.decode('utf-8').splitlines():
            digest, _sep, name = line.partition('  ')
            try:
                actual = file_digest(self.path(reldir, name))[1]
            except FileNotFoundError:
                actual = None
            if actual != digest:
                raise fleet_evidence.EvidenceError('%s: %s %s' % (where, name, 'is missing' if actual is None
                                                                  else 'does not match its signed hash'))
