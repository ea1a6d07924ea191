# -*- coding: utf-8 -*-
"""Anytime-valid comparison of the test group's latencies with a reference, round after round (issue 12).

A wave judges its test group hundreds of times (every monitoring round of a 27-hour wave). A test at
a fixed alpha repeated that often raises a false "degraded" almost surely sooner or later; this one
bounds the probability of a false "degraded" over the whole wave by alpha, however many rounds are
judged, and may be asked after every round.

The question asked of each latency x of the test group: is it above the reference's median raised by
the tolerated effect, c = max(m x (1 + tolerance), m + min_shift)? If the test group is no worse
than tolerated - its median at most c - such an exceedance has a probability p <= 1/2. The evidence
against that is a mixture of likelihood ratios of alternatives p_j > 1/2 against 1/2:

    E(s, n) = mean over j of (2 p_j)^s (2 (1 - p_j))^(n - s)     (s exceedances among n latencies)

For any p <= 1/2 every term, hence the mean, is a nonnegative supermartingale starting at 1, so by
Ville's inequality the probability that E ever reaches 1/alpha is at most alpha. Only the running
counts (n, s) are kept from round to round. "Improved" is the mirror question (below
min(m / (1 + tolerance), m - min_shift)); each direction gets alpha / 2.

The same question is asked against two references, each with its own counts:
  baseline  the same agents before their flip (a pre-flip probe): the agent compared with itself,
            whatever its type; a fleet-wide drift would show here too;
  control   the agents that keep the flag off, in the same round: drift shows in both groups and
            cancels, but agents of different types differ for reasons of their own.
The wave is "degraded" only when both say so - each bounds the false alarm by alpha on its own, so
their conjunction does too - and "improved" likewise. A reference without data leaves its side
"no data", and the verdict waits for it.

What counts as one observation is the caller's choice:
  update        every latency of the round: the most power, but the guarantee holds only when the
                latencies are independent draws - a round whose every latency is shifted together (a
                busy host, a GC pause, a noisy neighbour) counts hundreds of times;
  update_round  the round's median, once: no less valid when whole rounds wobble, since a wobble
                that favours neither group exceeds the tolerated effect at most half the time; it
                needs about a dozen rounds to say "degraded" at alpha 0.01.
bench/sequential.py shows both against the procedure in use, with and without such wobbles.

Rates (count data: the share of a round's requests that failed) are asked the same question with
counts (compare_rates): is the instance's failure probability above the reference's share r raised
by the tolerated effect, c = max(r x (1 + tolerance), r + min_shift)? If it is at most c, a round's
x failures of n requests are no more than Binomial(n, c), so for each alternative q = k x c (k > 1,
RATE_ALTERNATIVES) the round's likelihood ratio (q / c)^x ((1 - q) / (1 - c))^(n - x) has expectation
at most 1 whatever came before; the product over rounds, mixed over the alternatives, is again a
nonnegative supermartingale starting at 1. c is set from the reference before the round's own count
is looked at, so it may differ from round to round. Only the summed log ratios are kept. A round
against a reference that makes c 0 (no failures and no min_shift) or 1 adds no evidence: a single
failure would otherwise be infinite evidence.
"""

from __future__ import annotations

import math
import statistics

# The alternatives mixed, equal weights: from slight (0.52: detects wide distributions shifted by the
# tolerated effect and a little more) to gross (0.9).
ALTERNATIVES = (0.52, 0.55, 0.6, 0.65, 0.7, 0.8, 0.9)
DIRECTIONS = ('up', 'down')
REFERENCES = ('baseline', 'control')
VERDICTS = ('no difference so far', 'degraded', 'improved', 'no data')


def _log_mean_exp(terms):
    """log of the mean of exp(terms), without overflow: the log of a mixture with equal weights."""
    top = max(terms)
    return top + math.log(sum(math.exp(t - top) for t in terms) / len(terms))


def log_evidence(s, n, alternatives=ALTERNATIVES):
    """log E(s, n): the evidence of s exceedances among n against p <= 1/2 (0 for n = 0)."""
    if n <= 0:
        return 0.0
    return _log_mean_exp([s * math.log(2 * p) + (n - s) * math.log(2 * (1 - p)) for p in alternatives])


def _finite(values):
    """The finite numbers of values (None, NaN, infinities and anything else are missing points)."""
    return [v for v in values or () if isinstance(v, (int, float)) and math.isfinite(v)]


def thresholds(reference, tolerance, min_shift=0.0):
    """(low, high) of a reference sample: its median widened by the tolerated effect, relative and
    absolute; None without a usable sample."""
    values = _finite(reference)
    if not values:
        return None
    median = statistics.median(values)
    return (min(median / (1 + tolerance), median - min_shift), max(median * (1 + tolerance), median + min_shift))


def new_state():
    return {ref: dict(n=0, up=0, down=0) for ref in REFERENCES}


def update(state, samples, references, tolerance, min_shift=0.0):
    """The counts after one more round: samples (the test group's latencies of the round) counted
    against each reference of `references` ({baseline: [...], control: [...]}, either missing or
    empty when there is none). Returns a new state; `state` is not changed."""
    state = {ref: dict((state or new_state()).get(ref) or dict(n=0, up=0, down=0)) for ref in REFERENCES}
    values = _finite(samples)
    for ref in REFERENCES:
        bounds = thresholds((references or {}).get(ref), tolerance, min_shift)
        if bounds is None or not values:
            continue
        low, high = bounds
        counts = state[ref]
        counts['n'] += len(values)
        counts['up'] += sum(1 for v in values if v > high)
        counts['down'] += sum(1 for v in values if v < low)
    return state


def update_round(state, samples, references, tolerance, min_shift=0.0):
    """As update, with the round as one observation: its median against each reference's thresholds."""
    values = _finite(samples)
    if not values:
        return update(state, (), references, tolerance, min_shift)
    return update(state, [statistics.median(values)], references, tolerance, min_shift)


def share_bounds(s, n, alpha, alternatives=ALTERNATIVES, steps=200):
    """An anytime-valid confidence interval for the share of exceedances: the p in [0, 1] not ruled
    out at alpha by the same mixture recentred on p (a grid of `steps`), or None for n = 0."""
    if n <= 0:
        return None
    limit = math.log(1 / alpha)
    kept = []
    for i in range(steps + 1):
        p0 = i / steps
        if p0 in (0.0, 1.0):
            ruled_out = (p0 == 0.0 and s > 0) or (p0 == 1.0 and s < n)
        else:
            # alternatives on either side of p0, mapped from those around 1/2
            terms = []
            for q in alternatives:
                for alt in (p0 + (q - 0.5) * 2 * (1 - p0), p0 - (q - 0.5) * 2 * p0):
                    if 0 < alt < 1:
                        terms.append(s * math.log(alt / p0) + (n - s) * math.log((1 - alt) / (1 - p0)))
            ruled_out = _log_mean_exp(terms) >= limit
        if not ruled_out:
            kept.append(p0)
    return (min(kept), max(kept)) if kept else None


def _verdict(counts, limit):
    n = counts['n']
    if not n:
        return 'no data'
    if log_evidence(counts['up'], n) >= limit:
        return 'degraded'
    if log_evidence(counts['down'], n) >= limit:
        return 'improved'
    return 'no difference so far'


def verdict(state, alpha):
    """The wave's verdict of the counts so far: degraded (improved) only when every reference says so,
    no data while a reference has none; alpha / 2 per direction."""
    limit = math.log(2 / alpha)
    return _every_reference({_verdict((state or {}).get(ref) or dict(n=0, up=0, down=0), limit) for ref in REFERENCES})


def _every_reference(found):
    """The verdict of the references' verdicts: one only when every reference says it, no data while
    any has none."""
    if 'no data' in found:
        return 'no data'
    if len(found) == 1 and found <= {'degraded', 'improved'}:
        return found.pop()
    return 'no difference so far'


def judge(state, alpha):
    """The verdict with what it rests on: {verdict, threshold, references: {ref: {n, up, down,
    evidence_up, evidence_down, share_up, share_up_bounds, verdict}}}."""
    limit = math.log(2 / alpha)
    rows = {}
    for ref in REFERENCES:
        counts = (state or {}).get(ref) or dict(n=0, up=0, down=0)
        n = counts['n']
        rows[ref] = dict(counts, evidence_up=math.exp(min(log_evidence(counts['up'], n), 700)),
                         evidence_down=math.exp(min(log_evidence(counts['down'], n), 700)),
                         share_up=counts['up'] / n if n else None,
                         share_up_bounds=share_bounds(counts['up'], n, alpha / 2), verdict=_verdict(counts, limit))
    return dict(verdict=verdict(state, alpha), threshold=2 / alpha, references=rows)


def _median(values):
    values = _finite(values)
    return statistics.median(values) if values else None


def compare_instances(state, samples, baselines, control, tolerance, min_shift, alpha, tested, by_round=False):
    """One round of the gate's sequential comparison, each test instance on its own.

    state      {instance: counts as new_state} of the rounds before (None or {} at the first)
    samples    {instance: [latency, ...]} of this round, the test group's instances
    baselines  {instance: its median before its flip} (the pre-flip probe of pre-flight)
    control    [latency, ...] of this round's reference group, every instance pooled
    tested     how many instances the wave tests in all: alpha is shared among them (each gets
               alpha / tested), so the false alarm over every instance and every round is at most alpha
    by_round   count each round once, by its median (update_round), instead of every latency (update)
    Returns (state, rows): the counts after this round (instances of the earlier state kept) and one
    row per instance of `samples`: verdict, the evidence and the share of latencies above the
    tolerated latency against each reference, with its anytime-valid bounds, and the effect -
    the round's median against the baseline's, in ms and %.
    """
    share = alpha / max(1, int(tested))
    new = dict(state or {})
    rows = []
    control_median = _median(control)
    for instance in sorted(samples):
        baseline = baselines.get(instance) if baselines else None
        references = dict(baseline=[baseline] if baseline is not None else [], control=control or [])
        new[instance] = (update_round if by_round else update)(new.get(instance), samples[instance], references,
                                                               tolerance, min_shift)
        judged = judge(new[instance], share)
        median = _median(samples[instance])
        shift = median - baseline if median is not None and baseline is not None else None
        rows.append(dict(
            instance=instance, verdict=judged['verdict'], alpha=share, threshold=judged['threshold'],
            median_ms=median, baseline_median_ms=baseline, control_median_ms=control_median,
            shift_ms=shift, shift_pct=100.0 * shift / baseline if shift is not None and baseline else None,
            n_round=len(_finite(samples[instance])),
            references=judged['references']))
    return new, rows


# --- rates (count data) -------------------------------------------------------------------------------

# Alternatives to the tolerated failure probability c, as multiples of it, equal weights: from half
# again (a rate that creeps up) to thirty times (an agent that fails outright).
RATE_ALTERNATIVES = (1.5, 2.0, 3.0, 5.0, 10.0, 30.0)


# The rates compare_rates may judge (comparison.metrics), each an instance's failed requests from
# nats_probe's counters - the numerators of its error_rate and of 1 - delivery - in % of those sent.
RATE_METRICS = {
    'error_rate_pct': lambda c: c['errors'] + c['timeouts'] + c['no_responders'],
    'delivery_loss_pct': lambda c: c['sent'] - c['replies_ok'],
}


def request_counts(counters, metric):
    """(failed, sent) of a rate metric from one instance's probe counters; None without them."""
    try:
        failed, sent = RATE_METRICS[metric](counters), counters['sent']
    except (KeyError, TypeError):
        return None
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (failed, sent)) or not 0 <= failed <= sent:
        return None
    return failed, sent


def rate_threshold(failed, sent, tolerance, min_shift):
    """c: the reference's share of failed requests raised by the tolerated effect (relative and
    absolute, min_shift a fraction); None without requests, or when c is 0 or 1 (nothing to test)."""
    if not sent or failed is None or failed < 0 or failed > sent:
        return None
    share = failed / sent
    c = max(share * (1 + tolerance), share + min_shift)
    return c if 0 < c < 1 else None


def _alternatives(c):
    return [min(k * c, (1 + c) / 2) for k in RATE_ALTERNATIVES]


def new_rate_state():
    return {ref: dict(n=0, failed=0, log_lr=[0.0] * len(RATE_ALTERNATIVES)) for ref in REFERENCES}


def update_rates(state, failed, sent, references, tolerance, min_shift):
    """The counts after one more round: `failed` of `sent` requests of the test instance, against
    each reference of `references` ({baseline: (failed, sent), control: (failed, sent)}, either
    missing when there is none). Returns a new state; `state` is not changed."""
    old = state or new_rate_state()
    new = {ref: dict(old.get(ref) or new_rate_state()[ref]) for ref in REFERENCES}
    if not sent or failed is None or not 0 <= failed <= sent:
        return new
    for ref in REFERENCES:
        found = (references or {}).get(ref)
        c = rate_threshold(found[0], found[1], tolerance, min_shift) if found else None
        if c is None:
            continue
        counts = new[ref]
        counts['n'] += sent
        counts['failed'] += failed
        counts['log_lr'] = [
            total + failed * math.log(q / c) + (sent - failed) * math.log((1 - q) / (1 - c))
            for total, q in zip(counts['log_lr'], _alternatives(c))]
    return new


def rate_log_evidence(counts):
    """log of the mixture's evidence (0 before any round)."""
    return _log_mean_exp(counts.get('log_lr') or [0.0])


def judge_rates(state, alpha):
    """{verdict, threshold, references: {ref: {n, failed, share, evidence, verdict}}}: degraded when
    every reference's evidence reaches 1 / alpha, no data while a reference has none."""
    limit = math.log(1 / alpha)
    rows = {}
    for ref in REFERENCES:
        counts = (state or {}).get(ref) or new_rate_state()[ref]
        evidence = rate_log_evidence(counts)
        verdict_ = 'no data' if not counts['n'] else ('degraded' if evidence >= limit else 'no difference so far')
        rows[ref] = dict(n=counts['n'], failed=counts['failed'],
                         share=counts['failed'] / counts['n'] if counts['n'] else None,
                         evidence=math.exp(min(evidence, 700)), verdict=verdict_)
    return dict(verdict=_every_reference({row['verdict'] for row in rows.values()}), threshold=1 / alpha,
                references=rows)


def _pct(failed, sent):
    return 100.0 * failed / sent if sent else None


def compare_rates(state, counts, baselines, control, tolerance, min_shift, alpha, tested):
    """One round of the sequential comparison of a rate, each test instance on its own.

    state      {instance: counts as new_rate_state} of the rounds before (None or {} at the first)
    counts     {instance: (failed, sent)} of this round, the test group's instances
    baselines  {instance: (failed, sent)} of its pre-flip probe
    control    (failed, sent) of this round's reference group, every instance summed
    min_shift  the smallest rise that counts, as a fraction (0.001: 0.1 percentage points)
    tested     how many instances share alpha, as in compare_instances
    Returns (state, rows): one row per instance of `counts` with the verdict, this round's share and
    the references', and what the evidence rests on against each reference.
    """
    share = alpha / max(1, int(tested))
    new = dict(state or {})
    rows = []
    for instance in sorted(counts):
        failed, sent = counts[instance]
        baseline = (baselines or {}).get(instance)
        new[instance] = update_rates(new.get(instance), failed, sent, dict(baseline=baseline, control=control),
                                     tolerance, min_shift)
        judged = judge_rates(new[instance], share)
        rows.append(dict(
            instance=instance, kind='rate', verdict=judged['verdict'], alpha=share, threshold=judged['threshold'],
            failed=failed, sent=sent, rate_pct=_pct(failed, sent),
            baseline_rate_pct=_pct(*baseline) if baseline else None,
            control_rate_pct=_pct(*control) if control else None,
            references=judged['references']))
    return new, rows
