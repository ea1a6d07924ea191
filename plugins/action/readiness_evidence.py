# -*- coding: utf-8 -*-
# Collects a readiness run's evidence into its folder and indexes it (plugin_utils/fleet_attest.py
# collect), on the controller, with the executive summary and the technical report rendered from the
# records collected (plugin_utils/fleet_gates.py evidence_summary, evidence_report).

from __future__ import annotations

import os

from ansible_collections.fleetwave.rollout.plugins.modules.readiness_evidence import DOCUMENTATION
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_attest, fleet_gates
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.controller_action import ControllerAction
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import (
    ArtifactError, ArtifactStore, Layout)


class ActionModule(ControllerAction):
    DOCUMENTATION = DOCUMENTATION

    def act(self, args, result):
        try:
            run_dir = self.readiness_run_dir(args)
        except (ValueError, ArtifactError) as exc:
            return dict(result, failed=True, msg=str(exc))
        folder = os.path.join(run_dir, Layout.READINESS_EVIDENCE)
        sources = list(args['files'].values()) + list(args['folders'].values()) + list(args['audit_trails'])
        if self._task.check_mode:
            missing = [str(s) for s in sources if not os.path.exists(s)]
            return dict(result, changed=False, index=os.path.join(folder, Layout.EVIDENCE_INDEX), files=0, copied=[],
                        missing=missing)
        try:
            _index, collected = fleet_attest.collect(folder, args['files'], args['folders'], args['audit_trails'])
            store = ArtifactStore(folder)
            records = fleet_gates.evidence_records(folder)
            store.write_text(Layout.EVIDENCE_SUMMARY, fleet_gates.evidence_summary(args['run'], *records))
            store.write_text(Layout.EVIDENCE_REPORT, fleet_gates.evidence_report(args['run'], folder, *records))
            index_path, index = fleet_attest.write_index(folder)  # again, with the two documents
        except (fleet_attest.AttestError, ArtifactError, ValueError, OSError) as exc:
            return dict(result, failed=True, msg='readiness_evidence: %s' % (getattr(exc, 'strerror', None) or exc))
        result.update(changed=True, index=index_path, files=len(index['files']),
                      copied=collected['copied'] + [Layout.EVIDENCE_SUMMARY, Layout.EVIDENCE_REPORT],
                      missing=collected['missing'])
        return result
