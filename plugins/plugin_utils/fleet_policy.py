# -*- coding: utf-8 -*-
"""The decision policy: the one place that turns judged figures into an outcome and the next step.

Vocabulary (README, "Glossary"):

* outcome    what a checkpoint or monitoring round found: GO, NO-GO, ROLLBACK, INCONCLUSIVE; a
             phase gate and a wave decision are GO or NO-GO.
* next step  what the run does about it: ``proceed``, ``stop``, ``rollback`` (restore the wave's
             agents now) or ``ask`` (a person decides: a prompt from a terminal, an approval node
             under AWX).

Everything else reads what this module decided: the checkpoint action returns the next step and
records it in the run journal, the playbooks branch on the next step only, and the phase gate and
the wave decision read the recorded next steps back from the journal; nothing recomputes them.
"""

from __future__ import annotations

GO, NO_GO, ROLLBACK, INCONCLUSIVE = 'GO', 'NO-GO', 'ROLLBACK', 'INCONCLUSIVE'
OUTCOMES = (GO, NO_GO, ROLLBACK, INCONCLUSIVE)
PROCEED, STOP, ROLL_BACK, ASK = 'proceed', 'stop', 'rollback', 'ask'
NEXT_STEPS = (PROCEED, STOP, ROLL_BACK, ASK)

# What the criteria file may ask for (criteria/default.yml).
ON_TRIGGER = (ROLL_BACK, STOP)        # a rollback trigger fired
ON_INCONCLUSIVE = (ASK, ROLL_BACK)    # a required comparison lacks samples


def decide_round(gate, health=None, on_trigger=ROLL_BACK, on_inconclusive=ASK, probe_error=None):
    """The outcome, next step and reasons of one checkpoint or monitoring round.

    gate    fleet_gate.evaluate's findings: fired, unknown, failed, degraded, short (lists) and
            reasons (one line each, in that order)
    health  fleet_checkpoint.evaluate_health's result, or None when not judged
    Precedence: a fired trigger (ROLLBACK and roll back, or NO-GO and stop when on_trigger is
    stop); a failed primary, a trigger that cannot be ruled out, a degraded comparison or a failed
    health check (NO-GO, stop); a required comparison without enough samples (INCONCLUSIVE, with
    on_inconclusive); else GO and proceed. A failed health check never turns ROLLBACK into less.
    """
    health_failures = ['health: %s' % describe(c) for c in (health or {}).get('failures') or []]
    if health is not None and not health.get('checks'):
        health_failures.append('health: nothing was checked (no host or agent in scope)')
    if gate['fired']:
        names = ', '.join(sorted({r['name'] for r in gate['fired']}))
        outcome, step = (ROLLBACK, ROLL_BACK) if on_trigger == ROLL_BACK else (NO_GO, STOP)
        headline = '%d rollback trigger(s) fired: %s' % (len(gate['fired']), names)
    elif gate['unknown'] or gate['failed'] or gate['degraded'] or health_failures:
        outcome, step = NO_GO, STOP
        headline = '%d check(s) failed' % (len(gate['unknown']) + len(gate['failed']) + len(gate['degraded'])
                                           + len(health_failures))
    elif gate['short']:
        outcome, step = INCONCLUSIVE, on_inconclusive
        headline = 'required comparison(s) lack samples: %s' % ', '.join(c['metric'] for c in gate['short'])
    else:
        outcome, step = GO, PROCEED
        headline = '%d primary checks passed, no rollback trigger, %d comparison(s) without degradation' % (
            gate['n_primary'], gate['n_comparisons'])
    reasons = list(gate['reasons']) + health_failures
    if probe_error is not None:
        reasons.insert(0, 'probe failed, so every NATS figure is missing: %s' % probe_error)
    return dict(outcome=outcome, next_step=step, headline='%s: %s' % (outcome, headline), reasons=reasons)


def next_step_of(step, outcome):
    """The next step after a step that is not judged by criteria: pre-flight and deploy proceed
    when ok; a rollback ends the run (it stops, whatever else was planned)."""
    if step == 'rollback':
        return STOP
    return PROCEED if outcome == 'ok' else STOP


def describe(check):
    """One health check in words: '<agent> <check> on <host>: expected X, measured Y'."""
    where = ' on %s' % check['host'] if check['host'] else ''
    return '%s %s%s: expected %s, measured %s' % (check['agent'], check['check'], where,
                                                   check['expected'], check['measured'])


def decide_approval(round_record, approved):
    """A person's answer to an INCONCLUSIVE round that asked: accepted, the run proceeds (GO);
    otherwise it stops with the round still INCONCLUSIVE. The reasons are the round's, then the
    answer's, so the answer's record says on its own what was accepted or refused."""
    if round_record.get('next_step') != ASK:
        raise ValueError('%s %s did not ask for a person (next step %s)'
                         % (round_record.get('step'), round_record.get('label'), round_record.get('next_step')))
    found = list(round_record.get('reasons') or [])  # why it was asked stays with the answer
    if approved:
        return dict(outcome=GO, next_step=PROCEED, reasons=found + ['INCONCLUSIVE, accepted by a person'])
    return dict(outcome=INCONCLUSIVE, next_step=STOP,
                reasons=found + ['INCONCLUSIVE, not accepted: the run stops here'])


ROUND_STEPS = ('checkpoint', 'monitoring round')


def settled(records, phase, label):
    """The last word on one round of a phase in the journal: the person's answer when one was
    asked and answered, else the round's own record; None when the round is not in the journal."""
    found = None
    for record in records:
        if record.get('phase') == phase and record.get('label') == label \
                and record.get('step') in ROUND_STEPS + ('approval',):
            found = record
    return found


def decide_gate(records, phase):
    """The go/no-go after a phase's watch, from the journal: GO when every round of the phase that
    was recorded settled on proceed; else NO-GO with the next step of the first that did not (a
    rollback that already ran is reported, not repeated: the run stops)."""
    rounds = [r for r in records if r.get('phase') == phase and r.get('step') in ROUND_STEPS]
    reasons, step = [], PROCEED
    for record in rounds:
        last = settled(records, phase, record['label'])
        if last is not record and last.get('step') in ROUND_STEPS:
            continue  # a later record of the same round speaks for it
        if last['next_step'] != PROCEED:
            reasons.append('%s %s is %s: %s' % (record['step'], record['label'], last['outcome'],
                                                '; '.join(last.get('reasons') or []) or 'no detail'))
            step = STOP
    if not rounds:
        reasons.append('no checkpoint of %s was recorded' % phase)
        step = STOP
    return dict(outcome=GO if step == PROCEED else NO_GO, next_step=step, reasons=reasons)


def decide_wave(plan, records):
    """The wave's decision from the journal of its run: GO when every scheduled checkpoint of every
    phase settled on proceed and no monitoring round stopped the run; else NO-GO, naming each
    checkpoint not reached or not GO. Returns rows (one per checkpoint, and per monitoring round
    that did not proceed) for the report."""
    rows, reasons = [], []
    for phase in plan['phases']:
        for watch in phase['watch']:
            last = settled(records, phase['name'], watch['label'])
            if last is None:
                rows.append(dict(phase=phase['name'], label=watch['label'], outcome='NOT REACHED', at=None,
                                 reasons=[]))
                reasons.append('checkpoint %s was not reached in this run' % watch['label'])
                continue
            rows.append(dict(phase=phase['name'], label=watch['label'], outcome=last['outcome'],
                             at=last.get('finished'), reasons=list(last.get('reasons') or [])))
            if last['next_step'] != PROCEED:
                reasons.append('checkpoint %s is %s: %s' % (watch['label'], last['outcome'],
                                                            '; '.join(last.get('reasons') or []) or 'no detail'))
        monitored = []  # each monitoring round once, in journal order; its last word may be an answer
        for record in records:
            if record.get('phase') == phase['name'] and record.get('step') == 'monitoring round' \
                    and record['label'] not in monitored:
                monitored.append(record['label'])
        for label in monitored:
            last = settled(records, phase['name'], label)
            if last['next_step'] != PROCEED:
                rows.append(dict(phase=phase['name'], label=label + ' (monitoring)', outcome=last['outcome'],
                                 at=last.get('finished'), reasons=list(last.get('reasons') or [])))
                reasons.append('monitoring round %s is %s: %s' % (
                    label, last['outcome'], '; '.join(last.get('reasons') or []) or 'no detail'))
    return dict(outcome=GO if rows and not reasons else NO_GO, reasons=reasons, rows=rows)
