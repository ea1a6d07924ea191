"""plugins/plugin_utils/fleet_attest.py and scripts/verify-certificate: the readiness authorization
certificate (issue 10, phase 2) — an in-toto Statement over the evidence index and its files, in a
DSSE envelope signed with Ed25519 by named approvers — and its offline verification, which names
every check that fails."""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import os
import pickle
import shutil

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_attest as fa
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_audit import AuditLog
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_evidence import EvidenceKey

from tests.unit.conftest import REPO

pytestmark = pytest.mark.unit

UTC = datetime.timezone.utc
NOW = datetime.datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
UNTIL = NOW + datetime.timedelta(days=1)
AT = NOW + datetime.timedelta(hours=1)  # inside the window


def _seed(byte):
    return bytes([byte]) * 32


def _pem(seed):
    return ed25519.Ed25519PrivateKey.from_private_bytes(seed).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode()


# Private keys as a vault or an AWX credential would hand them over, in each accepted form.
PRIVATE = {
    "alice": _seed(0xA1).hex(),                          # hex seed
    "bob": _pem(_seed(0xB0)),                            # PEM PKCS#8
    "carol": base64.b64encode(_seed(0xCA)).decode(),     # base64 seed
}
MALLORY = _seed(0x66).hex()  # a key nobody trusts
KEYS = {name: fa.SigningKey(name, value) for name, value in PRIVATE.items()}
TRUSTED = {"threshold": 2, "keys": [KEYS[name].trusted_entry() for name in ("alice", "bob", "carol")]}
# Every spelling of the private keys a leak could take: hex, base64, the PEM body, the raw seed.
SECRETS = [_seed(b).hex() for b in (0xA1, 0xB0, 0xCA, 0x66)] + [
    base64.b64encode(_seed(b)).decode() for b in (0xA1, 0xB0, 0xCA, 0x66)] + [
    line for line in PRIVATE["bob"].splitlines() if "-----" not in line]

FILES = {
    "load/10-concurrent.json": '{"p99_ms": 4.2, "requested_rps": 100, "achieved_rps": 100}\n',
    "gates/code.json": '{"gate": "code", "passed": true}\n',
    "summary.md": "# Executive summary\n\nAll gates green.\n",
}
TRAIL = "audit/readiness.jsonl"


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def make_evidence(folder, key=None):
    for rel, text in FILES.items():
        os.makedirs(os.path.dirname(os.path.join(folder, rel)), exist_ok=True)
        with open(os.path.join(folder, rel), "w") as handle:
            handle.write(text)
    with AuditLog(os.path.join(folder, TRAIL), key=key, anchors=os.path.join(folder, "audit", "anchors.jsonl")) as log:
        for number in range(5):
            log.append("task_start", name="step %d" % number)
    fa.write_index(str(folder), now=NOW)
    return folder


@pytest.fixture
def evidence(tmp_path):
    return make_evidence(tmp_path / "evidence")


def make_statement(folder, approvers=("alice", "bob"), **changes):
    args = dict(decision=fa.GO_WITH_CONSTRAINTS, fleet_state={"unified_subjects": True, "agents": ["tdd-expert"]},
                approvers=list(approvers), valid_until=UNTIL, issued_at=NOW, constraints=["racks r1 and r2 only"],
                success_criteria=["p99 < 50 ms per instance"], rollback_triggers=["unified error rate > 1 %"],
                audit_trails=[TRAIL], next_step="final cut-over")
    args.update(changes)
    return fa.statement(str(folder), **args)


def certificate(folder, signers=("alice", "bob"), **changes):
    return fa.sign(make_statement(folder, signers, **changes), {name: PRIVATE[name] for name in signers})


def check(envelope, folder, threshold=2, at=AT, trusted=TRUSTED, **kwargs):
    return fa.verify(envelope, trusted, threshold, str(folder), now=at, **kwargs)


def payload(envelope):
    return json.loads(base64.b64decode(envelope["payload"]))


def with_payload(envelope, statement):
    body = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    return dict(envelope, payload=base64.b64encode(body).decode())


def signed_over(statement, payload_type, signers):
    """An envelope whose signatures really cover payload_type (not the one verify expects)."""
    body = json.dumps(statement, sort_keys=True, separators=(",", ":")).encode()
    return dict(payloadType=payload_type, payload=base64.b64encode(body).decode(),
                signatures=[dict(keyid=KEYS[n].keyid, sig=base64.b64encode(KEYS[n].sign(fa.pae(payload_type, body))).decode())
                            for n in signers])


# ================================================================================ the encoding and keys

def test_pae_is_the_dsse_pre_authentication_encoding():
    # The test vector of the DSSE protocol: lengths in bytes, ASCII decimal, single spaces.
    assert fa.pae("http://example.com/HelloWorld", b"hello world") == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    assert fa.pae("t\u00e9", b"") == b"DSSEv1 3 t\xc3\xa9 0 "


def test_every_accepted_form_of_a_key_gives_the_same_keyid_the_sha256_of_the_raw_public_key():
    seed = _seed(0x42)
    private = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    raw_public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    openssh = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                    serialization.NoEncryption()).decode()
    forms = [seed.hex(), seed.hex().upper(), base64.b64encode(seed).decode(), _pem(seed), openssh, seed]
    assert {fa.SigningKey("x", form).keyid for form in forms} == {hashlib.sha256(raw_public).hexdigest()}
    public_forms = [raw_public.hex(), base64.b64encode(raw_public).decode(),
                    private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
                    private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                                      serialization.PublicFormat.OpenSSH).decode()]
    assert {fa.keyid(fa.public_key(form)) for form in public_forms} == {hashlib.sha256(raw_public).hexdigest()}


# ================================================================================ the evidence index

def test_the_index_lists_every_file_with_its_relative_path_size_and_sha256(evidence):
    index = json.load(open(evidence / "evidence-index.json"))
    expected = sorted(list(FILES) + [TRAIL, "audit/anchors.jsonl"])
    assert [entry["path"] for entry in index["files"]] == expected
    for entry in index["files"]:
        full = evidence / entry["path"]
        assert entry["size"] == full.stat().st_size and entry["sha256"] == sha(full)
    assert index["generated_at"] == "2026-12-02T06:00:00.000Z" and index["version"] == 1
    # Written atomically (no temporary file left) and rewritten, never listing itself.
    (evidence / "later.txt").write_text("added\n")
    fa.write_index(str(evidence))
    assert sorted(os.listdir(evidence)) == ["audit", "evidence-index.json", "gates", "later.txt", "load", "summary.md"]
    assert "later.txt" in [e["path"] for e in json.load(open(evidence / "evidence-index.json"))["files"]]


def test_the_index_refuses_a_symbolic_link(evidence):
    os.symlink("/etc/hostname", evidence / "gates" / "link.json")
    with pytest.raises(fa.AttestError, match=r"gates/link.json is a symbolic link"):
        fa.write_index(str(evidence))


# ================================================================================ issuing

def test_the_statement_is_an_in_toto_statement_over_the_index_and_every_file_it_lists(evidence):
    statement = payload(certificate(evidence))
    assert statement["_type"] == "https://in-toto.io/Statement/v1"
    assert statement["predicateType"] == fa.PREDICATE_TYPE
    subjects = {s["name"]: s["digest"]["sha256"] for s in statement["subject"]}
    listed = [entry["path"] for entry in json.load(open(evidence / "evidence-index.json"))["files"]]
    assert sorted(subjects) == sorted(listed + ["evidence-index.json"])
    assert all(digest == sha(evidence / name) for name, digest in subjects.items())
    predicate = statement["predicate"]
    assert predicate["decision"] == "GO with constraints" and predicate["approvers"] == ["alice", "bob"]
    assert (predicate["valid_from"], predicate["valid_until"]) == ("2026-12-02T06:00:00.000Z", "2026-12-03T06:00:00.000Z")
    assert predicate["audit"] == [dict(path=TRAIL, lines=5, anchor="5:" + hashlib.sha256(
        open(evidence / TRAIL, "rb").read().splitlines()[-1]).hexdigest())]
    assert predicate["fleet_state"] == {"unified_subjects": True, "agents": ["tdd-expert"]}


@pytest.mark.parametrize("changes, message", [
    (dict(decision="MAYBE"), "decision must be one of GO, NO-GO, GO with constraints"),
    (dict(constraints=[]), "a GO with constraints names its constraints"),
    (dict(decision="GO"), "a GO with constraints is a GO with constraints"),
    (dict(decision="GO", constraints=[], rollback_triggers=[]), "states the success criteria and the rollback triggers"),
    (dict(fleet_state={}), "the certified fleet state"),
    (dict(valid_until=NOW), r"valid_until \(2026-12-02T06:00:00.000Z\) must come after valid_from"),
    (dict(valid_until=datetime.datetime(2026, 12, 3)), "a time must be a datetime with its time zone"),
], ids=["decision", "no-constraints", "go-with-constraints", "no-criteria", "no-state", "window", "naive-time"])
def test_an_incomplete_decision_is_not_issued(evidence, changes, message):
    with pytest.raises(fa.AttestError, match=message):
        make_statement(evidence, **changes)


def test_a_no_go_needs_no_criteria(evidence):
    envelope = certificate(evidence, decision=fa.NO_GO, constraints=[], success_criteria=[], rollback_triggers=[])
    assert check(envelope, evidence).ok and payload(envelope)["predicate"]["decision"] == "NO-GO"


def test_evidence_changed_after_its_index_is_not_certified(evidence):
    (evidence / "summary.md").write_text("edited\n")
    (evidence / "late.json").write_text("{}\n")
    os.unlink(evidence / "gates" / "code.json")
    with pytest.raises(fa.AttestError, match=r"evidence-index.json is stale.*\(gates/code.json removed, late.json added, "
                                             r"summary.md changed\)"):
        make_statement(evidence)


def test_a_broken_audit_trail_is_not_certified(evidence):
    lines = open(evidence / TRAIL, "rb").read().splitlines(keepends=True)
    open(evidence / TRAIL, "wb").write(b"".join(lines[:2] + lines[3:]))
    fa.write_index(str(evidence))
    with pytest.raises(fa.AttestError, match=r"audit trail audit/readiness.jsonl: broken at line 3: seq is 4 where 3"):
        make_statement(evidence)


def test_each_named_approver_signs_with_their_own_key(evidence):
    statement = make_statement(evidence, approvers=["alice", "bob"])
    with pytest.raises(fa.AttestError, match="the statement names alice, bob, keys were given for alice$"):
        fa.sign(statement, {"alice": PRIVATE["alice"]})
    with pytest.raises(fa.AttestError, match="keys were given for alice, bob, carol"):
        fa.sign(statement, PRIVATE)
    with pytest.raises(fa.AttestError, match="two approvers were given the same key"):
        fa.sign(statement, {"alice": PRIVATE["alice"], "bob": PRIVATE["alice"]})


# ================================================================================ verifying: valid

def test_a_2_of_3_certificate_verifies(evidence):
    envelope = certificate(evidence)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert [s["keyid"] for s in envelope["signatures"]] == [KEYS["alice"].keyid, KEYS["bob"].keyid]
    verdict = check(envelope, evidence)
    assert verdict.ok, verdict.failures
    assert verdict.failures == [] and verdict.signers == ["alice", "bob"]
    assert verdict.predicate["decision"] == "GO with constraints"
    assert any(note.startswith("audit trail audit/readiness.jsonl: 5 lines, chain intact") for note in verdict.notes)


def test_each_signature_is_ed25519_over_the_pae_of_type_and_payload(evidence):
    envelope = certificate(evidence)
    body = base64.b64decode(envelope["payload"])
    for signature, name in zip(envelope["signatures"], ("alice", "bob")):
        KEYS[name].public.verify(base64.b64decode(signature["sig"]), fa.pae(fa.PAYLOAD_TYPE, body))


def test_the_audit_trails_hmacs_are_checked_with_the_evidence_key(tmp_path):
    key = EvidenceKey("unit-tests-evidence-key-not-a-secret")
    folder = make_evidence(tmp_path / "keyed", key=key)
    envelope = fa.sign(make_statement(folder, evidence_key=key), {n: PRIVATE[n] for n in ("alice", "bob")})
    assert check(envelope, folder, evidence_key=key).ok
    other = EvidenceKey("another-evidence-key-not-a-secret")
    verdict = check(envelope, folder, evidence_key=other)
    assert not verdict.ok and any(f.startswith("audit trail audit/readiness.jsonl: ") for f in verdict.failures)


# ================================================================================ verifying: what fails

@pytest.mark.parametrize("rel", sorted(list(FILES) + [TRAIL, "audit/anchors.jsonl"]))
def test_editing_any_evidence_file_fails_naming_it(evidence, rel):
    envelope = certificate(evidence)
    assert check(envelope, evidence).ok
    with open(evidence / rel, "ab") as handle:
        handle.write(b" ")
    verdict = check(envelope, evidence)
    assert not verdict.ok
    assert "subject %s: its sha256 does not match the file %s (edited after the certificate was issued)" % (
        rel, evidence / rel) in verdict.failures


def test_a_removed_evidence_file_is_named_missing(evidence):
    envelope = certificate(evidence)
    os.unlink(evidence / "load" / "10-concurrent.json")
    assert check(envelope, evidence).failures == [
        "subject load/10-concurrent.json: missing (%s)" % (evidence / "load" / "10-concurrent.json")]


def test_an_edited_index_fails_naming_it_even_when_the_edit_is_recomputed(evidence):
    envelope = certificate(evidence)
    (evidence / "summary.md").write_text("# Executive summary\n\nAll gates green (really).\n")
    fa.write_index(str(evidence))  # whoever edits the evidence recomputes its index
    failures = check(envelope, evidence).failures
    assert "subject evidence-index.json: its sha256 does not match the file %s (edited after the certificate was " \
           "issued)" % (evidence / "evidence-index.json") in failures
    assert "the evidence index gives summary.md another sha256 than its subject" in failures
    assert any(f.startswith("subject summary.md: its sha256 does not match") for f in failures)


def test_an_edited_payload_fails_every_signature(evidence):
    envelope = certificate(evidence, decision=fa.NO_GO, constraints=[], success_criteria=[], rollback_triggers=[])
    statement = payload(envelope)
    statement["predicate"]["decision"] = "GO"
    verdict = check(with_payload(envelope, statement), evidence)
    assert verdict.failures == [
        "signature 1 by alice (keyid %s) does not verify over the DSSE pre-authentication encoding of this payloadType "
        "and payload: one of them was changed after signing, or another key made it" % KEYS["alice"].keyid[:16],
        "signature 2 by bob (keyid %s) does not verify over the DSSE pre-authentication encoding of this payloadType "
        "and payload: one of them was changed after signing, or another key made it" % KEYS["bob"].keyid[:16],
        "0 distinct trusted approver key(s) signed (none); 2 required"]


def test_an_edited_payload_type_fails_naming_it(evidence):
    envelope = dict(certificate(evidence), payloadType="application/json")
    failures = check(envelope, evidence).failures
    assert failures[0] == "payloadType is 'application/json', not 'application/vnd.in-toto+json': the envelope does " \
                          "not hold an in-toto statement as signed"
    assert len([f for f in failures if "does not verify over the DSSE" in f]) == 2


def test_a_payload_type_is_checked_even_when_the_signatures_cover_it(evidence):
    """The approvers signed the statement as another type (the CVE-2022-35929 confusion): refused."""
    envelope = signed_over(make_statement(evidence), "application/json", ("alice", "bob"))
    assert check(envelope, evidence).failures == [
        "payloadType is 'application/json', not 'application/vnd.in-toto+json': the envelope does not hold an in-toto "
        "statement as signed"]


@pytest.mark.parametrize("field, value, message", [
    ("_type", "https://in-toto.io/Statement/v0.1", "statement _type is 'https://in-toto.io/Statement/v0.1', not "
                                                   "'https://in-toto.io/Statement/v1'"),
    ("predicateType", "https://slsa.dev/provenance/v1", "predicateType is 'https://slsa.dev/provenance/v1', not "
                                                        "'https://fleetwave.dev/readiness-authorization/v1': not a "
                                                        "readiness authorization"),
])
def test_a_signed_statement_of_another_type_is_refused(evidence, field, value, message):
    statement = dict(make_statement(evidence), **{field: value})
    assert check(fa.sign(statement, {n: PRIVATE[n] for n in ("alice", "bob")}), evidence).failures == [message]


def test_too_few_distinct_trusted_keys_are_refused(evidence):
    one = certificate(evidence, signers=("alice",))
    assert check(one, evidence, threshold=1).ok
    assert check(one, evidence).failures == ["1 distinct trusted approver key(s) signed (alice); 2 required"]
    assert check(certificate(evidence), evidence, threshold=3).failures == [
        "2 distinct trusted approver key(s) signed (alice, bob); 3 required"]


def test_the_same_key_signing_twice_counts_once(evidence):
    envelope = certificate(evidence, signers=("alice",))
    twice = dict(envelope, signatures=envelope["signatures"] * 2)
    verdict = check(twice, evidence)
    assert verdict.failures == ["1 distinct trusted approver key(s) signed (alice); 2 required"]
    assert "signature 2: a second signature by alice (keyid %s) counts once" % KEYS["alice"].keyid[:16] in verdict.notes


def test_one_key_under_two_names_in_the_trusted_list_is_refused():
    entry = KEYS["alice"].trusted_entry()
    with pytest.raises(fa.AttestError, match=r"trusted key 2 \(alias\) is the key of alice already"):
        fa.trusted_keys({"keys": [entry, dict(entry, name="alias")]})


def test_an_untrusted_signer_does_not_count(evidence):
    statement = make_statement(evidence, approvers=["alice", "mallory"])
    envelope = fa.sign(statement, {"alice": PRIVATE["alice"], "mallory": MALLORY})
    mallory = fa.SigningKey("mallory", MALLORY).keyid
    verdict = check(envelope, evidence)
    assert verdict.failures == ["1 distinct trusted approver key(s) signed (alice); 2 required"]
    assert "signature 2: keyid %s is not a trusted key: ignored" % mallory in verdict.notes
    assert check(envelope, evidence, threshold=1).ok  # ignored, not fatal


def test_an_untrusted_key_claiming_a_trusted_keyid_fails_naming_the_signature(evidence):
    statement = make_statement(evidence, approvers=["alice", "bob"])
    envelope = fa.sign(statement, {"alice": PRIVATE["alice"], "bob": MALLORY})  # mallory signs as bob
    envelope["signatures"][1]["keyid"] = KEYS["bob"].keyid
    failures = check(envelope, evidence).failures
    assert failures[0].startswith("signature 2 by bob (keyid %s) does not verify" % KEYS["bob"].keyid[:16])
    assert failures[1] == "1 distinct trusted approver key(s) signed (alice); 2 required"


def test_a_trusted_key_that_the_statement_does_not_name_does_not_count(evidence):
    envelope = certificate(evidence, signers=("alice",))
    body = base64.b64decode(envelope["payload"])
    envelope["signatures"].append(dict(keyid=KEYS["carol"].keyid, sig=base64.b64encode(
        KEYS["carol"].sign(fa.pae(fa.PAYLOAD_TYPE, body))).decode()))
    verdict = check(envelope, evidence)
    assert verdict.failures == ["1 distinct trusted approver key(s) signed (alice); 2 required"]
    assert any("carol" in note and "not counted" in note for note in verdict.notes)


@pytest.mark.parametrize("at, message", [
    (UNTIL, "expired: valid until 2026-12-03T06:00:00.000Z, it is now 2026-12-03T06:00:00.000Z"),
    (UNTIL + datetime.timedelta(days=30), "expired: valid until 2026-12-03T06:00:00.000Z, it is now 2027-01-02T06:00:00.000Z"),
    (NOW - datetime.timedelta(seconds=1), "not yet valid: valid from 2026-12-02T06:00:00.000Z, it is now "
                                          "2026-12-02T05:59:59.000Z"),
], ids=["at-the-end", "long-after", "before"])
def test_outside_its_window_the_certificate_is_refused(evidence, at, message):
    envelope = certificate(evidence)
    assert check(envelope, evidence, at=at).failures == [message]
    assert check(envelope, evidence, at=UNTIL - datetime.timedelta(milliseconds=1)).ok


def test_a_trail_cut_after_issuing_is_named_by_the_audit_check(evidence):
    envelope = certificate(evidence)
    lines = open(evidence / TRAIL, "rb").read().splitlines(keepends=True)
    open(evidence / TRAIL, "wb").write(b"".join(lines[:-1]))
    failures = check(envelope, evidence).failures
    assert any(f.startswith("subject audit/readiness.jsonl: its sha256 does not match") for f in failures)
    assert any(f.startswith("audit trail audit/readiness.jsonl: broken at line 5: the log ends at seq 4")
               for f in failures)


def test_a_subject_outside_the_evidence_folder_is_refused(evidence):
    statement = make_statement(evidence)
    statement["subject"].append(dict(name="../outside.txt", digest=dict(sha256="0" * 64)))
    failures = check(fa.sign(statement, {n: PRIVATE[n] for n in ("alice", "bob")}), evidence).failures
    assert "subject %d is not {name: a relative path inside the evidence folder, digest: {sha256}}" % len(
        statement["subject"]) in failures


def test_garbage_is_refused_naming_what_it_is_not(evidence):
    assert check([], evidence).failures == [
        "the certificate is not a DSSE envelope (a JSON object with payloadType, payload, signatures)"]
    failures = check(dict(payloadType=fa.PAYLOAD_TYPE, payload="%%%", signatures=[]), evidence).failures
    assert failures == ["payload is missing or not base64", "the envelope holds no signatures",
                        "0 distinct trusted approver key(s) signed (none); 2 required"]


# ================================================================================ private keys stay private

def _leaks(text):
    return [secret for secret in SECRETS if secret in text]


def test_no_private_key_in_the_envelope_or_a_keys_repr(evidence):
    envelope = certificate(evidence, signers=("alice", "bob", "carol"))
    assert _leaks(json.dumps(envelope)) == [] and _leaks(base64.b64decode(envelope["payload"]).decode()) == []
    assert _leaks(repr(KEYS) + str(KEYS["bob"]) + json.dumps(TRUSTED)) == []
    with pytest.raises(TypeError):
        pickle.dumps(KEYS["alice"])


@pytest.mark.parametrize("value", [
    _seed(0xA1).hex()[:-2],                                   # 31 bytes
    _seed(0xA1).hex()[:-1] + "g",                             # not hex
    PRIVATE["bob"].replace("MC4CAQAw", "MC4CAQ"),             # a damaged PEM
    PRIVATE["bob"].replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY"),
    base64.b64encode(_seed(0xCA) + b"x").decode(),            # 33 bytes
], ids=["short", "not-hex", "damaged-pem", "wrong-pem", "long-base64"])
def test_an_unusable_private_key_is_refused_without_showing_it(value):
    with pytest.raises(fa.AttestError) as err:
        fa.SigningKey("bob", value)
    assert str(err.value) == "the private key given for approver 'bob' is not %s" % fa.KEY_FORMS
    assert err.value.__context__ is None and err.value.__cause__ is None
    assert value not in str(err.value) and _leaks(str(err.value)) == []


def test_a_private_key_put_in_the_trusted_keys_list_is_refused_without_showing_it():
    with pytest.raises(fa.AttestError) as err:
        fa.trusted_keys({"keys": [dict(name="bob", public_key=PRIVATE["bob"])]})
    assert str(err.value) == "trusted key 1 (bob): public_key is not %s" % fa.PUBLIC_KEY_FORMS
    assert _leaks(str(err.value)) == []


# ================================================================================ scripts/verify-certificate

@pytest.fixture
def on_disk(evidence, tmp_path):
    """(certificate path, trusted keys path) of a valid 2-of-3 certificate in its evidence folder."""
    cert, keys = evidence / "certificate.json", tmp_path / "trusted-keys.json"
    cert.write_text(json.dumps(certificate(evidence), indent=2))
    keys.write_text(json.dumps(TRUSTED))
    return str(cert), str(keys)


def run(argv, capsys):
    code = fa.main(argv)
    out, err = capsys.readouterr()
    assert _leaks(out + err) == []
    return code, out.splitlines(), err


def test_the_cli_exits_0_on_a_valid_certificate(on_disk, evidence, capsys):
    cert, keys = on_disk
    code, lines, _err = run([cert, "--trusted-keys", keys, "--at", "2026-12-02T07:00:00Z"], capsys)
    assert code == 0
    assert lines[0] == ("%s: VALID: GO with constraints, signed by alice, bob (2 distinct trusted keys, threshold 2); "
                        "valid 2026-12-02T06:00:00.000Z to 2026-12-03T06:00:00.000Z; 6 subjects match in %s; 1 audit "
                        "trail(s) intact" % (cert, evidence))
    assert all(line.startswith("note: ") for line in lines[1:])


def test_the_cli_exits_1_with_each_failure_on_its_own_line(on_disk, evidence, capsys):
    cert, keys = on_disk
    (evidence / "summary.md").write_text("edited\n")
    (evidence / "gates" / "code.json").write_text('{"gate": "code", "passed": false}\n')
    code, lines, _err = run([cert, "--trusted-keys", keys, "--at", "2027-01-01T00:00:00+01:00"], capsys)
    assert code == 1
    assert lines[:4] == [
        "%s: REFUSED (3 failures)" % cert,
        "FAILED: expired: valid until 2026-12-03T06:00:00.000Z, it is now 2026-12-31T23:00:00.000Z",
        "FAILED: subject gates/code.json: its sha256 does not match the file %s (edited after the certificate was "
        "issued)" % (evidence / "gates" / "code.json"),
        "FAILED: subject summary.md: its sha256 does not match the file %s (edited after the certificate was issued)"
        % (evidence / "summary.md")]


def test_the_cli_threshold_overrides_the_keys_files(on_disk, capsys):
    cert, keys = on_disk
    code, lines, _err = run([cert, "--trusted-keys", keys, "--threshold", "3", "--at", "2026-12-02T07:00:00Z"], capsys)
    assert code == 1 and lines[1] == "FAILED: 2 distinct trusted approver key(s) signed (alice, bob); 3 required"


def test_the_cli_takes_the_evidence_folder_from_base_dir(on_disk, evidence, tmp_path, capsys):
    cert, keys = on_disk
    moved = tmp_path / "elsewhere"
    shutil.copytree(evidence, moved)
    os.unlink(evidence / "summary.md")
    assert run([cert, "--trusted-keys", keys, "--at", "2026-12-02T07:00:00Z"], capsys)[0] == 1
    assert run([cert, "--trusted-keys", keys, "--at", "2026-12-02T07:00:00Z", "--base-dir", str(moved)], capsys)[0] == 0


def test_the_cli_judges_the_window_at_the_current_time_by_default(on_disk, capsys, monkeypatch):
    cert, keys = on_disk
    monkeypatch.setattr(fa, "_utcnow", lambda: UNTIL + datetime.timedelta(hours=2))
    code, lines, _err = run([cert, "--trusted-keys", keys], capsys)
    assert code == 1 and lines[1] == "FAILED: expired: valid until 2026-12-03T06:00:00.000Z, it is now 2026-12-03T08:00:00.000Z"
    monkeypatch.setattr(fa, "_utcnow", lambda: AT)
    assert run([cert, "--trusted-keys", keys], capsys)[0] == 0


def test_the_cli_refuses_an_unreadable_or_malformed_certificate(tmp_path, on_disk, capsys):
    _cert, keys = on_disk
    missing = str(tmp_path / "none.json")
    assert run([missing, "--trusted-keys", keys], capsys)[:2] == (1, ["%s: REFUSED" % missing,
                                                                      "FAILED: unreadable: No such file or directory"])
    (tmp_path / "bad.json").write_text("{")
    assert run([str(tmp_path / "bad.json"), "--trusted-keys", keys], capsys)[1][1] == "FAILED: not JSON: not a DSSE envelope"


@pytest.mark.parametrize("document, extra, message", [
    ({"keys": TRUSTED["keys"]}, [], "the threshold (--threshold, or \"threshold\" in"),
    (TRUSTED, ["--threshold", "0"], "must be given, a whole number of at least 1"),
    (TRUSTED, ["--at", "2026-12-02T07:00:00"], "--at 2026-12-02T07:00:00: not an ISO-8601 time with its zone"),
    ({"keys": [dict(name="bob", public_key=PRIVATE["bob"])], "threshold": 1}, [], "trusted key 1 (bob): public_key is not"),
], ids=["no-threshold", "zero-threshold", "naive-time", "private-key-as-trusted"])
def test_the_cli_exits_2_on_a_usage_error_without_showing_keys(on_disk, tmp_path, capsys, document, extra, message):
    cert, _keys = on_disk
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps(document))
    with pytest.raises(SystemExit) as exit_:
        fa.main([cert, "--trusted-keys", str(keys)] + extra)
    out, err = capsys.readouterr()
    assert exit_.value.code == 2 and message in err and _leaks(out + err) == []


def test_the_script_wrapper_runs_this_module():
    with open(os.path.join(REPO, "scripts", "verify-certificate")) as handle:
        wrapper = handle.read()
    assert "python3 -m ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_attest" in wrapper
    assert os.access(os.path.join(REPO, "scripts", "verify-certificate"), os.X_OK)
