"""plugins/filter/fleet.py: rollback decisions per agent, env file paths, command subjects, probe
agents, and the one proof that rolled-back agents are legacy-only."""

from __future__ import annotations

import pytest
from ansible_collections.fleetwave.rollout.plugins.filter import fleet

pytestmark = pytest.mark.unit


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


def test_filter_plugin_exports_its_filters():
    filters = fleet.FilterModule().filters()
    assert filters == {"rollback_actions": fleet.rollback_actions, "fleet_env_path": fleet.fleet_env_path,
                       "fleet_command_subject": fleet.fleet_command_subject,
                       "fleet_identities": fleet.fleet_identities,
                       "fleet_probe_agents": fleet.fleet_probe_agents,
                       "fleet_latency_baseline": fleet.fleet_latency_baseline,
                       "fleet_request_baseline": fleet.fleet_request_baseline,
                       "legacy_only_proof": fleet.legacy_only_proof,
                       "server_proof": fleet.server_proof,
                       "post_rollback_round": fleet.post_rollback_round,
                       "readiness_load_plan": fleet.readiness_load_plan,
                       "readiness_load_seconds": fleet.readiness_load_seconds,
                       "readiness_load_targets": fleet.readiness_load_targets,
                       "readiness_load_compare": fleet.readiness_load_compare,
                       "fleet_url_without_userinfo": fleet.fleet_url_without_userinfo,
                       "readiness_failure_plan": fleet.readiness_failure_plan,
                       "readiness_failure_traffic": fleet.readiness_failure_traffic}


def test_identities_are_built_as_the_wave_plan_builds_them():
    catalog = {"tdd-expert": {"id": "01936faa-f4cb-7000-8000-00000000000a", "cluster": "quality-assurance"}}
    assert fleet.fleet_identities(["tdd-expert"], catalog, "agent.{name}", "agents.{cluster}.{id}") == [dict(
        name="tdd-expert", id="01936faa-f4cb-7000-8000-00000000000a", cluster="quality-assurance",
        legacy="agent.tdd-expert", unified="agents.quality-assurance.01936faa-f4cb-7000-8000-00000000000a")]


def test_probe_agents_keep_only_what_nats_probe_accepts():
    identity = dict(name="tdd-expert", id="01936faa-f4cb-7000-8000-00000000000a", cluster="quality-assurance",
                    legacy="agent.tdd-expert", unified="agents.quality-assurance.01936faa-f4cb-7000-8000-00000000000a")
    assert fleet.fleet_probe_agents([identity], True) == [dict(
        name="tdd-expert", legacy="agent.tdd-expert",
        unified="agents.quality-assurance.01936faa-f4cb-7000-8000-00000000000a", unified_enabled=True)]
    assert fleet.fleet_probe_agents([identity], False)[0]["unified_enabled"] is False
    # The flag per agent, as read from the env files.
    assert fleet.fleet_probe_agents([identity], {"tdd-expert": True})[0]["unified_enabled"] is True
    assert fleet.fleet_probe_agents([identity], {"other": True})[0]["unified_enabled"] is False


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


# --- legacy_only_proof ---------------------------------------------------------------------------

def rolled_back_probe(agents=("network-expert", "tdd-expert"), hosts=("dgx-1", "dgx-2"), changed=None,
                      unified_replies=None, by_host=True):
    """A nats_probe of agents probed with the flag off, as after a rollback: every request answered on
    legacy, events on legacy only, nobody on unified. changed: {"agent@host" or "agent": {field: value}}
    for an instance or the agent level; unified_replies: {(agent, host): replies on the unified subject};
    by_host False: the agents' events name no host (instances' events are None)."""
    probe_agents, targets = [], []
    for name in agents:
        instances = []
        for host in hosts:
            instance = dict(host=host, delivery=1.0, events=dict(legacy=20, unified=0, paired=0) if by_host else None)
            instance.update((changed or {}).get("%s@%s" % (name, host), {}))
            instances.append(instance)
            replies = (unified_replies or {}).get((name, host), 0)
            targets += [dict(agent=name, host=host, via="legacy", sent=300, replies=300, no_responders=0),
                        dict(agent=name, host=host, via="unified", sent=300, replies=replies,
                             no_responders=300 - replies)]
        entry = dict(name=name, unified_enabled=False, delivery=1.0, instances=instances,
                     events=dict(legacy=20 * len(hosts), unified=0, paired=0))
        entry.update((changed or {}).get(name, {}))
        probe_agents.append(entry)
    return dict(agents=probe_agents, targets=targets, totals={}, changed=False, failed=False,
                window=dict(started="2026-12-01T10:00:00.000Z", ended="2026-12-01T10:00:02.000Z", seconds=2.0))


def test_legacy_only_is_proven_instance_by_instance_when_legacy_answers_and_unified_is_silent():
    proof = fleet.legacy_only_proof(rolled_back_probe())
    assert proof["proven"] is True and proof["reasons"] == []
    assert proof["hosts"] == ["dgx-1", "dgx-2"] and proof["window"]["seconds"] == 2.0
    assert proof["instances"] == {
        "%s@%s" % (a, h): dict(delivery=1.0, unified_replies=0, events_legacy=20, events_unified=0)
        for a in ("network-expert", "tdd-expert") for h in ("dgx-1", "dgx-2")}
    assert proof["events"] == {a: dict(legacy=40, unified=0) for a in ("network-expert", "tdd-expert")}


@pytest.mark.parametrize("changed, reason", [
    (dict(delivery=0.98), "tdd-expert@dgx-2: delivery on legacy 0.98, expected 1.0"),
    (dict(delivery=None), "tdd-expert@dgx-2: delivery on legacy None, expected 1.0"),
    (dict(events=dict(legacy=0, unified=0)), "tdd-expert@dgx-2: no event published on legacy subjects"),
    (dict(events=dict(legacy=40, unified=3)), "tdd-expert@dgx-2: 3 event(s) still published on unified subjects"),
])
def test_legacy_only_is_not_proven_naming_the_instance_and_what_failed(changed, reason):
    proof = fleet.legacy_only_proof(rolled_back_probe(changed={"tdd-expert@dgx-2": changed}))
    assert proof["proven"] is False and proof["reasons"] == [reason]


def test_an_answer_on_a_unified_subject_disproves_legacy_only_and_names_the_instance():
    proof = fleet.legacy_only_proof(rolled_back_probe(unified_replies={("tdd-expert", "dgx-2"): 2,
                                                                       ("network-expert", "dgx-1"): 1}))
    assert proof["proven"] is False
    assert proof["reasons"] == ["network-expert@dgx-1: 1 answer(s) on its unified subject",
                                "tdd-expert@dgx-2: 2 answer(s) on its unified subject"]
    assert proof["instances"]["tdd-expert@dgx-2"]["unified_replies"] == 2


def test_a_limited_rollback_is_judged_on_its_hosts_only():
    # dgx-3 still runs the flag on: its unified answers and events are not this rollback's.
    probe = rolled_back_probe(hosts=("dgx-1", "dgx-2", "dgx-3"), unified_replies={("tdd-expert", "dgx-3"): 300},
                              changed={"tdd-expert@dgx-3": dict(events=dict(legacy=20, unified=20, paired=20))})
    assert fleet.legacy_only_proof(probe)["proven"] is False
    proof = fleet.legacy_only_proof(probe, ["dgx-1", "dgx-2"])
    assert proof["proven"] is True and proof["hosts"] == ["dgx-1", "dgx-2"]
    assert sorted(proof["instances"]) == ["%s@%s" % (a, h) for a in ("network-expert", "tdd-expert")
                                          for h in ("dgx-1", "dgx-2")]


def test_events_that_name_no_host_are_judged_for_the_agent_as_a_whole():
    probe = rolled_back_probe(by_host=False, changed={"tdd-expert": dict(events=dict(legacy=40, unified=5))})
    proof = fleet.legacy_only_proof(probe)
    assert proof["reasons"] == ["tdd-expert (all hosts: its events name no host): 5 event(s) still published "
                                "on unified subjects"]
    assert proof["instances"]["tdd-expert@dgx-1"]["events_unified"] is None
    quiet = rolled_back_probe(by_host=False, changed={"network-expert": dict(events=None)})
    assert fleet.legacy_only_proof(quiet)["reasons"] == [
        "network-expert (all hosts: its events name no host): no event published on legacy subjects"]


def test_a_host_outside_the_probe_is_named_not_passed():
    proof = fleet.legacy_only_proof(rolled_back_probe(), ["dgx-3"])
    assert proof["proven"] is False
    assert proof["reasons"] == ["network-expert: no instance probed on dgx-3", "tdd-expert: no instance probed on dgx-3"]


def test_legacy_only_proof_lists_every_failure_instance_by_instance_in_name_order():
    probe = rolled_back_probe(agents=("tdd-expert", "network-expert"),
                              changed={"tdd-expert@dgx-1": dict(delivery=0.5, events=dict(legacy=0, unified=1)),
                                       "network-expert@dgx-2": dict(delivery=0.9)},
                              unified_replies={("tdd-expert", "dgx-1"): 300})
    assert fleet.legacy_only_proof(probe)["reasons"] == [
        "network-expert@dgx-2: delivery on legacy 0.9, expected 1.0",
        "tdd-expert@dgx-1: delivery on legacy 0.5, expected 1.0",
        "tdd-expert@dgx-1: 300 answer(s) on its unified subject",
        "tdd-expert@dgx-1: no event published on legacy subjects",
        "tdd-expert@dgx-1: 1 event(s) still published on unified subjects"]


@pytest.mark.parametrize("probe, why", [
    (None, "no result"),
    ({}, "no result"),
    (dict(failed=True, msg="cannot connect to nats://127.0.0.1:4222"), "cannot connect to nats://127.0.0.1:4222"),
    (dict(agents=[], targets=[], failed=False), "no result"),
])
def test_an_empty_or_failed_probe_proves_nothing(probe, why):
    proof = fleet.legacy_only_proof(probe)
    assert proof == dict(proven=False, reasons=["the probe measured no agent: %s" % why], hosts=[],
                         instances={}, window=None, events={})


# --- server_proof: what the NATS server shows of each instance ----------------------------------

TDD_OFF = dict(name="tdd-expert", legacy="agent.tdd-expert", unified="agents.qa.1", unified_enabled=False)


def server_and_info(*instances, extra=()):
    """instances: (host, port, subjects): one unit with one socket each, and its connection."""
    connections = [dict(cid=port, ip="127.0.0.1", port=port, subscriptions=[dict(subject=s) for s in subjects])
                   for _, port, subjects in instances] + list(extra)
    info = {host: dict(units={"tdd-expert": dict(active_state="active", main_pid=port,
                                                 sockets=[dict(local_ip="127.0.0.1", local_port=port)])})
            for host, port, _ in instances}
    return dict(server=dict(server_id="S"), connections=connections), info


def test_server_proof_holds_when_each_instance_holds_legacy_only():
    server, info = server_and_info(("dgx-1", 5001, ["agent.tdd-expert.cmd.>"]), ("dgx-2", 5002, ["agent.tdd-expert.cmd.*"]))
    proof = fleet.server_proof(server, info, [TDD_OFF], ["dgx-1", "dgx-2"])
    assert proof["proven"] and proof["reasons"] == [] and proof["impostors"] == []
    assert proof["instances"]["tdd-expert@dgx-2"] == dict(ok=True, problem=None, cids=[5002], legacy=True, unified=False)


def test_server_proof_names_the_instance_still_on_unified_and_an_impostor():
    impostor = dict(cid=9, name="mallory", ip="127.0.0.1", port=6009, subscriptions=[dict(subject="agents.qa.1.cmd.ping")])
    server, info = server_and_info(("dgx-1", 5001, ["agent.tdd-expert.cmd.>", "agents.qa.1.cmd.>"]), extra=[impostor])
    proof = fleet.server_proof(server, info, [TDD_OFF], ["dgx-1"])
    assert not proof["proven"]
    assert proof["reasons"] == [
        "tdd-expert@dgx-1: subscribed to its unified subject agents.qa.1.cmd.ping although its flag is off (cid 5001)",
        'impostor: cid 9 "mallory" from 127.0.0.1:6009 holds agents.qa.1.cmd.ping of tdd-expert, and is no instance of it']
    partial = fleet.server_proof(server, info, [dict(TDD_OFF, unified_enabled=True)], ["dgx-1"], complete=False)
    assert partial["proven"] and partial["unattributed"] == ['cid 9 "mallory" from 127.0.0.1:6009']


@pytest.mark.parametrize("server", [None, {}, dict(failed=True, msg="NATS monitoring endpoint: refused")])
def test_server_proof_without_a_server_view_proves_nothing(server):
    proof = fleet.server_proof(server, {}, [TDD_OFF], ["dgx-1"])
    assert not proof["proven"] and proof["reasons"][0].startswith("no server view: ")


def test_the_rollback_proof_carries_the_server_proof_and_its_reasons():
    server, info = server_and_info(("dgx-1", 5001, ["agent.tdd-expert.cmd.>", "agents.qa.1.cmd.>"]))
    by_server = fleet.server_proof(server, info, [TDD_OFF], ["dgx-1"])
    proof = fleet.legacy_only_proof(rolled_back_probe(agents=("tdd-expert",), hosts=("dgx-1",)), ["dgx-1"], by_server)
    assert not proof["proven"] and proof["server"] is by_server
    assert proof["reasons"] == ["server: tdd-expert@dgx-1: subscribed to its unified subject agents.qa.1.cmd.ping "
                                "although its flag is off (cid 5001)"]


# --- post_rollback_round: one round of the watch after a rollback --------------------------------

def units(**agents):
    """{host: agent_host_info result} with agents given as agent@host=(state, restarts, pid)."""
    found = {}
    for key, (state, restarts, pid) in agents.items():
        agent, host = key.replace("_", "-").split("@")
        found.setdefault(host, dict(units={}))["units"][agent] = dict(active_state=state, n_restarts=restarts,
                                                                      main_pid=pid)
    return found


def test_a_quiet_round_after_a_rollback_is_stable():
    before = units(**{"tdd_expert@dgx-1": ("active", 2, 10), "tdd_expert@dgx-2": ("active", 0, 20)})
    round_ = fleet.post_rollback_round(rolled_back_probe(agents=("tdd-expert",)), ["dgx-1", "dgx-2"], None,
                                       before, before, 1, 4.04)
    assert round_ == dict(round=1, at_seconds=4.0, stable=True, reasons=[], restarts={})


def test_a_unit_that_restarted_or_stopped_during_the_watch_makes_the_round_unstable():
    before = units(**{"tdd_expert@dgx-1": ("active", 2, 10), "tdd_expert@dgx-2": ("active", 0, 20)})
    after = units(**{"tdd_expert@dgx-1": ("active", 3, 11), "tdd_expert@dgx-2": ("failed", 0, 0)})
    round_ = fleet.post_rollback_round(rolled_back_probe(agents=("tdd-expert",)), ["dgx-1", "dgx-2"], None,
                                       before, after, 2, 8)
    assert round_["stable"] is False and round_["restarts"] == {"tdd-expert@dgx-1": 1}
    assert round_["reasons"] == [
        "tdd-expert@dgx-1: restarted since the watch began (restarts 2 -> 3, PID 10 -> 11)",
        "tdd-expert@dgx-2: unit failed since the watch began"]


def test_a_round_whose_proof_fails_is_unstable_with_the_proofs_reasons():
    probe = rolled_back_probe(agents=("tdd-expert",), unified_replies={("tdd-expert", "dgx-1"): 3})
    before = units(**{"tdd_expert@dgx-1": ("active", 0, 10), "tdd_expert@dgx-2": ("active", 0, 20)})
    round_ = fleet.post_rollback_round(probe, ["dgx-1", "dgx-2"], None, before, before, 1, 1)
    assert not round_["stable"] and round_["reasons"] == ["tdd-expert@dgx-1: 3 answer(s) on its unified subject"]


# --- the readiness run's load -------------------------------------------------------------------

SCENARIO = dict(executor="constant-arrival-rate", rate=50, duration=600, max_vus=20,
                thresholds=[dict(name="p99", metric="latency_p99_ms", comparator="<", threshold=200, window_seconds=60)])
CATALOG = {"network-expert": dict(id="01936f88-d2a9-7000-8000-000000000008", cluster="infrastructure"),
           "tdd-expert": dict(id="01936faa-f4cb-7000-8000-00000000000a", cluster="quality-assurance")}


def test_the_load_plan_is_the_inventory_as_written_in_production():
    assert fleet.readiness_load_plan({"soak": SCENARIO}) == {"soak": SCENARIO}


def test_the_load_plan_compresses_durations_and_caps_them_for_the_sandbox():
    plan = fleet.readiness_load_plan({"soak": SCENARIO}, 60, 6)
    assert plan["soak"]["duration"] == 6 and plan["soak"]["rate"] == 50
    assert plan["soak"]["compressed"] == dict(factor=100, production_seconds=600)
    assert plan["soak"]["thresholds"][0]["window_seconds"] == pytest.approx(0.6)


def test_the_longest_scenario_sets_how_long_the_readiness_run_holds_the_fleet_lock():
    ramp = {"executor": "ramping-arrival-rate", "stages": [{"duration": 30, "target": 10}, {"duration": 90, "target": 50}]}
    assert fleet.readiness_load_seconds({"soak": SCENARIO, "ramp-up": ramp}) == 600.0
    assert fleet.readiness_load_seconds({"ramp-up": ramp}) == 120.0
    assert fleet.readiness_load_seconds({}) == 0.0


@pytest.mark.parametrize("scenarios, factor, message", [
    ({"soak": dict(SCENARIO, rate=float("inf"))}, 1,
     r"refused \(nothing was sent\):\n  - readiness_load_scenarios\.soak\.rate: must be a number in \(0, 10,000\]"),
    ({}, 1, r"readiness_load_scenarios: must be a mapping of 1 to"),
    ({"soak": SCENARIO}, 0.5, r"readiness_load_compress_factor/readiness_load_max_seconds: factor: must be a number"),
])
def test_a_load_plan_out_of_range_is_refused_naming_the_key_and_the_range(scenarios, factor, message):
    from ansible.errors import AnsibleFilterError
    with pytest.raises(AnsibleFilterError, match=message):
        fleet.readiness_load_plan(scenarios, factor)


def test_the_load_goes_to_unified_subjects_only_where_every_host_has_the_flag_on():
    by_host = {"dgx-1": files(network_expert=info(True), tdd_expert=info(True)),
               "dgx-2": files(network_expert=info(True), tdd_expert=info(False)),
               "dgx-3": files(network_expert=info(True))}
    targets = fleet.readiness_load_targets(by_host, ["network-expert", "tdd-expert"], CATALOG, ENV_DIR,
                                           "agent.{name}", "agents.{cluster}.{id}")
    assert targets == [
        dict(agent="network-expert", via="unified",
             subject="agents.infrastructure.01936f88-d2a9-7000-8000-000000000008.cmd.ping",
             flags={"dgx-1": True, "dgx-2": True, "dgx-3": True}),
        dict(agent="tdd-expert", via="legacy", subject="agent.tdd-expert.cmd.ping",
             flags={"dgx-1": True, "dgx-2": False, "dgx-3": None}),
    ]


def test_the_load_comparison_says_when_there_is_no_previous_run():
    compared = fleet.readiness_load_compare({"scenarios": {"soak": {"requests": 10}}}, None)
    assert compared["previous"] is None and compared["scenarios"] == {"soak": {"status": "no previous run"}}


def test_the_latency_baseline_is_each_replying_instance_median():
    probe = dict(agents=[
        dict(name="network-expert", instances=[dict(host="dgx-1", latency_ms=dict(p50=0.8, count=40)),
                                               dict(host="dgx-2", latency_ms=dict(p50=None, count=0)),
                                               dict(host="dgx-3")]),
        dict(name="tdd-expert", instances=[dict(host="dgx-1", latency_ms=dict(p50=1.25, count=40))])])
    assert fleet.fleet_latency_baseline(probe) == {"network-expert@dgx-1": 0.8, "tdd-expert@dgx-1": 1.25}
    assert fleet.fleet_latency_baseline(None) == {} and fleet.fleet_latency_baseline(dict(failed=True)) == {}


def test_the_request_baseline_is_each_probed_instances_counters():
    counters = dict(sent=600, replies=598, replies_ok=597, errors=1, timeouts=2, no_responders=0)
    probe = dict(agents=[dict(name="network-expert", instances=[dict(host="dgx-1", latency_ms={}, **counters),
                                                                dict(host="dgx-2", sent=0), dict(host="dgx-3")])])
    assert fleet.fleet_request_baseline(probe) == {"network-expert@dgx-1": counters}
    assert fleet.fleet_request_baseline(None) == {} and fleet.fleet_request_baseline(dict(failed=True)) == {}


@pytest.mark.parametrize("url, shown", [
    ("nats://nats.internal:4222", "nats://nats.internal:4222"),
    ("nats://fleetwave-controller:s3cret@nats.internal:4222", "nats://nats.internal:4222"),
    ("tls://t0ken@a.internal:4222,tls://u:p%40ss@b.internal:4222", "tls://a.internal:4222,tls://b.internal:4222"),
    ("user:pw@127.0.0.1:4222", "127.0.0.1:4222"),
    ("http://admin:pw@nats.internal:8222", "http://nats.internal:8222"),
])
def test_a_url_is_shown_without_its_user_info(url, shown):
    assert fleet.fleet_url_without_userinfo(url) == shown


@pytest.mark.parametrize("url, secrets", [
    # A password holding '@' or ',': neither reading of the URL (a server list, or nats-py's) leaves a piece.
    ("nats://u:p@ss@nats.internal:4222", ["p@ss", "ss"]),
    ("nats://u:p,ss@nats.internal:4222", ["p,ss", "ss"]),
    ("nats://u:a%2Fb@nats.internal:4222", ["a%2Fb", "a/b"]),
])
def test_no_credential_survives_in_a_url_without_user_info(url, secrets):
    shown = fleet.fleet_url_without_userinfo(url)
    assert "@" not in shown and "***" not in shown
    assert not [s for s in secrets if s in shown], shown
