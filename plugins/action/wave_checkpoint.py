# -*- coding: utf-8 -*-
# Judges one health checkpoint and writes it under checkpoints/<wave>/<label>/ on the
# controller: raw observations, the decision with every check, a summary and a SHA-256
# manifest. Logic in module_utils/fleet_checkpoint.py; writes through fleet_artifacts.

from __future__ import annotations

import datetime
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _controller import ControllerAction  # noqa: E402  (also puts module_utils on sys.path)
# pylint: disable=wrong-import-position
from fleet_artifacts import ArtifactError, ArtifactStore  # noqa: E402
from fleet_checkpoint import describe, evaluate_health, render_summary  # noqa: E402


class ActionModule(ControllerAction):
    REQUIRED = ('wave', 'label', 'run_id', 'artifacts_dir', 'hosts', 'flipped', 'control', 'units', 'pings')

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        failed = self.missing_args(result)
        if failed:
            return failed
        taken_at = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
        health = evaluate_health(args['hosts'], args['flipped'], args['control'], args['units'],
                                 args['pings'], args.get('baseline'))
        folder = os.path.join('checkpoints', args['wave'], args['label'])
        decision = dict(wave=args['wave'], label=args['label'], run_id=args['run_id'], taken_at=taken_at,
                        decision=health['decision'], checks=health['checks'],
                        failures=[describe(c) for c in health['failures']])
        result.update(changed=not self._task.check_mode, decision=health['decision'],
                      failures=decision['failures'], folder=folder,
                      restarts={h: {a: (u or {}).get('n_restarts') for a, u in (agents or {}).items()}
                                for h, agents in args['units'].items()})
        if self._task.check_mode:
            return result
        store = ArtifactStore(args['artifacts_dir'])
        try:
            previous = store.read_json(os.path.join(folder, 'decision.json'))
            if previous and previous.get('run_id') != args['run_id']:
                store.archive(folder, os.path.join('checkpoints', args['wave'], 'history',
                                                   str(previous.get('run_id')), args['label']))
            store.write_json(os.path.join(folder, 'observations.json'),
                             dict(units=args['units'], pings=args['pings'], baseline=args.get('baseline')))
            store.write_json(os.path.join(folder, 'decision.json'), decision)
            store.write_text(os.path.join(folder, 'summary.md'),
                             render_summary(args['wave'], args['label'], taken_at, health))
            store.write_manifest(folder)
        except (ArtifactError, OSError) as exc:
            return dict(result, failed=True, msg='could not write checkpoint %s under %s: %s'
                        % (folder, args['artifacts_dir'], exc))
        result['path'] = store.path(folder)
        return result
