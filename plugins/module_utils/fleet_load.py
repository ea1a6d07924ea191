# -*- coding: utf-8 -*-
"""The load scenarios of the production-readiness run (issue 10, "Load"): scenarios as data, the
engine that drives them through an async ``send``, thresholds judged over the whole run and over
sliding windows (and able to abort), one result record per scenario, and the comparison with the
previous run. Plain Python (no AnsibleModule): a ``nats_load`` module calls ``run_scenario`` with a
``send`` that makes one NATS request; unit tests call it with a fake one.

Scenarios (the inventory's ``readiness_load_scenarios``; ``validate_scenarios``)
===============================================================================
A mapping of scenario names to scenarios; durations in seconds, ranges in ``fleet_limits.LIMITS``
(``load_*``). Every scenario has an ``executor`` and optionally ``thresholds``, ``interval_seconds``
(the time series step; default ``default_interval``) and ``compressed`` (set by ``compress``)::

    constant-vus           closed  vus, duration
    ramping-vus            closed  stages: [{duration, target VUs}], start_vus (default 0)
    constant-arrival-rate  open    rate (requests/s), duration, max_vus
    ramping-arrival-rate   open    stages: [{duration, target rate}], start_rate (default 0), max_vus,
                                   recovery (optional, below)
    rate-search            open    start_rate, factor | step, stage_duration, max_rate, max_vus, knee

Stages move linearly from the level before them to their target (a stage of duration 0 jumps), as
k6's do. A threshold is ``{name, metric, comparator, threshold}`` plus optionally ``window_seconds``
(also judged over every sliding window of that length), ``abort`` (stop the scenario when breached)
and ``min_samples`` (default ``MIN_SAMPLES``: a window or an abort check with fewer samples is not
judged). Metrics: ``METRICS``; comparators state the PASS condition: ``<``, ``<=``, ``>``, ``>=``.
The contract's six, at production durations (endurance and soak last hours), are inventory data
(``inventory/production/group_vars/all/00-contract.yml``); ``compress(scenarios, factor)`` shortens
every duration, window and interval for the sandbox (stage_duration and recovery.after_seconds too).

Stress keys (issue 10, "Stress"; every executor unless said):

* ``payload_bytes``: the request body's size in bytes (default: what the caller sends, ``run_scenario``'s
  ``payload_bytes``); nats_load pads its payload to it and refuses, before sending anything, a size
  over the server's max_payload. The record gets ``payload_bytes``, ``bytes_sent``, ``bytes_sent_per_s``.
* ``connections`` (default 1) and ``connect``: the requests go round robin over that many connections
  opened by ``run_scenario``'s ``open_connection(number)`` (send is then ``send(index, connection)``).
  ``connect: ahead`` (default) opens them all before the clock starts (one that fails is counted and
  the others carry the load; none open: the run fails before sending); ``connect: storm`` opens all
  of them at the same instant, the start of the clock: request i waits for connection i mod N (the
  wait is in its latency) or fails with that connection's exception. The record's ``connections``
  holds count, connect, opened, failed, failures by class, ``connect_ms`` percentiles (from the start
  of the opening) and ``requests_per_connection``; null when the scenario sets neither key.
* ``rate-search``: a saturation-knee search. Stage k holds the constant rate start_rate x factor^k
  (or start_rate + k x step) for stage_duration, the last one capped at max_rate (``search_rates``);
  at the end of each stage its figures (counted by when things happened in it, as intervals are) are
  judged against ``knee``, a condition ``{metric, comparator, threshold, min_samples (default 1)}``
  or a list of up to 5 (any holds: a knee; here the comparator states the KNEE condition, e.g.
  ``latency_p99_ms > 200``, ``dropped > 0``, ``error_rate_pct > 1``). At the first knee the search
  stops sending (as an abort does, but ``aborted`` stays false). Intervals divide stages exactly.
  The record gets ``knee: {rate, stage, at_seconds, reason}`` or null with ``knee_note`` ("no knee
  up to max_rate ..."), and ``stages_run: [{stage, rate, requests, achieved_rate, answered, p99_ms,
  dropped, error_rate_pct, knee}]``.
* ``recovery`` (ramping-arrival-rate, "overload then recovery"): ``{metric, comparator, threshold,
  after_seconds}``, the comparator stating the HEALTHY condition. Each interval starting at or after
  after_seconds is judged on its own figures (an interval without data does not hold); the record's
  ``recovery: {recovered, seconds, at_seconds, judged_intervals, ...}`` has seconds = the end of the
  first interval from which every later one holds - after_seconds (one interval's resolution), or
  recovered false and seconds null (with a ``note``).
* ``slow_consumer: {subject, pending_limit, delay_ms}``: validated here, run by nats_load (a
  subscriber whose handler sleeps delay_ms, nats-py queueing at most pending_limit and discarding
  the rest with a SlowConsumerError); it sets the record's ``slow_consumer: {received, dropped,
  pending, errors}`` (null here).

The run (``run_scenario``)
==========================
``send(index)`` is awaited once per request: it returns anything but ``False`` for a good reply,
``False`` for an error reply (an ``Agent-Error`` reply, ``fleet_probe.reply_is_error``), and raises
on a timeout, no responders or a broken connection (counted per exception class).

Closed model: each VU loops send, await, send; the VUs set the concurrency and the server's speed
sets the rate. ``ramping-vus`` starts a VU when the stage level reaches it and lets it finish its
request when the level falls below it. Latency runs from the send.

Open model: request i is due at its intended time (``fleet_probe.Schedule`` for a constant rate,
``ArrivalSchedule`` for a ramp; ``fleet_probe.generate`` sends them, overdue ones at once), whether
or not earlier ones were answered, and its latency runs from that INTENDED time, so a stalled server
or generator shows up as latency (no coordinated omission, as wrk2). ``max_vus`` caps the requests
in flight: a request due while ``max_vus`` are in flight is not sent and counts as ``dropped``
(``max_vus``), as is one still unsent when the window ends (``late``): the rate is never lowered
silently, and what could not be sent is counted (k6's dropped_iterations).

After the window (or an abort) nothing more is sent; requests in flight have ``grace`` seconds to
complete, then count as errors (``interrupted``). Counts and latencies go to the interval in which
they happen (a send, a drop, a reply); what completes after the window counts in its last interval.

The record (one per scenario, JSON; what ``fleet_gates.performance_gate`` reads)
================================================================================
::

    {"scenario", "model": "closed" | "open", "executor", "config": <the scenario as run>,
     "started", "ended" (UTC), "duration_seconds" (planned), "elapsed_seconds" (sending window),
     "requested_rate", "achieved_rate" (requests sent / elapsed), "rate_ratio", "rate_reached",
     "throughput_rps" (good replies / elapsed), "scheduled" (open: requests due in the window),
     "requests" (sent), "answered" (good replies), "errors" (error replies + failures),
     "error_replies", "failures": {<exception class>: n}, "timeouts", "interrupted",
     "error_rate_pct", "dropped", "dropped_reasons": {"max_vus", "late"}, "max_vus", "max_in_flight",
     "concurrency": {"requested_mean", "achieved_mean"} (closed), "send_lag_ms" (open),
     "latency_ms": {"p50", "p90", "p95", "p99", "max", "mean", "count"}, "latency_from",
     "thresholds": [{"name", "metric", "comparator", "threshold", "unit", "window_seconds", "abort",
                     "min_samples", "measured", "passed", "judged_by", "whole_run",
                     "windows": {"seconds", "judged", "breached", "skipped", "worst", "first_breach"}}],
     "thresholds_passed", "aborted", "abort": {"threshold", "metric", "comparator", "limit", "measured",
     "window", "at_seconds", "reason"} | null, "interval_seconds",
     "series": [{"t", "seconds", "sent", "answered", "errors", "dropped", "in_flight", "vus",
                 "p50_ms", "p99_ms", "max_ms"}], "summary": "<one line>"}

A series point is one interval from ``t`` seconds after the start: its counts, the requests in flight
and (closed model) the VUs the stages ask for at its end, when it closed, and its latency.

``requested_rate`` is what the schedule asked for: the requests due in the window / the window (for
an aborted run, the requests due before the abort / the time to it). A closed model has none: the VUs
set the concurrency, not the rate, so ``requested_rate`` is null, ``rate_reached`` null, and the
performance gate does not apply its achieved-vs-requested check to it (its achieved rate must still
be there). What a closed run can fail to apply is concurrency: ``concurrency`` holds the VUs asked
for (mean over the run) against the mean number of requests outstanding, for the reader.
``rate_reached`` (open) is true when nothing was dropped: every due request was sent.

A threshold's ``measured`` is the value it was decided on: the whole run's when it held everywhere,
otherwise the worst breach (whole run, a window, or the running value that aborted the run), so
``passed`` is always what the comparator says of ``measured`` (the gate checks that). Each window of
``k`` intervals (``window_seconds`` rounded to whole intervals) ending at an interval boundary is
judged once it has ``min_samples`` samples; ``worst`` and ``first_breach`` name its span in seconds
from the start. Percentiles of an interval or a window have 2 significant digits (HDR), those of the
whole run 3.

``compare_with_previous(current, previous)`` gives, per scenario and figure, the change against a
previous run's results, and whether the two ran the same configuration; it passes no verdict.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import copy
import math
import operator
import re
import time

from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_limits import (
    LIMITS, MAX_LOAD_INTERVALS, MAX_LOAD_SCENARIOS, MAX_LOAD_STAGES, MAX_LOAD_THRESHOLDS, MAX_WINDOW_INTERVALS,
    describe, out_of_range)
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_probe import (
    Latency, Schedule, _utc, generate, ratio)

CLOSED, OPEN = 'closed', 'open'
# executor: (model, required keys, optional keys); every executor also takes COMMON_KEYS
EXECUTORS = {
    'constant-vus': (CLOSED, ('vus', 'duration'), ()),
    'ramping-vus': (CLOSED, ('stages',), ('start_vus',)),
    'constant-arrival-rate': (OPEN, ('rate', 'duration', 'max_vus'), ()),
    'ramping-arrival-rate': (OPEN, ('stages', 'max_vus'), ('start_rate', 'recovery')),
    'rate-search': (OPEN, ('start_rate', 'stage_duration', 'max_rate', 'max_vus', 'knee'), ('factor', 'step')),
}
COMMON_KEYS = ('thresholds', 'interval_seconds', 'compressed', 'payload_bytes', 'connections', 'connect',
               'slow_consumer')
KEY_LIMITS = {'vus': 'load_vus', 'duration': 'load_duration_seconds', 'rate': 'load_rate', 'max_vus': 'load_max_vus',
              'start_vus': 'load_stage_vus', 'start_rate': 'load_stage_rate',
              'interval_seconds': 'load_interval_seconds', 'payload_bytes': 'load_payload_bytes',
              'connections': 'load_connections', 'stage_duration': 'load_search_stage_seconds',
              'max_rate': 'load_rate', 'factor': 'load_search_factor', 'step': 'load_search_step'}
# a rate-search starts above 0 (the ramps' start_rate may be 0)
EXECUTOR_KEY_LIMITS = {'rate-search': {'start_rate': 'load_rate'}}
CONNECT_MODES = ('ahead', 'storm')
KNEE_KEYS = ('metric', 'comparator', 'threshold')
KNEE_OPTIONAL = ('min_samples',)
MAX_KNEE_CONDITIONS = 5
RECOVERY_KEYS = ('metric', 'comparator', 'threshold', 'after_seconds')
SLOW_CONSUMER_KEYS = ('subject', 'pending_limit', 'delay_ms')
STAGE_KEYS = ('duration', 'target')
STAGE_TARGET = {'ramping-vus': 'load_stage_vus', 'ramping-arrival-rate': 'load_stage_rate'}
# metric: (the limit of its thresholds, unit)
METRICS = {
    'error_rate_pct': ('load_threshold_pct', '%'),
    'dropped': ('load_threshold_count', 'requests'),
    'dropped_pct': ('load_threshold_pct', '%'),
    'latency_p50_ms': ('load_threshold_ms', 'ms'),
    'latency_p90_ms': ('load_threshold_ms', 'ms'),
    'latency_p95_ms': ('load_threshold_ms', 'ms'),
    'latency_p99_ms': ('load_threshold_ms', 'ms'),
    'latency_max_ms': ('load_threshold_ms', 'ms'),
    'throughput_rps': ('load_threshold_rps', 'requests/s'),
}
COMPARATORS = {'<': operator.lt, '<=': operator.le, '>': operator.gt, '>=': operator.ge}
THRESHOLD_KEYS = ('name', 'metric', 'comparator', 'threshold')
THRESHOLD_OPTIONAL = ('window_seconds', 'abort', 'min_samples')
COMPRESSED_KEYS = ('factor', 'production_seconds')
NAME_RE = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]{0,63}')  # a scenario's name goes into file names
VARIABLE = 'readiness_load_scenarios'

MIN_SAMPLES = 20            # fewer in a window (or before an abort) is noise, not a verdict
GRACE_S = 5.0               # after the window, for the requests in flight
PERCENTILES = (50, 90, 95, 99)
SERIES_POINTS = 600         # the default interval gives at most this many points per scenario
WINDOW_DIGITS = 2           # HDR precision of interval and window histograms (~20 KB each)
MAX_FAILURE_KINDS = 10      # exception classes named in `failures`; the rest count as 'other'
EPS = 1e-9


# ================================================================================ scenarios as data

def search_rates(scenario):
    """The rates of a rate-search's stages: start_rate, then times factor (or plus step) while below
    max_rate, the last one capped at max_rate. At most MAX_LOAD_STAGES + 1 (more is refused)."""
    rate, top = float(scenario['start_rate']), float(scenario['max_rate'])
    rates = []
    while len(rates) <= MAX_LOAD_STAGES:
        rates.append(round(min(rate, top), 6))
        if rate >= top - EPS:
            break
        rate = rate * scenario['factor'] if 'factor' in scenario else rate + scenario['step']
    return rates


def search_stages(scenario):
    """A rate-search as ramping-arrival-rate stages: each rate held stage_duration, jumps between."""
    rates, seconds = search_rates(scenario), float(scenario['stage_duration'])
    stages = [dict(duration=seconds, target=rates[0])]
    for rate in rates[1:]:
        stages += [dict(duration=0.0, target=rate), dict(duration=seconds, target=rate)]
    return stages


def scenario_seconds(scenario):
    """The planned length of a (valid) scenario: its duration, or the sum of its stages."""
    if scenario.get('executor') == 'rate-search':
        return len(search_rates(scenario)) * float(scenario['stage_duration'])
    if 'stages' in scenario:
        return float(sum(stage['duration'] for stage in scenario['stages']))
    return float(scenario['duration'])


def default_interval(seconds):
    """The time series step when a scenario sets none: at most SERIES_POINTS points, and at most 1 s
    unless the scenario is short (then a tenth of it)."""
    return max(seconds / SERIES_POINTS, min(1.0, seconds / 10.0))


def interval_of(scenario):
    if scenario.get('interval_seconds'):
        return float(scenario['interval_seconds'])
    seconds = default_interval(scenario_seconds(scenario))
    if scenario.get('executor') == 'rate-search':  # whole intervals per stage: a stage is judged at a boundary
        stage = float(scenario['stage_duration'])
        return stage / max(1, math.ceil(stage / seconds - EPS))
    return seconds


def compress(scenarios, factor, max_seconds=None):
    """A copy of (valid) scenarios with every duration, window and interval divided by factor, and any
    scenario still longer than max_seconds shortened to it; rates, VUs and thresholds' limits stay.
    Each scenario records ``compressed: {factor, production_seconds}``. ValueError on invalid input."""
    problems = validate_scenarios(scenarios)
    bad = out_of_range('load_compress_factor', factor)
    if bad:
        problems.append('factor: %s' % bad)
    if max_seconds is not None and out_of_range('load_duration_seconds', max_seconds):
        problems.append('max_seconds: %s' % out_of_range('load_duration_seconds', max_seconds))
    if problems:
        raise ValueError('; '.join(problems))
    result = {}
    for name, scenario in scenarios.items():
        scenario = copy.deepcopy(scenario)
        seconds = scenario_seconds(scenario)
        own = max(float(factor), seconds / max_seconds if max_seconds else 0.0)
        # pinned: the default would not scale with the duration (windows must stay whole intervals)
        interval = interval_of(scenario) / own
        if 'duration' in scenario:
            scenario['duration'] = scenario['duration'] / own
        for stage in scenario.get('stages') or ():
            stage['duration'] = stage['duration'] / own
        if 'stage_duration' in scenario:
            scenario['stage_duration'] = scenario['stage_duration'] / own
        if isinstance(scenario.get('recovery'), dict) and 'after_seconds' in scenario['recovery']:
            scenario['recovery']['after_seconds'] = scenario['recovery']['after_seconds'] / own
        for threshold in scenario.get('thresholds') or ():
            if 'window_seconds' in threshold:
                threshold['window_seconds'] = threshold['window_seconds'] / own
        scenario['interval_seconds'] = interval
        before = scenario.get('compressed') or {}
        scenario['compressed'] = dict(factor=own * before.get('factor', 1.0),
                                      production_seconds=before.get('production_seconds', seconds))
        result[name] = scenario
    return result


# ================================================================================ validation

def _shown(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'


def _keys(item, path, required, optional, problems, what, limits=KEY_LIMITS):
    """False (with the problem) when item is not a mapping; else the unknown and missing keys added."""
    if not isinstance(item, dict):
        problems.append('%s: must be a mapping (%s), got %s' % (path, what, _shown(item)))
        return False
    allowed = tuple(required) + tuple(optional)
    unknown = sorted(str(key) for key in item if key not in allowed)
    if unknown:
        problems.append('%s: unknown key %s (allowed: %s)' % (path, ', '.join(unknown), ', '.join(allowed)))
    for key in required:
        if key not in item:
            limit = limits.get(key)
            problems.append('%s.%s: missing (%s)' % (path, key, '%s in %s' % (
                'an integer' if LIMITS[limit].integer else 'a number', describe(limit)) if limit else what))
    return True


def _number(item, key, limit, path, problems):
    if key in item:
        bad = out_of_range(limit, item[key])
        if bad:
            problems.append('%s.%s: %s' % (path, key, bad))
            return False
    return True


def validate_scenarios(data, where=VARIABLE):
    """Every problem of the scenarios mapping, each naming its key path and the allowed range, e.g.
    'readiness_load_scenarios.soak.duration: must be a number in (0, 604,800] seconds, got inf'."""
    if not isinstance(data, dict) or not data:
        return ['%s: must be a mapping of 1 to %d scenario names to scenarios, got %s'
                % (where, MAX_LOAD_SCENARIOS, _shown(data))]
    if len(data) > MAX_LOAD_SCENARIOS:
        return ['%s: %d scenarios, at most %d' % (where, len(data), MAX_LOAD_SCENARIOS)]
    problems = []
    for name, scenario in data.items():
        problems += scenario_problems(name, scenario, where)
    return problems


def scenario_problems(name, scenario, where=VARIABLE):
    """Every problem of one scenario (see validate_scenarios)."""
    path = '%s.%s' % (where, name) if where else str(name)
    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        return ['%s: a scenario name is 1 to 64 letters, digits, ".", "_" or "-", starting with a letter or digit'
                % path]
    executor = scenario.get('executor') if isinstance(scenario, dict) else None
    if not isinstance(scenario, dict) or executor not in EXECUTORS:
        return ['%s.executor: must be one of %s, got %s' % (path, ', '.join(EXECUTORS), _shown(executor))
                if isinstance(scenario, dict) else
                '%s: must be a mapping with an executor (%s), got %s' % (path, ', '.join(EXECUTORS), _shown(scenario))]
    _model, required, optional = EXECUTORS[executor]
    problems = []
    limits = dict(KEY_LIMITS, **EXECUTOR_KEY_LIMITS.get(executor, {}))
    _keys(scenario, path, ('executor',) + required, optional + COMMON_KEYS, problems,
          'a condition {metric, comparator, threshold} or a list of them' if executor == 'rate-search' else
          'a list of 1 to %d stages {duration, target}' % MAX_LOAD_STAGES, limits)
    numbers_ok = all([_number(scenario, key, limits[key], path, problems)
                      for key in required + optional + ('interval_seconds', 'payload_bytes', 'connections')
                      if key in limits])
    _common_problems(scenario, path, problems)
    if 'stages' in required:
        stages_ok = _stage_problems(scenario, executor, path, problems, numbers_ok)
    elif executor == 'rate-search':
        stages_ok = _search_problems(scenario, path, problems, numbers_ok)
    else:
        stages_ok = True
    compressed = scenario.get('compressed')
    if compressed is not None and _keys(compressed, path + '.compressed', COMPRESSED_KEYS, (), problems,
                                        '{factor, production_seconds}'):
        _number(compressed, 'factor', 'load_compress_factor', path + '.compressed', problems)
        _number(compressed, 'production_seconds', 'load_duration_seconds', path + '.compressed', problems)
    if not (numbers_ok and stages_ok and all(key in scenario for key in required)):
        if 'recovery' in scenario:
            _recovery_problems(scenario['recovery'], path, None, problems)
        _threshold_problems(scenario.get('thresholds', []), path, None, None, problems)
        return problems
    seconds, interval = scenario_seconds(scenario), interval_of(scenario)
    if seconds / interval > MAX_LOAD_INTERVALS + EPS:
        problems.append('%s.interval_seconds: %g s gives %d intervals over %g s, at most %d' % (
            path, interval, math.ceil(seconds / interval - EPS), seconds, MAX_LOAD_INTERVALS))
    if executor == 'rate-search' and 'interval_seconds' in scenario:
        per_stage = float(scenario['stage_duration']) / interval
        if per_stage < 1 - 1e-6 or abs(per_stage - round(per_stage)) > 1e-6:
            problems.append('%s.interval_seconds: %g s must divide stage_duration (%g s) into whole intervals'
                            % (path, interval, scenario['stage_duration']))
    if 'recovery' in scenario:
        _recovery_problems(scenario['recovery'], path, seconds, problems)
    _threshold_problems(scenario.get('thresholds', []), path, seconds, interval, problems)
    return problems


def _condition_problems(item, where, required, optional, what, problems):
    """{metric, comparator, threshold, ...}: a knee or a recovery condition."""
    if not _keys(item, where, required, optional, problems, what):
        return False
    ok = all(key in item for key in required)
    metric = item.get('metric')
    if 'metric' in item and metric not in METRICS:
        problems.append('%s.metric: must be one of %s, got %s' % (where, ', '.join(METRICS), _shown(metric)))
        ok = False
    elif metric in METRICS:
        ok = _number(item, 'threshold', METRICS[metric][0], where, problems) and ok
    if 'comparator' in item and item['comparator'] not in COMPARATORS:
        problems.append('%s.comparator: must be one of %s, got %s' % (
            where, ' '.join(COMPARATORS), _shown(item['comparator'])))
        ok = False
    return ok


def _common_problems(scenario, path, problems):
    """connect and slow_consumer (payload_bytes and connections are numbers, checked with the others)."""
    if 'connect' in scenario and scenario['connect'] not in CONNECT_MODES:
        problems.append('%s.connect: must be one of %s, got %s' % (path, ', '.join(CONNECT_MODES),
                                                                  _shown(scenario['connect'])))
    slow = scenario.get('slow_consumer')
    where = path + '.slow_consumer'
    if 'slow_consumer' in scenario and _keys(slow, where, SLOW_CONSUMER_KEYS, (), problems,
                                             '{subject, pending_limit, delay_ms}'):
        subject = slow.get('subject')
        if 'subject' in slow and (not isinstance(subject, str) or not subject.strip() or len(subject) > 255
                                  or any(c.isspace() for c in subject)):
            problems.append('%s.subject: must be a NATS subject (wildcards allowed), got %s' % (where, _shown(subject)))
        _number(slow, 'pending_limit', 'load_slow_pending_limit', where, problems)
        _number(slow, 'delay_ms', 'load_slow_delay_ms', where, problems)


def _search_problems(scenario, path, problems, numbers_ok):
    """rate-search: exactly one of factor and step, start_rate <= max_rate, at most MAX_LOAD_STAGES
    stages, the total duration in range, and the knee condition(s)."""
    knee = scenario.get('knee')
    conditions = knee if isinstance(knee, list) else [knee]
    where = path + '.knee'
    knee_ok = True
    if 'knee' in scenario:
        if isinstance(knee, list) and not 1 <= len(knee) <= MAX_KNEE_CONDITIONS:
            problems.append('%s: must be a condition {metric, comparator, threshold} or a list of 1 to %d, got %d'
                            % (where, MAX_KNEE_CONDITIONS, len(knee)))
            knee_ok = False
        else:
            for index, condition in enumerate(conditions):
                at = '%s[%d]' % (where, index) if isinstance(knee, list) else where
                knee_ok = _condition_problems(condition, at, KNEE_KEYS, KNEE_OPTIONAL,
                                              '{metric, comparator, threshold, min_samples}', problems) and knee_ok
                if isinstance(condition, dict):
                    knee_ok = _number(condition, 'min_samples', 'load_min_samples', at, problems) and knee_ok
    if ('factor' in scenario) == ('step' in scenario):
        problems.append('%s: exactly one of factor (each stage\'s rate times the previous) and step (plus the '
                        'previous) is needed, got %s' % (path, 'both' if 'factor' in scenario else 'neither'))
        return False
    if not numbers_ok or not all(key in scenario for key in ('start_rate', 'max_rate', 'stage_duration')):
        return False
    if scenario['start_rate'] > scenario['max_rate']:
        problems.append('%s.max_rate: %g is below start_rate (%g)' % (path, scenario['max_rate'],
                                                                      scenario['start_rate']))
        return False
    rates = search_rates(scenario)
    if len(rates) > MAX_LOAD_STAGES:
        problems.append('%s: from start_rate %g to max_rate %g takes more than %d stages' % (
            path, scenario['start_rate'], scenario['max_rate'], MAX_LOAD_STAGES))
        return False
    bad = out_of_range('load_duration_seconds', len(rates) * scenario['stage_duration'])
    if bad:
        problems.append('%s.stage_duration: the %d stages\' total duration %s' % (path, len(rates), bad))
        return False
    return knee_ok


def _recovery_problems(recovery, path, seconds, problems):
    where = path + '.recovery'
    if not _condition_problems(recovery, where, RECOVERY_KEYS, (), '{metric, comparator, threshold, after_seconds}',
                               problems):
        if isinstance(recovery, dict):
            _number(recovery, 'after_seconds', 'load_recovery_after_seconds', where, problems)
        return
    if _number(recovery, 'after_seconds', 'load_recovery_after_seconds', where, problems) and seconds is not None \
            and recovery['after_seconds'] >= seconds - EPS:
        problems.append('%s.after_seconds: %g s is not before the end of the scenario (%g s)' % (
            where, recovery['after_seconds'], seconds))


def _stage_problems(scenario, executor, path, problems, start_ok):
    stages = scenario.get('stages')
    if 'stages' not in scenario:
        return False  # reported as missing
    if not isinstance(stages, list) or not 1 <= len(stages) <= MAX_LOAD_STAGES:
        problems.append('%s.stages: must be a list of 1 to %d stages {duration, target}, got %s' % (
            path, MAX_LOAD_STAGES, _shown(stages) if not isinstance(stages, list) else '%d' % len(stages)))
        return False
    ok = True
    for index, stage in enumerate(stages):
        where = '%s.stages[%d]' % (path, index)
        if not _keys(stage, where, STAGE_KEYS, (), problems, '{duration, target}'):
            ok = False
            continue
        ok = _number(stage, 'duration', 'load_stage_duration_seconds', where, problems) and ok
        ok = _number(stage, 'target', STAGE_TARGET[executor], where, problems) and ok
        ok = ok and all(key in stage for key in STAGE_KEYS)
    if not ok or not start_ok:
        return False
    bad = out_of_range('load_duration_seconds', sum(stage['duration'] for stage in stages))
    if bad:
        problems.append('%s.stages: the stages\' total duration %s' % (path, bad))
        return False
    start = scenario.get('start_vus' if executor == 'ramping-vus' else 'start_rate', 0)
    if Profile(start, stages).integral(math.inf) <= 0:
        problems.append('%s.stages: every level is 0, nothing would be sent' % path)
        return False
    return True


def _threshold_problems(thresholds, path, seconds, interval, problems):
    """Thresholds' problems; seconds and interval (None when the scenario's are unusable) bound windows."""
    if not isinstance(thresholds, list) or len(thresholds) > MAX_LOAD_THRESHOLDS:
        problems.append('%s.thresholds: must be a list of at most %d thresholds, got %s' % (
            path, MAX_LOAD_THRESHOLDS, _shown(thresholds) if not isinstance(thresholds, list) else len(thresholds)))
        return
    names = set()
    for index, threshold in enumerate(thresholds):
        where = '%s.thresholds[%d]' % (path, index)
        if not _keys(threshold, where, THRESHOLD_KEYS, THRESHOLD_OPTIONAL, problems,
                     '{name, metric, comparator, threshold, window_seconds, abort, min_samples}'):
            continue
        name = threshold.get('name')
        if 'name' in threshold and (not isinstance(name, str) or not name.strip() or len(name) > 64):
            problems.append('%s.name: must be a text of 1 to 64 characters, got %s' % (where, _shown(name)))
        elif name in names:
            problems.append('%s.name: %s names another threshold of the scenario too' % (where, name))
        names.add(name if isinstance(name, str) else None)
        metric = threshold.get('metric')
        if 'metric' in threshold and metric not in METRICS:
            problems.append('%s.metric: must be one of %s, got %s' % (where, ', '.join(METRICS), _shown(metric)))
        elif metric in METRICS:
            _number(threshold, 'threshold', METRICS[metric][0], where, problems)
        if 'comparator' in threshold and threshold['comparator'] not in COMPARATORS:
            problems.append('%s.comparator: must be one of %s (the PASS condition), got %s' % (
                where, ' '.join(COMPARATORS), _shown(threshold['comparator'])))
        if 'abort' in threshold and not isinstance(threshold['abort'], bool):
            problems.append('%s.abort: must be true or false, got %s' % (where, _shown(threshold['abort'])))
        _number(threshold, 'min_samples', 'load_min_samples', where, problems)
        window = threshold.get('window_seconds')
        if _number(threshold, 'window_seconds', 'load_window_seconds', where, problems) and window is not None \
                and seconds is not None:
            if window > seconds + EPS:
                problems.append('%s.window_seconds: %g s is longer than the scenario (%g s)' % (where, window, seconds))
            elif window < interval - EPS:
                problems.append('%s.window_seconds: %g s is shorter than the scenario\'s interval_seconds (%g s)'
                                % (where, window, interval))
            elif window / interval > MAX_WINDOW_INTERVALS + 0.5:
                problems.append('%s.window_seconds: %g s is %d intervals of %g s, at most %d' % (
                    where, window, round(window / interval), interval, MAX_WINDOW_INTERVALS))


# ================================================================================ schedules

class Profile:
    """A level over time, piecewise linear: `start` at 0, then each stage moves linearly to its target
    over its duration (a stage of duration 0 jumps). The VUs of ramping-vus, the rate of
    ramping-arrival-rate."""

    def __init__(self, start, stages):
        self.times, self.levels = [0.0], [float(start)]
        for stage in stages:
            self.times.append(self.times[-1] + float(stage['duration']))
            self.levels.append(float(stage['target']))
        self.duration = self.times[-1]
        self.cumulative = [0.0]  # the integral up to each point
        for i in range(1, len(self.times)):
            self.cumulative.append(self.cumulative[-1] + (self.times[i] - self.times[i - 1])
                                   * (self.levels[i - 1] + self.levels[i]) / 2.0)
        self.peak = max(self.levels)

    def _segment(self, t):
        """(i, slope) of the segment [times[i], times[i+1]) holding t; i is the last point when t is past it."""
        i = max(0, bisect.bisect_right(self.times, t) - 1)
        if i >= len(self.times) - 1:
            return len(self.times) - 1, 0.0
        return i, (self.levels[i + 1] - self.levels[i]) / (self.times[i + 1] - self.times[i])

    def level(self, t):
        i, slope = self._segment(t)
        return self.levels[i] + slope * (t - self.times[i]) if t > self.times[i] else self.levels[i]

    def integral(self, t):
        """The level integrated from 0 to t (requests due by t, for a rate)."""
        t = min(max(t, 0.0), self.duration)
        i, slope = self._segment(t)
        tau = t - self.times[i]
        return self.cumulative[i] + self.levels[i] * tau + slope * tau * tau / 2.0

    def time_of(self, n):
        """The earliest time at which the integral reaches n (n within the total)."""
        k = bisect.bisect_right(self.cumulative, n) - 1
        if k >= len(self.times) - 1:
            return self.duration
        m, r0 = n - self.cumulative[k], self.levels[k]
        slope = (self.levels[k + 1] - r0) / (self.times[k + 1] - self.times[k])
        # r0 t + slope t^2 / 2 = m, solved in the form that stays exact for slope 0 and r0 0
        denominator = r0 + math.sqrt(max(0.0, r0 * r0 + 2.0 * slope * m))
        tau = 2.0 * m / denominator if denominator > 0 else 0.0
        return self.times[k] + min(tau, self.times[k + 1] - self.times[k])

    def first_time_at_least(self, level, t):
        """The earliest time >= t at which the level reaches `level`, None when it does not before the end."""
        if self.level(t) >= level - EPS:
            return t
        for j in range(max(0, bisect.bisect_right(self.times, t) - 1), len(self.times) - 1):
            a, b = max(self.times[j], t), self.times[j + 1]
            v0, v1 = self.level(a) if b > a else self.levels[j], self.levels[j + 1]
            if v1 >= level - EPS:
                return a if v0 >= level - EPS else a + (level - v0) / (v1 - v0) * (b - a)
        return None


class ArrivalSchedule:
    """Intended send times of ramping-arrival-rate, with fleet_probe.Schedule's interface (total,
    window, offset, due) so fleet_probe.generate drives it: request i is due when the rate's integral
    reaches i."""

    def __init__(self, profile):
        self.profile = profile
        self.window = profile.duration
        self.total = int(math.floor(profile.integral(profile.duration) + EPS))

    def offset(self, slot):
        return self.profile.time_of(slot)

    def due(self, elapsed):
        if elapsed < 0:
            return 0
        return min(self.total, int(math.floor(self.profile.integral(elapsed) + EPS)) + 1)


# ================================================================================ measuring

class _Tally:
    """Counts and latencies of a stretch of the run: an interval, a window, the whole run."""

    def __init__(self, digits=WINDOW_DIGITS):
        self.sent = self.answered = self.errors = self.dropped = 0
        self.latency = Latency(digits, keep_samples=False)

    def add(self, other):
        self.sent += other.sent
        self.answered += other.answered
        self.errors += other.errors
        self.dropped += other.dropped
        self.latency.merge(other.latency)
        return self


def metric_value(tally, metric, seconds):
    """(value, samples) of metric over tally and its length in seconds; value None without data."""
    done = tally.answered + tally.errors
    if metric == 'error_rate_pct':
        share = ratio(tally.errors, done, 8)
        return (None if share is None else round(100.0 * share, 6)), done
    if metric in ('dropped', 'dropped_pct'):
        due = tally.sent + tally.dropped
        if metric == 'dropped':
            return tally.dropped, due
        share = ratio(tally.dropped, due, 8)
        return (None if share is None else round(100.0 * share, 6)), due
    if metric == 'throughput_rps':
        return (round(tally.answered / seconds, 3) if seconds > 0 else None), done
    latency = tally.latency
    if metric == 'latency_max_ms':
        return (round(latency.max_s * 1000.0, 3) if latency.count else None), latency.count
    return latency.percentile_ms(float(metric[len('latency_p'):-len('_ms')])), latency.count


class _Interval:
    def __init__(self, index, start, seconds):
        self.index, self.start, self.seconds = index, start, seconds
        self.tally = _Tally()
        self.in_flight = self.vus = None

    def point(self):
        latency = self.tally.latency
        percentiles = latency.percentiles_ms((50, 99))
        return dict(t=round(self.start, 3), seconds=round(self.seconds, 3), sent=self.tally.sent,
                    answered=self.tally.answered, errors=self.tally.errors, dropped=self.tally.dropped,
                    in_flight=self.in_flight, vus=self.vus, p50_ms=percentiles[50], p99_ms=percentiles[99],
                    max_ms=round(latency.max_s * 1000.0, 3) if latency.count else None)


class _Window:
    """The last k intervals merged, sliding one interval at a time with a few merges each instead of k
    (the two-stack queue: `front` holds, oldest last, each older interval merged with those after it
    up to the newest of the front; `back_tally` the intervals pushed since)."""

    def __init__(self, k):
        self.k = k
        self.front, self.back = [], []  # front: (interval, merge from it to the front's newest)
        self.back_tally = _Tally()

    def push(self, interval):
        self.back.append(interval)
        self.back_tally.add(interval.tally)
        if len(self.front) + len(self.back) > self.k:
            if not self.front:
                merged = _Tally()
                for item in reversed(self.back):
                    merged = _Tally().add(merged).add(item.tally)
                    self.front.append((item, merged))
                self.back, self.back_tally = [], _Tally()
            self.front.pop()

    def full(self):
        return len(self.front) + len(self.back) == self.k

    def merged(self):
        """(tally, seconds, start, end) of the window."""
        tally = _Tally().add(self.back_tally)
        if self.front:
            tally.add(self.front[-1][1])
        oldest = self.front[-1][0] if self.front else self.back[0]
        newest = self.back[-1] if self.back else self.front[0][0]
        end = newest.start + newest.seconds
        return tally, end - oldest.start, oldest.start, end


class _Judge:
    """One threshold: its whole-run value, its windows, and the worst breach seen."""

    def __init__(self, spec, interval):
        self.spec = spec
        self.holds = COMPARATORS[spec['comparator']]
        self.limit = spec['threshold']
        self.min_samples = spec.get('min_samples', MIN_SAMPLES)
        window = spec.get('window_seconds')
        self.k = max(1, int(round(window / interval))) if window else None
        self.judged = self.breached = self.skipped = 0
        self.worst = self.first_breach = None
        self.breach = None  # (measured, judged_by) of the worst breach during the run

    def worse(self, a, b):
        return a > b if self.spec['comparator'] in ('<', '<=') else a < b

    def note_breach(self, value, judged_by):
        if self.breach is None or self.worse(value, self.breach[0]):
            self.breach = (value, judged_by)

    def window(self, value, samples, start, end):
        """Judge one window; the window's dict when it breached, else None."""
        if value is None or samples < self.min_samples:
            self.skipped += 1
            return None
        self.judged += 1
        span = dict(start_s=round(start, 3), end_s=round(end, 3), measured=value)
        if self.worst is None or self.worse(value, self.worst['measured']):
            self.worst = span
        if self.holds(value, self.limit):
            return None
        self.breached += 1
        self.first_breach = self.first_breach or span
        self.note_breach(value, 'window %s-%s s' % (_num(span['start_s']), _num(span['end_s'])))
        return span

    def result(self, whole_value, interval):
        spec = self.spec
        measured, judged_by = whole_value, 'whole run'
        if whole_value is not None and not self.holds(whole_value, self.limit):
            self.note_breach(whole_value, 'whole run')
        if self.breach is not None:
            measured, judged_by = self.breach
        windows = None
        if self.k:
            windows = dict(seconds=round(self.k * interval, 6), judged=self.judged, breached=self.breached,
                           skipped=self.skipped, worst=self.worst, first_breach=self.first_breach)
        return dict(name=spec['name'], metric=spec['metric'], comparator=spec['comparator'], threshold=self.limit,
                    unit=METRICS[spec['metric']][1], window_seconds=spec.get('window_seconds'),
                    abort=bool(spec.get('abort')), min_samples=self.min_samples, measured=measured,
                    passed=measured is not None and self.holds(measured, self.limit),
                    judged_by=judged_by if measured is not None else 'no data', whole_run=whole_value,
                    windows=windows)


def _num(value):
    return '{:,.10g}'.format(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


# ================================================================================ the run

class _Run:
    def __init__(self, name, scenario, send, clock, sleep, wall, grace, open_connection=None, payload_bytes=None):
        self.name, self.scenario, self.send = name, scenario, send
        self.clock, self.sleep, self.wall, self.grace = clock, sleep, wall, float(grace)
        self.executor = scenario['executor']
        self.model = EXECUTORS[self.executor][0]
        self.duration = scenario_seconds(scenario)
        self.interval = interval_of(scenario)
        self.n = max(1, int(math.ceil(self.duration / self.interval - EPS)))
        self.judges = [_Judge(spec, self.interval) for spec in scenario.get('thresholds') or ()]
        self.windows = {judge.k: _Window(judge.k) for judge in self.judges if judge.k}
        self.whole = _Tally(digits=3)
        self.open = {}          # index -> _Interval not closed yet
        self.series = []
        self.next_close = 0
        self.tail = None        # after an abort: the interval everything later counts in
        self.in_flight = self.max_in_flight = 0
        self.error_replies = self.timeouts = self.interrupted = 0
        self.failures = collections.Counter()
        self.dropped = dict(max_vus=0, late=0)
        self.busy_s = 0.0       # closed: seconds VUs spent awaiting send
        self.stopping = False
        self.stopped_at = None
        self.abort = None
        self.abort_event = asyncio.Event()
        self.tasks = set()
        self.lag = Latency(keep_samples=False)
        if self.model == OPEN:
            self.max_vus = int(scenario['max_vus'])
            if self.executor == 'constant-arrival-rate':
                self.schedule = Schedule(scenario['rate'], scenario['duration'], 1)
            elif self.executor == 'rate-search':
                self.rates = search_rates(scenario)
                self.schedule = ArrivalSchedule(Profile(self.rates[0], search_stages(scenario)))
            else:
                self.schedule = ArrivalSchedule(Profile(scenario.get('start_rate', 0), scenario['stages']))
        else:
            if self.executor == 'constant-vus':
                self.vus = Profile(scenario['vus'], [dict(duration=scenario['duration'], target=scenario['vus'])])
            else:
                self.vus = Profile(scenario.get('start_vus', 0), scenario['stages'])
            self.max_vus = int(math.floor(self.vus.peak + EPS))
        self.index = 0
        # payload: what one request carries (the scenario's payload_bytes, else what the caller says it sends)
        self.payload_bytes = scenario.get('payload_bytes', payload_bytes)
        # connections: opened by open_connection(number), ahead of the clock or all at once at its start
        self.open_connection = open_connection
        self.n_connections = int(scenario.get('connections', 1))
        self.connect_mode = scenario.get('connect', 'ahead')
        self.connections = []           # ahead: the ones that opened
        self.connecting = None          # storm: one task per connection
        self.connect_latency = Latency(keep_samples=False)
        self.connect_failures = collections.Counter()
        self.per_connection = [0] * self.n_connections
        # rate-search: one tally per stage (intervals merged as they close), judged at the stage's end
        self.stage_seconds = float(scenario['stage_duration']) if self.executor == 'rate-search' else None
        self.stage_tally = None
        self.stages_run = []
        self.knee = None
        # recovery: (start, end, value) of each interval's metric
        self.recovery = scenario.get('recovery')
        self.recovery_points = []

    # -- bookkeeping ------------------------------------------------------------------------

    def _interval(self, now):
        if self.tail is not None:
            return self.tail
        index = int(max(0.0, now - self.t0) / self.interval + EPS)  # on a boundary: the later interval
        index = min(max(index, self.next_close), self.n - 1)
        if index not in self.open:
            self.open[index] = self._new_interval(index)
        return self.open[index]

    def _new_interval(self, index):
        start = index * self.interval
        return _Interval(index, start, min(self.duration, start + self.interval) - start)

    def _count(self, now, field, amount=1):
        for tally in (self._interval(now).tally, self.whole):
            setattr(tally, field, getattr(tally, field) + amount)

    def _started(self):
        self._count(self.clock(), 'sent')
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)

    async def _request(self, index, since):
        """Await one send (already counted by _started); latency from `since`."""
        try:
            result = await self._send(index)
        except asyncio.CancelledError:
            self.interrupted += 1
            self._count(self.clock(), 'errors')
            raise
        except Exception as exc:  # a timeout, no responders, a broken connection: the request failed
            kind = type(exc).__name__
            self.failures[kind if kind in self.failures or len(self.failures) < MAX_FAILURE_KINDS else 'other'] += 1
            if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
                self.timeouts += 1
            self._count(self.clock(), 'errors')
        else:
            now = self.clock()
            if result is False:
                self.error_replies += 1
                self._count(now, 'errors')
            else:
                self._count(now, 'answered')
            self._interval(now).tally.latency.record(now - since)
            self.whole.latency.record(now - since)
        finally:
            self.in_flight -= 1
            if self.model == CLOSED:
                self.busy_s += self.clock() - since

    # -- connections ------------------------------------------------------------------------

    async def _open(self, number, since):
        try:
            connection = await self.open_connection(number)
        except Exception as exc:  # refused, timed out, unreachable: counted by kind, the run goes on
            kind = type(exc).__name__
            self.connect_failures[kind if kind in self.connect_failures or len(self.connect_failures) <
                                  MAX_FAILURE_KINDS else 'other'] += 1
            raise
        self.connect_latency.record(self.clock() - since)
        return connection

    async def _connect_ahead(self):
        started = self.clock()
        opened = await asyncio.gather(*(self._open(number, started) for number in range(self.n_connections)),
                                      return_exceptions=True)
        self.connections = [item for item in opened if not isinstance(item, BaseException)]
        if not self.connections:
            raise opened[0]
        self.per_connection = [0] * len(self.connections)

    async def _send(self, index):
        if self.open_connection is None:
            return await self.send(index)
        if self.connecting is not None:  # storm: request i waits for connection i mod N (or fails with it)
            number = index % self.n_connections
            connection = await asyncio.shield(self.connecting[number])
        else:
            number = index % len(self.connections)
            connection = self.connections[number]
        self.per_connection[number] += 1
        return await self.send(index, connection)

    # -- open model -------------------------------------------------------------------------

    async def _due(self, slot, intended):
        if self.stopping:
            return
        if self.in_flight >= self.max_vus:
            self.dropped['max_vus'] += 1
            self._count(self.clock(), 'dropped')
            return
        self._started()
        task = asyncio.ensure_future(self._request(slot, intended))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- closed model -----------------------------------------------------------------------

    async def _vu(self, number):
        while not self.stopping:
            now = self.clock()
            if now >= self.end_at:
                return
            if self.vus.level(now - self.t0) < number + 1 - EPS:  # not (or no longer) active
                wake = self.vus.first_time_at_least(number + 1, now - self.t0)
                if wake is None or self.t0 + wake >= self.end_at:
                    return
                self.idle.add(number)
                try:
                    await self.sleep(max(self.t0 + wake - now, 1e-6))
                finally:
                    self.idle.discard(number)
                continue
            index, self.index = self.index, self.index + 1
            self._started()
            await self._request(index, self.clock())

    # -- intervals, windows, abort ----------------------------------------------------------

    def _close(self, index, live):
        interval = self.open.pop(index, None) or self._new_interval(index)
        interval.in_flight = self.in_flight
        if self.recovery is not None:
            value = metric_value(interval.tally, self.recovery['metric'], interval.seconds)[0]
            self.recovery_points.append((interval.start, interval.start + interval.seconds, value))
        if self.stage_seconds is not None and len(self.stages_run) < len(self.rates):
            self.stage_tally = (self.stage_tally or _Tally()).add(interval.tally)
            end = interval.start + interval.seconds
            if abs(end / self.stage_seconds - round(end / self.stage_seconds)) < 1e-6:
                self._judge_stage(len(self.stages_run))
        if self.model == CLOSED:
            interval.vus = int(math.floor(self.vus.level(min(interval.start + interval.seconds, self.duration)) + EPS))
        self.series.append(interval.point())
        self.next_close = index + 1
        merged = {}
        for window in self.windows.values():
            window.push(interval)
            if window.full():
                merged[window.k] = window.merged()
        breaches = []
        for judge in self.judges:
            if judge.k not in merged:
                continue
            tally, seconds, start, end = merged[judge.k]
            value, samples = metric_value(tally, judge.spec['metric'], seconds)
            breach = judge.window(value, samples, start, end)
            if breach and live and judge.spec.get('abort'):
                breaches.append((judge, breach))
        return interval, breaches

    def _abort_check(self, interval, breaches):
        now = self.clock()
        elapsed = now - self.t0
        found = breaches[0] if breaches else None
        if found is None:
            for judge in self.judges:
                if not judge.spec.get('abort') or judge.k:
                    continue
                value, samples = metric_value(self.whole, judge.spec['metric'], elapsed)
                if value is not None and samples >= judge.min_samples and not judge.holds(value, judge.limit):
                    judge.note_breach(value, 'whole run at %s s (abort check)' % _num(round(elapsed, 3)))
                    found = (judge, None)
                    break
        if found is None:
            return False
        judge, window = found
        spec = judge.spec
        measured = window['measured'] if window else judge.breach[0]
        over = 'over the window %s-%s s' % (_num(window['start_s']), _num(window['end_s'])) if window else \
            'over the run so far'
        self.abort = dict(threshold=spec['name'], metric=spec['metric'], comparator=spec['comparator'],
                          limit=judge.limit, measured=measured, window=window, at_seconds=round(elapsed, 3),
                          reason='threshold %s: %s %s %s, the limit is %s %s' % (
                              spec['name'], spec['metric'], _num(measured), over, spec['comparator'],
                              _num(judge.limit)))
        self._stop(now, interval)
        return True

    def _stop(self, now, interval):
        """Stop sending now (an abort, a knee found): everything later counts in the interval just closed."""
        self.stopping, self.stopped_at = True, now  # nothing is sent after this
        self.tail = interval
        for other in sorted(self.open):
            interval.tally.add(self.open.pop(other).tally)
        self.abort_event.set()

    async def _monitor(self):
        for index in range(self.n - 1):
            await self.sleep(max(0.0, self.t0 + (index + 1) * self.interval - self.clock()))
            interval, breaches = self._close(index, live=True)
            if self._abort_check(interval, breaches):
                return
            if self.knee is not None:  # the search is over: nothing more is sent
                self._stop(self.clock(), interval)
                return

    def _judge_stage(self, stage):
        """A rate-search stage has ended: its figures, and whether a knee condition holds."""
        tally, seconds, rate = self.stage_tally, self.stage_seconds, self.rates[stage]
        self.stage_tally = None
        error_rate = metric_value(tally, 'error_rate_pct', seconds)[0]
        figures = dict(stage=stage, rate=rate, requests=tally.sent, achieved_rate=round(tally.sent / seconds, 3),
                       answered=tally.answered, p99_ms=tally.latency.percentile_ms(99.0), dropped=tally.dropped,
                       error_rate_pct=error_rate, knee=False)
        self.stages_run.append(figures)
        if self.knee is not None:
            return
        knee = self.scenario['knee']
        for condition in knee if isinstance(knee, list) else [knee]:
            value, samples = metric_value(tally, condition['metric'], seconds)
            if value is None or samples < condition.get('min_samples', 1):
                continue
            if COMPARATORS[condition['comparator']](value, condition['threshold']):
                figures['knee'] = True
                self.knee = dict(rate=rate, stage=stage, at_seconds=round((stage + 1) * seconds, 6),
                                 reason='%s %s %s %s at %s requests/s (stage %d)' % (
                                     condition['metric'], _num(value), condition['comparator'],
                                     _num(condition['threshold']), _num(rate), stage))
                return

    # -- the run ----------------------------------------------------------------------------

    async def _until(self, deadline):
        """Sleep until deadline, or until an abort."""
        timer = asyncio.ensure_future(self.sleep(max(0.0, deadline - self.clock())))
        aborted = asyncio.ensure_future(self.abort_event.wait())
        try:
            await asyncio.wait({timer, aborted}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
            aborted.cancel()

    async def _settle(self, tasks, deadline):
        """Wait for tasks until deadline, then cancel the rest."""
        pending = {task for task in tasks if not task.done()}
        if pending:
            timer = asyncio.ensure_future(self.sleep(max(0.0, deadline - self.clock())))
            waiter = asyncio.ensure_future(asyncio.wait(pending))
            await asyncio.wait({timer, waiter}, return_when=asyncio.FIRST_COMPLETED)
            timer.cancel()
            waiter.cancel()
        rest = [task for task in tasks if not task.done()]
        for task in rest:
            task.cancel()
        await asyncio.gather(*rest, return_exceptions=True)

    async def run(self):
        if self.open_connection is not None and self.connect_mode == 'ahead':
            await self._connect_ahead()
        self.wall0, self.t0 = self.wall(), self.clock()
        self.end_at = self.t0 + self.duration
        if self.open_connection is not None and self.connect_mode == 'storm':
            self.connecting = [asyncio.ensure_future(self._open(number, self.t0))
                               for number in range(self.n_connections)]
        try:
            return await self._run()
        finally:
            for task in self.connecting or ():
                task.cancel()
            if self.connecting:
                await asyncio.gather(*self.connecting, return_exceptions=True)

    async def _run(self):
        monitor = asyncio.ensure_future(self._monitor())
        if self.model == OPEN:
            workers = [asyncio.ensure_future(generate(self.schedule, self._due, self.t0, self.clock, self.sleep,
                                                      on_lag=self.lag.record))]
        else:
            self.idle = set()
            workers = [asyncio.ensure_future(self._vu(number)) for number in range(self.max_vus)]
        try:
            await self._until(self.end_at)
            self.stopping = True
            self.elapsed = max(0.0, (self.stopped_at if self.stopped_at is not None else self.end_at) - self.t0)
            if self.model == OPEN:
                workers[0].cancel()  # it ends with the window by itself; after an abort it must stop now
                await asyncio.gather(workers[0], return_exceptions=True)
                if not workers[0].cancelled() and workers[0].exception():
                    raise workers[0].exception()
                # due in the window (before the abort) but never sent: the generator fell behind
                self.scheduled = self.schedule.total if self.stopped_at is None else \
                    self.schedule.due(self.elapsed - EPS)
                late = max(0, self.scheduled - self.whole.sent - self.whole.dropped)
                if late:
                    self.dropped['late'] += late
                    self._count(self.clock(), 'dropped', late)
                waiting = set(self.tasks)
            else:
                for number, worker in enumerate(workers):
                    if number in self.idle:
                        worker.cancel()
                waiting = set(workers)
            await self._settle(waiting, self.clock() + self.grace)
            for worker in workers:
                if worker.done() and not worker.cancelled() and worker.exception():
                    raise worker.exception()
            # requests never started (cancelled before their first step) are interrupted too
            if self.in_flight:
                self.interrupted += self.in_flight
                self._count(self.clock(), 'errors', self.in_flight)
                self.in_flight = 0
        finally:
            monitor.cancel()
            for task in workers + list(self.tasks):
                task.cancel()
        if monitor.done() and not monitor.cancelled() and monitor.exception():
            raise monitor.exception()
        self.ended = self.clock()
        return self.record()

    # -- the record -------------------------------------------------------------------------

    def _finish_series(self):
        if self.tail is not None:
            self.tail.in_flight = 0
            self.series[-1] = self.tail.point()  # it took what came after the abort
            return
        for index in range(self.next_close, self.n):
            self._close(index, live=False)

    def _stress_fields(self, whole, elapsed):
        """payload_bytes, bytes_sent_per_s, connections; knee and stages_run (rate-search); recovery."""
        size = self.payload_bytes
        fields = dict(payload_bytes=size, bytes_sent=whole.sent * size if size is not None else None,
                      bytes_sent_per_s=round(whole.sent * size / elapsed, 3) if size is not None and elapsed > 0
                      else None, connections=None)
        if self.open_connection is not None:
            fields['connections'] = dict(
                count=self.n_connections, connect=self.connect_mode, opened=self.connect_latency.count,
                failed=sum(self.connect_failures.values()), failures=dict(self.connect_failures),
                connect_ms=self.connect_latency.summary(PERCENTILES), requests_per_connection=list(self.per_connection))
        if self.executor == 'rate-search':
            fields.update(knee=self.knee, stages_run=self.stages_run, knee_note=None if self.knee else (
                'no knee up to max_rate %s requests/s' % _num(self.rates[-1]) if len(self.stages_run) == len(self.rates)
                else 'no knee in the %d stage(s) run before the stop' % len(self.stages_run)))
        if self.recovery is not None:
            fields['recovery'] = recovery_of(self.recovery, self.recovery_points)
        return fields

    def record(self):
        self._finish_series()
        whole, elapsed = self.whole, self.elapsed
        scheduled = requested = None
        if self.model == OPEN:
            scheduled = self.scheduled
            requested = round(scheduled / elapsed, 3) if elapsed > 0 else None
        achieved = round(whole.sent / elapsed, 3) if elapsed > 0 else None
        thresholds = [judge.result(metric_value(whole, judge.spec['metric'], elapsed)[0], self.interval)
                      for judge in self.judges]
        error_rate = metric_value(whole, 'error_rate_pct', elapsed)[0] if whole.sent else None
        result = dict(
            scenario=self.name, model=self.model, executor=self.executor, config=copy.deepcopy(self.scenario),
            started=_utc(self.wall0), ended=_utc(self.wall0 + (self.ended - self.t0)),
            duration_seconds=self.duration, elapsed_seconds=round(elapsed, 3),
            requested_rate=requested, achieved_rate=achieved,
            rate_ratio=ratio(achieved, requested, 4) if requested else None,
            rate_reached=(whole.dropped == 0) if self.model == OPEN else None,
            throughput_rps=round(whole.answered / elapsed, 3) if elapsed > 0 else None,
            scheduled=scheduled, requests=whole.sent, answered=whole.answered, errors=whole.errors,
            error_replies=self.error_replies, failures=dict(self.failures), timeouts=self.timeouts,
            interrupted=self.interrupted, error_rate_pct=error_rate, dropped=whole.dropped,
            dropped_reasons=dict(self.dropped), max_vus=self.max_vus, max_in_flight=self.max_in_flight,
            concurrency=None, send_lag_ms=None,
            latency_ms=whole.latency.summary(PERCENTILES),
            latency_from='intended send time' if self.model == OPEN else 'send',
            thresholds=thresholds, thresholds_passed=all(t['passed'] for t in thresholds),
            aborted=self.abort is not None, abort=self.abort,
            interval_seconds=self.interval, series=self.series)
        result.update(self._stress_fields(whole, elapsed))
        if self.model == CLOSED:
            result['concurrency'] = dict(
                requested_mean=round(self.vus.integral(elapsed) / elapsed, 3) if elapsed > 0 else None,
                achieved_mean=round(self.busy_s / elapsed, 3) if elapsed > 0 else None)
        else:
            lag = self.lag.summary()
            result['send_lag_ms'] = dict(p50=lag['p50'], p99=lag['p99'], max=lag['max'])
        result['summary'] = summary_line(result)
        return result


def recovery_of(spec, points):
    """The recovery record: from after_seconds, the first interval from which every interval satisfies the
    condition (an interval without data does not); seconds = that interval's end - after_seconds."""
    holds = COMPARATORS[spec['comparator']]
    after = float(spec['after_seconds'])
    judged = [(start, end, value) for start, end, value in points if start >= after - EPS]
    first = None
    for start, end, value in reversed(judged):
        if value is None or not holds(value, spec['threshold']):
            break
        first = (start, end, value)
    result = dict(metric=spec['metric'], comparator=spec['comparator'], threshold=spec['threshold'],
                  after_seconds=after, judged_intervals=len(judged), recovered=first is not None,
                  seconds=round(first[1] - after, 6) if first else None,
                  at_seconds=round(first[1], 6) if first else None)
    if first is None:
        result['note'] = ('no interval after %s s to judge' % _num(after)) if not judged else \
            'the last interval still fails %s %s %s' % (spec['metric'], spec['comparator'], _num(spec['threshold']))
    return result


async def run_scenario(scenario, send, clock=time.monotonic, sleep=asyncio.sleep, name='scenario', grace=GRACE_S,
                       wall=time.time, open_connection=None, payload_bytes=None):
    """Run one scenario (see the module docstring) and return its record. ValueError when the scenario
    is not valid (every problem named). clock, sleep and wall are for tests (virtual time).

    open_connection(number) (awaited): opens one of the scenario's `connections` (default 1); then
    send is awaited as send(index, connection). Without it send(index), and a scenario asking for
    several connections or a storm is refused. payload_bytes: what one request carries when the
    scenario sets no payload_bytes (for the record)."""
    problems = scenario_problems(name, scenario, where=None)
    if open_connection is None and isinstance(scenario, dict) and (
            scenario.get('connections', 1) != 1 or scenario.get('connect', 'ahead') != 'ahead'):
        problems.append('%s.connections: %s connection(s), connect: %s needs open_connection' % (
            name, scenario.get('connections', 1), scenario.get('connect', 'ahead')))
    if problems:
        raise ValueError('; '.join(problems))
    return await _Run(name, scenario, send, clock, sleep, wall, grace, open_connection, payload_bytes).run()


# ================================================================================ reading records

def summary_line(record):
    """One line: the load applied (requested vs achieved, dropped), errors, latency, thresholds, abort."""
    lat = record['latency_ms']
    if record['model'] == OPEN:
        requested, achieved = record['requested_rate'], record['achieved_rate']
        if record['rate_reached']:
            load = '%s requests at %s/s, the requested %s/s, none dropped' % (
                _num(record['requests']), _num(achieved), _num(requested))
        else:
            reasons = record['dropped_reasons']
            load = 'DID NOT REACH the requested rate: achieved %s/s of %s/s (%s%%), %s dropped (%s at the %s ' \
                   'in flight cap, %s due but unsent when the window ended)' % (
                       _num(achieved), _num(requested),
                       _num(round(100.0 * achieved / requested, 1)) if requested else '-', _num(record['dropped']),
                       _num(reasons['max_vus']), _num(record['max_vus']), _num(reasons['late']))
        model = 'open model (%s, max %s in flight)' % (record['executor'], _num(record['max_vus']))
    else:
        load = '%s requests at %s/s (no requested rate: the VUs set the concurrency)' % (
            _num(record['requests']), _num(record['achieved_rate']))
        model = 'closed model (%s, up to %s VUs)' % (record['executor'], _num(record['max_vus']))
    errors = '%s errors (%s%%)' % (_num(record['errors']), _num(record['error_rate_pct'])
                                   if record['error_rate_pct'] is not None else '-')
    latency = 'latency p50 %s p95 %s p99 %s ms from the %s' % (
        _num(lat['p50']), _num(lat['p95']), _num(lat['p99']), record['latency_from'])
    failed = [t for t in record['thresholds'] if not t['passed']]
    thresholds = 'thresholds %d/%d passed' % (len(record['thresholds']) - len(failed), len(record['thresholds'])) \
        if record['thresholds'] else 'no thresholds'
    if failed:
        thresholds += ', failed: ' + ', '.join('%s (%s: %s %s, limit %s %s)' % (
            t['name'], t['judged_by'], t['metric'], _num(t['measured']), t['comparator'], _num(t['threshold']))
            for t in failed)
    parts = ['%s: %s' % (record['scenario'], model), load, errors, latency, thresholds]
    if record.get('executor') == 'rate-search':
        knee = record.get('knee')
        parts.append('knee at %s requests/s (stage %d): %s' % (_num(knee['rate']), knee['stage'], knee['reason'])
                     if knee else record.get('knee_note') or 'no knee')
    recovery = record.get('recovery')
    if recovery:
        parts.append('recovered %s s after %s s (%s %s %s per interval)' % (
            _num(recovery['seconds']), _num(recovery['after_seconds']), recovery['metric'], recovery['comparator'],
            _num(recovery['threshold'])) if recovery['recovered'] else 'NOT RECOVERED after %s s: %s' % (
            _num(recovery['after_seconds']), recovery.get('note')))
    connections = record.get('connections')
    if connections and (connections['count'] > 1 or connections['connect'] == 'storm'):
        parts.append('%d connection(s) opened %s, %d failed, connect p99 %s ms' % (
            connections['opened'], 'at once (storm)' if connections['connect'] == 'storm' else 'ahead',
            connections['failed'], _num(connections['connect_ms']['p99'])))
    if record['aborted']:
        parts.append('ABORTED at %s s by %s' % (_num(record['abort']['at_seconds']), record['abort']['reason']))
    return '; '.join(parts)


def results_document(records, **about):
    """The load results file the performance gate reads: {"scenarios": {name: record}} plus `about`
    (run id, started...)."""
    return dict(about, scenarios={record['scenario']: record for record in records})


COMPARED = ('requested_rate', 'achieved_rate', 'throughput_rps', 'requests', 'errors', 'error_rate_pct', 'dropped',
            'latency_p50_ms', 'latency_p95_ms', 'latency_p99_ms', 'latency_max_ms')


def _figures(record):
    latency = record.get('latency_ms') if isinstance(record.get('latency_ms'), dict) else {}
    figures = {key: record.get(key) for key in COMPARED if not key.startswith('latency_')}
    figures.update({'latency_%s_ms' % key: latency.get(key) for key in ('p50', 'p95', 'p99', 'max')})
    return {key: value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
            for key, value in figures.items()}


def _scenarios_of(results):
    if not isinstance(results, dict):
        return {}
    found = results.get('scenarios', results)
    return {name: record for name, record in found.items() if isinstance(record, dict)} \
        if isinstance(found, dict) else {}


def compare_with_previous(current, previous):
    """Per scenario and figure (COMPARED) the change from a previous run's results (a results document
    or its scenarios mapping) to the current one: {current, previous, change, change_pct}; and whether
    the two ran the same configuration (thresholds aside). No verdict: a reader (or a criterion) judges."""
    now = _scenarios_of(current)
    if previous is None:
        return dict(previous=None, note='no previous readiness run: nothing to compare with',
                    scenarios={name: dict(status='no previous run') for name in now})
    before = _scenarios_of(previous)
    about = {key: previous.get(key) for key in ('run', 'started', 'commit') if key in previous}
    compared = {}
    for name in list(now) + [n for n in before if n not in now]:
        if name not in before:
            compared[name] = dict(status='new: not in the previous run')
            continue
        if name not in now:
            compared[name] = dict(status='missing: in the previous run only')
            continue
        a, b = _figures(now[name]), _figures(before[name])
        metrics = {}
        for key in COMPARED:
            change = a[key] - b[key] if a[key] is not None and b[key] is not None else None
            metrics[key] = dict(current=a[key], previous=b[key],
                                change=None if change is None else round(change, 6),
                                change_pct=round(100.0 * change / b[key], 2) if change is not None and b[key] else None)
        config_a, config_b = now[name].get('config') or {}, before[name].get('config') or {}
        differences = ['%s: %s now, %s before' % (key, _shown(config_a.get(key)), _shown(config_b.get(key)))
                       for key in sorted(set(config_a) | set(config_b), key=str)
                       if key != 'thresholds' and config_a.get(key) != config_b.get(key)]
        # Where the load went (nats_load's subjects): legacy and unified subjects are not the same test.
        if now[name].get('subjects') != before[name].get('subjects'):
            differences.append('subjects: %s now, %s before' % (_shown(now[name].get('subjects')),
                                                               _shown(before[name].get('subjects'))))
        compared[name] = dict(status='compared', same_configuration=not differences, differences=differences,
                              metrics=metrics)
    return dict(previous=about or {}, note=None, scenarios=compared)
