# -*- coding: utf-8 -*-
# The checkpoint gate: criteria (criteria/default.yml) judged against measurements, each row with
# its measured value and limit; fleet_policy turns the findings into the outcome and next step.
# Pure logic, no I/O beyond reading the criteria file, so the action
# plugin only gathers figures and writes what comes back. Statistics are done here with the stdlib:
# the controller has no scipy.
#
# No data is never a pass: a missing, null or NaN figure fails its criterion, and a rollback
# trigger that cannot be ruled out holds the wave (NO-GO) without rolling back on its own.

from __future__ import annotations

import collections
import collections.abc
import copy
import math
import operator
import re
import statistics

import yaml  # ships with ansible-core; the gate runs on the controller

from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_limits import (
    MAX_CRITERIA_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES, out_of_range)
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_policy import ON_INCONCLUSIVE, ON_TRIGGER
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_sequential import RATE_METRICS

COMPARATORS = {'<': operator.lt, '<=': operator.le, '>': operator.gt, '>=': operator.ge, '==': operator.eq}
UNITS = ('%', 'ms', 'count', 'ratio', 'load')
SCOPES = ('per_agent', 'wave')
SECTIONS = ('primary', 'secondary', 'rollback_triggers')
CRITERION_KEYS = ('name', 'metric', 'comparator', 'threshold', 'unit', 'scope', 'description')
# A criterion may add a second condition on another figure of its scope, and holds only when both
# hold: a relative change of a sub-millisecond median is scheduler noise unless the absolute change
# is also large enough to matter.
# Or an alternative condition, and then holds when either holds: a relative overhead of agents near
# idle means nothing, so a small absolute increase passes whatever its relative size.
OPTIONAL_CRITERION_KEYS = ('also', 'or')
ALSO_KEYS = ('metric', 'comparator', 'threshold', 'unit')
TOP_KEYS = SECTIONS + ('on_trigger', 'comparison')
COMPARISON_KEYS = ('test', 'alpha', 'min_effect', 'min_samples', 'on_inconclusive', 'metrics')
# The tests a comparison may use: `sequential` (fleet_sequential: each test instance against its own
# pre-flip baseline and the reference group, anytime-valid over the whole wave, every round) or
# `mann_whitney` (the test group against the reference group at each checkpoint, fixed alpha).
COMPARISON_TESTS = ('sequential', 'mann_whitney')
# sequential: the tolerated relative effect (absent, 0.1), and what counts as one observation
# (absent, each latency; `round`: each round's median, valid when whole rounds wobble, but slower).
OPTIONAL_COMPARISON_KEYS = ('tolerance', 'count')
DEFAULT_TOLERANCE = 0.1
COUNTS = ('latency', 'round')
COMPARED_KEYS = ('metric', 'worse', 'required')
# The smallest difference of the two sides' medians (in the metric's unit) that can count as
# degraded or improved: with hundreds of samples a rank test calls a 0.1 ms shift significant.
OPTIONAL_COMPARED_KEYS = ('min_shift',)
# fullmatch: `$` would accept a trailing newline.
METRIC_RE = re.compile(r'[a-z][a-z0-9_]*')

MannWhitney = collections.namedtuple('MannWhitney', 'u p effect n_a n_b')

# A latency percentile is judged together with how many latencies it was taken from (the figure
# `latency_samples` of the same scope): the p-th percentile of fewer than 100 / (100 - p) latencies
# is only the largest of them (p99 needs 100), which the report says rather than let it pass as a p99.
PERCENTILE_METRIC_RE = re.compile(r'latency_p(\d+(?:\.\d+)?)_ms')
SAMPLES_METRIC = 'latency_samples'

# Per-instance figures the sequential comparison of latency_ms gives (fleet_checkpoint): a criterion
# on them needs that comparison, or every round would judge it without data.
SEQUENTIAL_FIGURES = ('latency_degradation_pct', 'latency_degraded')


class CriteriaError(Exception):
    """Every problem found in one criteria source, each as '<file>: <key path>: <reason>'."""

    def __init__(self, problems):
        super().__init__('\n'.join(problems))
        self.problems = problems


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fmt(value):
    if _is_number(value):
        try:
            return '{:.10g}'.format(value)
        except OverflowError:  # an int too large for a float
            return 'a number of hundreds of digits'
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + '...'  # a message, not a dump of the file


# --- loading and validation ----------------------------------------------------------------------

class _Refused(yaml.composer.ComposerError):
    """Valid YAML that a criteria file may not use (aliases, too deep, too many values)."""


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice (PyYAML would silently keep the last one), any
    alias, nesting deeper than MAX_YAML_DEPTH and more than MAX_YAML_NODES values.

    Aliases are refused while the document is composed, before anything is expanded: a chain of
    aliases each listing the previous one several times is a few hundred bytes that expand
    exponentially (repr() of the threshold in an error message ran into a MemoryError). A criteria
    file has no use for them.
    """

    _depth = _nodes = 0

    def compose_node(self, parent, index):
        # Counted as the document is read: the parser is pulled event by event, so a file dense
        # with values is refused at the cap without being scanned to its end.
        self._nodes += 1
        if self._nodes > MAX_YAML_NODES:
            raise _Refused(
                None, None, 'more than %d values, the limit for a criteria file' % MAX_YAML_NODES,
                self.peek_event().start_mark)
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _Refused(
                None, None, 'alias *%s: aliases are not allowed in a criteria file, write the value out'
                % event.anchor, event.start_mark)
        if self._depth >= MAX_YAML_DEPTH:
            raise _Refused(
                None, None, 'nested deeper than %d levels' % MAX_YAML_DEPTH, self.peek_event().start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _construct_mapping(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, collections.abc.Hashable):
            continue  # left to construct_mapping, which reports it with its line
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, 'duplicate key %r' % (key,), key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _parse(source, source_name):
    """The data in source: a dict as is, YAML text when source_name is given, else a file path."""
    if isinstance(source, dict):
        return source, source_name or '<criteria>'
    name = source_name
    too_big = CriteriaError(['%s: (file): larger than %d bytes, the limit for a criteria file'
                             % (name if name is not None else source, MAX_CRITERIA_BYTES)])
    if name is None:
        name = str(source)
        try:
            # Read one byte past the cap, never the whole of a huge (or endless) file.
            with open(source, encoding='utf-8') as handle:
                source = handle.read(MAX_CRITERIA_BYTES + 1)
        except (OSError, UnicodeDecodeError) as exc:
            raise CriteriaError(['%s: (file): cannot read: %s' % (name, getattr(exc, 'strerror', None) or exc)])
    # Characters first (cheap), then the UTF-8 size the cap is stated in.
    if len(source) > MAX_CRITERIA_BYTES or len(source.encode('utf-8')) > MAX_CRITERIA_BYTES:
        raise too_big
    try:
        data = yaml.load(source, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except ValueError as exc:  # an int past Python's digit limit, raised by the int constructor
        raise CriteriaError(['%s: (file): %s' % (name, exc)])
    except yaml.YAMLError as exc:
        mark = getattr(exc, 'problem_mark', None)
        where = 'line %d, column %d' % (mark.line + 1, mark.column + 1) if mark else '(file)'
        reason = getattr(exc, 'problem', None) or str(exc)
        label = '' if isinstance(exc, _Refused) else 'YAML syntax error: '
        raise CriteriaError(['%s: %s: %s%s' % (name, where, label, reason)])
    return data, name


def _check_keys(data, path, allowed, problems, optional=()):
    for key in data:
        if key not in allowed + optional:
            problems.append('%s: unknown key %r (allowed: %s)' % (_join(path, key), key,
                                                                  ', '.join(allowed + optional)))
    for key in allowed:
        if key not in data:
            problems.append('%s: missing' % _join(path, key))


def _join(path, key):
    return '%s.%s' % (path, key) if path else str(key)


def _check_choice(data, path, key, choices, problems):
    # isinstance, not type(): Ansible hands plugins str subclasses (tagged strings); bools stay out.
    if key in data and not any(data[key] == c and isinstance(data[key], type(c)) and not isinstance(data[key], bool)
                               for c in choices):
        problems.append('%s: %s is not one of %s' % (_join(path, key), _fmt(data[key]), ', '.join(choices)))


def _check_number(data, path, key, problems, low=None, high=None, open_range=False):
    if key not in data:
        return
    value = data[key]
    # isfinite() only on floats: it overflows on an int of hundreds of digits, which compares fine.
    if not _is_number(value) or (isinstance(value, float) and not math.isfinite(value)):
        problems.append('%s: %s is not a number' % (_join(path, key), _fmt(value)))
    elif open_range and (value <= low or value >= high):
        problems.append('%s: %s is not strictly between %s and %s' % (_join(path, key), _fmt(value), low, high))
    elif low is not None and value < low:
        problems.append('%s: %s is below %s' % (_join(path, key), _fmt(value), _fmt(low)))
    elif high is not None and value > high:
        problems.append('%s: %s is above %s' % (_join(path, key), _fmt(value), _fmt(high)))


def _check_text(data, path, key, problems, pattern=None):
    if key not in data:
        return
    value = data[key]
    if not isinstance(value, str) or not value.strip():
        problems.append('%s: %s is not a non-empty string' % (_join(path, key), _fmt(value)))
    elif pattern and not pattern.fullmatch(value):
        problems.append('%s: %r is not a metric name (lower case, digits, _)' % (_join(path, key), value))


def _check_condition(item, path, problems):
    _check_text(item, path, 'metric', problems, METRIC_RE)
    _check_choice(item, path, 'comparator', COMPARATORS, problems)
    _check_number(item, path, 'threshold', problems)
    _check_choice(item, path, 'unit', UNITS, problems)


def _check_section(data, section, names, problems):
    items = data.get(section)
    if section not in data:
        return  # reported as missing with the top-level keys
    if not isinstance(items, list):
        problems.append('%s: expected a list of criteria, got %s' % (section, type(items).__name__))
        return
    if section == 'primary' and not items:
        problems.append('primary: empty: GO needs at least one primary criterion')
    metrics = {}
    for index, item in enumerate(items):
        path = '%s[%d]' % (section, index)
        if not isinstance(item, dict):
            problems.append('%s: expected a mapping, got %s' % (path, type(item).__name__))
            continue
        _check_keys(item, path, CRITERION_KEYS, problems, OPTIONAL_CRITERION_KEYS)
        _check_condition(item, path, problems)
        _check_text(item, path, 'name', problems)
        _check_choice(item, path, 'scope', SCOPES, problems)
        _check_text(item, path, 'description', problems)
        if 'also' in item and 'or' in item:
            problems.append('%s: has both also and or; one second condition per criterion' % path)
        for key in ('also', 'or'):
            if key not in item:
                continue
            second = item[key]
            if not isinstance(second, dict):
                problems.append('%s.%s: expected a mapping with %s, got %s' % (
                    path, key, ', '.join(ALSO_KEYS), type(second).__name__))
            else:
                _check_keys(second, '%s.%s' % (path, key), ALSO_KEYS, problems)
                _check_condition(second, '%s.%s' % (path, key), problems)
        # Names identify result rows across the file; a metric judged twice in one section is a
        # copy-paste slip. The same metric in two sections is deliberate (a limit and a trigger).
        name, metric = item.get('name'), item.get('metric')
        if isinstance(name, str):
            if name in names:
                problems.append('%s.name: %r already used by %s' % (path, name, names[name]))
            names.setdefault(name, path)
        if isinstance(metric, str):
            if metric in metrics:
                problems.append('%s.metric: %r already used by %s' % (path, metric, metrics[metric]))
            metrics.setdefault(metric, path)


def _check_comparison(data, problems):
    block = data.get('comparison')
    if 'comparison' not in data:
        return
    if not isinstance(block, dict):
        problems.append('comparison: expected a mapping, got %s' % type(block).__name__)
        return
    _check_keys(block, 'comparison', COMPARISON_KEYS, problems, OPTIONAL_COMPARISON_KEYS)
    _check_choice(block, 'comparison', 'test', COMPARISON_TESTS, problems)
    _check_choice(block, 'comparison', 'count', COUNTS, problems)
    if 'tolerance' in block:
        bad = out_of_range('comparison.tolerance', block['tolerance'])
        if bad:
            problems.append('comparison.tolerance: %s' % bad)
    _check_number(block, 'comparison', 'alpha', problems, low=0, high=1, open_range=True)
    _check_number(block, 'comparison', 'min_effect', problems, low=0, high=1)
    if 'min_samples' in block:
        bad = out_of_range('comparison.min_samples', block['min_samples'])
        if bad:
            problems.append('comparison.min_samples: %s' % bad)
    _check_choice(block, 'comparison', 'on_inconclusive', ON_INCONCLUSIVE, problems)
    metrics = block.get('metrics')
    if 'metrics' in block and not isinstance(metrics, list):
        problems.append('comparison.metrics: expected a list, got %s' % type(metrics).__name__)
        return
    seen = {}
    for index, item in enumerate(metrics or []):
        path = 'comparison.metrics[%d]' % index
        if not isinstance(item, dict):
            problems.append('%s: expected a mapping, got %s' % (path, type(item).__name__))
            continue
        _check_keys(item, path, COMPARED_KEYS, problems, OPTIONAL_COMPARED_KEYS)
        _check_text(item, path, 'metric', problems, METRIC_RE)
        _check_choice(item, path, 'worse', ('higher', 'lower'), problems)
        if 'min_shift' in item:
            bad = out_of_range('comparison.metrics[].min_shift', item['min_shift'])
            if bad:
                problems.append('%s.min_shift: %s' % (path, bad))
        if item.get('metric') in RATE_METRICS and (item.get('worse') != 'higher' or not item.get('min_shift')):
            # Against a reference without failures a single failure would be infinite evidence.
            problems.append('%s: %s is a rate: it needs worse: higher and a min_shift above 0 (percentage '
                            'points a rate may rise by before it counts)' % (path, item['metric']))
        if 'required' in item and not isinstance(item['required'], bool):
            problems.append('%s.required: %s is not true or false' % (path, _fmt(item['required'])))
        metric = item.get('metric')
        if isinstance(metric, str):
            if metric in seen:
                problems.append('%s.metric: %r already used by %s' % (path, metric, seen[metric]))
            seen.setdefault(metric, path)


def _check_sequential_figures(data, problems):
    block = data.get('comparison') if isinstance(data.get('comparison'), dict) else {}
    compared = [m.get('metric') for m in block.get('metrics') or [] if isinstance(m, dict)]
    if block.get('test') == 'sequential' and 'latency_ms' in compared:
        return
    for section in SECTIONS:
        items = data.get(section) if isinstance(data.get(section), list) else []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            for suffix, condition in [('', item), ('.also', item.get('also')), ('.or', item.get('or'))]:
                if isinstance(condition, dict) and condition.get('metric') in SEQUENTIAL_FIGURES:
                    problems.append('%s[%d]%s.metric: %s comes from the sequential comparison of latency_ms: it needs '
                                    'comparison.test sequential with latency_ms in comparison.metrics (with %s, '
                                    'judge the wave figures latency_p50_degradation_pct and latency_p50_increase_ms)'
                                    % (section, index, suffix, condition['metric'], block.get('test')))


def with_thresholds(criteria, thresholds, where):
    """The criteria with some thresholds replaced ({criterion name: threshold}, as an inventory gives
    them: the sandbox's machine is not a production host). Raises CriteriaError naming `where` and
    the criterion when a name is no criterion or a threshold is not a finite number."""
    problems, replaced = [], copy.deepcopy(criteria)
    rows = {c['name']: c for section in SECTIONS for c in replaced[section]}
    for name, threshold in sorted((thresholds or {}).items()):
        if name not in rows:
            problems.append('%s.%s: no criterion is named %r (criteria: %s)' % (where, name, name, ', '.join(sorted(rows))))
            continue
        _check_number({name: threshold}, where, name, problems)
        rows[name]['threshold'] = threshold
    if problems:
        raise CriteriaError(problems)
    return replaced


def load_criteria(source, source_name=None):
    """Validated criteria from a file path, YAML text (when source_name names it) or a parsed dict.

    Raises CriteriaError listing every problem as '<source_name>: <key path>: <reason>'.
    """
    data, name = _parse(source, source_name)
    if data is None:
        raise CriteriaError(['%s: (top level): empty: expected a mapping with %s' % (name, ', '.join(TOP_KEYS))])
    if not isinstance(data, dict):
        raise CriteriaError(['%s: (top level): expected a mapping, got %s' % (name, type(data).__name__)])
    problems = []
    _check_keys(data, '', TOP_KEYS, problems)
    names = {}
    for section in SECTIONS:
        _check_section(data, section, names, problems)
    _check_choice(data, '', 'on_trigger', ON_TRIGGER, problems)
    _check_comparison(data, problems)
    if not problems:  # across sections: only once each is well formed
        _check_sequential_figures(data, problems)
    if problems:
        raise CriteriaError(['%s: %s' % (name, problem) for problem in problems])
    return data


def criteria_lines(criteria):
    """{'success_criteria': [...], 'rollback_triggers': [...]}: each criterion of validated criteria
    as one line a person reads (``error_rate (per_agent): error_rate_pct < 0.1 %``), the primary and
    secondary criteria as what success is, the rollback triggers as what rolls back."""
    def line(criterion):
        def condition(c):
            return '%s %s %s%s' % (c['metric'], c['comparator'], _fmt(c['threshold']),
                                   '' if c.get('unit') in (None, 'count', 'ratio', 'load') else ' %s' % c['unit'])
        text = '%s (%s): %s' % (criterion['name'], criterion['scope'], condition(criterion))
        for key, word in (('also', 'and'), ('or', 'or')):
            if criterion.get(key):
                text += ' %s %s' % (word, condition(criterion[key]))
        return text
    return dict(success_criteria=[line(c) for section in ('primary', 'secondary') for c in criteria[section]],
                rollback_triggers=[line(c) for c in criteria['rollback_triggers']])


# --- statistics ----------------------------------------------------------------------------------

def _finite(values, what):
    """The numbers in values; None and NaN/inf are missing points, anything else is a caller bug."""
    kept = []
    for value in values or ():
        if value is None:
            continue
        if not _is_number(value):
            raise TypeError('%s: %r is not a number' % (what, value))
        if math.isfinite(value):
            kept.append(float(value))
    return kept


def _ranks(values):
    """Average ranks (1-based, ties share the mean rank) and the sizes of the tie groups."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks, ties = [0.0] * len(values), []
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in range(start, end + 1):
            ranks[order[position]] = (start + end) / 2.0 + 1
        if end > start:
            ties.append(end - start + 1)
        start = end + 1
    return ranks, ties


def mann_whitney_u(a, b, min_samples=20):
    """Mann-Whitney U test of sample a (test) against sample b (control).

    Returns MannWhitney(u, p, effect, n_a, n_b):
      u       U of a: pairs (x in a, y in b) with x > y, ties counting one half
      p       two-sided p-value, normal approximation with tie and continuity correction
              (as scipy's method='asymptotic'); None when either sample has fewer than
              min_samples points, where the approximation is not trusted
      effect  rank-biserial r = 2u/(n_a n_b) - 1 = 1 - 2u_b/(n_a n_b), which is Cliff's delta:
              +1 every a above every b, -1 every a below, 0 no shift; None when a sample is empty
    None, NaN and inf points are dropped first; n_a and n_b count what was kept.
    """
    a, b = _finite(a, 'sample a'), _finite(b, 'sample b')
    n_a, n_b = len(a), len(b)
    if not n_a or not n_b:
        return MannWhitney(None, None, None, n_a, n_b)
    ranks, ties = _ranks(a + b)
    u = sum(ranks[:n_a]) - n_a * (n_a + 1) / 2.0
    effect = 2.0 * u / (n_a * n_b) - 1
    if min(n_a, n_b) < min_samples:
        return MannWhitney(u, None, effect, n_a, n_b)
    n = n_a + n_b
    variance = n_a * n_b / 12.0 * ((n + 1) - sum(t ** 3 - t for t in ties) / float(n * (n - 1)))
    if variance <= 0:  # every point tied: no evidence of any shift
        return MannWhitney(u, 1.0, effect, n_a, n_b)
    z = max(abs(u - n_a * n_b / 2.0) - 0.5, 0.0) / math.sqrt(variance)
    return MannWhitney(u, min(1.0, math.erfc(z / math.sqrt(2))), effect, n_a, n_b)


# --- evaluation ----------------------------------------------------------------------------------

def _measured(value):
    """(value, None) for a usable figure, else (None, why it is not one)."""
    if value is None:
        return None, 'no data'
    if not _is_number(value):
        return None, 'no data (not a number: %r)' % (value,)
    if not math.isfinite(value):
        return None, 'no data (%s)' % value
    return value, None


def _condition(condition, figures):
    """(holds, value, reason) of one condition on figures; holds is None without data."""
    value, missing = _measured(figures.get(condition['metric']))
    if missing:
        return None, None, missing
    holds = COMPARATORS[condition['comparator']](value, condition['threshold'])
    return holds, value, '%s %s %s %s' % (_fmt(value), condition['comparator'] if holds else
                                          'is not ' + condition['comparator'], _fmt(condition['threshold']),
                                          condition['unit'])


def percentile_samples(metric, figures):
    """(samples, needed) for a latency percentile metric: how many latencies it was taken from (None
    when unknown) and how many it takes to estimate it; None for any other metric."""
    match = PERCENTILE_METRIC_RE.fullmatch(metric)
    if not match:
        return None
    percentile = float(match.group(1))
    needed = int(math.ceil(100 / (100 - percentile) - 1e-9)) if percentile < 100 else None
    samples = figures.get(SAMPLES_METRIC)
    return (samples if isinstance(samples, int) and not isinstance(samples, bool) else None), needed


def _judge(kind, criterion, agent, figures):
    holds, value, reason = _condition(criterion, figures)
    row = dict(name=criterion['name'], kind=kind, metric=criterion['metric'], scope=criterion['scope'],
               agent=agent, comparator=criterion['comparator'], threshold=criterion['threshold'],
               unit=criterion['unit'], measured=value, passed=False, fired=None, reason=reason,
               also=dict(criterion['also'], measured=None) if 'also' in criterion else None,
               alternative=dict(criterion['or'], measured=None) if 'or' in criterion else None)
    counted = percentile_samples(criterion['metric'], figures)
    if counted is not None and counted[0] is not None:
        samples, needed = counted
        row.update(samples=samples, too_few=needed is not None and samples < needed)
        row['reason'] += ' (of %d latencies%s)' % (
            samples, ', too few to estimate it: the largest of them' if row['too_few'] else '')
    if holds and row['also']:
        # Both must hold; the second decides only once the first does.
        holds, row['also']['measured'], also_reason = _condition(row['also'], figures)
        row['reason'] = '%s and %s %s' % (row['reason'], row['also']['metric'], also_reason)
    elif holds is False and row['alternative']:
        # Either may hold; the alternative is asked only when the first does not.
        holds, row['alternative']['measured'], or_reason = _condition(row['alternative'], figures)
        row['reason'] = '%s, or %s %s' % (row['reason'], row['alternative']['metric'], or_reason)
    if holds is None:
        return row
    if kind == 'rollback_trigger':
        row.update(fired=holds, passed=not holds)  # the comparator states when it fires
    else:
        row['passed'] = holds
    return row


def _rows(kind, criteria, measurements):
    per_agent = measurements.get('per_agent') or {}
    wave = measurements.get('wave') or {}
    rows = []
    for criterion in criteria:
        if criterion['scope'] == 'wave':
            rows.append(_judge(kind, criterion, None, wave))
        elif not per_agent:
            row = _judge(kind, criterion, None, {})
            row['reason'] = 'no data (no agent measured)'
            rows.append(row)
        else:
            rows.extend(_judge(kind, criterion, agent, per_agent[agent] or {}) for agent in sorted(per_agent))
    return rows


def _compare(settings, metric, worse, required, min_shift, test, control):
    mw = mann_whitney_u(test, control, settings['min_samples'])
    row = dict(metric=metric, worse=worse, required=required, n_test=mw.n_a, n_control=mw.n_b,
               U=mw.u, p=mw.p, effect=mw.effect, shift=None, min_shift=min_shift, verdict=None, reason=None)
    figures = 'n %d test / %d control' % (mw.n_a, mw.n_b)
    if mw.p is None:
        row.update(verdict='too few samples',
                   reason='%s, need %d on each side' % (figures, settings['min_samples']))
        return row
    row['shift'] = statistics.median(_finite(test, metric)) - statistics.median(_finite(control, metric))
    figures = 'p=%.3g, effect r=%+.2f, medians %+.3g apart, %s' % (mw.p, mw.effect, row['shift'], figures)
    if mw.p >= settings['alpha'] or abs(mw.effect) < settings['min_effect'] or abs(row['shift']) < min_shift:
        row.update(verdict='no difference', reason='%s (alpha %s, min effect %s, min shift %s)' % (
            figures, _fmt(settings['alpha']), _fmt(settings['min_effect']), _fmt(min_shift)))
        return row
    direction = 'higher' if mw.effect > 0 else 'lower'
    if worse is None:
        verdict = 'differs'  # a metric not in comparison.metrics: shown, never gating
    else:
        verdict = 'degraded' if direction == worse else 'improved'
    row.update(verdict=verdict, reason='test %s than control: %s' % (direction, figures))
    return row


def _sequential_reason(row):
    """One instance's sequential judgement in words: the effect, then what it rests on."""
    def ms(value):
        return 'no data' if value is None else '%.4g ms' % value
    missing = [ref for ref in sorted(row['references']) if not row['references'][ref]['n']]
    if missing:  # the verdict waits for it
        return 'nothing to compare with yet: %s (median %s now)' % (', '.join(
            {'baseline': 'no latency of it before its flip', 'control': 'no latency of the reference group'}[ref]
            for ref in missing), ms(row['median_ms']))
    effect = 'median %s, %s before its flip' % (ms(row['median_ms']), ms(row['baseline_median_ms']))
    if row['shift_ms'] is not None:
        effect += ' (%+.4g ms%s)' % (row['shift_ms'], ', %+.3g %%' % row['shift_pct'] if row['shift_pct'] is not None else '')
    effect += ', reference %s' % ms(row['control_median_ms'])
    sides = []
    for ref, counts in sorted(row['references'].items()):  # each has data (missing returned above)
        low, high = counts['share_up_bounds'] or (0, 1)
        sides.append('%s: %d of %d latencies above the tolerated (%.0f %%, bounds %.0f-%.0f %%), evidence %.3g of %.3g'
                     % (ref, counts['up'], counts['n'], 100 * counts['share_up'], 100 * low, 100 * high,
                        counts['evidence_up'], row['threshold']))
    return '%s; %s' % (effect, '; '.join(sides))


def _rate_reason(row):
    """One instance's sequential judgement of a rate in words."""
    def pct(value):
        return 'no data' if value is None else '%.3g %%' % value
    effect = '%d of %d requests failed this round (%s), %s before its flip, reference %s' % (
        row['failed'], row['sent'], pct(row['rate_pct']), pct(row['baseline_rate_pct']), pct(row['control_rate_pct']))
    sides = []
    for ref, counts in sorted(row['references'].items()):
        if not counts['n']:
            sides.append('%s: nothing to compare with yet' % ref)
        else:
            sides.append('%s: %d of %d failed over the rounds, evidence %.3g of %.3g' % (
                ref, counts['failed'], counts['n'], counts['evidence'], row['threshold']))
    return '%s; %s' % (effect, '; '.join(sides))


def _sequential_comparisons(settings, judged):
    """Rows of the sequential comparison (fleet_sequential.compare_instances, one per test instance
    and metric): degraded or improved only as the test decided, in the direction the metric is worse."""
    configured = {m['metric']: m for m in settings.get('metrics') or []}
    rows = []
    for metric, spec in configured.items():
        for found in (judged or {}).get(metric) or []:
            verdict = found['verdict']
            if spec.get('worse') == 'lower' and verdict in ('degraded', 'improved'):
                verdict = 'improved' if verdict == 'degraded' else 'degraded'
            if verdict == 'no data':
                verdict = 'too few samples'  # the same next step as a rank test without samples
            reason = (_rate_reason if found.get('kind') == 'rate' else _sequential_reason)(found)
            rows.append(dict(found, metric=metric, test='sequential', worse=spec.get('worse'),
                             required=spec.get('required', False), agent=found['instance'], verdict=verdict,
                             reason='%s: %s' % (found['instance'], reason)))
    return rows


def _comparisons(settings, samples, judged=None):
    if settings.get('test') == 'sequential':
        return _sequential_comparisons(settings, judged)
    test, control = samples.get('test') or {}, samples.get('control') or {}
    # Rates are counted by the sequential test only: the rank test needs samples.
    configured = {m['metric']: m for m in settings.get('metrics') or [] if m['metric'] not in RATE_METRICS}
    rows = []
    for metric in list(configured) + sorted((set(test) | set(control)) - set(configured)):
        spec = configured.get(metric, {})
        rows.append(_compare(settings, metric, spec.get('worse'), spec.get('required', False),
                             spec.get('min_shift', 0), test.get(metric), control.get(metric)))
    return rows


def _where(row):
    return ' on %s' % row['agent'] if row['agent'] else ''


def _too_few_notes(rows):
    """One note per criterion whose percentile was taken from too few latencies to estimate it."""
    notes = []
    for name in dict.fromkeys(r['name'] for r in rows if r.get('too_few')):
        flagged = [r for r in rows if r['name'] == name and r.get('too_few')]
        counts = sorted(r['samples'] for r in flagged)
        metric = flagged[0]['metric']
        percentile = 'p' + PERCENTILE_METRIC_RE.fullmatch(metric).group(1)
        notes.append('%s %s judged from too few latencies on %d instance%s (%s; a %s needs %d): each is the '
                     'largest latency measured, not an estimate of the percentile' % (
                         flagged[0]['kind'].replace('_', ' '), name, len(flagged), '' if len(flagged) == 1 else 's',
                         '%d' % counts[0] if counts[0] == counts[-1] else '%d to %d' % (counts[0], counts[-1]),
                         percentile, percentile_samples(metric, {})[1]))
    return notes


def evaluate(criteria, measurements):
    """Decide one checkpoint. criteria: as returned by load_criteria. measurements:

      per_agent  {agent: {metric: value}}   the agents under test, for per_agent criteria
      wave       {metric: value}            one figure each, for wave criteria
      samples    {test: {metric: [..]}, control: {metric: [..]}}   raw points for test vs control
      sequential {metric: [row, ...]}     fleet_sequential.compare_instances's rows, for test: sequential

    Returns the findings - triggers fired or that cannot be ruled out (no data), primary criteria
    failed, comparisons degraded, required comparisons short of samples - with one reason line
    each, informational notes, and every row judged. Everything is evaluated either way; the
    outcome and the next step are fleet_policy.decide_round's.
    """
    measurements = measurements or {}
    settings = criteria['comparison']
    triggers = _rows('rollback_trigger', criteria['rollback_triggers'], measurements)
    primary = _rows('primary', criteria['primary'], measurements)
    secondary = _rows('secondary', criteria['secondary'], measurements)
    comparisons = _comparisons(settings, measurements.get('samples') or {}, measurements.get('sequential'))

    fired = [r for r in triggers if r['fired']]
    unknown = [r for r in triggers if r['fired'] is None]
    failed = [r for r in primary if not r['passed']]
    degraded = [c for c in comparisons if c['verdict'] == 'degraded']
    short = [c for c in comparisons if c['required'] and c['verdict'] == 'too few samples']

    lines = ['trigger %s fired%s: %s %s' % (r['name'], _where(r), r['metric'], r['reason']) for r in fired]
    lines += ['trigger %s cannot be ruled out%s: %s %s' % (r['name'], _where(r), r['metric'], r['reason'])
              for r in unknown]
    lines += ['primary %s failed%s: %s %s' % (r['name'], _where(r), r['metric'], r['reason']) for r in failed]
    lines += ['comparison %s %s: %s' % (c['metric'], c['verdict'], c['reason']) for c in degraded]
    lines += ['comparison %s %s (required): %s' % (c['metric'], c['verdict'], c['reason']) for c in short]
    notes = ['secondary %s failed%s (informational): %s %s' % (r['name'], _where(r), r['metric'], r['reason'])
             for r in secondary if not r['passed']]
    notes += ['comparison %s %s: %s' % (c['metric'], c['verdict'], c['reason']) for c in comparisons
              if c['verdict'] in ('improved', 'differs') or (c['verdict'] == 'too few samples' and not c['required'])]
    notes += _too_few_notes(triggers + primary + secondary)

    return dict(fired=fired, unknown=unknown, failed=failed, degraded=degraded, short=short,
                n_primary=len(primary), n_comparisons=len(comparisons), reasons=lines, notes=notes,
                criteria=triggers + primary + secondary, comparisons=comparisons)
