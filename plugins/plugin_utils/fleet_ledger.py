# -*- coding: utf-8 -*-
"""The data-integrity ledger of one failure mode of the production-readiness run (issue 10).

While a failure is injected (an agent ``kill -9``, a stand-in stopped, nats-server restarted, a
frozen node, a corrupted env file or a full disk), the runner sends requests and the agents publish
events; the ledger accounts for every one of them against what came back or was received, and judges
the result against the failure mode's declared loss budget. Core NATS is at-most-once: what a server
restart drops is counted as lost, never left out. ``build_ledger`` returns one JSON-serialisable
record; ``write_ledger`` writes it atomically; the deployment gate (``fleet_gates``) reads it back
through ``check_record``. Pure Python, standard library and this collection only.

Inputs (plain dicts; a field not listed is refused, naming it)
===============================================================
A time is epoch seconds (a finite number) or the artifacts' UTC stamp ``YYYY-MM-DDTHH:MM:SS.mmmZ``.

window
    ``{"injected_at": t, "detected_at": t | None, "recovered_at": t | None}``: when the failure was
    injected, when the run's monitoring noticed it, and when the injection was undone (the process,
    host or server back). Neither may precede ``injected_at``; ``None`` means never.
requests (the runner's, in any order)
    ``{"id": str, "subject": str, "target": "<agent>@<host>" or "<agent>", "intended_at": t,
    "sent_at": t | None, "timeout": seconds (optional, else the ledger's)}``: ``intended_at`` the time
    the schedule meant to send it (open model), ``sent_at`` when it went out, ``None`` when it never
    could (a client cut off from the server): an unsent request is lost.
replies
    ``{"request": <request id>, "responder": str, "at": t, "error": bool (optional)}``; an error
    reply (``Agent-Error``) answers the request but counts as a failure for the timings.
published (by the agents, one entry per copy: a dual-published event is two)
    ``{"agent": str, "host": str (optional), "msg_id": <the copy's Nats-Msg-Id>,
    "subject": "legacy" | "unified", "seq": int (optional), "published_at": t (optional)}``.
received (by the observer)
    ``{"msg_id": str, "subject": "legacy" | "unified", "at": t}``; a copy is (msg_id, subject).
budget (one failure mode's entry of the inventory's ``readiness_loss_budgets``)
    every key of ``BUDGET_KEYS``, each within its range in ``fleet_limits.LIMITS``.

Outcomes
========
A request is **answered** (a reply within its timeout of ``sent_at``), **late** (its first reply
after the timeout) or **lost** (no reply, or never sent); each reply beyond the first is
**duplicated**. An event copy is received or **lost**; each receipt beyond the first is
**duplicated**; it is **reordered** when it arrives after a copy that its agent (instance, when the
host is given) published later on the same subject family — order by ``seq`` where given, else by
``published_at``; a copy with neither is not judged for order. Replies to no request sent and
copies nobody published are **unmatched**: the inputs do not account for them, which fails.

A lost request is **inside the failure window** when its life, from ``intended_at`` to
``sent_at`` (or ``intended_at``) plus its timeout, overlaps [injected_at, recovered_at] (to the end
of the run when never recovered); a lost event copy when its ``published_at`` falls in it. A copy
without a publish time cannot be placed and counts outside: loss is never excused by a missing time.

Timings: ``detection_seconds`` is detected_at - injected_at; with ``detect_from_traffic`` and no
detected_at given, detected_at is when the traffic first saw a failed request (its timeout ran out,
its error came back, or it could not be sent), never before the injection. A request **failed** when it was lost,
late or answered with an error, its life reaching past the injection; ``first_failed_at`` and
``last_failed_at`` are the intended times of the first and last. ``recovery_seconds`` runs from the
injection to the first good reply (in time, no error) to a request intended after the last failure
(after the injection when none failed); ``declared_recovery_seconds`` is recovered_at - injected_at.

Verdict: ``PASS`` when, for requests and for events each, the lost share is at most ``max_lost_pct``;
at most ``max_lost_outside_window`` lost outside the window (requests and events together),
``max_duplicated`` duplicates, ``max_reordered`` reordered, ``max_late`` late; detection and recovery
within their maxima; nothing unmatched; and there were requests and events to account for. Each
reason names what failed, its figure and its limit, and — for loss — which ids were lost.

Memory
======
Matching holds one small entry per request and per published copy, at most
``fleet_limits.MAX_LEDGER_ITEMS`` items in all four inputs (more is refused, naming the cap). The
record keeps counts per target and subject (requests) and per agent instance and subject family
(events), and at most ``SAMPLE_IDS`` ids of each kind (lost inside / outside the window, late,
duplicated, reordered) per such group: its size does not grow with the length of the run.

The record (``RECORD_VERSION``)
===============================
``{"version", "mode", "window": {injected_at, detected_at, recovered_at} (UTC stamps), "detected_by"
("declared", "traffic" or null),
"timeout_seconds", "sample_ids", "requests": {"totals": {...}, "groups": {"<target> <subject>":
{target, subject, sent, unsent, answered, late, lost, lost_in_window, lost_outside_window,
duplicated, errors, lost_in_window_ids, lost_outside_window_ids, late_ids, duplicated_ids}}},
"events": {"totals": {...}, "groups": {"<instance> <family>": {instance, subject, published,
received, lost, lost_in_window, lost_outside_window, duplicated, reordered, lost_in_window_ids,
lost_outside_window_ids, duplicated_ids, reordered_ids}}}, "timings": {...}, "measured": {...},
"budget": {...}, "verdict": "PASS" | "FAIL", "reasons": [...], "lost": ["<what was lost>", ...]}``.
"""

from __future__ import annotations

import math

from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_limits import MAX_LEDGER_ITEMS, out_of_range
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import Layout, epoch_of, utc

RECORD_VERSION = 1
PASS, FAIL = 'PASS', 'FAIL'
# The five failure modes of the contract (shared/contract.md, "Production readiness run").
FAILURE_MODES = ('agent-kill', 'standin-stop', 'nats-restart', 'node-freeze', 'env-corrupt-or-disk-full')
BUDGET_KEYS = ('max_lost_pct', 'max_lost_outside_window', 'max_duplicated', 'max_reordered', 'max_late',
               'max_detection_seconds', 'max_recovery_seconds')
BUDGET_VARIABLE = 'readiness_loss_budgets'
SUBJECT_FAMILIES = ('legacy', 'unified')
# How a failure was detected when the run's own monitoring is the traffic: the first request that
# failed after the injection, at the moment that was visible (its timeout ran out, its error came back).
DETECTED_BY_TRAFFIC = 'traffic'
# Ids kept per group and kind; the counts are always complete.
SAMPLE_IDS = 20

_FIELDS = {  # what: (required, optional)
    'window': (('injected_at',), ('detected_at', 'recovered_at')),
    'requests': (('id', 'subject', 'target', 'intended_at', 'sent_at'), ('timeout',)),
    'replies': (('request', 'responder', 'at'), ('error',)),
    'published': (('agent', 'msg_id', 'subject'), ('host', 'seq', 'published_at')),
    'received': (('msg_id', 'subject', 'at'), ()),
}
_REQUEST_COUNTS = ('sent', 'unsent', 'answered', 'late', 'lost', 'lost_in_window', 'lost_outside_window',
                   'duplicated', 'errors')
_REQUEST_IDS = ('lost_in_window_ids', 'lost_outside_window_ids', 'late_ids', 'duplicated_ids')
_EVENT_COUNTS = ('published', 'received', 'lost', 'lost_in_window', 'lost_outside_window', 'duplicated',
                 'reordered')
_EVENT_IDS = ('lost_in_window_ids', 'lost_outside_window_ids', 'duplicated_ids', 'reordered_ids')


class LedgerError(ValueError):
    """Bad input: the message names the field (``requests[3].sent_at``) and what is allowed."""


# ================================================================================ budgets

def _keys_problems(mapping, allowed, where, missing, unknown):
    """'<where>.<key>: <missing>' for each key of allowed not in mapping, '<where>.<key>: <unknown>' for
    each key of mapping not allowed; both texts take the allowed keys."""
    listed = ', '.join(allowed)
    return (['%s.%s: %s' % (where, key, missing % listed) for key in allowed if key not in mapping]
            + ['%s.%s: %s' % (where, key, unknown % listed) for key in sorted(map(str, mapping)) if key not in allowed])


def budget_problems(budget, where):
    """Every problem of one failure mode's budget, each naming '<where>.<key>' and its range."""
    if not isinstance(budget, dict):
        return ['%s: must be a mapping of %s, got %r' % (where, ', '.join(BUDGET_KEYS), budget)]
    problems = _keys_problems(budget, BUDGET_KEYS, where, 'missing (required: %s)', 'unknown key (allowed: %s)')
    for key in BUDGET_KEYS:
        if key in budget:
            problem = out_of_range(key, budget[key])
            if problem:
                problems.append('%s.%s: %s' % (where, key, problem))
    return problems


def validate_budgets(budgets, where=BUDGET_VARIABLE):
    """The inventory's budgets, one per failure mode of FAILURE_MODES, each checked; LedgerError
    listing every problem otherwise (what the readiness run calls before injecting anything)."""
    if not isinstance(budgets, dict):
        raise LedgerError('%s: must be a mapping of the failure modes %s, got %r' % (
            where, ', '.join(FAILURE_MODES), budgets))
    problems = _keys_problems(budgets, FAILURE_MODES, where, 'missing (every failure mode needs a budget: %s)',
                              'unknown failure mode (allowed: %s)')
    for mode in FAILURE_MODES:
        if mode in budgets:
            problems += budget_problems(budgets[mode], '%s.%s' % (where, mode))
    if problems:
        raise LedgerError('; '.join(problems))
    return {mode: dict(budgets[mode]) for mode in FAILURE_MODES}


INJECTION_VARIABLE = 'readiness_failure_modes'
_STEP_KEYS = ('on', 'argv')
_MODE_KEYS = ('inject', 'undo', 'hold_seconds', 'tail_seconds')


def _step_problems(step, where, hosts):
    if not isinstance(step, dict):
        return ['%s: must be a mapping of on (an inventory host, localhost for the controller) and argv (the command '
                'as a list of words), got %r' % (where, step)]
    problems = _keys_problems(step, _STEP_KEYS, where, 'missing (required: %s)', 'unknown key (allowed: %s)')
    if 'on' in step and step['on'] not in hosts:
        problems.append('%s.on: %r is not a host of the inventory (allowed: %s)' % (where, step['on'], ', '.join(hosts)))
    argv = step.get('argv')
    if 'argv' in step and (not isinstance(argv, list) or not argv
                           or not all(isinstance(word, str) and word for word in argv)):
        problems.append('%s.argv: must be a non-empty list of non-empty strings (the command and its arguments, '
                        'no shell), got %r' % (where, argv))
    return problems


def failure_plan(modes, budgets, hosts):
    """The failure-modes area's plan from the inventory: readiness_failure_modes (each mode of
    FAILURE_MODES: inject {on, argv}, undo {on, argv} or null when the fleet recovers by itself,
    hold_seconds between them, and optionally tail_seconds, the traffic after the hold when not
    readiness_failure_tail_seconds) and readiness_loss_budgets, every problem at once; hosts: the
    inventory's hosts (localhost is the controller). Returns [{mode, inject, undo, hold_seconds,
    tail_seconds (None: the run's), budget}] in
    FAILURE_MODES order; LedgerError naming each problem's variable path and what is allowed."""
    problems = []
    try:
        budgets = validate_budgets(budgets)
    except LedgerError as exc:
        problems.append(str(exc))
    if not isinstance(modes, dict):
        raise LedgerError('; '.join(problems + ['%s: must be a mapping of the failure modes %s, got %r' % (
            INJECTION_VARIABLE, ', '.join(FAILURE_MODES), modes)]))
    problems += _keys_problems(modes, FAILURE_MODES, INJECTION_VARIABLE,
                               'missing (every failure mode is injected: %s)', 'unknown failure mode (allowed: %s)')
    plan = []
    for mode in FAILURE_MODES:
        where, entry = '%s.%s' % (INJECTION_VARIABLE, mode), modes.get(mode)
        if mode not in modes:
            continue
        if not isinstance(entry, dict):
            problems.append('%s: must be a mapping of %s, got %r' % (where, ', '.join(_MODE_KEYS), entry))
            continue
        problems += ['%s.%s: unknown key (allowed: %s)' % (where, key, ', '.join(_MODE_KEYS))
                     for key in sorted(map(str, entry)) if key not in _MODE_KEYS]
        problems += _step_problems(entry.get('inject'), where + '.inject', hosts)
        if entry.get('undo') is not None:
            problems += _step_problems(entry['undo'], where + '.undo', hosts)
        hold, tail = entry.get('hold_seconds', 0), entry.get('tail_seconds')
        for key, value in (('hold_seconds', hold), ('tail_seconds', tail)):
            problem = out_of_range(key, value) if value is not None else None
            if problem:
                problems.append('%s.%s: %s' % (where, key, problem))
        plan.append(dict(mode=mode, inject=entry.get('inject'), undo=entry.get('undo'), hold_seconds=hold,
                         tail_seconds=tail, budget=budgets.get(mode) if isinstance(budgets, dict) else None))
    if problems:
        raise LedgerError('; '.join(problems))
    return plan


# ================================================================================ inputs

def _fields(what, index, item):
    where = '%s[%d]' % (what, index) if index is not None else what
    required, optional = _FIELDS[what]
    if not isinstance(item, dict):
        raise LedgerError('%s: must be a mapping of %s, got %r' % (where, ', '.join(required + optional), item))
    unknown = sorted(str(key) for key in item if key not in required + optional)
    if unknown:
        raise LedgerError('%s: unknown field %s (allowed: %s)' % (where, ', '.join(unknown),
                                                                  ', '.join(required + optional)))
    missing = [key for key in required if key not in item]
    if missing:
        raise LedgerError('%s: missing %s' % (where, ', '.join(missing)))
    return where


def _time(value, where, optional=False):
    if value is None and optional:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    epoch = epoch_of(value) if isinstance(value, str) else None
    if epoch is None:
        raise LedgerError('%s: must be a time (epoch seconds or YYYY-MM-DDTHH:MM:SS.mmmZ)%s, got %r' % (
            where, ' or null' if optional else '', value))
    return epoch


def _text(value, where):
    if not isinstance(value, str) or not value:
        raise LedgerError('%s: must be a non-empty string, got %r' % (where, value))
    return value


def _family(value, where):
    if value not in SUBJECT_FAMILIES:
        raise LedgerError('%s: must be one of %s, got %r' % (where, ', '.join(SUBJECT_FAMILIES), value))
    return value


def _window(window):
    _fields('window', None, window)
    injected = _time(window['injected_at'], 'window.injected_at')
    detected = _time(window.get('detected_at'), 'window.detected_at', optional=True)
    recovered = _time(window.get('recovered_at'), 'window.recovered_at', optional=True)
    for name, value in (('detected_at', detected), ('recovered_at', recovered)):
        if value is not None and value < injected:
            raise LedgerError('window.%s: %s is before window.injected_at %s' % (name, utc(value), utc(injected)))
    return injected, detected, recovered


def _items(what, value):
    """value as an iterable of items; LedgerError unless it is a list, tuple or iterator of them."""
    if isinstance(value, (str, bytes, dict)) or not hasattr(value, '__iter__'):
        raise LedgerError('%s: must be a list of mappings (%s), got %r' % (what, ', '.join(sum(_FIELDS[what], ())),
                                                                         value))
    return value


class _Counter:
    """Counts every item; refuses past MAX_LEDGER_ITEMS (the matching state's bound)."""

    def __init__(self):
        self.items = 0

    def __call__(self, what):
        self.items += 1
        if self.items > MAX_LEDGER_ITEMS:
            raise LedgerError('%s: the ledger holds at most %s requests, replies and event copies per failure '
                              'mode (fleet_limits.MAX_LEDGER_ITEMS)' % (what, '{:,}'.format(MAX_LEDGER_ITEMS)))


def _group(groups, key, counts, ids, **names):
    group = groups.get(key)
    if group is None:
        group = groups[key] = dict(names, **{name: 0 for name in counts}, **{name: [] for name in ids})
    return group


def _keep(group, kind, item_id, sample):
    if len(group[kind]) < sample:
        group[kind].append(item_id)


# ================================================================================ the ledger

def build_ledger(mode, window, requests, replies, published, received, timeout, budget, sample=SAMPLE_IDS,
                 detect_from_traffic=False):
    """The record of one failure mode (module docstring): every request and event copy accounted
    for, judged against budget. LedgerError on bad input, naming the field and what is allowed.
    detect_from_traffic: a window without detected_at takes the moment the traffic itself first saw
    the failure (DETECTED_BY_TRAFFIC); the record's ``detected_by`` says which."""
    if mode not in FAILURE_MODES:
        raise LedgerError('mode: must be one of %s, got %r' % (', '.join(FAILURE_MODES), mode))
    problem = out_of_range('timeout', timeout)
    if problem:
        raise LedgerError('timeout: %s' % problem)
    if isinstance(sample, bool) or not isinstance(sample, int) or not 1 <= sample <= 1000:
        raise LedgerError('sample: must be an integer in [1, 1,000] ids, got %r' % (sample,))
    problems = budget_problems(budget, '%s.%s' % (BUDGET_VARIABLE, mode))
    if problems:
        raise LedgerError('; '.join(problems))
    injected, detected, recovered = _window(window)
    end = recovered if recovered is not None else math.inf
    count = _Counter()

    def inside(start, stop):
        return start <= end and stop >= injected

    # --- requests and replies
    pending = {}  # id -> [group key, intended, sent, timeout, first reply at, replies, error]
    for index, request in enumerate(_items('requests', requests)):
        count('requests[%d]' % index)
        where = _fields('requests', index, request)
        request_id = _text(request['id'], where + '.id')
        if request_id in pending:
            raise LedgerError('%s.id: %r is given twice' % (where, request_id))
        own = request.get('timeout', timeout)
        problem = out_of_range('timeout', own)
        if problem:
            raise LedgerError('%s.timeout: %s' % (where, problem))
        key = (_text(request['target'], where + '.target'), _text(request['subject'], where + '.subject'))
        pending[request_id] = [key, _time(request['intended_at'], where + '.intended_at'),
                               _time(request['sent_at'], where + '.sent_at', optional=True), float(own), None, 0, False]
    unmatched_replies = 0
    for index, reply in enumerate(_items('replies', replies)):
        count('replies[%d]' % index)
        where = _fields('replies', index, reply)
        _text(reply['responder'], where + '.responder')
        at = _time(reply['at'], where + '.at')
        error = reply.get('error', False)
        if not isinstance(error, bool):
            raise LedgerError('%s.error: must be true or false, got %r' % (where, error))
        entry = pending.get(_text(reply['request'], where + '.request'))
        if entry is None or entry[2] is None:
            unmatched_replies += 1
            continue
        entry[5] += 1
        if entry[4] is None or at < entry[4]:  # the first reply decides: its time, whether an error
            entry[4], entry[6] = at, error

    groups, failed = {}, [0, None, None]  # failed requests since the injection: count, first, last intended
    seen = None  # when the traffic first saw a failure after the injection
    for request_id, (key, intended, sent, own, first, replies_n, error) in sorted(
            pending.items(), key=lambda item: (item[1][1], item[0])):
        group = _group(groups, key, _REQUEST_COUNTS, _REQUEST_IDS, target=key[0], subject=key[1])
        group['sent'] += 1
        life_end = (sent if sent is not None else intended) + own
        if sent is None:
            group['unsent'] += 1
        if replies_n > 1:
            group['duplicated'] += replies_n - 1
            _keep(group, 'duplicated_ids', request_id, sample)
        if first is None:
            group['lost'] += 1
            kind = 'lost_in_window' if inside(intended, life_end) else 'lost_outside_window'
            group[kind] += 1
            _keep(group, kind + '_ids', request_id, sample)
        elif first > sent + own:
            group['late'] += 1
            _keep(group, 'late_ids', request_id, sample)
        else:
            group['answered'] += 1
        if error:
            group['errors'] += 1
        if (first is None or first > sent + own or error) and life_end >= injected:
            # An error is seen when it comes back; a lost or late request when its timeout runs out,
            # an unsent one when it could not go out.
            at = first if error and first is not None and first <= sent + own else life_end if sent is not None \
                else intended
            seen = max(at, injected) if seen is None else min(seen, max(at, injected))
            failed[0] += 1
            failed[1] = intended if failed[1] is None else failed[1]  # in intended order
            failed[2] = intended

    # --- events published and received
    copies = {}  # (msg_id, family) -> [group key, rank, published_at, receipts]
    for index, event in enumerate(_items('published', published)):
        count('published[%d]' % index)
        where = _fields('published', index, event)
        agent = _text(event['agent'], where + '.agent')
        host = event.get('host')
        instance = '%s@%s' % (agent, _text(host, where + '.host')) if host is not None else agent
        family = _family(event['subject'], where + '.subject')
        copy = (_text(event['msg_id'], where + '.msg_id'), family)
        if copy in copies:
            raise LedgerError('%s: message id %r on %s is published twice' % (where, copy[0], family))
        seq = event.get('seq')
        if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int)):
            raise LedgerError('%s.seq: must be an integer, got %r' % (where, seq))
        at = _time(event.get('published_at'), where + '.published_at', optional=True)
        copies[copy] = [(instance, family), seq if seq is not None else at, at, 0]
    arrivals = []
    for index, event in enumerate(_items('received', received)):
        count('received[%d]' % index)
        where = _fields('received', index, event)
        arrivals.append((_time(event['at'], where + '.at'), index,
                         (_text(event['msg_id'], where + '.msg_id'), _family(event['subject'], where + '.subject'))))
    arrivals.sort()
    events, latest, unmatched_events = {}, {}, 0
    for entry in copies.values():
        _group(events, entry[0], _EVENT_COUNTS, _EVENT_IDS, instance=entry[0][0], subject=entry[0][1])['published'] += 1
    for _at, _index, copy_key in arrivals:
        entry = copies.get(copy_key)
        if entry is None:
            unmatched_events += 1
            continue
        group = events[entry[0]]
        entry[3] += 1
        if entry[3] > 1:
            group['duplicated'] += 1
            _keep(group, 'duplicated_ids', copy_key[0], sample)
            continue
        group['received'] += 1
        rank = entry[1]
        if rank is not None:
            if entry[0] in latest and rank < latest[entry[0]]:
                group['reordered'] += 1
                _keep(group, 'reordered_ids', copy_key[0], sample)
            else:
                latest[entry[0]] = rank
    for copy_key, (key, _rank, at, receipts) in copies.items():
        if not receipts:
            group = events[key]
            group['lost'] += 1
            kind = 'lost_in_window' if at is not None and inside(at, at) else 'lost_outside_window'
            group[kind] += 1
            _keep(group, kind + '_ids', copy_key[0], sample)

    # --- totals, timings, verdict
    detected_by = 'declared' if detected is not None else None
    if detected is None and detect_from_traffic and seen is not None:
        detected, detected_by = seen, DETECTED_BY_TRAFFIC
    request_totals = {name: sum(g[name] for g in groups.values()) for name in _REQUEST_COUNTS}
    request_totals['unmatched_replies'] = unmatched_replies
    event_totals = {name: sum(g[name] for g in events.values()) for name in _EVENT_COUNTS}
    event_totals['unmatched'] = unmatched_events
    timings = _timings(injected, detected, recovered, failed, pending)
    measured = dict(
        requests=request_totals['sent'], events=event_totals['published'],
        requests_lost_pct=_pct(request_totals['lost'], request_totals['sent']),
        events_lost_pct=_pct(event_totals['lost'], event_totals['published']),
        lost_outside_window=request_totals['lost_outside_window'] + event_totals['lost_outside_window'],
        duplicated=request_totals['duplicated'] + event_totals['duplicated'],
        reordered=event_totals['reordered'], late=request_totals['late'],
        unmatched=unmatched_replies + unmatched_events,
        detection_seconds=timings['detection_seconds'], recovery_seconds=timings['recovery_seconds'])
    record = dict(
        version=RECORD_VERSION, mode=mode, timeout_seconds=float(timeout), sample_ids=sample, detected_by=detected_by,
        window=dict(injected_at=utc(injected), detected_at=utc(detected) if detected is not None else None,
                    recovered_at=utc(recovered) if recovered is not None else None),
        requests=dict(totals=request_totals, groups={'%s %s' % k: g for k, g in sorted(groups.items())}),
        events=dict(totals=event_totals, groups={'%s %s' % k: g for k, g in sorted(events.items())}),
        timings=timings, measured=measured, budget={key: budget[key] for key in BUDGET_KEYS})
    record['lost'] = lost_lines(record)
    record['reasons'] = judge(record)
    record['verdict'] = FAIL if record['reasons'] else PASS
    return record


def _pct(part, whole):
    return round(100.0 * part / whole, 6) if whole else None


def _seconds(value):
    return round(value, 3) if value is not None else None


def _timings(injected, detected, recovered, failed, pending):
    """The timings (module docstring); failed: [count, first, last] intended times of failed requests."""
    count, first_failed, last_failed = failed
    first_good = None
    for _key, intended, sent, own, first, _replies, error in pending.values():
        good = first is not None and first <= sent + own and not error
        after = intended > last_failed if count else intended >= injected
        if good and after and (first_good is None or first < first_good):
            first_good = first
    return dict(
        detection_seconds=_seconds(detected - injected) if detected is not None else None,
        recovery_seconds=_seconds(first_good - injected) if first_good is not None else None,
        declared_recovery_seconds=_seconds(recovered - injected) if recovered is not None else None,
        failed_requests=count,
        first_failed_at=utc(first_failed) if first_failed is not None else None,
        last_failed_at=utc(last_failed) if last_failed is not None else None,
        first_good_reply_after_at=utc(first_good) if first_good is not None else None)


def _ids(group, kinds, total):
    shown = [item for kind in kinds for item in group[kind]]
    more = total - len(shown)
    return ', '.join(shown) + (' and %d more' % more if more > 0 else '')


def lost_lines(record, outside_only=False):
    """What was lost, one line per target and subject (requests) and per instance and subject family
    (events): counts in and outside the window and the first ids kept (SAMPLE_IDS per kind)."""
    lines = []
    kinds = ('lost_outside_window_ids',) if outside_only else ('lost_in_window_ids', 'lost_outside_window_ids')
    for section, name, total_of in (('requests', 'requests to %(target)s on %(subject)s', 'sent'),
                                    ('events', 'events of %(instance)s on %(subject)s', 'published')):
        for group in record[section]['groups'].values():
            lost = group['lost_outside_window'] if outside_only else group['lost']
            if lost:
                lines.append('%s: %d of %d lost (%d in the failure window, %d outside): %s' % (
                    name % group, lost, group[total_of], group['lost_in_window'], group['lost_outside_window'],
                    _ids(group, kinds, lost)))
    return lines


def _others(record, section, count, ids, label):
    return ['%s %s: %d (%s)' % (label, ' '.join(v for k, v in group.items() if k in ('target', 'instance', 'subject')),
                                group[count], _ids(group, (ids,), group[count]))
            for group in record[section]['groups'].values() if group[count]]


def judge(record):
    """The reasons a record fails its budget (empty: PASS), from its measured figures and budget."""
    measured, budget, reasons = record['measured'], record['budget'], []
    if not measured['requests']:
        reasons.append('no requests recorded: nothing to account for (no data is never a pass)')
    if not measured['events']:
        reasons.append('no events published: nothing to account for (no data is never a pass)')
    for kind in ('requests', 'events'):
        pct = measured['%s_lost_pct' % kind]
        if pct is not None and pct > budget['max_lost_pct']:
            totals = record[kind]['totals']
            reasons.append('%s lost: %d of %d (%s %%, at most %s %%): %s' % (
                kind, totals['lost'], totals['sent' if kind == 'requests' else 'published'], _fmt(pct),
                _fmt(budget['max_lost_pct']), '; '.join(line for line in record['lost'] if line.startswith(kind))))
    if measured['lost_outside_window'] > budget['max_lost_outside_window']:
        reasons.append('lost outside the failure window: %d (at most %d): %s' % (
            measured['lost_outside_window'], budget['max_lost_outside_window'],
            '; '.join(lost_lines(record, outside_only=True))))
    for figure, limit, parts in (
            ('duplicated', 'max_duplicated', (('requests', 'duplicated', 'duplicated_ids', 'replies to'),
                                               ('events', 'duplicated', 'duplicated_ids', 'event copies of'))),
            ('reordered', 'max_reordered', (('events', 'reordered', 'reordered_ids', 'events of'),)),
            ('late', 'max_late', (('requests', 'late', 'late_ids', 'requests to'),))):
        if measured[figure] > budget[limit]:
            named = [line for section, count, ids, label in parts
                     for line in _others(record, section, count, ids, label)]
            reasons.append('%s: %d (at most %d): %s' % (figure, measured[figure], budget[limit], '; '.join(named)))
    if measured['unmatched']:
        reasons.append('unmatched: %d replies to no request sent and %d event copies nobody published '
                       '(the ledger cannot account for them)' % (record['requests']['totals']['unmatched_replies'],
                                                                 record['events']['totals']['unmatched']))
    timings = record['timings']
    if timings['detection_seconds'] is None:
        reasons.append('not detected: the failure window has no detected_at')
    elif timings['detection_seconds'] > budget['max_detection_seconds']:
        reasons.append('detected after %s s (at most %s s)' % (_fmt(timings['detection_seconds']),
                                                              _fmt(budget['max_detection_seconds'])))
    if record['window']['recovered_at'] is None:
        reasons.append('not recovered: the failure window has no recovered_at')
    if timings['recovery_seconds'] is None:
        reasons.append('no good reply after the last failed request (%s): not recovered' % (
            timings['last_failed_at'] or 'none failed'))
    elif timings['recovery_seconds'] > budget['max_recovery_seconds']:
        reasons.append('recovered after %s s, the first good reply at %s (at most %s s)' % (
            _fmt(timings['recovery_seconds']), timings['first_good_reply_after_at'],
            _fmt(budget['max_recovery_seconds'])))
    return reasons


def _fmt(value):
    return '{:.10g}'.format(value) if isinstance(value, float) else str(value)


# ================================================================================ reading and writing

def check_record(record, where):
    """Why a ledger record read back does not show its failure mode within budget (empty: it does):
    not a record of this version, its budget out of range, its verdict FAIL (with its reasons), or a
    verdict its own figures and budget do not confirm."""
    if not isinstance(record, dict) or record.get('version') != RECORD_VERSION:
        return ['%s is not a ledger record (version %s)' % (where, RECORD_VERSION)]
    if record.get('mode') not in FAILURE_MODES:
        return ['%s: unknown failure mode %r (allowed: %s)' % (where, record.get('mode'), ', '.join(FAILURE_MODES))]
    problems = budget_problems(record.get('budget'), '%s: budget' % where)
    if problems:
        return problems
    try:
        reasons = judge(record)
    except (KeyError, TypeError, AttributeError) as exc:
        return ['%s: incomplete ledger record (%s %s)' % (where, type(exc).__name__, exc)]
    if record.get('verdict') == PASS and reasons:
        return ['%s says PASS but its figures fail its budget: %s' % (where, '; '.join(reasons))]
    if record.get('verdict') != PASS:
        return ['%s: %s' % (where, reason) for reason in (record.get('reasons') or reasons or ['verdict %r' % (
            record.get('verdict'),)])]
    return []


def write_ledger(store, folder, record):
    """Write the record atomically (ArtifactStore.write_json) to Layout.failure_ledger(folder, its
    mode); returns the path written."""
    return store.write_json(Layout.failure_ledger(folder, record['mode']), record)
