"""plugins/modules/agent_env_info.py: read-only report of env files and their backups."""

from __future__ import annotations

import datetime

import pytest
from ansible_collections.fleetwave.rollout.plugins.module_utils.agent_env import MASK, add_entry, empty_manifest, make_entry, render_manifest

pytestmark = pytest.mark.unit


@pytest.fixture
def agents(tmp_path):
    d = tmp_path / "agents"
    d.mkdir()
    (d / "on.env").write_text("AGENT_NAME=on\nNATS_PASSWORD=hunter2\nENABLE_UNIFIED_SUBJECTS=Yes\n")
    (d / "nokey.env").write_text("AGENT_NAME=nokey\n")
    (d / "dup.env").write_text("ENABLE_UNIFIED_SUBJECTS=false\nA=1\nENABLE_UNIFIED_SUBJECTS=true\n")
    (d / "maybe.env").write_text("ENABLE_UNIFIED_SUBJECTS=maybe\n")
    return d


@pytest.fixture
def info(run_module, tmp_path):
    def run(*paths, check=False, **args):
        args = dict(dict(paths=[str(p) for p in paths], backup_dir=str(tmp_path / "backups")), **args)
        return run_module("agent_env_info", args, check=check)
    return run


def test_reports_values_masked_and_flag(info, agents):
    result = info(agents / "on.env")
    on = result["files"][str(agents / "on.env")]
    assert not result["changed"]
    assert on["exists"] and on["unified"] is True and on["error"] is None
    assert on["values"] == {"AGENT_NAME": "on", "NATS_PASSWORD": MASK, "ENABLE_UNIFIED_SUBJECTS": "Yes"}


def test_absent_key_and_missing_file_give_null_flag(info, agents):
    files = info(agents / "nokey.env", agents / "gone.env")["files"]
    assert files[str(agents / "nokey.env")]["unified"] is None
    gone = files[str(agents / "gone.env")]
    assert gone["exists"] is False and gone["unified"] is None and gone["values"] == {}


def test_backups_listed_newest_first(info, agents, tmp_path):
    path = str(agents / "on.env")
    manifest = empty_manifest()
    for second, label in [(1, "wave2/phase1"), (3, "pre-restore"), (2, "wave2/phase2")]:
        created = datetime.datetime(2025, 1, 14, 9, 30, second, tzinfo=datetime.timezone.utc)
        manifest = add_entry(manifest, make_entry(path, "b%d" % second, b"", created, label))
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "manifest.json").write_bytes(render_manifest(manifest))
    backups = info(path)["files"][path]["backups"]
    assert [b["label"] for b in backups] == ["pre-restore", "wave2/phase2", "wave2/phase1"]


@pytest.mark.parametrize("name, where", [("dup.env", "line 3"), ("maybe.env", "line 1")])
def test_malformed_file_fails_by_default_naming_path_and_line(info, agents, name, where):
    result = info(agents / "on.env", agents / name)
    assert result["failed"] and result["msg"].startswith("%s %s: " % (agents / name, where))


def test_malformed_file_reported_per_file_when_asked(info, agents):
    files = info(agents / "dup.env", agents / "on.env", fail_on_malformed=False)["files"]
    dup = files[str(agents / "dup.env")]
    assert dup["error"] == ("%s line 3: 'ENABLE_UNIFIED_SUBJECTS' is defined twice (first on line 1)"
                            % (agents / "dup.env"))
    assert dup["exists"] and dup["unified"] is None and dup["values"] == {}
    assert files[str(agents / "on.env")]["unified"] is True


def test_malformed_manifest_fails_naming_it(info, agents, tmp_path):
    (tmp_path / "backups").mkdir()
    (tmp_path / "backups" / "manifest.json").write_text("{oops")
    result = info(agents / "on.env", fail_on_malformed=False)
    assert result["failed"] and str(tmp_path / "backups" / "manifest.json") in result["msg"]


def test_check_mode_reports_the_same(info, agents):
    assert info(agents / "on.env", check=True) == info(agents / "on.env")


def test_documentation_matches_argument_spec(check_docs):
    check_docs("agent_env_info")
