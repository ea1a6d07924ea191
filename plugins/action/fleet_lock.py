# -*- coding: utf-8 -*-
# Takes, renews or releases the fleet lock (plugin_utils/fleet_state.FleetLock) in the store the
# inventory names (fleet_state_backend: a directory, or NATS JetStream Key-Value). Runs once on the
# controller; every message and result is redacted of the NATS credentials.

from __future__ import annotations

import math
import os

from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_limits import out_of_range
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_nats import redact
from ansible_collections.fleetwave.rollout.plugins.modules.fleet_lock import DOCUMENTATION
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_state
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.controller_action import ControllerAction

CONNECTION = ('url', 'user', 'password', 'token', 'creds_file', 'connect_timeout')
CHANGES = ('acquired', 'resumed', 'taken over', 'renewed', 'released')
VERB = dict(acquired='acquire', renewed='renew', released='release')


def scrub(value, connection):
    """value with every NATS credential masked in every string (fleet_nats.redact)."""
    if isinstance(value, str):
        return redact(value, connection)
    if isinstance(value, dict):
        return {k: scrub(v, connection) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub(v, connection) for v in value]
    return value


def problems_of(args):
    """What is wrong with the numbers, each naming the option, its inventory variable and the range."""
    problems = []
    lease = args['lease_seconds']
    bad = out_of_range('fleet_lock_lease_seconds', lease)
    if bad:
        problems.append('lease_seconds (fleet_lock_lease_seconds): %s' % bad)
    if args['backend'] == 'jetstream':
        bad_timeout = out_of_range('connect_timeout', args['connect_timeout'])
        if bad_timeout:
            problems.append('connect_timeout: %s' % bad_timeout)
    interval = args['renew_interval']
    if args['state'] == 'acquired' and interval is not None:
        if not (isinstance(interval, (int, float)) and math.isfinite(interval) and interval > 0):
            problems.append('renew_interval (wave_monitor_interval_seconds): must be a positive number of seconds, '
                            'got %r' % (interval,))
        elif not bad and lease < 2 * interval:
            problems.append('lease_seconds (fleet_lock_lease_seconds) = %g s is too short for a renewal every %g s '
                            '(wave_monitor_interval_seconds): the lease is renewed once per round, so it must last a '
                            'round\'s wait and the round itself - at least %g s, twice the interval'
                            % (lease, interval, 2 * interval))
    return problems


class ActionModule(ControllerAction):
    DOCUMENTATION = DOCUMENTATION

    def run(self, tmp=None, task_vars=None):
        self._vars = task_vars or {}
        return super().run(tmp, task_vars)

    def act(self, args, result):
        connection = {name: args[name] for name in CONNECTION}
        return scrub(self._act(args, result, connection), connection)

    def _var(self, name):
        return self._inventory_value(self._vars, name)

    def _holder(self, args):
        """Who asks: the operator (AWX user, else $USER), the run, its playbook, this controller's process."""
        who = (args['operator'] or self._var('awx_user_name') or self._var('tower_user_name')
               or os.environ.get('USER') or 'unknown')
        return dict(fleet_state.this_process(), who=str(who), run_id=args['run_id'],
                    playbook=args['playbook'] or str(self._var('ansible_play_name') or ''))

    def _act(self, args, result, connection):
        state, run_id, check = args['state'], args['run_id'], bool(self._task.check_mode)
        nothing = 'nothing was locked' if state == 'acquired' else 'nothing was changed'
        problems = problems_of(args)
        if problems:
            return dict(result, failed=True, msg='fleet_lock: %s (%s)' % ('; '.join(problems), nothing))
        lease, fleet = float(args['lease_seconds']), args['fleet']
        lock = dict(key=fleet_state.LOCK_PREFIX + str(fleet), backend=args['backend'], where=None, revision=None)
        try:
            with fleet_state.open_store(args['backend'], args['state_dir'], args['bucket'], connection,
                                        create=not check) as store:
                lock['where'] = store.where
                held = fleet_state.FleetLock(store, fleet)
                if state == 'acquired':
                    # Continue the unfinished run only while the lock still names it: a run that took
                    # the fleet since (a forced rollback, say) means that run is over.
                    current = (held.peek() or {}).get('holder') or {}
                    if args['resume_run_id'] and current.get('run_id') == args['resume_run_id']:
                        run_id = args['resume_run_id']
                    elif args['resume_required']:
                        return dict(result, failed=True, outcome='refused', holder=current or None, takeover=None,
                                    lock=lock, msg='fleet_lock: run %s is to be gone on with, but the fleet lock %s; '
                                    'a run that took the fleet since ended it (nothing was locked)' % (
                                        args['resume_run_id'] or '(none named)',
                                        'names ' + fleet_state.describe_holder(current) if current else 'is free'))
                    holder = self._holder(dict(args, run_id=run_id))
                    done = (held.preview_acquire if check else held.acquire)(holder, lease, args['force'],
                                                                             args['force_run_id'] or None)
                elif state == 'renewed':
                    done = (held.preview_renew if check else held.renew)(run_id, lease)
                else:
                    done = held.release(run_id, dry_run=check)
        except fleet_state.LockHeld as exc:
            return dict(result, failed=True, msg=str(exc), outcome='refused', holder=exc.holder, takeover=None,
                        lock=lock)
        except fleet_state.LockLost as exc:
            return dict(result, failed=True, msg=str(exc), outcome='lost', holder=exc.holder, takeover=None,
                        lock=lock)
        except fleet_state.StateError as exc:
            return dict(result, failed=True, outcome='failed', takeover=None, lock=lock,
                        msg='fleet_lock: cannot %s the fleet lock %s in the %s store: %s (%s)' % (
                            VERB[state], lock['key'], args['backend'], exc, nothing))
        action, holder, takeover = done['action'], done['holder'], done['takeover']
        lock['revision'] = done['revision']
        result.update(outcome=action, holder=holder, takeover=takeover, lock=lock,
                      changed=action in CHANGES)
        if state == 'acquired':
            result['run_id'] = run_id
        if state == 'renewed':
            result['lapsed_seconds'] = done['lapsed_seconds']
        result['msg'] = self._message(done, run_id, check)
        warnings = []
        if action == 'refused':  # check mode only: a preview changes nothing, so it is not stopped
            warnings.append('check mode: the run would be refused - %s' % done['msg'])
        elif action == 'taken over':
            warnings.append(result['msg'])
        elif action == 'not held':
            warnings.append('run %s does not hold the fleet lock %s: %s holds it; left to it'
                            % (run_id, lock['key'], fleet_state.describe_holder(holder)))
        elif done.get('lapsed_seconds'):
            warnings.append('the lease of run %s had expired %.1f s before this renewal; nobody took the lock meanwhile'
                            % (run_id, done['lapsed_seconds']))
        if warnings:
            result['warnings'] = warnings
        return result

    @staticmethod
    def _message(done, run_id, check):
        action, holder, takeover = done['action'], done['holder'], done['takeover']
        prefix = 'check mode, nothing written: would be ' if check and action in CHANGES else ''
        if action == 'refused':
            return done['msg']
        if action in ('not held', 'already released'):
            return 'fleet lock %s not released by run %s: %s' % (
                done['key'], run_id, 'nobody holds it' if action == 'already released'
                else 'held by %s' % fleet_state.describe_holder(holder))
        text = '%sfleet lock %s %s: %s' % (prefix, done['key'], action, fleet_state.describe_holder(holder))
        if takeover:
            text += '; taken over from %s - %s%s' % (
                fleet_state.describe_holder(takeover['previous']), takeover['reason'],
                ' (expired %.0f s before)' % takeover['expired_for_seconds']
                if takeover.get('expired_for_seconds') is not None else '')
        if action == 'resumed':
            text += '; resumed by the same run (it held the lock before, process %s)' % (
                (done.get('previous') or {}).get('pid'),)
        return text
