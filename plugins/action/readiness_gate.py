# -*- coding: utf-8 -*-
# Decides one readiness gate (plugin_utils/fleet_gates.py) on the controller and records it in the run.

from __future__ import annotations

import inspect
import os

from ansible_collections.fleetwave.rollout.plugins.modules.readiness_gate import DOCUMENTATION
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_attest, fleet_gates
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.controller_action import ControllerAction
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import (
    ArtifactError, ArtifactStore, Layout)

GATES = {
    'code': fleet_gates.code_gate,
    'security': fleet_gates.security_gate,
    'performance': fleet_gates.performance_gate,
    'compliance': fleet_gates.compliance_gate,
    'docs': fleet_gates.docs_gate,
    'testing': fleet_gates.testing_gate,
    'deployment': fleet_gates.deployment_gate,
    'support': fleet_gates.support_gate,
}
# Inputs the action supplies itself from the inventory, never taken from the task's arguments (an
# argument travels in the task's invocation, where results and logs could show it): the evidence key,
# and for the security gate the secrets it searches for and the controller's NATS connection.
KEYED = ('evidence_key', 'secrets', 'nats_connection', 'declared_public')
NATS_CONNECTION_VAR = 'fleet_nats_connection'


class ActionModule(ControllerAction):
    DOCUMENTATION = DOCUMENTATION

    def inventory_secrets(self):
        """({label: value} of every secret the inventory gives this run, labels naming variables, never
        values; [labels of those the inventory declares public test values, searched for in the artifacts
        only])."""
        found = {}
        for name in fleet_gates.SECRET_VARS:  # each a value; the approvers' keys are a mapping
            value = self._inventory_value(self.task_vars, name)
            if isinstance(value, str) and value:
                found[name] = value
        try:
            keys = fleet_attest.signing_keys_of(self._inventory_value(self.task_vars, fleet_attest.SIGNING_KEYS_VAR))
        except ValueError:  # unusable as keys, but still a secret to search for
            keys = {'(text)': self._inventory_value(self.task_vars, fleet_attest.SIGNING_KEYS_VAR)}
        for approver, value in keys.items():
            if isinstance(value, str) and value:
                found['%s[%s]' % (fleet_attest.SIGNING_KEYS_VAR, approver)] = value
        public = self._inventory_value(self.task_vars, fleet_gates.PUBLIC_SECRETS_VAR) or []
        return found, sorted({label.split('[')[0] for label in found} & set(public))

    def act(self, args, result):
        decide = GATES[args['gate']]
        parameters = inspect.signature(decide).parameters
        taken = [name for name in parameters if name not in KEYED]
        given = dict(args['evidence'])
        unknown = sorted(set(given) - set(taken))
        missing = [name for name in taken if parameters[name].default is inspect.Parameter.empty and name not in given]
        if unknown or missing:
            return dict(result, failed=True, msg='readiness_gate %s: %s (the gate takes: %s)' % (
                args['gate'], '; '.join(filter(None, ('unknown evidence %s' % ', '.join(unknown) if unknown else '',
                                                      'missing evidence %s' % ', '.join(missing) if missing else ''))),
                ', '.join(taken)))
        if 'evidence_key' in parameters:
            given['evidence_key'] = self.evidence_key
        if 'secrets' in parameters:
            given['secrets'], given['declared_public'] = self.inventory_secrets()
            given['nats_connection'] = self._inventory_value(self.task_vars, NATS_CONNECTION_VAR)
        try:
            record = decide(**given)
        except (TypeError, ValueError) as exc:  # evidence of the wrong type, e.g. a ratio given as text
            return dict(result, failed=True, msg='readiness_gate %s: the evidence is not usable: %s' % (args['gate'], exc))
        relpath = os.path.join(Layout.readiness_run(args['run']), 'gates', '%s.json' % args['gate'])
        try:
            store = ArtifactStore(args['artifacts_dir'])
            result['dest'] = store.path(relpath)
            if not self._task.check_mode:
                store.write_json(relpath, record)
        except (ArtifactError, OSError) as exc:
            return dict(result, failed=True, msg='could not write %s under %s: %s'
                        % (relpath, args['artifacts_dir'], exc))
        result.update(changed=not self._task.check_mode, record=record)
        return result
