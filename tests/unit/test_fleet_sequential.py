"""plugins/plugin_utils/fleet_sequential.py: the anytime-valid comparison's guarantees on small
simulated cases (seeded, so each run draws the same), and its bookkeeping."""

from __future__ import annotations

import json
import math
import random

import pytest
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_sequential as seq

pytestmark = pytest.mark.unit


def ever_crosses(rng, p, steps, alpha, check_every=1):
    """Whether the evidence of a Bernoulli(p) stream reaches 1/alpha at any check within `steps`."""
    s = 0
    limit = math.log(1 / alpha)
    for n in range(1, steps + 1):
        s += rng.random() < p
        if n % check_every == 0 and seq.log_evidence(s, n) >= limit:
            return n
    return None


def test_under_the_null_the_evidence_rarely_ever_reaches_one_over_alpha_however_often_it_is_looked_at():
    # Looked at after every one of 1,000 observations, 400 times: Ville bounds the share by alpha.
    rng = random.Random(20261202)
    alpha = 0.05
    crossed = sum(ever_crosses(rng, 0.5, 1000, alpha) is not None for _ in range(400))
    assert crossed / 400 <= alpha


def test_a_null_below_one_half_is_safer_still():
    rng = random.Random(7)
    assert sum(ever_crosses(rng, 0.4, 1000, 0.05) is not None for _ in range(200)) == 0


def test_a_fixed_alpha_test_repeated_as_often_is_not_bounded():
    # The contrast: a one-sided z test at 5 % after every 10 observations cries wolf far more often.
    rng = random.Random(20261202)
    alarms = 0
    for _ in range(400):
        s = 0
        for n in range(1, 1001):
            s += rng.random() < 0.5
            if n % 10 == 0 and (s - n / 2) / math.sqrt(n / 4) > 1.645:
                alarms += 1
                break
    assert alarms / 400 > 0.2


def test_a_real_excess_is_found_and_soon():
    rng = random.Random(3)
    found = [ever_crosses(rng, 0.62, 5000, 0.01) for _ in range(100)]
    assert all(n is not None for n in found)
    assert sorted(found)[50] < 800  # median observations to detection


def test_the_evidence_is_one_before_any_observation_and_falls_with_a_half_share():
    assert seq.log_evidence(0, 0) == 0.0
    assert seq.log_evidence(50, 100) < 0 and seq.log_evidence(500, 1000) < seq.log_evidence(50, 100)
    assert seq.log_evidence(80, 100) > math.log(100)


def test_thresholds_widen_the_median_by_the_tolerance_and_at_least_min_shift():
    assert seq.thresholds([10.0, 20.0, 30.0], 0.1) == pytest.approx((20 / 1.1, 22.0))
    assert seq.thresholds([1.0, 1.0, 1.2], 0.1, min_shift=1.0) == pytest.approx((0.0, 2.0))
    assert seq.thresholds([], 0.1) is None and seq.thresholds([float("nan")], 0.1) is None


def test_update_counts_each_round_against_each_reference_and_leaves_the_old_state():
    state = seq.new_state()
    after = seq.update(state, [5, 12, 30], {"baseline": [10, 10, 10], "control": [20, 20]}, 0.1)
    assert state == seq.new_state()
    assert after["baseline"] == dict(n=3, up=2, down=1)  # > 11: 12, 30; < 9.09: 5
    assert after["control"] == dict(n=3, up=1, down=2)   # > 22: 30; < 18.18: 5, 12
    again = seq.update(after, [100], {"baseline": [10]}, 0.1)
    assert again["baseline"] == dict(n=4, up=3, down=1) and again["control"] == after["control"]


def samples(rng, median, n, sigma=0.3):
    return [median * math.exp(rng.gauss(0, sigma)) for _ in range(n)]


def judged_after(rng, rounds, test_median, baseline_median, control_median):
    """The judgement after `rounds` rounds of 200 latencies of each group, against one pre-flip
    baseline of 600 latencies."""
    baseline = samples(rng, baseline_median, 600)
    state = seq.new_state()
    for _ in range(rounds):
        state = seq.update(state, samples(rng, test_median, 200),
                           {"baseline": baseline, "control": samples(rng, control_median, 200)}, 0.1)
    return seq.judge(state, 0.01)


def test_a_twenty_percent_slower_test_group_is_degraded_against_both_references():
    verdict = judged_after(random.Random(11), 3, 12.0, 10.0, 10.0)
    assert verdict["verdict"] == "degraded", verdict
    low, high = verdict["references"]["baseline"]["share_up_bounds"]
    assert 0.5 < low <= verdict["references"]["baseline"]["share_up"] <= high


def test_drift_of_the_whole_fleet_is_not_the_flags_doing():
    # Everything 30 % slower than before the flip, test and control alike: the baseline says
    # degraded, the control does not, and the wave is not.
    verdict = judged_after(random.Random(5), 5, 13.0, 10.0, 13.0)
    assert verdict["references"]["baseline"]["verdict"] == "degraded"
    assert verdict["references"]["control"]["verdict"] == "no difference so far"
    assert verdict["verdict"] == "no difference so far"


def test_a_faster_test_group_is_improved_and_a_missing_reference_is_no_data():
    rng = random.Random(9)
    state = seq.update(seq.new_state(), samples(rng, 7.0, 400), {"baseline": samples(rng, 10.0, 600),
                                                                  "control": samples(rng, 10.0, 400)}, 0.1)
    assert seq.judge(state, 0.01)["verdict"] == "improved"
    only_baseline = seq.update(seq.new_state(), samples(rng, 20.0, 400), {"baseline": samples(rng, 10.0, 600)}, 0.1)
    assert seq.judge(only_baseline, 0.01)["verdict"] == "no data"


def test_a_round_counts_once_by_its_median_when_asked_to():
    state = seq.update_round(seq.new_state(), [5, 12, 30], {"baseline": [10, 10, 10], "control": [20, 20]}, 0.1)
    assert state["baseline"] == dict(n=1, up=1, down=0)   # median 12 > 11
    assert state["control"] == dict(n=1, up=0, down=1)    # median 12 < 18.18
    assert seq.update_round(state, [], {"baseline": [10]}, 0.1) == state


def test_rounds_that_wobble_together_cry_wolf_counted_by_latency_but_not_by_round():
    # Every latency of a round shares its group's factor for the round (sd 30 %, about what the
    # sandbox's busy two cores do to a 1 ms median); no flag effect at all.
    rng = random.Random(21)
    by_latency = by_round = 0
    for _ in range(40):
        latency_state, round_state = seq.new_state(), seq.new_state()
        latency_alarm = round_alarm = False
        baseline = samples(rng, 10.0, 600)
        for _ in range(60):  # judged after every round
            factor = math.exp(rng.gauss(0, 0.3))
            control_factor = math.exp(rng.gauss(0, 0.3))
            test = [v * factor for v in samples(rng, 10.0, 100)]
            refs = {"baseline": baseline, "control": [v * control_factor for v in samples(rng, 10.0, 100)]}
            latency_state = seq.update(latency_state, test, refs, 0.1)
            round_state = seq.update_round(round_state, test, refs, 0.1)
            latency_alarm |= seq.verdict(latency_state, 0.01) == "degraded"
            round_alarm |= seq.verdict(round_state, 0.01) == "degraded"
        by_latency += latency_alarm
        by_round += round_alarm
    assert by_round == 0
    assert by_latency >= 5  # of 40 waves (12 with this seed)


# --- rates (count data) ----------------------------------------------------------------------------

def binomial(rng, n, p):
    """A Binomial(n, p) draw by inversion (few steps for the small p of failure rates)."""
    u, x = rng.random(), 0
    pmf = (1 - p) ** n
    cdf = pmf
    while u > cdf and x < n:
        pmf *= (n - x) / (x + 1) * p / (1 - p)
        x += 1
        cdf += pmf
    return x


def rate_wave(rng, p, rounds=300, sent=200, alpha=0.05, control=(0, 2000), baseline=(0, 1000), min_shift=0.002):
    """The first round at which an instance failing with probability p is judged degraded (None if never)."""
    state = None
    for number in range(1, rounds + 1):
        failed = binomial(rng, sent, p)
        state, [row] = seq.compare_rates(state, {"a@h": (failed, sent)}, {"a@h": baseline}, control, 0.1, min_shift,
                                         alpha, 1)
        if row["verdict"] == "degraded":
            return number
    return None


def test_rates_under_the_null_rarely_ever_cry_wolf_over_a_whole_wave():
    # Failing with exactly the tolerated probability (0.2 %, the min_shift over references without
    # failures), judged after each of 300 rounds: Ville bounds the waves ever called degraded by alpha.
    rng = random.Random(20261203)
    waves = [rate_wave(rng, 0.002) for _ in range(300)]
    assert sum(w is not None for w in waves) / len(waves) <= 0.05


def test_a_rate_five_times_the_tolerated_is_degraded_within_a_few_rounds():
    rng = random.Random(11)
    found = [rate_wave(rng, 0.01) for _ in range(100)]
    assert all(f is not None for f in found)
    assert sorted(found)[len(found) // 2] <= 5, sorted(found)


def test_a_rate_as_high_as_the_references_is_no_difference():
    # The whole fleet fails 1 % of requests, before the flip and beside it: not the flag's doing.
    rng = random.Random(5)
    assert [rate_wave(rng, 0.01, control=(20, 2000), baseline=(10, 1000), rounds=100) for _ in range(50)] == [None] * 50


def test_rate_threshold_raises_the_share_by_the_tolerance_and_at_least_min_shift():
    assert seq.rate_threshold(10, 1000, 0.1, 0.002) == pytest.approx(0.012)
    assert seq.rate_threshold(100, 1000, 0.5, 0.002) == pytest.approx(0.15)
    # Nothing to test against: no requests, c of 0 (a single failure would be infinite evidence) or 1.
    assert [seq.rate_threshold(*a) for a in ((0, 0, 0.1, 0.002), (0, 100, 0.1, 0.0), (900, 1000, 0.5, 0.0),
                                             (5, 3, 0.1, 0.0), (None, 3, 0.1, 0.0))] == [None] * 5


def test_a_rate_reference_without_requests_is_no_data_and_the_state_is_not_changed():
    before = seq.new_rate_state()
    state, [row] = seq.compare_rates({"a@h": before}, {"a@h": (3, 100)}, {}, (0, 0), 0.1, 0.002, 0.05, 1)
    assert row["verdict"] == "no data" and row["baseline_rate_pct"] is None and row["control_rate_pct"] is None
    assert before == seq.new_rate_state() and state["a@h"]["baseline"]["n"] == 0
    assert (row["failed"], row["sent"], row["rate_pct"]) == (3, 100, 3.0)


def test_rate_counts_go_on_from_round_to_round_and_both_references_must_agree():
    state = None
    for _ in range(3):
        state, [row] = seq.compare_rates(state, {"a@h": (5, 100)}, {"a@h": (0, 1000)}, (50, 1000), 0.1, 0.002,
                                         0.05, 2)
    # 5 % failing against a baseline without failures (c = 0.2 %) but a control failing 5 % (c = 5.5 %).
    assert state["a@h"]["baseline"] == dict(state["a@h"]["baseline"], n=300, failed=15)
    assert row["references"]["baseline"]["verdict"] == "degraded"
    assert row["references"]["control"]["verdict"] == "no difference so far"
    assert row["verdict"] == "no difference so far" and row["alpha"] == 0.025
    assert json.loads(json.dumps(state)) == state  # kept in the journal between rounds
