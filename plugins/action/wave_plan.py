# -*- coding: utf-8 -*-
# Validates the inventory's fleet data for one wave, and the criteria file its checkpoints are
# judged by, and returns the plan the playbooks follow, with the previous wave's recorded outcome.
# Runs once on the controller, before any host is touched; the logic lives in
# plugin_utils/fleet_plan.py and fleet_gate.py (unit-tested).

from __future__ import annotations

from ansible_collections.fleetwave.rollout.plugins.modules.wave_plan import DOCUMENTATION
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.controller_action import ControllerAction
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import ArtifactError, ArtifactStore, Layout
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_evidence import HOW_TO_SET, EvidenceError
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_gate import (CriteriaError, load_criteria,
                                                                                  with_thresholds)
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_journal import JournalError, previous_decision, unfinished
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_plan import PlanError, build_plan

PLAN_ARGS = ('wave', 'agents', 'waves', 'schedule', 'subject_legacy', 'subject_unified',
             'stagger', 'verify_window', 'monitor_interval')


class ActionModule(ControllerAction):
    DOCUMENTATION = DOCUMENTATION

    def act(self, args, result):
        # Without a key the next wave could not tell this wave's GO from a hand-written one: a wave
        # starts unsigned only when someone said so (the plan, and so the journal, records it).
        if self.evidence_key is None and not self.evidence_unsigned:
            return dict(result, failed=True, msg='%s: no evidence key, so its decision, checkpoints and journal could '
                        'not be signed (nothing was changed): %s' % (args['wave'], HOW_TO_SET))
        plan_args = {a: args[a] for a in PLAN_ARGS}
        # Timings given with -e arrive as strings; the plan wants numbers.
        for name in ('stagger', 'verify_window', 'monitor_interval'):
            if isinstance(plan_args[name], str):
                try:
                    plan_args[name] = float(plan_args[name])
                except ValueError:
                    pass  # build_plan reports it with the variable's name
        try:
            plan = build_plan(**plan_args)
        except PlanError as exc:
            return dict(result, failed=True, problems=exc.problems,
                        msg='the inventory does not describe a valid %s (nothing was changed):\n  - %s'
                        % (args['wave'], '\n  - '.join(exc.problems)))
        if args['criteria_file']:
            try:
                plan['criteria'] = with_thresholds(load_criteria(args['criteria_file']), args['criteria_thresholds'],
                                                   'wave_criteria_thresholds')
            except CriteriaError as exc:
                return dict(result, failed=True, problems=exc.problems,
                            msg='the criteria file is refused (nothing was changed):\n  - %s'
                            % '\n  - '.join(exc.problems))
            plan['criteria_file'] = args['criteria_file']
        plan['evidence'] = (dict(signed=True, key_id=self.evidence_key.key_id) if self.evidence_key
                            else dict(signed=False, unsigned=True))
        plan['previous_outcome'] = plan['previous_record'] = plan['previous_run_id'] = None
        cut_off = None
        if args['artifacts_dir']:
            store = ArtifactStore(args['artifacts_dir'])
            try:
                if plan['previous']:
                    plan['previous_record'] = store.path(Layout.wave_decision(plan['previous']))
                recorded = previous_decision(store, plan['previous'], self.evidence_key) or {}
                plan['previous_outcome'], plan['previous_run_id'] = recorded.get('outcome'), recorded.get('run_id')
            except ArtifactError as exc:
                return dict(result, failed=True, msg='cannot read the previous wave\'s decision: %s' % exc)
            except EvidenceError as exc:
                return dict(result, failed=True, msg='the previous wave\'s decision is refused (nothing was changed): '
                            '%s' % exc)
            # A run of this wave cut off mid-way, which a re-run goes on with (if the fleet lock agrees).
            try:
                cut_off = unfinished(store, args['wave'], self.evidence_key)
            except (ArtifactError, JournalError, OSError) as exc:
                return dict(result, failed=True, msg='cannot tell whether an earlier %s run was cut off mid-way, so '
                            'whether to resume it (nothing was changed): %s. Set wave_resume=false to start a new '
                            'run regardless.' % (args['wave'], exc))
        return dict(result, changed=False, plan=plan, unfinished=cut_off)
