# -*- coding: utf-8 -*-
# Validates the inventory's fleet data for one wave, and the criteria file its checkpoints are
# judged by, and returns the plan the playbooks follow. Runs once on the controller, before any
# host is touched; the logic lives in module_utils/fleet_plan.py and fleet_gate.py (unit-tested).

from __future__ import annotations

from ansible_collections.fleetwave.rollout.plugins.plugin_utils.controller_action import ControllerAction
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_gate import CriteriaError, load_criteria
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_plan import PlanError, build_plan

ARGS = ('wave', 'agents', 'waves', 'schedule', 'subject_legacy', 'subject_unified',
        'stagger', 'verify_window', 'monitor_interval')
OPTIONAL = ('criteria_file',)


class ActionModule(ControllerAction):

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        missing = [a for a in ARGS if a not in self._task.args]
        unknown = sorted(set(self._task.args) - set(ARGS) - set(OPTIONAL))
        if missing or unknown:
            return dict(result, failed=True, msg='wave_plan: missing argument(s) %s; unknown argument(s) %s'
                        % (', '.join(missing) or 'none', ', '.join(unknown) or 'none'))
        args = {a: self._task.args[a] for a in ARGS}
        # Timings given with -e arrive as strings; the plan wants numbers.
        for name in ('stagger', 'verify_window', 'monitor_interval'):
            if isinstance(args[name], str):
                try:
                    args[name] = float(args[name])
                except ValueError:
                    pass  # build_plan reports it with the variable's name
        try:
            plan = build_plan(**args)
        except PlanError as exc:
            return dict(result, failed=True, problems=exc.problems,
                        msg='the inventory does not describe a valid %s (nothing was changed):\n  - %s'
                        % (self._task.args['wave'], '\n  - '.join(exc.problems)))
        criteria_file = self._task.args.get('criteria_file')
        if criteria_file:
            try:
                plan['criteria'] = load_criteria(criteria_file)
            except CriteriaError as exc:
                return dict(result, failed=True, problems=exc.problems,
                            msg='the criteria file is refused (nothing was changed):\n  - %s'
                            % '\n  - '.join(exc.problems))
            plan['criteria_file'] = criteria_file
        return dict(result, changed=False, plan=plan)
