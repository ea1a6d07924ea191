# -*- coding: utf-8 -*-
# The failure-modes area of the readiness run on the controller: one failure mode's data-integrity
# ledger from the traffic that ran through it (module_utils/fleet_traffic.py, plugin_utils/fleet_ledger.py).

from __future__ import annotations

import json
import os

from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_traffic import ledger_inputs
from ansible_collections.fleetwave.rollout.plugins.modules.readiness_ledger import DOCUMENTATION
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_ledger
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.controller_action import ControllerAction
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import (ArtifactError, ArtifactStore,
                                                                                       Layout)


def ledger_record(args, observations):
    """The ledger of args['mode'] from the traffic's observations (LedgerError or TrafficError on bad input)."""
    window = {'injected_at': args['injected_at'], 'detected_at': args.get('detected_at'),
              'recovered_at': args.get('recovered_at')}
    return fleet_ledger.build_ledger(args['mode'], window, **ledger_inputs(observations), timeout=args['timeout'],
                                     budget=args['budget'], detect_from_traffic=True)


class ActionModule(ControllerAction):
    DOCUMENTATION = DOCUMENTATION

    def act(self, args, result):
        try:
            run_dir = self.readiness_run_dir(args)
            with open(args['traffic'], 'rb') as handle:
                observations = json.loads(handle.read().decode('utf-8'))
            record = ledger_record(args, observations)
            folder = os.path.join(run_dir, Layout.FAILURE_MODES_DIR)
            path = Layout.failure_ledger(folder, args['mode'])
            if not self._task.check_mode:
                fleet_ledger.write_ledger(ArtifactStore(run_dir), folder, record)
        except (ArtifactError, OSError, ValueError) as exc:  # LedgerError, TrafficError and bad JSON are ValueErrors
            return dict(result, failed=True, msg='readiness_ledger %s: %s' % (
                args['mode'], getattr(exc, 'strerror', None) and '%s: %s' % (exc.filename, exc.strerror) or exc))
        result.update(changed=not self._task.check_mode, ledger=path, verdict=record['verdict'],
                      reasons=record['reasons'], lost=record['lost'], timings=record['timings'],
                      measured=record['measured'])
        return result
