# -*- coding: utf-8 -*-
# The one table of numeric ranges the collection accepts from its users: plan timings, probe load,
# criteria counts and input sizes. Validation, error messages and the documented ranges (module
# docs, README; tests/unit/test_fleet_limits.py keeps them in step) all come from here.
#
# Why caps at all: a value such as inf, NaN or 1e300 is a valid YAML/JSON number, and without an
# upper bound it turns into an endless loop, a memory blow-up or an overflow far from where it was
# given. Every range is finite and generous next to the production contract (wave 2: checkpoints up
# to T+24h after a 9 min verification window, a monitoring round every 5 min, probes of 60 s at 10/s).
# In module_utils so that modules (nats_probe) and controller code (plugin_utils) share it.

from __future__ import annotations

import collections
import math

DAY_S = 86_400

Range = collections.namedtuple('Range', 'low high unit low_open integer where')


def _range(low, high, unit, where, low_open=False, integer=False):
    return Range(low, high, unit, low_open, integer, where)


_BUDGET = 'inventory, each failure mode of `readiness_loss_budgets`'
_LOAD = 'inventory, each scenario of `readiness_load_scenarios`'

LIMITS = {
    # wave_plan: the inventory's timings
    'wave_stagger_seconds': _range(0, 3_600, 'seconds', 'inventory, `wave_plan` `stagger`'),
    'wave_verify_window_seconds': _range(0, DAY_S, 'seconds', 'inventory, `wave_plan` `verify_window`'),
    'wave_monitor_interval_seconds': _range(0.1, DAY_S, 'seconds', 'inventory, `wave_plan` `monitor_interval`'),
    'at': _range(0, 7 * DAY_S, 'seconds', 'inventory, each checkpoint of `wave_schedule.<wave>.<phase>`',
                 low_open=True),
    # nats_probe: one probe's load
    'rate': _range(0, 10_000, 'requests per second per target', '`nats_probe` (`wave_probe_rate`)', low_open=True),
    'window': _range(0, 3_600, 'seconds', '`nats_probe` (`wave_probe_window_seconds`, '
                     '`wave_monitor_probe_window_seconds`)', low_open=True),
    'timeout': _range(0, 300, 'seconds', '`nats_probe`, `nats_request`', low_open=True),
    'connect_timeout': _range(0, 60, 'seconds', '`nats_probe`, `nats_request`, `fleet_lock`', low_open=True),
    # the agent's own cap on one emit
    'emit_events': _range(0, 10_000, 'events per instance', '`nats_probe` (`wave_probe_emit_events`)', integer=True),
    'expect_replies': _range(0, 10_000, 'replies', '`nats_request`', integer=True),
    # the fleet lock: how long a run's hold lasts without a renewal (fleet_state)
    'fleet_lock_lease_seconds': _range(10, DAY_S, 'seconds', 'inventory, `fleet_lock` `lease_seconds`'),
    # the criteria file
    'comparison.min_samples': _range(2, 100_000, 'samples per side', 'criteria file', integer=True),
    # sequential: the tolerated relative effect (0.1: a median up to 10 % worse is no degradation)
    'comparison.tolerance': _range(0, 10, 'fraction of the reference median', 'criteria file'),
    # medians closer than this are no difference (fleet_gate); a million ms is over 16 minutes
    'comparison.metrics[].min_shift': _range(0, 1_000_000, "in the compared metric's unit",
                                             'criteria file (optional, default 0)'),
    # the loss budget of each failure mode of the readiness run (plugin_utils/fleet_ledger)
    'max_lost_pct': _range(0, 100, 'percent', _BUDGET),
    'max_lost_outside_window': _range(0, 1_000_000, 'items', _BUDGET, integer=True),
    'max_duplicated': _range(0, 1_000_000, 'items', _BUDGET, integer=True),
    'max_reordered': _range(0, 1_000_000, 'events', _BUDGET, integer=True),
    'max_late': _range(0, 1_000_000, 'replies', _BUDGET, integer=True),
    'max_detection_seconds': _range(0, DAY_S, 'seconds', _BUDGET, low_open=True),
    # how long the readiness run holds each failure before undoing it (readiness_failure_modes)
    'hold_seconds': _range(0, DAY_S, 'seconds', 'inventory, each failure mode of `readiness_failure_modes`'),
    # the traffic after the hold, for a failure whose outage is long next to the run's tail
    'tail_seconds': _range(0, DAY_S, 'seconds', 'inventory, a failure mode of `readiness_failure_modes` (optional)'),
    'max_recovery_seconds': _range(0, DAY_S, 'seconds', _BUDGET, low_open=True),
    # the load scenarios of the readiness run (module_utils/fleet_load); production soak runs for hours
    'load_duration_seconds': _range(0, 7 * DAY_S, 'seconds', _LOAD + ': `duration`, the sum of `stages[].duration`',
                                    low_open=True),
    'load_stage_duration_seconds': _range(0, 7 * DAY_S, 'seconds', _LOAD + ': `stages[].duration`'),
    'load_vus': _range(1, 1_000, 'VUs', _LOAD + ': `vus` (constant-vus)', integer=True),
    'load_stage_vus': _range(0, 1_000, 'VUs', _LOAD + ': `start_vus`, `stages[].target` (ramping-vus)', integer=True),
    'load_rate': _range(0, 10_000, 'requests per second', _LOAD + ': `rate` (constant-arrival-rate)', low_open=True),
    'load_stage_rate': _range(0, 10_000, 'requests per second',
                              _LOAD + ': `start_rate`, `stages[].target` (ramping-arrival-rate)'),
    'load_max_vus': _range(1, 10_000, 'requests in flight', _LOAD + ': `max_vus` (arrival-rate executors)',
                           integer=True),
    'load_interval_seconds': _range(0, 3_600, 'seconds', _LOAD + ': `interval_seconds` (time series step)',
                                    low_open=True),
    'load_window_seconds': _range(0, DAY_S, 'seconds', _LOAD + ': `thresholds[].window_seconds`', low_open=True),
    'load_min_samples': _range(1, 1_000_000, 'samples', _LOAD + ': `thresholds[].min_samples`', integer=True),
    'load_threshold_pct': _range(0, 100, 'percent', _LOAD + ': `thresholds[].threshold` of a `_pct` metric'),
    'load_threshold_ms': _range(0, 60_000, 'ms', _LOAD + ': `thresholds[].threshold` of a latency metric'),
    'load_threshold_count': _range(0, 1_000_000_000, 'requests', _LOAD + ': `thresholds[].threshold` of `dropped`'),
    'load_threshold_rps': _range(0, 1_000_000, 'requests per second',
                                 _LOAD + ': `thresholds[].threshold` of `throughput_rps`'),
    'load_compress_factor': _range(1, 1_000_000, 'times shorter', '`fleet_load.compress` (the sandbox\'s durations)'),
    # the stress scenarios (issue 10, "Stress"): payload size, connections, knee search, recovery, slow consumer
    'load_payload_bytes': _range(0, 8 * 1024 * 1024, 'bytes', _LOAD + ': `payload_bytes` (and at most the server\'s '
                                 'max_payload)', integer=True),
    'load_connections': _range(1, 500, 'connections', _LOAD + ': `connections`', integer=True),
    'load_search_stage_seconds': _range(0, 7 * DAY_S, 'seconds', _LOAD + ': `stage_duration` (rate-search)',
                                        low_open=True),
    'load_search_factor': _range(1, 100, 'times the previous rate', _LOAD + ': `factor` (rate-search)',
                                 low_open=True),
    'load_search_step': _range(0, 10_000, 'requests per second', _LOAD + ': `step` (rate-search)', low_open=True),
    'load_recovery_after_seconds': _range(0, 7 * DAY_S, 'seconds', _LOAD + ': `recovery.after_seconds` '
                                          '(ramping-arrival-rate)'),
    'load_slow_pending_limit': _range(1, 1_000_000, 'messages', _LOAD + ': `slow_consumer.pending_limit`',
                                      integer=True),
    'load_slow_delay_ms': _range(0, 60_000, 'ms', _LOAD + ': `slow_consumer.delay_ms`'),
}

# Monitoring rounds and checkpoints of one wave together: production wave 2 plans ~320; a week
# watched at one round per 5 min is ~2,000. Counted before any round is built.
MAX_ROUNDS_PER_WAVE = 5_000
# rate x window x targets requests plus emit_events x agents x hosts events: what one probe holds
# in memory (per-request state, event pairing).
MAX_PROBE_LOAD = 1_000_000
# Requests, replies, published and received event copies of one failure mode's data-integrity ledger
# (fleet_ledger): what it holds while matching them, one small entry each.
MAX_LEDGER_ITEMS = 1_000_000
# The load scenarios of one readiness run, the stages of one scenario and the thresholds of one
# scenario (the contract has 6 scenarios of at most 5 stages and a few thresholds each).
MAX_LOAD_SCENARIOS = 20
MAX_LOAD_STAGES = 100
MAX_LOAD_THRESHOLDS = 20
# One scenario's time series (duration / interval_seconds: the points of its charts) and one sliding
# window (window_seconds / interval_seconds): a window holds one ~20 KB histogram per interval.
MAX_LOAD_INTERVALS = 3_600
MAX_WINDOW_INTERVALS = 600
# The criteria file: criteria/default.yml is ~6 KB with ~250 values. Read only under this size,
# and parsed only up to MAX_YAML_NODES values: PyYAML's pure-Python parser takes seconds over a
# few hundred KB of dense values; these keep the worst refusal well under a second.
MAX_CRITERIA_BYTES = 64 * 1024
MAX_YAML_NODES = 5_000
# YAML nesting in the criteria file (it needs 4): deeper is refused while composing, before the
# recursive construction could exhaust the stack.
MAX_YAML_DEPTH = 20


def _fmt(number):
    return '{:,}'.format(number) if isinstance(number, int) else '{:g}'.format(number)


def markdown_table():
    """The README's table of ranges and caps (tests/unit/test_fleet_limits.py keeps them equal)."""
    rows = ['| value | where | allowed |', '| --- | --- | --- |']
    rows += ['| `%s` | %s | %s |' % (name, LIMITS[name].where, describe(name)) for name in LIMITS]
    rows += [
        '| checkpoints and monitoring rounds of one wave | `wave_plan` | at most %s |' % _fmt(MAX_ROUNDS_PER_WAVE),
        '| rate x window x targets + emit_events x agents x hosts | `nats_probe` | at most %s |'
        % _fmt(MAX_PROBE_LOAD),
        '| requests, replies and event copies of one failure mode | `fleet_ledger` | at most %s |'
        % _fmt(MAX_LEDGER_ITEMS),
        '| scenarios, stages of one scenario, thresholds of one scenario | `readiness_load_scenarios` '
        '| at most %d, %d, %d |' % (MAX_LOAD_SCENARIOS, MAX_LOAD_STAGES, MAX_LOAD_THRESHOLDS),
        '| duration / interval_seconds, window_seconds / interval_seconds | `readiness_load_scenarios` '
        '| at most %s, %s |' % (_fmt(MAX_LOAD_INTERVALS), _fmt(MAX_WINDOW_INTERVALS)),
        '| criteria file size | `wave_plan` `criteria_file` | at most %s bytes |' % _fmt(MAX_CRITERIA_BYTES),
        '| criteria file values, nesting | `wave_plan` `criteria_file` | at most %s values, %d levels, no aliases |'
        % (_fmt(MAX_YAML_NODES), MAX_YAML_DEPTH),
    ]
    return '\n'.join(rows)


def describe(name):
    """The allowed range of LIMITS[name] as written in messages and docs, e.g. '(0, 3,600] seconds'."""
    limit = LIMITS[name]
    return '%s%s, %s] %s' % ('(' if limit.low_open else '[', _fmt(limit.low), _fmt(limit.high), limit.unit)


def out_of_range(name, value):
    """None when value is within LIMITS[name]; else the reason, e.g. 'must be a number in (0, 3,600]
    seconds, got inf'. Bools, NaN and infinities are refused; ints of any size compare exactly."""
    limit = LIMITS[name]
    kind = 'an integer' if limit.integer else 'a number'
    ok = (isinstance(value, int if limit.integer else (int, float)) and not isinstance(value, bool)
          and not (isinstance(value, float) and not math.isfinite(value))
          and (limit.low < value if limit.low_open else limit.low <= value) and value <= limit.high)
    if ok:
        return None
    try:
        shown = repr(value)
    except ValueError:  # an int past Python's digit limit for str()
        shown = 'an integer of thousands of digits'
    if len(shown) > 60:  # an error message, not a dump of what was given
        shown = shown[:57] + '...'
    return 'must be %s in %s, got %s' % (kind, describe(name), shown)
