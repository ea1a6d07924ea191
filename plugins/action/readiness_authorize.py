# -*- coding: utf-8 -*-
# Phase 2 of the readiness run on the controller: the decision (fleet_gates.authorization_decision),
# stated and signed (fleet_attest.statement, sign) with the approvers' keys read from the inventory,
# written, then verified as scripts/verify-certificate verifies it.

from __future__ import annotations

import datetime
import os

from ansible_collections.fleetwave.rollout.plugins.modules.readiness_authorize import DOCUMENTATION
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_attest, fleet_gate, fleet_gates, fleet_status
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.controller_action import ControllerAction
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import (
    ArtifactError, ArtifactStore, Layout)


class ActionModule(ControllerAction):
    DOCUMENTATION = DOCUMENTATION

    def act(self, args, result):
        try:
            return self._authorize(args, result)
        except (fleet_attest.AttestError, fleet_gate.CriteriaError, ArtifactError, ValueError, OSError) as exc:
            return dict(result, failed=True, msg='readiness_authorize: %s' % (getattr(exc, 'strerror', None) or exc))

    def _signing_keys(self, args):
        """The approvers' SigningKeys, each checked to be usable and their trusted key; ValueError names
        the approver (never the value)."""
        trusted = fleet_attest.trusted_keys(args['trusted_keys'])
        keys = fleet_attest.signing_keys_of(self._inventory_value(self.task_vars, fleet_attest.SIGNING_KEYS_VAR))
        approvers = list(args['approvers'])
        if not approvers or len(set(approvers)) != len(approvers):
            raise ValueError('approvers: at least one, each named once (%s)' % ', '.join(approvers))
        if not 1 <= args['threshold'] <= len(approvers):
            raise ValueError('threshold %d: at least 1 and at most the number of approvers who sign (%d)'
                             % (args['threshold'], len(approvers)))
        without = [name for name in approvers if not keys.get(name)]
        if without:
            raise ValueError('no signing key for approver(s) %s in %s (from vault or an AWX credential)'
                             % (', '.join(without), fleet_attest.SIGNING_KEYS_VAR))
        signing = [fleet_attest.SigningKey(name, keys[name]) for name in approvers]
        untrusted = [key.approver for key in signing if trusted.get(key.keyid, (None,))[0] != key.approver]
        if untrusted:
            raise ValueError('the signing key of %s is not the trusted key of that approver in trusted_keys'
                             % ', '.join(untrusted))
        if not 0 < args['valid_hours'] <= 24 * 366:
            raise ValueError('valid_hours %r: more than 0 and at most %d hours' % (args['valid_hours'], 24 * 366))
        return trusted, signing

    def _authorize(self, args, result):
        trusted, signing = self._signing_keys(args)
        criteria = fleet_gate.criteria_lines(fleet_gate.with_thresholds(
            fleet_gate.load_criteria(args['criteria_file']), args['criteria_thresholds'], 'criteria_thresholds'))
        if args['keys_only']:
            return dict(result, changed=False, signers=[key.approver for key in signing])
        run_dir = self.readiness_run_dir(args)
        evidence = os.path.join(run_dir, Layout.READINESS_EVIDENCE)
        status = fleet_status.read(run_dir)
        incomplete = [area for area in fleet_status.AREAS  # in the run's order
                      if fleet_status.PHASE_OF[area] == 1 and status['areas'][area]['state'] != 'complete']
        records, _results, _ledgers = fleet_gates.evidence_records(evidence)
        unknown = sorted(set(args['constraint_gates']) - set(fleet_gates.GATES))
        if unknown:
            raise ValueError('constraint_gates names %s, not a gate (the gates: %s)' % (
                ', '.join(unknown), ', '.join(fleet_gates.GATES)))
        decision, reasons, constraints = fleet_gates.authorization_decision(records, incomplete,
                                                                            args['constraint_gates'])
        result.update(decision=decision, reasons=reasons, constraints=constraints)
        if self._task.check_mode:
            return dict(result, changed=False)
        approvers = [key.approver for key in signing]
        now = datetime.datetime.now(datetime.timezone.utc)
        statement = fleet_attest.statement(
            evidence, decision, args['fleet_state'], approvers, now + datetime.timedelta(hours=args['valid_hours']),
            constraints=constraints, audit_trails=args['audit_trails'],
            next_step=args['next_step'], issued_at=now, evidence_key=self.evidence_key, reasons=reasons, **criteria)
        envelope = fleet_attest.sign(statement, signing)
        store = ArtifactStore(run_dir)
        store.write_json(Layout.TRUSTED_KEYS, dict(keys=args['trusted_keys'], threshold=args['threshold']))
        certificate = store.write_json(Layout.CERTIFICATE, envelope)
        verdict = fleet_attest.verify(envelope, trusted, args['threshold'], evidence, now=now,
                                      evidence_key=self.evidence_key)
        if not verdict.ok:
            return dict(result, failed=True, certificate=certificate,
                        msg='readiness_authorize: the certificate written does not verify: %s'
                            % '; '.join(verdict.failures))
        result.update(changed=True, certificate=certificate, signers=verdict.signers,
                      valid_until=statement['predicate']['valid_until'],
                      verify='scripts/verify-certificate %s --trusted-keys %s --base-dir %s' % (
                          certificate, store.path(Layout.TRUSTED_KEYS), evidence))
        return result
