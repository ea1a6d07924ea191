"""plugins/plugin_utils/fleet_checkpoint.py, from observations to the gate: measure() turns the
hosts' agent_host_info results (now and at the start of the watch) and the nats_probe result into
the figures of criteria/default.yml, per agent instance (agent@host) and for the wave; probe_pings()
feeds the health checks from the probe; fleet_policy.decide_round merges the gate's findings and the
health checks into the outcome and next step. End to end with the real gate (fleet_gate.evaluate on
criteria/default.yml), and judge_round() as the checkpoint action calls it."""

from __future__ import annotations

import copy
import pathlib
import re

import pytest
from ansible_collections.fleetwave.rollout.plugins.filter.fleet import fleet_latency_baseline, fleet_request_baseline
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_gate
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_checkpoint import (
    evaluate_health, instance_key, judge_round, judge_sequential, measure, probe_pings, render_round_summary, triggers_only)
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_policy import decide_round

pytestmark = pytest.mark.unit

REPO = pathlib.Path(__file__).resolve().parents[2]
CRITERIA = fleet_gate.load_criteria(str(REPO / "criteria/default.yml"))
# The fixed-alpha rank test of the same file, for the cases about it (the default is sequential);
# performance_degradation judges the sequential comparison's figures, so it goes with it.
RANKED = dict(CRITERIA, comparison=dict(CRITERIA["comparison"], test="mann_whitney"),
              rollback_triggers=[t for t in CRITERIA["rollback_triggers"] if t["name"] != "performance_degradation"])

HOSTS = ["dgx-1", "dgx-2"]
TEST = ["network-expert"]
REFERENCE = ["graph-expert"]
WATCH = 600.0            # seconds between the baseline sample and the checkpoint sample
T0, T1 = 1000.0, 1600.0  # sampled_at_uptime of baseline and checkpoint
SAMPLES = [round(0.40 + 0.01 * i, 3) for i in range(30)]  # latency samples of one instance, ms

PROBE_FIGURES = ("error_rate_pct", "delivery_pct", "latency_p50_ms", "latency_p99_ms", "dual_publish_success_pct",
                 "unified_share_pct", "publish_time_ms", "requests")
PRIMARY = [c["name"] for c in CRITERIA["primary"]]
SECONDARY = [c["name"] for c in CRITERIA["secondary"]]


# --- fake observations ---------------------------------------------------------------------------

def unit(state="active", restarts=0, active_seconds=5000.0, pid=4242, cpu=10.0, memory=100_000_000,
         journal_errors=0):
    """One units.<agent> entry of agent_host_info."""
    return dict(unit="agent@x.service", load_state="loaded", active_state=state, sub_state="running",
                main_pid=pid, n_restarts=restarts, active_seconds=active_seconds if state == "active" else None,
                cpu_seconds=cpu, memory_bytes=memory, metrics_source="cgroup", journal_errors=journal_errors)


def host_info(units, load=0.2, uptime=T1):
    return dict(units=units, load=[load * 8, 0.1, 0.1], ncpu=8, load_per_cpu=load, sampled_at_epoch=1.7e9 + uptime,
                sampled_at_uptime=uptime)


def instance(host, **changes):
    """One agents[].instances[] entry of nats_probe (a healthy flipped agent)."""
    entry = dict(host=host, answered=True, sent=600, replies=600, replies_ok=600, errors=0, timeouts=0,
                 no_responders=0, delivery=1.0, error_rate=0.0,
                 latency_ms=dict(p50=0.55, p90=0.6, p99=0.68, max=0.69, mean=0.55, count=600),
                 samples_ms=list(SAMPLES), dual_publish_success=1.0, unified_share=0.5,
                 publish_time_ms=dict(p50=0.2, p99=0.8, max=1.0, count=200))
    entry.update(changes)
    return entry


def target(agent, host, via, sent=300, replies=300, no_responders=0, verb="ping"):
    return dict(agent=agent, host=host, via=via, verb=verb, subject="x.cmd.%s" % verb, expected=True,
                scheduled=sent, sent=sent, replies=replies, replies_ok=replies, errors=0, timeouts=0,
                no_responders=no_responders)


def make_probe(test=TEST, reference=REFERENCE, hosts=HOSTS):
    agents, targets = [], []
    for name in test:
        agents.append(dict(name=name, unified_enabled=True, duplicates=0, instances=[instance(h) for h in hosts]))
        targets += [target(name, h, via) for h in hosts for via in ("legacy", "unified")]
    for name in reference:
        agents.append(dict(name=name, unified_enabled=False, duplicates=0, instances=[
            instance(h, dual_publish_success=None, unified_share=0.0) for h in hosts]))
        targets += [target(name, h, "legacy") for h in hosts]
        targets += [target(name, h, "unified", replies=0, no_responders=300) for h in hosts]
    return dict(targets=targets, agents=agents, totals=dict(unmatched_replies=0))


@pytest.fixture
def obs():
    """A healthy round: 600 s after the baseline, every unit up all along, 1 % of a core each,
    test agents 4 % more memory than the reference, every NATS figure in limits."""
    baseline = {h: host_info({a: unit() for a in TEST + REFERENCE}, uptime=T0) for h in HOSTS}
    info = {h: host_info({**{a: unit(cpu=16.0, memory=104_000_000) for a in TEST},
                          **{a: unit(cpu=16.0) for a in REFERENCE}}, load=0.2 + 0.5 * i)
            for i, h in enumerate(HOSTS)}
    return dict(hosts=list(HOSTS), test=list(TEST), reference=list(REFERENCE), probe=make_probe(), info=info,
                baseline=baseline)


def run(obs):
    return measure(obs["hosts"], obs["test"], obs["reference"], obs["probe"], obs["info"], obs["baseline"])


def figures(obs, agent="network-expert", host="dgx-1"):
    return run(obs)["per_agent"][instance_key(agent, host)]


def now_unit(obs, host="dgx-1", agent="network-expert"):
    return obs["info"][host]["units"][agent]


def before_unit(obs, host="dgx-1", agent="network-expert"):
    return obs["baseline"][host]["units"][agent]


def probe_instance(obs, host="dgx-1", agent="network-expert"):
    entry = next(a for a in obs["probe"]["agents"] if a["name"] == agent)
    return next(i for i in entry["instances"] if i["host"] == host)


# --- per-instance keys -----------------------------------------------------------------------------

def test_instance_key_is_agent_at_host():
    assert instance_key("tdd-expert", "dgx-2") == "tdd-expert@dgx-2"


def test_per_agent_has_one_entry_per_test_instance_and_none_for_the_reference(obs):
    assert sorted(run(obs)["per_agent"]) == ["network-expert@dgx-1", "network-expert@dgx-2"]


def test_every_test_agent_on_every_host_is_keyed(obs):
    obs["test"] = ["network-expert", "tdd-expert"]
    for h in HOSTS:
        obs["baseline"][h]["units"]["tdd-expert"] = unit()
        obs["info"][h]["units"]["tdd-expert"] = unit(cpu=16.0)
    assert sorted(run(obs)["per_agent"]) == ["network-expert@dgx-1", "network-expert@dgx-2",
                                             "tdd-expert@dgx-1", "tdd-expert@dgx-2"]


def test_instance_figures_have_every_metric(obs):
    assert set(figures(obs)) == {"uptime_pct", "error_rate_pct", "delivery_pct", "latency_p50_ms", "latency_p99_ms",
                                 "dual_publish_success_pct", "unified_share_pct", "publish_time_ms", "agent_crashes",
                                 "journal_errors", "requests", "events_judged_per", "latency_samples"}
    assert figures(obs)["events_judged_per"] == "instance"


def test_publish_time_falls_back_to_the_observed_gap_between_copies_when_the_agent_reports_none(obs):
    agent = obs["probe"]["agents"][0]
    agent["copy_gap_ms"] = dict(p50=0.3, p99=2.5, max=4.0, count=300)
    assert figures(obs)["publish_time_ms"] == 0.8  # the agent's own figure first
    for entry in agent["instances"]:
        entry["publish_time_ms"] = dict(p50=None, p99=None, max=None, count=0)
    assert figures(obs)["publish_time_ms"] == 2.5
    del agent["copy_gap_ms"]
    assert figures(obs)["publish_time_ms"] is None  # no data either way: no data


def test_events_that_name_no_host_are_judged_per_agent_type_for_each_instance(obs):
    """An agent written to the contract alone sends no Agent-Host header: the probe cannot tell its
    instances' events apart (instance events None), so the agent type's figure stands for each."""
    agent = obs["probe"]["agents"][0]
    agent.update(dual_publish_success=0.97, unified_share=0.4)
    for entry in agent["instances"]:
        entry.update(events=None, dual_publish_success=None, unified_share=None)
    for host in HOSTS:
        found = figures(obs, host=host)
        assert (found["dual_publish_success_pct"], found["unified_share_pct"]) == (97.0, 40.0)
        assert found["events_judged_per"] == "agent type"
    judged = judge_round(round_args(obs))
    assert judged["result"]["outcome"] == "NO-GO"
    assert ("primary dual_publish_success failed on network-expert@dgx-1: dual_publish_success_pct 97 is not > 99 %"
            in judged["result"]["reasons"])
    assert ("events of network-expert name no host (no Agent-Host header): their dual publishing and unified share "
            "are the agent type's, judged for each instance") in judged["files"]["summary.md"]
    # Without data on the agent type either, it is no data, never a pass.
    agent.update(dual_publish_success=None)
    assert figures(obs)["dual_publish_success_pct"] is None


def test_instance_figures_come_from_that_instance_only(obs):
    probe_instance(obs, "dgx-2").update(error_rate=0.5, sent=17, latency_ms=dict(p50=42.0, p99=99.0))
    now_unit(obs, "dgx-2")["journal_errors"] = 3
    one, two = figures(obs, host="dgx-1"), figures(obs, host="dgx-2")
    assert (one["error_rate_pct"], one["requests"], one["latency_p50_ms"], one["journal_errors"]) == (0.0, 600, 0.55, 0)
    assert (two["error_rate_pct"], two["requests"], two["latency_p50_ms"], two["journal_errors"]) == (50.0, 17, 42.0, 3)


# --- percentages and copied figures ----------------------------------------------------------------

def test_ratios_become_percentages(obs):
    probe_instance(obs).update(error_rate=0.0012, delivery=0.999, dual_publish_success=0.995, unified_share=0.5)
    got = figures(obs)
    assert got["error_rate_pct"] == pytest.approx(0.12)
    assert got["delivery_pct"] == pytest.approx(99.9)
    assert got["dual_publish_success_pct"] == pytest.approx(99.5)
    assert got["unified_share_pct"] == pytest.approx(50.0)


def test_percentages_are_rounded_to_four_digits(obs):
    probe_instance(obs)["delivery"] = 0.123456789
    assert figures(obs)["delivery_pct"] == 12.3457


def test_whole_ratio_is_one_hundred_percent(obs):
    got = figures(obs)
    assert got["delivery_pct"] == 100.0 and got["error_rate_pct"] == 0.0 and got["dual_publish_success_pct"] == 100.0


def test_missing_ratio_stays_none(obs):
    probe_instance(obs).update(dual_publish_success=None, unified_share=None)
    got = figures(obs)
    assert got["dual_publish_success_pct"] is None and got["unified_share_pct"] is None


def test_latency_publish_time_requests_and_journal_errors_are_copied(obs):
    probe_instance(obs).update(latency_ms=dict(p50=1.5, p99=7.25), publish_time_ms=dict(p50=0.1, p99=3.5, max=9.0,
                                                                                        count=10), sent=321)
    now_unit(obs)["journal_errors"] = 4
    got = figures(obs)
    assert (got["latency_p50_ms"], got["latency_p99_ms"], got["publish_time_ms"], got["requests"],
            got["journal_errors"]) == (1.5, 7.25, 3.5, 321, 4)


# --- uptime ----------------------------------------------------------------------------------------

def test_uptime_is_full_when_active_longer_than_the_watch(obs):
    assert figures(obs)["uptime_pct"] == 100.0


def test_uptime_is_full_when_active_exactly_the_watch(obs):
    now_unit(obs)["active_seconds"] = WATCH
    assert figures(obs)["uptime_pct"] == 100.0


def test_uptime_after_a_restart_counts_only_the_current_activation(obs):
    now_unit(obs).update(active_seconds=150.0, n_restarts=1)
    assert figures(obs)["uptime_pct"] == 25.0
    assert figures(obs, host="dgx-2")["uptime_pct"] == 100.0


@pytest.mark.parametrize("state", ["failed", "inactive", "activating"])
def test_uptime_is_zero_when_not_active(obs, state):
    now_unit(obs).update(active_state=state, active_seconds=5000.0)  # active_seconds ignored unless active
    assert figures(obs)["uptime_pct"] == 0.0


def test_uptime_is_none_without_the_unit(obs):
    del obs["info"]["dgx-1"]["units"]["network-expert"]
    assert figures(obs)["uptime_pct"] is None


def test_uptime_is_none_for_a_host_without_info(obs):
    del obs["info"]["dgx-1"]
    assert figures(obs)["uptime_pct"] is None and figures(obs, host="dgx-2")["uptime_pct"] == 100.0


@pytest.mark.parametrize("side", ["info", "baseline"])
def test_uptime_is_none_without_a_sample_time(obs, side):
    obs[side]["dgx-1"]["sampled_at_uptime"] = None
    assert figures(obs)["uptime_pct"] is None


def test_uptime_is_none_when_the_host_rebooted_during_the_watch(obs):
    obs["info"]["dgx-1"]["sampled_at_uptime"] = T0 - 1  # uptime went backwards
    assert figures(obs)["uptime_pct"] is None


def test_uptime_is_none_when_active_but_active_time_unknown(obs):
    now_unit(obs)["active_seconds"] = None
    assert figures(obs)["uptime_pct"] is None


# --- crashes ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("before, now, state, crashes", [
    (0, 0, "active", 0),
    (1, 1, "active", 0),
    (0, 1, "active", 1),
    (1, 3, "active", 2),
    (0, 0, "failed", 1),     # died and stayed down
    (0, 2, "failed", 3),     # restarted twice, then gave up
    (3, 0, "active", 0),     # restarted by hand: systemd reset the count, not a crash
    (3, 0, "inactive", 1),   # ... and never negative, but still down now
])
def test_agent_crashes_from_the_restart_delta_plus_one_when_down(obs, before, now, state, crashes):
    before_unit(obs)["n_restarts"] = before
    now_unit(obs).update(n_restarts=now, active_state=state)
    assert figures(obs)["agent_crashes"] == crashes


@pytest.mark.parametrize("where", ["now", "before"])
def test_agent_crashes_is_none_without_a_restart_count(obs, where):
    (now_unit(obs) if where == "now" else before_unit(obs))["n_restarts"] = None
    assert figures(obs)["agent_crashes"] is None


@pytest.mark.parametrize("side", ["info", "baseline"])
def test_agent_crashes_is_none_without_the_unit(obs, side):
    del obs[side]["dgx-1"]["units"]["network-expert"]
    assert figures(obs)["agent_crashes"] is None


# --- CPU and memory --------------------------------------------------------------------------------

def test_cpu_and_memory_of_each_side(obs):
    wave = run(obs)["wave"]
    assert wave["cpu_pct_test"] == pytest.approx(1.0) and wave["cpu_pct_reference"] == pytest.approx(1.0)
    assert wave["memory_bytes_test"] == 104_000_000 and wave["memory_bytes_reference"] == 100_000_000


def test_cpu_and_memory_overhead_of_test_over_reference(obs):
    for h in HOSTS:
        obs["info"][h]["units"]["network-expert"].update(cpu_seconds=16.6, memory_bytes=110_000_000)  # 1.1 % of a core
    wave = run(obs)["wave"]
    assert wave["cpu_pct_test"] == pytest.approx(1.1)
    assert wave["cpu_overhead_pct"] == pytest.approx(10.0) and wave["memory_overhead_pct"] == pytest.approx(10.0)
    # The same overhead in % of one core, which the criterion falls back on for agents near idle.
    assert wave["cpu_increase_pct"] == pytest.approx(0.1)


def test_overhead_below_the_reference_is_negative(obs):
    for h in HOSTS:
        obs["info"][h]["units"]["network-expert"].update(cpu_seconds=13.0, memory_bytes=50_000_000)
    wave = run(obs)["wave"]
    assert wave["cpu_overhead_pct"] == pytest.approx(-50.0) and wave["memory_overhead_pct"] == pytest.approx(-50.0)


def test_overheads_are_means_over_every_instance(obs):
    obs["info"]["dgx-1"]["units"]["network-expert"].update(cpu_seconds=16.0, memory_bytes=100_000_000)  # 1 %
    obs["info"]["dgx-2"]["units"]["network-expert"].update(cpu_seconds=19.0, memory_bytes=140_000_000)  # 1.5 %
    wave = run(obs)["wave"]
    assert wave["cpu_pct_test"] == pytest.approx(1.25) and wave["cpu_overhead_pct"] == pytest.approx(25.0)
    assert wave["memory_bytes_test"] == 120_000_000 and wave["memory_overhead_pct"] == pytest.approx(20.0)


def test_cpu_is_none_across_a_pid_change(obs):
    now_unit(obs, "dgx-1").update(main_pid=5151, cpu_seconds=10.5)  # restarted: its counter started again
    now_unit(obs, "dgx-2")["cpu_seconds"] = 19.0
    wave = run(obs)["wave"]
    assert wave["cpu_pct_test"] == pytest.approx(1.5)  # dgx-2 only: the pid change leaves no figure


def test_cpu_is_none_when_every_test_instance_changed_pid(obs):
    for h in HOSTS:
        now_unit(obs, h)["main_pid"] = 9999
    wave = run(obs)["wave"]
    assert wave["cpu_pct_test"] is None and wave["cpu_overhead_pct"] is None and wave["cpu_increase_pct"] is None
    assert wave["memory_overhead_pct"] == pytest.approx(4.0)  # memory needs no second sample


def test_cpu_is_none_when_the_counter_went_backwards(obs):
    for h in HOSTS:
        now_unit(obs, h)["cpu_seconds"] = 5.0
    assert run(obs)["wave"]["cpu_pct_test"] is None


def test_cpu_is_none_without_an_elapsed_time(obs):
    for h in HOSTS:
        obs["baseline"][h]["sampled_at_uptime"] = None
    wave = run(obs)["wave"]
    assert wave["cpu_pct_test"] is None and wave["cpu_pct_reference"] is None and wave["cpu_overhead_pct"] is None


def test_no_reference_group_leaves_the_comparisons_without_data(obs):
    obs["reference"] = []
    result = run(obs)
    wave = result["wave"]
    assert wave["cpu_pct_test"] == pytest.approx(1.0) and wave["memory_bytes_test"] == 104_000_000
    for key in ("cpu_overhead_pct", "memory_overhead_pct", "latency_p50_degradation_pct", "latency_p50_increase_ms",
                "cpu_pct_reference", "memory_bytes_reference", "latency_p50_ms_reference"):
        assert wave[key] is None, key
    assert result["samples"]["control"] == dict(latency_ms=[])


def test_reference_without_any_figure_leaves_overheads_none(obs):
    for h in HOSTS:
        obs["info"][h]["units"]["graph-expert"].update(cpu_seconds=None, memory_bytes=None)
    wave = run(obs)["wave"]
    assert wave["cpu_overhead_pct"] is None and wave["memory_overhead_pct"] is None


# --- system load -----------------------------------------------------------------------------------

def test_system_load_is_the_worst_host(obs):
    obs["info"]["dgx-1"]["load_per_cpu"] = 1.75
    obs["info"]["dgx-2"]["load_per_cpu"] = 0.25
    assert run(obs)["wave"]["system_load"] == 1.75


def test_system_load_is_none_when_any_host_lacks_it(obs):
    obs["info"]["dgx-2"]["load_per_cpu"] = None
    assert run(obs)["wave"]["system_load"] is None


def test_system_load_is_none_when_a_host_has_no_info(obs):
    del obs["info"]["dgx-1"]
    assert run(obs)["wave"]["system_load"] is None


def test_system_load_of_a_host_out_of_scope_is_ignored(obs):
    obs["info"]["dgx-9"] = host_info({}, load=9.0)
    assert run(obs)["wave"]["system_load"] == pytest.approx(0.7)


# --- latency degradation and samples ---------------------------------------------------------------

def test_latency_degradation_compares_the_groups_hdr_p50s(obs):
    """One p50 estimator: the group figures are the median of the instances' HDR p50s, the very
    figures the latency_p50 criterion judges."""
    probe_instance(obs, "dgx-1")["latency_ms"] = dict(p50=3.0, p99=5.0)
    probe_instance(obs, "dgx-2")["latency_ms"] = dict(p50=10.0, p99=12.0)
    for h in HOSTS:
        probe_instance(obs, h, "graph-expert")["latency_ms"] = dict(p50=2.0, p99=3.0)
    wave = run(obs)["wave"]
    assert wave["latency_p50_ms_test"] == 6.5 and wave["latency_p50_ms_reference"] == 2.0
    assert wave["latency_p50_degradation_pct"] == pytest.approx(225.0)
    assert wave["latency_p50_increase_ms"] == pytest.approx(4.5)


def test_a_faster_test_group_has_a_negative_increase(obs):
    for h in HOSTS:
        probe_instance(obs, h)["latency_ms"] = dict(p50=1.0, p99=2.0)
        probe_instance(obs, h, "graph-expert")["latency_ms"] = dict(p50=1.25, p99=2.0)
    wave = run(obs)["wave"]
    assert wave["latency_p50_increase_ms"] == -0.25 and wave["latency_p50_degradation_pct"] == -20.0


def test_equal_latency_is_no_degradation(obs):
    wave = run(obs)["wave"]
    assert wave["latency_p50_degradation_pct"] == 0.0 and wave["latency_p50_increase_ms"] == 0.0


def test_latency_degradation_ignores_the_downsampled_raw_samples(obs):
    probe_instance(obs)["samples_ms"] = [500.0] * 60  # the samples feed the rank test, not the p50s
    assert run(obs)["wave"]["latency_p50_degradation_pct"] == 0.0


def test_a_group_p50_needs_every_instance(obs):
    probe_instance(obs, "dgx-2", "graph-expert")["latency_ms"] = {}
    wave = run(obs)["wave"]
    assert wave["latency_p50_ms_reference"] is None and wave["latency_p50_degradation_pct"] is None
    assert wave["latency_p50_increase_ms"] is None and wave["latency_p50_ms_test"] == pytest.approx(0.55)


def test_samples_are_test_and_control_latency_points(obs):
    probe_instance(obs, "dgx-1")["samples_ms"] = [1.0, 2.0]
    probe_instance(obs, "dgx-2")["samples_ms"] = [3.0]
    probe_instance(obs, "dgx-1", "graph-expert")["samples_ms"] = [4.0]
    probe_instance(obs, "dgx-2", "graph-expert")["samples_ms"] = [5.0, 6.0]
    assert run(obs)["samples"] == dict(test=dict(latency_ms=[1.0, 2.0, 3.0]), control=dict(latency_ms=[4.0, 5.0, 6.0]))


def test_samples_of_every_instance_are_kept(obs):
    samples = run(obs)["samples"]
    assert len(samples["test"]["latency_ms"]) == len(samples["control"]["latency_ms"]) == 2 * len(SAMPLES)


# --- without a probe -------------------------------------------------------------------------------

@pytest.mark.parametrize("probe", [None, {}, dict(targets=[], agents=[])])
def test_without_a_probe_every_probe_figure_is_none(obs, probe):
    obs["probe"] = probe
    result = run(obs)
    for key, got in result["per_agent"].items():
        assert all(got[f] is None for f in PROBE_FIGURES), (key, got)
        assert got["uptime_pct"] == 100.0 and got["agent_crashes"] == 0 and got["journal_errors"] == 0
    wave = result["wave"]
    assert wave["latency_p50_degradation_pct"] is None and wave["latency_p50_ms_test"] is None
    assert wave["latency_p50_ms_reference"] is None
    assert wave["cpu_overhead_pct"] is not None and wave["system_load"] is not None
    assert result["samples"] == dict(test=dict(latency_ms=[]), control=dict(latency_ms=[]))


def test_instance_missing_from_the_probe_has_no_probe_figures(obs):
    entry = next(a for a in obs["probe"]["agents"] if a["name"] == "network-expert")
    entry["instances"] = [i for i in entry["instances"] if i["host"] != "dgx-2"]
    assert all(figures(obs, host="dgx-2")[f] is None for f in PROBE_FIGURES)
    assert figures(obs, host="dgx-1")["delivery_pct"] == 100.0


def test_measuring_does_not_modify_the_inputs(obs):
    before = copy.deepcopy(obs)
    run(obs)
    assert obs == before


# --- probe_pings -----------------------------------------------------------------------------------

def ping_of(pings, agent, via):
    return next(p for p in pings if p["agent"] == agent and p["via"] == via)


def test_probe_pings_per_agent_and_subject(obs):
    pings = probe_pings(obs["probe"])
    assert pings == [
        dict(agent="network-expert", via="legacy", hosts=HOSTS, no_responders=False),
        dict(agent="network-expert", via="unified", hosts=HOSTS, no_responders=False),
        dict(agent="graph-expert", via="legacy", hosts=HOSTS, no_responders=False),
        dict(agent="graph-expert", via="unified", hosts=[], no_responders=True)]


def test_probe_pings_lists_only_hosts_that_replied(obs):
    for t in obs["probe"]["targets"]:
        if t["agent"] == "network-expert" and t["via"] == "unified" and t["host"] == "dgx-1":
            t["replies"] = 0
    assert ping_of(probe_pings(obs["probe"]), "network-expert", "unified")["hosts"] == ["dgx-2"]
    assert ping_of(probe_pings(obs["probe"]), "network-expert", "legacy")["hosts"] == HOSTS


def test_probe_pings_merge_verbs_and_sort_hosts(obs):
    obs["probe"]["targets"] = [target("network-expert", h, "legacy", verb=v, replies=r)
                               for h, v, r in (("dgx-2", "ping", 1), ("dgx-1", "status", 0), ("dgx-2", "status", 1),
                                               ("dgx-1", "ping", 3))]
    assert probe_pings(obs["probe"]) == [dict(agent="network-expert", via="legacy", hosts=["dgx-1", "dgx-2"],
                                              no_responders=False)]


def test_no_responders_only_when_every_target_met_no_responders(obs):
    for t in obs["probe"]["targets"]:
        if t["agent"] == "graph-expert" and t["via"] == "unified" and t["host"] == "dgx-2":
            t["no_responders"] = 299  # one request found a subscriber (that stayed silent)
    got = ping_of(probe_pings(obs["probe"]), "graph-expert", "unified")
    assert got == dict(agent="graph-expert", via="unified", hosts=[], no_responders=False)


def test_no_responders_needs_requests_sent(obs):
    for t in obs["probe"]["targets"]:
        if t["agent"] == "graph-expert" and t["via"] == "unified":
            t.update(sent=0, no_responders=0)
    assert ping_of(probe_pings(obs["probe"]), "graph-expert", "unified")["no_responders"] is False


def test_subject_without_targets_gives_no_ping(obs):
    obs["probe"]["targets"] = [t for t in obs["probe"]["targets"] if t["via"] == "legacy"]
    assert [(p["agent"], p["via"]) for p in probe_pings(obs["probe"])] == [("network-expert", "legacy"),
                                                                         ("graph-expert", "legacy")]


@pytest.mark.parametrize("probe", [None, {}])
def test_no_probe_gives_no_pings(probe):
    assert probe_pings(probe) == []


def test_probe_pings_feed_the_health_checks(obs):
    units = {h: obs["info"][h]["units"] for h in HOSTS}
    health = evaluate_health(HOSTS, TEST, REFERENCE, units, probe_pings(obs["probe"]))
    assert decide_round(findings("go"), health)["outcome"] == "GO" and health["failures"] == []
    obs["probe"]["targets"] = [t for t in obs["probe"]["targets"]
                               if not (t["agent"] == "network-expert" and t["via"] == "unified")]
    health = evaluate_health(HOSTS, TEST, REFERENCE, units, probe_pings(obs["probe"]))
    assert [(c["check"], c["host"]) for c in health["failures"]] == [("answers on unified", h) for h in HOSTS]


# --- decide_round with health (what combine() did) ------------------------------------------------

HEALTH_OK = dict(checks=[dict(check="unit active", agent="a", host="h", expected="active", measured="active",
                              ok=True)], failures=[])
BAD_CHECK = dict(check="unit active", agent="network-expert", host="dgx-2", expected="active", measured="failed",
                 ok=False)
HEALTH_BAD = dict(checks=[BAD_CHECK], failures=[BAD_CHECK])
BAD_LINE = "health: network-expert unit active on dgx-2: expected active, measured failed"


def findings(case, reasons=()):
    """fleet_gate.evaluate's findings with one finding of the given kind (go: none)."""
    gate = dict(fired=[], unknown=[], failed=[], degraded=[], short=[], n_primary=7, n_comparisons=1,
                reasons=list(reasons))
    row = dict(name="agent_crash", metric="agent_crashes", agent="network-expert@dgx-2")
    if case == "short":
        gate["short"] = [dict(metric="latency_ms", verdict="too few samples", required=True)]
    elif case != "go":
        gate[case] = [row]
    return gate


# (findings, on_trigger, on_inconclusive) -> (outcome, next step) without a health failure.
GATES = [("go", "rollback", "ask", "GO", "proceed"), ("failed", "rollback", "ask", "NO-GO", "stop"),
         ("fired", "rollback", "ask", "ROLLBACK", "rollback"), ("short", "rollback", "ask", "INCONCLUSIVE", "ask"),
         ("fired", "stop", "ask", "NO-GO", "stop")]


@pytest.mark.parametrize("case, on_trigger, on_inconclusive, outcome, next_step", GATES,
                         ids=["go", "no-go", "rollback", "inconclusive-ask", "trigger-stop"])
def test_decide_round_keeps_the_gate_when_health_is_fine(case, on_trigger, on_inconclusive, outcome, next_step):
    got = decide_round(findings(case, ["r1"]), HEALTH_OK, on_trigger, on_inconclusive)
    assert (got["outcome"], got["next_step"], got["reasons"]) == (outcome, next_step, ["r1"])


@pytest.mark.parametrize("case, on_inconclusive", [("go", "ask"), ("short", "ask"), ("short", "rollback")])
def test_health_failure_turns_go_and_inconclusive_into_no_go(case, on_inconclusive):
    got = decide_round(findings(case), HEALTH_BAD, "rollback", on_inconclusive)
    assert (got["outcome"], got["next_step"], got["reasons"]) == ("NO-GO", "stop", [BAD_LINE])


def test_health_failure_leaves_rollback_standing():
    got = decide_round(findings("fired", ["trigger agent_crash fired"]), HEALTH_BAD, "rollback")
    assert (got["outcome"], got["next_step"], got["reasons"]) == ("ROLLBACK", "rollback",
                                                                  ["trigger agent_crash fired", BAD_LINE])


@pytest.mark.parametrize("case, on_trigger", [("failed", "rollback"), ("unknown", "rollback"), ("degraded", "rollback"),
                                              ("fired", "stop")])
def test_health_failure_leaves_a_no_go_and_its_next_step(case, on_trigger):
    got = decide_round(findings(case, ["x"]), HEALTH_BAD, on_trigger)
    assert (got["outcome"], got["next_step"]) == ("NO-GO", "stop")
    assert got["reasons"][0] == "x" and len(got["reasons"]) == 2


def test_decide_round_does_not_modify_the_gate_reasons():
    gate, health = findings("go", ["x"]), copy.deepcopy(HEALTH_BAD)
    decide_round(gate, health)
    assert gate["reasons"] == ["x"] and health == HEALTH_BAD


# --- end to end with the real gate -----------------------------------------------------------------

def gate_of(obs, criteria=CRITERIA):
    """The gate on the round's figures, the sequential comparison's among them (as judge_round)."""
    measurements = run(obs)
    judge_sequential(criteria["comparison"], measurements, round_args(obs), None)
    return fleet_gate.evaluate(criteria, measurements)


def judge(obs, criteria=CRITERIA):
    """The gate's findings with the policy's verdict on them (no health checks)."""
    gate = gate_of(obs, criteria)
    return dict(gate, **decide_round(gate, None, criteria["on_trigger"], criteria["comparison"]["on_inconclusive"]))


def health_of(obs, restarts=None):
    units = {h: obs["info"][h]["units"] for h in HOSTS}
    if restarts is None:
        restarts = {h: {a: u["n_restarts"] for a, u in obs["baseline"][h]["units"].items()} for h in HOSTS}
    return evaluate_health(HOSTS, TEST, REFERENCE, units, probe_pings(obs["probe"]), restarts)


def rows(result, kind):
    return [r for r in result["criteria"] if r["kind"] == kind]


def test_healthy_round_is_go(obs):
    result = judge(obs)
    assert result["outcome"] == "GO" and result["next_step"] == "proceed" and result["reasons"] == []


def test_healthy_round_measures_all_seven_primary_criteria_for_every_instance(obs):
    primary = rows(judge(obs), "primary")
    assert len(PRIMARY) == 7
    assert sorted((r["name"], r["agent"]) for r in primary) == sorted(
        (name, instance_key(a, h)) for name in PRIMARY for a in TEST for h in HOSTS)
    assert all(r["measured"] is not None and r["passed"] for r in primary), [r for r in primary if not r["passed"]]


def test_healthy_round_has_the_four_secondary_criteria(obs):
    secondary = rows(judge(obs), "secondary")
    assert len(SECONDARY) == 4 and {r["name"] for r in secondary} == set(SECONDARY)
    assert all(r["measured"] is not None and r["passed"] for r in secondary), secondary


def test_healthy_round_rules_out_every_trigger(obs):
    triggers = rows(judge(obs), "rollback_trigger")
    assert triggers and all(r["fired"] is False for r in triggers)


def test_healthy_round_compares_latency_of_test_and_reference(obs):
    [latency] = [c for c in judge(obs, RANKED)["comparisons"] if c["metric"] == "latency_ms"]
    assert (latency["n_test"], latency["n_control"], latency["verdict"]) == (60, 60, "no difference")


def test_healthy_round_with_health_checks_stays_go(obs):
    got = decide_round(gate_of(obs), health_of(obs))
    assert (got["outcome"], got["next_step"], got["reasons"]) == ("GO", "proceed", [])


def test_low_dual_publish_success_on_one_instance_is_no_go_naming_it(obs):
    probe_instance(obs, "dgx-2")["dual_publish_success"] = 0.97
    result = judge(obs)
    assert result["outcome"] == "NO-GO" and result["next_step"] == "stop"
    [failed] = [r for r in rows(result, "primary") if not r["passed"]]
    assert (failed["name"], failed["agent"], failed["measured"]) == ("dual_publish_success", "network-expert@dgx-2",
                                                                     97.0)
    [reason] = result["reasons"]
    assert "dual_publish_success" in reason and "network-expert@dgx-2" in reason


def test_slow_median_on_one_instance_fails_latency_p50_naming_it(obs):
    probe_instance(obs, "dgx-1")["latency_ms"] = dict(p50=150.0, p99=180.0)
    result = judge(obs)
    # Its latencies (samples_ms) are as before: the sequential test finds no degradation, so the
    # trigger stays quiet, and the primary criterion on the percentile fails alone.
    assert (result["outcome"], result["next_step"]) == ("NO-GO", "stop")
    assert [r["name"] for r in result["criteria"] if r["fired"]] == []
    [failed] = [r for r in rows(result, "primary") if not r["passed"]]
    assert (failed["name"], failed["agent"], failed["measured"]) == ("latency_p50", "network-expert@dgx-1", 150.0)
    assert any("latency_p50" in r and "network-expert@dgx-1" in r for r in result["reasons"])


def test_agent_restart_fires_agent_crash_and_rolls_back(obs):
    now_unit(obs, "dgx-2").update(n_restarts=1, active_seconds=30.0, main_pid=5151)
    result = judge(obs)
    assert result["outcome"] == "ROLLBACK" and result["next_step"] == "rollback"
    fired = [r for r in result["criteria"] if r["fired"]]
    assert [(r["name"], r["agent"], r["measured"]) for r in fired] == [("agent_crash", "network-expert@dgx-2", 1)]


def test_agent_restart_rolls_back_even_with_a_failed_health_check(obs):
    now_unit(obs, "dgx-2").update(n_restarts=1, active_seconds=30.0)
    health = health_of(obs)
    assert health["failures"]
    got = decide_round(gate_of(obs), health)
    assert (got["outcome"], got["next_step"]) == ("ROLLBACK", "rollback")


def test_round_without_a_probe_is_no_go_never_go(obs):
    obs["probe"] = None
    result = judge(obs)
    assert result["outcome"] == "NO-GO"
    failed = {r["name"] for r in rows(result, "primary") if not r["passed"]}
    assert failed == set(PRIMARY) - {"agent_uptime"}


# --- render_round_summary --------------------------------------------------------------------------

def test_round_summary_lists_every_criterion_with_its_instance(obs):
    gate = gate_of(obs)
    units = {h: obs["info"][h]["units"] for h in HOSTS}
    health = evaluate_health(HOSTS, TEST, REFERENCE, units, probe_pings(obs["probe"]))
    text = render_round_summary("wave2 T+1h: GO", decide_round(gate, health), gate, health, run(obs), "control")
    lines = text.splitlines()
    assert lines[0] == "# wave2 T+1h: GO" and lines[2].startswith("- GO: ")
    assert "- health: %d checks, 0 failed" % len(health["checks"]) in lines
    assert "| primary | latency_p50 | network-expert@dgx-2 | 0.55 ms (n=600) | < 100 | pass |" in lines
    assert "| secondary | system_load | wave | 0.7 load | < 1.0 | pass |" in lines
    assert "| rollback_trigger | agent_crash | network-expert@dgx-1 | 0 count | > 0 | quiet |" in lines
    # Its median moved less than 20 %, so the test's verdict is not asked.
    assert ("| rollback_trigger | performance_degradation | network-expert@dgx-1 | -0.909091 % | > 20 and "
            "latency_degraded == 1 count | quiet |") in lines
    assert "## Sequential test: each instance against itself before its flip, and the control" in lines


def test_round_summary_marks_failures_fired_triggers_and_missing_data(obs):
    now_unit(obs, "dgx-2").update(n_restarts=1, active_seconds=30.0)
    obs["info"]["dgx-1"]["load_per_cpu"] = None
    gate = gate_of(obs)
    health = health_of(obs, restarts={h: {a: 0 for a in TEST + REFERENCE} for h in HOSTS})
    verdict = decide_round(gate, health)
    text = render_round_summary("wave2 T+1h: ROLLBACK", verdict, gate, health, run(obs), "earlier waves")
    assert "| rollback_trigger | agent_crash | network-expert@dgx-2 | 1 count | > 0 | **FIRED** |" in text
    assert "| primary | agent_uptime | network-expert@dgx-2 | 5 % | > 99.9 | **FAIL** |" in text
    assert "| rollback_trigger | system_instability | wave | no data load | > 4.0 | no data |" in text
    assert "| secondary | system_load | wave | no data load | < 1.0 | fail (info) |" in text
    assert "  - network-expert no restarts on dgx-2: expected 0, measured 1" in text
    assert "## Sequential test: each instance against itself before its flip, and the earlier waves" in text
    assert "- ROLLBACK: 1 rollback trigger(s) fired: agent_crash" in text.splitlines()


# --- judge_round: one round as the checkpoint action judges it ------------------------------------

STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def server_of(obs, unified=None, extra=()):
    """The server's view that matches obs: each instance one connection, from a socket of its unit,
    subscribed as its flag says (unified: {(agent, host): bool} to change that); extra connections."""
    agents, connections, port = [], list(extra), 40000
    for name in obs["test"] + obs["reference"]:
        on = name in obs["test"]
        agents.append(dict(name=name, legacy="agent." + name, unified="agents.c." + name, unified_enabled=on))
        for host in obs["hosts"]:
            port += 1
            obs["info"][host]["units"][name]["sockets"] = [dict(local_ip="127.0.0.1", local_port=port)]
            subjects = ["agent.%s.cmd.>" % name] + (["agents.c.%s.cmd.>" % name]
                                                   if (unified or {}).get((name, host), on) else [])
            connections.append(dict(cid=port - 40000, ip="127.0.0.1", port=port,
                                    subscriptions=[dict(subject=x, queue=name) for x in subjects]))
    return dict(agents=agents, server=dict(server=dict(server_id="S"), connections=connections))


def round_args(obs, kind="checkpoint", label="T+1h", criteria=CRITERIA, **changes):
    """wave_checkpoint's arguments for the observations."""
    args = dict(criteria=copy.deepcopy(criteria), criteria_file="criteria/default.yml", kind=kind, hosts=obs["hosts"],
                info=obs["info"], baseline=obs["baseline"], probe=obs["probe"], probe_error=None, test=obs["test"],
                reference=obs["reference"], control=obs["reference"], wave="wave2", phase="phase2", label=label,
                run_id="20250114T093000Z-abc123", reference_kind="control",
                latency_baseline=fleet_latency_baseline(obs["probe"]),
                request_baseline=fleet_request_baseline(obs["probe"]))
    args.update(changes)
    return args


def test_judge_round_of_a_healthy_checkpoint(obs):
    judged = judge_round(round_args(obs))
    result, decision = judged["result"], judged["decision"]
    assert (result["outcome"], result["next_step"], result["reasons"]) == ("GO", "proceed", [])
    assert (result["step"], result["folder"], judged["monitoring"]) == ("checkpoint", "checkpoints/wave2/T+1h", False)
    assert result["fired"] == [] and sorted(result["measured"]) == ["network-expert@dgx-1", "network-expert@dgx-2"]
    assert sorted(judged["files"]) == ["comparison.json", "decision.json", "measurements.json", "observations.json",
                                       "summary.md"]
    assert (decision["outcome"], decision["next_step"], decision["step"], decision["run_id"]) == (
        "GO", "proceed", "checkpoint", "20250114T093000Z-abc123")
    assert STAMP.match(decision["detected_at"]) and STAMP.match(decision["decided_at"])
    assert result["detected_epoch"] <= result["decided_epoch"]
    assert decision["health"] and all(c["ok"] for c in decision["health"])
    assert judged["files"]["summary.md"].startswith("# wave2 checkpoint T+1h: GO\n")
    assert judged["files"]["measurements.json"]["samples"] == dict(test=dict(latency_ms=60),
                                                                   control=dict(latency_ms=60))


def test_judge_round_rolls_back_on_a_fired_trigger_naming_it(obs):
    now_unit(obs, "dgx-2").update(n_restarts=1, active_seconds=30.0, main_pid=5151)
    result = judge_round(round_args(obs))["result"]
    assert (result["outcome"], result["next_step"], result["fired"]) == ("ROLLBACK", "rollback", ["agent_crash"])


def test_judge_round_stops_on_a_fired_trigger_when_the_criteria_say_stop(obs):
    now_unit(obs, "dgx-2").update(n_restarts=1, active_seconds=30.0, main_pid=5151)
    result = judge_round(round_args(obs, criteria=dict(CRITERIA, on_trigger="stop")))["result"]
    assert (result["outcome"], result["next_step"], result["fired"]) == ("NO-GO", "stop", ["agent_crash"])


def test_judge_round_asks_when_a_required_comparison_lacks_samples(obs):
    for h in HOSTS:
        probe_instance(obs, h)["samples_ms"] = SAMPLES[:5]
    result = judge_round(round_args(obs, criteria=RANKED))["result"]
    assert (result["outcome"], result["next_step"]) == ("INCONCLUSIVE", "ask")


def test_a_monitoring_round_judges_the_triggers_only(obs):
    probe_instance(obs, "dgx-2")["dual_publish_success"] = 0.97  # a failed primary: NO-GO at a checkpoint
    assert judge_round(round_args(obs))["result"]["outcome"] == "NO-GO"
    judged = judge_round(round_args(obs, kind="monitor", label="phase2-monitor-001"))
    result = judged["result"]
    assert (result["outcome"], result["step"], judged["monitoring"]) == ("GO", "monitoring round", True)
    assert result["folder"] == "checkpoints/wave2/monitor/phase2-monitor-001"
    assert {r["kind"] for r in judged["decision"]["criteria"]} == {"rollback_trigger"}
    assert judged["files"]["summary.md"].startswith("# wave2 monitoring round phase2-monitor-001: GO\n")


def test_triggers_only_keeps_the_triggers_and_leaves_the_criteria_untouched():
    before = copy.deepcopy(RANKED)
    monitor = triggers_only(RANKED)
    assert monitor["primary"] == [] and monitor["secondary"] == [] and monitor["comparison"]["metrics"] == []
    assert monitor["rollback_triggers"] == RANKED["rollback_triggers"] and monitor["on_trigger"] == "rollback"
    assert monitor["comparison"]["min_samples"] == RANKED["comparison"]["min_samples"]
    assert RANKED == before
    # A sequential comparison may be asked every round, so a monitoring round keeps it.
    assert triggers_only(CRITERIA)["comparison"] == CRITERIA["comparison"]


# --- the sequential comparison (criteria/default.yml's) ---------------------------------------------

def sequential_rows(judged, metric="latency_ms"):
    return {c["instance"]: c for c in judged["decision"]["comparisons"]
            if c.get("test") == "sequential" and c["metric"] == metric}


def test_a_healthy_round_is_no_difference_so_far_for_every_instance(obs):
    judged = judge_round(round_args(obs))
    rows = sequential_rows(judged)
    assert sorted(rows) == ["network-expert@dgx-1", "network-expert@dgx-2"]
    assert all(r["verdict"] == "no difference so far" and r["baseline_median_ms"] == 0.55 for r in rows.values())
    assert all(r["references"]["baseline"]["n"] == len(SAMPLES) for r in rows.values())
    state = judged["decision"]["sequential_state"]["latency_ms"]
    assert state["network-expert@dgx-1"]["baseline"] == dict(n=len(SAMPLES), up=0, down=0)
    assert "## Sequential test: each instance against itself before its flip, and the control" in \
        judged["files"]["summary.md"]


def test_a_healthy_round_counts_every_instances_failed_requests_against_both_references(obs):
    judged = judge_round(round_args(obs))
    rows = sequential_rows(judged, "error_rate_pct")
    assert sorted(rows) == ["network-expert@dgx-1", "network-expert@dgx-2"]
    for row in rows.values():
        assert (row["verdict"], row["failed"], row["sent"], row["baseline_rate_pct"], row["control_rate_pct"]) == (
            "no difference so far", 0, 600, 0.0, 0.0), row
        assert {ref: (c["n"], c["failed"]) for ref, c in row["references"].items()} == dict(
            baseline=(600, 0), control=(600, 0))
    # alpha shared by 2 instances and 2 compared metrics
    assert {r["alpha"] for r in rows.values()} == {0.05 / 4}
    summary = judged["files"]["summary.md"]
    assert "## Sequential test of rates: failed requests against the instance before its flip, and the control" in summary
    assert re.search(r"\| error_rate_pct \| network-expert@dgx-1 \| 0 of 600 \(0 %\) \| 0 % \| 0 % \| "
                     r"0 of 600 \([0-9.e-]+\) / 0 of 600 \([0-9.e-]+\) \| no difference so far \|", summary), summary


def test_a_rate_that_creeps_up_between_checkpoints_is_found_by_the_monitoring_rounds(obs):
    # 0.5 % of dgx-2's requests fail after its flip: under the 1 % trigger, which is all a monitoring
    # round judges besides the sequential test; that counts the failures round after round.
    before = fleet_request_baseline(obs["probe"])
    probe_instance(obs, "dgx-2").update(errors=3, replies_ok=597)
    state, verdicts = None, []
    for number in range(1, 6):
        judged = judge_round(round_args(obs, kind="monitor", label="phase2-monitor-%03d" % number,
                                        request_baseline=before), state)
        state = judged["decision"]["sequential_state"]
        verdicts.append(sequential_rows(judged, "error_rate_pct")["network-expert@dgx-2"]["verdict"])
        if verdicts[-1] == "degraded":
            break
    assert verdicts[0] == "no difference so far" and verdicts[-1] == "degraded" and len(verdicts) <= 4, verdicts
    result = judged["result"]
    assert (result["outcome"], result["next_step"], result["fired"]) == ("NO-GO", "stop", [])
    [reason] = [r for r in result["reasons"] if r.startswith("comparison error_rate_pct degraded")]
    assert reason.startswith("comparison error_rate_pct degraded: network-expert@dgx-2: 3 of 600 requests failed "
                             "this round (0.5 %%), 0 %% before its flip, reference 0 %%; baseline: %d of %d failed"
                             % (3 * len(verdicts), 600 * len(verdicts))), reason
    assert sequential_rows(judged, "error_rate_pct")["network-expert@dgx-1"]["verdict"] == "no difference so far"


def test_an_instance_slowed_by_150_ms_is_degraded_with_its_effect(obs):
    probe_instance(obs, "dgx-2")["samples_ms"] = [v + 150 for v in SAMPLES]
    judged = judge_round(round_args(obs))
    slow = sequential_rows(judged)["network-expert@dgx-2"]
    assert slow["verdict"] == "degraded" and slow["shift_ms"] == pytest.approx(150 - 0.005, abs=1e-6), slow
    assert sequential_rows(judged)["network-expert@dgx-1"]["verdict"] == "no difference so far"
    # 27,000 % above its own before its flip, and the test finds it: the trigger rolls the wave back.
    assert (judged["result"]["outcome"], judged["result"]["next_step"]) == ("ROLLBACK", "rollback")
    assert judged["result"]["reasons"][0] == (
        "trigger performance_degradation fired on network-expert@dgx-2: latency_degradation_pct 27271.81818 > 20 % "
        "and latency_degraded 1 == 1 count")
    [reason] = [r for r in judged["result"]["reasons"] if r.startswith("comparison latency_ms degraded")]
    assert "network-expert@dgx-2: median 150.5 ms, 0.55 ms before its flip (+150 ms, +2.73e+04 %)" in reason
    assert "| latency_ms | network-expert@dgx-2 | 150.545 (30) | 0.55 | +150 ms (+2.73e+04 %) |" in \
        judged["files"]["summary.md"]


def test_the_counts_go_on_from_the_last_round_and_a_monitoring_round_judges_them(obs):
    first = judge_round(round_args(obs))["decision"]["sequential_state"]
    judged = judge_round(round_args(obs, kind="monitor", label="phase2-monitor-001"), first)
    state = judged["decision"]["sequential_state"]["latency_ms"]
    assert state["network-expert@dgx-2"]["control"]["n"] == 2 * len(SAMPLES)
    assert {r["verdict"] for r in sequential_rows(judged).values()} == {"no difference so far"}


def test_counted_by_round_each_round_is_one_observation_of_its_median(obs):
    by_round = dict(CRITERIA, comparison=dict(CRITERIA["comparison"], count="round"))
    probe_instance(obs, "dgx-2")["samples_ms"] = [v + 150 for v in SAMPLES]
    state = None
    for number in range(1, 4):
        judged = judge_round(round_args(obs, criteria=by_round), state)
        state = judged["decision"]["sequential_state"]
        assert state["latency_ms"]["network-expert@dgx-2"]["baseline"] == dict(n=number, up=number, down=0)
    # Three slow rounds are not yet evidence enough for alpha 0.05 shared by two instances.
    assert sequential_rows(judged)["network-expert@dgx-2"]["verdict"] == "no difference so far"


def test_alpha_is_shared_among_every_instance_the_wave_tests(obs):
    judged = judge_round(round_args(obs, tested=8))
    # 8 instances, each compared on latency and on its error rate
    for metric in ("latency_ms", "error_rate_pct"):
        assert {r["alpha"] for r in sequential_rows(judged, metric).values()} == {CRITERIA["comparison"]["alpha"] / 16}


def test_an_instance_without_a_pre_flip_baseline_stops_the_wave_naming_it(obs):
    # Neither its degradation nor the test's verdict can be measured: the trigger cannot be ruled out.
    result = judge_round(round_args(obs, latency_baseline={"network-expert@dgx-1": 0.55}))["result"]
    assert (result["outcome"], result["next_step"]) == ("NO-GO", "stop")
    assert result["reasons"][0] == ("trigger performance_degradation cannot be ruled out on network-expert@dgx-2: "
                                    "latency_degradation_pct no data")


@pytest.mark.parametrize("probe, probe_error, reason", [
    (dict(failed=True, msg="nats: connection refused", invocation={}), None, "nats: connection refused"),
    (None, "timeout after 30 s", "timeout after 30 s"),
    (None, None, "no probe result"),
    (dict(failed=True), None, "the probe returned no measurements"),
])
def test_a_failed_probe_is_no_go_with_its_error_first(obs, probe, probe_error, reason):
    obs["probe"] = probe
    judged = judge_round(round_args(obs, probe_error=probe_error))
    result = judged["result"]
    assert (result["outcome"], result["next_step"]) == ("NO-GO", "stop")
    assert result["reasons"][0] == "probe failed, so every NATS figure is missing: %s" % reason
    assert judged["files"]["observations.json"]["probe"] is None


def test_the_probe_is_kept_without_the_task_bookkeeping(obs):
    obs["probe"] = dict(obs["probe"], invocation=dict(module_args={}), changed=False, failed=False)
    kept = judge_round(round_args(obs))["files"]["observations.json"]["probe"]
    assert set(kept) == {"targets", "agents", "totals"}


def test_judge_round_proves_each_instance_from_the_server_view(obs):
    judged = judge_round(round_args(obs, **server_of(obs)))
    assert judged["result"]["outcome"] == "GO", judged["result"]["reasons"]
    checks = [c for c in judged["decision"]["health"] if c["check"] == "server: subscriptions"]
    assert len(checks) == 4 and all(c["ok"] for c in checks)
    assert checks[0]["measured"] == "subscribed on legacy and unified (cid 1)"
    view = judged["files"]["observations.json"]["server_view"]
    assert view["instances"]["graph-expert@dgx-2"]["legacy_subscribed"] is True


def test_judge_round_fails_an_instance_the_server_shows_without_its_unified_subscription(obs):
    args = round_args(obs, **server_of(obs, unified={("network-expert", "dgx-2"): False}))
    result = judge_round(args)["result"]
    assert result["outcome"] == "NO-GO"
    assert ("health: network-expert server: subscriptions on dgx-2: expected subscribed on legacy and unified, "
            "measured connected (cid 2) but not subscribed to its unified subject agents.c.network-expert.cmd.ping "
            "(its subscriptions: agent.network-expert.cmd.>)") in result["reasons"]


def test_judge_round_names_an_impostor_and_stops(obs):
    impostor = dict(cid=99, name="innocent", ip="127.0.0.1", port=51234, lang="go", version="1.37.0",
                    subscriptions=[dict(subject="agents.c.network-expert.cmd.ping", queue=None)])
    result = judge_round(round_args(obs, **server_of(obs, extra=[impostor])))["result"]
    assert result["outcome"] == "NO-GO"
    assert ('health: network-expert no impostor on its command subjects: expected none, measured cid 99 "innocent" '
            'from 127.0.0.1:51234 (go 1.37.0)') in result["reasons"]


def test_judge_round_without_the_server_view_is_no_data(obs):
    args = round_args(obs, **server_of(obs))
    args["server"] = dict(failed=True, msg="NATS monitoring endpoint: http://127.0.0.1:1/connz could not be read")
    result = judge_round(args)["result"]
    assert result["outcome"] == "NO-GO"
    assert ("health: network-expert server: subscriptions on dgx-1: expected subscribed on legacy and unified, "
            "measured no server view: NATS monitoring endpoint: http://127.0.0.1:1/connz could not be read"
            in result["reasons"])


def test_judge_round_refuses_bad_criteria(obs):
    with pytest.raises(fleet_gate.CriteriaError) as exc:
        judge_round(round_args(obs, criteria=dict(CRITERIA, on_trigger="pause")))
    assert any("on_trigger: 'pause' is not one of rollback, stop" in p for p in exc.value.problems)
