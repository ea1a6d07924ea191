#!/usr/bin/env python3
"""Simulated waves: how often the test-vs-reference judgement cries wolf over a whole production wave,
and how surely and how soon it finds a 20 % slower median (issue 12) - the procedure used until
2026-12 (the rollback trigger performance_degradation on the group medians every round, the
Mann-Whitney comparison at each checkpoint) beside the anytime-valid one of plugins/plugin_utils/fleet_sequential.py.

A wave is wave 2 as the production inventory schedules it: a round every wave_monitor_interval_seconds
from each phase's start to its last checkpoint, the checkpoints at their times. The test group is one
agent on three hosts, the control group two agents on three hosts; a round's sample holds what the
probe takes (wave_probe_rate per subject, two subjects, for wave_probe_window_seconds at a checkpoint,
wave_monitor_probe_window_seconds otherwise). The pre-flip baseline is one checkpoint-sized probe of the
test agent before its flip. Latencies are drawn independently from one distribution - a lognormal, or
the samples recorded in sandbox checkpoints (observations.json, --recorded) - for an A/A wave, and
from it with every latency 20 % longer for a regressed one, from the first round on.

To run thousands of 300-round waves in pure Python the new procedure draws a round's exceedance count
(binomial, normal approximation above 25 of variance) and a sample's median (the beta-distributed
order statistic), not every latency; the Mann-Whitney test at checkpoints gets real samples of up to
1,000 a side. Then rates: waves of the same rounds whose requests fail with a given share, everyone's
and the flipped instances' (RATE_CASES), judged by fleet_sequential.compare_rates per instance
(--rates-only prints only these). Nothing is asserted; figures are printed. A few minutes.

    source scripts/lib.sh && use_venv && python -m bench.sequential [--waves 1000] [--recorded FILE ...]
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import random
import statistics
import time
from pathlib import Path

import yaml
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_sequential as seq
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_gate import mann_whitney_u

ROOT = Path(__file__).resolve().parents[1]
PRODUCTION = ROOT / "inventory/production/group_vars/all/00-contract.yml"
REGRESSION = 1.2
HOSTS = 3
CONTROL_AGENTS = 2
MWU_MAX = 1000
# The procedure in use (criteria/default.yml): trigger 20 % and 1 ms; comparison alpha 0.05, effect 0.2, 1 ms.
TRIGGER_PCT, TRIGGER_MS = 20.0, 1.0
MWU_ALPHA, MWU_EFFECT, MWU_SHIFT = 0.05, 0.2, 1.0
# The new one: alpha over the whole wave, the tolerated slow-down, no absolute floor.
ALPHA, TOLERANCE = 0.01, 0.10


class Lognormal:
    def __init__(self, median, sigma):
        self.median, self.sigma = median, sigma
        self.name = "lognormal, median %g ms, sigma %g" % (median, sigma)

    def quantile(self, u):
        return self.median * math.exp(self.sigma * statistics.NormalDist().inv_cdf(min(max(u, 1e-12), 1 - 1e-12)))

    def above(self, x):
        """P(X > x)."""
        if x <= 0:
            return 1.0
        return 1 - statistics.NormalDist().cdf(math.log(x / self.median) / self.sigma)


class Recorded:
    def __init__(self, paths):
        values = []
        for path in paths:
            probe = json.loads(Path(path).read_text()).get("probe") or {}
            for target in probe.get("targets") or []:
                values += [v for v in target.get("samples_ms") or [] if isinstance(v, (int, float)) and v > 0]
        if len(values) < 100:
            raise SystemExit("--recorded: %d latencies in %s; need at least 100" % (len(values), ", ".join(paths)))
        self.values = sorted(values)
        self.name = "recorded in %d checkpoint(s): %d latencies, median %.3f ms" % (
            len(paths), len(values), statistics.median(values))

    def quantile(self, u):
        position = min(max(u, 0.0), 1.0) * (len(self.values) - 1)
        low = int(position)
        high = min(low + 1, len(self.values) - 1)
        return self.values[low] + (self.values[high] - self.values[low]) * (position - low)

    def above(self, x):
        return 1 - bisect.bisect_right(self.values, x) / len(self.values)


def schedule():
    """[(is_checkpoint, probe window seconds)] of wave 2's rounds, in order, from the production inventory."""
    data = yaml.safe_load(PRODUCTION.read_text())
    interval = float(data["wave_monitor_interval_seconds"])
    rounds = []
    for checkpoints in data["wave_schedule"]["wave2"].values():
        times = sorted(float(c["at"]) for c in checkpoints)
        t = interval
        while t < times[-1]:
            if not any(abs(t - at) < 1e-9 for at in times):
                rounds.append((t, False))
            t += interval
        rounds += [(at, True) for at in times]
        rounds.sort()
    window, monitor_window, rate = (float(data[k]) for k in ("wave_probe_window_seconds",
                                                             "wave_monitor_probe_window_seconds", "wave_probe_rate"))
    return [(checkpoint, window if checkpoint else monitor_window) for _, checkpoint in rounds], rate, window


def binomial(rng, n, p):
    variance = n * p * (1 - p)
    if variance > 25:
        return min(n, max(0, int(round(rng.gauss(n * p, math.sqrt(variance))))))
    return sum(rng.random() < p for _ in range(n))


def sample_median(rng, dist, n, scale=1.0):
    k = (n + 1) // 2
    return scale * dist.quantile(rng.betavariate(k, n + 1 - k))


def draw(rng, dist, n, scale=1.0):
    return [scale * dist.quantile(rng.random()) for _ in range(n)]


PROCEDURES = (("in use", "old"), ("new, by latency", "latency"), ("new, by round", "round"))


def wave(rng, dist, rounds, rate, baseline_window, slower, procedure, wobble):
    """The round (1-based) of the first alarm, or None. wobble: the sd of the factor all of a group's
    latencies share in a round (a busy host), drawn for the test group, the control group and the
    baseline probe each on its own."""
    scale = REGRESSION if slower else 1.0

    def factor():
        return math.exp(rng.gauss(0, wobble)) if wobble else 1.0

    base_n = int(rate * baseline_window * 2 * HOSTS)
    baseline_median = sample_median(rng, dist, base_n, factor())
    state = seq.new_state()
    for index, (checkpoint, window) in enumerate(rounds, 1):
        n_test = int(rate * window * 2 * HOSTS)
        n_control = n_test * CONTROL_AGENTS
        test_scale, control_scale = scale * factor(), factor()
        if procedure == "old":
            test_median = sample_median(rng, dist, n_test, test_scale)
            control_median = sample_median(rng, dist, n_control, control_scale)
            if 100 * (test_median / control_median - 1) > TRIGGER_PCT and test_median - control_median > TRIGGER_MS:
                return index
            if checkpoint:
                a = draw(rng, dist, min(n_test, MWU_MAX), test_scale)
                b = draw(rng, dist, min(n_control, MWU_MAX), control_scale)
                mw = mann_whitney_u(a, b)
                shift = statistics.median(a) - statistics.median(b)
                if mw.p is not None and mw.p < MWU_ALPHA and mw.effect >= MWU_EFFECT and shift >= MWU_SHIFT:
                    return index
            continue
        control_median = sample_median(rng, dist, n_control, control_scale)
        test_median = sample_median(rng, dist, n_test, test_scale) if procedure == "round" else None
        for ref, median in (("baseline", baseline_median), ("control", control_median)):
            high = median * (1 + TOLERANCE)
            counts = state[ref]  # only "degraded" is an alarm: the down counts are not needed
            if procedure == "round":
                counts["n"] += 1
                counts["up"] += test_median > high
            else:
                counts["n"] += n_test
                counts["up"] += binomial(rng, n_test, dist.above(high / test_scale))
        if seq.verdict(state, ALPHA) == "degraded":
            return index
    return None


# Rates: the share of failed requests, for everyone (before the flip and in the control group) and
# for the flipped instances; the criteria file's tolerance and min_shift (0.1 percentage points).
RATE_SHIFT = 0.001
RATE_CASES = (  # (everyone's share, the flipped instances', what it is)
    (0.0, 0.001, "A/A at the limit: none fail, flipped fail 0.1 % (exactly the tolerated)"),
    (0.0, 0.005, "none fail, flipped fail 0.5 % (over the primary limit, under the 1 % trigger)"),
    (0.005, 0.005, "A/A: everyone fails 0.5 %"),
    (0.005, 0.01, "everyone fails 0.5 %, flipped 1 %"),
)


def rate_wave(rng, rounds, rate, baseline_window, base, flipped):
    """The round (1-based) at which any flipped instance (one agent on HOSTS hosts) is degraded by
    fleet_sequential.compare_rates, or None; alpha shared by the instances."""
    sent_base = int(rate * baseline_window * 2)
    baselines = {h: (binomial(rng, sent_base, base), sent_base) for h in range(HOSTS)}
    state = None
    for index, (_, window) in enumerate(rounds, 1):
        sent = int(rate * window * 2)
        n_control = sent * HOSTS * CONTROL_AGENTS
        control = (binomial(rng, n_control, base), n_control)
        counts = {h: (binomial(rng, sent, flipped), sent) for h in range(HOSTS)}
        state, rows = seq.compare_rates(state, counts, baselines, control, TOLERANCE, RATE_SHIFT, ALPHA, HOSTS)
        if any(r["verdict"] == "degraded" for r in rows):
            return index
    return None


def run_rates(rounds, rate, window, waves, seed):
    print("\nrates (failed requests), anytime-valid, alpha %g over the wave, tolerance %g %% and %g percentage "
          "points, against the baseline and the control" % (ALPHA, TOLERANCE * 100, RATE_SHIFT * 100))
    print("   %-80s %16s %20s" % ("case", "degraded waves", "median rounds to it"))
    for base, flipped, name in RATE_CASES:
        began = time.monotonic()
        rng = random.Random("%s-rates-%s-%s" % (seed, base, flipped))
        found = [rate_wave(rng, rounds, rate, window, base, flipped) for _ in range(waves)]
        hits = [f for f in found if f is not None]
        print("   %-80s %15.1f%% %20s   (%.0f s)" % (name, 100 * len(hits) / waves,
                                                  "%g" % statistics.median(hits) if hits else "-",
                                                  time.monotonic() - began))


def run(dist, rounds, rate, baseline_window, waves, seed, wobble):
    rows = {}
    for _, procedure in PROCEDURES:
        for slower in (False, True):
            rng = random.Random("%s-%s-%s-%s" % (seed, procedure, slower, wobble))
            found = [wave(rng, dist, rounds, rate, baseline_window, slower, procedure, wobble) for _ in range(waves)]
            hits = [f for f in found if f is not None]
            rows[procedure, slower] = (len(hits) / waves, statistics.median(hits) if hits else None)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waves", type=int, default=1000, help="waves of each kind (A/A, regressed), each procedure")
    parser.add_argument("--recorded", nargs="*", default=[], help="observations.json files of sandbox checkpoints")
    parser.add_argument("--seed", default="fleetwave")
    parser.add_argument("--rates-only", action="store_true", help="only the rates' table")
    parser.add_argument("--wobble", type=float, nargs="*", default=[0.0, 0.05, 0.15],
                        help="sd of the factor a group's latencies share in a round (0: independent latencies)")
    args = parser.parse_args()
    rounds, rate, window = schedule()
    print("bench/sequential.py: %d waves of each kind; wave 2 in production: %d rounds (%d checkpoints), "
          "probe %g/s per subject" % (args.waves, len(rounds), sum(c for c, _ in rounds), rate))
    print("in use: trigger > %g %% and > %g ms every round, Mann-Whitney alpha %g, effect %g, shift %g ms at "
          "checkpoints" % (TRIGGER_PCT, TRIGGER_MS, MWU_ALPHA, MWU_EFFECT, MWU_SHIFT))
    print("new:    anytime-valid, alpha %g over the wave, tolerance %g %%, against the baseline and the control"
          % (ALPHA, TOLERANCE * 100))
    run_rates(rounds, rate, window, args.waves, args.seed)
    if args.rates_only:
        return
    dists = [Lognormal(20.0, 0.3), Lognormal(1.1, 0.3)]
    if args.recorded:
        dists.append(Recorded(args.recorded))
    for dist in dists:
        for wobble in args.wobble:
            began = time.monotonic()
            rows = run(dist, rounds, rate, window, args.waves, args.seed, wobble)
            print("\n%s; rounds wobble with sd %g (%.0f s)" % (dist.name, wobble, time.monotonic() - began))
            print("   %-16s %18s %23s %27s" % ("procedure", "false alarm (A/A)", "detected (20 % slower)",
                                               "median rounds to detection"))
            for name, procedure in PROCEDURES:
                false_rate, _ = rows[procedure, False]
                hit_rate, rounds_to = rows[procedure, True]
                print("   %-16s %17.1f%% %22.1f%% %27s" % (name, 100 * false_rate, 100 * hit_rate,
                                                           "-" if rounds_to is None else "%g" % rounds_to))
            for name, procedure in PROCEDURES[1:]:
                false_rate, hit_rate = rows[procedure, False][0], rows[procedure, True][0]
                print("   goals (%s): false alarm <= 1 %%: %s; detection >= 95 %%: %s" % (
                    name, "met" if false_rate <= 0.01 else "MISSED", "met" if hit_rate >= 0.95 else "MISSED"))


if __name__ == "__main__":
    main()
