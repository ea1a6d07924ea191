# -*- coding: utf-8 -*-
# Base of this collection's controller-side action plugins: they run once per task on the
# controller, never on a host.

from __future__ import annotations

from ansible.plugins.action import ActionBase


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
