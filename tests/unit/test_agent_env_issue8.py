"""Regression tests for issue 8's findings on agent_env: secrets, concurrency, permissions.

(The grammar finding is covered by tests/unit/test_agent_env_grammar.py.) Each test is named
after the finding it pins down.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import stat

import pytest
from ansible_collections.fleetwave.rollout.plugins.module_utils.agent_env import (
    FLAG_KEY, EnvFile, add_entry, empty_manifest, make_entry, render_manifest,
)

pytestmark = pytest.mark.unit

URL_PW, API_KEY, NATS_PASS = "urlPw-77", "apiKey-88", "natsPass-99"
SECRETS = (URL_PW, API_KEY, NATS_PASS)
ORIGINAL = ("AGENT_NAME=network-expert\nNATS_URL=nats://agent:%s@nats.internal:4222\nAPI_KEY=%s\n"
            "NATS_PASS=%s\nENABLE_UNIFIED_SUBJECTS=false\n" % SECRETS).encode()


@pytest.fixture
def env(tmp_path):
    path = tmp_path / "agents" / "network-expert.env"
    path.parent.mkdir()
    path.write_bytes(ORIGINAL)
    path.chmod(0o600)
    return path


def assert_no_secret(result):
    shown = json.dumps(result)
    for secret in SECRETS:
        assert secret not in shown


def seed(backups, path, backup, content, created="2025-01-14T09:30:01.000000Z"):
    backups.mkdir(mode=0o700, exist_ok=True)
    entry = dict(make_entry(str(path), str(backup), content, __import__("datetime").datetime(2025, 1, 14)),
                 created=created, label="wave2/phase1", flag="false")
    (backups / "manifest.json").write_bytes(render_manifest(add_entry(empty_manifest(), entry)))


# --- Secrets -------------------------------------------------------------------------------------

def test_secrets_url_password_api_key_nats_pass_masked_in_values_previous_and_diff(agent_env):
    result = agent_env(values={FLAG_KEY: "true"}, backup=True, diff=True)
    assert result["changed"] and not result.get("failed")
    assert_no_secret(result)
    assert result["values"]["NATS_URL"] == "nats://***@nats.internal:4222"
    assert result["values"]["API_KEY"] == result["previous"]["NATS_PASS"] == "********"


def test_secrets_masked_by_agent_env_info(run_module, env, backups):
    result = run_module("agent_env_info", dict(paths=[str(env)], backup_dir=str(backups)))
    assert_no_secret(result)
    assert result["files"][str(env)]["values"]["NATS_URL"] == "nats://***@nats.internal:4222"


@pytest.mark.parametrize("text", [
    b"NATS_PASS=natsPass-99\nnatsPass-99\n",          # a stray password line
    b"NATS_PASS=x\nnatsPass-99 junk=1\n",             # ... that happens to hold an "="
    b"A=1\nNATS_PASS='natsPass-99\n",                 # an unterminated quote
], ids=["no-equals", "invalid-key", "unterminated"])
def test_secrets_parse_errors_name_file_and_line_but_never_echo_it(agent_env, env, text):
    env.write_bytes(text)
    result = agent_env(values={FLAG_KEY: "true"}, backup=True)
    assert result["failed"] and "%s line 2: " % env in result["msg"]
    assert_no_secret(result)


def test_secrets_password_continued_with_trailing_backslash_is_read_and_masked(agent_env, env):
    env.write_bytes(b"NATS_PASS=natsPass\\\n-99\nENABLE_UNIFIED_SUBJECTS=false\n")
    result = agent_env(values={FLAG_KEY: "true"}, diff=True)
    assert result["changed"] and result["previous"] == {"NATS_PASS": "********", FLAG_KEY: "false"}
    assert_no_secret(result)


def test_secrets_restore_diff_of_a_broken_file_shows_no_value(agent_env, env, backups):
    backup = backups / "network-expert.env.1"
    seed(backups, env, backup, ORIGINAL.replace(b"NATS_PASS", b"OTHER_PASS"))
    backup.write_bytes(ORIGINAL.replace(b"NATS_PASS", b"OTHER_PASS"))
    env.write_bytes(b"NATS_PASS=natsPass-99\nnatsPass-99\n")
    result = agent_env(state="restored", diff=True)
    assert result["changed"] and "content not shown" in result["diff"][0]["before"]
    assert_no_secret(result)


def test_secrets_require_mismatch_message_masks_a_url(agent_env, env, backups):
    backup = backups / "network-expert.env.1"
    seed(backups, env, backup, ORIGINAL)
    backup.write_bytes(ORIGINAL)
    result = agent_env(state="restored", require={"NATS_URL": "nats://agent:other@h:1"})
    assert result["failed"] and "nats://***@nats.internal:4222" in result["msg"]
    assert_no_secret(result)


# --- Concurrency ---------------------------------------------------------------------------------

WRITERS = 16


def _writer(run, i, barrier, results):
    barrier.wait()
    result = run(values={"KEY_%02d" % i: "v%d" % i}, backup=True, label="writer-%d" % i)
    results.put((i, bool(result.get("failed")), result.get("msg")))


def test_concurrency_16_parallel_writers_lose_no_manifest_entry_and_no_key(agent_env, env, backups):
    """Finding: 16 parallel writers kept 12 of 16 manifest entries and 11 of 16 keys."""
    ctx = multiprocessing.get_context("fork")  # children inherit the patched exit_json/fail_json
    barrier, results = ctx.Barrier(WRITERS), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(agent_env, i, barrier, results)) for i in range(WRITERS)]
    for p in procs:
        p.start()
    outcomes = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert [o for o in outcomes if o[1]] == []
    values = EnvFile.from_bytes(env.read_bytes(), str(env)).values
    assert sorted(k for k in values if k.startswith("KEY_")) == ["KEY_%02d" % i for i in range(WRITERS)]
    manifest = json.loads((backups / "manifest.json").read_text())
    assert sorted(b["label"] for b in manifest["backups"]) == sorted("writer-%d" % i for i in range(WRITERS))
    assert len({b["backup"] for b in manifest["backups"]}) == WRITERS
    assert all(os.path.exists(b["backup"]) for b in manifest["backups"])


# --- Permissions ---------------------------------------------------------------------------------

def test_permissions_0600_env_file_stays_0600(agent_env, env):
    """Finding: the module's default mode turned a 0600 env file into 0640."""
    assert agent_env(values={FLAG_KEY: "true"}, backup=True)["changed"]
    assert stat.S_IMODE(env.stat().st_mode) == 0o600


def test_permissions_mode_changes_only_when_asked(agent_env, env):
    assert agent_env(values={FLAG_KEY: "true"}, mode="0640")["changed"]
    assert stat.S_IMODE(env.stat().st_mode) == 0o640


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files away needs root")
def test_permissions_owner_of_env_file_and_backup_kept(agent_env, env):
    os.chown(env, 4321, 4322)
    result = agent_env(values={FLAG_KEY: "true"}, backup=True)
    for path in (env, result["backup_file"]):
        st = os.stat(path)
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (4321, 4322, 0o600)


def test_permissions_symlinked_env_file_refused_and_target_untouched(agent_env, env, tmp_path):
    """Finding: a symlinked env file had its target edited and re-moded."""
    target = tmp_path / "elsewhere.env"
    env.rename(target)
    env.symlink_to(target)
    result = agent_env(values={FLAG_KEY: "true"})
    assert result["failed"] and "is a symlink" in result["msg"] and "follow=true" in result["msg"]
    assert target.read_bytes() == ORIGINAL and stat.S_IMODE(target.stat().st_mode) == 0o600


def test_permissions_symlinked_env_file_followed_when_asked(agent_env, env, tmp_path):
    target = tmp_path / "elsewhere.env"
    env.rename(target)
    env.symlink_to(target)
    assert agent_env(values={FLAG_KEY: "true"}, follow=True)["changed"]
    assert env.is_symlink() and b"ENABLE_UNIFIED_SUBJECTS=true" in target.read_bytes()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_permissions_existing_0777_backup_dir_tightened_to_0700(agent_env, backups):
    """Finding: an existing backup directory kept a 0777 mode."""
    backups.mkdir()
    backups.chmod(0o777)
    result = agent_env(values={FLAG_KEY: "true"}, backup=True)
    assert result["changed"] and stat.S_IMODE(backups.stat().st_mode) == 0o700


def test_permissions_new_backup_dir_is_0700(agent_env, backups):
    assert agent_env(values={FLAG_KEY: "true"}, backup=True)["changed"]
    assert stat.S_IMODE(backups.stat().st_mode) == 0o700


def test_permissions_symlinked_backup_dir_refused(agent_env, env, backups, tmp_path):
    """Finding: symlinks were followed in the backup directory."""
    real = tmp_path / "real-backups"
    real.mkdir(mode=0o700)
    backups.symlink_to(real)
    result = agent_env(values={FLAG_KEY: "true"}, backup=True)
    assert result["failed"] and "symlink" in result["msg"]
    assert env.read_bytes() == ORIGINAL and list(real.iterdir()) == []


def test_permissions_symlinked_manifest_refused(agent_env, env, backups, tmp_path):
    backups.mkdir(mode=0o700)
    (tmp_path / "m.json").write_text('{"version": 1, "backups": []}')
    (backups / "manifest.json").symlink_to(tmp_path / "m.json")
    result = agent_env(values={FLAG_KEY: "true"}, backup=True)
    assert result["failed"] and "symlink" in result["msg"] and env.read_bytes() == ORIGINAL


def test_permissions_restore_refuses_a_manifest_entry_outside_the_backup_dir(agent_env, env, backups, tmp_path):
    """Finding: restore opened whatever path the manifest named."""
    outside = tmp_path / "not-a-backup"
    outside.write_bytes(b"ENABLE_UNIFIED_SUBJECTS=false\nPLANTED=1\n")
    seed(backups, env, outside, outside.read_bytes())
    env.write_bytes(ORIGINAL.replace(b"=false", b"=true"))
    result = agent_env(state="restored")
    assert result["failed"] and "outside the backup directory" in result["msg"]
    assert b"PLANTED" not in env.read_bytes()


def test_permissions_restore_refuses_a_symlink_inside_the_backup_dir(agent_env, env, backups, tmp_path):
    outside = tmp_path / "not-a-backup"
    outside.write_bytes(b"ENABLE_UNIFIED_SUBJECTS=false\nPLANTED=1\n")
    seed(backups, env, backups / "network-expert.env.1", outside.read_bytes())
    (backups / "network-expert.env.1").symlink_to(outside)
    env.write_bytes(ORIGINAL.replace(b"=false", b"=true"))
    result = agent_env(state="restored")
    assert result["failed"] and "symlink" in result["msg"] and b"PLANTED" not in env.read_bytes()


def test_secrets_passed_in_values_are_scrubbed_from_the_echoed_module_args(env, backups, capsys):
    """The flip/install tasks' invocation (shown with -vvv) must not hold a URL password either."""
    from ansible.module_utils.testing import patch_module_args

    from tests.unit.conftest import load_module
    args = dict(path=str(env), backup_dir=str(backups), secret_keys=["ODD_NAME"],
                values={"NATS_URL": "nats://agent:%s@nats.internal:4222" % URL_PW, "ODD_NAME": API_KEY})
    with patch_module_args(args), pytest.raises(SystemExit):
        load_module("agent_env").main()
    out = json.loads(capsys.readouterr().out)
    assert out["changed"] and "module_args" in out["invocation"]
    assert_no_secret(out)


def test_grammar_cr_flag_seen_by_agent_env_info_so_rollback_does_not_skip_the_agent(run_module, tmp_path):
    """Finding: `FOO=1\\rENABLE_UNIFIED_SUBJECTS=true` was reported absent and the rollback skipped the
    agent as 'never flipped' although systemd ran it with the flag on."""
    from ansible_collections.fleetwave.rollout.plugins.filter.fleet import rollback_actions
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "network-expert.env").write_bytes(b"FOO=1\rENABLE_UNIFIED_SUBJECTS=true\n")
    result = run_module("agent_env_info", dict(paths=[str(agents / "network-expert.env")],
                                               backup_dir=str(tmp_path / "backups")))
    assert result["files"][str(agents / "network-expert.env")]["unified"] is True
    actions = rollback_actions(result["files"], ["network-expert"], str(agents), "h1")
    assert actions["skip"] == [] and "the flag is on" in actions["errors"][0]
