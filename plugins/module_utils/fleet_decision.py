# -*- coding: utf-8 -*-
# The wave decision: every checkpoint of the plan, read back from its artifact, must be GO.
# A checkpoint that was not reached, or belongs to another run, counts against GO.

from __future__ import annotations

import os

GO, NO_GO = 'GO', 'NO-GO'


def decide_wave(store, plan, run_id):
    """Return {decision, reasons, checkpoints} for the plan's checkpoints as stored now."""
    rows, reasons = [], []
    for phase in plan['phases']:
        for watch in phase['watch']:
            label = watch['label']
            record = store.read_json(os.path.join('checkpoints', plan['wave'], label, 'decision.json'))
            if record is None or record.get('run_id') != run_id:
                rows.append(dict(phase=phase['name'], label=label, decision='NOT REACHED', taken_at=None, failures=[]))
                reasons.append('checkpoint %s was not reached in this run' % label)
                continue
            rows.append(dict(phase=phase['name'], label=label, decision=record['decision'],
                             taken_at=record.get('taken_at'), failures=record.get('failures', [])))
            if record['decision'] != GO:
                reasons.append('checkpoint %s is %s: %s' % (label, record['decision'],
                                                            '; '.join(record.get('failures', [])) or 'no detail'))
    return dict(decision=GO if rows and not reasons else NO_GO, reasons=reasons, checkpoints=rows)


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
    if result['decision'] == GO:
        lines.append('GO: all %d checkpoints passed.' % len(result['checkpoints']))
    else:
        lines += ['NO-GO:'] + ['- %s' % r for r in result['reasons']]
        lines += ['', 'To return the flipped agents to legacy subjects: '
                  '`ansible-playbook playbooks/rollback.yml -e rollback_wave=%s`' % wave]
    return '\n'.join(lines) + '\n'
