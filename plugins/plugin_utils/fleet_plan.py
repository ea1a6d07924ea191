# -*- coding: utf-8 -*-
# Turns the inventory's fleet data (agents, waves, schedule, subject patterns, timings) into a
# validated wave plan. Every problem is collected with the variable path where it sits, so a
# bad inventory is refused as a whole, before any host is touched.

from __future__ import annotations

import math
import re
import string

from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_limits import MAX_ROUNDS_PER_WAVE, out_of_range
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import name_problem

# Matched with fullmatch: `$` would accept a trailing newline (a YAML `|` block gives one).
NAME_RE = re.compile(r'[a-z0-9][a-z0-9-]*')  # one NATS subject token, also a unit/file name
UUID_RE = re.compile(r'[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}')
SUBJECT_TOKEN_RE = re.compile(r'[A-Za-z0-9_-]+')
PATTERN_FIELDS = {'name', 'id', 'cluster'}


class PlanError(Exception):
    def __init__(self, problems):
        super().__init__('\n'.join(problems))
        self.problems = problems


def subject_prefix(pattern, name, agent):
    return pattern.format(name=name, id=agent['id'], cluster=agent['cluster'])


def identity(name, agent, subject_legacy, subject_unified):
    """An agent as the probe and the reports know it: name, id, cluster and its two subject prefixes."""
    return dict(name=name, id=agent['id'], cluster=agent['cluster'],
                legacy=subject_prefix(subject_legacy, name, agent),
                unified=subject_prefix(subject_unified, name, agent))


def _check_pattern(var, pattern, problems):
    if not isinstance(pattern, str) or not pattern:
        problems.append('%s: must be a non-empty subject pattern, got %r' % (var, pattern))
        return
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None}
        unknown = fields - PATTERN_FIELDS
        if unknown:
            problems.append('%s: %r uses unknown field(s) %s (allowed: {name}, {id}, {cluster})'
                            % (var, pattern, ', '.join('{%s}' % f for f in sorted(unknown))))
            return
        sample = pattern.format(name='a', id='b', cluster='c')
    except (ValueError, KeyError, IndexError, AttributeError) as exc:
        problems.append('%s: %r is not a valid pattern (%s)' % (var, pattern, exc))
        return
    if not all(SUBJECT_TOKEN_RE.fullmatch(t) for t in sample.split('.')):
        problems.append('%s: %r does not make a valid NATS subject (tokens of letters, digits, - and _)'
                        % (var, pattern))


def _check_agents(agents, problems):
    if not isinstance(agents, dict) or not agents:
        problems.append('fleet_agents: must be a non-empty mapping of agent name to {id, cluster}')
        return
    seen_ids = {}
    for name, agent in agents.items():
        where = 'fleet_agents.%s' % name
        if not NAME_RE.fullmatch(str(name)):
            problems.append('%s: agent names are lower-case letters, digits and dashes' % where)
        if not isinstance(agent, dict):
            problems.append('%s: must be a mapping with id and cluster' % where)
            continue
        agent_id, cluster = agent.get('id'), agent.get('cluster')
        if not isinstance(agent_id, str) or not UUID_RE.fullmatch(agent_id):
            problems.append('%s.id: %r is not a lower-case UUID (8-4-4-4-12 hex digits)' % (where, agent_id))
        elif agent_id in seen_ids:
            problems.append('%s.id: %s is also the id of %s' % (where, agent_id, seen_ids[agent_id]))
        else:
            seen_ids[agent_id] = name
        if not isinstance(cluster, str) or not NAME_RE.fullmatch(cluster):
            problems.append('%s.cluster: %r is not a capability cluster name (lower-case letters, digits, dashes)'
                            % (where, cluster))


def _check_schedule(wave, phase_name, checkpoints, labels, problems):
    where = 'wave_schedule.%s.%s' % (wave, phase_name)
    if not isinstance(checkpoints, list) or not checkpoints:
        problems.append('%s: needs at least one checkpoint ({label, at}); a phase with no checkpoint '
                        'has no data to decide on' % where)
        return []
    previous_at = 0
    out = []
    for i, cp in enumerate(checkpoints):
        here = '%s[%d]' % (where, i)
        if not isinstance(cp, dict) or set(cp) != {'label', 'at'}:
            problems.append('%s: must be exactly {label, at}, got %r' % (here, cp))
            continue
        label, at = cp['label'], cp['at']
        if isinstance(label, str) and label.endswith('-verification'):
            problems.append('%s.label: %r is reserved for the verification window' % (here, label))
        elif name_problem('%s.label' % here, label):
            problems.append(name_problem('%s.label' % here, label))
        elif label in labels:
            problems.append('%s.label: %r is used twice in wave %s' % (here, label, wave))
        else:
            labels.add(label)
        bad_at = out_of_range('at', at)
        if bad_at:
            problems.append('%s.at: %s' % (here, bad_at))
        elif at <= previous_at:
            problems.append('%s.at: %s is not after the previous checkpoint (%s)' % (here, at, previous_at))
        else:
            previous_at = at
        out.append(dict(label=label, at=at))
    return out


def _ancestors(waves, wave, problems):
    chain, current = [], waves[wave].get('previous')
    while current:
        if current not in waves:
            problems.append('fleet_waves.%s.previous: %r is not a defined wave' % (chain[-1] if chain else wave, current))
            break
        if current in chain or current == wave:
            problems.append('fleet_waves.%s.previous: the chain of previous waves loops' % wave)
            break
        if not isinstance(waves[current], dict):
            problems.append('fleet_waves.%s: must be a mapping with phases' % current)
            break
        chain.append(current)
        current = waves[current].get('previous')
    return chain


def build_plan(wave, agents, waves, schedule, subject_legacy, subject_unified,
               stagger, verify_window, monitor_interval):
    """Validate everything a wave run depends on; return the plan or raise PlanError."""
    problems = []
    # A wave's name becomes checkpoints/<wave>/ (and a previous wave's is read from there): '..',
    # '/' or 'audit' would put a wave's folders over other artifacts.
    problem = name_problem('wave (wave_name)', wave)
    if problem:
        raise PlanError([problem])
    for name in waves if isinstance(waves, dict) else ():
        problem = name_problem('fleet_waves.%s' % name, name)
        if problem:
            problems.append(problem + ' (a wave name)')
    _check_agents(agents, problems)
    _check_pattern('fleet_subject_legacy', subject_legacy, problems)
    _check_pattern('fleet_subject_unified', subject_unified, problems)
    for var, value in (('wave_stagger_seconds', stagger), ('wave_verify_window_seconds', verify_window),
                       ('wave_monitor_interval_seconds', monitor_interval)):
        bad = out_of_range(var, value)
        if bad:
            problems.append('%s: %s' % (var, bad))
    if not isinstance(waves, dict) or wave not in waves:
        known = ', '.join(sorted(waves)) if isinstance(waves, dict) else 'none'
        raise PlanError(problems + ['fleet_waves: wave %r is not defined (defined: %s)' % (wave, known)])
    definition = waves[wave]
    phases = definition.get('phases') if isinstance(definition, dict) else None
    if not isinstance(phases, list) or not phases:
        raise PlanError(problems + ['fleet_waves.%s.phases: must be a non-empty list' % wave])
    wave_schedule = (schedule or {}).get(wave) if isinstance(schedule, dict) else None
    if not isinstance(wave_schedule, dict):
        problems.append('wave_schedule.%s: missing; every wave needs its checkpoints' % wave)
        wave_schedule = {}

    known_agents = agents if isinstance(agents, dict) else {}
    plan_phases, in_wave, labels = [], [], set()
    for i, phase in enumerate(phases):
        where = 'fleet_waves.%s.phases[%d]' % (wave, i)
        problem = name_problem('%s.name' % where, phase.get('name') if isinstance(phase, dict) else None)
        if problem:
            problems.append('%s.name: every phase needs a name usable as a folder name (%s)'
                            % (where, problem.split(': ', 1)[1]))
            continue
        names = phase.get('agents')
        if not isinstance(names, list) or not names:
            problems.append('%s.agents: must be a non-empty list of agent names' % where)
            names = []
        members = []
        for name in names:
            if name not in known_agents:
                problems.append('%s.agents: unknown agent %r (known: %s)'
                                % (where, name, ', '.join(sorted(known_agents))))
            elif name in in_wave:
                problems.append('%s.agents: %r is already in an earlier phase of %s' % (where, name, wave))
            else:
                in_wave.append(name)
                members.append(name)
        checkpoints = _check_schedule(wave, phase['name'], wave_schedule.get(phase['name']), labels, problems)
        plan_phases.append(dict(name=phase['name'], agents=members, checkpoints=checkpoints))
    extra = sorted(set(wave_schedule) - {p.get('name') for p in phases if isinstance(p, dict)})
    if extra:
        problems.append('wave_schedule.%s: %s not a phase of %s' % (wave, ', '.join(extra), wave))
    ancestors = _ancestors(waves, wave, problems)
    if problems:
        raise PlanError(problems)

    # Counted before any round is built: a long schedule watched at a short interval would
    # otherwise plan millions of rounds (and hold them in memory) before anyone could object.
    planned = sum(rounds_count(verify_window + p['checkpoints'][-1]['at'], len(p['checkpoints']) + 1,
                               monitor_interval) for p in plan_phases)
    if planned > MAX_ROUNDS_PER_WAVE:
        raise PlanError(['wave_schedule.%s: %d checkpoints and monitoring rounds (one every '
                         'wave_monitor_interval_seconds = %s s up to the last checkpoint), over the limit of %d '
                         'per wave; raise the interval or shorten the schedule'
                         % (wave, planned, monitor_interval, MAX_ROUNDS_PER_WAVE)])

    def identity_of(name):
        return identity(name, known_agents[name], subject_legacy, subject_unified)

    for phase in plan_phases:
        phase['agents'] = [identity_of(n) for n in phase['agents']]
        # What the phase is watched by, in seconds after its last host is deployed: the
        # verification window, then the scheduled checkpoints counted from its end.
        phase['watch'] = [dict(label='%s-verification' % phase['name'], after=verify_window)] + [
            dict(label=cp['label'], after=verify_window + cp['at']) for cp in phase['checkpoints']]
        phase['rounds'] = watch_rounds(phase['name'], phase['watch'], monitor_interval)
    earlier = [n for w in ancestors for p in waves[w].get('phases', []) for n in p.get('agents', [])]
    control = [identity_of(n) for n in sorted(known_agents) if n not in in_wave and n not in earlier]
    return dict(
        wave=wave,
        previous=definition.get('previous'),
        phases=plan_phases,
        agents=in_wave,
        # Agents that no wave so far has touched: the control group for test-vs-control.
        control=control,
        # What the wave's agents are compared with: the control group, or when no agent is left
        # untouched (the last wave), the agents of earlier waves, already proven GO and measured
        # in the same window under the same load.
        reference=control or [identity_of(n) for n in sorted(set(earlier))],
        reference_kind='control' if control else ('earlier waves' if earlier else 'none'),
        timings=dict(stagger=stagger, verify_window=verify_window, monitor_interval=monitor_interval),
    )


def rounds_count(last, n_checkpoints, monitor_interval):
    """At most how many rounds watch_rounds plans for a watch ending at `last`: every checkpoint and
    every monitoring round before it (an upper bound: rounds near a checkpoint are left out)."""
    return n_checkpoints + int(math.ceil(last / float(monitor_interval)))


def watch_rounds(phase_name, watch, monitor_interval):
    """The phase's checkpoints with the continuous-monitoring rounds between them, in time order.

    A monitoring round is due every monitor_interval seconds from the start of the watch; one
    that would fall within half an interval of a checkpoint is left out, the checkpoint measures
    then anyway.
    """
    rounds = [dict(w, kind='checkpoint') for w in watch]
    if not watch:
        return rounds
    last, step, n = watch[-1]['after'], float(monitor_interval), 1
    times = [w['after'] for w in watch]
    while n * step < last:
        at = n * step
        if all(abs(at - t) >= step / 2.0 for t in times):
            rounds.append(dict(label='%s-monitor-%03d' % (phase_name, n), after=round(at, 3), kind='monitor'))
        n += 1
    return sorted(rounds, key=lambda r: (r['after'], r['kind'] == 'monitor'))
