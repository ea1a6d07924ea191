# -*- coding: utf-8 -*-
"""The eight readiness gates of the production-readiness run (issue 10), each decided from evidence.

One function per gate; each takes the paths of its evidence (and parsed inputs) and returns one
record::

    {"gate": "code", "outcome": "PASS" | "FAIL",
     "reasons": ["<what failed>: <where>", ...],      # empty on PASS
     "evidence": [{"path": ..., "sha256": ...}, ...], # every file the decision read
     "measured": {...}}                               # the figures it was decided on

A gate without its evidence fails, saying what it expected where (``no evidence: ...``); no figure
is a pass by default. ``decide_gates`` gives the overall outcome (PASS only when all eight gates are
there and pass) and ``render_markdown`` a table, one row per gate, its evidence linked.
Pure Python (standard library, PyYAML, this collection's plugin_utils); nothing here runs a tool.

Inputs the readiness run produces
=================================
code
    ``lint``: JSON ``{"tool": "ansible-lint", "rc": <exit status>, "issues": [...]}``, ``issues`` as
    ``ansible-lint -f codeclimate`` prints them (``check_name``, ``severity``, ``location.path``,
    ``location.lines.begin``). Fails on rc != 0 (naming the first issues). ``junit``: the unit tests'
    JUnit XML (``pytest --junitxml``); fails on any failed or erroring test case, or none at all.
security
    ``secrets``: ``{label: value}`` of every secret in use (NATS password/token, evidence key, the
    approvers' keys...), each searched as given, %-encoded and %-decoded; ``nats_connection`` (optional): the controller's connection mapping, whose
    credentials are added in every spelling ``fleet_nats.secret_values`` knows (URL user info,
    %-decoded). ``scan_roots``: folders (the repository, the artifacts) searched, ``.git`` skipped;
    a secret is named by its label, never shown. ``project_root``: its ``playbooks/`` and ``roles/``
    YAML is read for ``no_log`` coverage (rule below). ``inventory``: the production inventory folder;
    its ``group_vars`` must set NATS auth and TLS (rule below). ``unit_file``: the agent unit as
    rendered (``systemctl cat agent@<name>`` or the template rendered), judged by ``HARDENING``.
performance
    ``results``: JSON ``{"scenarios": {<name>: {"model": "closed"|"open", "requested_rate": r/s,
    "achieved_rate": r/s, "requests": n, "errors": n, "dropped": n, "latency_ms": {"p50", "p95",
    "p99"}, "thresholds": [{"name", "metric", "comparator", "threshold", "measured", "passed"}]}}}``.
    Every scenario of ``LOAD_SCENARIOS`` must be there; each is judged against the criteria file's
    primary criteria on ``error_rate_pct`` (errors / requests), ``latency_p50_ms``, ``latency_p95_ms``,
    ``latency_p99_ms``, its achieved rate against ``min_rate_ratio`` x requested, ``dropped`` against
    ``max_dropped``, and its own thresholds (each must carry its measured value, and a ``passed``
    that its comparator confirms). A closed-model scenario (``model`` ``closed``, as
    ``module_utils/fleet_load`` writes them) has no requested rate (``null``): its VUs set the
    concurrency, so the rate check does not apply to it; its achieved rate must still be there.
    ``stress`` (optional): the stress results, same format; every scenario of ``STRESS_SCENARIOS``
    must be there, each held to its own thresholds (none required: it goes beyond the peak on
    purpose, so its rate and drops are figures, not failures) and, when it was configured with a
    ``recovery``, recovered after its overload; a knee search's knee is recorded.
compliance
    ``evidence_dir``: the evidence folder, whose ``evidence-index.json`` must match it
    (``fleet_attest.check_index``); ``audit_trails``: the audit trails (paths inside it), each
    verified by ``fleet_audit.check`` with the anchors beside it, as ``scripts/audit-verify`` does,
    and with ``evidence_key`` every line's HMAC (without a key the gate fails: signatures unchecked);
    ``required``: paths that the index must list.
docs
    ``runbooks_dir`` holding ``RUNBOOKS`` (``<name>.md``) and ``index.md`` linking each: rendered
    means a ``# `` title, no template syntax left, no placeholder (``PLACEHOLDER_RE``), and with
    ``mentions`` (e.g. the inventory's host names) at least one of them in each runbook. ``readme``:
    each of ``README_COMMANDS`` starts a line of a fenced code block, and names an executable file
    under ``project_root``.
testing
    ``<results_dir>/<commit>/junit.xml`` and ``<results_dir>/<commit>/summary.json``
    (``{"commit", "rc", "started", "finished", "tests", "failures", "errors", "skipped"}``, times
    ISO-8601 with a zone), written by the test command for the commit being certified. Missing,
    failing (rc != 0, failures or errors > 0, in the summary or the JUnit file), stale (finished more
    than ``max_age_seconds`` before ``now``) or for another commit: FAIL naming which.
deployment
    ``rollback``: a rollback record as the project writes it (``rollbacks/<run id>.json`` of
    ``playbooks/rollback.yml``, or ``rollback.json`` beside a round: a journal record, ``step``
    ``rollback``), rehearsed in this run (``started`` not before ``since``), ``outcome`` ``rolled
    back``, legacy-only proven (``detail.legacy_only.proven``), stable through the watch after it
    (``detail.post_rollback.stable``), in ``detail.seconds`` (``seconds_detection_to_completion``
    for an automatic one) within ``limit_seconds``; with ``evidence_key`` its signature verifies.
    ``ledgers`` (when given): the data-integrity ledgers of this run's failure modes
    (``fleet_ledger.write_ledger``'s ``<mode>/ledger.json``), one per mode of
    ``fleet_ledger.FAILURE_MODES``, each within its loss budget as its own figures confirm
    (``fleet_ledger.check_record``); a ledger over budget fails the gate with the ledger's reasons,
    which name what was lost.
support
    the production inventory's ``fleet_support`` (``inventory/production/group_vars``)::

        fleet_support:
          on_call: {rotation: <who is paged first>, contact: <how to page them>}
          escalation:           # in order, at least one level
            - {name: <who>, contact: <how>, after_minutes: <minutes without an answer>}
          runbook_url: <where on-call finds the runbooks>

    Missing, empty, templated (the gate reads the inventory as written) or placeholder
    (``PLACEHOLDER_RE``) values fail, as do escalation delays that do not grow.

The no_log rule (security)
==========================
A task "handles a secret" when its module arguments, name or loop reference a secret variable:
``SECRET_VARS``, any ``vault_*``, or any variable whose definition (role defaults/vars, group_vars,
play/block/task ``vars``, ``set_fact``) references one, transitively (so ``fleet_nats_connection``,
``fleet_lock_defaults`` and ``_agent_service_secrets`` are secret too). It is covered when
``no_log`` is true on it or an enclosing block or play (a templated ``no_log`` counts when its
condition is about a secret variable, as ``agent_service`` does: ``no_log: "{{ secrets | length >
0 }}"``), or — how this collection's modules keep secrets out — when it calls a module of the
collection and every argument that references a secret is declared ``no_log`` by that module
(its argument spec, the shared NATS spec, or the doc fragment of an action plugin). A
``module_defaults`` entry that references a secret is covered when each module it applies to
declares the NATS credentials (``password``, ``token``) ``no_log``.

NATS auth and TLS (security)
============================
From the production ``group_vars`` as written: ``fleet_nats_user`` non-empty; ``fleet_nats_password``
a ``!vault`` value or a template of a ``vault_*`` variable that is defined there as a ``!vault``
value (``ansible-vault encrypt_string --name``); no user info in a URL; every server of
``fleet_nats_url`` and ``fleet_nats_controller_url`` (a ``{{ var }}`` of another variable is
followed) on ``tls://`` or ``wss://``. A file encrypted whole cannot be read, and is said so.
"""

from __future__ import annotations

import ast
import datetime
import json
import os
import re
import xml.etree.ElementTree as ElementTree
from urllib.parse import quote, unquote

import yaml

from ansible_collections.fleetwave.rollout.plugins.module_utils import fleet_nats
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import (fleet_attest, fleet_audit, fleet_evidence,
                                                                        fleet_ledger)
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import Layout, file_digest, utc
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_gate import COMPARATORS, load_criteria

PASS, FAIL = 'PASS', 'FAIL'
GATES = ('code', 'security', 'performance', 'compliance', 'docs', 'testing', 'deployment', 'support')
LOAD_SCENARIOS = ('10-concurrent', '50-concurrent', 'ramp-up', 'spike', 'endurance', 'soak')
STRESS_SCENARIOS = ('2x-peak', '5x-peak', 'saturation-knee', 'large-payloads', 'slow-consumer', 'connection-storm',
                    'overload-recovery')
LOAD_METRICS = ('error_rate_pct', 'latency_p50_ms', 'latency_p95_ms', 'latency_p99_ms')
RUNBOOKS = ('deployment', 'monitoring-alerting', 'troubleshooting', 'performance', 'incident-response')
RUNBOOK_INDEX = 'index.md'
README_COMMANDS = ('scripts/wave2-sandbox', 'scripts/test')
SECRET_VARS = ('fleet_nats_password', 'fleet_nats_token', 'fleet_nats_creds', 'fleet_evidence_key')
NATS_CREDENTIALS = ('password', 'token')
TLS_SCHEMES = ('tls', 'wss')
# A placeholder: a marker word, an example domain, a whole value that says nothing, or <something> that
# is not an HTML tag a Markdown page may hold (<br>, <details>, </a>...).
PLACEHOLDER_RE = re.compile(r'\b(?:TODO|TBD|FIXME|XXX+|CHANGE ?ME|placeholder|example\.(?:com|org|net))\b'
                            r'|<(?!/?(?:a|b|br|code|details|div|em|i|img|kbd|li|ol|p|pre|span|strong|sub|summary|sup|'
                            r'table|td|th|tr|ul)\b)(?=[A-Za-z])[^<>\n]+>|^\s*(?:n/?a|none|-|\?+)\s*$', re.IGNORECASE)
TEMPLATE_RE = re.compile(r'{{|{%|{#')
# The agent unit's hardening, as systemd reads the [Service] section (tests/unit/test_agent_unit_hardening.py
# holds the unit template to the same directives): (directive, value it must have).
HARDENING = (
    ('NoNewPrivileges', 'yes'), ('ProtectSystem', 'strict'), ('ProtectHome', 'yes'), ('PrivateTmp', 'yes'),
    ('PrivateDevices', 'yes'), ('ProtectKernelTunables', 'yes'), ('ProtectKernelModules', 'yes'),
    ('ProtectKernelLogs', 'yes'), ('ProtectControlGroups', 'yes'),
    ('RestrictAddressFamilies', 'AF_INET AF_INET6 AF_UNIX'), ('RestrictNamespaces', 'yes'),
    ('LockPersonality', 'yes'), ('MemoryDenyWriteExecute', 'yes'), ('RestrictRealtime', 'yes'),
    ('SystemCallFilter', '@system-service'), ('CapabilityBoundingSet', ''),
)


# ================================================================================ records

def _evidence(paths):
    """[{path, sha256}] of the files among paths that exist (a gate names the missing ones itself)."""
    seen, out = set(), []
    for path in paths:
        if path and path not in seen and os.path.isfile(path):
            seen.add(path)
            out.append(dict(path=str(path), sha256=file_digest(path)[1]))
    return out


def _record(gate, reasons, evidence, measured):
    return dict(gate=gate, outcome=FAIL if reasons else PASS, reasons=list(reasons),
                evidence=_evidence(evidence), measured=measured)


def _load_json(path, what, reasons):
    """The parsed file, or None with the reason (missing: 'no evidence', unreadable, not JSON)."""
    if not path or not os.path.isfile(path):
        reasons.append('no evidence: %s expected at %s' % (what, path))
        return None
    try:
        with open(path, 'rb') as handle:
            return json.loads(handle.read().decode('utf-8'))
    except (OSError, ValueError) as exc:
        reasons.append('%s %s is not readable JSON (%s)' % (what, path, getattr(exc, 'strerror', None) or exc))
        return None


def _number(value):
    """A finite number from a number or a numeric string (Ansible templates give strings), else None."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if number == number and abs(number) != float('inf') else None


def _fmt(value):
    return '{:.10g}'.format(value) if isinstance(value, float) else str(value)


def _time(value):
    """An aware datetime from an ISO-8601 text with its zone, an aware datetime or an epoch; else None."""
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo is not None else None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    return fleet_attest.parse_time(value)


def junit_counts(path):
    """{tests, failures, errors, skipped, failed: ['classname::name: message', ...]} of a JUnit XML file,
    counted from its test cases (a <testsuites> or a lone <testsuite>). ValueError when it is not JUnit."""
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as exc:
        raise ValueError('not XML (%s)' % exc) from None
    if root.tag not in ('testsuites', 'testsuite'):
        raise ValueError('not JUnit XML (root element <%s>)' % root.tag)
    counts = dict(tests=0, failures=0, errors=0, skipped=0, failed=[])
    for case in root.iter('testcase'):
        counts['tests'] += 1
        for kind, key in (('failure', 'failures'), ('error', 'errors'), ('skipped', 'skipped')):
            found = case.find(kind)
            if found is not None:
                counts[key] += 1
                if kind != 'skipped':
                    counts['failed'].append('%s::%s: %s %s' % (case.get('classname'), case.get('name'), kind,
                                                               (found.get('message') or '').splitlines()[0:1]))
    return counts


def _junit_reasons(path, what, reasons):
    """The JUnit counts of path, adding a reason for a missing, unreadable, empty or failing file."""
    if not path or not os.path.isfile(path):
        reasons.append('no evidence: %s (JUnit XML) expected at %s' % (what, path))
        return None
    try:
        counts = junit_counts(path)
    except (OSError, ValueError) as exc:
        reasons.append('%s %s: %s' % (what, path, getattr(exc, 'strerror', None) or exc))
        return None
    if not counts['tests']:
        reasons.append('%s %s holds no test case' % (what, path))
    if counts['failures'] or counts['errors']:
        reasons.append('%s %s: %d failed, %d in error: %s' % (what, path, counts['failures'], counts['errors'],
                                                              '; '.join(counts['failed'][:5])))
    return counts


# ================================================================================ code

def code_gate(lint, junit):
    """Lint clean (rc 0) and every unit test passed."""
    reasons = []
    result = _load_json(lint, 'the lint result', reasons)
    measured = dict(lint_rc=None, lint_issues=None, unit_tests=None)
    if result is not None:
        rc = result.get('rc') if isinstance(result, dict) else None
        issues = result.get('issues') if isinstance(result, dict) else None
        if not isinstance(rc, int) or isinstance(rc, bool):
            reasons.append('the lint result %s has no exit status (rc)' % lint)
        elif not isinstance(issues, list):
            reasons.append('the lint result %s has no issues list' % lint)
        else:
            measured.update(lint_rc=rc, lint_issues=len(issues), lint_tool=result.get('tool'))
            if rc != 0:
                shown = ['%s at %s:%s' % (i.get('check_name'), (i.get('location') or {}).get('path'),
                                          ((i.get('location') or {}).get('lines') or {}).get('begin'))
                         for i in issues[:5] if isinstance(i, dict)]
                reasons.append('%s exited %d with %d issue(s) (%s): %s' % (
                    result.get('tool') or 'the linter', rc, len(issues), lint, '; '.join(shown) or 'none listed'))
    counts = _junit_reasons(junit, 'the unit tests', reasons)
    if counts is not None:
        measured['unit_tests'] = {k: v for k, v in counts.items() if k != 'failed'}
    return _record('code', reasons, (lint, junit), measured)


# ================================================================================ security

class _Vaulted(str):
    """A `!vault` value: set, its content unknown here."""


class _VaultLoader(yaml.SafeLoader):
    pass


_VaultLoader.add_constructor('!vault', lambda loader, node: _Vaulted('!vault'))
_VaultLoader.add_constructor('!unsafe', lambda loader, node: loader.construct_scalar(node))


def _yaml_files(*folders):
    for folder in folders:
        for here, dirs, names in os.walk(folder):
            dirs.sort()
            for name in sorted(names):
                if name.endswith(('.yml', '.yaml')):
                    yield os.path.join(here, name)


def _read_yaml(path):
    """(data, problem): the file parsed (with !vault values as _Vaulted), or why not."""
    try:
        with open(path, 'rb') as handle:
            raw = handle.read()
    except OSError as exc:
        return None, '%s: unreadable (%s)' % (path, exc.strerror)
    if raw.lstrip().startswith(b'$ANSIBLE_VAULT'):
        return None, '%s is encrypted whole: its variables cannot be read (use encrypt_string --name)' % path
    try:
        return yaml.load(raw.decode('utf-8'), Loader=_VaultLoader), None  # noqa: S506 - a SafeLoader
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        return None, '%s: not YAML (%s)' % (path, str(exc).splitlines()[0])


def inventory_vars(inventory):
    """({variable: (value, file)}, [problems]) of every group_vars file of an inventory folder."""
    found, problems = {}, []
    folder = os.path.join(inventory, 'group_vars')
    if not os.path.isdir(folder):
        return found, ['no evidence: no group_vars folder at %s' % folder]
    for path in _yaml_files(folder):
        data, problem = _read_yaml(path)
        if problem:
            problems.append(problem)
        elif isinstance(data, dict):
            found.update({name: (value, path) for name, value in data.items()})
    return found, problems


def _walk_strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _walk_strings(key)
            yield from _walk_strings(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _walk_strings(item)


def _references(value, names):
    """Whether any string of value names one of the variables (or a vault_* one)."""
    pattern = _name_pattern(names)
    return any(pattern.search(_DEFINED_TEST.sub('', text)) for text in _walk_strings(value))


# `x is defined` shows nothing of x's value.
_DEFINED_TEST = re.compile(r'\w+\s+is\s+(?:not\s+)?(?:defined|undefined)\b')


_PATTERNS = {}


def _name_pattern(names):
    key = frozenset(names)
    if key not in _PATTERNS:
        _PATTERNS.clear()
        alternatives = '|'.join(sorted(map(re.escape, key))) or '(?!)'
        _PATTERNS[key] = re.compile(r'(?<![\w.])(?:vault_\w+|%s)(?!\w)' % alternatives)
    return _PATTERNS[key]


def _files_under(root, skip):
    if os.path.isfile(root):
        yield root
        return
    for here, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in skip)
        for name in sorted(names):
            yield os.path.join(here, name)


def scan_for_secrets(secrets, roots, skip=('.git',)):
    """{label: [files]} where a secret's value occurs under roots (bytes; symbolic links not followed).
    Returns (found, files scanned)."""
    wanted = {label: value.encode('utf-8') for label, value in secrets.items() if value}
    found, scanned = {}, 0
    longest = max((len(v) for v in wanted.values()), default=1)
    for root in roots:
        for path in _files_under(root, skip):
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            scanned += 1
            tail = b''
            with open(path, 'rb') as handle:
                for block in iter(lambda: handle.read(1 << 20), b''):
                    window = tail + block
                    for label, value in wanted.items():
                        if value in window and path not in found.get(label, ()):
                            found.setdefault(label, []).append(path)
                    tail = window[-(longest - 1):] if longest > 1 else b''
    return found, scanned


def _secret_values(secrets, nats_connection):
    """{label: value}: each secret, %-decoded and %-encoded (as in a URL) too, and the connection's credentials in every spelling."""
    values = {}
    for label, value in (secrets or {}).items():
        if isinstance(value, str) and value:
            values[label] = value
            for spelling, form in (('%-decoded', unquote(value)), ('%-encoded', quote(value, safe=''))):
                if form != value:
                    values['%s (%s)' % (label, spelling)] = form
    if nats_connection:
        for number, value in enumerate(fleet_nats.secret_values(nats_connection), 1):
            values.setdefault('NATS credential %d of the controller connection' % number, value)
    return values


# --- no_log coverage ---------------------------------------------------------------------------------

TASK_KEYWORDS = frozenset((
    'name', 'when', 'no_log', 'register', 'loop', 'loop_control', 'vars', 'tags', 'become', 'become_user',
    'become_method', 'become_flags', 'delegate_to', 'delegate_facts', 'run_once', 'changed_when', 'failed_when',
    'until', 'retries', 'delay', 'notify', 'listen', 'ignore_errors', 'ignore_unreachable', 'environment',
    'module_defaults', 'block', 'rescue', 'always', 'check_mode', 'diff', 'throttle', 'async', 'poll',
    'any_errors_fatal', 'collections', 'connection', 'debugger', 'timeout', 'remote_user', 'port', 'args',
    'action', 'local_action'))
PLAY_TASK_LISTS = ('pre_tasks', 'tasks', 'post_tasks', 'handlers')
# Not displayed by Ansible: conditions and loop control.
_SILENT = ('when', 'changed_when', 'failed_when', 'until', 'no_log', 'vars', 'register', 'loop_control', 'tags',
           'notify', 'listen', 'module_defaults', 'block', 'rescue', 'always', 'delegate_to', 'retries', 'delay')


def _no_log_params(source):
    """Parameter names a module's source declares no_log=True (``name=dict(..., no_log=True)`` or
    ``'name': {..., 'no_log': True}``), plus the shared NATS spec's when it uses it."""
    names = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return names

    def true(node):
        return isinstance(node, ast.Constant) and node.value is True

    def declares(node):
        if isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'dict':
            return any(k.arg == 'no_log' and true(k.value) for k in node.keywords)
        if isinstance(node, ast.Dict):
            return any(isinstance(k, ast.Constant) and k.value == 'no_log' and true(v)
                       for k, v in zip(node.keys, node.values))
        return False

    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg and declares(node.value):
            names.add(node.arg)
        elif isinstance(node, ast.Dict):
            names.update(k.value for k, v in zip(node.keys, node.values)
                         if isinstance(k, ast.Constant) and isinstance(k.value, str) and declares(v))
    if 'NATS_ARGUMENT_SPEC' in source:
        names.update(n for n, spec in fleet_nats.NATS_ARGUMENT_SPEC.items() if spec.get('no_log'))
    return names


def collection_no_log(project_root):
    """{module short name: its no_log parameters} of this collection's modules (plugins/modules), and
    {group: [modules]} of meta/runtime.yml. An action plugin's doc stub gives its spec
    (controller_action.argument_spec: the NATS fragment's secrets are no_log)."""
    from ansible_collections.fleetwave.rollout.plugins.plugin_utils.controller_action import argument_spec

    modules = {}
    folder = os.path.join(project_root, 'plugins', 'modules')
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
        if not name.endswith('.py') or name.startswith('_'):
            continue
        with open(os.path.join(folder, name), encoding='utf-8') as handle:
            source = handle.read()
        secret = _no_log_params(source)
        if os.path.isfile(os.path.join(project_root, 'plugins', 'action', name)):
            try:
                documentation = ast.literal_eval(next(
                    node.value for node in ast.parse(source).body if isinstance(node, ast.Assign)
                    and any(getattr(t, 'id', None) == 'DOCUMENTATION' for t in node.targets)))
                secret |= {k for k, spec in argument_spec(documentation).items() if spec.get('no_log')}
            except (StopIteration, ValueError, KeyError, yaml.YAMLError):
                pass
        modules[name[:-3]] = secret
    runtime, _problem = _read_yaml(os.path.join(project_root, 'meta', 'runtime.yml'))
    groups = (runtime or {}).get('action_groups') or {} if isinstance(runtime, dict) else {}
    return modules, {k: list(v or ()) for k, v in groups.items()}


COLLECTION = 'fleetwave.rollout.'


def _module_of(task):
    """(module name, its arguments) of a task mapping, or (None, None)."""
    for key, value in task.items():
        if key not in TASK_KEYWORDS and not key.startswith('with_'):
            return key, value if isinstance(value, dict) else {'_raw_params': value}
    action = task.get('action') or task.get('local_action')
    if isinstance(action, dict):
        rest = dict(action)
        return rest.pop('module', None), rest
    if isinstance(action, str):
        return action.split()[0], {'_raw_params': action}
    return None, None


def _play_or_task_files(project_root):
    """[(path, data)] of the YAML under playbooks/ and roles/*/{tasks,handlers}, and problems."""
    files, problems = [], []
    for path in _yaml_files(os.path.join(project_root, 'playbooks'), os.path.join(project_root, 'roles')):
        rel = os.path.relpath(path, project_root).split(os.sep)
        if rel[0] == 'roles' and (len(rel) < 4 or rel[2] not in ('tasks', 'handlers', 'defaults', 'vars')):
            continue
        data, problem = _read_yaml(path)
        if problem:
            problems.append(problem)
        else:
            files.append((path, rel, data))
    return files, problems


def _tasks_of(items, inherited, out, where):
    """Append (task, no_log inherited, where) for every task of a task list, blocks flattened; and
    each block/play's module_defaults as ('module_defaults', value, no_log, where)."""
    for number, task in enumerate(items if isinstance(items, list) else (), 1):
        if not isinstance(task, dict):
            continue
        here = '%s task %d%s' % (where, number, ' (%s)' % task['name'] if task.get('name') else '')
        no_log = task.get('no_log', inherited)
        if task.get('module_defaults'):
            out.append(('module_defaults', task['module_defaults'], no_log, here))
        if any(k in task for k in ('block', 'rescue', 'always')):
            for part in ('block', 'rescue', 'always'):
                _tasks_of(task.get(part), no_log, out, '%s %s' % (here, part))
        else:
            out.append(('task', task, no_log, here))


def _definitions(files, inventories):
    """{variable: value} of every definition the scan can see."""
    defined = {}
    for _path, rel, data in files:
        if rel[0] == 'roles' and rel[2] in ('defaults', 'vars') and isinstance(data, dict):
            defined.update(data)
            continue
        stack = list(data) if isinstance(data, list) else []
        while stack:
            item = stack.pop()
            if not isinstance(item, dict):
                continue
            if isinstance(item.get('vars'), dict):
                defined.update(item['vars'])
            for key in ('ansible.builtin.set_fact', 'set_fact'):
                if isinstance(item.get(key), dict):
                    defined.update(item[key])
            for key in PLAY_TASK_LISTS + ('block', 'rescue', 'always'):
                if isinstance(item.get(key), list):
                    stack.extend(item[key])
    for variables in inventories:
        defined.update({name: value for name, (value, _file) in variables.items()})
    return defined


def secret_names(defined, base=SECRET_VARS):
    """base and every variable whose definition references a secret one, transitively."""
    names = set(base)
    changed = True
    while changed:
        changed = False
        for name, value in defined.items():
            if name not in names and _references(value, names):
                names.add(name)
                changed = True
    return names


def _no_log_true(value, names):
    if value is True:
        return True
    return isinstance(value, str) and (value.strip().lower() in ('true', 'yes') or (
        TEMPLATE_RE.search(value) is not None and _references(value, names)))


def no_log_problems(project_root, inventories=()):
    """(problems, measured) of the no_log rule (module docstring) over playbooks/ and roles/."""
    files, problems = _play_or_task_files(project_root)
    names = secret_names(_definitions(files, inventories))
    modules, groups = collection_no_log(project_root)
    found = []
    for path, rel, data in files:
        if rel[0] == 'roles' and rel[2] in ('defaults', 'vars'):
            continue
        where = os.path.join(*rel)
        if isinstance(data, list) and any(isinstance(i, dict) and ('hosts' in i or 'import_playbook' in i)
                                          for i in data):
            for number, play in enumerate(data, 1):
                if not isinstance(play, dict) or 'hosts' not in play:
                    continue
                here = '%s play %d' % (where, number)
                if play.get('module_defaults'):
                    found.append(('module_defaults', play['module_defaults'], play.get('no_log', False), here))
                for part in PLAY_TASK_LISTS:
                    _tasks_of(play.get(part), play.get('no_log', False), found, '%s %s' % (here, part))
        else:
            _tasks_of(data, False, found, where)

    handling = 0
    for kind, item, no_log, here in found:
        covered = _no_log_true(no_log, names)
        if kind == 'module_defaults':
            for target, value in (item.items() if isinstance(item, dict) else ()):
                if not _references(value, names):
                    continue
                handling += 1
                short = target.split('/', 1)[1] if target.startswith('group/') else target
                if short.startswith(COLLECTION):
                    short = short[len(COLLECTION):]
                targets = groups.get(short, []) if target.startswith('group/') else [short]
                bare = [m for m in targets if not set(NATS_CREDENTIALS) <= modules.get(m, set())] or (
                    [] if targets else [target])
                if bare and not covered:
                    problems.append('%s: module_defaults %s passes a secret to %s, which do(es) not declare %s no_log'
                                    % (here, target, ', '.join(bare), '/'.join(NATS_CREDENTIALS)))
            continue
        module, args = _module_of(item)
        shown = dict(args or {}, name=item.get('name'), loop=item.get('loop'),
                     **{k: v for k, v in item.items() if k.startswith('with_')})
        secret_args = sorted(k for k, v in shown.items() if k not in _SILENT and _references(v, names))
        if not secret_args:
            continue
        handling += 1
        if covered:
            continue
        short = module[len(COLLECTION):] if module and module.startswith(COLLECTION) else None
        masked = modules.get(short, set()) if short else set()
        unmasked = [a for a in secret_args if a not in masked]
        if unmasked:
            problems.append('%s: %s passes a secret in %s without no_log: true%s' % (
                here, module, ', '.join(unmasked),
                ' (and %s does not declare them no_log)' % module if short else ''))
    return problems, dict(secret_variables=sorted(names), tasks_handling_secrets=handling,
                          files=[p for p, _r, _d in files])


# --- NATS auth and TLS in the production inventory ------------------------------------------------

def _follow(variables, value, depth=5):
    """A '{{ var }}' value replaced by var's (depth-limited); other values as they are."""
    while depth and isinstance(value, str):
        match = re.fullmatch(r'\s*{{\s*(\w+)\s*}}\s*', value)
        if not match or match.group(1) not in variables:
            break
        value = variables[match.group(1)][0]
        depth -= 1
    return value


def nats_auth_tls_problems(variables):
    """Problems of the production inventory's NATS settings (rule in the module docstring)."""
    problems = []

    def where(name):
        return variables[name][1] if name in variables else 'the production group_vars'

    user = variables.get('fleet_nats_user', (None, None))[0]
    if not isinstance(user, str) or not user.strip():
        problems.append('NATS auth: fleet_nats_user is not set in %s' % where('fleet_nats_user'))
    password = variables.get('fleet_nats_password', (None, None))[0]
    if not isinstance(password, str) or not password.strip():
        problems.append('NATS auth: fleet_nats_password is not set in %s' % where('fleet_nats_password'))
    elif not isinstance(password, _Vaulted):
        vaults = re.findall(r'\bvault_\w+', password) if TEMPLATE_RE.search(password) else []
        if not vaults:
            problems.append('NATS auth: fleet_nats_password in %s is written in plain text (a vault_* variable '
                            'or !vault value is expected)' % where('fleet_nats_password'))
        for name in vaults:
            if not isinstance(variables.get(name, (None, None))[0], _Vaulted):
                problems.append('NATS auth: fleet_nats_password refers to %s, which is not defined as a !vault value '
                                'in the production group_vars (ansible-vault encrypt_string --name %s)' % (name, name))
    for name in ('fleet_nats_url', 'fleet_nats_controller_url'):
        url = _follow(variables, variables.get(name, (None, None))[0])
        if not isinstance(url, str) or not url.strip():
            problems.append('NATS TLS: %s is not set in %s' % (name, where(name)))
            continue
        if TEMPLATE_RE.search(url):
            problems.append('NATS TLS: %s in %s is a template the gate cannot read (%s)'
                            % (name, where(name), fleet_nats.redact_url(url)))
            continue
        if fleet_nats.redact_url(url) != url:
            problems.append('NATS auth: %s in %s carries credentials in plain text (%s)'
                            % (name, where(name), fleet_nats.redact_url(url)))
        plain = [server.strip() for server in url.split(',')
                 if server.strip().split('://', 1)[0].lower() not in TLS_SCHEMES or '://' not in server]
        if plain:
            problems.append('NATS TLS: %s in %s is not TLS (%s: %s expected)' % (
                name, where(name), ', '.join(fleet_nats.redact_url(s) for s in plain),
                ' or '.join('%s://' % s for s in TLS_SCHEMES)))
    return problems


# --- the agent unit's hardening -----------------------------------------------------------------

def unit_settings(text):
    """{directive: [values]} of a unit file's [Service] section (a directive may repeat)."""
    settings, section = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(('#', ';')):
            continue
        if line.startswith('['):
            section = line
            continue
        if section == '[Service]':
            key, _sep, value = line.partition('=')
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def hardening(text):
    """(score %, [missing]) of a unit's [Service] against HARDENING, plus a dropped root (DynamicUser=yes
    or User= other than root)."""
    settings = unit_settings(text)
    missing = ['%s=%s' % (key, value) for key, value in HARDENING if value not in settings.get(key, [])]
    users = settings.get('User', [])
    if 'yes' not in settings.get('DynamicUser', []) and not any(u and u not in ('root', '0') for u in users):
        missing.append('DynamicUser=yes or User=<not root>')
    total = len(HARDENING) + 1
    return round(100.0 * (total - len(missing)) / total, 1), missing


PUBLIC_SECRETS_VAR = 'readiness_public_secrets'


def security_gate(secrets, scan_roots, project_root, inventory, unit_file, nats_connection=None,
                  min_hardening_score=100.0, declared_public=(), public_scan_roots=()):
    """No secret in the repository or artifacts; no_log coverage; NATS auth and TLS in the production
    inventory; the agent unit's hardening (see the module docstring for each rule).

    declared_public: labels (variable names) of secrets that the inventory in use declares public test
    values (the sandbox's keys, committed to the repository on purpose, so found there by design):
    those are searched for only under public_scan_roots (the artifacts, where even a public test key
    must never be written) and named in the record; the production inventory declaring any fails."""
    reasons, evidence, measured = [], [], {}
    values = _secret_values(secrets, nats_connection)
    variable = {label: label.split(' (')[0].split('[')[0] for label in values}  # 'x[approver] (%-encoded)' -> 'x'
    public = {label: value for label, value in values.items() if variable[label] in declared_public}
    if public:
        measured['declared_public'] = sorted({variable[label] for label in public})
    if not values:
        reasons.append('no evidence: no secret values given to search for')
    searches = [(values.keys() - public.keys(), scan_roots or ()), (public.keys(), public_scan_roots or ())]
    for labels, where in searches:
        if not labels:
            continue
        missing_roots = [root for root in where if not os.path.exists(root)]
        if not where or missing_roots:
            reasons.append('no evidence: folder(s) to search for secrets missing: %s' % (
                ', '.join(map(str, missing_roots)) or 'none given'))
        leaked, scanned = scan_for_secrets({label: values[label] for label in labels},
                                           [root for root in where if os.path.exists(root)])
        measured['secrets_searched'] = measured.get('secrets_searched', 0) + len(labels)
        measured['files_scanned'] = measured.get('files_scanned', 0) + scanned
        measured.setdefault('leaks', {}).update({label: len(paths) for label, paths in leaked.items()})
        for label, paths in sorted(leaked.items()):
            reasons.append('secret %s found in %s' % (label, ', '.join(paths[:5]) + (
                ' and %d more' % (len(paths) - 5) if len(paths) > 5 else '')))

    variables, inventory_problems = inventory_vars(inventory)
    reasons.extend(inventory_problems)
    evidence.extend(sorted({path for _value, path in variables.values()}))
    if PUBLIC_SECRETS_VAR in variables and variables[PUBLIC_SECRETS_VAR][0]:
        reasons.append('%s is set in the production inventory (%s): production has no public secret'
                       % (PUBLIC_SECRETS_VAR, variables[PUBLIC_SECRETS_VAR][1]))
    if os.path.isdir(os.path.join(project_root, 'playbooks')) and os.path.isdir(os.path.join(project_root, 'roles')):
        problems, coverage = no_log_problems(project_root, [variables])
        reasons.extend(problems)
        evidence.extend(coverage.pop('files'))
        measured['no_log'] = dict(coverage, uncovered=len(problems))
    else:
        reasons.append('no evidence: playbooks/ and roles/ expected under %s' % project_root)
    if variables:
        reasons.extend(nats_auth_tls_problems(variables))

    if not unit_file or not os.path.isfile(unit_file):
        reasons.append('no evidence: the rendered agent unit expected at %s' % unit_file)
    else:
        with open(unit_file, encoding='utf-8', errors='replace') as handle:
            score, missing = hardening(handle.read())
        measured['hardening'] = dict(score=score, min_score=min_hardening_score, missing=missing)
        evidence.append(unit_file)
        if score < min_hardening_score:
            reasons.append('agent unit hardening %s%% < %s%% in %s: missing %s' % (
                _fmt(score), _fmt(min_hardening_score), unit_file, ', '.join(missing)))
    return _record('security', reasons, evidence, measured)


# ================================================================================ performance

def performance_gate(results, criteria_file, scenarios=LOAD_SCENARIOS, min_rate_ratio=0.95, max_dropped=0,
                     stress=None, stress_scenarios=STRESS_SCENARIOS):
    """Every load scenario present and within the criteria file's primary criteria (LOAD_METRICS),
    its requested rate reached, nothing dropped beyond max_dropped, its own thresholds passed. With
    stress (the stress results, same format), every stress scenario present, its own thresholds
    passed and an overload recovered (_stress_problems)."""
    reasons, measured = [], {}
    try:
        criteria = [c for c in load_criteria(criteria_file).get('primary', []) if c['metric'] in LOAD_METRICS]
    except Exception as exc:  # CriteriaError, OSError: the criteria are evidence too
        reasons.append('no evidence: the criteria file %s is not usable (%s)' % (criteria_file, exc))
        criteria = []
    for name, scenario in _scenarios_in(results, 'load', scenarios, reasons):
        reasons.extend('load scenario %s (%s): %s' % (name, results, problem)
                       for problem in _scenario_problems(scenario, criteria, min_rate_ratio, max_dropped,
                                                         measured.setdefault(name, {})))
    for name, scenario in _scenarios_in(stress, 'stress', stress_scenarios, reasons) if stress is not None else ():
        reasons.extend('stress scenario %s (%s): %s' % (name, stress, problem) for problem in
                       _stress_problems(scenario, measured.setdefault('stress', {}).setdefault(name, {})))
    return _record('performance', reasons, (results, criteria_file) + ((stress,) if stress else ()), measured)


def _scenarios_in(path, kind, names, reasons):
    """(name, scenario) of each of names in the results file at path (kind: load or stress); what is
    missing or malformed is added to reasons instead."""
    data = _load_json(path, 'the %s results' % kind, reasons)
    found = data.get('scenarios') if isinstance(data, dict) else None
    if data is not None and not isinstance(found, dict):
        reasons.append('the %s results %s have no scenarios mapping' % (kind, path))
    for name in names if isinstance(found, dict) else ():
        if isinstance(found.get(name), dict):
            yield name, found[name]
        else:
            reasons.append('no evidence: %s scenario %s missing from %s' % (kind, name, path))


def _scenario_problems(scenario, criteria, min_rate_ratio, max_dropped, figures):
    problems = []
    latency = scenario.get('latency_ms') if isinstance(scenario.get('latency_ms'), dict) else {}
    requests, errors = _number(scenario.get('requests')), _number(scenario.get('errors'))
    figures.update({'latency_%s_ms' % p: _number(latency.get(p)) for p in ('p50', 'p95', 'p99')})
    figures['error_rate_pct'] = 100.0 * errors / requests if requests and errors is not None else None
    requested, achieved = _number(scenario.get('requested_rate')), _number(scenario.get('achieved_rate'))
    dropped = _number(scenario.get('dropped'))
    figures.update(requested_rate=requested, achieved_rate=achieved, dropped=dropped, requests=requests, errors=errors)
    for criterion in criteria:
        value = figures.get(criterion['metric'])
        if value is None:
            problems.append('no data for %s (criterion %s)' % (criterion['metric'], criterion['name']))
        elif not COMPARATORS[criterion['comparator']](value, criterion['threshold']):
            problems.append('%s %s %s, the criterion %s is %s %s' % (
                criterion['metric'], _fmt(round(value, 4)), criterion['unit'], criterion['name'],
                criterion['comparator'], _fmt(criterion['threshold'])))
    if scenario.get('model') == 'closed' and scenario.get('requested_rate') is None:
        # A closed model's VUs set the concurrency, not the rate (fleet_load): there is no requested
        # rate to reach, but its achieved rate is still evidence.
        figures['rate_check'] = 'not applicable (closed model)'
        if achieved is None:
            problems.append('no data for the achieved rate')
    elif requested is None or achieved is None or requested <= 0:
        problems.append('no data for the requested and achieved rates')
    elif achieved < min_rate_ratio * requested:
        problems.append('achieved %s/s of the requested %s/s (%s%%; at least %s%% required)' % (
            _fmt(achieved), _fmt(requested), _fmt(round(100.0 * achieved / requested, 1)), _fmt(100.0 * min_rate_ratio)))
    if dropped is None:
        problems.append('no data for dropped requests')
    elif dropped > max_dropped:
        problems.append('%s request(s) dropped (at most %s)' % (_fmt(dropped), _fmt(max_dropped)))
    return problems + _threshold_problems(scenario)


def _threshold_problems(scenario, required=True):
    """Each of a scenario's own thresholds that failed, or whose passed its measured value does not confirm."""
    problems = []
    thresholds = scenario.get('thresholds')
    if required and (not isinstance(thresholds, list) or not thresholds):
        problems.append('no thresholds recorded')
    for threshold in thresholds if isinstance(thresholds, list) else ():
        name = threshold.get('name') if isinstance(threshold, dict) else None
        value = _number(threshold.get('measured')) if isinstance(threshold, dict) else None
        limit = _number(threshold.get('threshold')) if isinstance(threshold, dict) else None
        comparator = COMPARATORS.get(threshold.get('comparator')) if isinstance(threshold, dict) else None
        if value is None or limit is None or comparator is None:
            problems.append('threshold %s: no measured value, limit or comparator' % name)
        elif comparator(value, limit) != (threshold.get('passed') is True):
            problems.append('threshold %s: passed=%s but measured %s %s %s says otherwise' % (
                name, threshold.get('passed'), _fmt(value), threshold['comparator'], _fmt(limit)))
        elif not threshold.get('passed'):
            problems.append('threshold %s failed: measured %s, limit %s %s' % (
                name, _fmt(value), threshold['comparator'], _fmt(limit)))
    return problems


def _stress_problems(scenario, figures):
    """A stress scenario goes beyond the peak on purpose: it is held to its own thresholds (none
    required), an overload to its recovery, and a knee search reports its knee; its rate and drops
    are figures, not failures."""
    problems = _threshold_problems(scenario, required=False)
    figures.update(requested_rate=_number(scenario.get('requested_rate')),
                   achieved_rate=_number(scenario.get('achieved_rate')), dropped=_number(scenario.get('dropped')),
                   requests=_number(scenario.get('requests')), errors=_number(scenario.get('errors')))
    if not figures['requests']:
        problems.append('no requests sent')
    recovery = scenario.get('recovery')
    if (scenario.get('config') or {}).get('recovery') is not None:
        figures['recovery'] = recovery
        if not isinstance(recovery, dict):
            problems.append('no recovery recorded after the overload')
        elif recovery.get('recovered') is not True:
            problems.append('did not recover after the overload: %s' % (
                recovery.get('note') or 'recovered is %r' % (recovery.get('recovered'),)))
        else:
            figures['recovery_seconds'] = _number(recovery.get('seconds'))
    if scenario.get('executor') == 'rate-search':
        knee = scenario.get('knee')
        figures['knee_rate'] = _number(knee.get('rate')) if isinstance(knee, dict) else None
        figures['knee'] = knee if isinstance(knee, dict) else scenario.get('knee_note')
    return problems


# ================================================================================ compliance

def compliance_gate(evidence_dir, audit_trails, evidence_key=None, required=()):
    """The evidence index matches its folder and lists the required files; every audit trail verifies
    (chain, anchors, and with the key every line's HMAC)."""
    reasons, evidence, measured = [], [], dict(trails={})
    root = os.path.abspath(evidence_dir) if evidence_dir else None
    index = os.path.join(root, Layout.EVIDENCE_INDEX) if root else None
    if not root or not os.path.isdir(root):
        reasons.append('no evidence: the evidence folder %s does not exist' % evidence_dir)
    elif not os.path.isfile(index):
        reasons.append('no evidence: the evidence index expected at %s' % index)
    else:
        evidence.append(index)
        try:
            listed = fleet_attest.check_index(root)
            measured['indexed_files'] = len(listed)
            missing = [path for path in required if path not in listed]
            if missing:
                reasons.append('evidence incomplete: %s not listed in %s' % (', '.join(missing), index))
        except fleet_attest.AttestError as exc:
            reasons.append(str(exc))
    if not audit_trails:
        reasons.append('no evidence: no audit trail given to verify')
    if evidence_key is None:
        reasons.append('no evidence key: the audit trails\' signatures (HMAC) cannot be checked')
    key = evidence_key if isinstance(evidence_key, fleet_evidence.EvidenceKey) else fleet_evidence.key_from(evidence_key)
    for trail in audit_trails or ():
        full = trail if os.path.isabs(trail) or not root else os.path.join(root, trail)
        if root and os.path.commonpath([os.path.abspath(full), root]) != root:
            reasons.append('audit trail %s is outside the evidence folder %s' % (full, root))
        if not os.path.isfile(full):
            reasons.append('no evidence: audit trail expected at %s' % full)
            continue
        evidence.append(full)
        try:
            verdict = fleet_audit.check(full, key=key, anchors=Layout.audit_anchors(full))
        except (OSError, ValueError) as exc:
            reasons.append('audit trail %s: %s' % (full, getattr(exc, 'strerror', None) or exc))
            continue
        measured['trails'][trail] = dict(ok=verdict.ok, lines=verdict.lines, anchor=verdict.anchor)
        if not verdict.ok:
            reasons.append('audit trail %s: broken at line %s: %s' % (full, verdict.first_bad_line, verdict.reason))
        elif not verdict.lines:
            reasons.append('audit trail %s is empty' % full)
    return _record('compliance', reasons, evidence, measured)


# ================================================================================ docs

def _fenced_lines(text):
    inside, lines = False, []
    for line in text.splitlines():
        if line.lstrip().startswith('```'):
            inside = not inside
        elif inside:
            lines.append(line.strip())
    return lines


def docs_gate(runbooks_dir, readme, project_root, runbooks=RUNBOOKS, commands=README_COMMANDS, mentions=()):
    """The runbooks and their index present and rendered; the README shows the documented commands."""
    reasons, evidence, measured = [], [], dict(runbooks={})
    index = os.path.join(runbooks_dir, RUNBOOK_INDEX)
    for name in runbooks:
        path = os.path.join(runbooks_dir, '%s.md' % name)
        if not os.path.isfile(path):
            reasons.append('no evidence: runbook %s expected at %s' % (name, path))
            continue
        evidence.append(path)
        with open(path, encoding='utf-8', errors='replace') as handle:
            text = handle.read()
        measured['runbooks'][name] = len(text)
        reasons.extend('runbook %s (%s): %s' % (name, path, problem) for problem in _rendering_problems(text, mentions))
    if not os.path.isfile(index):
        reasons.append('no evidence: the runbook index expected at %s' % index)
    else:
        evidence.append(index)
        with open(index, encoding='utf-8', errors='replace') as handle:
            text = handle.read()
        reasons.extend('runbook index (%s): %s' % (index, problem) for problem in _rendering_problems(text, ()))
        unlinked = [name for name in runbooks if '(%s.md)' % name not in text]
        if unlinked:
            reasons.append('runbook index (%s) does not link %s' % (index, ', '.join('%s.md' % n for n in unlinked)))
    if not readme or not os.path.isfile(readme):
        reasons.append('no evidence: the README expected at %s' % readme)
    else:
        evidence.append(readme)
        with open(readme, encoding='utf-8', errors='replace') as handle:
            shown = _fenced_lines(handle.read())
        measured['commands'] = list(commands)
        for command in commands:
            if not any(line == command or line.startswith(command + ' ') for line in shown):
                reasons.append('README %s does not show the command %s in a code block' % (readme, command))
            program = os.path.join(project_root, command.split()[0])
            if '/' in command.split()[0] and not (os.path.isfile(program) and os.access(program, os.X_OK)):
                reasons.append('README command %s: %s is not an executable file' % (command, program))
    return _record('docs', reasons, evidence, measured)


def _rendering_problems(text, mentions):
    problems = []
    if not text.strip():
        return ['empty']
    if not text.lstrip().startswith('# '):
        problems.append('no title (a first line "# ...")')
    if TEMPLATE_RE.search(text):
        problems.append('template syntax left unrendered (%s)' % TEMPLATE_RE.search(text).group(0))
    for number, line in enumerate(text.splitlines(), 1):
        match = PLACEHOLDER_RE.search(line)
        if match and not line.lstrip().startswith('|---'):
            problems.append('placeholder %r on line %d' % (match.group(0).strip(), number))
            break
    if mentions and not any(name in text for name in mentions):
        problems.append('names none of %s (not rendered from the inventory)' % ', '.join(mentions))
    return problems


# ================================================================================ testing

SUMMARY_KEYS = ('commit', 'rc', 'started', 'finished', 'tests', 'failures', 'errors', 'skipped')


def testing_gate(results_dir, commit, max_age_seconds, now=None):
    """The test suite's results for this very commit: present, passing, fresh, and for this commit."""
    reasons, measured = [], dict(commit=commit)
    now = _time(now) or datetime.datetime.now(datetime.timezone.utc)
    folder = os.path.join(results_dir, commit) if isinstance(commit, str) and commit else None
    junit, summary_path = (os.path.join(folder, 'junit.xml'), os.path.join(folder, 'summary.json')) if folder else (None, None)
    if not isinstance(commit, str) or not re.fullmatch(r'[0-9a-f]{7,64}', commit):
        reasons.append('no evidence: the commit being certified is not a commit id (%r)' % (commit,))
    elif not os.path.isdir(folder):
        others = sorted(n for n in os.listdir(results_dir) if os.path.isdir(os.path.join(results_dir, n))) \
            if os.path.isdir(results_dir) else []
        reasons.append('no evidence: no test results for commit %s: %s/{junit.xml,summary.json} expected%s' % (
            commit, folder, ' (%s holds results for other commits only: %s)' % (results_dir, ', '.join(others))
            if others else ''))
    else:
        summary = _load_json(summary_path, 'the test summary', reasons)
        if isinstance(summary, dict):
            absent = [k for k in SUMMARY_KEYS if k not in summary]
            if absent:
                reasons.append('the test summary %s lacks %s' % (summary_path, ', '.join(absent)))
            measured.update({k: summary.get(k) for k in SUMMARY_KEYS})
            if 'commit' in summary and summary['commit'] != commit:
                reasons.append('results for another commit: %s names %s, the commit certified is %s'
                               % (summary_path, summary['commit'], commit))
            if 'rc' in summary and summary['rc'] != 0:
                reasons.append('failing: the test command exited %s (%s)' % (summary['rc'], summary_path))
            for key in ('failures', 'errors'):
                if key in summary and (_number(summary[key]) is None or _number(summary[key]) > 0):
                    reasons.append('failing: %s %s in %s' % (summary[key], key, summary_path))
            finished = _time(summary.get('finished'))
            if 'finished' in summary and finished is None:
                reasons.append('the test summary %s: finished %r is not a time with its zone'
                               % (summary_path, summary.get('finished')))
            elif finished is not None:
                age = (now - finished).total_seconds()
                measured['age_seconds'] = round(age, 1)
                if age > max_age_seconds:
                    reasons.append('stale: the tests finished at %s, %s s before %s (at most %s s)' % (
                        summary['finished'], _fmt(round(age)), utc(now.timestamp()), _fmt(max_age_seconds)))
                elif age < -60:
                    reasons.append('the test summary %s finished at %s, in the future' % (summary_path,
                                                                                          summary['finished']))
        elif summary is not None:
            reasons.append('the test summary %s is not a JSON object' % summary_path)
        counts = _junit_reasons(junit, 'the test suite', reasons)
        if counts is not None and isinstance(summary, dict):
            differ = [k for k in ('tests', 'failures', 'errors', 'skipped') if k in summary and summary[k] != counts[k]]
            if differ:
                reasons.append('%s and %s disagree on %s' % (summary_path, junit, ', '.join(
                    '%s (%s vs %s)' % (k, summary[k], counts[k]) for k in differ)))
    return _record('testing', reasons, (summary_path, junit), measured)


# ================================================================================ deployment

def ledger_problems(ledgers, modes=fleet_ledger.FAILURE_MODES):
    """(reasons, measured) of the failure-mode ledgers at the paths ledgers: each of modes there once,
    each within its budget (fleet_ledger.check_record); measured holds each mode's figures and what
    it lost."""
    reasons, measured, seen = [], {}, {}
    for path in ledgers:
        record = _load_json(path, 'a failure-mode ledger', reasons)
        if record is None:
            continue
        mode = record.get('mode') if isinstance(record, dict) else None
        if mode in seen:
            reasons.append('failure mode %s has two ledgers: %s and %s' % (mode, seen[mode], path))
            continue
        reasons.extend('failure mode %s: %s' % (mode, problem) for problem in fleet_ledger.check_record(record, path))
        if mode in fleet_ledger.FAILURE_MODES:
            seen[mode] = path
            measured[mode] = dict(record.get('measured') or {}, verdict=record.get('verdict'), lost=record.get('lost'))
    reasons.extend('no evidence: no ledger of failure mode %s among %s' % (mode, ', '.join(map(str, ledgers)) or 'none')
                   for mode in modes if mode not in seen)
    return reasons, measured


def deployment_gate(rollback, since, limit_seconds=600, evidence_key=None, ledgers=None):
    """A rollback rehearsed in this run (started at or after since), rolled back, proven legacy-only,
    stable after, within limit_seconds; signed when the key is given. With ledgers, every failure mode
    within its loss budget too (ledger_problems)."""
    reasons, measured = [], {}
    if ledgers is not None:
        reasons, measured['failure_modes'] = ledger_problems(ledgers)
    record = _load_json(rollback, 'the rollback record of this run', reasons)
    if record is not None and not isinstance(record, dict):
        reasons.append('the rollback record %s is not a JSON object' % rollback)
        record = None
    if record is not None:
        detail = record.get('detail') if isinstance(record.get('detail'), dict) else {}
        seconds = _number(detail.get('seconds', detail.get('seconds_detection_to_completion')))
        proof = detail.get('legacy_only') if isinstance(detail.get('legacy_only'), dict) else {}
        watch = detail.get('post_rollback') if isinstance(detail.get('post_rollback'), dict) else {}
        measured.update(run_id=record.get('run_id'), started=record.get('started'), outcome=record.get('outcome'),
                        seconds=seconds, limit_seconds=limit_seconds, proven=proof.get('proven'),
                        stable=watch.get('stable'))
        if record.get('step') != 'rollback':
            reasons.append('%s is not a rollback record (step %r)' % (rollback, record.get('step')))
        if record.get('outcome') != 'rolled back':
            reasons.append('the rollback in %s did not complete (outcome %r)' % (rollback, record.get('outcome')))
        started, start = _time(record.get('started')), _time(since)
        if start is None:
            reasons.append('no evidence: the start of this run is not a time (%r)' % (since,))
        elif started is None:
            reasons.append('the rollback record %s has no start time' % rollback)
        elif started < start:
            reasons.append('not rehearsed in this run: the rollback in %s started at %s, before this run (%s)'
                           % (rollback, record.get('started'), utc(start.timestamp())))
        if seconds is None:
            reasons.append('the rollback record %s has no duration (detail.seconds)' % rollback)
        elif seconds > limit_seconds:
            reasons.append('the rollback took %s s, over its limit of %s s (%s)' % (_fmt(seconds), _fmt(limit_seconds),
                                                                                  rollback))
        if proof.get('proven') is not True:
            reasons.append('legacy-only not proven after the rollback (%s: %s)' % (
                rollback, '; '.join(proof.get('reasons') or []) or 'no detail.legacy_only proof'))
        if watch.get('stable') is not True:
            reasons.append('the fleet was not shown stable after the rollback (%s: %s)' % (
                rollback, '; '.join(watch.get('reasons') or []) or 'no detail.post_rollback watch'))
        if evidence_key is not None:
            key = evidence_key if isinstance(evidence_key, fleet_evidence.EvidenceKey) else fleet_evidence.key_from(
                evidence_key)
            try:
                fleet_evidence.verify(key, record, rollback)
            except fleet_evidence.EvidenceError as exc:
                reasons.append(str(exc))
    return _record('deployment', reasons, (rollback,) + tuple(ledgers or ()), measured)


# ================================================================================ support

def _support_problems(value, path, where):
    if isinstance(value, bool) or value is None or (isinstance(value, str) and not value.strip()):
        return ['%s is empty (%s)' % (path, where)]
    if isinstance(value, str):
        if TEMPLATE_RE.search(value):
            return ['%s is a template, not a value the gate can read (%s)' % (path, where)]
        match = PLACEHOLDER_RE.search(value)
        if match:
            return ['%s is a placeholder (%r) (%s)' % (path, match.group(0).strip(), where)]
    return []


def support_gate(inventory):
    """On-call and escalation data (fleet_support) present in the production inventory."""
    reasons = []
    variables, problems = inventory_vars(inventory)
    reasons.extend(problems)
    value, where = variables.get('fleet_support', (None, os.path.join(inventory, 'group_vars')))
    measured = dict(escalation_levels=None)
    if not isinstance(value, dict):
        reasons.append('no evidence: fleet_support (on_call, escalation, runbook_url) not set in %s' % where)
        return _record('support', reasons, [where] if os.path.isfile(where) else [], measured)
    on_call = value.get('on_call')
    if not isinstance(on_call, dict):
        reasons.append('fleet_support.on_call is not set (%s)' % where)
    else:
        for key in ('rotation', 'contact'):
            reasons.extend(_support_problems(on_call.get(key), 'fleet_support.on_call.%s' % key, where))
    escalation = value.get('escalation')
    if not isinstance(escalation, list) or not escalation:
        reasons.append('fleet_support.escalation has no level (%s)' % where)
    else:
        measured['escalation_levels'] = len(escalation)
        previous = -1.0
        for number, level in enumerate(escalation, 1):
            path = 'fleet_support.escalation[%d]' % number
            if not isinstance(level, dict):
                reasons.append('%s is not {name, contact, after_minutes} (%s)' % (path, where))
                continue
            for key in ('name', 'contact'):
                reasons.extend(_support_problems(level.get(key), '%s.%s' % (path, key), where))
            after = _number(level.get('after_minutes'))
            if after is None or after <= previous:
                reasons.append('%s.after_minutes %r: a number of minutes greater than the level before (%s)'
                               % (path, level.get('after_minutes'), where))
            else:
                previous = after
    reasons.extend(_support_problems(value.get('runbook_url'), 'fleet_support.runbook_url', where))
    return _record('support', reasons, [where], measured)


# ================================================================================ all eight

def decide_gates(records):
    """{outcome, summary, failed, problems}: PASS only when each of the eight gates is there once and
    passed; problems names a gate decided twice, not decided, or unknown."""
    by_gate, problems = {}, []
    for record in records:
        gate = record.get('gate') if isinstance(record, dict) else None
        if gate in by_gate:
            problems.append('%s decided twice' % gate)
        by_gate[gate] = record
    failed = [gate for gate in GATES if gate not in by_gate or by_gate[gate].get('outcome') != PASS]
    missing = [gate for gate in GATES if gate not in by_gate]
    unknown = sorted(str(g) for g in by_gate if g not in GATES)
    problems += ['%s not decided' % g for g in missing] + ['unknown gate %s' % g for g in unknown]
    outcome = PASS if not failed and not problems else FAIL
    passed = len(GATES) - len(failed)
    summary = '%d/%d gates PASS' % (passed, len(GATES)) + (
        '; FAIL: %s' % ', '.join(failed) if failed else '') + ('; %s' % '; '.join(problems) if problems else '')
    return dict(outcome=outcome, summary=summary, failed=failed, problems=problems)


def authorization_decision(records, incomplete_areas=(), constraint_gates=()):
    """The readiness run's decision for phase 2, made once here: (decision, reasons, constraints).

    GO when the eight gates pass (decide_gates) and no area of phase 1 is left incomplete
    (incomplete_areas: their names); GO with constraints when every gate that failed is one of
    constraint_gates (the inventory's judgement that the next step may go on with it open), each
    failure then a constraint naming its reasons; NO-GO otherwise, its reasons naming each blocking
    gate and area. A gate not decided is a failed gate."""
    verdict = decide_gates(records)
    by_gate = {r.get('gate'): r for r in records if isinstance(r, dict)}

    def why(gate):
        record = by_gate.get(gate)
        if record is None:
            return 'gate %s not decided (no record)' % gate
        return 'gate %s FAIL: %s' % (gate, '; '.join(record.get('reasons') or ['no reason recorded']))

    blocking = [gate for gate in verdict['failed'] if gate not in constraint_gates]
    reasons = ['area %s not complete' % area for area in incomplete_areas] + [why(gate) for gate in blocking]
    # A gate not decided is among the failed (named by why()); twice decided or unknown ones block too.
    reasons += [p for p in verdict['problems'] if not p.endswith(' not decided')]
    if reasons:
        return fleet_attest.NO_GO, reasons, []
    if verdict['failed']:
        return fleet_attest.GO_WITH_CONSTRAINTS, [], [why(gate) for gate in verdict['failed']]
    return fleet_attest.GO, [], []


# ================================================================================ evidence documents

def evidence_records(folder):
    """(gate records, load results or None, {mode: ledger}) found in an evidence folder."""
    gates_dir, records = os.path.join(folder, 'gates'), []
    for name in sorted(os.listdir(gates_dir)) if os.path.isdir(gates_dir) else ():
        record = _load_json(os.path.join(gates_dir, name), 'a gate record', []) if name.endswith('.json') else None
        if isinstance(record, dict) and record.get('gate'):
            records.append(record)
    results = _load_json(os.path.join(folder, 'load', 'results.json'), 'the load results', [])
    ledgers, modes_dir = {}, os.path.join(folder, Layout.FAILURE_MODES_DIR)
    for mode in sorted(os.listdir(modes_dir)) if os.path.isdir(modes_dir) else ():
        record = _load_json(os.path.join(modes_dir, mode, Layout.LEDGER), 'a ledger', [])
        if isinstance(record, dict):
            ledgers[mode] = record
    return records, results if isinstance(results, dict) else None, ledgers


def _load_lines(results):
    scenarios = (results or {}).get('scenarios')
    if not isinstance(scenarios, dict) or not scenarios:
        return ['No load results in this evidence (load/results.json).']
    return ['- %s' % _cell(record.get('summary') or name) for name, record in sorted(scenarios.items())
            if isinstance(record, dict)]


def _ledger_lines(ledgers):
    if not ledgers:
        return ['No failure-mode ledger in this evidence (failure-modes/<mode>/ledger.json).']
    lines = []
    for mode, record in ledgers.items():
        problems = fleet_ledger.check_record(record, 'failure-modes/%s/%s' % (mode, Layout.LEDGER))
        lines.append('- %s: %s' % (mode, _cell('; '.join(problems)) or 'within its loss budget'))
        try:
            lines += ['  - %s' % _cell(line) for line in fleet_ledger.lost_lines(record)[:5]]
        except (KeyError, TypeError, AttributeError):
            pass  # an incomplete record, which check_record has named
    return lines


def evidence_summary(run, records, results, ledgers):
    """The executive summary of a readiness run's evidence (evidence_records), in Markdown: the gates'
    outcome, each gate in a line, the load scenarios and failure modes in one line each."""
    decided = decide_gates(records)
    by_gate = {r['gate']: r for r in records}
    lines = ['# Readiness run %s: executive summary' % run, '', '**Gates: %s** (%s).' % (decided['outcome'],
                                                                                        decided['summary']), '']
    for gate in GATES:
        record = by_gate.get(gate)
        reasons = (record or {}).get('reasons') or []
        lines.append('- %s: %s%s' % (gate, (record or {}).get('outcome', 'not decided'),
                                     ' - %s' % _cell(reasons[0]) + (' (and %d more)' % (len(reasons) - 1)
                                                                   if len(reasons) > 1 else '') if reasons else ''))
    lines += ['', '## Load', ''] + _load_lines(results) + ['', '## Failure modes', ''] + _ledger_lines(ledgers)
    lines += ['', 'Every file of this folder, with its SHA-256, is listed in `%s`; the technical report is `%s`.'
              % (Layout.EVIDENCE_INDEX, Layout.EVIDENCE_REPORT)]
    return '\n'.join(lines) + '\n'


def evidence_report(run, folder, records, results, ledgers):
    """The technical report of a readiness run's evidence folder (evidence_records of it), in Markdown: the gates table with
    every reason and evidence link, each gate's measured figures, the load scenarios' thresholds and
    the failure modes' ledgers."""
    lines = ['# Readiness run %s: technical report' % run, '',
             render_markdown(records, base_dir=folder).replace('# Readiness gates', '## Readiness gates', 1), '']
    for record in sorted(records, key=lambda r: GATES.index(r['gate']) if r['gate'] in GATES else len(GATES)):
        lines += ['## Gate %s: %s' % (record['gate'], record.get('outcome')), '']
        lines += ['- %s' % _cell(reason) for reason in record.get('reasons') or []] or ['No failure.']
        lines += ['', '```json', json.dumps(record.get('measured') or {}, indent=2, sort_keys=True, default=str),
                  '```', '']
    lines += ['## Load scenarios', ''] + _load_lines(results) + ['']
    for name, record in sorted(((results or {}).get('scenarios') or {}).items()):
        thresholds = record.get('thresholds') if isinstance(record, dict) else None
        if thresholds:
            lines += ['### %s' % _cell(name), '', '| threshold | metric | condition | measured | passed |',
                      '|---|---|---|---|---|']
            lines += ['| %s | %s | %s %s | %s | %s |' % tuple(_cell(t.get(k)) for k in (
                'name', 'metric', 'comparator', 'threshold', 'measured', 'passed')) for t in thresholds
                if isinstance(t, dict)]
            lines.append('')
    lines += ['## Failure modes', ''] + _ledger_lines(ledgers)
    return '\n'.join(lines) + '\n'


def _cell(text):
    return str(text).replace('|', '\\|').replace('\n', ' ')


def render_markdown(records, base_dir=None):
    """A Markdown table, one row per gate in GATES order (a gate not decided fails there), evidence
    linked (relative to base_dir)."""
    decided = decide_gates(records)
    lines = ['# Readiness gates: %s' % decided['outcome'], '', decided['summary'], '',
             '| gate | outcome | reasons | evidence |', '|---|---|---|---|']
    order = {gate: number for number, gate in enumerate(GATES)}
    decided_gates = {record.get('gate') for record in records}
    records = list(records) + [dict(gate=gate, outcome=FAIL, reasons=['not decided'], evidence=[])
                               for gate in GATES if gate not in decided_gates]
    for record in sorted(records, key=lambda r: order.get(r.get('gate'), len(GATES))):
        links = []
        for item in record.get('evidence') or []:
            target = os.path.relpath(item['path'], base_dir) if base_dir else item['path']
            links.append('[%s](%s) `%s`' % (_cell(os.path.basename(item['path'])), target, item['sha256'][:12]))
        shown = links[:8] + (['and %d more' % (len(links) - 8)] if len(links) > 8 else [])
        lines.append('| %s | %s | %s | %s |' % (record.get('gate'), record.get('outcome'),
                                                _cell('<br>'.join(record.get('reasons') or []) or '-'),
                                                '<br>'.join(shown) or 'none'))
    return '\n'.join(lines) + '\n'
