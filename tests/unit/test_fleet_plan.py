"""plugins/module_utils/fleet_plan.py: the production inventory is a valid plan; every bad input is
refused as a whole, each problem naming the variable path where it sits."""

from __future__ import annotations

import copy
import pathlib

import pytest
import yaml
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_limits import MAX_ROUNDS_PER_WAVE
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_plan
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import FOLDER_NAME_RULE, Layout
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_plan import (
    PlanError, build_plan, rounds_count, watch_rounds)

pytestmark = pytest.mark.unit

REPO = pathlib.Path(__file__).resolve().parents[2]
CONTRACT = yaml.safe_load((REPO / "inventory/production/group_vars/all/00-contract.yml").read_text())

# build_plan's keyword -> the inventory variable it comes from.
VARS = dict(agents="fleet_agents", waves="fleet_waves", schedule="wave_schedule",
            subject_legacy="fleet_subject_legacy", subject_unified="fleet_subject_unified",
            stagger="wave_stagger_seconds", verify_window="wave_verify_window_seconds",
            monitor_interval="wave_monitor_interval_seconds")

NETWORK_ID = "01936f88-d2a9-7000-8000-000000000008"
TDD_ID = "01936faa-f4cb-7000-8000-00000000000a"


@pytest.fixture
def inv():
    """A private deep copy of the production contract data, free to break."""
    return copy.deepcopy(CONTRACT)


def plan_of(inv, wave="wave2"):
    return build_plan(wave, **{arg: inv[var] for arg, var in VARS.items()})


def problems_of(inv, wave="wave2"):
    with pytest.raises(PlanError) as exc:
        plan_of(inv, wave)
    return exc.value.problems


# --- the production data -------------------------------------------------------------------------

@pytest.mark.parametrize("wave", sorted(CONTRACT["fleet_waves"]))
def test_production_contract_is_a_valid_plan_for_every_wave(inv, wave):
    plan = plan_of(inv, wave)
    assert plan["wave"] == wave and plan["previous"] == CONTRACT["fleet_waves"][wave]["previous"]


def test_wave2_phases_agents_and_checkpoints(inv):
    plan = plan_of(inv)
    assert [p["name"] for p in plan["phases"]] == ["phase1", "phase2"]
    assert plan["agents"] == ["network-expert", "tdd-expert"]
    assert plan["phases"][0]["checkpoints"] == [dict(label="phase1-T+1h", at=3600), dict(label="phase1-T+2h", at=7200)]


def test_agent_identity_carries_both_subject_prefixes(inv):
    [agent] = plan_of(inv)["phases"][0]["agents"]
    assert agent == dict(name="network-expert", id=NETWORK_ID, cluster="infrastructure",
                         legacy="agent.network-expert", unified="agents.infrastructure.%s" % NETWORK_ID)


def test_subject_prefixes_follow_the_configured_patterns(inv):
    inv["fleet_subject_legacy"] = "old.{cluster}.{name}"
    inv["fleet_subject_unified"] = "fleet.{id}"
    agent = plan_of(inv)["phases"][1]["agents"][0]
    assert agent["legacy"] == "old.quality-assurance.tdd-expert" and agent["unified"] == "fleet.%s" % TDD_ID


def test_watch_is_the_verification_window_then_checkpoints_counted_from_its_end(inv):
    watch = plan_of(inv)["phases"][0]["watch"]
    assert watch == [dict(label="phase1-verification", after=540),
                     dict(label="phase1-T+1h", after=540 + 3600),
                     dict(label="phase1-T+2h", after=540 + 7200)]


def test_watch_uses_the_given_verify_window(inv):
    inv["wave_verify_window_seconds"] = 5
    assert [w["after"] for w in plan_of(inv)["phases"][1]["watch"]] == [5, 3605, 21605, 43205, 86405]


def test_control_group_excludes_this_and_earlier_waves_sorted_by_name(inv):
    control = plan_of(inv)["control"]
    assert [a["name"] for a in control] == ["git-expert", "graph-expert", "location-expert"]
    assert control[1]["unified"] == "agents.knowledge.01936fbb-05dc-7000-8000-00000000000b"


def test_first_wave_controls_every_other_agent(inv):
    names = [a["name"] for a in plan_of(inv, "wave1")["control"]]
    assert names == sorted(set(CONTRACT["fleet_agents"]) - {"nats-expert"})


def test_last_wave_has_no_control_group_left(inv):
    assert plan_of(inv, "wave3")["control"] == []


def test_timings_are_returned(inv):
    assert plan_of(inv)["timings"] == dict(stagger=30, verify_window=540, monitor_interval=300)


def test_zero_stagger_and_verify_window_are_allowed(inv):
    inv["wave_stagger_seconds"] = 0
    inv["wave_verify_window_seconds"] = 0.0
    assert plan_of(inv)["timings"]["stagger"] == 0


def test_inputs_are_not_modified(inv):
    before = copy.deepcopy(inv)
    plan_of(inv)
    assert inv == before


# --- refusals: each names its variable path ------------------------------------------------------

def test_undefined_wave_lists_the_defined_ones(inv):
    assert problems_of(inv, "wave9") == ["fleet_waves: wave 'wave9' is not defined (defined: wave1, wave2, wave3)"]


def test_undefined_wave_still_reports_the_other_problems(inv):
    inv["wave_stagger_seconds"] = -1
    problems = problems_of(inv, "wave9")
    assert problems[0] == "wave_stagger_seconds: must be a number in [0, 3,600] seconds, got -1"
    assert problems[-1].startswith("fleet_waves: wave 'wave9' is not defined")


def test_every_problem_is_reported_at_once(inv):
    inv["fleet_subject_legacy"] = "agent.*"
    inv["wave_monitor_interval_seconds"] = 0
    inv["fleet_waves"]["wave2"]["phases"][0]["agents"] = ["netwrk-expert"]
    inv["wave_schedule"]["wave2"]["phase2"][1]["at"] = 60
    problems = problems_of(inv)
    assert len(problems) == 4
    assert [p.split(":")[0] for p in problems] == [
        "fleet_subject_legacy", "wave_monitor_interval_seconds",
        "fleet_waves.wave2.phases[0].agents", "wave_schedule.wave2.phase2[1].at"]


def test_plan_error_message_joins_the_problems(inv):
    inv["wave_stagger_seconds"] = -1
    inv["wave_verify_window_seconds"] = -2
    with pytest.raises(PlanError) as exc:
        plan_of(inv)
    assert str(exc.value) == "\n".join(exc.value.problems) and len(exc.value.problems) == 2


def test_unknown_agent_in_a_phase(inv):
    inv["fleet_waves"]["wave2"]["phases"][0]["agents"] = ["netwrk-expert"]
    [problem] = problems_of(inv)
    assert problem == ("fleet_waves.wave2.phases[0].agents: unknown agent 'netwrk-expert' (known: git-expert, "
                       "graph-expert, location-expert, nats-expert, network-expert, tdd-expert)")


def test_agent_in_two_phases_of_one_wave(inv):
    inv["fleet_waves"]["wave2"]["phases"][1]["agents"] = ["tdd-expert", "network-expert"]
    assert problems_of(inv) == ["fleet_waves.wave2.phases[1].agents: 'network-expert' is already in an earlier "
                                "phase of wave2"]


@pytest.mark.parametrize("agents", [[], None, "network-expert"])
def test_phase_agents_must_be_a_non_empty_list(inv, agents):
    inv["fleet_waves"]["wave2"]["phases"][0]["agents"] = agents
    assert problems_of(inv) == ["fleet_waves.wave2.phases[0].agents: must be a non-empty list of agent names"]


@pytest.mark.parametrize("phase", [{"agents": ["network-expert"]}, {"name": "phase 1", "agents": []}, "phase1"])
def test_phase_needs_a_folder_name(inv, phase):
    inv["fleet_waves"]["wave2"]["phases"][0] = phase
    problems = problems_of(inv)
    [problem] = [p for p in problems if p.startswith("fleet_waves.wave2.phases[0].name:")]
    assert problem.startswith("fleet_waves.wave2.phases[0].name: every phase needs a name usable as a folder name (")
    assert FOLDER_NAME_RULE in problem


@pytest.mark.parametrize("phases", [[], None])
def test_wave_needs_phases(inv, phases):
    inv["fleet_waves"]["wave2"]["phases"] = phases
    assert problems_of(inv) == ["fleet_waves.wave2.phases: must be a non-empty list"]


@pytest.mark.parametrize("agents", [{}, None, ["network-expert"]])
def test_agent_catalogue_must_be_a_non_empty_mapping(inv, agents):
    inv["fleet_agents"] = agents
    problems = problems_of(inv)
    assert problems[0] == "fleet_agents: must be a non-empty mapping of agent name to {id, cluster}"


def test_agent_name_must_be_a_subject_token(inv):
    inv["fleet_agents"]["Tdd_Expert"] = inv["fleet_agents"].pop("tdd-expert")
    problems = problems_of(inv)
    assert "fleet_agents.Tdd_Expert: agent names are lower-case letters, digits and dashes" in problems


def test_agent_must_be_a_mapping(inv):
    inv["fleet_agents"]["git-expert"] = "01936fcc-16ed-7000-8000-00000000000c"
    assert problems_of(inv) == ["fleet_agents.git-expert: must be a mapping with id and cluster"]


@pytest.mark.parametrize("bad_id", ["01936FAA-F4CB-7000-8000-00000000000A", "01936faa-f4cb-7000-8000", None, 42])
def test_agent_id_must_be_a_lower_case_uuid(inv, bad_id):
    inv["fleet_agents"]["tdd-expert"]["id"] = bad_id
    assert problems_of(inv) == ["fleet_agents.tdd-expert.id: %r is not a lower-case UUID (8-4-4-4-12 hex digits)"
                                % (bad_id,)]


def test_agent_ids_are_unique(inv):
    inv["fleet_agents"]["tdd-expert"]["id"] = NETWORK_ID
    assert problems_of(inv) == ["fleet_agents.tdd-expert.id: %s is also the id of network-expert" % NETWORK_ID]


@pytest.mark.parametrize("cluster", ["Knowledge", "", None, "quality_assurance"])
def test_agent_cluster_must_be_a_token(inv, cluster):
    inv["fleet_agents"]["graph-expert"]["cluster"] = cluster
    [problem] = problems_of(inv)
    assert problem.startswith("fleet_agents.graph-expert.cluster: %r is not a capability cluster name" % (cluster,))


@pytest.mark.parametrize("pattern, why", [
    ("agent.{host}", "uses unknown field(s) {host}"),
    ("agent.{name", "is not a valid pattern"),
    ("agent.{name}.*", "does not make a valid NATS subject"),
    ("agent.>", "does not make a valid NATS subject"),
    ("agent..{name}", "does not make a valid NATS subject"),
    ("agent.{name}.", "does not make a valid NATS subject"),
    ("agent {name}", "does not make a valid NATS subject"),
    ("", "must be a non-empty subject pattern"),
    (None, "must be a non-empty subject pattern"),
])
def test_subject_patterns_are_checked(inv, pattern, why):
    inv["fleet_subject_unified"] = pattern
    [problem] = problems_of(inv)
    assert problem.startswith("fleet_subject_unified: ") and why in problem


@pytest.fixture
def no_rounds(monkeypatch):
    """Fails the test as soon as rounds are planned: a refused plan must not get that far (with an
    infinite or huge timing the old code never came back from it)."""
    monkeypatch.setattr(fleet_plan, "watch_rounds", lambda *a: pytest.fail("rounds planned for a refused plan"))


# The allowed range of each timing, as every message states it (fleet_limits.LIMITS).
RANGES = dict(wave_stagger_seconds="[0, 3,600] seconds", wave_verify_window_seconds="[0, 86,400] seconds",
              wave_monitor_interval_seconds="[0.1, 86,400] seconds")


@pytest.mark.parametrize("var, value", [
    ("wave_stagger_seconds", -1),
    ("wave_verify_window_seconds", -0.5),
    ("wave_monitor_interval_seconds", 0.05),
    ("wave_monitor_interval_seconds", 0),
    ("wave_stagger_seconds", True),
    ("wave_verify_window_seconds", None),
    ("wave_monitor_interval_seconds", [300]),
    # issue 8: no upper bound, and NaN slipped past the `< minimum` checks
    ("wave_stagger_seconds", 3601),
    ("wave_verify_window_seconds", 86401),
    ("wave_monitor_interval_seconds", 1e300),
    ("wave_stagger_seconds", float("inf")),
    ("wave_monitor_interval_seconds", float("-inf")),
    ("wave_verify_window_seconds", 10 ** 30),
])
def test_timings_must_be_numbers_within_their_range(inv, no_rounds, var, value):
    inv[var] = value
    assert problems_of(inv) == ["%s: must be a number in %s, got %r" % (var, RANGES[var], value)]


def test_infinite_verify_window_is_refused_with_its_path_and_range(inv, no_rounds):
    inv["wave_verify_window_seconds"] = float("inf")  # -e wave_verify_window_seconds=inf never returned
    assert problems_of(inv) == ["wave_verify_window_seconds: must be a number in [0, 86,400] seconds, got inf"]


@pytest.mark.parametrize("var", sorted(RANGES))
def test_nan_timing_is_refused(inv, no_rounds, var):
    inv[var] = float("nan")
    assert problems_of(inv) == ["%s: must be a number in %s, got nan" % (var, RANGES[var])]


@pytest.mark.parametrize("at", [float("nan"), float("inf"), 1e7, 604801, 10 ** 30])
def test_checkpoint_far_beyond_cap_is_refused_before_planning_rounds(inv, no_rounds, at):
    # 1e7 s at a 1 s interval planned ten million rounds (2 GB in 20 s); now refused by its range,
    # before watch_rounds is ever called.
    inv["wave_monitor_interval_seconds"] = 1
    inv["wave_schedule"]["wave2"]["phase2"][-1]["at"] = at
    assert problems_of(inv) == ["wave_schedule.wave2.phase2[3].at: must be a number in (0, 604,800] seconds, got %r"
                                % (at,)]


def test_rounds_of_a_wave_are_capped_before_any_is_built(inv, no_rounds):
    # Every timing within its range, but a week watched every second is 600,000 rounds.
    inv["wave_monitor_interval_seconds"] = 1
    inv["wave_schedule"]["wave2"]["phase2"][-1]["at"] = 604800
    [problem] = problems_of(inv)
    assert problem.startswith("wave_schedule.wave2: ")
    assert "over the limit of %d per wave" % MAX_ROUNDS_PER_WAVE in problem


def test_rounds_cap_leaves_the_production_contract_far_below_it(inv):
    plan = plan_of(inv)
    assert 0 < sum(len(p["rounds"]) for p in plan["phases"]) < MAX_ROUNDS_PER_WAVE / 10


def test_rounds_count_bounds_what_watch_rounds_plans():
    for last, interval in ((10, 4), (10, 5), (1, 0.1), (87000, 300), (300, 300)):
        watch = [dict(label="a", after=last / 2.0), dict(label="b", after=last)]
        assert len(watch_rounds("p", watch, interval)) <= rounds_count(last, len(watch), interval)


def test_wave_schedule_missing_for_the_wave(inv):
    del inv["wave_schedule"]["wave2"]
    problems = problems_of(inv)
    assert problems[0] == "wave_schedule.wave2: missing; every wave needs its checkpoints"
    assert problems[1].startswith("wave_schedule.wave2.phase1: needs at least one checkpoint")


@pytest.mark.parametrize("checkpoints", [[], None])
def test_phase_without_checkpoints(inv, checkpoints):
    inv["wave_schedule"]["wave2"]["phase2"] = checkpoints
    assert problems_of(inv) == ["wave_schedule.wave2.phase2: needs at least one checkpoint ({label, at}); a phase "
                                "with no checkpoint has no data to decide on"]


@pytest.mark.parametrize("checkpoint", [{"label": "T+1h"}, {"label": "T+1h", "at": 1, "every": 2}, "T+1h"])
def test_checkpoint_must_be_exactly_label_and_at(inv, checkpoint):
    inv["wave_schedule"]["wave2"]["phase2"][0] = checkpoint
    assert problems_of(inv) == ["wave_schedule.wave2.phase2[0]: must be exactly {label, at}, got %r" % (checkpoint,)]


def test_verification_labels_are_reserved(inv):
    inv["wave_schedule"]["wave2"]["phase2"][0]["label"] = "phase1-verification"
    assert problems_of(inv) == ["wave_schedule.wave2.phase2[0].label: 'phase1-verification' is reserved for the "
                                "verification window"]


@pytest.mark.parametrize("label", ["T/1h", "../T+1h", "+1h", "", 3600, None])
def test_label_must_be_usable_as_a_folder_name(inv, label):
    inv["wave_schedule"]["wave2"]["phase2"][0]["label"] = label
    assert problems_of(inv) == ["wave_schedule.wave2.phase2[0].label: %r is not usable as a folder name (allowed: %s)"
                                % (label, FOLDER_NAME_RULE)]


def test_label_used_twice_across_phases_of_a_wave(inv):
    inv["wave_schedule"]["wave2"]["phase1"][0]["label"] = "T+1h"
    assert problems_of(inv) == ["wave_schedule.wave2.phase2[0].label: 'T+1h' is used twice in wave wave2"]


def test_same_label_in_different_waves_is_fine(inv):
    assert plan_of(inv, "wave1")["phases"][0]["checkpoints"][0]["label"] == "T+1h"
    assert plan_of(inv, "wave3")["phases"][0]["checkpoints"][0]["label"] == "T+1h"


@pytest.mark.parametrize("at", [0, -60, "3600", True, None])
def test_checkpoint_time_must_be_positive_seconds(inv, at):
    inv["wave_schedule"]["wave2"]["phase1"][0]["at"] = at
    assert problems_of(inv) == ["wave_schedule.wave2.phase1[0].at: must be a number in (0, 604,800] seconds, got %r"
                                % (at,)]


@pytest.mark.parametrize("at", [3600, 1800])
def test_checkpoint_times_must_increase(inv, at):
    inv["wave_schedule"]["wave2"]["phase1"][1]["at"] = at
    assert problems_of(inv) == ["wave_schedule.wave2.phase1[1].at: %s is not after the previous checkpoint (3600)"
                                % at]


def test_schedule_for_a_phase_the_wave_does_not_have(inv):
    inv["wave_schedule"]["wave2"]["phase3"] = [{"label": "T+48h", "at": 172800}]
    assert problems_of(inv) == ["wave_schedule.wave2: phase3 not a phase of wave2"]


def test_previous_wave_must_be_defined(inv):
    inv["fleet_waves"]["wave2"]["previous"] = "wave0"
    assert problems_of(inv) == ["fleet_waves.wave2.previous: 'wave0' is not a defined wave"]


def test_undefined_wave_further_up_the_chain_names_the_wave_that_points_to_it(inv):
    inv["fleet_waves"]["wave1"]["previous"] = "wave0"
    assert problems_of(inv, "wave3") == ["fleet_waves.wave1.previous: 'wave0' is not a defined wave"]


def test_previous_chain_must_not_loop(inv):
    inv["fleet_waves"]["wave1"]["previous"] = "wave2"
    assert problems_of(inv) == ["fleet_waves.wave2.previous: the chain of previous waves loops"]


# --- bugs ----------------------------------------------------------------------------------------

def test_unhashable_label_is_a_problem_not_a_crash(inv):
    inv["wave_schedule"]["wave2"]["phase1"][0]["label"] = ["T+1h"]
    assert problems_of(inv) == ["wave_schedule.wave2.phase1[0].label: ['T+1h'] is not usable as a folder name "
                                "(allowed: %s)" % FOLDER_NAME_RULE]


@pytest.mark.parametrize("pattern", ["agent.{name!x}", "agents.{id:d}"])
def test_pattern_with_a_bad_format_spec_is_a_problem_not_a_crash(inv, pattern):
    inv["fleet_subject_unified"] = pattern
    [problem] = problems_of(inv)
    assert problem.startswith("fleet_subject_unified: %r" % pattern)


def test_previous_wave_that_is_not_a_mapping_is_a_problem_not_a_crash(inv):
    inv["fleet_waves"]["wave1"] = None
    problems = problems_of(inv)
    assert any(p.startswith("fleet_waves.wave1") for p in problems)


@pytest.mark.parametrize("where", ["label", "id", "pattern"])
def test_trailing_newline_is_refused(inv, where):
    if where == "label":
        inv["wave_schedule"]["wave2"]["phase1"][0]["label"] = "phase1-T+1h\n"
    elif where == "id":
        inv["fleet_agents"]["tdd-expert"]["id"] = TDD_ID + "\n"
    else:
        inv["fleet_subject_legacy"] = "agent.{name}\n"
    assert len(problems_of(inv)) == 1


@pytest.mark.parametrize("label", ["history", "decision.json", "report.md"])
def test_labels_that_collide_with_wave_artifacts_are_refused(inv, label):
    inv["wave_schedule"]["wave2"]["phase2"][0]["label"] = label
    [problem] = problems_of(inv)
    assert problem.startswith("wave_schedule.wave2.phase2[0].label: %r" % label)


# --- reference group -----------------------------------------------------------------------------

def test_reference_is_the_control_group_while_one_is_left(inv):
    plan = plan_of(inv)
    assert plan["reference_kind"] == "control"
    assert plan["reference"] == plan["control"] and [a["name"] for a in plan["reference"]] == [
        "git-expert", "graph-expert", "location-expert"]


def test_last_wave_is_compared_with_the_agents_of_earlier_waves(inv):
    plan = plan_of(inv, "wave3")
    assert plan["control"] == [] and plan["reference_kind"] == "earlier waves"
    assert [a["name"] for a in plan["reference"]] == ["nats-expert", "network-expert", "tdd-expert"]
    assert plan["reference"][1] == dict(name="network-expert", id=NETWORK_ID, cluster="infrastructure",
                                        legacy="agent.network-expert",
                                        unified="agents.infrastructure.%s" % NETWORK_ID)


def test_earlier_waves_reference_follows_the_previous_chain_only(inv):
    # wave3 after wave1 directly: wave2's agents are untouched, so they are the control group again.
    inv["fleet_waves"]["wave3"]["previous"] = "wave1"
    plan = plan_of(inv, "wave3")
    assert plan["reference_kind"] == "control"
    assert [a["name"] for a in plan["reference"]] == ["network-expert", "tdd-expert"]


def test_reference_never_holds_the_wave_own_agents(inv):
    for wave in CONTRACT["fleet_waves"]:
        plan = plan_of(inv, wave)
        assert not {a["name"] for a in plan["reference"]} & set(plan["agents"]), wave


def test_a_single_wave_of_every_agent_has_no_reference(inv):
    inv["fleet_waves"] = {"wave1": {"previous": None, "phases": [{"name": "phase1",
                                                                  "agents": sorted(CONTRACT["fleet_agents"])}]}}
    plan = plan_of(inv, "wave1")
    assert (plan["control"], plan["reference"], plan["reference_kind"]) == ([], [], "none")


# --- watch rounds: checkpoints and continuous monitoring -----------------------------------------

def test_every_phase_has_rounds_holding_its_checkpoints_in_order(inv):
    for phase in plan_of(inv)["phases"]:
        checkpoints = [r for r in phase["rounds"] if r["kind"] == "checkpoint"]
        assert checkpoints == [dict(w, kind="checkpoint") for w in phase["watch"]]


def test_production_monitoring_rounds_every_five_minutes(inv):
    rounds = plan_of(inv)["phases"][0]["rounds"]
    # watch: verification at 540 s, checkpoints at 4140 and 7740 s; a round every 300 s before the
    # last checkpoint, except 600 s and 4200 s (within 150 s of a checkpoint).
    monitors = [r for r in rounds if r["kind"] == "monitor"]
    assert [r["after"] for r in monitors] == [n * 300 for n in range(1, 26) if n not in (2, 14)]
    assert monitors[0] == dict(label="phase1-monitor-001", after=300, kind="monitor")
    assert monitors[-1] == dict(label="phase1-monitor-025", after=7500, kind="monitor")
    assert len(rounds) == 3 + 23
    assert [r["after"] for r in rounds] == sorted(r["after"] for r in rounds)
    assert [r["label"] for r in rounds[:4]] == ["phase1-monitor-001", "phase1-verification", "phase1-monitor-003",
                                                "phase1-monitor-004"]
    assert rounds[-1] == dict(label="phase1-T+2h", after=7740, kind="checkpoint")


def test_monitoring_round_labels_are_per_phase_and_unique(inv):
    plan = plan_of(inv)
    labels = [r["label"] for p in plan["phases"] for r in p["rounds"]]
    assert len(labels) == len(set(labels))
    assert all(r["label"].startswith("phase2-monitor-") for r in plan["phases"][1]["rounds"] if r["kind"] == "monitor")


def test_monitoring_rounds_follow_the_monitor_interval(inv):
    inv["wave_monitor_interval_seconds"] = 1000
    rounds = plan_of(inv)["phases"][0]["rounds"]
    # every 1000 s before 7740, less 1000 (460 s from 540) and 4000 (140 s from 4140); numbered by slot
    assert [(r["label"], r["after"]) for r in rounds] == [
        ("phase1-verification", 540), ("phase1-monitor-002", 2000), ("phase1-monitor-003", 3000),
        ("phase1-T+1h", 4140), ("phase1-monitor-005", 5000), ("phase1-monitor-006", 6000),
        ("phase1-monitor-007", 7000), ("phase1-T+2h", 7740)]


def test_no_monitoring_round_after_the_last_checkpoint(inv):
    for phase in plan_of(inv)["phases"]:
        last = phase["watch"][-1]["after"]
        assert phase["rounds"][-1]["kind"] == "checkpoint" and phase["rounds"][-1]["after"] == last
        assert all(r["after"] < last for r in phase["rounds"][:-1])


WATCH = [dict(label="p-verification", after=5), dict(label="T+1h", after=20)]


def test_watch_rounds_drops_rounds_within_half_an_interval_of_a_checkpoint():
    # 6 s: 1 s from the verification (dropped); 12 s: kept; 18 s: 2 s from T+1h (dropped)
    assert watch_rounds("p", WATCH, 6) == [dict(label="p-verification", after=5, kind="checkpoint"),
                                           dict(label="p-monitor-002", after=12.0, kind="monitor"),
                                           dict(label="T+1h", after=20, kind="checkpoint")]


def test_watch_rounds_keeps_a_round_exactly_half_an_interval_away():
    rounds = watch_rounds("p", [dict(label="c", after=10)], 4)
    assert [(r["label"], r["after"]) for r in rounds] == [("p-monitor-001", 4.0), ("p-monitor-002", 8.0), ("c", 10)]


def test_watch_rounds_with_an_interval_longer_than_the_watch_are_just_the_checkpoints():
    assert watch_rounds("p", WATCH, 300) == [dict(w, kind="checkpoint") for w in WATCH]


def test_watch_rounds_of_an_empty_watch():
    assert watch_rounds("p", [], 6) == []


def test_watch_rounds_rounds_fractional_times():
    rounds = watch_rounds("p", [dict(label="c", after=1)], 0.1)
    assert [r["after"] for r in rounds if r["kind"] == "monitor"] == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]


def test_watch_rounds_does_not_modify_the_watch():
    watch = copy.deepcopy(WATCH)
    watch_rounds("p", watch, 6)
    assert watch == WATCH


def test_monitor_is_a_reserved_label(inv):
    inv["wave_schedule"]["wave2"]["phase2"][0]["label"] = "monitor"
    [problem] = problems_of(inv)
    assert problem.startswith("wave_schedule.wave2.phase2[0].label: 'monitor' is reserved (it names a file or "
                              "folder of the artifact store; reserved: ")


# --- issue 8 part 6, "Artifacts are trusted as input": wave names were never validated -------------

@pytest.mark.parametrize("wave", ["..", "../audit", "a/b", "audit", "history", "runs", ".hidden", "wave2\n", ""])
def test_artifacts_are_trusted_as_input_wave_names_are_validated_like_labels(inv, wave):
    """wave='..' with label 'audit' wrote into artifacts/audit/: the wave is refused, naming the
    variable and the allowed pattern, before anything else is looked at."""
    inv["fleet_waves"][wave] = inv["fleet_waves"]["wave2"]
    inv["wave_schedule"][wave] = inv["wave_schedule"]["wave2"]
    [problem] = problems_of(inv, wave)
    assert problem.startswith("wave (wave_name): %r is " % wave)
    assert FOLDER_NAME_RULE in problem or "is reserved" in problem


def test_artifacts_are_trusted_as_input_every_wave_of_fleet_waves_is_named_by_the_rule(inv):
    inv["fleet_waves"]["audit"] = {"phases": [{"name": "p", "agents": ["nats-expert"]}]}
    assert any(p.startswith("fleet_waves.audit: 'audit' is reserved") for p in problems_of(inv))


@pytest.mark.parametrize("wave, label", [("..", "audit"), ("a/../..", "x"), ("audit", "T+1h"), ("wave2", "../x")])
def test_artifacts_are_trusted_as_input_layout_refuses_a_wave_or_label_outside_its_folder(wave, label):
    from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import ArtifactError
    for path in (lambda: Layout.round_dir(wave, label), lambda: Layout.wave_decision(wave) + Layout.round_dir(wave, label),
                 lambda: Layout.history_dir(wave, "run-1", label)):
        with pytest.raises(ArtifactError, match="allowed|reserved"):
            path()
