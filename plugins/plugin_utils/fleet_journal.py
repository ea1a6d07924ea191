# -*- coding: utf-8 -*-
"""The run journal: one structured record per step of a wave run, appended as it happens to
``runs/<run_id>/journal.jsonl`` in the artifact store, and everything a person reads about the run
rendered from it: the report's timeline, the wave report and the seed's execution checklist.

A record: ``seq``, ``run_id``, ``wave``, ``step`` (one of STEPS), ``phase``, ``host``, ``label``,
``started`` and ``finished`` (fleet_artifacts.utc), ``outcome``, ``next_step``, ``reasons``,
``artifact`` (a path relative to the store) and ``detail`` (step-specific facts). The first record
of a run is its ``run`` record and carries the plan, so a journal is read on its own.

The audit trail (plugins/callback/audit_trail.py) is tamper evidence for the same run; nothing here
parses it. Standard library only: scripts/render-checklist runs with a bare python3.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_evidence, fleet_policy
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import (ArtifactError, ArtifactStore,
                                                                                         Layout, epoch_of, utc)

# The steps of a run, in the order a wave goes through them. A run re-started after its controller
# died records a resume where it goes on; a phase's watch records when its clock started.
RUN, RESUME, LOCK, PREFLIGHT, DEPLOY, WATCH, CHECKPOINT, MONITORING_ROUND, APPROVAL, ROLLBACK_STEP, GATE, PAUSE, \
    DECISION = ('run', 'resume', 'lock', 'preflight', 'deploy', 'watch', 'checkpoint', 'monitoring round', 'approval',
                'rollback', 'gate', 'pause', 'decision')
# A pause ends a job after a phase's go/no-go (wave_pause_after_phase): the run is unfinished, and the
# next job resumes it like a run that was cut off.
STEPS = (RUN, RESUME, LOCK, PREFLIGHT, DEPLOY, WATCH, CHECKPOINT, MONITORING_ROUND, APPROVAL, ROLLBACK_STEP, GATE,
         PAUSE, DECISION)
# The pre-flight record of the pre-flip probe (playbooks/wave/preflight.yml): each instance's latency baseline.
PRE_FLIP_PROBE = 'pre-flip probe'
FIELDS = ('phase', 'host', 'label', 'started', 'finished', 'outcome', 'next_step', 'reasons', 'artifact', 'detail')


class JournalError(Exception):
    pass


class Journal:
    """The journal of one run in an artifact store. With a key (fleet_evidence.EvidenceKey) each
    record is signed as it is appended and every record read must verify: the gate, the decision
    and a person's approval are read back from here, so a line added or edited by hand must not
    count."""

    def __init__(self, store, run_id, key=None):
        if not run_id or os.sep in run_id or run_id.startswith('.'):
            raise JournalError('run id %r cannot name a journal' % (run_id,))
        self.store, self.run_id, self.key = store, run_id, key
        self.relpath = Layout.journal(run_id)

    def records(self):
        records = self.store.read_jsonl(self.relpath)
        if self.key is not None:
            full = self.store.path(self.relpath)
            for number, record in enumerate(records, 1):
                try:
                    fleet_evidence.verify(self.key, record, '%s record %d' % (full, number))
                except fleet_evidence.EvidenceError as exc:
                    raise JournalError(str(exc))
        return records

    def append(self, wave, step, **fields):
        """Append one record (seq is the journal's next line number) and return it. started and
        finished are epochs or already-formatted stamps; finished defaults to now."""
        if step not in STEPS:
            raise JournalError('unknown journal step %r (one of %s)' % (step, ', '.join(STEPS)))
        unknown = sorted(set(fields) - set(FIELDS))
        if unknown:
            raise JournalError('unknown journal field(s) %s' % ', '.join(unknown))
        record = {k: None for k in FIELDS}
        record.update(fields, run_id=self.run_id, wave=wave, step=step)
        for key in ('started', 'finished'):
            if isinstance(record[key], (int, float)) and not isinstance(record[key], bool):
                record[key] = utc(record[key])
        record['finished'] = record['finished'] or utc()
        record['reasons'] = list(record['reasons'] or [])
        with self.store.locked(self.relpath):
            records = self.records()
            record['seq'] = len(records) + 1
            record = fleet_evidence.seal(self.key, record)
            self.store.append_jsonl(self.relpath, record, lock=False)
            status = run_status(records + [record])
            # Where the run stands, for a person or AWX during a long wave: never worth failing the step.
            try:
                self.store.write_json(Layout.status(self.run_id), status)
                self.store.write_json(Layout.status(), status)
            except (ArtifactError, OSError):
                pass
        return record


def _where(record):
    return ' '.join(str(record[k]) for k in ('phase', 'host', 'label') if record.get(k))


def run_status(records):
    """Where a run stands, from its journal: the last step and its outcome, the hosts deployed per
    phase, the rounds taken, and the next round of the current phase with when it is due (the watch's
    start is read back from a round already taken, or the phase's last deploy). `line` is the one
    line a console shows."""
    last = records[-1]
    plan = plan_of(records) or {}
    phases = plan.get('phases') or []
    deployed = {}
    for r in records:
        if r['step'] == DEPLOY and r.get('outcome') == 'ok':
            deployed.setdefault(r.get('phase'), []).append(r.get('host'))
    taken = {(r.get('phase'), r.get('label')) for r in records if r['step'] in (CHECKPOINT, MONITORING_ROUND)}
    state = 'running'
    if last['step'] in (DECISION, ROLLBACK_STEP) or last.get('next_step') in ('stop', 'rollback') \
            or last.get('outcome') == 'failed':
        state = 'ended' if last['step'] == DECISION else 'stopped'
    elif last['step'] == PAUSE:
        state = 'paused'
    upcoming = None
    phase = next((p for p in phases if p.get('name') == last.get('phase')), None)
    if state == 'running' and phase:
        rounds = phase.get('rounds') or []
        after = {x['label']: float(x['after']) for x in rounds}
        starts = [epoch_of(r.get('started')) - after[r['label']] for r in records
                  if r.get('phase') == phase['name'] and r['step'] in (CHECKPOINT, MONITORING_ROUND)
                  and r.get('label') in after and epoch_of(r.get('started')) is not None]
        ends = [epoch_of(r['finished']) for r in records if r['step'] == DEPLOY and r.get('phase') == phase['name']]
        clocks = [float((r.get('detail') or {}).get('t0')) for r in records
                  if r['step'] == WATCH and r.get('phase') == phase['name']]
        t0 = clocks[-1] if clocks else starts[0] if starts else max([e for e in ends if e is not None], default=None)
        following = next((x for x in rounds if (phase['name'], x['label']) not in taken), None)
        if following:
            upcoming = dict(phase=phase['name'], label=following['label'], kind=following.get('kind', 'checkpoint'),
                            due_at=utc(t0 + float(following['after'])) if t0 is not None else None)
    line = '%s %s: %s %s%s' % (
        last.get('wave'), last['run_id'], last['step'], _where(last) + ' ' if _where(last) else '',
        last.get('outcome') or '')
    if upcoming:
        line += '; next %s %s%s' % (upcoming['kind'], upcoming['label'],
                                    ' due ' + upcoming['due_at'] if upcoming['due_at'] else '')
    elif state != 'running':
        line += '; run %s' % state
    planned_rounds = sum(len(p.get('rounds') or []) for p in phases)
    return dict(run_id=last['run_id'], wave=last.get('wave'), state=state, updated_at=last.get('finished'),
                last={k: last.get(k) for k in ('seq', 'step', 'phase', 'host', 'label', 'outcome', 'next_step',
                                               'finished', 'reasons')},
                deployed=deployed, rounds_taken=len(taken), rounds_planned=planned_rounds, next=upcoming,
                line=line)


def progress(records):
    """What a run has done, from its journal, for a re-run that goes on from there (resume):

    preflight [host, ...] whose pre-flight is recorded ok
    latency_baseline  {agent@host: median ms} of the pre-flip probe, None when none is recorded
    request_baseline  {agent@host: its request counters} of the same probe (for rates), None likewise
    deployed  {phase: {host: epoch its deploy started}}, the hosts whose deploy is recorded ok
    watch     {phase: {'t0': epoch, 'baseline': {...}}}, each watch whose clock started
    rounds    {phase: {label: next step}}, each round's last word (a person's answer, else the round)
    gates     {phase: next step}, each phase whose go/no-go is recorded
    pending   the last round when its next step (rollback, ask) was not taken before the run died,
              with what the automatic rollback or the question needs; else None
    """
    preflight, deployed, watch, rounds, gates, pending, latency_baseline = [], {}, {}, {}, {}, None, None
    request_baseline = None
    for record in records:
        step, phase, detail = record['step'], record.get('phase'), record.get('detail') or {}
        if step == PREFLIGHT and record.get('host') and record.get('outcome') == 'ok':
            preflight.append(record['host'])
        elif step == PREFLIGHT and record.get('label') == PRE_FLIP_PROBE and 'latency_baseline' in detail:
            latency_baseline = detail['latency_baseline']
            request_baseline = detail.get('request_baseline')
        elif step == DEPLOY and record.get('outcome') == 'ok':
            deployed.setdefault(phase, {})[record.get('host')] = epoch_of(record.get('started'))
        elif step == WATCH:
            watch[phase] = dict(t0=float(detail.get('t0')), baseline=detail.get('baseline') or {})
        elif step in fleet_policy.ROUND_STEPS:
            pending = None
            last = fleet_policy.settled(records, phase, record.get('label'))
            rounds.setdefault(phase, {})[record.get('label')] = last['next_step']
            if record.get('next_step') in (fleet_policy.ROLL_BACK, fleet_policy.ASK) and last is record:
                pending = dict(phase=phase, label=record.get('label'), step=step, outcome=record.get('outcome'),
                               next_step=record['next_step'], reasons=list(record.get('reasons') or []),
                               fired=detail.get('fired') or [], detected_at=detail.get('detected_at'),
                               decided_at=detail.get('decided_at'),
                               detected_epoch=epoch_of(detail.get('detected_at')),
                               decided_epoch=epoch_of(detail.get('decided_at')), folder=record.get('artifact'),
                               kind='monitor' if step == MONITORING_ROUND else 'checkpoint')
        elif step in (APPROVAL, ROLLBACK_STEP):
            pending = None
        elif step == GATE:
            gates[phase] = record.get('next_step')
    return dict(preflight=preflight, deployed=deployed, watch=watch, rounds=rounds, gates=gates, pending=pending,
                latency_baseline=latency_baseline, request_baseline=request_baseline)


def sequential_state(records):
    """The sequential comparison's counts the run's last judged round left (its journal record), or
    None before the first: the next round goes on from them, in this run or a resumed one."""
    for record in reversed(records):
        if record['step'] in fleet_policy.ROUND_STEPS:
            state = (record.get('detail') or {}).get('sequential_state')
            if state is not None:
                return state
    return None


def resumable(records):
    """Why a run cannot be gone on with (its decision is recorded, or something stopped it: a
    failed step, a NO-GO, a rollback), or None when it can: it was cut off mid-way."""
    if not records or records[0]['step'] != RUN or plan_of(records) is None:
        return 'its journal does not start with its run record'
    if (records[0].get('detail') or {}).get('check_mode'):
        return 'it was a check-mode preview'
    for record in records:
        if record['step'] == DECISION:
            return 'its decision is recorded (%s)' % record.get('outcome')
        if record.get('next_step') == fleet_policy.STOP:
            return 'it stopped at %s %s (%s)' % (record['step'], _where(record) or '', record.get('outcome'))
    return None


def unfinished(store, wave, key=None):
    """The latest run of wave when it was cut off mid-way (a controller killed, a lost connection):
    dict(run_id, plan, last: its last record, interrupted_at); None when the latest run ended, or
    there is none. Only the latest run counts: an older one was given up when a newer one started."""
    runs = store.path('runs')
    # Run ids are '<wave>-<UTC stamp>' (preflight.yml): the greatest name is the latest run.
    named = re.compile(re.escape(wave) + r'-\d{8}T\d{6}Z')
    names = sorted(name for name in (os.listdir(runs) if os.path.isdir(runs) else [])
                   if named.fullmatch(name) and os.path.isfile(store.path(Layout.journal(name))))
    if not names:
        return None
    run_id = names[-1]
    records = Journal(store, run_id, key).records()
    if resumable(records) is not None or records[0].get('wave') != wave:
        return None
    return dict(run_id=run_id, plan=plan_of(records), started=records[0].get('started'), last=records[-1],
                interrupted_at=records[-1].get('finished'))


def status_line(store, run_id):
    """The one line of where a run stands (its status.json), for the console; None if unreadable."""
    try:
        return (store.read_json(Layout.status(run_id)) or {}).get('line')
    except (ArtifactError, OSError, ValueError):
        return None


def record_round(store, args, judged, started, key=None):
    """Write a judged round's folder (an earlier run's folder moved to history first, never
    overwritten) with its manifest, then append its journal record. Returns the folder's path."""
    folder, decision = judged['result']['folder'], judged['decision']
    detail = dict(fired=judged['result']['fired'], detected_at=decision['detected_at'], decided_at=decision['decided_at'])
    if decision.get('sequential_state') is not None:  # the next round's comparison goes on from it
        detail['sequential_state'] = decision['sequential_state']
    previous = store.read_json(os.path.join(folder, 'decision.json'))
    if previous and previous.get('run_id') != args['run_id']:
        store.archive(folder, Layout.history_dir(args['wave'], previous.get('run_id'), args['label'],
                                                 judged['monitoring']))
    for name, content in judged['files'].items():
        if name.endswith('.json'):
            store.write_json(os.path.join(folder, name), content)
        else:
            store.write_text(os.path.join(folder, name), content)
    store.write_manifest(folder, key)
    Journal(store, args['run_id'], key).append(
        args['wave'], decision['step'], phase=args['phase'], label=args['label'], started=started,
        finished=judged['result']['decided_epoch'], outcome=decision['outcome'], next_step=decision['next_step'],
        reasons=decision['reasons'], artifact=folder,
        detail=detail)
    return store.path(folder)


def record_step(store, args, key=None):
    """Append a step that is not a judged round (wave_journal's arguments): the run's start, a
    pre-flight, a host's deploy, a person's answer to a round that asked, a rollback. A person's
    answer and an automatic rollback are also written beside their round (approval.json,
    rollback.json, the manifest renewed); a rollback run's record goes to rollbacks/. Returns
    (record, path of the file written beside it or None)."""
    journal = Journal(store, args['run_id'], key)
    step, detail = args['step'], dict(args.get('detail') or {})
    fields = {k: args.get(k) for k in ('phase', 'host', 'label', 'started', 'finished', 'outcome', 'reasons')}
    monitoring = args.get('kind') == 'monitor'
    beside = None
    if step == APPROVAL:
        asked = fleet_policy.settled(journal.records(), args.get('phase'), args.get('label'))
        if asked is None or asked['step'] == APPROVAL:
            raise JournalError('no round %s of %s waits for an answer in run %s'
                               % (args.get('label'), args.get('phase'), args['run_id']))
        try:
            answer = fleet_policy.decide_approval(asked, bool(args.get('approved')))
        except ValueError as exc:  # the round did not ask: refused like any other journal problem
            raise JournalError('%s in run %s' % (exc, args['run_id']))
        fields.update(outcome=answer['outcome'], reasons=answer['reasons'], artifact=asked['artifact'])
        next_step = answer['next_step']
        detail.update(approved=bool(args.get('approved')))
        beside = Layout.round_approval(args['wave'], args['label'], monitoring)
    else:
        next_step = fleet_policy.next_step_of(step, fields['outcome'])
        if step == RESUME:  # where the run was cut off, and for how long, from its own journal
            last = journal.records()[-1]
            cut = epoch_of(last.get('finished'))
            detail.update(after='%s (#%s)' % (_what(last), last.get('seq')), interrupted_at=last.get('finished'),
                          interruption_seconds=round(time.time() - cut, 1) if cut is not None else None)
        if step == ROLLBACK_STEP:
            beside = (Layout.round_rollback(args['wave'], args['label'], monitoring) if args.get('label')
                      else Layout.rollback_record(args['run_id']))
    if step == ROLLBACK_STEP and args.get('label'):
        fields['artifact'] = Layout.round_dir(args['wave'], args['label'], monitoring)
    elif beside:
        fields['artifact'] = fields.get('artifact') or beside
    record = journal.append(args['wave'], step, next_step=next_step, detail=detail, **fields)
    if beside:
        store.write_json(beside, record)
        if args.get('label'):
            store.write_manifest(os.path.dirname(beside), key)
    return record, store.path(beside) if beside else None


def record_gate(store, plan, run_id, phase, key=None):
    """The phase's go/no-go, read from the journal's rounds and appended to it."""
    journal = Journal(store, run_id, key)
    records = journal.records()
    gate = fleet_policy.decide_gate(records, phase)
    watched = [r for r in records if r.get('phase') == phase and r['step'] in fleet_policy.ROUND_STEPS]
    journal.append(plan['wave'], GATE, phase=phase, outcome=gate['outcome'], next_step=gate['next_step'],
                   reasons=gate['reasons'], started=watched[0].get('started') if watched else None)
    return gate


def record_wave(store, plan, run_id, key=None):
    """The wave's decision, read from the journal and appended to it; then decision.json,
    report.md and the run's checklist.md, all rendered from the journal."""
    journal = Journal(store, run_id, key)
    records = journal.records()
    decided = fleet_policy.decide_wave(plan, records)
    run = next((r for r in records if r['step'] == RUN), {})
    journal.append(plan['wave'], DECISION, outcome=decided['outcome'], started=run.get('started'),
                   next_step=fleet_policy.PROCEED if decided['outcome'] == fleet_policy.GO else fleet_policy.STOP,
                   reasons=decided['reasons'], artifact=Layout.wave_decision(plan['wave']))
    records = journal.records()
    run = next((r for r in records if r['step'] == RUN), {})
    report = render_report(plan, decided, records)
    # Signed: the next wave's pre-flight starts only on this file's GO.
    store.write_json(Layout.wave_decision(plan['wave']), fleet_evidence.seal(key, dict(
        wave=plan['wave'], run_id=run_id, outcome=decided['outcome'], reasons=decided['reasons'],
        checkpoints=decided['rows'], started=run.get('started'), decided=records[-1]['finished'],
        journal=Layout.journal(run_id))))
    store.write_text(Layout.wave_report(plan['wave']), report)
    store.write_text(Layout.checklist(run_id), render_checklist(records))
    return dict(decided, report=report, report_path=store.path(Layout.wave_report(plan['wave'])),
                checklist_path=store.path(Layout.checklist(run_id)))


def previous_decision(store, wave, key=None):
    """The recorded decision of a wave (decision.json: its run_id, outcome GO / NO-GO, ...), or None
    when none is recorded. With a key the decision must be signed by it and name that wave (a
    decision copied from another wave's folder is refused too): fleet_evidence.EvidenceError names
    the file and what failed."""
    if not wave:
        return None
    recorded = store.read_json(Layout.wave_decision(wave))
    if recorded is None:
        return None
    if key is not None:
        where = store.path(Layout.wave_decision(wave))
        fleet_evidence.verify(key, recorded, where)
        if recorded.get('wave') != wave:
            raise fleet_evidence.EvidenceError('%s: signed for wave %r, not %r' % (where, recorded.get('wave'), wave))
    return recorded if isinstance(recorded, dict) else None


def previous_outcome(store, wave, key=None):
    """The recorded outcome of a wave (previous_decision's outcome), or None."""
    recorded = previous_decision(store, wave, key)
    return recorded.get('outcome') if recorded else None


def plan_of(records):
    for record in records:
        if record['step'] == RUN:
            return (record.get('detail') or {}).get('plan')
    return None


# ================================================================================ rendering

def _cell(value):
    if value is None or value == '' or value == []:
        return '-'
    return str(value).replace('|', '\\|').replace('\n', ' ')


def _what(record):
    """What a record is about, in a few words."""
    step, detail = record['step'], record.get('detail') or {}
    if step == RUN:
        return 'run started by %s' % (detail.get('operator') or 'unknown')
    if step == LOCK:
        took = detail.get('takeover') or {}
        return 'fleet lock %s%s' % ('taken over from %s (run %s)' % ((took.get('previous') or {}).get('who'),
                                                                    (took.get('previous') or {}).get('run_id'))
                                    if took else 'taken', ', forced' if took.get('forced') else '')
    if step == RESUME:
        return 'run resumed by %s after %s s cut off (last step before: %s)' % (
            detail.get('operator') or 'unknown', detail.get('interruption_seconds'), detail.get('after') or '-')
    if step == WATCH:
        return '%s: watch clock started' % record.get('phase')
    if step == PREFLIGHT and record.get('label'):
        return 'pre-flight: %s' % record['label']
    if step == PREFLIGHT:
        return 'pre-flight on %s' % (record.get('host') or 'the controller')
    if step == DEPLOY:
        return '%s: deploy %s on %s' % (record.get('phase'), ', '.join(detail.get('agents') or []), record.get('host'))
    if step in (CHECKPOINT, MONITORING_ROUND):
        return '%s: %s %s' % (record.get('phase'), step, record.get('label'))
    if step == APPROVAL:
        return '%s: a person answered for %s (%s)' % (record.get('phase'), record.get('label'), detail.get('how', '-'))
    if step == ROLLBACK_STEP:
        return 'rollback of %s%s' % (', '.join(detail.get('agents') or []) or 'the targeted agents',
                                     ' after %s' % record['label'] if record.get('label') else '')
    if step == GATE:
        return '%s: go/no-go' % record.get('phase')
    if step == PAUSE:
        return '%s: paused, the next job goes on' % record.get('phase')
    return 'wave decision'


def render_timeline(records, monitoring_rounds=False):
    """Every record as one row of a Markdown table, in journal order; the monitoring rounds of a
    phase that proceeded are folded into one row, where the first of them stands, unless asked for."""
    lines = ['| # | step | started | finished | outcome | next step | artifact |', '|---|---|---|---|---|---|---|']
    folded = {}
    for record in records:
        if record['step'] == MONITORING_ROUND and record.get('next_step') == 'proceed' and not monitoring_rounds:
            folded.setdefault(record.get('phase'), []).append(record)
    for record in records:
        rounds = folded.get(record.get('phase')) if record['step'] == MONITORING_ROUND else None
        if rounds and record in rounds:
            if record is rounds[0]:
                lines.append('| %s-%s | %s: %d monitoring rounds, all proceeded | %s | %s | GO | proceed | %s |' % (
                    rounds[0]['seq'], rounds[-1]['seq'], record.get('phase'), len(rounds),
                    rounds[0].get('started') or '-', rounds[-1]['finished'],
                    os.path.dirname(rounds[0].get('artifact') or '') or '-'))
            continue
        lines.append('| %s | %s | %s | %s | %s | %s | %s |' % (
            record.get('seq'), _cell(_what(record)), _cell(record.get('started')), _cell(record.get('finished')),
            _cell(record.get('outcome')), _cell(record.get('next_step')), _cell(record.get('artifact'))))
    return lines


def render_report(plan, decided, records):
    """report.md: the wave's outcome, its reasons, the checkpoints and the timeline."""
    run = next((r for r in records if r['step'] == RUN), {})
    last = records[-1] if records else {}
    lines = ['# %s: %s' % (plan['wave'], decided['outcome']), '',
             'Run `%s`, started %s, decided %s.' % (run.get('run_id'), run.get('started') or run.get('finished'),
                                                    last.get('finished')), '',
             'Agents: %s. Control group: %s.' % (', '.join(plan['agents']),
                                                 ', '.join(a['name'] for a in plan['control']) or 'none'), '',
             '## Checkpoints', '', '| phase | checkpoint | at | outcome | reasons |', '|---|---|---|---|---|']
    lines += ['| %s | %s | %s | %s | %s |' % (r['phase'], r['label'], r['at'] or '-', r['outcome'],
                                              _cell('; '.join(r['reasons']))) for r in decided['rows']]
    resumes = [r for r in records if r['step'] == RESUME]
    if resumes:
        lines += ['', '## Interruptions', '',
                  'The run was cut off %d time(s) and resumed from its journal (no step done twice):' % len(resumes), '']
        lines += ['- after %s at %s, resumed %s: %s s' % (
            (r.get('detail') or {}).get('after') or '-', (r.get('detail') or {}).get('interrupted_at') or '-',
            r.get('finished'), (r.get('detail') or {}).get('interruption_seconds')) for r in resumes]
    lines += ['', '## Decision', '']
    if decided['outcome'] == 'GO':
        lines.append('GO: all %d checkpoints passed.' % len(decided['rows']))
    else:
        lines += ['NO-GO:'] + ['- %s' % r for r in decided['reasons']]
        rollbacks = [r for r in records if r['step'] == ROLLBACK_STEP]
        done = [r for r in rollbacks if r.get('outcome') == 'rolled back']
        if done:
            r = done[-1]
            detail = r.get('detail') or {}
            lines += ['', 'Rolled back automatically after %s (triggers: %s): detected %s, decided %s, legacy-only '
                      'verified %s, %s s from detection.' % (
                          r.get('label'), ', '.join(detail.get('triggers') or []) or '-', detail.get('detected_at'),
                          detail.get('decided_at'), r['finished'], detail.get('seconds_detection_to_completion'))]
        else:
            lines += ['', 'To return the flipped agents to legacy subjects: '
                      '`ansible-playbook playbooks/rollback.yml -e rollback_wave=%s`' % plan['wave']]
    lines += ['', '## Timeline', '', 'From the run journal `%s`.' % Layout.journal(run.get('run_id') or '?'), '']
    lines += render_timeline(records)
    return '\n'.join(lines) + '\n'


# --- the seed's execution checklist ----------------------------------------------------------------

MARK = {'done': 'x', 'failed': '!', 'not reached': ' ', 'open': ' '}


def _status(record):
    if record is None:
        return 'not reached'
    if record['step'] == ROLLBACK_STEP:  # a rollback always ends the run: done when it rolled back
        return 'done' if record.get('outcome') == 'rolled back' else 'failed'
    if record.get('next_step') in (None, 'proceed') and record.get('outcome') in ('ok', 'GO', 'rolled back',
                                                                                    'accepted'):
        return 'done'
    return 'failed'


def _item(lines, text, record, note=None):
    status = _status(record)
    when = '' if record is None else ' — %s → %s' % (record.get('started') or '-', record['finished'])
    outcome = '' if record is None else ' — **%s**' % record.get('outcome')
    why = ''
    if record is not None and status == 'failed' and record.get('reasons'):
        why = ': %s' % '; '.join(record['reasons'])
    lines.append('- [%s] %s%s%s%s%s' % (MARK[status], text, outcome, when, why, (' (%s)' % note) if note else ''))


def render_checklist(records):
    """The seed's execution checklist (phases 0 to 2P+2 of a wave of P phases; wave 2 gives the
    seed's 0-6), every item with its real start, finish and outcome from the journal; an item with
    no record is "not reached"."""
    plan = plan_of(records)
    if plan is None:
        raise JournalError('the journal has no run record with a plan; it cannot be rendered')
    run = next(r for r in records if r['step'] == RUN)
    hosts = (run.get('detail') or {}).get('hosts') or sorted({r['host'] for r in records if r.get('host')})
    lines = ['# %s execution checklist' % plan['wave'], '',
             'Run `%s`, rendered from its journal (`%s`); every time is UTC as recorded when the step happened.'
             % (run['run_id'], Layout.journal(run['run_id'])), '']

    def find(step, **match):
        found = [r for r in records if r['step'] == step and all(r.get(k) == v for k, v in match.items())]
        return found[-1] if found else None

    lines += ['## Phase 0 — pre-deployment', '']
    _item(lines, 'Controller: plan valid, previous wave GO, NATS reachable', find(PREFLIGHT, host=None, label=None))
    for host in hosts:
        _item(lines, '%s: agents installed, units active, answering' % host, find(PREFLIGHT, host=host))
    _item(lines, "Every agent instance's latency before its flip (the sequential comparison's baseline)",
          find(PREFLIGHT, label=PRE_FLIP_PROBE))
    number = 0
    phases = plan['phases']
    for index, phase in enumerate(phases):
        name, last = phase['name'], index == len(phases) - 1
        number += 1
        lines += ['', '## Phase %d — deploy %s (%s)' % (number, ', '.join(a['name'] for a in phase['agents']), name), '']
        for host in hosts:
            _item(lines, 'Flag on, restarted, dual subscription verified on %s' % host, find(DEPLOY, phase=name, host=host))
        number += 1
        lines += ['', '## Phase %d — %s' % (number, 'monitoring' if last else '%s stabilization' % name), '']
        for watch in phase['watch']:
            record = find(APPROVAL, phase=name, label=watch['label']) or find(CHECKPOINT, phase=name,
                                                                               label=watch['label'])
            _item(lines, 'Checkpoint %s' % watch['label'], record)
        rounds = [r for r in records if r['step'] == MONITORING_ROUND and r.get('phase') == name]
        if rounds:
            stopped = [r for r in rounds if r.get('next_step') != 'proceed']
            lines.append('- [%s] Continuous monitoring: %d rounds, %s — %s → %s' % (
                '!' if stopped else 'x', len(rounds),
                'stopped at %s (%s)' % (stopped[0]['label'], stopped[0]['outcome']) if stopped else 'all GO',
                rounds[0].get('started') or '-', rounds[-1]['finished']))
        _item(lines, 'Go/no-go after %s' % name, find(GATE, phase=name))
    number += 1
    lines += ['', '## Phase %d — final analysis' % number, '']
    _item(lines, 'Wave decision recorded', find(DECISION))
    number += 1
    lines += ['', '## Phase %d — rollback' % number, '']
    rollbacks = [r for r in records if r['step'] == ROLLBACK_STEP]
    if not rollbacks:
        decision = find(DECISION)
        lines.append('- [ ] Rollback: %s' % ('not needed (GO)' if decision and decision['outcome'] == 'GO'
                                            else 'not run'))
    for record in rollbacks:
        _item(lines, 'Rollback: restore, restart, legacy-only proven', record)
    return '\n'.join(lines) + '\n'


# ================================================================================ scripts/render-checklist

USAGE = """Render a run's execution checklist from its journal: scripts/render-checklist JOURNAL [-o OUT.md]

JOURNAL is artifacts/runs/<run_id>/journal.jsonl (or the run's folder). Prints Markdown, or writes it
to OUT.md. Needs only python3."""


def main(argv):
    parser = argparse.ArgumentParser(prog='render-checklist', description=USAGE.splitlines()[0])
    parser.add_argument('journal', metavar='JOURNAL')
    parser.add_argument('-o', '--output', metavar='OUT.md', help='write the checklist here instead of stdout')
    args = parser.parse_args(argv)
    path = args.journal
    if os.path.isdir(path):
        path = os.path.join(path, 'journal.jsonl')
    store = ArtifactStore(os.path.dirname(os.path.abspath(path)))
    try:
        records = store.read_jsonl(os.path.basename(path))
        if not records:
            raise JournalError('%s: no journal records' % path)
        text = render_checklist(records)
    except (ArtifactError, JournalError, OSError) as exc:
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
