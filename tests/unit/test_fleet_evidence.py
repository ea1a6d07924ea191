"""fleet_evidence: keyed signatures over the artifacts a later step trusts (issue 8 part 6,
"Artifacts are trusted as input"), and their use by the artifact store and the run journal."""

from __future__ import annotations

import hashlib
import json

import pytest
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_evidence as ev
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import ArtifactStore, Layout
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_journal import Journal, JournalError, previous_outcome

pytestmark = pytest.mark.unit

SECRET = "unit-tests-evidence-key-not-a-secret"
KEY = ev.EvidenceKey(SECRET)


def test_key_id_is_the_first_8_hex_of_the_keys_sha256_and_the_key_shows_nowhere():
    assert KEY.key_id == hashlib.sha256(SECRET.encode()).hexdigest()[:8]
    assert SECRET not in repr(KEY) + str(KEY) + repr(vars(KEY).get("key_id"))


@pytest.mark.parametrize("value", [None, ""])
def test_no_key_configured_is_none(value):
    assert ev.key_from(value) is None


def test_a_short_key_is_refused_without_showing_it():
    with pytest.raises(ev.EvidenceError) as err:
        ev.key_from("short-s3cret")
    assert "fleet_evidence_key is not a usable key" in str(err.value) and "short-s3cret" not in str(err.value)


def test_sealed_record_verifies_and_any_edit_is_named():
    sealed = ev.seal(KEY, dict(wave="wave1", outcome="NO-GO"))
    assert ev.verify(KEY, sealed, "d.json") == sealed
    with pytest.raises(ev.EvidenceError, match=r"^d.json: the hmac-sha256 signature \(key %s\) does not match" % KEY.key_id):
        ev.verify(KEY, dict(sealed, outcome="GO"), "d.json")


def test_a_plain_hash_recomputed_without_the_key_is_not_a_signature():
    forged = dict(wave="wave1", outcome="GO")
    forged["evidence"] = dict(alg="hmac-sha256", key_id=KEY.key_id, mac=hashlib.sha256(ev.canonical(forged)).hexdigest())
    with pytest.raises(ev.EvidenceError, match="does not match its content"):
        ev.verify(KEY, forged, "d.json")


def test_unsigned_and_other_key_are_named():
    with pytest.raises(ev.EvidenceError, match="d.json: not signed"):
        ev.verify(KEY, dict(outcome="GO"), "d.json")
    other = ev.EvidenceKey("another-evidence-key-0123456789")
    with pytest.raises(ev.EvidenceError, match="d.json: signed with key %s, but the configured fleet_evidence_key is "
                                               "key %s" % (other.key_id, KEY.key_id)):
        ev.verify(KEY, ev.seal(other, dict(outcome="GO")), "d.json")


def test_without_a_key_seal_leaves_the_record_as_it_is():
    assert ev.seal(None, dict(a=1)) == dict(a=1)


def test_manifest_is_signed_and_a_recomputed_manifest_is_refused(tmp_path):
    store = ArtifactStore(tmp_path)
    store.write_json("cp/decision.json", dict(outcome="NO-GO"))
    store.write_manifest("cp", KEY)
    store.verify_manifest("cp", KEY)
    # An edit with the manifest recomputed, as anyone who can write the folder could do.
    store.write_json("cp/decision.json", dict(outcome="GO"))
    (tmp_path / "cp/MANIFEST.sha256").write_text("%s  decision.json\n" % hashlib.sha256(
        (tmp_path / "cp/decision.json").read_bytes()).hexdigest())
    with pytest.raises(ev.EvidenceError, match=r"cp/MANIFEST.sha256: the hmac-sha256 signature .* does not match"):
        store.verify_manifest("cp", KEY)


def test_manifest_names_a_file_edited_after_signing(tmp_path):
    store = ArtifactStore(tmp_path)
    store.write_json("cp/decision.json", dict(outcome="NO-GO"))
    store.write_manifest("cp", KEY)
    store.write_json("cp/decision.json", dict(outcome="GO"))
    with pytest.raises(ev.EvidenceError, match="decision.json does not match its signed hash"):
        store.verify_manifest("cp", KEY)


def test_signed_journal_refuses_a_line_added_by_hand(tmp_path):
    store = ArtifactStore(tmp_path)
    journal = Journal(store, "run-1", KEY)
    journal.append("wave1", "run", outcome="ok")
    assert journal.records()[0]["evidence"]["key_id"] == KEY.key_id
    with open(tmp_path / "runs/run-1/journal.jsonl", "a") as handle:
        handle.write(json.dumps(dict(seq=2, run_id="run-1", wave="wave1", step="approval", outcome="accepted")) + "\n")
    with pytest.raises(JournalError, match=r"journal.jsonl record 2: not signed"):
        journal.records()
    with pytest.raises(JournalError, match="record 2: not signed"):
        journal.append("wave1", "preflight", outcome="ok")  # nothing is appended after a forged line
    assert len(Journal(store, "run-1").records()) == 2


def test_previous_outcome_needs_the_decision_signed_for_that_wave(tmp_path):
    store = ArtifactStore(tmp_path)
    store.write_json(Layout.wave_decision("wave1"), ev.seal(KEY, dict(wave="wave1", outcome="GO")))
    assert previous_outcome(store, "wave1", KEY) == "GO"
    store.write_json(Layout.wave_decision("wave1"), dict(wave="wave1", outcome="GO"))
    with pytest.raises(ev.EvidenceError, match="checkpoints/wave1/decision.json: not signed"):
        previous_outcome(store, "wave1", KEY)
    store.write_json(Layout.wave_decision("wave1"), ev.seal(KEY, dict(wave="wave2", outcome="GO")))
    with pytest.raises(ev.EvidenceError, match="signed for wave 'wave2', not 'wave1'"):
        previous_outcome(store, "wave1", KEY)
