# -*- coding: utf-8 -*-
"""Keyed signatures (HMAC-SHA256) over the evidence a later step trusts: a wave's decision.json,
each round folder's MANIFEST.sha256, the run journal's records (approvals among them) and the
audit trail's chain. A plain SHA-256 proves nothing against whoever can write the file (they
recompute it); a MAC needs the key, which lives in the inventory (``fleet_evidence_key``, from
vault or an AWX credential) and never in the artifacts.

The key id (first 8 hex digits of SHA-256 of the key) is written beside each MAC so a verifier can
say *which* key signed, never the key. EvidenceKey keeps the secret out of repr/str so that no
error message, result or log line can carry it. Standard library only (scripts/audit-verify).
"""

from __future__ import annotations

import hashlib
import hmac
import json

KEY_VAR = 'fleet_evidence_key'
UNSIGNED_VAR = 'fleet_evidence_unsigned'
ALG = 'hmac-sha256'
FIELD = 'evidence'  # the signature embedded in a signed JSON record
MIN_KEY_CHARS = 16
HOW_TO_SET = ('set %s in the inventory from vault (ansible-vault encrypt_string) or an AWX credential, '
              'at least %d characters; or set %s: true to run unsigned (recorded in the journal)'
              % (KEY_VAR, MIN_KEY_CHARS, UNSIGNED_VAR))


class EvidenceError(Exception):
    """A signature is missing, made with another key, or does not match: the evidence is refused."""


class EvidenceKey:
    def __init__(self, secret):
        if isinstance(secret, str):
            secret = secret.encode('utf-8')
        if not isinstance(secret, bytes) or len(secret) < MIN_KEY_CHARS:
            # The value itself is never shown: it may be a real key, only too short.
            raise EvidenceError('%s is not a usable key (%s)' % (KEY_VAR, HOW_TO_SET))
        self._secret = secret
        self.key_id = hashlib.sha256(secret).hexdigest()[:8]

    def __repr__(self):
        return '<EvidenceKey %s>' % self.key_id

    __str__ = __repr__

    def sign(self, payload):
        """The hex HMAC-SHA256 of payload (bytes)."""
        return hmac.new(self._secret, payload, hashlib.sha256).hexdigest()

    def matches(self, payload, mac):
        return isinstance(mac, str) and hmac.compare_digest(self.sign(payload), mac)


def key_from(value):
    """An EvidenceKey from an inventory value (None or '' when none is configured)."""
    if value is None or value == '':
        return None
    return EvidenceKey(str(value))


def canonical(record):
    """The bytes a JSON record is signed over: without its signature, keys sorted, no spaces."""
    body = {k: v for k, v in record.items() if k != FIELD}
    return json.dumps(body, sort_keys=True, separators=(',', ':'), ensure_ascii=True, default=str).encode('ascii')


def seal(key, record):
    """record with its signature embedded (a copy); unchanged when no key is configured."""
    if key is None:
        return dict(record)
    record = json.loads(json.dumps(record, default=str))  # plain JSON types, as a reader will see them
    record[FIELD] = dict(alg=ALG, key_id=key.key_id, mac=key.sign(canonical(record)))
    return record


def _check(key, payload, signature, where):
    if not isinstance(signature, dict) or not signature.get('mac'):
        raise EvidenceError('%s: not signed (no %s signature); written without %s, or the signature was removed'
                            % (where, ALG, KEY_VAR))
    if signature.get('key_id') != key.key_id:
        raise EvidenceError('%s: signed with key %s, but the configured %s is key %s'
                            % (where, signature.get('key_id'), KEY_VAR, key.key_id))
    if not key.matches(payload, signature['mac']):
        raise EvidenceError('%s: the %s signature (key %s) does not match its content: edited after it was '
                            'signed (a recomputed plain hash is not a signature)' % (where, ALG, key.key_id))


def verify(key, record, where):
    """record when its embedded signature verifies with key; EvidenceError naming where and what failed."""
    if not isinstance(record, dict):
        raise EvidenceError('%s: not a JSON object' % where)
    _check(key, canonical(record), record.get(FIELD), where)
    return record


def sidecar(key, data):
    """The signature file of data (bytes) as text: 'hmac-sha256 KEY_ID MAC'."""
    return '%s %s %s\n' % (ALG, key.key_id, key.sign(data))


def verify_sidecar(key, data, text, where):
    """data when the signature file text signs it with key; EvidenceError otherwise."""
    parts = (text or '').split()
    signature = dict(key_id=parts[1], mac=parts[2]) if len(parts) == 3 and parts[0] == ALG else None
    _check(key, data, signature, where)
    return data
