# -*- coding: utf-8 -*-
# Checks a readiness authorization certificate offline on the controller (plugin_utils/fleet_attest.py
# verify), for the pre-flight of the step it authorizes.

from __future__ import annotations

import os

from ansible_collections.fleetwave.rollout.plugins.modules.readiness_certificate_info import DOCUMENTATION
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_attest
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.controller_action import ControllerAction
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import Layout


class ActionModule(ControllerAction):
    DOCUMENTATION = DOCUMENTATION

    def act(self, args, result):
        path = args['certificate']
        base_dir = args['base_dir'] or os.path.join(os.path.dirname(os.path.abspath(path)), Layout.READINESS_EVIDENCE)
        result.update(changed=False, valid=False, decision=None, constraints=[], signers=[], valid_until=None,
                      run=os.path.basename(os.path.dirname(os.path.abspath(path))))
        try:
            trusted = fleet_attest.trusted_keys(args['trusted_keys'])
        except fleet_attest.AttestError as exc:
            return dict(result, failed=True, msg='readiness_certificate_info: trusted_keys: %s' % exc)
        envelope, problem = fleet_attest.read_envelope(path)
        if problem:
            return dict(result, failures=['%s: %s' % (path, problem)])
        try:
            verdict = fleet_attest.verify(envelope, trusted, args['threshold'], base_dir, evidence_key=self.evidence_key)
        except fleet_attest.AttestError as exc:
            return dict(result, failed=True, msg='readiness_certificate_info: %s' % exc)
        predicate = verdict.predicate
        result.update(valid=verdict.ok, failures=verdict.failures, decision=predicate.get('decision'),
                      constraints=predicate.get('constraints') or [], signers=verdict.signers,
                      valid_until=predicate.get('valid_until'))
        return result
