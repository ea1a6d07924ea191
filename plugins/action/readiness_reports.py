# -*- coding: utf-8 -*-
# Phase 3 of the readiness run on the controller: the reports rendered from the run's folder
# (plugin_utils/fleet_reports.py).

from __future__ import annotations

import os

from ansible_collections.fleetwave.rollout.plugins.modules.readiness_reports import DOCUMENTATION
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_reports
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.controller_action import ControllerAction
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import ArtifactError


class ActionModule(ControllerAction):
    DOCUMENTATION = DOCUMENTATION

    def act(self, args, result):
        try:
            run_dir = self.readiness_run_dir(args)
            written = [] if self._task.check_mode else fleet_reports.render_reports(run_dir)
        except (ArtifactError, ValueError, OSError) as exc:
            return dict(result, failed=True, msg='readiness_reports: %s' % (getattr(exc, 'strerror', None) or exc))
        folder = os.path.join(run_dir, fleet_reports.REPORTS_DIR)
        result.update(changed=bool(written), written=written, report=os.path.join(folder, fleet_reports.REPORT_HTML),
                      brief=os.path.join(folder, fleet_reports.BRIEF_HTML))
        return result
