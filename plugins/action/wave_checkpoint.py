# -*- coding: utf-8 -*-
# Judges one checkpoint or monitoring round and records it on the controller. Figures:
# plugin_utils/fleet_checkpoint.py; criteria: fleet_gate.py; outcome and next step:
# fleet_policy.py; the folder and the journal record: fleet_journal.RoundRecorder.

from __future__ import annotations

import time

from ansible_collections.fleetwave.rollout.plugins.modules.wave_checkpoint import DOCUMENTATION
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.controller_action import ControllerAction
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import ArtifactError, ArtifactStore
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_checkpoint import judge_round
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_gate import CriteriaError
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_journal import (
    Journal, JournalError, record_round, sequential_state, status_line)


class ActionModule(ControllerAction):
    DOCUMENTATION = DOCUMENTATION

    def act(self, args, result):
        started = args['started'] or time.time()
        try:
            # The sequential comparison goes on from the counts of the run's last judged round.
            before = sequential_state(Journal(ArtifactStore(args['artifacts_dir']), args['run_id'],
                                              self.evidence_key).records())
        except (ArtifactError, JournalError, OSError) as exc:
            return dict(result, failed=True, msg='wave_checkpoint: could not read the run journal under %s: %s '
                        '(nothing was written)' % (args['artifacts_dir'], exc))
        try:
            judged = judge_round(args, before)
        except CriteriaError as exc:
            return dict(result, failed=True, msg='criteria refused:\n  - %s' % '\n  - '.join(exc.problems))
        except ArtifactError as exc:  # a wave or label that cannot name its folder (Layout)
            return dict(result, failed=True, msg='wave_checkpoint: %s (nothing was written)' % exc)
        result.update(changed=not self._task.check_mode, **judged['result'])
        if self._task.check_mode:
            return result
        store = ArtifactStore(args['artifacts_dir'])
        try:
            result['path'] = record_round(store, args, judged, started, self.evidence_key)
        except (ArtifactError, JournalError, OSError) as exc:
            return dict(result, failed=True, msg='could not write checkpoint %s under %s: %s'
                        % (judged['result']['folder'], args['artifacts_dir'], exc))
        result['status_line'] = status_line(store, args['run_id'])
        return result
