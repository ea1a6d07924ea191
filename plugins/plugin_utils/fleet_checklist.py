# -*- coding: utf-8 -*-
"""The execution record of a wave: the seed's checklist (monitoring/SPRINT_5_3_EXECUTION_CHECKLIST.md,
phases 0-6) filled in from the audit trail the ``audit_trail`` callback wrote for the run. Standard
library only, so ``scripts/render-checklist`` can load this file with a bare python3.

Every time in the checklist is the ``ts`` of an audit event (the UTC time it was written), shown to
the second; every duration is the difference of two such times. Nothing is estimated: a step with no
event is "not reached".

Sections (for a wave of P phases; wave 2 has P = 2 and gives the seed's phases 0-6):

* Phase 0 - pre-deployment: plan valid, previous wave's GO, NATS, and per host the agents answering;
* Phase 2k-1 - deploy the agents of wave phase k, one line per host (started, finished, result);
* Phase 2k - phase k stabilization (k < P) or monitoring (k = P): each checkpoint with the time it
  was taken and its GO/NO-GO, then the phase's go/no-go gate;
* Phase 2P+1 - final analysis and the wave's GO/NO-GO;
* Phase 2P+2 - rollback: the rollback run(s) that follow the wave run in the same events (several
  trail files may be given, in order), else "not needed" or "not run".

What it keys on
===============
Only the play and task names below (as Ansible reports them, templated), in playbooks/wave/*.yml,
roles/wave_deploy and playbooks/rollback.yml. A renamed play or task is not guessed at: its step
shows as "not reached" (or "not finished"), never as done. ``{wave}`` is the wave's name, ``{n}``
the phase number and ``{label}`` a checkpoint label.

Plays: ``PLAY_PREFLIGHT`` (controller), ``PLAY_PREFLIGHT_HOSTS``, ``PLAY_DEPLOY`` (one play_start per
host: serial 1), ``PLAY_WATCH``, ``PLAY_DECIDE``; a rollback run is a run with a play named
``Rollback: ...`` (``PLAY_ROLLBACK_*``).

Tasks: see the ``T_*`` constants. What each gives:

* ``T_PLAN``, ``T_PREVIOUS``, ``T_NATS``: the controller pre-flight items; ``T_UNITS_ACTIVE`` ends
  the host pre-flight (a host is done when it is ok there; any failure in that play fails the host);
  the loop items of ``T_AGENTS_ANSWER`` there are the wave's agents.
* ``T_FLIP`` (its loop items: the phase's agents; changed = flipped now) and ``T_DEPLOY_DONE``: a
  host's deploy is done when ``T_DEPLOY_DONE`` is ok for it. It started at the first task of its
  batch, finished at that result (or at its last failure). ``T_DEPLOY_RESTORE`` changed: the
  deploy's rescue put that host back on its backup (it no longer needs a rollback).
* ``T_CHECKPOINTS`` (its loop items: the phase's checkpoint labels), ``T_JUDGE`` (taken at its
  result), ``T_SHOW`` (its ``msg`` "<wave> <label>: GO|NO-GO[ — failures]" gives the decision),
  ``T_WAIT`` (a wait still open at the end of the trail), ``T_GATE`` (the phase's go/no-go: ok is
  GO, failed is NO-GO) and ``T_GATE_NOGO`` (the wave's NO-GO recorded at a gate).
* ``T_DECISION``, ``T_VERDICT``: the final analysis and the wave's GO (ok) or NO-GO (failed).
* Rollback: each host's results in ``PLAY_ROLLBACK_RESTORE``, ``T_RB_RECORD``, ``T_RB_SUMMARY``.

Phases that never started are known only through their agents: the wave's agents (pre-flight) not
deployed in a phase seen in the run form one more, not-reached phase.
"""

from __future__ import annotations

import argparse
import datetime
import io
import json
import os
import re
import sys

from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_audit

PLAY_PREFLIGHT = 'Pre-flight on the controller: validate the plan of {wave}'
PLAY_PREFLIGHT_HOSTS = 'Pre-flight on every host before any changes: {wave}'
PLAY_DEPLOY = 'Enable unified subjects host by host: {wave} phase {n}'
PLAY_WATCH = 'Watch, checkpoints and go/no-go: {wave} phase {n}'
PLAY_DECIDE = 'Final analysis and GO/NO-GO of {wave}'
PLAY_ROLLBACK_CHECK = 'Rollback: decide what to roll back and check every host before changing any'
PLAY_ROLLBACK_RESTORE = 'Rollback: restore, restart and verify legacy-only'
PLAY_ROLLBACK_VERIFY = 'Rollback: verify fleet-wide and record'
ROLLBACK_PREFIX = 'Rollback:'

T_PLAN = 'Ensure the inventory describes a valid wave'
T_PREVIOUS = 'Ensure the previous wave ended GO'
T_NATS = 'Ensure NATS is reachable from the controller'
T_AGENTS_ANSWER = 'Ensure NATS is reachable and each agent answers before the change'
T_UNITS_ACTIVE = 'Ensure the agent units are active'
T_FLIP = 'Ensure unified subjects are enabled in each env file (backed up first)'
T_DEPLOY_DONE = "Record the deploy in the run's timeline"
T_DEPLOY_RESTORE = 'Restore the env files changed by this run'
T_CHECKPOINTS = 'Take each checkpoint of the phase'
T_WAIT = 'Wait for checkpoint {label}'
T_JUDGE = 'Judge and record checkpoint {label}'
T_SHOW = 'Show checkpoint {label}'
T_GATE = 'Stop at the go/no-go gate unless every checkpoint of the phase is GO'
T_GATE_NOGO = "Record the wave's NO-GO when the gate fails"
T_DECISION = 'Record the wave decision from its checkpoints'
T_VERDICT = 'Ensure the wave ended GO'
T_RB_RECORD = 'Record the rollback'
T_RB_SUMMARY = 'Show the rollback summary'

SHOW_RE = re.compile(r'^\S+ (?P<label>\S+): (?P<decision>GO|NO-GO)(?: \u2014 (?P<why>.*))?$', re.S)
MAX_MSG = 400

# Item states and their checkbox.
DONE, FAILED, NOGO, SKIPPED, NOT_REACHED, OPEN = 'done', 'FAILED', 'NO-GO', 'skipped', 'not reached', 'open'
MARK = {DONE: 'x', FAILED: '!', NOGO: '!', SKIPPED: ' ', NOT_REACHED: ' ', OPEN: ' '}


class ChecklistError(Exception):
    """The trail is broken, unreadable, or holds no run of the wave."""


# ================================================================================ loading

def load_events(path, anchor=None):
    """The events of the audit trail at ``path``, after verifying its hash chain (and the anchor
    ``SEQ:HASH`` if given) on the very bytes parsed. A broken trail raises ChecklistError naming
    the file and the first bad line."""
    with open(path, 'rb') as stream:
        data = stream.read()
    ok, line, reason = fleet_audit.verify(io.BytesIO(data), anchor=anchor)
    if not ok:
        raise ChecklistError('%s: line %s: %s; refusing to render a checklist from a broken audit trail '
                             '(check it with scripts/audit-verify)' % (path, line, reason))
    return [json.loads(body) for body in data.decode('utf-8').splitlines() if body]


# ================================================================================ the runs

class _Task:
    def __init__(self, name, ts):
        self.name, self.ts, self.results = name, ts, []


class _Play:
    def __init__(self, name, ts):
        self.name, self.ts, self.last, self.tasks = name, ts, ts, []

    def results(self, task=None, host=None, items=False):
        """(task, result) for the results of tasks named ``task`` (all when None): the final
        results, or the loop items' results with items=True."""
        for entry in self.tasks:
            if task is not None and entry.name != task:
                continue
            for result in entry.results:
                if bool(result.get('loop_item')) == items and (host is None or result.get('host') == host):
                    yield entry, result


class _Run:
    def __init__(self, start):
        self.start, self.plays, self.end, self.last = start, [], None, start and start['ts']

    @property
    def run_id(self):
        return (self.start or {}).get('run_id')

    @property
    def playbook(self):
        return (self.start or {}).get('playbook') or ''

    def stem(self):
        return os.path.splitext(os.path.basename(self.playbook))[0]

    def plays_named(self, name):
        return [play for play in self.plays if play.name == name]


def _runs(events):
    """Split the events into runs (playbook_start ... playbook_end), plays and tasks."""
    runs, run, play, task = [], None, None, None
    for event in events:
        kind = event.get('event')
        if kind == 'playbook_start' or run is None:
            run, play, task = _Run(event if kind == 'playbook_start' else None), None, None
            runs.append(run)
            if kind == 'playbook_start':
                continue
        run.last = event.get('ts', run.last)
        if kind == 'play_start':
            play, task = _Play(event.get('name') or '', event['ts']), None
            run.plays.append(play)
            continue
        if kind == 'playbook_end':
            run.end = event
            continue
        if kind not in ('task_start', 'handler_start', 'host_result'):
            continue  # stats, log_recovered
        if play is None:
            play = _Play('', event['ts'])
            run.plays.append(play)
        play.last = event['ts']
        if kind != 'host_result':
            task = _Task(event.get('name') or '', event['ts'])
            play.tasks.append(task)
        else:
            if task is None or (event.get('task') and event['task'] != task.name):
                task = _Task(event.get('task') or '', event['ts'])
                play.tasks.append(task)
            task.results.append(event)
    return runs


def _wave_play_names(wave):
    fixed = {PLAY_PREFLIGHT.format(wave=wave), PLAY_PREFLIGHT_HOSTS.format(wave=wave), PLAY_DECIDE.format(wave=wave)}
    phased = re.compile('^(?:%s|%s)$' % tuple(re.escape(p.format(wave=wave, n='@')).replace('@', r'\d+')
                                              for p in (PLAY_DEPLOY, PLAY_WATCH)))
    return fixed, phased


def _is_wave_run(run, wave):
    fixed, phased = _wave_play_names(wave)
    return run.stem() == wave or any(p.name in fixed or phased.match(p.name) for p in run.plays)


def _is_rollback_run(run):
    return run.stem() == 'rollback' or any(p.name.startswith(ROLLBACK_PREFIX) for p in run.plays)


def waves_in(events):
    """The waves whose runs the events hold, in order of first run."""
    found = []
    for run in _runs(events):
        for play in run.plays:
            match = re.match('^' + re.escape(PLAY_PREFLIGHT.format(wave='@')).replace('@', r'(\S+)') + '$', play.name)
            if match and match.group(1) not in found:
                found.append(match.group(1))
        if re.fullmatch(r'wave\d+', run.stem()) and run.stem() not in found:
            found.append(run.stem())
    return found


# ================================================================================ helpers

def _t(ts):
    """An event time to the second: 2026-01-23T22:00:41Z."""
    return ts[:19] + 'Z' if ts else '-'


def _parse(ts):
    return datetime.datetime.strptime(ts, '%Y-%m-%dT%H:%M:%S.%fZ')


def _duration(start, end):
    if not start or not end:
        return '-'
    seconds = int(round((_parse(end) - _parse(start)).total_seconds()))
    if seconds < 60:
        return '%d s' % seconds
    if seconds < 3600:
        return '%d min %02d s' % divmod(seconds, 60)
    hours, rest = divmod(seconds, 3600)
    return '%d h %02d min' % (hours, rest // 60)


def _msg(result):
    text = result.get('msg')
    if text is None:
        return ''
    if not isinstance(text, str):
        text = json.dumps(text)
    text = ' '.join(text.split())
    return text if len(text) <= MAX_MSG else text[:MAX_MSG] + '…'


def _failed(result):
    return result.get('status') in ('failed', 'unreachable') and not result.get('ignored')


def _state(results):
    """DONE, FAILED, SKIPPED or NOT_REACHED for a task's final results."""
    if not results:
        return NOT_REACHED
    if any(_failed(r) for r in results):
        return FAILED
    if all(r.get('status') == 'skipped' for r in results):
        return SKIPPED
    return DONE


def _items(plays, task):
    """The loop items' labels of ``task`` in these plays, in order, once each."""
    seen = []
    for play in plays:
        for _task, result in play.results(task, items=True):
            if result.get('item') and result['item'] not in seen:
                seen.append(result['item'])
    return seen


def _wave_title(wave):
    """wave2 -> Wave 2, as the seed writes it."""
    match = re.fullmatch(r'wave(\d+)', wave)
    return 'Wave %s' % match.group(1) if match else wave


def _host_key(host):
    return [int(part) if part.isdigit() else part for part in re.split(r'(\d+)', host)]


def _final(plays, task, host=None):
    return [r for play in plays for _task, r in play.results(task, host)]


class _Section:
    def __init__(self, title):
        self.title, self.lines, self.states, self.start, self.end, self.state = title, [], [], None, None, None

    def item(self, state, text):
        self.states.append(state)
        self.lines.append('- [%s] %s' % (MARK[state], text))

    def note(self, text):
        self.lines.append(text)

    def span(self, *times):
        for ts in times:
            if ts:
                self.start = ts if self.start is None or ts < self.start else self.start
                self.end = ts if self.end is None or ts > self.end else self.end

    def status(self):
        if self.state:
            return self.state
        counted = [s for s in self.states if s != SKIPPED]
        for bad in (FAILED, NOGO):
            if bad in counted:
                return bad
        if counted and all(s == DONE for s in counted):
            return DONE
        if not any(s in (DONE, OPEN) for s in counted):
            return NOT_REACHED
        return 'incomplete'


# ================================================================================ the sections

def _preflight(run, wave, hosts):
    section = _Section('Pre-deployment (pre-flight)')
    controller = run.plays_named(PLAY_PREFLIGHT.format(wave=wave))
    for play in controller:
        section.span(play.ts, play.last)
    for task, label in ((T_PLAN, "Wave plan valid for the inventory"),
                        (T_PREVIOUS, "Previous wave's GO recorded"),
                        (T_NATS, 'NATS reachable from the controller')):
        results = _final(controller, task)
        state, last = _state(results), (results[-1] if results else None)
        if state == DONE:
            section.item(DONE, '%s — %s' % (label, _t(last['ts'])))
        elif state == FAILED:
            section.item(FAILED, '%s — **FAILED** at %s: %s' % (label, _t(last['ts']), _msg(last)))
        elif state == SKIPPED:
            why = ' by the playbook at %s (no previous wave, or not required)' if task == T_PREVIOUS else ' at %s'
            section.item(SKIPPED, '%s — skipped%s' % (label, why % _t(last['ts'])))
        else:
            section.item(NOT_REACHED, '%s — not reached' % label)
    on_hosts = run.plays_named(PLAY_PREFLIGHT_HOSTS.format(wave=wave))
    for play in on_hosts:
        section.span(play.ts, play.last)
    for host in hosts:
        results = [r for play in on_hosts for _task, r in play.results(host=host)]
        failures = [r for r in results if _failed(r)]
        done = [r for r in _final(on_hosts, T_UNITS_ACTIVE, host) if not _failed(r)]
        what = '**%s**: agents installed, well-formed and answering; units active' % host
        if failures:
            section.item(FAILED, '%s — **FAILED** at %s in %r: %s' % (
                what, _t(failures[-1]['ts']), failures[0].get('task'), _msg(failures[-1])))
        elif done:
            section.item(DONE, '%s — %s' % (what, _t(done[-1]['ts'])))
        else:
            section.item(NOT_REACHED, '%s — not reached' % what)
    return section


def _deploy(run, wave, number, hosts, title, preview=False):
    section = _Section(title)
    plays = run.plays_named(PLAY_DEPLOY.format(wave=wave, n=number))
    order = []
    for play in plays:
        section.span(play.ts, play.last)
        for _task, result in play.results():
            if result.get('host') and result['host'] not in order:
                order.append(result['host'])
    order += [h for h in hosts if h not in order]
    if not order:
        section.item(NOT_REACHED, 'not reached')
    flips = {}
    for play in plays:
        for _task, result in play.results(T_FLIP, items=True):
            flips.setdefault(result.get('host'), []).append(result)
    for host in order:
        mine = [(task, r) for play in plays for task, r in play.results(host=host)]
        if not mine:
            section.item(NOT_REACHED, '**%s** — not reached' % host)
            continue
        started = mine[0][0].ts
        failures = [(task, r) for task, r in mine if _failed(r)]
        done = [r for task, r in mine if task.name == T_DEPLOY_DONE and not _failed(r)]
        if failures:
            last = failures[-1][1]
            section.item(FAILED, '**%s** — started %s, **%s** at %s (%s) in %r: %s' % (
                host, _t(started), 'UNREACHABLE' if last.get('status') == 'unreachable' else 'FAILED',
                _t(last['ts']), _duration(started, last['ts']), failures[0][0].name, _msg(last)))
        elif done:
            flipped = [r.get('item') for r in flips.get(host, []) if r.get('status') == 'changed']
            already = [r.get('item') for r in flips.get(host, []) if r.get('status') == 'ok']
            detail = '; '.join(part for part in (
                ('%s %s' % ('would flip (check mode)' if preview else 'flipped', ', '.join(flipped))) if flipped else '',
                ('already on: %s' % ', '.join(already)) if already else '') if part)
            section.item(DONE, '**%s** — started %s, finished %s (%s) — ok%s' % (
                host, _t(started), _t(done[-1]['ts']), _duration(started, done[-1]['ts']),
                (': ' + detail) if detail else ''))
        else:
            section.item(OPEN, '**%s** — started %s, not finished in this trail (no %r result)'
                         % (host, _t(started), T_DEPLOY_DONE))
    return section


def _checkpoint_line(section, plays, label):
    judged = _final(plays, T_JUDGE.format(label=label))
    shown = _final(plays, T_SHOW.format(label=label))
    if judged and any(_failed(r) for r in judged):
        last = [r for r in judged if _failed(r)][-1]
        section.item(FAILED, '`%s` — **FAILED** at %s: %s' % (label, _t(last['ts']), _msg(last)))
        return
    if judged:
        taken = judged[-1]['ts']
        match = SHOW_RE.match(_msg(shown[-1])) if shown else None
        if match is None:
            section.item(OPEN, '`%s` — taken %s, decision not in the trail (no %r message)'
                         % (label, _t(taken), T_SHOW.format(label=label)))
        elif match.group('decision') == 'GO':
            section.item(DONE, '`%s` — taken %s — GO' % (label, _t(taken)))
        else:
            section.item(NOGO, '`%s` — taken %s — **NO-GO**: %s'
                         % (label, _t(taken), match.group('why') or 'no detail'))
        return
    waits = [task for play in plays for task in play.tasks if task.name == T_WAIT.format(label=label)]
    if waits and not waits[-1].results:
        section.item(NOT_REACHED, '`%s` — not reached (the trail ends while waiting for it, since %s)'
                     % (label, _t(waits[-1].ts)))
    else:
        section.item(NOT_REACHED, '`%s` — not reached' % label)


def _watch(run, wave, number, gate_for, title):
    section = _Section(title)
    plays = run.plays_named(PLAY_WATCH.format(wave=wave, n=number))
    for play in plays:
        section.span(play.ts, play.last)
    labels = _items(plays, T_CHECKPOINTS)
    judge = re.compile('^' + re.escape(T_JUDGE.format(label='@')).replace('@', '(.+)') + '$')
    for play in plays:
        for task in play.tasks:
            match = judge.match(task.name)
            if match and match.group(1) not in labels:
                labels.append(match.group(1))
    if not labels:
        section.item(NOT_REACHED, 'Checkpoints — not reached')
    for label in labels:
        _checkpoint_line(section, plays, label)
    gate = _final(plays, T_GATE)
    what = 'Go/no-go %s' % gate_for
    if not gate:
        section.item(NOT_REACHED, '%s — not reached' % what)
    elif _failed(gate[-1]):
        section.item(NOGO, '%s — **NO-GO** at %s: %s' % (what, _t(gate[-1]['ts']), _msg(gate[-1])))
    else:
        detail = _msg(gate[-1])
        section.item(DONE, '%s — GO at %s%s' % (what, _t(gate[-1]['ts']), (': ' + detail) if detail else ''))
    return section


def _final_analysis(run, wave, phases):
    section = _Section('Final analysis and GO/NO-GO')
    plays = run.plays_named(PLAY_DECIDE.format(wave=wave))
    for play in plays:
        section.span(play.ts, play.last)
    recorded = _final(plays, T_DECISION)
    state = _state(recorded)
    what = 'Checkpoints aggregated, criteria evaluated, decision and report recorded'
    if state == DONE:
        section.item(DONE, '%s — %s' % (what, _t(recorded[-1]['ts'])))
    elif state == FAILED:
        section.item(FAILED, '%s — **FAILED** at %s: %s' % (what, _t(recorded[-1]['ts']), _msg(recorded[-1])))
    else:
        section.item(NOT_REACHED, '%s — not reached' % what)
    verdict = _final(plays, T_VERDICT)
    decision = None
    if verdict and _failed(verdict[-1]):
        decision = 'NO-GO'
        section.item(NOGO, 'Wave decision: **NO-GO** at %s — %s' % (_t(verdict[-1]['ts']), _msg(verdict[-1])))
    elif verdict and verdict[-1].get('status') != 'skipped':
        decision = 'GO'
        section.item(DONE, 'Wave decision: **GO** at %s — %s' % (_t(verdict[-1]['ts']), _msg(verdict[-1])))
    else:
        gate_nogo = [(number, r) for number in phases
                     for r in _final(run.plays_named(PLAY_WATCH.format(wave=wave, n=number)), T_GATE_NOGO)
                     if r.get('status') in ('ok', 'changed')]
        if gate_nogo:
            number, result = gate_nogo[-1]
            decision = 'NO-GO'
            section.span(result['ts'])
            section.item(NOGO, 'Wave decision: **NO-GO**, recorded at the phase %s gate at %s'
                         % (number, _t(result['ts'])))
        else:
            section.item(NOT_REACHED, 'Wave decision — not reached')
    return section, decision


def _rollback(runs, after, wave, decision, changed, restored, ended, preview=False):
    section = _Section('Rollback')
    rollbacks = []
    for run in runs[after + 1:]:  # up to the next run of the same wave
        if _is_wave_run(run, wave):
            break
        if _is_rollback_run(run):
            rollbacks.append(run)
    for run in rollbacks:
        start = run.start['ts'] if run.start else (run.plays[0].ts if run.plays else None)
        section.span(start, run.last)
        section.item(DONE, 'Rollback run `%s` (%s) started %s' % (run.run_id, run.playbook or 'rollback', _t(start)))
        checks = run.plays_named(PLAY_ROLLBACK_CHECK)
        results = [r for play in checks for _task, r in play.results()]
        state = _state(results)
        what = 'Targets decided, every host checked before any change'
        if state == NOT_REACHED:
            section.item(NOT_REACHED, '%s — not reached' % what)
        elif state == FAILED:
            bad = [r for r in results if _failed(r)]
            section.item(FAILED, '%s — **FAILED** at %s on %s: %s'
                         % (what, _t(bad[-1]['ts']), bad[-1].get('host'), _msg(bad[-1])))
        else:
            section.item(DONE, '%s — %s' % (what, _t(results[-1]['ts'])))
        restore = run.plays_named(PLAY_ROLLBACK_RESTORE)
        hosts = sorted({r['host'] for play in restore for _task, r in play.results() if r.get('host')}, key=_host_key)
        if not hosts:
            section.item(NOT_REACHED, 'Restore, restart and verify legacy-only — not reached')
        for host in hosts:
            mine = [r for play in restore for _task, r in play.results(host=host)]
            bad = [r for r in mine if _failed(r)]
            if bad:
                section.item(FAILED, '**%s**: restore, restart, verify legacy-only — **FAILED** at %s: %s'
                             % (host, _t(bad[-1]['ts']), _msg(bad[-1])))
            else:
                section.item(DONE, '**%s**: restore, restart, verify legacy-only — %s' % (host, _t(mine[-1]['ts'])))
        verify = run.plays_named(PLAY_ROLLBACK_VERIFY)
        recorded = _final(verify, T_RB_RECORD)
        bad = [r for play in verify for _task, r in play.results() if _failed(r)]
        what = 'Verified fleet-wide and recorded'
        if bad:
            section.item(FAILED, '%s — **FAILED** at %s: %s' % (what, _t(bad[-1]['ts']), _msg(bad[-1])))
        elif recorded:
            summary = _final(verify, T_RB_SUMMARY)
            section.item(DONE, '%s — %s%s' % (what, _t(recorded[-1]['ts']),
                                              (': ' + _msg(summary[-1])) if summary and _msg(summary[-1]) else ''))
        else:
            section.item(NOT_REACHED, '%s — not reached' % what)
        if run.end:
            outcome = run.end.get('outcome')
            section.item(DONE if outcome == 'ok' else FAILED, 'Rollback ended %s — outcome **%s**, %s' % (
                _t(run.end['ts']), outcome, _duration(start, run.end['ts'])))
        else:
            section.item(OPEN, 'Rollback run has not ended in this trail (no playbook_end)')
    if rollbacks:
        return section
    if preview:
        section.note('Not needed: a check-mode run changes nothing.')
        section.state = 'not needed'
    elif decision == 'GO':
        section.note('Not needed: the wave ended GO; no rollback ran in this trail.')
        section.state = 'not needed'
    elif not ended:
        section.note('Not run: the wave run has not ended in this trail.')
        section.state = 'not run'
    elif not changed:
        section.note('Not needed: no host was left changed by this run%s; no rollback ran in this trail.'
                     % ((' (%s restored by the deploy\'s rescue)' % ', '.join(restored)) if restored else ''))
        section.state = 'not needed'
    else:
        section.item(NOT_REACHED, 'Not run in this trail: the run ended %s with the flag flipped on %s%s. Roll back '
                     'with `ansible-playbook playbooks/rollback.yml -e rollback_wave=%s`, or record why not (a '
                     'rollback that wrote its own trail: give that file after this one).'
                     % (decision or 'without a decision', ', '.join(changed),
                        (' (%s restored by the deploy\'s rescue)' % ', '.join(restored)) if restored else '', wave))
        section.state = 'not run'
    return section


# ================================================================================ rendering

def render_checklist(events, wave, run_id=None, source=None):
    """The execution checklist of the run of ``wave`` in ``events`` (the last one, or ``run_id``)
    as Markdown. ``source``: where the events came from, for the header."""
    runs = _runs(events)
    candidates = [i for i, run in enumerate(runs) if _is_wave_run(run, wave)]
    if run_id is not None:
        candidates = [i for i in candidates if runs[i].run_id == run_id]
    if not candidates:
        seen = ', '.join('%s (%s)' % (r.playbook or '?', r.run_id) for r in runs) or 'none'
        raise ChecklistError('no run of %s%s in this trail (runs: %s)' % (
            wave, (' with run id %s' % run_id) if run_id else '', seen))
    index = candidates[-1]
    run = runs[index]
    phased = re.compile('^(?:%s|%s)$' % tuple(re.escape(p.format(wave=wave, n='@')).replace('@', r'(\d+)')
                                              for p in (PLAY_DEPLOY, PLAY_WATCH)))
    numbers = sorted({int(m.group(1) or m.group(2)) for m in (phased.match(p.name) for p in run.plays) if m})
    host_plays = run.plays_named(PLAY_PREFLIGHT_HOSTS.format(wave=wave)) + [
        p for p in run.plays if phased.match(p.name)]
    hosts = sorted({r['host'] for p in host_plays for _task, r in p.results() if r.get('host')}, key=_host_key)
    wave_agents = _items(run.plays_named(PLAY_PREFLIGHT_HOSTS.format(wave=wave)), T_AGENTS_ANSWER)
    phases = []  # (number, agents)
    for number in numbers:
        deploys = run.plays_named(PLAY_DEPLOY.format(wave=wave, n=number))
        phases.append((number, _items(deploys, T_FLIP) or _items(deploys, T_AGENTS_ANSWER)))
    if all(agents for _n, agents in phases):
        rest = [a for a in wave_agents if not any(a in agents for _n, agents in phases)]
        if rest or not phases:
            phases.append(((numbers[-1] + 1) if numbers else 1, rest))
    count = len(phases)

    preview = bool((run.start or {}).get('check_mode'))
    sections = [_preflight(run, wave, hosts)]
    for position, (number, agents) in enumerate(phases, 1):
        sections.append(_deploy(run, wave, number, hosts, 'Deploy %s (%s phase %d)' % (
            ', '.join(agents) or 'the phase\'s agents (not recorded)', wave, number), preview))
        last = position == count
        sections.append(_watch(run, wave, number,
                               'at the end of the monitoring' if last else 'for phase %d' % phases[position][0],
                               ('Monitoring' if count == 1 else '%s complete monitoring' % _wave_title(wave))
                               if last else 'Phase %d stabilization' % number))
    final, decision = _final_analysis(run, wave, [n for n, _a in phases])
    sections.append(final)
    deploys = [p for number, _a in phases for p in run.plays_named(PLAY_DEPLOY.format(wave=wave, n=number))]
    flipped = {r['host'] for p in deploys for _task, r in p.results(T_FLIP, items=True) if r.get('status') == 'changed'}
    restored = {r['host'] for p in deploys for _task, r in p.results(T_DEPLOY_RESTORE) if r.get('status') == 'changed'}
    changed = sorted(flipped - restored, key=_host_key)
    restored = sorted(restored & flipped, key=_host_key)
    sections.append(_rollback(runs, index, wave, decision, changed, restored, run.end is not None, preview))

    start = run.start['ts'] if run.start else (run.plays[0].ts if run.plays else None)
    lines = ['# %s execution checklist' % wave, '']
    if source:
        lines.append('Source: %s (hash chain verified).' % source)
    lines += ['Every time is the UTC time of an audit event, to the second; durations are differences of two such '
              'times. `[x]` done, `[!]` failed or NO-GO, `[ ]` not reached or skipped.', '']
    start_event = run.start or {}
    lines.append('- Run `%s`: `%s` by `%s`, limit `%s`, check mode %s' % (
        run.run_id, run.playbook or '?', start_event.get('user', '?'), start_event.get('limit') or 'none',
        'yes (a preview: nothing was changed or watched)' if start_event.get('check_mode') else 'no'))
    if run.end:
        lines.append('- Started %s, ended %s (%s): outcome **%s**%s' % (
            _t(start), _t(run.end['ts']), _duration(start, run.end['ts']), run.end.get('outcome'),
            (', failed hosts: ' + ', '.join(run.end['failed_hosts'])) if run.end.get('failed_hosts') else ''))
    else:
        lines.append('- Started %s; the trail ends at %s without the end of the run (still running, or killed)'
                     % (_t(start), _t(run.last)))
    others = [runs[i] for i in candidates[:-1]] if run_id is None else []
    if others:
        lines.append('- This trail holds %d earlier run(s) of %s: %s' % (len(others), wave, ', '.join(
            '`%s` (%s)' % (r.run_id, _t(r.start and r.start['ts'])) for r in others)))
    lines += ['', '| Phase | Step | Status | Started | Finished | Duration |', '|---|---|---|---|---|---|']
    for number, section in enumerate(sections):
        lines.append('| %d | %s | %s | %s | %s | %s |' % (number, section.title, section.status(), _t(section.start),
                                                          _t(section.end), _duration(section.start, section.end)))
    for number, section in enumerate(sections):
        lines += ['', '## Phase %d — %s' % (number, section.title), '']
        lines += section.lines
    return '\n'.join(lines) + '\n'


# --- scripts/render-checklist ------------------------------------------------------------------------

RENDER_CHECKLIST_USAGE = """Fill the wave's execution checklist from audit trails: scripts/render-checklist [--wave WAVE] [--run RUN_ID]
[--anchor SEQ:SHA256] [-o OUT.md] AUDIT.jsonl [MORE.jsonl ...]

Verifies each trail's hash chain first and refuses a broken one (exit 1, naming the file and the first
bad line), then prints the checklist as Markdown (or writes it to OUT.md): phases 0-6 of the seed's
checklist with the real UTC time of each step, taken from the audit events (see
plugins/module_utils/fleet_checklist.py for the play and task names it keys on).

AUDIT.jsonl is the wave run's trail (artifacts/audit/wave2-<stamp>.jsonl). A rollback that wrote its own
trail is included when its file follows: scripts/render-checklist wave2-A.jsonl rollback-B.jsonl.
--wave defaults to the last wave run found; --run picks one run when a trail holds several; --anchor
(with a single file) is the head the callback printed at the end of the run. Needs only python3."""


def main(argv):
    parser = argparse.ArgumentParser(prog='render-checklist', description=RENDER_CHECKLIST_USAGE.splitlines()[0])
    parser.add_argument('files', metavar='AUDIT.jsonl', nargs='+')
    parser.add_argument('--wave', help='the wave to render (default: the last wave run in the trails)')
    parser.add_argument('--run', metavar='RUN_ID', help='the run to render when the trails hold several')
    parser.add_argument('--anchor', metavar='SEQ:SHA256', help='head of the log as printed at the end of the run')
    parser.add_argument('-o', '--output', metavar='OUT.md', help='write the checklist here instead of stdout')
    args = parser.parse_args(argv)
    if args.anchor and len(args.files) != 1:
        parser.error('--anchor applies to a single AUDIT.jsonl')
    events = []
    try:
        for path in args.files:
            try:
                events += load_events(path, anchor=args.anchor)
            except ValueError as exc:  # a malformed --anchor
                parser.error(str(exc))
        wave = args.wave
        if wave is None:
            found = waves_in(events)
            if not found:
                raise ChecklistError('%s: no wave run found; name the wave with --wave'
                                               % ', '.join(args.files))
            wave = found[-1]
        text = render_checklist(events, wave, run_id=args.run, source=', '.join(args.files))
    except OSError as exc:
        print('render-checklist: %s: %s' % (exc.filename or '', exc.strerror or exc), file=sys.stderr)
        return 1
    except ChecklistError as exc:
        print('render-checklist: %s' % exc, file=sys.stderr)
        return 1
    if args.output:
        with open(args.output, 'w', encoding='utf-8') as out:
            out.write(text)
        print('render-checklist: wrote %s' % args.output, file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
