"""plugins/plugin_utils/fleet_gate.py and criteria/default.yml: criteria files are refused with the
file, key path and reason; no data never passes; triggers roll back (or stop); the Mann-Whitney
figures agree with textbook values, a pairwise count and a permutation test.

evaluate() returns findings only; the outcome and next step are fleet_policy.decide_round's. judge()
merges the two, so each case states the outcome the gate's findings lead to."""

from __future__ import annotations

import copy
import math
import pathlib
import random

import pytest
import yaml
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_limits import (
    MAX_CRITERIA_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES)
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_gate
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_gate import (CriteriaError, evaluate,
                                                                                   load_criteria, mann_whitney_u)
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_policy import (GO, INCONCLUSIVE, NO_GO, ROLLBACK,
                                                                                     decide_round)

pytestmark = pytest.mark.unit

DEFAULT = pathlib.Path(__file__).resolve().parents[2] / "criteria" / "default.yml"
AGENTS = ("network-expert", "tdd-expert")
GOOD_AGENT = dict(uptime_pct=100.0, error_rate_pct=0.01, delivery_pct=100.0, latency_p50_ms=4.0,
                  latency_p99_ms=20.0, dual_publish_success_pct=100.0, unified_share_pct=50.0,
                  publish_time_ms=0.5, agent_crashes=0, latency_degradation_pct=2.0, latency_degraded=0)
GOOD_WAVE = dict(cpu_overhead_pct=1.0, cpu_increase_pct=0.2, memory_overhead_pct=2.0, system_load=0.3, latency_p50_degradation_pct=3.0,
                 latency_p50_increase_ms=0.12)


@pytest.fixture(scope="module")
def criteria():
    """criteria/default.yml with its fixed-alpha rank test, which the comparison cases here are about
    (the sequential test's are in test_fleet_checkpoint_measure and test_fleet_sequential)."""
    loaded = load_criteria(str(DEFAULT))
    return dict(loaded, comparison=dict(loaded["comparison"], test="mann_whitney"))


def latency(seed, shift=0.0, n=40):
    rng = random.Random(seed)
    return [rng.gauss(5.0, 1.0) + shift for _ in range(n)]


def good(**wave):
    return dict(per_agent={a: dict(GOOD_AGENT) for a in AGENTS}, wave=dict(GOOD_WAVE, **wave),
                samples=dict(test=dict(latency_ms=latency(3)), control=dict(latency_ms=latency(4))))


def with_agent(metric, value, agent="tdd-expert"):
    measurements = good()
    measurements["per_agent"][agent][metric] = value
    return measurements


def judge(criteria, measurements):
    """evaluate's findings with fleet_policy.decide_round's verdict (outcome, next_step, headline,
    reasons) on them, as the checkpoint action does (without health checks)."""
    findings = evaluate(criteria, measurements)
    verdict = decide_round(findings, None, criteria["on_trigger"], criteria["comparison"]["on_inconclusive"])
    return dict(findings, **verdict)


def problems_of(data, name="criteria/bad.yml"):
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    with pytest.raises(CriteriaError) as exc:
        load_criteria(text, name)
    return exc.value.problems


# --- criteria files ------------------------------------------------------------------------------

def test_default_criteria_load_with_the_contract_counts(criteria):
    assert (len(criteria["primary"]), len(criteria["secondary"]), len(criteria["rollback_triggers"])) == (7, 4, 5)
    assert [c["metric"] for c in criteria["primary"]] == [
        "uptime_pct", "error_rate_pct", "delivery_pct", "latency_p50_ms", "latency_p99_ms",
        "dual_publish_success_pct", "unified_share_pct"]
    assert criteria["comparison"]["min_samples"] == 20 and criteria["on_trigger"] == "rollback"
    assert criteria["comparison"]["on_inconclusive"] == "ask"


def test_text_and_dict_sources_validate_like_the_file():
    from_file = load_criteria(str(DEFAULT))
    assert load_criteria(DEFAULT.read_text(), "criteria/default.yml") == from_file
    assert load_criteria(copy.deepcopy(from_file)) == from_file


def test_the_default_comparison_is_the_sequential_test_with_a_tolerance():
    comparison = load_criteria(str(DEFAULT))["comparison"]
    assert (comparison["test"], comparison["tolerance"]) == ("sequential", 0.1)


@pytest.mark.parametrize("value, reason", [
    (-0.1, "must be a number in [0, 10] fraction of the reference median, got -0.1"),
    (float("inf"), "must be a number in [0, 10] fraction of the reference median, got inf"),
    ("10%", "must be a number in [0, 10] fraction of the reference median, got '10%'"),
])
def test_a_tolerance_out_of_range_is_refused_with_the_range(value, reason):
    with pytest.raises(CriteriaError) as raised:
        load_criteria(mutated(lambda d: d["comparison"].update(tolerance=value)), "c.yml")
    assert raised.value.problems == ["c.yml: comparison.tolerance: %s" % reason]


def test_a_count_that_is_neither_latency_nor_round_is_refused():
    with pytest.raises(CriteriaError) as raised:
        load_criteria(mutated(lambda d: d["comparison"].update(count="rounds")), "c.yml")
    assert raised.value.problems == ["c.yml: comparison.count: 'rounds' is not one of latency, round"]


def test_an_unknown_comparison_test_is_refused_naming_both():
    with pytest.raises(CriteriaError) as raised:
        load_criteria(mutated(lambda d: d["comparison"].update(test="t_test")), "c.yml")
    assert raised.value.problems == ["c.yml: comparison.test: 't_test' is not one of sequential, mann_whitney"]


def mutated(edit):
    data = yaml.safe_load(DEFAULT.read_text())
    edit(data)
    return data


@pytest.mark.parametrize("edit, expected", [
    (lambda d: d["primary"][3].update(comparator="=<"),
     "criteria/bad.yml: primary[3].comparator: '=<' is not one of <, <=, >, >=, =="),
    (lambda d: d["primary"][0].pop("threshold"), "criteria/bad.yml: primary[0].threshold: missing"),
    (lambda d: d["secondary"][1].update(threshold="ten"),
     "criteria/bad.yml: secondary[1].threshold: 'ten' is not a number"),
    (lambda d: d["rollback_triggers"][2].update(treshold=0),
     "criteria/bad.yml: rollback_triggers[2].treshold: unknown key 'treshold'"),
    (lambda d: d["primary"][1].update(metric="uptime_pct"),
     "criteria/bad.yml: primary[1].metric: 'uptime_pct' already used by primary[0]"),
    (lambda d: d.update(on_failure="pause"), "criteria/bad.yml: on_failure: unknown key 'on_failure'"),
    (lambda d: d["comparison"].update(alpha=1), "criteria/bad.yml: comparison.alpha: 1 is not strictly between"),
    (lambda d: d["comparison"]["metrics"][0].update(worse="up"),
     "criteria/bad.yml: comparison.metrics[0].worse: 'up' is not one of higher, lower"),
    # The old vocabulary (pause) is refused: the next steps are rollback or stop, ask or rollback.
    (lambda d: d.update(on_trigger="pause"), "criteria/bad.yml: on_trigger: 'pause' is not one of rollback, stop"),
    (lambda d: d["comparison"].update(on_inconclusive="pause"),
     "criteria/bad.yml: comparison.on_inconclusive: 'pause' is not one of ask, rollback"),
], ids=["bad-comparator", "missing-threshold", "non-numeric-threshold", "unknown-key", "duplicate-metric",
        "unknown-top-key", "alpha-out-of-range", "bad-direction", "on-trigger-pause", "on-inconclusive-pause"])
def test_malformed_criteria_name_file_key_path_and_reason(edit, expected):
    problems = problems_of(mutated(edit))
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_every_problem_is_reported_at_once():
    def edit(d):
        d["primary"][3]["comparator"] = "=<"
        d["secondary"][0]["unit"] = "percent"
    problems = problems_of(mutated(edit))
    assert [p.split(": ")[1] for p in problems] == ["primary[3].comparator", "secondary[0].unit"]


@pytest.mark.parametrize("text, expected", [
    ("primary:\n  - name: x\n    metric: [a\n", "criteria/bad.yml: line 4, column 1: YAML syntax error: "),
    ("on_trigger: stop\non_trigger: rollback\n", "criteria/bad.yml: line 2, column 1: YAML syntax error: "
                                                  "duplicate key 'on_trigger'"),
    ("", "criteria/bad.yml: (top level): empty"),
    ("# only a comment\n", "criteria/bad.yml: (top level): empty"),
    ("- primary\n", "criteria/bad.yml: (top level): expected a mapping, got list"),
    ("primary: {}\n", "criteria/bad.yml: primary: expected a list of criteria, got dict"),
], ids=["syntax", "duplicate-yaml-key", "empty", "comment-only", "top-level-list", "section-not-list"])
def test_unusable_files_are_refused_with_file_and_place(text, expected):
    assert any(p.startswith(expected) for p in problems_of(text))


def test_unreadable_file_is_named(tmp_path):
    with pytest.raises(CriteriaError, match=r"missing\.yml: \(file\): cannot read: No such file"):
        load_criteria(str(tmp_path / "missing.yml"))


# --- hostile criteria files (issue 8): refused before they cost time or memory ----------------------

def alias_chain(levels=9, fan=9):
    """A criteria file whose threshold is a chain of aliases, each listing the previous one `fan`
    times: a few hundred bytes that expand to fan ** levels values."""
    lines = ["a0: &a0 [1]"] + ["a%d: &a%d [%s]" % (i, i, ", ".join(["*a%d" % (i - 1)] * fan))
                               for i in range(1, levels + 1)]
    return "\n".join(lines) + "\nprimary:\n  - threshold: *a%d\n" % levels


@pytest.fixture
def never_constructed(monkeypatch):
    """Fails the test if the YAML document gets as far as being built into Python objects."""
    def construct_document(self, node):
        # No traceback: pytest would print the node graph, which an alias chain makes exponential.
        pytest.fail("the document was constructed", pytrace=False)
    monkeypatch.setattr(fleet_gate._StrictLoader, "construct_document", construct_document)


@pytest.mark.parametrize("text, where", [
    (alias_chain(), "line 2, column 10"),
    ("base: &b {threshold: 1}\nprimary:\n  - <<: *b\n", "line 3, column 9"),
    ("primary:\n  - threshold: &t 5\nsecondary:\n  - threshold: *t\n", "line 4, column 16"),
], ids=["nine-level-chain", "merge-key", "plain-alias"])
def test_criteria_alias_chain_is_refused_before_expansion(never_constructed, text, where):
    [problem] = problems_of(text)
    assert problem.startswith("criteria/bad.yml: %s: alias *" % where)
    assert "aliases are not allowed in a criteria file" in problem


def test_criteria_nested_beyond_the_depth_cap_is_refused(never_constructed):
    [problem] = problems_of("primary: " + "[" * 5000 + "]" * 5000 + "\n")
    assert problem == "criteria/bad.yml: line 1, column %d: nested deeper than %d levels" % (
        10 + MAX_YAML_DEPTH - 1, MAX_YAML_DEPTH)


@pytest.mark.parametrize("text", [
    "primary: [" + "1, " * MAX_YAML_NODES + "1]\n",
    "primary:\n" + "  - 1\n" * MAX_YAML_NODES,
], ids=["flow", "block"])
def test_criteria_with_more_values_than_the_cap_is_refused_while_parsing(never_constructed, text):
    [problem] = problems_of(text)
    assert problem.endswith(": more than %d values, the limit for a criteria file" % MAX_YAML_NODES)


def test_oversized_criteria_file_is_refused(tmp_path, never_constructed):
    # The default criteria, padded with a comment past the cap: valid, but too big to read.
    text = DEFAULT.read_text() + "#" * MAX_CRITERIA_BYTES + "\n"
    path = tmp_path / "huge.yml"
    path.write_text(text)
    expected = "(file): larger than %d bytes, the limit for a criteria file" % MAX_CRITERIA_BYTES
    with pytest.raises(CriteriaError) as exc:
        load_criteria(str(path))
    assert exc.value.problems == ["%s: %s" % (path, expected)]
    assert problems_of(text) == ["criteria/bad.yml: " + expected]


def test_criteria_file_at_the_size_cap_is_read(tmp_path):
    text = DEFAULT.read_text()
    text += "#" * (MAX_CRITERIA_BYTES - len(text.encode()) - 1) + "\n"
    assert len(text.encode()) == MAX_CRITERIA_BYTES
    assert load_criteria(text, "criteria/full.yml") == load_criteria(str(DEFAULT))


def test_criteria_number_past_the_digit_limit_is_refused():
    [problem] = problems_of("primary:\n  - threshold: %s\n" % ("9" * 5000))
    assert problem.startswith("criteria/bad.yml: (file): ") and "digits" in problem


def test_huge_integer_threshold_is_checked_without_overflowing():
    data = load_criteria(str(DEFAULT))
    data["primary"][0]["threshold"] = 10 ** 400  # math.isfinite() overflowed on it
    assert load_criteria(data)["primary"][0]["threshold"] == 10 ** 400


@pytest.mark.parametrize("min_samples", [1, 100001, 10 ** 30, 20.0, True, float("nan")])
def test_min_samples_is_an_integer_within_its_range(min_samples):
    data = load_criteria(str(DEFAULT))
    data["comparison"]["min_samples"] = min_samples
    with pytest.raises(CriteriaError) as exc:
        load_criteria(data, "criteria/bad.yml")
    assert exc.value.problems == ["criteria/bad.yml: comparison.min_samples: must be an integer in "
                                  "[2, 100,000] samples per side, got %r" % (min_samples,)]


# --- criteria against measurements ---------------------------------------------------------------

def rows(result, name, agent=None):
    return [r for r in result["criteria"] if r["name"] == name and (agent is None or r["agent"] == agent)]


def test_healthy_wave_is_go(criteria):
    result = judge(criteria, good())
    assert (result["outcome"], result["next_step"], result["reasons"]) == (GO, "proceed", [])
    assert (result["fired"], result["unknown"], result["failed"], result["degraded"], result["short"]) == (
        [], [], [], [], [])
    # Per agent: 7 primary, 1 secondary, 4 triggers; once for the wave: 3 secondary, 1 trigger.
    assert len(result["criteria"]) == 2 * 12 + 4
    assert result["headline"].startswith("GO: ")
    assert [(c["metric"], c["verdict"]) for c in result["comparisons"]] == [("latency_ms", "no difference")]


@pytest.mark.parametrize("value", [None, float("nan"), "n/a", "missing"])
def test_no_data_fails_a_primary_and_names_it(criteria, value):
    measurements = with_agent("uptime_pct", value)
    if value == "missing":
        del measurements["per_agent"]["tdd-expert"]["uptime_pct"]
    result = judge(criteria, measurements)
    [row] = rows(result, "agent_uptime", "tdd-expert")
    assert row["passed"] is False and row["measured"] is None and row["reason"].startswith("no data")
    assert result["outcome"] == NO_GO and result["next_step"] == "stop"
    assert result["reasons"] == ["primary agent_uptime failed on tdd-expert: uptime_pct " + row["reason"]]
    assert result["failed"] == [row]


def test_no_agents_measured_fails_every_per_agent_criterion(criteria):
    measurements = good()
    measurements["per_agent"] = {}
    result = judge(criteria, measurements)
    assert result["outcome"] == NO_GO
    assert all(r["reason"] == "no data (no agent measured)" for r in result["criteria"] if r["scope"] == "per_agent")


def test_failed_primary_is_no_go_naming_agent_and_figures(criteria):
    result = judge(criteria, with_agent("latency_p99_ms", 250, agent="network-expert"))
    assert result["outcome"] == NO_GO
    assert result["reasons"] == ["primary latency_p99 failed on network-expert: latency_p99_ms 250 is not < 200 ms"]


def test_a_percentile_says_how_many_latencies_it_was_taken_from_and_flags_too_few(criteria):
    measurements = good()
    measurements["per_agent"]["network-expert"]["latency_samples"] = 40
    measurements["per_agent"]["tdd-expert"]["latency_samples"] = 500
    result = judge(criteria, measurements)
    assert result["outcome"] == GO  # flagged, not failed: 20 ms is the largest of 40, under 200
    by_agent = {r["agent"]: r for r in rows(result, "latency_p99")}
    assert by_agent["network-expert"]["too_few"] is True and by_agent["network-expert"]["samples"] == 40
    assert by_agent["network-expert"]["reason"] == (
        "20 < 200 ms (of 40 latencies, too few to estimate it: the largest of them)")
    assert by_agent["tdd-expert"]["too_few"] is False and by_agent["tdd-expert"]["reason"] == "20 < 200 ms (of 500 latencies)"
    assert rows(result, "latency_p50")[0]["too_few"] is False  # a median needs 2
    assert result["notes"] == ["primary latency_p99 judged from too few latencies on 1 instance (40; a p99 needs 100): "
                               "each is the largest latency measured, not an estimate of the percentile"]


def test_a_percentile_taken_from_too_few_latencies_still_fails_over_its_limit(criteria):
    measurements = with_agent("latency_p99_ms", 250, agent="network-expert")
    measurements["per_agent"]["network-expert"]["latency_samples"] = 30
    measurements["per_agent"]["tdd-expert"]["latency_samples"] = 30
    result = judge(criteria, measurements)
    assert result["outcome"] == NO_GO
    assert result["reasons"] == ["primary latency_p99 failed on network-expert: latency_p99_ms 250 is not < 200 ms "
                                 "(of 30 latencies, too few to estimate it: the largest of them)"]
    assert "on 2 instances (30; a p99 needs 100)" in result["notes"][0]


def test_secondary_failure_alone_keeps_go(criteria):
    result = judge(criteria, good(cpu_overhead_pct=7.5, cpu_increase_pct=3.0))
    assert result["outcome"] == GO
    assert rows(result, "cpu_overhead")[0]["passed"] is False
    assert result["reasons"] == []
    assert ("secondary cpu_overhead failed (informational): cpu_overhead_pct 7.5 is not < 5 %, or cpu_increase_pct "
            "3 is not < 2 %") in result["notes"]


@pytest.mark.parametrize("relative, increase, passed", [
    (170.0, 0.9, True),    # near-idle agents: +170 % is 0.9 % of one core
    (3.0, 2.5, True),      # busy agents: within the relative limit
    (7.5, 3.0, False),     # above both
    (170.0, None, False),  # the alternative without data cannot make it pass
])
def test_cpu_overhead_is_judged_relative_only_above_its_floor(criteria, relative, increase, passed):
    row = rows(judge(criteria, good(cpu_overhead_pct=relative, cpu_increase_pct=increase)), "cpu_overhead")[0]
    assert row["passed"] is passed, row
    # The alternative is asked only when the relative figure fails.
    assert row["alternative"]["measured"] == (increase if relative >= 5 else None), row


def test_a_criterion_with_both_also_and_or_is_refused():
    def both(data):
        data["secondary"][0]["also"] = dict(metric="cpu_increase_pct", comparator=">", threshold=1, unit="%")
    with pytest.raises(CriteriaError) as raised:
        load_criteria(mutated(both), "c.yml")
    assert raised.value.problems == ["c.yml: secondary[0]: has both also and or; one second condition per criterion"]


def test_an_inventory_replaces_thresholds_by_criterion_name(criteria):
    replaced = fleet_gate.with_thresholds(criteria, {"system_load": 4, "latency_p50": 50}, "wave_criteria_thresholds")
    assert rows(judge(replaced, good(system_load=3.5)), "system_load")[0]["passed"] is True
    assert [c["threshold"] for c in replaced["primary"] if c["name"] == "latency_p50"] == [50]
    assert [c["threshold"] for c in criteria["secondary"] if c["name"] == "system_load"] == [1.0]  # a copy


@pytest.mark.parametrize("thresholds, problem", [
    ({"system_lod": 4}, "wave_criteria_thresholds.system_lod: no criterion is named 'system_lod' (criteria: "),
    ({"system_load": float("inf")}, "wave_criteria_thresholds.system_load: inf is not a number"),
    ({"system_load": "4"}, "wave_criteria_thresholds.system_load: '4' is not a number"),
])
def test_a_replaced_threshold_must_name_a_criterion_and_be_a_number(criteria, thresholds, problem):
    with pytest.raises(CriteriaError) as raised:
        fleet_gate.with_thresholds(criteria, thresholds, "wave_criteria_thresholds")
    [found] = raised.value.problems
    assert found.startswith(problem), found


@pytest.mark.parametrize("scope, metric, value, trigger", [
    ("agent", "delivery_pct", 99.98, "message_loss"),
    ("agent", "error_rate_pct", 1.5, "error_rate_high"),
    ("agent", "agent_crashes", 1, "agent_crash"),
    ("wave", "system_load", 4.5, "system_instability"),
])
def test_each_trigger_rolls_back_naming_it(criteria, scope, metric, value, trigger):
    measurements = with_agent(metric, value) if scope == "agent" else good(**{metric: value})
    result = judge(criteria, measurements)
    assert (result["outcome"], result["next_step"]) == (ROLLBACK, "rollback")
    where = " on tdd-expert" if scope == "agent" else ""
    assert result["reasons"][0].startswith("trigger %s fired%s: %s " % (trigger, where, metric))
    assert result["headline"] == "ROLLBACK: 1 rollback trigger(s) fired: %s" % trigger
    [row] = rows(result, trigger, "tdd-expert" if scope == "agent" else None)
    assert row["fired"] is True and row["passed"] is False


def test_on_trigger_stop_gives_a_no_go_that_stops(criteria):
    paused = dict(criteria, on_trigger="stop")
    result = judge(paused, with_agent("agent_crashes", 2))
    assert (result["outcome"], result["next_step"]) == (NO_GO, "stop")
    assert result["headline"] == "NO-GO: 1 rollback trigger(s) fired: agent_crash"
    assert result["reasons"][0] == "trigger agent_crash fired on tdd-expert: agent_crashes 2 > 0 count"


def degraded(pct, verdict, agent="tdd-expert"):
    """Measurements whose agent's median moved pct % from its own before its flip, with the
    sequential test's verdict on it (1 degraded, 0 not, None no verdict yet)."""
    measurements = with_agent("latency_degradation_pct", pct, agent)
    measurements["per_agent"][agent]["latency_degraded"] = verdict
    return measurements


def test_a_degradation_the_sequential_test_finds_rolls_back_naming_the_instance(criteria):
    result = judge(criteria, degraded(25.0, 1))
    assert (result["outcome"], result["next_step"]) == (ROLLBACK, "rollback")
    assert result["reasons"] == ["trigger performance_degradation fired on tdd-expert: latency_degradation_pct "
                                 "25 > 20 % and latency_degraded 1 == 1 count"]
    [row] = rows(result, "performance_degradation", "tdd-expert")
    assert row["fired"] is True and row["also"]["measured"] == 1


def test_a_rise_the_sequential_test_does_not_find_is_no_degradation(criteria):
    # CI's slow machine: a 2.9 ms median 38 % higher for a round, and no more than noise.
    result = judge(criteria, degraded(37.9, 0))
    assert result["outcome"] == GO and result["reasons"] == []
    [row] = rows(result, "performance_degradation", "tdd-expert")
    assert row["fired"] is False and row["reason"] == "37.9 > 20 % and latency_degraded 0 is not == 1 count"


def test_a_degradation_within_20_percent_is_left_to_the_comparison(criteria):
    # Degraded beyond the tolerance (the comparison's NO-GO) but not beyond the trigger's 20 %.
    [row] = rows(judge(criteria, degraded(12.0, 1)), "performance_degradation", "tdd-expert")
    assert row["fired"] is False and row["reason"] == "12 is not > 20 %"


def test_a_rise_without_a_verdict_cannot_be_ruled_out(criteria):
    result = judge(criteria, degraded(30.0, None))
    assert (result["outcome"], result["next_step"]) == (NO_GO, "stop") and result["fired"] == []
    assert result["reasons"] == ["trigger performance_degradation cannot be ruled out on tdd-expert: "
                                 "latency_degradation_pct 30 > 20 % and latency_degraded no data"]


def test_trigger_without_data_holds_but_does_not_roll_back(criteria):
    measurements = good()
    del measurements["per_agent"]["tdd-expert"]["latency_degradation_pct"]
    result = judge(criteria, measurements)
    assert (result["outcome"], result["next_step"]) == (NO_GO, "stop") and result["fired"] == []
    assert result["reasons"] == ["trigger performance_degradation cannot be ruled out on tdd-expert: "
                                 "latency_degradation_pct no data"]


def test_the_verdict_is_not_asked_while_the_rise_is_within_bounds(criteria):
    result = judge(criteria, degraded(5.0, None))
    assert result["outcome"] == GO
    assert rows(result, "performance_degradation", "tdd-expert")[0]["reason"] == "5 is not > 20 %"


@pytest.mark.parametrize("test, compared", [("mann_whitney", ["latency_ms"]), ("sequential", [])])
def test_the_sequential_figures_need_the_sequential_comparison_of_latency(test, compared):
    data = load_criteria(str(DEFAULT))
    data["comparison"].update(test=test, metrics=[m for m in data["comparison"]["metrics"] if m["metric"] in compared])
    assert problems_of(data) == [
        "criteria/bad.yml: rollback_triggers[3]%s.metric: %s comes from the sequential comparison of latency_ms: it "
        "needs comparison.test sequential with latency_ms in comparison.metrics (with %s, judge the wave figures "
        "latency_p50_degradation_pct and latency_p50_increase_ms)" % (where, metric, test)
        for where, metric in (("", "latency_degradation_pct"), (".also", "latency_degraded"))]


@pytest.mark.parametrize("also, problem", [
    ("1 ms", "rollback_triggers[3].also: expected a mapping with metric, comparator, threshold, unit, got str"),
    (dict(metric="x_ms", comparator=">", threshold=1), "rollback_triggers[3].also.unit: missing"),
    (dict(metric="x_ms", comparator=">", threshold=float("inf"), unit="ms"),
     "rollback_triggers[3].also.threshold: inf is not a number"),
    (dict(metric="x_ms", comparator="~", threshold=1, unit="ms", scope="wave"),
     "rollback_triggers[3].also.scope: unknown key 'scope' (allowed: metric, comparator, threshold, unit)"),
])
def test_a_malformed_second_condition_is_refused_naming_where(also, problem):
    data = yaml.safe_load(DEFAULT.read_text())
    data["rollback_triggers"][3]["also"] = also
    with pytest.raises(CriteriaError) as error:
        load_criteria(data, "mine.yml")
    assert "mine.yml: " + problem in error.value.problems


def single(comparator, threshold=100):
    data = yaml.safe_load(DEFAULT.read_text())
    data.update(primary=[dict(data["primary"][0], comparator=comparator, threshold=threshold)], rollback_triggers=[])
    return load_criteria(data, "boundary")


@pytest.mark.parametrize("comparator, passes", [("<", False), ("<=", True), (">", False), (">=", True), ("==", True)])
def test_exactly_at_the_threshold_behaves_as_written(comparator, passes):
    for measured in (100, 100.0):
        result = judge(single(comparator), with_agent("uptime_pct", measured))
        assert rows(result, "agent_uptime", "tdd-expert")[0]["passed"] is passes
        assert result["outcome"] == (GO if passes else NO_GO)


def test_default_thresholds_are_strict_where_the_contract_says_so(criteria):
    # uptime exactly 99.9 is not "> 99.9"; delivery exactly 100 is "= 100 %".
    result = evaluate(criteria, with_agent("uptime_pct", 99.9))
    assert rows(result, "agent_uptime", "tdd-expert")[0]["reason"] == "99.9 is not > 99.9 %"
    assert rows(evaluate(criteria, good()), "message_delivery", "tdd-expert")[0]["passed"] is True


# --- Mann-Whitney --------------------------------------------------------------------------------

def pairwise_u(a, b):
    return sum(1.0 if x > y else 0.5 if x == y else 0.0 for x in a for y in b)


def test_mann_whitney_matches_the_scipy_documentation_example():
    # scipy.stats.mannwhitneyu docs: males vs females, U1 = 17, asymptotic p = 0.11134688653314041.
    res = mann_whitney_u([19, 22, 16, 29, 24], [20, 11, 17, 12], min_samples=2)
    assert res.u == 17 and res.p == pytest.approx(0.11134688653314041, abs=1e-12)
    assert res.effect == pytest.approx(2 * 17 / 20 - 1) and (res.n_a, res.n_b) == (5, 4)


def test_mann_whitney_tie_correction_by_hand():
    # Pooled 1 2 2 2 3 3 4 5: ranks 1, 3 3 3, 5.5 5.5, 7, 8. R_a = 1+3+3+5.5 = 12.5, U_a = 12.5 - 4*5/2 = 2.5.
    # Ties of 3 and 2: sum(t^3 - t) = 24 + 6 = 30; var = 4*4/12 * (9 - 30/(8*7)); z = (|2.5 - 8| - 0.5)/sd.
    res = mann_whitney_u([1, 2, 2, 3], [2, 3, 4, 5], min_samples=2)
    sd = math.sqrt(16 / 12 * (9 - 30 / 56))
    assert res.u == 2.5 and res.effect == pytest.approx(2 * 2.5 / 16 - 1)
    assert res.p == pytest.approx(math.erfc(5 / sd / math.sqrt(2)), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_u_and_effect_agree_with_a_pairwise_count(seed):
    rng = random.Random(seed)
    # Rounded so ties happen.
    a = [round(rng.gauss(0, 1), 1) for _ in range(rng.randint(1, 30))]
    b = [round(rng.gauss(0.3, 1), 1) for _ in range(rng.randint(1, 30))]
    res = mann_whitney_u(a, b)
    assert res.u == pytest.approx(pairwise_u(a, b))
    # Cliff's delta: P(a > b) - P(a < b).
    wins = sum(x > y for x in a for y in b) - sum(x < y for x in a for y in b)
    assert res.effect == pytest.approx(wins / (len(a) * len(b)))


# p about 0.45, 0.04 and 0.003: the middle, near alpha, and the tail.
@pytest.mark.parametrize("seed, shift, tolerance", [(11, 0.0, 0.03), (13, 1.2, 0.015), (15, 1.2, 0.004)])
def test_p_agrees_with_a_permutation_test(seed, shift, tolerance):
    rng = random.Random(seed)
    a = [rng.gauss(shift, 1) for _ in range(12)]
    b = [rng.gauss(0, 1) for _ in range(15)]
    res = mann_whitney_u(a, b, min_samples=10)
    centre, observed = len(a) * len(b) / 2, abs(pairwise_u(a, b) - len(a) * len(b) / 2)
    pooled, rounds, extreme = a + b, 3000, 0
    for _ in range(rounds):
        rng.shuffle(pooled)
        extreme += abs(pairwise_u(pooled[:12], pooled[12:]) - centre) >= observed - 1e-9
    assert res.p == pytest.approx(extreme / rounds, abs=tolerance)


def test_p_is_withheld_below_min_samples_and_empty_samples_give_nothing():
    assert mann_whitney_u(range(19), range(40)).p is None
    assert mann_whitney_u(range(20), range(40)).p is not None
    assert mann_whitney_u([], [1, 2]) == (None, None, None, 0, 2)


def test_missing_points_are_dropped_and_all_tied_is_no_shift():
    assert mann_whitney_u([1.0, None, float("nan"), 2.0], [1.0, 2.0], min_samples=2)[3:] == (2, 2)
    res = mann_whitney_u([3] * 25, [3] * 25)
    assert (res.p, res.effect) == (1.0, 0.0)
    with pytest.raises(TypeError, match="'fast' is not a number"):
        mann_whitney_u(["fast"], [1])


def test_effect_sign_means_test_above_control():
    assert mann_whitney_u([10] * 20, [1] * 20).effect == 1.0
    assert mann_whitney_u([1] * 20, [10] * 20).effect == -1.0


# --- test vs control -----------------------------------------------------------------------------

def test_identical_distributions_are_go(criteria):
    measurements = good()
    same = latency(5)
    measurements["samples"] = dict(test=dict(latency_ms=list(same)), control=dict(latency_ms=list(same)))
    result = judge(criteria, measurements)
    assert result["outcome"] == GO
    assert result["comparisons"][0]["p"] == 1.0 and result["comparisons"][0]["effect"] == 0.0


def test_shifted_latency_is_no_go_naming_the_comparison(criteria):
    measurements = good()
    measurements["samples"]["test"]["latency_ms"] = latency(3, shift=50.0)
    result = judge(criteria, measurements)
    assert result["outcome"] == NO_GO
    [line] = result["reasons"]
    assert line.startswith("comparison latency_ms degraded: test higher than control: p=")
    assert "effect r=+1.00, medians +49.9 apart, n 40 test / 40 control" in line
    assert result["comparisons"][0]["verdict"] == "degraded" and result["comparisons"][0]["U"] == 1600


def test_a_significant_shift_below_the_minimum_is_no_difference(criteria):
    # 400 samples each, half a millisecond apart: significant, an effect above min_effect, and
    # still scheduler noise.
    measurements = good()
    measurements["samples"] = dict(test=dict(latency_ms=latency(3, shift=0.5, n=400)),
                                   control=dict(latency_ms=latency(4, n=400)))
    result = judge(criteria, measurements)
    [comparison] = result["comparisons"]
    assert comparison["p"] < 0.001 and comparison["effect"] > criteria["comparison"]["min_effect"]
    assert result["outcome"] == GO and comparison["verdict"] == "no difference"
    assert comparison["shift"] == pytest.approx(0.5, abs=0.2) and comparison["min_shift"] == 1
    assert "min shift 1)" in comparison["reason"]


def test_a_negative_minimum_shift_is_refused():
    data = yaml.safe_load(DEFAULT.read_text())
    data["comparison"]["metrics"][0]["min_shift"] = -1
    with pytest.raises(CriteriaError) as error:
        load_criteria(data, "mine.yml")
    assert error.value.problems == ["mine.yml: comparison.metrics[0].min_shift: must be a number in "
                                    "[0, 1,000,000] in the compared metric's unit, got -1"]


def test_faster_test_group_is_not_a_degradation(criteria):
    measurements = good()
    measurements["samples"]["test"]["latency_ms"] = latency(3, shift=-3.0)
    result = judge(criteria, measurements)
    assert result["outcome"] == GO and result["comparisons"][0]["verdict"] == "improved"


def test_ungated_sample_metric_is_reported_but_never_decides(criteria):
    measurements = good()
    measurements["samples"]["test"]["rss_mb"] = latency(4, shift=100.0)
    measurements["samples"]["control"]["rss_mb"] = latency(5)
    result = judge(criteria, measurements)
    assert result["outcome"] == GO
    assert [c["verdict"] for c in result["comparisons"] if c["metric"] == "rss_mb"] == ["differs"]


@pytest.mark.parametrize("on_inconclusive", ["ask", "rollback"])
def test_too_few_samples_for_a_required_comparison_is_inconclusive(criteria, on_inconclusive):
    settings = dict(criteria["comparison"], on_inconclusive=on_inconclusive)
    measurements = good()
    measurements["samples"]["test"]["latency_ms"] = latency(3, n=19)
    result = judge(dict(criteria, comparison=settings), measurements)
    assert (result["outcome"], result["next_step"]) == (INCONCLUSIVE, on_inconclusive)
    assert [c["metric"] for c in result["short"]] == ["latency_ms"]
    assert result["reasons"] == ["comparison latency_ms too few samples (required): "
                                 "n 19 test / 40 control, need 20 on each side"]


def test_inconclusive_yields_to_a_failed_primary(criteria):
    measurements = with_agent("error_rate_pct", 0.5)
    measurements["samples"] = {}
    assert judge(criteria, measurements)["outcome"] == NO_GO


def test_every_row_has_the_documented_shape(criteria):
    result = evaluate(criteria, good())
    keys = {"name", "kind", "metric", "scope", "agent", "comparator", "threshold", "unit", "measured", "passed",
            "fired", "reason", "also", "alternative"}
    assert all(set(r) == keys for r in result["criteria"])
    assert all(set(c) == {"metric", "worse", "required", "n_test", "n_control", "U", "p", "effect", "shift",
                          "min_shift", "verdict", "reason"} for c in result["comparisons"])
    # Findings only: the outcome and the next step are the policy's (fleet_policy.decide_round).
    assert set(result) == {"fired", "unknown", "failed", "degraded", "short", "n_primary", "n_comparisons", "reasons",
                           "notes", "criteria", "comparisons"}
    assert (result["n_primary"], result["n_comparisons"]) == (2 * 7, 1)


@pytest.mark.parametrize("change", [dict(min_shift=0), dict(worse="lower"), dict(min_shift=None)])
def test_a_compared_rate_needs_worse_higher_and_a_min_shift(change):
    data = load_criteria(str(DEFAULT))
    [rate] = [m for m in data["comparison"]["metrics"] if m["metric"] == "error_rate_pct"]
    rate.update(change)
    if rate["min_shift"] is None:
        del rate["min_shift"]
    [index] = [i for i, m in enumerate(data["comparison"]["metrics"]) if m is rate]
    assert problems_of(data) == [
        "criteria/bad.yml: comparison.metrics[%d]: error_rate_pct is a rate: it needs worse: higher and a min_shift "
        "above 0 (percentage points a rate may rise by before it counts)" % index]
