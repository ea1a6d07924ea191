# -*- coding: utf-8 -*-
# Base of this project's controller-side action plugins (not a plugin itself: the leading
# underscore keeps Ansible's loader away). Custom module_utils reach modules through AnsiballZ
# only, so importing this module also puts plugins/module_utils on sys.path for the plugins.

from __future__ import annotations

import os
import sys

from ansible.plugins.action import ActionBase

_MODULE_UTILS = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'module_utils')
if _MODULE_UTILS not in sys.path:
    sys.path.insert(0, _MODULE_UTILS)


class ControllerAction(ActionBase):
    """Runs once per task on the controller, never on a host."""

    TRANSFERS_FILES = False
    BYPASS_HOST_LOOP = True
    _requires_connection = False
    REQUIRED = ()

    def missing_args(self, result):
        """The failed result naming the missing arguments, or None when all are there."""
        missing = [a for a in self.REQUIRED if a not in self._task.args]
        if not missing:
            return None
        return dict(result, failed=True, msg='%s: missing argument(s) %s' % (self._task.action, ', '.join(missing)))
