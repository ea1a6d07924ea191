# -*- coding: utf-8 -*-
# Base of this collection's controller-side action plugins: they run once per task on the
# controller, never on a host, and take their arguments as their module's DOCUMENTATION declares
# them (the doc stub in plugins/modules is the one argument spec). The logic lives in plain
# classes and functions of plugin_utils that the tests call directly.

from __future__ import annotations

import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.fleetwave.rollout.plugins.doc_fragments import nats as nats_fragment
from ansible_collections.fleetwave.rollout.plugins.doc_fragments import readiness as readiness_fragment
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_nats import NATS_ARGUMENT_SPEC
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_evidence
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import ArtifactStore, Layout

_SPEC_KEYS = ('type', 'required', 'default', 'choices', 'elements', 'no_log')
# The doc fragments a stub may extend (extends_documentation_fragment, optionally .<variable>), and
# which of their options are secrets: documentation cannot say no_log, the fragment's spec does.
FRAGMENTS = {'fleetwave.rollout.nats': (nats_fragment.ModuleDocFragment,
                                        {name for name, spec in NATS_ARGUMENT_SPEC.items() if spec.get('no_log')}),
             'fleetwave.rollout.readiness': (readiness_fragment.ModuleDocFragment, set())}


def argument_spec(documentation):
    """A module argument_spec from a DOCUMENTATION string's options, its doc fragments' merged in
    as ansible-doc merges them."""
    documentation = yaml.safe_load(documentation)
    options = dict(documentation.get('options') or {})
    for name in documentation.get('extends_documentation_fragment') or []:
        base, variable = (name, 'DOCUMENTATION') if name in FRAGMENTS else name.rsplit('.', 1)
        fragment, secrets = FRAGMENTS[base]
        for option, spec in yaml.safe_load(getattr(fragment, variable.upper()))['options'].items():
            options[option] = dict(spec, no_log=True) if option in secrets else spec
    return {name: {k: v for k, v in option.items() if k in _SPEC_KEYS} for name, option in options.items()}


class ControllerAction(ActionBase):
    """Runs once per task on the controller, never on a host. Subclasses set DOCUMENTATION (their
    module's) and implement act(args, result)."""

    TRANSFERS_FILES = False
    evidence_key = None  # fleet_evidence.EvidenceKey from fleet_evidence_key, or None
    evidence_unsigned = False  # fleet_evidence_unsigned: run a wave without a key, knowingly
    BYPASS_HOST_LOOP = True
    _requires_connection = False
    DOCUMENTATION = None

    task_vars = None  # the task's variables, for what an action reads from the inventory itself

    def run(self, tmp=None, task_vars=None):
        self.task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args, problem = self.validated_args()
        if problem:
            return dict(result, failed=True, msg=problem)
        # The evidence key is read from the inventory here, never passed as an argument: an
        # argument would travel in the task's invocation, where results and logs could show it.
        try:
            self.evidence_key = fleet_evidence.key_from(self._inventory_value(task_vars, fleet_evidence.KEY_VAR))
            self.evidence_unsigned = boolean(self._inventory_value(task_vars, fleet_evidence.UNSIGNED_VAR) or False,
                                             strict=False)
        except fleet_evidence.EvidenceError as exc:
            return dict(result, failed=True, msg=str(exc))
        return self.act(args, result)

    def _inventory_value(self, task_vars, name):
        value = (task_vars or {}).get(name)
        return None if value is None else self._templar.template(value)

    def validated_args(self):
        """(arguments with types and defaults applied, None), or (None, a message naming every
        missing, unknown or ill-typed argument)."""
        spec = argument_spec(self.DOCUMENTATION)
        given = dict(self._task.args)
        name = self._task.action.rsplit('.', 1)[-1]
        missing = [a for a, s in spec.items() if s.get('required') and given.get(a) is None]
        unknown = sorted(set(given) - set(spec))
        parts = []
        if missing:
            parts.append('missing argument(s) %s' % ', '.join(missing))
        if unknown:
            parts.append('unknown argument(s) %s' % ', '.join(unknown))
        if parts:
            return None, '%s: %s' % (name, '; '.join(parts))
        checked = ArgumentSpecValidator(spec).validate(given)
        if checked.error_messages:
            return None, '%s: %s' % (name, '; '.join(checked.error_messages))
        return checked.validated_parameters, None

    def readiness_run_dir(self, args):
        """The readiness run's folder from the readiness fragment's artifacts_dir and run (ArtifactError or
        ValueError when the run's name would leave the store)."""
        return ArtifactStore(args['artifacts_dir']).path(Layout.readiness_run(args['run']))

    def act(self, args, result):
        raise NotImplementedError
