# -*- coding: utf-8 -*-
# Records a phase's go/no-go or a wave's decision from the run journal: the policy is
# plugin_utils/fleet_policy.py, the records and renderings plugin_utils/fleet_journal.py.

from __future__ import annotations

from ansible_collections.fleetwave.rollout.plugins.modules.wave_decision import DOCUMENTATION
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.controller_action import ControllerAction
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import (ArtifactError, ArtifactStore,
                                                                                         Layout, name_problem)
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_journal import (Journal, JournalError, plan_of,
                                                                                       record_gate, record_wave)


class ActionModule(ControllerAction):
    DOCUMENTATION = DOCUMENTATION

    def act(self, args, result):
        plan, scope = args['plan'], args['scope']
        if scope == 'phase' and not args['phase']:
            return dict(result, failed=True, msg='wave_decision: scope=phase needs phase')
        problem = name_problem('plan.wave', plan.get('wave'))
        if problem:
            return dict(result, failed=True, msg='wave_decision: %s (nothing was recorded)' % problem)
        if self._task.check_mode:
            return dict(result, outcome='GO', next_step='proceed', reasons=[])
        store = ArtifactStore(args['artifacts_dir'])
        try:
            # The report and the checklist are rendered from the run record: without it nothing is
            # recorded, rather than a decision.json (read by the next wave) and then a failure.
            if plan_of(Journal(store, args['run_id'], self.evidence_key).records()) is None:
                raise JournalError('the journal %s has no run record with a plan (nothing was recorded)'
                                   % Layout.journal(args['run_id']))
            if scope == 'phase':
                gate = record_gate(store, plan, args['run_id'], args['phase'], self.evidence_key)
                result.update(changed=True, outcome=gate['outcome'], next_step=gate['next_step'],
                              reasons=gate['reasons'])
                if gate['next_step'] == 'proceed':
                    return result
            decided = record_wave(store, plan, args['run_id'], self.evidence_key)
        except (ArtifactError, JournalError, OSError) as exc:
            return dict(result, failed=True, msg='could not record the %s decision under %s: %s'
                        % (plan.get('wave'), args['artifacts_dir'], exc))
        if scope == 'wave':
            result.update(outcome=decided['outcome'], reasons=decided['reasons'],
                          next_step='proceed' if decided['outcome'] == 'GO' else 'stop')
        result.update(changed=True, report=decided['report'], report_path=decided['report_path'],
                      checklist_path=decided['checklist_path'])
        return result
