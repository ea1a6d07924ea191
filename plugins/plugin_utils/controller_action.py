# -*- coding: utf-8 -*-
# Base of this collection's controller-side action plugins: they run once per task on the
# controller, never on a host, and take their arguments as their module's DOCUMENTATION declares
# them (the doc stub in plugins/modules is the one argument spec). The logic lives in plain
# classes and functions of plugin_utils that the tests call directly.

from __future__ import annotations

import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase

_SPEC_KEYS = ('type', 'required', 'default', 'choices', 'elements', 'no_log')


def argument_spec(documentation):
    """A module argument_spec from a DOCUMENTATION string's options."""
    options = yaml.safe_load(documentation)['options']
    return {name: {k: v for k, v in option.items() if k in _SPEC_KEYS} for name, option in options.items()}


class ControllerAction(ActionBase):
    """Runs once per task on the controller, never on a host. Subclasses set DOCUMENTATION (their
    module's) and implement act(args, result)."""

    TRANSFERS_FILES = False
    BYPASS_HOST_LOOP = True
    _requires_connection = False
    DOCUMENTATION = None

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args, problem = self.validated_args()
        if problem:
            return dict(result, failed=True, msg=problem)
        return self.act(args, result)

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

    def act(self, args, result):
        raise NotImplementedError
