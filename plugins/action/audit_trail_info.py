# -*- coding: utf-8 -*-
# Names this run's audit trail and its head, to hand over to a workflow's next jobs, or checks a trail
# handed over against its anchor (plugin_utils/fleet_audit.py check) for the pre-flight that trusts it.

from __future__ import annotations

import os

from ansible_collections.fleetwave.rollout.plugins.modules.audit_trail_info import DOCUMENTATION
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_audit
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.controller_action import ControllerAction


class ActionModule(ControllerAction):
    DOCUMENTATION = DOCUMENTATION

    def act(self, args, result):
        result.update(changed=False, trail=None, anchor=None, lines=0, verified=None, reason=None)
        if not args['trail']:
            path = os.environ.get(fleet_audit.TRAIL_ENV)
            if not path or not os.path.isfile(path):
                return dict(result, reason='this run records no audit trail (the audit_trail callback is not enabled)')
            lines, anchor = fleet_audit.head(path)
            return dict(result, trail=path, anchor=anchor, lines=lines, reason='this run\'s trail, being written')
        path = args['trail']
        result['trail'] = path
        if not os.path.isfile(path):
            return dict(result, reason='%s is not on this controller (kept where its job ran): not checked' % path)
        try:
            verdict = fleet_audit.check(path, args['anchor'] or None, self.evidence_key)
        except (ValueError, OSError) as exc:
            return dict(result, verified=False, reason='%s: %s' % (path, exc))
        reason = verdict.reason if verdict.ok else 'line %s: %s' % (verdict.first_bad_line, verdict.reason)
        return dict(result, anchor=verdict.anchor, lines=verdict.lines, verified=verdict.ok, reason=reason)
