# -*- coding: utf-8 -*-
# Appends one step of a wave run to its journal (plugin_utils/fleet_journal.record_step); a
# person's answer to a round that asked is turned into the next step by fleet_policy.

from __future__ import annotations

from ansible_collections.fleetwave.rollout.plugins.modules.wave_journal import DOCUMENTATION
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.controller_action import ControllerAction
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import (ArtifactError, ArtifactStore,
                                                                                         name_problem)
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_journal import (Journal, JournalError, progress,
                                                                                       record_step, status_line)


class ActionModule(ControllerAction):
    DOCUMENTATION = DOCUMENTATION
    # Per host, unlike the other controller actions: each host's pre-flight and deploy is its
    # own record (appends from parallel forks meet at the journal's lock).
    BYPASS_HOST_LOOP = False

    def act(self, args, result):
        if args['step'] == 'approval' and not (args['phase'] and args['label']):
            return dict(result, failed=True, msg='wave_journal: step=approval needs phase and label')
        problem = name_problem('wave', args['wave'])
        if problem:  # refused in check mode too: the same run would fail for real
            return dict(result, failed=True, msg='wave_journal: %s (nothing was journaled)' % problem)
        if self._task.check_mode:
            return dict(result, next_step='proceed')
        store = ArtifactStore(args['artifacts_dir'])
        try:
            record, beside = record_step(store, args, self.evidence_key)
        except (ArtifactError, JournalError, OSError) as exc:
            return dict(result, failed=True, msg='could not journal %s of run %s under %s: %s'
                        % (args['step'], args['run_id'], args['artifacts_dir'], exc))
        result.update(changed=True, record=record, outcome=record['outcome'], next_step=record['next_step'],
                      status_line=status_line(store, args['run_id']))
        if args['step'] == 'resume':  # what the run has done: the re-run skips it
            try:
                result['progress'] = progress(Journal(store, args['run_id'], self.evidence_key).records())
            except (ArtifactError, JournalError, OSError) as exc:
                return dict(result, failed=True, msg='could not read back the journal of run %s: %s'
                            % (args['run_id'], exc))
        if beside:
            result['path'] = beside
        return result
