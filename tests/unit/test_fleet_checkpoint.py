"""plugins/plugin_utils/fleet_checkpoint.py: a checkpoint is GO only when every check has data and
passes; each check keeps what was expected and measured.

evaluate_health returns the checks and the failures; the outcome is fleet_policy.decide_round's, so
verdict() judges the health checks alone (with a gate that found nothing) the way a round does."""

from __future__ import annotations

import copy

import pytest
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_checkpoint import evaluate_health
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_policy import GO, NO_GO, decide_round, describe

pytestmark = pytest.mark.unit

HOSTS = ["dgx-1", "dgx-2"]
FLIPPED = ["network-expert"]
CONTROL = ["graph-expert"]


def unit(state="active", restarts=0):
    return dict(unit="agent@x.service", active_state=state, sub_state="running", main_pid=42, n_restarts=restarts,
                active_seconds=12.5)


@pytest.fixture
def obs():
    """Healthy observations: every unit active, flipped agent on both subjects, control on legacy only."""
    return dict(
        hosts=list(HOSTS), flipped=list(FLIPPED), control=list(CONTROL),
        units={h: {"network-expert": unit(), "graph-expert": unit(restarts=2)} for h in HOSTS},
        pings=[dict(agent="network-expert", via="legacy", hosts=list(HOSTS), no_responders=False),
               dict(agent="network-expert", via="unified", hosts=list(reversed(HOSTS)), no_responders=False),
               dict(agent="graph-expert", via="legacy", hosts=list(HOSTS), no_responders=False),
               dict(agent="graph-expert", via="unified", hosts=[], no_responders=True)],
        baseline={h: {"network-expert": 0, "graph-expert": 2} for h in HOSTS},
    )


def judge(obs):
    return evaluate_health(obs["hosts"], obs["flipped"], obs["control"], obs["units"], obs["pings"], obs["baseline"])


# A gate that found nothing: the health checks alone decide.
QUIET_GATE = dict(fired=[], unknown=[], failed=[], degraded=[], short=[], n_primary=0, n_comparisons=0, reasons=[])


def verdict(health):
    return decide_round(QUIET_GATE, health)


def outcome(health):
    return verdict(health)["outcome"]


def ping(obs, agent, via):
    return next(p for p in obs["pings"] if p["agent"] == agent and p["via"] == via)


def failed(result):
    return [(c["check"], c["agent"], c["host"]) for c in result["failures"]]


# --- evaluate_health -----------------------------------------------------------------------------

def test_healthy_observations_are_go(obs):
    result = judge(obs)
    assert outcome(result) == GO and result["failures"] == []
    assert set(result) == {"checks", "failures"}  # no decision of its own: the policy decides


def test_every_check_is_made_for_every_agent_and_host(obs):
    checks = [(c["check"], c["agent"], c["host"]) for c in judge(obs)["checks"]]
    expected = set()
    for agent in FLIPPED + CONTROL:
        for host in HOSTS:
            expected |= {("unit active", agent, host), ("no restarts", agent, host), ("answers on legacy", agent, host)}
    expected |= {("answers on unified", "network-expert", h) for h in HOSTS}
    expected.add(("legacy only (control)", "graph-expert", None))
    assert len(checks) == len(expected) == 15 and set(checks) == expected


def test_checks_record_expected_and_measured(obs):
    checks = judge(obs)["checks"]
    unit_check = next(c for c in checks if c["check"] == "unit active")
    assert (unit_check["expected"], unit_check["measured"], unit_check["ok"]) == ("active", "active", True)
    control = next(c for c in checks if c["check"] == "legacy only (control)")
    assert control["expected"] == "no responders on unified" and control["measured"] == "no responders"


@pytest.mark.parametrize("state", ["failed", "inactive", "activating"])
def test_unit_not_active_on_one_host_is_no_go(obs, state):
    obs["units"]["dgx-2"]["network-expert"]["active_state"] = state
    result = judge(obs)
    assert outcome(result) == NO_GO and failed(result) == [("unit active", "network-expert", "dgx-2")]
    assert result["failures"][0]["measured"] == state
    assert verdict(result)["reasons"] == ["health: network-expert unit active on dgx-2: expected active, measured %s"
                                          % state]


def test_unit_not_observed_is_no_go_not_a_pass(obs):
    del obs["units"]["dgx-1"]["graph-expert"]
    result = judge(obs)
    assert failed(result) == [("unit active", "graph-expert", "dgx-1"), ("no restarts", "graph-expert", "dgx-1")]
    assert [c["measured"] for c in result["failures"]] == [None, None]


def test_host_without_any_unit_data_fails_all_its_unit_checks(obs):
    obs["units"]["dgx-2"] = None
    assert len([f for f in failed(judge(obs)) if f[2] == "dgx-2"]) == 4


def test_restart_since_the_baseline_is_no_go(obs):
    obs["units"]["dgx-1"]["graph-expert"]["n_restarts"] = 3
    result = judge(obs)
    assert failed(result) == [("no restarts", "graph-expert", "dgx-1")]
    assert (result["failures"][0]["expected"], result["failures"][0]["measured"]) == (2, 3)


def test_restart_count_at_or_below_the_baseline_passes(obs):
    obs["baseline"]["dgx-1"]["graph-expert"] = 5
    assert outcome(judge(obs)) == GO


def test_unknown_restart_count_fails(obs):
    obs["units"]["dgx-1"]["network-expert"]["n_restarts"] = None
    assert failed(judge(obs)) == [("no restarts", "network-expert", "dgx-1")]


def test_unknown_baseline_count_fails(obs):
    obs["baseline"]["dgx-2"]["network-expert"] = None
    assert failed(judge(obs)) == [("no restarts", "network-expert", "dgx-2")]


def test_without_baseline_a_known_restart_count_passes(obs):
    obs["baseline"] = None
    obs["units"]["dgx-1"]["graph-expert"]["n_restarts"] = 9
    assert outcome(judge(obs)) == GO


def test_flipped_agent_missing_on_unified_on_one_host_is_no_go(obs):
    ping(obs, "network-expert", "unified")["hosts"] = ["dgx-1"]
    result = judge(obs)
    assert failed(result) == [("answers on unified", "network-expert", "dgx-2")]
    assert (result["failures"][0]["expected"], result["failures"][0]["measured"]) == (True, False)


def test_flipped_agent_missing_on_legacy_is_no_go(obs):
    ping(obs, "network-expert", "legacy")["hosts"] = ["dgx-2"]
    assert failed(judge(obs)) == [("answers on legacy", "network-expert", "dgx-1")]


def test_ping_never_sent_fails_on_every_host(obs):
    obs["pings"].remove(ping(obs, "network-expert", "unified"))
    result = judge(obs)
    assert failed(result) == [("answers on unified", "network-expert", h) for h in HOSTS]
    assert [c["measured"] for c in result["failures"]] == [None, None]


def test_failed_ping_is_no_data_and_fails(obs):
    ping(obs, "graph-expert", "legacy").update(hosts=None, no_responders=None)
    assert failed(judge(obs)) == [("answers on legacy", "graph-expert", h) for h in HOSTS]


def test_control_agent_answering_on_unified_is_no_go(obs):
    ping(obs, "graph-expert", "unified").update(hosts=["dgx-2"], no_responders=False)
    result = judge(obs)
    assert failed(result) == [("legacy only (control)", "graph-expert", None)]
    assert result["failures"][0]["measured"] == ["dgx-2"]


@pytest.mark.parametrize("no_responders", [None, False])
def test_control_unified_without_a_no_responders_answer_fails(obs, no_responders):
    # None: the request failed (no data); False with no hosts: a subscriber exists but stayed silent.
    ping(obs, "graph-expert", "unified").update(hosts=None if no_responders is None else [],
                                                no_responders=no_responders)
    assert failed(judge(obs)) == [("legacy only (control)", "graph-expert", None)]


def test_control_unified_never_asked_fails(obs):
    obs["pings"].remove(ping(obs, "graph-expert", "unified"))
    result = judge(obs)
    assert failed(result) == [("legacy only (control)", "graph-expert", None)]
    assert result["failures"][0]["measured"] is None


def test_control_agent_is_not_required_to_answer_on_unified(obs):
    checks = judge(obs)["checks"]
    assert not [c for c in checks if c["agent"] == "graph-expert" and c["check"] == "answers on unified"]


def test_extra_hosts_answering_do_not_fail(obs):
    ping(obs, "network-expert", "legacy")["hosts"].append("dgx-9")
    assert outcome(judge(obs)) == GO


def test_nothing_to_check_is_no_go():
    result = evaluate_health([], [], [], {}, [])
    assert result == dict(checks=[], failures=[])
    judged = verdict(result)
    assert (judged["outcome"], judged["next_step"]) == (NO_GO, "stop")
    assert judged["reasons"] == ["health: nothing was checked (no host or agent in scope)"]


def test_inputs_are_not_modified(obs):
    before = copy.deepcopy(obs)
    judge(obs)
    assert obs == before


# --- describe ------------------------------------------------------------------------------------

def test_describe_names_agent_check_host_expected_and_measured():
    check = dict(check="unit active", agent="tdd-expert", host="dgx-2", expected="active", measured="failed", ok=False)
    assert describe(check) == "tdd-expert unit active on dgx-2: expected active, measured failed"


def test_describe_without_host():
    check = dict(check="legacy only (control)", agent="graph-expert", host=None,
                 expected="no responders on unified", measured=["dgx-1"], ok=False)
    assert describe(check) == ("graph-expert legacy only (control): expected no responders on unified, "
                               "measured ['dgx-1']")
