# -*- coding: utf-8 -*-
# Filters for decisions that are plain data in, data out, kept here so they are unit-tested
# instead of living as Jinja in task files.

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.fleetwave.rollout.plugins.module_utils import fleet_load, fleet_nats
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_ledger
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_checkpoint import instance_key
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_plan import identity, subject_prefix
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_server import fleet_view

PRE_RESTORE_LABEL = 'pre-restore'

def fleet_env_path(name, env_dir):
    """The env file of an agent, <env_dir>/<name>.env, spelt one way everywhere: the backup
    manifest is keyed by this path, so a deploy and a rollback must build it identically."""
    return '%s/%s.env' % (env_dir.rstrip('/'), name)


def rollback_actions(files, agents, env_dir, host, strict=False):
    """Decide, per agent, whether a rollback restores a backup, has nothing to do, or must refuse.

    files: agent_env_info's `files` result (keyed by env file path); agents: the names to roll
    back on this host; strict: the agents were named explicitly, so each must have a backup.
    The newest backup that is not a pre-restore copy is the state before the flip; it must
    have the flag off, or restoring it would not roll anything back. A restore entry whose file has
    the flag off already (unified_before false) is proven but not restored (restore.yml): there is
    nothing to undo, and restoring would revert later edits.
    Returns {restore: [...], skip: [...], errors: [...]}.
    """
    restore, skip, errors = [], [], []
    for name in agents:
        path = fleet_env_path(name, env_dir)
        info = files.get(path)
        if info is None or not info.get('exists'):
            if strict:
                errors.append('%s on %s: %s does not exist; the agent is not installed here' % (name, host, path))
            else:
                skip.append(dict(agent=name, reason='not installed'))
            continue
        backup = next((b for b in info.get('backups', []) if b.get('label') != PRE_RESTORE_LABEL), None)
        if backup is None:
            if info.get('unified'):
                errors.append('%s on %s: the flag is on in %s but no backup is recorded; nothing to restore '
                              '(set ENABLE_UNIFIED_SUBJECTS=false by hand, or re-install with playbooks/site.yml)'
                              % (name, host, path))
            elif strict:
                errors.append('%s on %s: no backup recorded for %s; nothing to restore (the agent was never '
                              'flipped by a wave)' % (name, host, path))
            else:
                skip.append(dict(agent=name, reason='never flipped, already legacy-only'))
            continue
        if str(backup.get('flag')).strip().lower() not in ('false', '0', 'no'):
            errors.append('%s on %s: the newest backup %s has the flag %r, so restoring it would not roll back; '
                          'refusing' % (name, host, backup.get('backup'), backup.get('flag')))
            continue
        restore.append(dict(agent=name, backup=backup.get('backup'), created=backup.get('created'),
                            label=backup.get('label'), unified_before=info.get('unified')))
    return dict(restore=restore, skip=skip, errors=errors)


def fleet_command_subject(pattern, name, catalog, verb='ping'):
    """The subject of a command to an agent: <pattern formatted with name/id/cluster>.cmd.<verb>."""
    return '%s.cmd.%s' % (subject_prefix(pattern, name, catalog[name]), verb)


def fleet_identities(names, catalog, subject_legacy, subject_unified):
    """Agent names -> identities (name, id, cluster, legacy and unified subject prefixes), as wave_plan
    gives them; for plays that name agents without a wave plan (a rollback)."""
    return [identity(name, catalog[name], subject_legacy, subject_unified) for name in names]


def fleet_probe_agents(identities, unified_enabled):
    """Plan identities -> nats_probe agents: name, subject prefixes and whether the flag is on, for
    all (a bool) or per agent (a dict of name -> flag, e.g. as read from the env files). None (for a
    server_proof only): the flag is not known, the unified subscription is not judged."""
    def enabled(name):
        if unified_enabled is None:
            return None
        return bool(unified_enabled.get(name)) if isinstance(unified_enabled, dict) else bool(unified_enabled)

    return [dict(name=a['name'], legacy=a['legacy'], unified=a['unified'], unified_enabled=enabled(a['name']))
            for a in identities]


def server_proof(server, info, agents, hosts, complete=True):
    """The NATS server's proof of the instances of `agents` (nats_probe agents: subject prefixes and
    whether the flag is on) on `hosts`: each one's own connection subscribed as its flag says, and,
    when `complete` (info covers every host), no impostor on their command subjects.

    server: nats_server_info's result (a failed one is no proof); info: {host: agent_host_info result}.
    Returns {proven, reasons, instances: {'agent@host': {ok, problem, cids, legacy, unified}}, impostors,
    unattributed}: what every per-host proof (pre-flight, deploy, rollback) records.
    """
    if not server or 'connections' not in server:
        why = (server or {}).get('msg') or 'the monitoring endpoint was not read'
        return dict(proven=False, reasons=['no server view: %s' % why], instances={}, impostors=[], unattributed=[])
    view = fleet_view(server, info or {}, agents, hosts, complete)
    return dict(proven=not view['problems'], reasons=view['problems'],
                instances={key: dict(ok=i['ok'], problem=i['problem'], cids=[c['cid'] for c in i['connections']],
                                     legacy=i['legacy_subscribed'], unified=i['unified_subscribed'])
                           for key, i in view['instances'].items()},
                impostors=[i['described'] for i in view['impostors']],
                unattributed=[i['described'] for i in view['unattributed']])


def legacy_only_proof(probe, hosts=None, server=None):
    """Whether a nats_probe of rolled-back agents (flag off) proves them legacy-only on `hosts`
    (every probed host when None). The one proof of both rollbacks, recorded in this shape.

    Per instance (agent@host): every request on its legacy subject answered (delivery 1.0),
    nobody answering on its unified subject, events published on legacy and none on unified.
    Events are told apart by host from the agents' Agent-Host header; an agent that sends none
    is judged on all its events together (exact when the rollback covers every host).
    server: server_proof of the same instances (flag off), which says per instance what no reply
    can for an agent that ignores Agent-Target: its own connection holds legacy and not unified.
    """
    probe = probe or {}
    agents = sorted(probe.get('agents') or [], key=lambda a: a['name'])
    scope = set(hosts) if hosts else None
    replies = {}
    for t in probe.get('targets') or []:
        if t.get('via') == 'unified':
            key = (t.get('agent'), t.get('host'))
            replies[key] = replies.get(key, 0) + (t.get('replies') or 0)
    reasons = [] if agents else ['the probe measured no agent: %s' % (probe.get('msg') or 'no result')]
    instances = {}

    def judge_events(who, events):
        if not (events or {}).get('legacy'):
            reasons.append('%s: no event published on legacy subjects' % who)
        if (events or {}).get('unified'):
            reasons.append('%s: %s event(s) still published on unified subjects' % (who, events['unified']))

    for agent in agents:
        mine = [i for i in sorted(agent.get('instances') or [], key=lambda i: i['host'])
                if scope is None or i['host'] in scope]
        if not mine:
            reasons.append('%s: no instance probed on %s' % (agent['name'], ', '.join(sorted(scope or [])) or 'any host'))
        by_host = all(i.get('events') is not None for i in mine)
        for instance in mine:
            who = '%s@%s' % (agent['name'], instance['host'])
            events = instance.get('events') if by_host else None
            answered = replies.get((agent['name'], instance['host']), 0)
            instances[who] = dict(delivery=instance.get('delivery'), unified_replies=answered,
                                  events_legacy=(events or {}).get('legacy'), events_unified=(events or {}).get('unified'))
            if instance.get('delivery') != 1.0:
                reasons.append('%s: delivery on legacy %s, expected 1.0' % (who, instance.get('delivery')))
            if answered:
                reasons.append('%s: %d answer(s) on its unified subject' % (who, answered))
            if by_host:
                judge_events(who, events)
        if mine and not by_host:
            judge_events('%s (all hosts: its events name no host)' % agent['name'], agent.get('events'))
    probed = sorted({i['host'] for a in agents for i in a.get('instances') or []})
    if server is not None:
        reasons.extend('server: %s' % r for r in server.get('reasons') or [])
    proof = dict(proven=not reasons, reasons=reasons, hosts=sorted(scope) if scope else probed,
                 instances=instances, window=probe.get('window'),
                 events={a['name']: dict(legacy=(a.get('events') or {}).get('legacy'),
                                         unified=(a.get('events') or {}).get('unified')) for a in agents})
    if server is not None:
        proof['server'] = server
    return proof


def post_rollback_round(probe, hosts, server, before, after, number, at_seconds):
    """One round of the watch after a rollback: the legacy-only proof again (probe and server view),
    and no rolled-back unit restarted or stopped since the watch began.

    before/after: {host: agent_host_info result} at the watch's start and now.
    Returns {round, at_seconds, stable, reasons, restarts: {'agent@host': n}}.
    """
    proof = legacy_only_proof(probe, hosts, server)
    reasons, restarts = list(proof['reasons']), {}
    for host in hosts:
        then = ((before or {}).get(host) or {}).get('units') or {}
        now = ((after or {}).get(host) or {}).get('units') or {}
        for agent in sorted(then):
            unit, start = now.get(agent) or {}, then[agent]
            key = '%s@%s' % (agent, host)
            if unit.get('active_state') != 'active':
                reasons.append('%s: unit %s since the watch began' % (key, unit.get('active_state') or 'not read'))
            grew = (unit.get('n_restarts') or 0) - (start.get('n_restarts') or 0)
            if grew > 0 or (unit.get('main_pid') and unit.get('main_pid') != start.get('main_pid')):
                restarts[key] = max(grew, 1)
                reasons.append('%s: restarted since the watch began (restarts %s -> %s, PID %s -> %s)' % (
                    key, start.get('n_restarts'), unit.get('n_restarts'), start.get('main_pid'), unit.get('main_pid')))
    return dict(round=int(number), at_seconds=round(float(at_seconds), 1), stable=not reasons, reasons=reasons,
                restarts=restarts)


def _probed_instances(probe):
    """(agent@host, instance figures) of every instance of a nats_probe result (none of a failed one)."""
    for agent in (probe or {}).get('agents') or []:
        for instance in agent.get('instances') or []:
            yield instance_key(agent['name'], instance['host']), instance


def fleet_latency_baseline(probe):
    """{agent@host: median reply latency in ms} of a nats_probe result, for every instance that
    replied: the pre-flip baseline each instance's sequential comparison is judged against."""
    return {key: instance['latency_ms']['p50'] for key, instance in _probed_instances(probe)
            if (instance.get('latency_ms') or {}).get('p50') is not None}


def fleet_request_baseline(probe):
    """{agent@host: request counters} of a nats_probe result (sent, replies, replies_ok, errors,
    timeouts, no_responders), for every instance probed: the pre-flip baseline of each instance's
    sequential comparison of rates."""
    return {key: {k: instance.get(k) for k in ('sent', 'replies', 'replies_ok', 'errors', 'timeouts', 'no_responders')}
            for key, instance in _probed_instances(probe) if instance.get('sent')}


def readiness_load_plan(scenarios, factor=1, max_seconds=None, variable=fleet_load.VARIABLE):
    """The readiness run's load (or stress) scenarios as they will run: the inventory's variable
    validated (every problem at once, naming its key and the allowed range) and, for the sandbox,
    compressed by factor (every duration, window and interval divided by it, none longer than
    max_seconds)."""
    problems = fleet_load.validate_scenarios(scenarios, where=variable)
    if problems:
        raise AnsibleFilterError('%s is refused (nothing was sent):\n  - %s' % (variable, '\n  - '.join(problems)))
    # Given with -e key=value, a number arrives as text.
    try:
        factor = float(factor)
        max_seconds = None if max_seconds in (None, '') else float(max_seconds)
    except (TypeError, ValueError):
        raise AnsibleFilterError('readiness_load_compress_factor (%r) and readiness_load_max_seconds (%r) must be '
                                 'numbers (max_seconds may be null)' % (factor, max_seconds))
    if factor == 1 and max_seconds is None:
        return scenarios
    try:
        return fleet_load.compress(scenarios, factor, max_seconds)
    except ValueError as exc:
        raise AnsibleFilterError('readiness_load_compress_factor/readiness_load_max_seconds: %s' % exc)


def readiness_load_seconds(scenarios):
    """The planned seconds of the longest of the (validated) scenarios, 0 for none: the readiness run
    renews the fleet lock before each scenario, so its lease must outlast the longest."""
    return max([fleet_load.scenario_seconds(scenario) for scenario in (scenarios or {}).values()] or [0.0])


def readiness_load_targets(files_by_host, names, catalog, env_dir, subject_legacy, subject_unified, verb='ping'):
    """Where the readiness run's load goes, per agent: its unified command subject when its env file has
    the flag on on every host (the state being certified), else its legacy one, with each host's flag as
    read (agent_env_info's `files` per host). Returns [{agent, via, subject, flags: {host: bool|None}}]."""
    targets = []
    for name in names:
        path = fleet_env_path(name, env_dir)
        flags = {host: ((files or {}).get(path) or {}).get('unified') for host, files in sorted(files_by_host.items())}
        via = 'unified' if flags and all(flag is True for flag in flags.values()) else 'legacy'
        pattern = subject_unified if via == 'unified' else subject_legacy
        targets.append(dict(agent=name, via=via, subject=fleet_command_subject(pattern, name, catalog, verb),
                            flags=flags))
    return targets


def readiness_load_compare(current, previous):
    """Per scenario and figure, the change from the previous readiness run's load results (None: there is
    none) to this run's (fleet_load.compare_with_previous); no verdict."""
    return fleet_load.compare_with_previous(current, previous)


def readiness_failure_plan(modes, budgets, hosts):
    """The failure-modes area's plan (fleet_ledger.failure_plan): readiness_failure_modes and
    readiness_loss_budgets checked, every problem at once, before anything is injected."""
    try:
        return fleet_ledger.failure_plan(modes, budgets, list(hosts))
    except fleet_ledger.LedgerError as exc:
        raise AnsibleFilterError('The failure modes are refused (nothing was injected):\n  - %s'
                                 % '\n  - '.join(str(exc).split('; ')))


def readiness_failure_traffic(names, catalog, hosts, subject_legacy, subject_unified, verb='ping'):
    """What nats_traffic sends and listens to through each failure: a request target per instance
    of the agents names on hosts (addressed with Agent-Target) and the agents' events on both subject
    families. Returns {targets: [{subject, host, target}], event_subjects: [{subject, family}]}."""
    agents = [identity(name, catalog[name], subject_legacy, subject_unified) for name in names]
    return dict(
        targets=[dict(subject='%s.cmd.%s' % (agent['legacy'], verb), host=host, target='%s@%s' % (agent['name'], host))
                 for agent in agents for host in hosts],
        event_subjects=[dict(subject='%s.evt.>' % agent[family], family=family)
                        for agent in agents for family in fleet_ledger.SUBJECT_FAMILIES])


def fleet_url_without_userinfo(url):
    """A URL (NATS, a server list, the monitoring endpoint) with every user info dropped, as documents
    show it: nats://user:secret@host:4222 -> nats://host:4222. What counts as user info is what
    fleet_nats.redact_url masks (every reading nats-py may make of it), so no credential survives."""
    return fleet_nats.redact_url(str(url)).replace(fleet_nats.REDACTED + '@', '')


class FilterModule:
    def filters(self):
        return {
            'rollback_actions': rollback_actions,
            'fleet_env_path': fleet_env_path,
            'fleet_command_subject': fleet_command_subject,
            'fleet_identities': fleet_identities,
            'fleet_probe_agents': fleet_probe_agents,
            'fleet_latency_baseline': fleet_latency_baseline,
            'fleet_request_baseline': fleet_request_baseline,
            'legacy_only_proof': legacy_only_proof,
            'server_proof': server_proof,
            'post_rollback_round': post_rollback_round,
            'readiness_load_plan': readiness_load_plan,
            'readiness_load_seconds': readiness_load_seconds,
            'readiness_load_targets': readiness_load_targets,
            'readiness_load_compare': readiness_load_compare,
            'fleet_url_without_userinfo': fleet_url_without_userinfo,
            'readiness_failure_plan': readiness_failure_plan,
            'readiness_failure_traffic': readiness_failure_traffic,
        }
