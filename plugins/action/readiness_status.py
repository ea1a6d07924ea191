# -*- coding: utf-8 -*-
# Updates a readiness run's status record and pages (plugin_utils/fleet_status.py) on the controller.

from __future__ import annotations

import os

from ansible_collections.fleetwave.rollout.plugins.modules.readiness_status import DOCUMENTATION
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_status
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.controller_action import ControllerAction
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import (
    ArtifactError, Layout)


class ActionModule(ControllerAction):
    DOCUMENTATION = DOCUMENTATION

    def act(self, args, result):
        given = dict(state=args['state'], done=args['done'], total=args['total'], progress=args['progress'],
                     message=args['message'], outcome=args['outcome'], links=args['links'])
        changes = {key: value for key, value in given.items() if value is not None}
        try:
            run_dir = self.readiness_run_dir(args)
            write = fleet_status.check if self._task.check_mode else fleet_status.update
            record = write(run_dir, args['area'], **changes)
        except (ValueError, ArtifactError, OSError) as exc:
            return dict(result, failed=True, msg=str(exc))
        result.update(changed=not self._task.check_mode, state=record['state'], complete=record['complete'],
                      area=record['areas'][args['area']], page=os.path.join(run_dir, Layout.STATUS_HTML))
        return result
