"""plugins/modules/agent_env.py: set keys with backups, restore them, honour check and diff mode."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import stat

import pytest
from ansible_collections.fleetwave.rollout.plugins.module_utils.agent_env import FLAG_KEY, MASK, add_entry, load_manifest, make_entry, render_manifest

pytestmark = pytest.mark.unit


def at(second):
    return datetime.datetime(2025, 1, 14, 9, 30, second, 123456, tzinfo=datetime.timezone.utc)


ORIGINAL = b"# network-expert\nAGENT_NAME=network-expert\nNATS_PASSWORD='hunter2'\nENABLE_UNIFIED_SUBJECTS=false\n"


@pytest.fixture
def env(tmp_path):
    path = tmp_path / "agents" / "network-expert.env"
    path.parent.mkdir()
    path.write_bytes(ORIGINAL)
    path.chmod(0o640)
    return path


def snapshot(*paths):
    """Bytes of every file under the given paths, to prove nothing was written."""
    files = {}
    for root in map(str, paths):
        for dirpath, _, names in os.walk(root):
            for name in names:
                with open(os.path.join(dirpath, name), "rb") as f:
                    files[os.path.join(dirpath, name)] = f.read()
    return files


def no_backups(backups):
    """No backup and no manifest (the directory itself holds the host lock, so may exist)."""
    return not backups.exists() or [p.name for p in backups.iterdir()] == [".lock"]


def seed_backup(backups, path, content, second, label, sha=None):
    """Put a backup and its manifest entry in place, as an earlier run would have."""
    backups.mkdir(exist_ok=True)
    backup = backups / ("network-expert.env.%d" % second)
    backup.write_bytes(content)
    entry = make_entry(str(path), str(backup), content, at(second), label)
    if sha:
        entry["sha256"] = sha
    manifest = add_entry(load_manifest(str(backups)), entry)
    (backups / "manifest.json").write_bytes(render_manifest(manifest))
    return backup


# --- state=present -------------------------------------------------------------------------------

def test_creates_missing_file_and_parent(run_module, tmp_path):
    path = tmp_path / "etc" / "agents" / "new.env"
    result = run_module("agent_env", dict(path=str(path), values={"AGENT_NAME": "new"}))
    assert result["changed"] and result["changed_keys"] == ["AGENT_NAME"]
    assert path.read_text() == "AGENT_NAME=new\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # it may hold a password; mode= asks for more
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o755


def test_sets_flag_keeping_comments_and_order(agent_env, env):
    result = agent_env(values={FLAG_KEY: True, "NATS_URL": "nats://127.0.0.1:4222"})
    assert result["changed"] and result["changed_keys"] == [FLAG_KEY, "NATS_URL"]
    assert env.read_bytes() == ORIGINAL.replace(b"=false", b"=true") + b"NATS_URL=nats://127.0.0.1:4222\n"


def test_defaults_do_not_override(agent_env, env):
    env.write_bytes(ORIGINAL.replace(b"=false", b"=true"))
    result = agent_env(defaults={FLAG_KEY: "false", "NATS_URL": "nats://a:4222"})
    assert result["changed_keys"] == ["NATS_URL"]
    assert result["values"][FLAG_KEY] == "true"


def test_no_backup_without_change(agent_env, backups):
    result = agent_env(values={FLAG_KEY: "false"}, backup=True)
    assert not result["changed"] and result["backup_file"] is None
    assert no_backups(backups)


def test_backup_taken_on_change_with_manifest_entry(agent_env, env, backups):
    env.chmod(0o600)
    result = agent_env(values={FLAG_KEY: "true"}, backup=True, label="wave2/phase1", mode="0600")
    backup = result["backup_file"]
    assert os.path.dirname(backup) == str(backups) and open(backup, "rb").read() == ORIGINAL
    assert stat.S_IMODE(os.stat(backup).st_mode) == 0o600
    assert stat.S_IMODE(backups.stat().st_mode) == 0o700
    [entry] = json.loads((backups / "manifest.json").read_text())["backups"]
    assert entry["path"] == str(env) and entry["backup"] == backup
    assert entry["label"] == "wave2/phase1" and entry["flag"] == "false"
    assert entry["sha256"] == hashlib.sha256(ORIGINAL).hexdigest()
    assert entry["created"].endswith("Z") and len(entry["created"]) == len("2025-01-14T09:30:00.123456Z")
    assert backup.endswith(entry["created"].replace("-", "").replace(":", "").replace(".", ""))


def test_second_identical_call_is_idempotent(agent_env, backups):
    assert agent_env(values={FLAG_KEY: "true"}, backup=True)["changed"]
    manifest = (backups / "manifest.json").read_bytes()
    again = agent_env(values={FLAG_KEY: "true"}, backup=True)
    assert not again["changed"] and again["backup_file"] is None and again["changed_keys"] == []
    assert (backups / "manifest.json").read_bytes() == manifest


def test_malformed_file_fails_with_path_and_line_and_is_untouched(agent_env, env, backups):
    env.write_bytes(b"A=1\nA=2\n")
    result = agent_env(values={FLAG_KEY: "true"}, backup=True)
    assert result["failed"]
    assert result["msg"] == "%s line 2: 'A' is defined twice (first on line 1); nothing changed" % env
    assert env.read_bytes() == b"A=1\nA=2\n" and no_backups(backups)


def test_invalid_flag_value_is_refused(agent_env, env):
    result = agent_env(values={FLAG_KEY: "maybe"})
    assert result["failed"] and "is not a boolean" in result["msg"] and str(env) in result["msg"]
    assert env.read_bytes() == ORIGINAL


def test_check_mode_writes_nothing(agent_env, env, backups, tmp_path):
    before = snapshot(tmp_path)
    result = agent_env(check=True, diff=True, values={FLAG_KEY: "true"}, backup=True, mode="0600")
    assert result["changed"] and result["values"][FLAG_KEY] == "true"
    assert result["backup_file"].startswith(str(backups))
    assert snapshot(tmp_path) == before and not backups.exists()
    assert stat.S_IMODE(env.stat().st_mode) == 0o640


def test_check_mode_does_not_create_a_missing_file(run_module, tmp_path):
    path = tmp_path / "agents" / "new.env"
    result = run_module("agent_env", dict(path=str(path), values={"A": "1"}), check=True)
    assert result["changed"] and not path.parent.exists()


def test_diff_shows_before_and_after_text(agent_env, env):
    result = agent_env(diff=True, values={FLAG_KEY: "true"})
    text = result["diff"][0]
    assert "ENABLE_UNIFIED_SUBJECTS=false" in text["before"] and "ENABLE_UNIFIED_SUBJECTS=true" in text["after"]
    assert text["before_header"] == str(env)


def test_mode_change_alone_is_a_change_with_attribute_diff(agent_env, env):
    result = agent_env(diff=True, mode="0600")
    assert result["changed"] and result["changed_keys"] == []
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert result["diff"][1]["after"]["mode"] == "0600"


def test_secrets_masked_in_values_previous_and_diff(agent_env):
    result = agent_env(diff=True, values={FLAG_KEY: "true"}, secret_values={"NATS_USER_PASS": "s3cr3t-new"},
                       secret_keys=["CERT_BLOB"], defaults={"CERT_BLOB": "blob-value"})
    assert result["previous"]["NATS_PASSWORD"] == MASK
    assert result["values"]["NATS_PASSWORD"] == MASK
    assert result["values"]["NATS_USER_PASS"] == MASK and result["values"]["CERT_BLOB"] == MASK
    dumped = json.dumps(result)
    for secret in ("hunter2", "s3cr3t-new", "blob-value"):
        assert secret not in dumped


def test_options_of_the_other_state_are_refused(agent_env, env):
    result = agent_env(state="restored", values={FLAG_KEY: "false"})
    assert result["failed"] and "values cannot be used with state=restored" in result["msg"]


# --- state=restored ------------------------------------------------------------------------------

def test_restore_fails_without_backup_and_changes_nothing(agent_env, env, backups):
    result = agent_env(state="restored")
    assert result["failed"]
    assert result["msg"] == "no backup recorded for %s in %s; nothing to restore" % (env, backups / "manifest.json")
    assert env.read_bytes() == ORIGINAL


def test_restore_picks_newest_backup_that_is_not_pre_restore(agent_env, env, backups):
    seed_backup(backups, env, b"GEN=1\n", 1, "wave2/phase1")
    wanted = seed_backup(backups, env, b"GEN=2\n", 2, "wave2/phase2")
    seed_backup(backups, env, b"GEN=3\n", 3, "pre-restore")
    result = agent_env(state="restored")
    assert result["changed"] and result["restored_from"] == str(wanted)
    assert env.read_bytes() == b"GEN=2\n"


def test_restore_backs_up_the_current_file_as_pre_restore(agent_env, env, backups):
    seed_backup(backups, env, b"GEN=1\n", 1, "wave2/phase1")
    result = agent_env(state="restored")
    assert open(result["backup_file"], "rb").read() == ORIGINAL
    newest = load_manifest(str(backups))["backups"][-1]
    assert newest["label"] == "pre-restore" and newest["flag"] == "false" and newest["backup"] == result["backup_file"]


def test_restore_round_trip_and_idempotence(agent_env, env, backups):
    agent_env(values={FLAG_KEY: "true"}, backup=True)
    result = agent_env(state="restored", require={FLAG_KEY: False})
    assert result["changed"] and env.read_bytes() == ORIGINAL
    assert result["values"][FLAG_KEY] == "false" and result["previous"][FLAG_KEY] == "true"
    assert result["changed_keys"] == [FLAG_KEY]
    manifest = (backups / "manifest.json").read_bytes()
    again = agent_env(state="restored", require={FLAG_KEY: "0"})
    assert not again["changed"] and again["backup_file"] is None
    assert (backups / "manifest.json").read_bytes() == manifest


def test_restore_refuses_changed_backup(agent_env, env, backups):
    seed_backup(backups, env, b"GEN=1\n", 1, "wave2/phase1", sha="0" * 64)
    result = agent_env(state="restored")
    assert result["failed"] and "has sha256" in result["msg"] and "0" * 64 in result["msg"]
    assert env.read_bytes() == ORIGINAL


def test_restore_refuses_missing_backup_file(agent_env, env, backups):
    seed_backup(backups, env, b"GEN=1\n", 1, "wave2/phase1").unlink()
    result = agent_env(state="restored")
    assert result["failed"] and "cannot be read" in result["msg"] and str(env) in result["msg"]
    assert env.read_bytes() == ORIGINAL


def test_restore_refuses_backup_violating_require(agent_env, env, backups):
    backup = seed_backup(backups, env, b"ENABLE_UNIFIED_SUBJECTS=true\n", 1, "wave2/phase1")
    manifest = (backups / "manifest.json").read_bytes()
    result = agent_env(state="restored", require={FLAG_KEY: "false"})
    assert result["failed"]
    assert result["msg"] == ("backup %s for %s has ENABLE_UNIFIED_SUBJECTS=true but require says "
                             "ENABLE_UNIFIED_SUBJECTS=false; not restoring, nothing changed" % (backup, env))
    assert env.read_bytes() == ORIGINAL and (backups / "manifest.json").read_bytes() == manifest


def test_restore_require_masks_secrets(agent_env, env, backups):
    seed_backup(backups, env, b"NATS_TOKEN=abc\n", 1, "wave2/phase1")
    result = agent_env(state="restored", require={"NATS_TOKEN": "xyz"})
    assert result["failed"] and "abc" not in result["msg"] and "xyz" not in result["msg"]


def test_restore_check_mode_writes_nothing(agent_env, env, backups, tmp_path):
    seed_backup(backups, env, b"GEN=1\n", 1, "wave2/phase1")
    before = snapshot(tmp_path)
    result = agent_env(state="restored", check=True, diff=True)
    assert result["changed"] and result["diff"][0]["after"] == "GEN=1\n"
    assert snapshot(tmp_path) == before


def test_restore_diff_masks_secrets(agent_env, env, backups):
    seed_backup(backups, env, b"NATS_PASSWORD=older-secret\n", 1, "wave2/phase1")
    result = agent_env(state="restored", diff=True)
    assert "hunter2" not in json.dumps(result) and "older-secret" not in json.dumps(result)
    assert result["diff"][0]["after"] == "NATS_PASSWORD=%s\n" % MASK


def test_documentation_matches_argument_spec(check_docs):
    check_docs("agent_env")


def test_restore_refuses_backup_missing_a_required_key(agent_env, env, backups):
    seed_backup(backups, env, b"A=1\n", 1, "wave2/phase1")
    result = agent_env(state="restored", require={FLAG_KEY: "false"})
    assert result["failed"] and "is missing ENABLE_UNIFIED_SUBJECTS" in result["msg"]
    assert env.read_bytes() == ORIGINAL


def test_unwritable_backup_dir_fails_clearly(agent_env, env, tmp_path):
    (tmp_path / "backups").write_text("a file, not a directory")
    result = agent_env(values={FLAG_KEY: "true"}, backup=True)
    assert result["failed"] and result["msg"].startswith("could not update %s (backups in " % env)
    assert env.read_bytes() == ORIGINAL


# --- state=restored with restore_from (a rollback rehearsal putting back what it rolled back) -----

def test_restore_from_puts_back_a_named_pre_restore_backup_byte_for_byte(agent_env, env, backups):
    env.write_bytes(ORIGINAL.replace(b"=false", b"=true") + b"# edited after the wave\n")
    certified = env.read_bytes()
    seed_backup(backups, env, ORIGINAL, 1, "wave2/phase1")
    rolled = agent_env(state="restored", require={FLAG_KEY: False})
    assert env.read_bytes() == ORIGINAL
    put_back = agent_env(state="restored", restore_from=rolled["backup_file"])
    assert put_back["changed"] and put_back["restored_from"] == rolled["backup_file"]
    assert env.read_bytes() == certified
    # The newest backup a real rollback would take is still the one from before the flip.
    assert agent_env(state="restored", require={FLAG_KEY: False}, check=True)["restored_from"] == \
        str(backups / "network-expert.env.1")


def test_restore_from_refuses_a_backup_not_recorded_for_the_file(agent_env, env, backups):
    seed_backup(backups, env, b"GEN=1\n", 1, "wave2/phase1")
    result = agent_env(state="restored", restore_from=str(backups / "other.env.1"))
    assert result["failed"] and "restore_from %s is not a backup recorded for %s" % (backups / "other.env.1", env) \
        in result["msg"]
    assert env.read_bytes() == ORIGINAL


def test_restore_from_is_refused_with_state_present(agent_env, env):
    result = agent_env(values={FLAG_KEY: "true"}, restore_from="/var/lib/fleetwave/backups/x")
    assert result["failed"] and "restore_from cannot be used with state=present" in result["msg"]
