# -*- coding: utf-8 -*-
# Writes one record (JSON or text) into the artifact store, atomically, so that records made
# by playbooks go through the same store as checkpoints and decisions.

from __future__ import annotations

from ansible_collections.fleetwave.rollout.plugins.modules.artifact_record import DOCUMENTATION
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.controller_action import ControllerAction
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import ArtifactError, ArtifactStore


class ActionModule(ControllerAction):
    DOCUMENTATION = DOCUMENTATION

    def act(self, args, result):
        if (args['data'] is None) == (args['text'] is None):
            return dict(result, failed=True,
                        msg='artifact_record needs artifacts_dir, path and exactly one of data or text')
        store = ArtifactStore(args['artifacts_dir'])
        try:
            result['dest'] = store.path(args['path'])
            if args['manifest']:
                store.path(args['manifest'])  # refused before anything is written when outside the store
            if not self._task.check_mode:
                if args['data'] is not None:
                    store.write_json(args['path'], args['data'])
                else:
                    store.write_text(args['path'], args['text'])
                if args['manifest']:
                    store.write_manifest(args['manifest'], self.evidence_key)
        except (ArtifactError, OSError) as exc:
            return dict(result, failed=True, msg='could not write %s under %s: %s'
                        % (args['path'], args['artifacts_dir'], exc))
        result['changed'] = not self._task.check_mode
        return result
