# -*- coding: utf-8 -*-
# Judges one checkpoint (or one continuous-monitoring round) and writes it on the controller:
# checkpoints/<wave>/<label>/ (monitoring rounds under checkpoints/<wave>/monitor/<label>/) with
# the raw observations, the gate's figures, test vs reference, the decision with every
# criterion's measured value and limit, a human summary and a SHA-256 manifest.
# Figures: module_utils/fleet_checkpoint.py; judgement: fleet_gate.py; writes: fleet_artifacts.

from __future__ import annotations

import datetime
import os
import time

from ansible_collections.fleetwave.rollout.plugins.plugin_utils.controller_action import ControllerAction
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import ArtifactError, ArtifactStore
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_checkpoint import combine, evaluate_health, measure, probe_pings, render_round_summary
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_gate import CriteriaError, evaluate, load_criteria

KINDS = ('checkpoint', 'monitor')


def _utc(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec='milliseconds')


def triggers_only(criteria):
    """A monitoring round judges the rollback triggers only; criteria and comparisons are for
    the scheduled checkpoints."""
    return dict(criteria, primary=[], secondary=[], comparison=dict(criteria['comparison'], metrics=[]))


class ActionModule(ControllerAction):
    REQUIRED = ('wave', 'label', 'run_id', 'artifacts_dir', 'hosts', 'flipped', 'control', 'reference',
                'criteria', 'info', 'baseline')

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        failed = self.missing_args(result)
        if failed:
            return failed
        kind = args.get('kind', 'checkpoint')
        if kind not in KINDS:
            return dict(result, failed=True, msg='wave_checkpoint: kind must be one of %s, got %r' % (', '.join(KINDS), kind))
        detected = time.time()  # every observation is in hand: what it shows is known from now
        try:
            criteria = load_criteria(args['criteria'], args.get('criteria_file') or '<criteria>')
        except CriteriaError as exc:
            return dict(result, failed=True, msg='criteria refused:\n  - %s' % '\n  - '.join(exc.problems))
        hosts, info, baseline = args['hosts'], args['info'] or {}, args['baseline'] or {}
        probe, probe_error = args.get('probe') or None, args.get('probe_error')
        if probe is not None and 'agents' not in probe:  # a failed nats_probe, registered with failed_when: false
            probe, probe_error = None, probe_error or probe.get('msg') or 'the probe returned no measurements'
        elif probe is not None:  # keep the measurements, not the task's bookkeeping
            probe = {k: v for k, v in probe.items() if k not in ('invocation', 'changed', 'failed', 'failed_when_result')}
        measurements = measure(hosts, args['flipped'], args['reference'], probe, info, baseline)
        gate = evaluate(triggers_only(criteria) if kind == 'monitor' else criteria, measurements)
        units = {h: (info.get(h) or {}).get('units') or {} for h in hosts}
        restarts = {h: {a: u.get('n_restarts') for a, u in ((baseline.get(h) or {}).get('units') or {}).items()}
                    for h in hosts}
        health = evaluate_health(hosts, args['flipped'], args['control'], units, probe_pings(probe), restarts)
        outcome, action, failures = combine(gate, health)
        if probe is None:
            failures.insert(0, 'probe failed, so every NATS figure is missing: %s' % (probe_error or 'no probe result'))
        decided = time.time()

        folder = os.path.join('checkpoints', args['wave'], *(('monitor',) if kind == 'monitor' else ()), args['label'])
        decision = dict(
            wave=args['wave'], label=args['label'], kind=kind, run_id=args['run_id'],
            taken_at=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(detected)), detected_at=_utc(detected), decided_at=_utc(decided),
            decision=outcome, action=action, paused=gate['paused'], failures=failures, reasons=gate['reasons'],
            criteria_file=args.get('criteria_file'), test=args['flipped'], reference=args['reference'],
            reference_kind=args.get('reference_kind', 'control'), criteria=gate['criteria'],
            comparisons=gate['comparisons'], health=health['checks'])
        result.update(changed=not self._task.check_mode, decision=outcome, gate_action=action, failures=failures,
                      folder=folder, detected_epoch=detected, decided_epoch=decided,
                      detected_at=decision['detected_at'], decided_at=decision['decided_at'],
                      fired=sorted({r['name'] for r in gate['criteria'] if r['fired']}),
                      measured=measurements['per_agent'], wave_figures=measurements['wave'])
        if self._task.check_mode:
            return result
        head = '%s %s%s: %s' % (args['wave'], args['label'], ' (monitoring round)' if kind == 'monitor' else '', outcome)
        store = ArtifactStore(args['artifacts_dir'])
        try:
            previous = store.read_json(os.path.join(folder, 'decision.json'))
            if previous and previous.get('run_id') != args['run_id']:
                store.archive(folder, os.path.join('checkpoints', args['wave'], 'history',
                                                   str(previous.get('run_id')), *folder.split(os.sep)[2:]))
            store.write_json(os.path.join(folder, 'observations.json'),
                             dict(hosts=info, baseline=baseline, probe=probe, probe_error=probe_error))
            store.write_json(os.path.join(folder, 'measurements.json'),
                             dict(per_agent=measurements['per_agent'], wave=measurements['wave'],
                                  samples={side: {m: len(v) for m, v in metrics.items()}
                                           for side, metrics in measurements['samples'].items()}))
            store.write_json(os.path.join(folder, 'comparison.json'),
                             dict(test=args['flipped'], reference=args['reference'],
                                  reference_kind=decision['reference_kind'], comparisons=gate['comparisons'],
                                  wave=measurements['wave']))
            store.write_json(os.path.join(folder, 'decision.json'), decision)
            store.write_text(os.path.join(folder, 'summary.md'),
                             render_round_summary(head, gate, health, measurements, decision['reference_kind']))
            store.write_manifest(folder)
        except (ArtifactError, OSError) as exc:
            return dict(result, failed=True, msg='could not write checkpoint %s under %s: %s'
                        % (folder, args['artifacts_dir'], exc))
        result['path'] = store.path(folder)
        return result
