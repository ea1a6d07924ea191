# -*- coding: utf-8 -*-
# The wave decision: every checkpoint of the plan, read back from its artifact, must be GO
# (an INCONCLUSIVE one accepted by an operator counts as GO). A checkpoint that was not
# reached, or belongs to another run, counts against GO; so does a monitoring round that was not GO.

from __future__ import annotations

import os

GO, NO_GO = 'GO', 'NO-GO'


def _approved(store, folder, run_id):
    """An operator accepted this INCONCLUSIVE checkpoint in this run (approval.json)."""
    approval = store.read_json(os.path.join(folder, 'approval.json'))
    return bool(approval and approval.get('run_id') == run_id and approval.get('approved') is True)


def decide_wave(store, plan, run_id):
    """Return {decision, reasons, checkpoints, rollback} for the plan's checkpoints as stored now.

    Monitoring rounds count only when they were reached in this run and were not GO (the round
    that stopped the wave); an automatic rollback recorded beside a round is reported with it.
    """
    rows, reasons, rollback = [], [], None
    for phase in plan['phases']:
        monitors = [r for r in phase.get('rounds') or [] if r.get('kind') == 'monitor']
        for watch in list(phase['watch']) + monitors:
            label, monitor = watch['label'], watch.get('kind') == 'monitor'
            folder = os.path.join('checkpoints', plan['wave'], *(('monitor',) if monitor else ()), label)
            record = store.read_json(os.path.join(folder, 'decision.json'))
            if record is None or record.get('run_id') != run_id:
                if not monitor:
                    rows.append(dict(phase=phase['name'], label=label, decision='NOT REACHED', taken_at=None,
                                     failures=[]))
                    reasons.append('checkpoint %s was not reached in this run' % label)
                continue
            decision = record['decision']
            if monitor and decision == GO:
                continue
            failures = list(record.get('failures', []))
            if decision == 'INCONCLUSIVE' and _approved(store, folder, run_id):
                decision, failures = GO, failures + ['INCONCLUSIVE, accepted by an operator (approval.json)']
            recorded = store.read_json(os.path.join(folder, 'rollback.json'))
            if recorded and recorded.get('run_id') == run_id:
                rollback = dict(recorded, label=label)
            rows.append(dict(phase=phase['name'], label=label + (' (monitoring)' if monitor else ''),
                             decision=decision, taken_at=record.get('taken_at'), failures=failures))
            if decision != GO:
                reasons.append('%s %s is %s: %s' % ('monitoring round' if monitor else 'checkpoint', label, decision,
                                                    '; '.join(failures) or 'no detail'))
    return dict(decision=GO if rows and not reasons else NO_GO, reasons=reasons, checkpoints=rows,
                rollback=rollback)


def render_report(plan, run_id, result, timeline, started_at, finished_at):
    wave = plan['wave']
    lines = ['# %s: %s' % (wave, result['decision']), '',
             'Run `%s`, started %s, decided %s.' % (run_id, started_at, finished_at), '',
             'Agents: %s. Control group: %s.' % (', '.join(plan['agents']),
                                                 ', '.join(a['name'] for a in plan['control']) or 'none'), '']
    if timeline:
        lines += ['## Timeline', '', '| step | started | finished | result |', '|---|---|---|---|']
        lines += ['| %s | %s | %s | %s |' % (t.get('step'), t.get('started', '-'), t.get('finished', '-'),
                                             t.get('result', '-')) for t in timeline]
        lines.append('')
    lines += ['## Checkpoints', '', '| phase | checkpoint | taken at | decision | failed checks |',
              '|---|---|---|---|---|']
    lines += ['| %s | %s | %s | %s | %s |' % (r['phase'], r['label'], r['taken_at'] or '-', r['decision'],
                                              '; '.join(r['failures']) or '-') for r in result['checkpoints']]
    lines += ['', '## Decision', '']
    rollback = result.get('rollback')
    if result['decision'] == GO:
        lines.append('GO: all %d checkpoints passed.' % len(result['checkpoints']))
    else:
        lines += ['NO-GO:'] + ['- %s' % r for r in result['reasons']]
        if rollback and rollback.get('completed'):
            lines += ['', 'Rolled back automatically after %s (triggers: %s): detected %s, decided %s, legacy-only '
                      'verified %s, %s s from detection.' % (
                          rollback['label'], ', '.join(rollback.get('triggers') or []) or '-',
                          rollback.get('detected_at'), rollback.get('decided_at'), rollback.get('completed_at'),
                          rollback.get('seconds_detection_to_completion'))]
        else:
            lines += ['', 'To return the flipped agents to legacy subjects: '
                      '`ansible-playbook playbooks/rollback.yml -e rollback_wave=%s`' % wave]
    return '\n'.join(lines) + '\n'
