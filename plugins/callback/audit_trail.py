# -*- coding: utf-8 -*-
# Audit trail of a playbook run as a hash-chained JSON-lines file. This plugin only maps Ansible's
# hooks to plain values; the log, its chain and what is kept of a result live in
# module_utils/fleet_audit.py (AuditLog, AuditRecorder), which the unit tests drive directly.

from __future__ import annotations

DOCUMENTATION = r'''
name: audit_trail
type: aggregate
short_description: Records a tamper-evident audit trail of each playbook run
description:
  - Writes one JSON object per line to a log file, for the run (playbook, run id, controller user, check mode,
    limit, the B(names) of the extra vars), each play, each task and handler start (name, action, role,
    file and line), each host result (status, changed, duration since the task started, the loop item's
    label, the result's C(msg) truncated), the per-host stats and the end of the run (outcome C(ok) or
    C(failed); C(aborted) when an error or an interrupt ends the run before its stats).
  - Never records module arguments, extra-var values, diffs or output other than C(msg). A result of a
    task with C(no_log), or that carries C(_ansible_no_log), is kept only as its status and a
    C(censored) notice.
  - Each line carries C(seq), a UTC C(ts), C(prev) (SHA-256 of the previous line) and C(sha256) (of its own
    content), so an edited, deleted, inserted or moved line is found by C(scripts/audit-verify FILE);
    each line is fsync'd as it is written. At the end of the run the plugin prints (on stderr) the path and
    the head C(SEQ:SHA256) of the log; C(scripts/audit-verify --anchor SEQ:SHA256 FILE) also proves that
    no line was removed from the end.
  - With the evidence key (the inventory variable C(fleet_evidence_key) as the first play sees it, else the
    environment variable C(FLEET_EVIDENCE_KEY)) each line also carries C(key_id) and C(mac), its HMAC-SHA256,
    so a rewrite with every hash recomputed fails C(scripts/audit-verify) at its first line. The log is
    opened when the first play starts, when the key can be read.
  - The head is also appended, fsync'd, to C(anchors.jsonl) beside the log every O(anchor_every) lines or
    O(anchor_seconds), and at the end, so a run that is killed still leaves heads that C(scripts/audit-verify)
    checks the log's end against.
  - If the log cannot be written the plugin warns once and records nothing more for this run.
requirements:
  - enable in configuration (C(callbacks_enabled = audit_trail))
options:
  path:
    description:
      - The JSON-lines file to append to (created, with its folders, if missing). An existing log is
        continued, its chain intact.
      - A relative path set in C(ansible.cfg) is relative to the folder of that file; one set in the
        environment is relative to the current working directory.
      - When not set, each run writes a new file
        C(artifacts/audit/<playbook file name without extension>-<UTC start, YYYYMMDDTHHMMSSZ>.jsonl)
        relative to the current working directory (in AWX, the project folder).
    type: path
    env:
      - name: FLEETWAVE_AUDIT_PATH
    ini:
      - section: callback_audit_trail
        key: path
  max_msg_chars:
    description:
      - The longest C(msg) or loop item label kept in a host result, in characters; a longer one is cut (and
        the full length of a message recorded as C(msg_chars)). C(0) keeps no messages.
    type: int
    default: 2000
    env:
      - name: FLEETWAVE_AUDIT_MAX_MSG_CHARS
    ini:
      - section: callback_audit_trail
        key: max_msg_chars
  anchor_every:
    description: Append the head to C(anchors.jsonl) after this many lines.
    type: int
    default: 100
    env:
      - name: FLEETWAVE_AUDIT_ANCHOR_EVERY
    ini:
      - section: callback_audit_trail
        key: anchor_every
  anchor_seconds:
    description: Append the head to C(anchors.jsonl) when this many seconds have passed since the last anchor.
    type: float
    default: 30
    env:
      - name: FLEETWAVE_AUDIT_ANCHOR_SECONDS
    ini:
      - section: callback_audit_trail
        key: anchor_seconds
'''

import atexit
import datetime
import getpass
import os
import uuid

from ansible import context
from ansible.plugins.callback import CallbackBase
from ansible.template import Templar
from ansible.utils.vars import load_extra_vars

from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_evidence
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import Layout
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_audit import (KEY_ENV, TRAIL_ENV, AuditError, AuditLog,
                                                                                  AuditRecorder)


def default_path(playbook, started):
    """artifacts/audit/<playbook stem>-<UTC stamp>.jsonl, relative to the working directory."""
    stem = os.path.splitext(os.path.basename(playbook))[0] or 'playbook'
    return os.path.join('artifacts', Layout.audit_trail(stem, started.strftime('%Y%m%dT%H%M%SZ')))


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'aggregate'
    CALLBACK_NAME = 'audit_trail'
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display=None):
        super().__init__(display=display)
        self.recorder = None
        self.path = None
        self.run_id = str(uuid.uuid4())
        self._start = None  # playbook_start's arguments, recorded when the log opens (first play)

    # ---------------------------------------------------------------- plumbing

    def _record(self, method, *args, **kwargs):
        """Call the recorder; on a write error warn once and stop recording."""
        if self._start is not None:  # something to record before any play (stats of an empty run)
            self._open()
        if self.recorder is None:
            return
        try:
            getattr(self.recorder, method)(*args, **kwargs)
        except (OSError, AuditError, ValueError, TypeError) as exc:
            self._fail('cannot write %s: %s' % (self.path, exc))

    def _fail(self, why):
        self._display.warning('audit_trail: %s; no audit trail is recorded for the rest of this run' % why)
        atexit.unregister(self._at_exit)
        if self.recorder is not None:
            self.recorder.log.close()
        self.recorder = None
        self.disabled = True

    def _open(self, play=None):
        """Open the log (with the evidence key the play sees, if any) and record the run's start."""
        playbook, started, start_args = self._start
        self._start = None
        self.path = self.get_option('path') or default_path(playbook, started)
        try:
            key = fleet_evidence.key_from(self._inventory_key(play) or os.environ.get(KEY_ENV))
        except fleet_evidence.EvidenceError as exc:  # never shows the value
            self._display.warning('audit_trail: %s; this trail is not keyed' % exc)
            key = None
        try:
            log = AuditLog(self.path, key=key, anchors=Layout.audit_anchors(os.path.abspath(self.path)),
                           anchor_every=self.get_option('anchor_every'), anchor_seconds=self.get_option('anchor_seconds'))
        except (OSError, AuditError) as exc:
            self._fail('cannot open %s: %s' % (self.path, exc))
            return
        self.recorder = AuditRecorder(log, max_msg_chars=self.get_option('max_msg_chars'))
        os.environ[TRAIL_ENV] = os.path.abspath(self.path)  # for audit_trail_info in the run's tasks
        atexit.register(self._at_exit, os.getpid())
        self._record('playbook_start', *start_args[:-1], extra_vars=start_args[-1])

    @staticmethod
    def _inventory_key(play):
        """fleet_evidence_key as the play's first host (or localhost) sees it, templated (vault), or
        None. Best effort through the variable manager: the env variable is the fallback."""
        manager = getattr(play, '_variable_manager', None)
        if manager is None:
            return None
        try:
            inventory = manager._inventory
            hosts = inventory.get_hosts(play.hosts) or [inventory.localhost or inventory.get_host('localhost')]
            variables = manager.get_vars(play=play, host=hosts[0] if hosts and hosts[0] else None)
            value = variables.get(fleet_evidence.KEY_VAR)
            return None if value is None else str(Templar(loader=play._loader, variables=variables).template(value))
        except Exception:  # pylint: disable=broad-except  # an unkeyed trail is better than none
            return None

    def _at_exit(self, pid):
        """A run that ends without stats (an error aborted it, or Ctrl-C) still ends its trail."""
        if self._start is not None and os.getpid() == pid:  # it ended before its first play
            self._open()
        if self.recorder is not None and os.getpid() == pid:
            self._record('playbook_end', aborted=True)
            if self.recorder is not None:
                self._close()

    def _close(self):
        atexit.unregister(self._at_exit)
        log = self.recorder.log
        log.close()
        self.recorder = None
        self._display.display('audit_trail: %s: %d lines, anchor %s' % (self.path, log.seq, log.anchor), stderr=True)

    @staticmethod
    def _user():
        try:
            return getpass.getuser()
        except (KeyError, OSError):  # no passwd entry (some containers)
            return str(os.getuid())

    @staticmethod
    def _no_log(task):
        # A templated no_log ("{{ ... }}") counts as set: better censored than leaked.
        return bool(getattr(task, 'no_log', False))

    def _result(self, result, status, ignored=False, item=False):
        task = result.task
        self._record('host_result', task._uuid, result.host.get_name(), status, result.result,
                     task=result.task_name, action=task.action, no_log=self._no_log(task), ignored=ignored,
                     item=item)

    def _task(self, task, handler):
        role = task._role.get_name() if task._role else None
        self._record('task_start', task._uuid, task.get_name(), task.action, role=role, path=task.get_path(),
                     handler=handler)

    # ---------------------------------------------------------------- hooks

    def v2_playbook_on_start(self, playbook):
        start_args = (playbook._file_name, self.run_id, self._user(), context.CLIARGS.get('check', False),
                      context.CLIARGS.get('subset'), list(load_extra_vars(playbook._loader)))
        if self.recorder is not None:
            self._record('playbook_start', *start_args[:-1], extra_vars=start_args[-1])
        elif not self.disabled:
            # Opened at the first play, where the inventory (and so the evidence key) is known.
            self._start = (playbook._file_name, datetime.datetime.now(datetime.timezone.utc), start_args)
            atexit.register(self._at_exit, os.getpid())

    def v2_playbook_on_play_start(self, play):
        if self._start is not None:
            self._open(play)
        self._record('play_start', play.get_name(), play.hosts, play.serial)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task(task, handler=False)

    def v2_playbook_on_handler_task_start(self, task):
        self._task(task, handler=True)

    def v2_runner_on_ok(self, result):
        self._result(result, 'ok')
        # Where a wave stands, one line per journalled step: what an operator (or AWX's job output)
        # follows through a 27-hour run. The same line is in runs/<run_id>/status.json.
        line = result.result.get('status_line') if isinstance(result.result, dict) else None
        if line:
            self._display.display('fleetwave: %s' % line, stderr=True)  # stdout is the stdout callback's (json)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._result(result, 'failed', ignored=ignore_errors)

    def v2_runner_on_skipped(self, result):
        self._result(result, 'skipped')

    def v2_runner_on_unreachable(self, result):
        self._result(result, 'unreachable')

    def v2_runner_item_on_ok(self, result):
        self._result(result, 'ok', item=True)

    def v2_runner_item_on_failed(self, result):
        self._result(result, 'failed', item=True)

    def v2_runner_item_on_skipped(self, result):
        self._result(result, 'skipped', item=True)

    def v2_playbook_on_stats(self, stats):
        hosts = {host: stats.summarize(host) for host in stats.processed}
        self._record('stats', hosts)
        self._record('playbook_end', hosts)
        if self.recorder is not None:
            self._close()
