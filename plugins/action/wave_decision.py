# -*- coding: utf-8 -*-
# Records a wave's decision from its checkpoint artifacts: checkpoints/<wave>/decision.json and
# a readable report.md. Logic in module_utils/fleet_decision.py; writes through fleet_artifacts.

from __future__ import annotations

import datetime
import os

from ansible_collections.fleetwave.rollout.plugins.plugin_utils.controller_action import ControllerAction
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import ArtifactError, ArtifactStore
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_decision import decide_wave, render_report


class ActionModule(ControllerAction):
    REQUIRED = ('plan', 'run_id', 'artifacts_dir', 'started_at')

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        failed = self.missing_args(result)
        if failed:
            return failed
        plan, run_id = args['plan'], args['run_id']
        store = ArtifactStore(args['artifacts_dir'])
        finished_at = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')
        try:
            decided = decide_wave(store, plan, run_id)
            report = render_report(plan, run_id, decided, args.get('timeline') or [], args['started_at'], finished_at)
            folder = os.path.join('checkpoints', plan['wave'])
            result.update(changed=not self._task.check_mode, decision=decided['decision'],
                          reasons=decided['reasons'], report=report, rollback=decided['rollback'],
                          report_path=store.path(folder, 'report.md'))
            if not self._task.check_mode:
                store.write_json(os.path.join(folder, 'decision.json'),
                                 dict(wave=plan['wave'], run_id=run_id, decision=decided['decision'],
                                      reasons=decided['reasons'], checkpoints=decided['checkpoints'],
                                      rollback=decided['rollback'],
                                      started_at=args['started_at'], decided_at=finished_at,
                                      timeline=args.get('timeline') or []))
                store.write_text(os.path.join(folder, 'report.md'), report)
        except (ArtifactError, OSError) as exc:
            return dict(result, failed=True, msg='could not record the %s decision under %s: %s'
                        % (plan.get('wave'), args['artifacts_dir'], exc))
        return result
