# -*- coding: utf-8 -*-
# Filters for decisions that are plain data in, data out, kept here so they are unit-tested
# instead of living as Jinja in task files.

from __future__ import annotations

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
    have the flag off, or restoring it would not roll anything back.
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
    agent = catalog[name]
    return '%s.cmd.%s' % (pattern.format(name=name, id=agent['id'], cluster=agent['cluster']), verb)


def fleet_probe_agents(identities, unified_enabled):
    """Plan identities -> nats_probe agents: name, subject prefixes and whether the flag is on."""
    return [dict(name=a['name'], legacy=a['legacy'], unified=a['unified'], unified_enabled=bool(unified_enabled))
            for a in identities]


def legacy_only_proof(probe):
    """Whether a nats_probe of rolled-back agents (flag off) proves them legacy-only: every
    request answered on legacy (delivery 1.0), events published on legacy, none on unified,
    nobody answering on unified. One proof for every rollback, recorded in this shape."""
    agents = (probe or {}).get('agents') or []
    delivery = {a['name']: a.get('delivery') for a in agents}
    legacy = {a['name']: (a.get('events') or {}).get('legacy') for a in agents}
    unified = {a['name']: (a.get('events') or {}).get('unified') for a in agents}
    unified_replies = sum(t.get('replies') or 0 for t in (probe or {}).get('targets') or [] if t.get('via') == 'unified')
    reasons = [] if agents else ['the probe measured no agent: %s' % ((probe or {}).get('msg') or 'no result')]
    for name in sorted(delivery):
        if delivery[name] != 1.0:
            reasons.append('%s: delivery on legacy %s, expected 1.0' % (name, delivery[name]))
        if not legacy[name]:
            reasons.append('%s: no event published on legacy subjects' % name)
        if unified[name]:
            reasons.append('%s: %s event(s) still published on unified subjects' % (name, unified[name]))
    if unified_replies:
        reasons.append('%d answer(s) on unified subjects' % unified_replies)
    return dict(proven=not reasons, reasons=reasons, delivery=delivery, events_legacy=legacy,
                events_unified=unified, unified_replies=unified_replies)


class FilterModule:
    def filters(self):
        return {
            'rollback_actions': rollback_actions,
            'fleet_env_path': fleet_env_path,
            'fleet_command_subject': fleet_command_subject,
            'fleet_probe_agents': fleet_probe_agents,
            'legacy_only_proof': legacy_only_proof,
        }
