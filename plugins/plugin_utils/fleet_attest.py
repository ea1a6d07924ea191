# -*- coding: utf-8 -*-
"""The readiness authorization certificate (issue 10, phase 2) and its offline verification.

What it is
==========
A decision about a certified fleet state — GO, NO-GO or GO with constraints, with the success
criteria and rollback triggers of the next step — stated over the evidence it rests on and signed
by the people who take it:

* the **evidence index** (``evidence-index.json``, ``write_index``) lists every file of an evidence
  folder with its size and SHA-256;
* an **in-toto Statement v1** (``statement``) names as its subjects the index and every file it
  lists, each by SHA-256, and carries as its predicate (type ``PREDICATE_TYPE``) the decision, the
  fleet state, the approvers, when it was issued and the window in which it is valid, and the heads
  (``SEQ:HASH``) of the audit trails it relies on;
* a **DSSE envelope** (``sign``) carries the statement (payload type ``application/vnd.in-toto+json``,
  the payload in base64) and one Ed25519 signature per named approver, each over the DSSE
  pre-authentication encoding of payload type and payload (``pae``), so that neither can be changed
  without breaking every signature. A signature's ``keyid`` is the SHA-256 (hex) of the signer's
  raw 32-byte public key.

Private keys come in as values (from vault or an AWX credential: PEM, OpenSSH, or a 32-byte seed in
hex or base64), are held by ``SigningKey`` in memory only and appear in no envelope, repr, message
or exception; nothing here writes one to disk.

Verifying
=========
``verify`` (and ``scripts/verify-certificate``) needs the envelope, the trusted public keys (by
approver name), the threshold t and the evidence folder; it works offline and reports every
check that fails, each naming what failed: the payload type; each signature over the PAE; the
number of *distinct* trusted keys, among the approvers the statement names, whose signature holds
(a key signing twice counts once; signatures by unknown keys are ignored and reported); the
statement's ``_type`` and ``predicateType``; every subject's SHA-256 against the file (a missing or
edited file is named) and the index against the subjects; the validity window (not yet valid,
expired, with both times); each audit trail the statement names, with the audit trail's own
verifier (``fleet_audit.check``: chain, the anchored heads beside it, the head recorded in the
certificate, and with the evidence key every line's HMAC).

Standard library and ``cryptography`` only, so that ``scripts/verify-certificate`` runs with a bare
python3 that has it.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime
import hashlib
import json
import os
import sys

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_audit, fleet_evidence
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import (ArtifactError, ArtifactStore,
                                                                                      Layout, file_digest, utc)

STATEMENT_TYPE = 'https://in-toto.io/Statement/v1'
PREDICATE_TYPE = 'https://fleetwave.dev/readiness-authorization/v1'
PAYLOAD_TYPE = 'application/vnd.in-toto+json'
INDEX = Layout.EVIDENCE_INDEX
INDEX_VERSION = 1
GO, NO_GO, GO_WITH_CONSTRAINTS = 'GO', 'NO-GO', 'GO with constraints'
DECISIONS = (GO, NO_GO, GO_WITH_CONSTRAINTS)
# The inventory variable holding the approvers' private keys (approver name: key), from vault or an AWX
# credential; the actions read it themselves, never as an argument.
SIGNING_KEYS_VAR = 'readiness_signing_keys'
KEY_FORMS = 'an Ed25519 private key: PEM (PKCS#8), OpenSSH, or the raw 32-byte seed in hex (64 digits) or base64'
PUBLIC_KEY_FORMS = 'an Ed25519 public key: PEM, ssh-ed25519, or the raw 32 bytes in hex (64 digits) or base64'


def signing_keys_of(value):
    """The approvers' keys as the inventory holds them: a mapping of approver to key, or that mapping as
    JSON text (an AWX credential injects strings). ValueError when it is neither - never showing it."""
    if isinstance(value, str) and value.strip():
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError('%s is text that is not a JSON mapping of approver name to private key (an AWX '
                             'credential injects it as JSON text)' % SIGNING_KEYS_VAR) from None
    value = value or {}
    if not isinstance(value, dict):
        raise ValueError('%s must be a mapping of approver name to private key' % SIGNING_KEYS_VAR)
    return value


class AttestError(Exception):
    """A certificate cannot be issued or checked as asked (an unusable key, evidence changed since
    its index was written, a malformed trusted keys list). Never carries a private key."""


# ================================================================================ keys

def _raw32(text):
    """The 32 bytes that text spells in hex (64 digits) or base64, or None."""
    text = text.strip()
    if len(text) == 64:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


def _text(value):
    if isinstance(value, bytes):
        try:
            return value.decode('ascii')
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def _private_key(value):
    """An Ed25519PrivateKey from a PEM, OpenSSH or raw-seed value, or None. Any exception of the
    parsers is dropped here, so that nothing built from the value travels on."""
    if isinstance(value, bytes) and len(value) == 32:
        return ed25519.Ed25519PrivateKey.from_private_bytes(value)
    text = _text(value)
    if text is None:
        return None
    key = None
    try:
        if '-----BEGIN OPENSSH PRIVATE KEY-----' in text:
            key = serialization.load_ssh_private_key(text.strip().encode('ascii'), password=None)
        elif '-----BEGIN' in text:
            key = serialization.load_pem_private_key(text.strip().encode('ascii'), password=None)
        else:
            raw = _raw32(text)
            key = ed25519.Ed25519PrivateKey.from_private_bytes(raw) if raw is not None else None
    except (ValueError, TypeError, UnicodeEncodeError, UnsupportedAlgorithm):
        key = None
    return key if isinstance(key, ed25519.Ed25519PrivateKey) else None


def public_key(value):
    """An Ed25519PublicKey from a PEM (SubjectPublicKeyInfo), OpenSSH (ssh-ed25519 ...) or raw
    32-byte hex/base64 value, or None."""
    text = _text(value)
    if text is None:
        return None
    key = None
    try:
        if '-----BEGIN PUBLIC KEY-----' in text:
            key = serialization.load_pem_public_key(text.strip().encode('ascii'))
        elif text.strip().startswith('ssh-ed25519 '):
            key = serialization.load_ssh_public_key(text.strip().encode('ascii'))
        elif '-----BEGIN' not in text:  # never parse a private key given where a public one belongs
            raw = _raw32(text)
            key = ed25519.Ed25519PublicKey.from_public_bytes(raw) if raw is not None else None
    except (ValueError, TypeError, UnicodeEncodeError, UnsupportedAlgorithm):
        key = None
    return key if isinstance(key, ed25519.Ed25519PublicKey) else None


def _raw_public(key):
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def keyid(key):
    """A public key's id in signatures and messages: SHA-256 (hex) of its raw 32 bytes."""
    return hashlib.sha256(_raw_public(key)).hexdigest()


class SigningKey:
    """An approver's Ed25519 private key, in memory only. repr and str show the approver and the
    keyid; an unusable value is refused naming the approver, never showing the value."""

    def __init__(self, approver, value):
        if not isinstance(approver, str) or not approver.strip():
            raise AttestError('a signing key needs the name of its approver')
        key = _private_key(value)
        if key is None:
            raise AttestError('the private key given for approver %r is not %s' % (approver, KEY_FORMS))
        self.approver = approver
        self._key = key
        self.public = key.public_key()
        self.keyid = keyid(self.public)

    def __repr__(self):
        return '<SigningKey %s %s>' % (self.approver, self.keyid)

    __str__ = __repr__

    def __reduce__(self):  # no pickling (a copy on disk, in a cache, a multiprocessing queue)
        raise TypeError('a SigningKey is not serialisable')

    def sign(self, data):
        return self._key.sign(data)

    def trusted_entry(self):
        """This approver's entry of a trusted keys list: name and public key (base64 of the raw
        32 bytes)."""
        return dict(name=self.approver, public_key=base64.b64encode(_raw_public(self.public)).decode('ascii'))


def trusted_keys(document):
    """{keyid: (name, Ed25519PublicKey)} of a trusted keys list: ``{"keys": [{"name", "public_key"},
    ...], "threshold": t}`` (threshold optional, read by the CLI) or the bare list. AttestError names
    the entry that is not usable (never its value) and a key listed twice."""
    entries = document.get('keys') if isinstance(document, dict) else document
    if not isinstance(entries, list) or not entries:
        raise AttestError('the trusted keys list is empty or not {"keys": [{"name": ..., "public_key": ...}, ...]}')
    keys = {}
    for number, entry in enumerate(entries, 1):
        name = entry.get('name') if isinstance(entry, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise AttestError('trusted key %d: no name (the approver the key belongs to)' % number)
        key = public_key(entry.get('public_key'))
        if key is None:
            raise AttestError('trusted key %d (%s): public_key is not %s' % (number, name, PUBLIC_KEY_FORMS))
        kid = keyid(key)
        if kid in keys:
            raise AttestError('trusted key %d (%s) is the key of %s already (keyid %s): one key, one approver'
                              % (number, name, keys[kid][0], kid))
        keys[kid] = (name, key)
    return keys


# ================================================================================ the evidence index

def _scan(folder):
    """[{path, size, sha256}] of every file under folder but the index (and its temporary file) and
    the area's completion marker at its top, by relative POSIX path. AttestError on a symbolic link or a special file: the index lists the
    files' own content, nothing that may point elsewhere."""
    root = os.path.abspath(folder)
    if not os.path.isdir(root):
        raise AttestError('%s: no such evidence folder' % root)
    files = []
    for here, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(dirs + names):
            full = os.path.join(here, name)
            rel = os.path.relpath(full, root).replace(os.sep, '/')
            if rel in (INDEX, Layout.COMPLETE_MARKER) or (here == root and name.startswith('.%s.' % INDEX)):
                continue  # the index itself, and the area's completion marker (status, not evidence)
            if os.path.islink(full):
                raise AttestError('%s is a symbolic link: the evidence index lists real files only' % full)
            if name in dirs:
                continue
            if not os.path.isfile(full):
                raise AttestError('%s is not a regular file' % full)
            size, digest = file_digest(full)
            files.append(dict(path=rel, size=size, sha256=digest))
    return sorted(files, key=lambda entry: entry['path'])


def write_index(folder, now=None):
    """Write ``evidence-index.json`` at the top of folder, atomically: every file under it with its
    path relative to folder, size and SHA-256. Returns (path, index)."""
    index = dict(version=INDEX_VERSION, generated_at=_stamp(now or _utcnow()), files=_scan(folder))
    return ArtifactStore(folder).write_json(INDEX, index), index


def check_index(folder):
    """{path: sha256} of the files under folder when its evidence index lists exactly them with these
    digests; else AttestError naming the index and each file added, removed or changed since."""
    store = ArtifactStore(folder)
    try:
        index = store.read_json(INDEX)
    except ArtifactError as exc:
        raise AttestError(str(exc)) from None
    if not isinstance(index, dict) or not isinstance(index.get('files'), list):
        raise AttestError('%s: no evidence index (write it first: fleet_attest.write_index)' % store.path(INDEX))
    listed = {entry.get('path'): entry.get('sha256') for entry in index['files'] if isinstance(entry, dict)}
    found = {entry['path']: entry['sha256'] for entry in _scan(store.root)}
    stale = sorted('%s %s' % (path, 'added' if path not in listed else 'removed' if path not in found else 'changed')
                   for path in set(listed) | set(found) if listed.get(path) != found.get(path))
    if stale:
        raise AttestError('%s is stale, the folder changed since it was written (%s): write it again'
                          % (store.path(INDEX), ', '.join(stale)))
    return found


# ================================================================================ collecting

def _complete_lines(path):
    """The bytes of a file up to its last newline: a JSON-lines file still being appended to (this
    run's own audit trail) is copied without the line being written."""
    with open(path, 'rb') as handle:
        data = handle.read()
    return data[:data.rfind(b'\n') + 1]


def collect(folder, files=None, folders=None, audit_trails=()):
    """Copy evidence into folder (atomically, file by file) and write its index.

    files: {relative destination: source file}; folders: {relative destination: source folder},
    copied whole (its regular files; symbolic links refused); audit_trails: source paths of audit
    trails, copied into ``audit/`` with their complete lines only, after the entries of the anchors
    file beside them that name them (so every anchor copied names a line the copy holds). A source
    that does not exist is not an error here: it is returned in ``missing`` (the compliance gate
    judges what must be there). Returns (index, {copied: [relative paths], missing: [sources]})."""
    store = ArtifactStore(folder)
    copied, missing = [], []

    def copy(rel, source, data=None):
        if not _inside(rel):
            raise AttestError('evidence destination %r: not a relative path inside %s' % (rel, store.root))
        if source is not None and os.path.islink(source):
            raise AttestError('%s is a symbolic link: evidence is copied from real files only' % source)
        if data is None:
            with open(source, 'rb') as handle:
                data = handle.read()
        store.write_bytes(rel, data)
        copied.append(rel)

    for rel, source in sorted((files or {}).items()):
        if os.path.isfile(source):
            copy(rel, source)
        else:
            missing.append(str(source))
    for rel, source in sorted((folders or {}).items()):
        if not os.path.isdir(source):
            missing.append(str(source))
            continue
        for here, dirs, names in os.walk(source):
            dirs[:] = sorted(d for d in dirs if not d.startswith('.'))
            for name in sorted(names):
                if name.startswith('.') or name.endswith('.lock'):
                    continue  # temporary files of atomic writes, lock files
                full = os.path.join(here, name)
                copy('/'.join(filter(None, [rel.strip('/')] + os.path.relpath(full, source).split(os.sep))), full)
    trails = [t for t in audit_trails if os.path.isfile(t) or missing.append(str(t))]
    names = [os.path.basename(t) for t in trails]
    if len(set(names)) != len(names):
        raise AttestError('two audit trails share a file name (%s): they would land on one another in audit/'
                          % ', '.join(sorted({n for n in names if names.count(n) > 1})))
    kept = []  # anchors first: each trail copied after them holds every line they name
    for anchors in sorted({Layout.audit_anchors(t) for t in trails}):
        if os.path.isfile(anchors):
            kept += [line for line in _complete_lines(anchors).splitlines(keepends=True)
                     if line.strip() and _anchor_trail(line) in names]
    if kept:
        copy('audit/%s' % Layout.AUDIT_ANCHORS, None, b''.join(kept))
    for trail in trails:
        copy('audit/%s' % os.path.basename(trail), trail, _complete_lines(trail))
    _path, index = write_index(store.root)
    return index, dict(copied=copied, missing=missing)


def _anchor_trail(line):
    try:
        entry = json.loads(line.decode('utf-8'))
    except ValueError:
        return None
    return entry.get('trail') if isinstance(entry, dict) else None


# ================================================================================ issuing

def _utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def _stamp(moment):
    if not isinstance(moment, datetime.datetime) or moment.tzinfo is None:
        raise AttestError('a time must be a datetime with its time zone, got %r' % (moment,))
    return utc(moment.timestamp())


def parse_time(text):
    """An aware datetime from an ISO-8601 time with its zone (``Z`` or ``+HH:MM``), or None."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(text.strip().replace('Z', '+00:00'))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _inside(rel):
    """Whether rel is a relative path that stays inside its base folder."""
    if not isinstance(rel, str) or not rel or rel.startswith('/') or '\\' in rel:
        return False
    parts = rel.split('/')
    return all(part not in ('', '.', '..') for part in parts)


def _json_list(name, value):
    value = list(value or ())
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise AttestError('%s must be plain JSON data (text, numbers, lists, mappings)' % name) from None
    return value


def statement(base_dir, decision, fleet_state, approvers, valid_until, valid_from=None, constraints=(),
              success_criteria=(), rollback_triggers=(), audit_trails=(), next_step=None, issued_at=None,
              evidence_key=None, reasons=()):
    """The in-toto Statement of a decision over the evidence folder base_dir, whose index
    (write_index) must still match its files.

    fleet_state: the certified state (a mapping); approvers: their names, each of whom signs;
    audit_trails: paths relative to base_dir of the audit trails the decision relies on, each
    verified now (with evidence_key, the HMAC of every line too) and recorded with its head."""
    if decision not in DECISIONS:
        raise AttestError('decision must be one of %s, not %r' % (', '.join(DECISIONS), decision))
    constraints = _json_list('constraints', constraints)
    if decision == GO_WITH_CONSTRAINTS and not constraints:
        raise AttestError('a GO with constraints names its constraints')
    if decision != GO_WITH_CONSTRAINTS and constraints:
        raise AttestError('a %s with constraints is a GO with constraints' % decision)
    success_criteria = _json_list('success_criteria', success_criteria)
    reasons = _json_list('reasons', reasons)
    rollback_triggers = _json_list('rollback_triggers', rollback_triggers)
    if decision != NO_GO and not (success_criteria and rollback_triggers):
        raise AttestError('a %s states the success criteria and the rollback triggers of the next step' % decision)
    if not isinstance(fleet_state, dict) or not fleet_state:
        raise AttestError('fleet_state: the certified fleet state, a mapping, is missing')
    approvers = list(approvers or ())
    if not approvers or not all(isinstance(name, str) and name.strip() for name in approvers):
        raise AttestError('approvers: the names of those who sign, at least one')
    if len(set(approvers)) != len(approvers):
        raise AttestError('approvers: a name is given twice')
    issued_at = issued_at or _utcnow()
    valid_from = valid_from or issued_at
    _stamp(valid_from), _stamp(valid_until)  # both aware datetimes
    if valid_until <= valid_from:
        raise AttestError('valid_until (%s) must come after valid_from (%s)' % (_stamp(valid_until), _stamp(valid_from)))

    root = os.path.abspath(base_dir)
    store = ArtifactStore(root)
    found = check_index(root)
    subjects = [dict(name=INDEX, digest=dict(sha256=file_digest(store.path(INDEX))[1]))]
    subjects += [dict(name=path, digest=dict(sha256=found[path])) for path in sorted(found)]

    audit = []
    for rel in audit_trails:
        if not _inside(rel):
            raise AttestError('audit trail %r: not a relative path inside %s' % (rel, root))
        full = store.path(rel)
        try:
            verdict = fleet_audit.check(full, key=evidence_key, anchors=Layout.audit_anchors(full))
        except (OSError, ValueError) as exc:
            raise AttestError('audit trail %s: %s' % (rel, getattr(exc, 'strerror', None) or exc)) from None
        if not verdict.ok:
            raise AttestError('audit trail %s: broken at line %s: %s' % (rel, verdict.first_bad_line, verdict.reason))
        if not verdict.lines:
            raise AttestError('audit trail %s is empty' % rel)
        audit.append(dict(path=rel, anchor=verdict.anchor, lines=verdict.lines))

    predicate = dict(decision=decision, constraints=constraints, success_criteria=success_criteria,
                     rollback_triggers=rollback_triggers, fleet_state=json.loads(json.dumps(fleet_state)),
                     approvers=approvers, issued_at=_stamp(issued_at), valid_from=_stamp(valid_from),
                     valid_until=_stamp(valid_until), evidence_index=INDEX, audit=audit, reasons=reasons)
    if next_step is not None:
        predicate['next_step'] = str(next_step)
    return {'_type': STATEMENT_TYPE, 'subject': subjects, 'predicateType': PREDICATE_TYPE, 'predicate': predicate}


def pae(payload_type, body):
    """The DSSE pre-authentication encoding: what each signature covers."""
    kind = payload_type.encode('utf-8')
    return b'DSSEv1 %d %s %d %s' % (len(kind), kind, len(body), body)


def sign(stmt, keys):
    """The DSSE envelope of a statement, signed by each approver it names: keys maps each approver's
    name to the private key value (or is a list of SigningKey). Refuses a missing or extra signer and
    two approvers with one key."""
    if isinstance(keys, dict):
        keys = [SigningKey(name, value) for name, value in keys.items()]
    keys = list(keys)
    named = list(stmt.get('predicate', {}).get('approvers', ()))
    by_name = {key.approver: key for key in keys}
    if sorted(by_name) != sorted(named) or len(by_name) != len(keys):
        raise AttestError('one key per named approver: the statement names %s, keys were given for %s'
                          % (', '.join(named) or 'nobody', ', '.join(key.approver for key in keys) or 'nobody'))
    if len({key.keyid for key in keys}) != len(keys):
        raise AttestError('two approvers were given the same key: each signs with their own')
    body = json.dumps(stmt, sort_keys=True, separators=(',', ':'), ensure_ascii=False, allow_nan=False).encode('utf-8')
    signed = pae(PAYLOAD_TYPE, body)
    return dict(payloadType=PAYLOAD_TYPE, payload=base64.b64encode(body).decode('ascii'),
                signatures=[dict(keyid=by_name[name].keyid, sig=base64.b64encode(by_name[name].sign(signed)).decode('ascii'))
                            for name in named])


# ================================================================================ verifying

class Verdict:
    """What verify found. ok: no failure; failures and notes: one sentence each; statement: the
    decoded statement (None when the payload is not one); signers: the approvers whose signature
    counted."""

    def __init__(self):
        self.failures, self.notes, self.signers, self.statement = [], [], [], None

    @property
    def ok(self):
        return not self.failures

    @property
    def predicate(self):
        predicate = (self.statement or {}).get('predicate')
        return predicate if isinstance(predicate, dict) else {}

    def __repr__(self):
        return 'Verdict(ok=%r, failures=%r)' % (self.ok, self.failures)


def _b64(text):
    """The bytes of standard or URL-safe base64 text, or None."""
    if not isinstance(text, str):
        return None
    try:
        if '-' in text or '_' in text:
            return base64.urlsafe_b64decode(text.encode('ascii'))
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def read_envelope(path):
    """(the certificate's JSON, None), or (None, why it cannot be read as a DSSE envelope)."""
    try:
        with open(path, 'rb') as handle:
            return json.loads(handle.read().decode('utf-8')), None
    except OSError as exc:
        return None, 'unreadable: %s' % (exc.strerror or exc)
    except ValueError:  # UnicodeDecodeError too
        return None, 'not JSON: not a DSSE envelope'


def verify(envelope, trusted, threshold, base_dir, now=None, evidence_key=None):
    """Check a certificate offline; a Verdict listing every check that failed.

    trusted: a trusted keys list (see trusted_keys) or its result; threshold: how many distinct
    trusted keys of approvers named in the statement must have signed; base_dir: the evidence
    folder the subjects' names are relative to; now: the moment the window is judged at (aware
    datetime; default the current time); evidence_key: the HMAC key, to check the audit trails'
    signatures too."""
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
        raise AttestError('the threshold must be a whole number of at least 1, not %r' % (threshold,))
    resolved = isinstance(trusted, dict) and trusted and all(isinstance(v, tuple) for v in trusted.values())
    keys = trusted if resolved else trusted_keys(trusted)
    now = now or _utcnow()
    _stamp(now)
    verdict = Verdict()
    fail, note = verdict.failures.append, verdict.notes.append
    if not isinstance(envelope, dict):
        fail('the certificate is not a DSSE envelope (a JSON object with payloadType, payload, signatures)')
        return verdict

    payload_type = envelope.get('payloadType')
    if payload_type != PAYLOAD_TYPE:
        fail('payloadType is %r, not %r: the envelope does not hold an in-toto statement as signed'
             % (payload_type, PAYLOAD_TYPE))
    body = _b64(envelope.get('payload'))
    if body is None:
        fail('payload is missing or not base64')
    else:
        try:
            verdict.statement = json.loads(body.decode('utf-8'))
        except ValueError:  # UnicodeDecodeError too
            fail('payload is not JSON: not an in-toto statement')
    if verdict.statement is not None and not isinstance(verdict.statement, dict):
        fail('payload is JSON but not an object: not an in-toto statement')
        verdict.statement = None
    predicate = verdict.predicate
    approvers = predicate.get('approvers') if isinstance(predicate.get('approvers'), list) else []

    _check_signatures(envelope, payload_type, body, keys, approvers, threshold, verdict)
    if verdict.statement is not None:
        _check_statement(verdict, predicate, os.path.abspath(base_dir), now, evidence_key)
    return verdict


def _check_signatures(envelope, payload_type, body, keys, approvers, threshold, verdict):
    fail, note = verdict.failures.append, verdict.notes.append
    signatures = envelope.get('signatures')
    if not isinstance(signatures, list) or not signatures:
        fail('the envelope holds no signatures')
        signatures = []
    signed = pae(payload_type, body) if isinstance(payload_type, str) and body is not None else None
    counted = {}  # keyid -> approver
    for number, signature in enumerate(signatures, 1):
        if not isinstance(signature, dict) or not isinstance(signature.get('sig'), str):
            fail('signature %d is not {keyid, sig}' % number)
            continue
        kid = signature.get('keyid')
        if not isinstance(kid, str) or kid not in keys:
            note('signature %d: keyid %s is not a trusted key: ignored' % (number, kid or '(none)'))
            continue
        name, key = keys[kid]
        who = '%s (keyid %s)' % (name, kid[:16])
        raw = _b64(signature['sig'])
        if raw is None:
            fail('signature %d by %s: sig is not base64' % (number, who))
            continue
        if signed is None:
            fail('signature %d by %s: nothing to check it over (payloadType or payload missing)' % (number, who))
            continue
        try:
            key.verify(raw, signed)
        except InvalidSignature:
            fail('signature %d by %s does not verify over the DSSE pre-authentication encoding of this '
                 'payloadType and payload: one of them was changed after signing, or another key made it'
                 % (number, who))
            continue
        if kid in counted:
            note('signature %d: a second signature by %s counts once' % (number, who))
        elif name not in approvers:
            note('signature %d by %s holds, but the statement does not name %s among its approvers: not counted'
                 % (number, who, name))
        else:
            counted[kid] = name
    verdict.signers = sorted(counted.values())
    for name in approvers:
        if name not in verdict.signers:
            note('approver %s is named but no valid signature by a trusted key of %s is present' % (name, name))
    if len(counted) < threshold:
        fail('%d distinct trusted approver key(s) signed (%s); %d required' % (
            len(counted), ', '.join(verdict.signers) or 'none', threshold))


def _check_statement(verdict, predicate, root, now, evidence_key):
    fail, note = verdict.failures.append, verdict.notes.append
    stmt = verdict.statement
    if stmt.get('_type') != STATEMENT_TYPE:
        fail('statement _type is %r, not %r' % (stmt.get('_type'), STATEMENT_TYPE))
    if stmt.get('predicateType') != PREDICATE_TYPE:
        fail('predicateType is %r, not %r: not a readiness authorization' % (stmt.get('predicateType'), PREDICATE_TYPE))
    if predicate.get('decision') not in DECISIONS:
        fail('predicate decision is %r, not one of %s' % (predicate.get('decision'), ', '.join(DECISIONS)))

    valid_from, valid_until = parse_time(predicate.get('valid_from')), parse_time(predicate.get('valid_until'))
    if valid_from is None or valid_until is None:
        fail('predicate valid_from/valid_until are missing or not ISO-8601 times with a zone')
    elif now < valid_from:
        fail('not yet valid: valid from %s, it is now %s' % (predicate['valid_from'], _stamp(now)))
    elif now >= valid_until:
        fail('expired: valid until %s, it is now %s' % (predicate['valid_until'], _stamp(now)))

    subjects = {}
    for number, subject in enumerate(stmt.get('subject') if isinstance(stmt.get('subject'), list) else [], 1):
        name = subject.get('name') if isinstance(subject, dict) else None
        digest = subject.get('digest', {}).get('sha256') if isinstance(subject, dict) and isinstance(
            subject.get('digest'), dict) else None
        if not _inside(name) or not isinstance(digest, str):
            fail('subject %d is not {name: a relative path inside the evidence folder, digest: {sha256}}' % number)
            continue
        subjects[name] = digest
        full = os.path.join(root, *name.split('/'))
        try:
            actual = file_digest(full)[1]
        except FileNotFoundError:
            fail('subject %s: missing (%s)' % (name, full))
            continue
        except OSError as exc:
            fail('subject %s: unreadable (%s)' % (name, exc.strerror or exc))
            continue
        if actual != digest.lower():
            fail('subject %s: its sha256 does not match the file %s (edited after the certificate was issued)'
                 % (name, full))
    if not subjects:
        fail('the statement has no subjects')
    _check_index(verdict, predicate, root, subjects)

    audit = predicate.get('audit') if isinstance(predicate.get('audit'), list) else []
    for entry in audit:
        rel = entry.get('path') if isinstance(entry, dict) else None
        if not _inside(rel):
            fail('audit entry %r does not name a trail inside the evidence folder' % (entry,))
            continue
        full = os.path.join(root, *rel.split('/'))
        try:
            result = fleet_audit.check(full, anchor=entry.get('anchor'), key=evidence_key,
                                       anchors=Layout.audit_anchors(full))
        except (OSError, ValueError) as exc:
            fail('audit trail %s: %s' % (rel, getattr(exc, 'strerror', None) or exc))
            continue
        if result.ok:
            note('audit trail %s: %s, holds its head %s' % (rel, result.reason, entry.get('anchor')))
        else:
            fail('audit trail %s: broken at line %s: %s' % (rel, result.first_bad_line, result.reason))
    if audit and evidence_key is None:
        note('audit trails checked by their hashes and heads only: with the evidence key ($%s) every '
             "line's HMAC is checked too" % fleet_audit.KEY_ENV)


def _check_index(verdict, predicate, root, subjects):
    """The index is a subject, and lists exactly the other subjects with the same digests."""
    fail = verdict.failures.append
    name = predicate.get('evidence_index')
    if name not in subjects:
        fail('the evidence index %r is not among the subjects' % (name,))
        return
    try:
        with open(os.path.join(root, *name.split('/')), 'rb') as handle:
            index = json.loads(handle.read().decode('utf-8'))
        listed = {entry['path']: entry['sha256'] for entry in index['files']}
    except (OSError, ValueError, KeyError, TypeError):
        fail('the evidence index %s is missing or not an index ({files: [{path, size, sha256}]})' % name)
        return
    for path in sorted(set(listed) | (set(subjects) - {name})):
        if path not in subjects:
            fail('the evidence index lists %s, which is not a subject of the statement' % path)
        elif path not in listed:
            fail('subject %s is not in the evidence index' % path)
        elif listed[path] != subjects[path]:
            fail('the evidence index gives %s another sha256 than its subject' % path)


# --- scripts/verify-certificate -----------------------------------------------------------------------

VERIFY_USAGE = """Check a readiness authorization certificate offline: scripts/verify-certificate CERT.json --trusted-keys KEYS.json [--threshold T] [--base-dir DIR] [--at ISO-TIME]

KEYS.json: {"keys": [{"name": APPROVER, "public_key": PEM, ssh-ed25519 or base64/hex of the 32 bytes}, ...],
"threshold": T}; --threshold overrides its threshold. DIR: the evidence folder the certificate's subjects
are relative to (default: the certificate's folder). --at: judge the validity window at that time
(default: now). With the evidence key in $FLEET_EVIDENCE_KEY the audit trails' HMACs are checked too.
Prints `CERT: VALID: DECISION ...` and exits 0, or `CERT: REFUSED` and each failure on its own line
(`FAILED: ...`) and exits 1; notes (ignored signatures, ...) follow on `note:` lines. Exit 2: usage.
Needs only python3 and cryptography."""


def main(argv):
    parser = argparse.ArgumentParser(prog='verify-certificate', description=VERIFY_USAGE.splitlines()[0],
                                     epilog='\n'.join(VERIFY_USAGE.splitlines()[2:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('certificate', metavar='CERT.json')
    parser.add_argument('--trusted-keys', metavar='KEYS.json', required=True)
    parser.add_argument('--threshold', metavar='T', type=int)
    parser.add_argument('--base-dir', metavar='DIR')
    parser.add_argument('--at', metavar='ISO-TIME')
    args = parser.parse_args(argv)
    try:
        with open(args.trusted_keys, 'rb') as handle:
            document = json.loads(handle.read().decode('utf-8'))
        keys = trusted_keys(document)
    except OSError as exc:
        parser.error('--trusted-keys %s: %s' % (args.trusted_keys, exc.strerror or exc))
    except ValueError:  # never echo the file: a private key may have been put there by mistake
        parser.error('--trusted-keys %s: not JSON' % args.trusted_keys)
    except AttestError as exc:
        parser.error('--trusted-keys %s: %s' % (args.trusted_keys, exc))
    threshold = args.threshold if args.threshold is not None else (
        document.get('threshold') if isinstance(document, dict) else None)
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
        parser.error('the threshold (--threshold, or "threshold" in %s) must be given, a whole number of at least 1'
                     % args.trusted_keys)
    now = parse_time(args.at) if args.at else None
    if args.at and now is None:
        parser.error('--at %s: not an ISO-8601 time with its zone (2026-12-02T06:00:00Z)' % args.at)
    try:
        evidence_key = fleet_evidence.key_from(os.environ.get(fleet_audit.KEY_ENV))
    except fleet_evidence.EvidenceError as exc:  # names the variable, never the value
        parser.error(str(exc))
    base_dir = args.base_dir or os.path.dirname(os.path.abspath(args.certificate))
    cert = args.certificate
    envelope, problem = read_envelope(cert)
    if problem:
        print('%s: REFUSED\nFAILED: %s' % (cert, problem))
        return 1
    verdict = verify(envelope, keys, threshold, base_dir, now=now, evidence_key=evidence_key)
    predicate = verdict.predicate
    if verdict.ok:
        print('%s: VALID: %s, signed by %s (%d distinct trusted keys, threshold %d); valid %s to %s; %d subjects '
              'match in %s; %d audit trail(s) intact' % (
                  cert, predicate['decision'], ', '.join(verdict.signers), len(verdict.signers), threshold,
                  predicate['valid_from'], predicate['valid_until'], len(verdict.statement['subject']), base_dir,
                  len(predicate.get('audit') or ())))
    else:
        print('%s: REFUSED (%d failure%s)' % (cert, len(verdict.failures), '' if len(verdict.failures) == 1 else 's'))
        for failure in verdict.failures:
            print('FAILED: %s' % failure)
    for line in verdict.notes:
        print('note: %s' % line)
    return 0 if verdict.ok else 1


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
