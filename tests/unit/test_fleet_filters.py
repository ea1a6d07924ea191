"""plugins/filter/fleet.py: rollback decisions per agent, restart baselines and ping summaries."""

from __future__ import annotations

import importlib.util
import pathlib

import pytest

pytestmark = pytest.mark.unit

REPO = pathlib.Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("fleetwave_filter_fleet", REPO / "plugins/filter/fleet.py")
fleet = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fleet)

ENV_DIR = "/etc/agents"
HOST = "dgx-2"


def backup(created, label="wave2/phase1", flag="false"):
    return dict(backup="/var/lib/fleetwave/backups/x.env.%s" % created, created=created, label=label, flag=flag)


def info(unified=True, backups=(), exists=True):
    """One entry of agent_env_info's `files` (backups newest first, as backups_for returns them)."""
    return dict(exists=exists, unified=unified if exists else None, backups=list(backups))


def files(**by_agent):
    return {"%s/%s.env" % (ENV_DIR, name.replace("_", "-")): entry for name, entry in by_agent.items()}


def actions(files_, agents, strict=False, env_dir=ENV_DIR):
    return fleet.rollback_actions(files_, agents, env_dir, HOST, strict)


# --- rollback_actions ----------------------------------------------------------------------------

def test_restores_the_newest_backup():
    newest, older = backup("2025-01-14T09:31:00.000000Z"), backup("2025-01-14T09:30:00.000000Z")
    result = actions(files(tdd_expert=info(backups=[newest, older])), ["tdd-expert"])
    assert result == dict(restore=[dict(agent="tdd-expert", backup=newest["backup"], created=newest["created"],
                                        label="wave2/phase1", unified_before=True)], skip=[], errors=[])


def test_pre_restore_copies_are_passed_over():
    pre = backup("2025-01-14T10:00:00.000000Z", label="pre-restore", flag="true")
    flip = backup("2025-01-14T09:30:00.000000Z")
    [restore] = actions(files(tdd_expert=info(backups=[pre, flip])), ["tdd-expert"])["restore"]
    assert restore["backup"] == flip["backup"]


@pytest.mark.parametrize("flag", ["false", "FALSE", " False ", "0", "no", "No"])
def test_every_false_spelling_of_the_backup_flag_is_restorable(flag):
    result = actions(files(tdd_expert=info(backups=[backup("t1", flag=flag)])), ["tdd-expert"])
    assert [r["agent"] for r in result["restore"]] == ["tdd-expert"] and result["errors"] == []


@pytest.mark.parametrize("flag", ["true", "1", "yes", None])
def test_backup_without_the_flag_off_is_refused(flag):
    newest = backup("t2", flag=flag)
    result = actions(files(tdd_expert=info(backups=[newest, backup("t1")])), ["tdd-expert"])
    assert result["restore"] == [] and result["skip"] == []
    assert result["errors"] == ["tdd-expert on dgx-2: the newest backup %s has the flag %r, so restoring it would "
                                "not roll back; refusing" % (newest["backup"], flag)]


@pytest.mark.parametrize("entry", [None, info(exists=False)])
def test_missing_env_file_is_skipped_when_not_strict(entry):
    result = actions({} if entry is None else files(git_expert=entry), ["git-expert"])
    assert result == dict(restore=[], skip=[dict(agent="git-expert", reason="not installed")], errors=[])


@pytest.mark.parametrize("entry", [None, info(exists=False)])
def test_missing_env_file_is_an_error_when_strict(entry):
    result = actions({} if entry is None else files(git_expert=entry), ["git-expert"], strict=True)
    assert result["skip"] == [] and result["errors"] == [
        "git-expert on dgx-2: /etc/agents/git-expert.env does not exist; the agent is not installed here"]


def test_flag_on_without_backup_is_an_error_even_when_not_strict():
    [error] = actions(files(tdd_expert=info(unified=True)), ["tdd-expert"])["errors"]
    assert error.startswith("tdd-expert on dgx-2: the flag is on in /etc/agents/tdd-expert.env but no backup is "
                            "recorded; nothing to restore")


def test_only_pre_restore_backups_count_as_no_backup():
    pre = backup("t3", label="pre-restore")
    [error] = actions(files(tdd_expert=info(unified=True, backups=[pre])), ["tdd-expert"])["errors"]
    assert "no backup is recorded" in error


@pytest.mark.parametrize("unified", [False, None])
def test_never_flipped_agent_is_skipped_when_not_strict(unified):
    result = actions(files(graph_expert=info(unified=unified)), ["graph-expert"])
    assert result == dict(restore=[], skip=[dict(agent="graph-expert", reason="never flipped, already legacy-only")],
                          errors=[])


def test_never_flipped_agent_is_an_error_when_strict():
    result = actions(files(graph_expert=info(unified=False)), ["graph-expert"], strict=True)
    assert result["errors"] == ["graph-expert on dgx-2: no backup recorded for /etc/agents/graph-expert.env; "
                                "nothing to restore (the agent was never flipped by a wave)"]


def test_env_dir_with_trailing_slash_finds_the_same_files():
    result = actions(files(tdd_expert=info(backups=[backup("t1")])), ["tdd-expert"], env_dir="/etc/agents/")
    assert [r["agent"] for r in result["restore"]] == ["tdd-expert"]


def test_agents_are_sorted_into_their_outcome_in_the_given_order():
    data = files(tdd_expert=info(backups=[backup("t1")]), network_expert=info(backups=[backup("t2")]),
                 graph_expert=info(unified=False), nats_expert=info(unified=True))
    result = actions(data, ["tdd-expert", "git-expert", "graph-expert", "network-expert", "nats-expert"])
    assert [r["agent"] for r in result["restore"]] == ["tdd-expert", "network-expert"]
    assert [s["agent"] for s in result["skip"]] == ["git-expert", "graph-expert"]
    assert len(result["errors"]) == 1 and result["errors"][0].startswith("nats-expert on dgx-2:")


def test_agents_not_asked_for_are_ignored():
    result = actions(files(tdd_expert=info(backups=[backup("t1")])), [])
    assert result == dict(restore=[], skip=[], errors=[])


# --- fleet_restart_counts ------------------------------------------------------------------------

def test_restart_counts_per_host_and_agent():
    units = {"dgx-1": {"tdd-expert": dict(active_state="active", n_restarts=0),
                       "graph-expert": dict(active_state="active", n_restarts=3)},
             "dgx-2": {"tdd-expert": dict(active_state="failed", n_restarts=7)}}
    assert fleet.fleet_restart_counts(units) == {"dgx-1": {"tdd-expert": 0, "graph-expert": 3},
                                                 "dgx-2": {"tdd-expert": 7}}


def test_restart_counts_tolerate_missing_units_and_hosts():
    units = {"dgx-1": {"tdd-expert": None, "graph-expert": {}}, "dgx-3": None}
    assert fleet.fleet_restart_counts(units) == {"dgx-1": {"tdd-expert": None, "graph-expert": None}, "dgx-3": {}}


# --- fleet_ping_summary --------------------------------------------------------------------------

TDD = dict(name="tdd-expert", legacy="agent.tdd-expert", unified="agents.quality-assurance.x")


def test_ping_summary_of_answered_requests():
    results = [dict(item=[TDD, "legacy"], changed=False, hosts=["dgx-1", "dgx-2"], no_responders=False),
               dict(item=[TDD, "unified"], changed=False, hosts=[], no_responders=True)]
    assert fleet.fleet_ping_summary(results) == [
        dict(agent="tdd-expert", via="legacy", hosts=["dgx-1", "dgx-2"], no_responders=False, error=None),
        dict(agent="tdd-expert", via="unified", hosts=[], no_responders=True, error=None)]


def test_unreachable_nats_gives_no_data_not_an_empty_answer():
    # failed_when: false in the playbook hides `failed`; the result then has a msg and no hosts.
    result = dict(item=[TDD, "legacy"], failed=False, msg="cannot connect to NATS at nats://nats.internal:4222")
    assert fleet.fleet_ping_summary([result]) == [dict(agent="tdd-expert", via="legacy", hosts=None,
                                                       no_responders=None, error=result["msg"])]


def test_failed_request_gives_no_data_even_with_hosts():
    result = dict(item=[TDD, "unified"], failed=True, hosts=["dgx-1"], no_responders=False, msg="boom")
    [summary] = fleet.fleet_ping_summary([result])
    assert summary["hosts"] is None and summary["no_responders"] is None and summary["error"] == "boom"


def test_result_without_msg_has_a_generic_error():
    [summary] = fleet.fleet_ping_summary([dict(item=[TDD, "legacy"], skipped=True)])
    assert summary["hosts"] is None and summary["error"] == "no result"


def test_missing_no_responders_reads_as_false_when_answered():
    [summary] = fleet.fleet_ping_summary([dict(item=[TDD, "legacy"], hosts=["dgx-1"])])
    assert summary["no_responders"] is False


def test_filter_plugin_exports_the_three_filters():
    filters = fleet.FilterModule().filters()
    assert filters["rollback_actions"] is fleet.rollback_actions
    assert filters["fleet_restart_counts"] is fleet.fleet_restart_counts
    assert filters["fleet_ping_summary"] is fleet.fleet_ping_summary


@pytest.mark.parametrize("env_dir", ["/etc/agents", "/etc/agents/", "/etc/agents//"])
def test_env_path_is_spelt_one_way_whatever_the_trailing_slashes(env_dir):
    # The backup manifest is keyed by this path: deploy and rollback must agree on it.
    assert fleet.fleet_env_path("tdd-expert", env_dir) == "/etc/agents/tdd-expert.env"


def test_rollback_actions_key_the_env_info_by_the_same_path():
    files = {fleet.fleet_env_path("tdd-expert", "/etc/agents"): dict(exists=True, unified=False, backups=[])}
    assert fleet.rollback_actions(files, ["tdd-expert"], "/etc/agents/", "dgx-1")["skip"][0]["agent"] == "tdd-expert"


def test_fleet_command_subject_formats_the_pattern_and_verb():
    catalog = {"tdd-expert": {"id": "01936faa-f4cb-7000-8000-00000000000a", "cluster": "quality-assurance"}}
    assert fleet.fleet_command_subject("agents.{cluster}.{id}", "tdd-expert", catalog, "status") == (
        "agents.quality-assurance.01936faa-f4cb-7000-8000-00000000000a.cmd.status")
