# -*- coding: utf-8 -*-
# Checkpoints: what was observed on the hosts (agent_host_info) and on NATS (nats_probe), turned
# into the figures the gate judges (measure) and into health checks (evaluate_health), each check
# keeping its expected and measured value so the decision can be read back from the artifact.
# A check or figure without an observation is None and fails (no data is never a pass).

from __future__ import annotations

import statistics
import time

from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import Layout, utc
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_gate import (DEFAULT_TOLERANCE, evaluate,
                                                                                  load_criteria)
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_policy import ASK, ROLL_BACK, decide_round, describe
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_sequential import (
    RATE_METRICS, compare_instances, compare_rates, request_counts)
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_server import fleet_view


def _check(checks, name, agent, host, expected, measured, ok):
    checks.append(dict(check=name, agent=agent, host=host, expected=expected, measured=measured, ok=bool(ok)))


def server_checks(checks, hosts, flipped, control, view, view_error=None):
    """The NATS server's proof of each instance (fleet_server.fleet_view): subscribed as its flag
    says, and no impostor on its command subjects. Without a view every check fails (no data)."""
    missing = 'no server view: %s' % (view_error or 'the monitoring endpoint was not read')
    for agent in list(flipped) + list(control):
        expected = 'subscribed on legacy and unified' if agent in flipped else 'subscribed on legacy only'
        for host in hosts:
            found = (view or {}).get('instances', {}).get('%s@%s' % (agent, host))
            if found is None:
                measured = missing if view is None else 'not in the server view'
            elif found['ok']:
                measured = '%s (cid %s)' % (expected, ', '.join(str(c['cid']) for c in found['connections']))
            else:
                measured = found['problem']
            _check(checks, 'server: subscriptions', agent, host, expected, measured, found is not None and found['ok'])
    # Every probed agent's command subjects, the reference group's (earlier waves') included.
    held = {a for i in (view or {}).get('impostors') or [] for a in i['agents']}
    for agent in list(flipped) + list(control) + sorted(held - set(flipped) - set(control)):
        impostors = [i['described'] for i in (view or {}).get('impostors') or [] if agent in i['agents']]
        _check(checks, 'no impostor on its command subjects', agent, None, 'none',
               missing if view is None else ('; '.join(impostors) or 'none'), view is not None and not impostors)


def reply_checks(checks, probe, names):
    """One answer per request: a second answer means a second responder (an impostor, or instances
    answering without a queue group), and a reply to no request of the probe is forged or stray."""
    if not probe:
        return
    agents = {a['name']: a for a in probe.get('agents') or []}
    for agent in names:
        found = (agents.get(agent) or {}).get('duplicates')
        _check(checks, 'one answer per request', agent, None, '0 duplicate replies', found, found == 0)
    unmatched = (probe.get('totals') or {}).get('unmatched_replies')
    _check(checks, 'replies to requests it never sent', 'probe', None, 0, unmatched, unmatched == 0)


def evaluate_health(hosts, flipped, control, units, pings, baseline=None, view=None, view_error=None,
                    judge_server=False, probe=None):
    """Judge one checkpoint.

    hosts     hosts in scope
    flipped   agent names whose flag is on (must answer on legacy and unified subjects)
    control   agent names with the flag off (must answer on legacy only)
    units     {host: {agent: {active_state, n_restarts, ...}}} from agent_host_info
    pings     [{agent, via: legacy|unified, hosts: [...], no_responders: bool}] from nats_request
    baseline  {host: {agent: n_restarts}} at the start of the watch; a higher count is a crash
    view      fleet_server.fleet_view of the round (judged with judge_server; None: no data)
    probe     the nats_probe result whose replies are judged (reply_checks), when given
    """
    checks = []
    baseline = baseline or {}
    answered = {(p['agent'], p['via']): p for p in pings}
    for agent in list(flipped) + list(control):
        for host in hosts:
            unit = (units.get(host) or {}).get(agent)
            state = unit.get('active_state') if unit else None
            _check(checks, 'unit active', agent, host, 'active', state, state == 'active')
            restarts = unit.get('n_restarts') if unit else None
            before = (baseline.get(host) or {}).get(agent, restarts)
            _check(checks, 'no restarts', agent, host, before, restarts,
                   restarts is not None and before is not None and restarts <= before)
        vias = ('legacy', 'unified') if agent in flipped else ('legacy',)
        for via in vias:
            ping = answered.get((agent, via))
            got = sorted(ping['hosts']) if ping and ping.get('hosts') is not None else None
            for host in hosts:
                _check(checks, 'answers on %s' % via, agent, host, True,
                       None if got is None else host in got, got is not None and host in got)
        if agent in control:
            ping = answered.get((agent, 'unified'))
            _check(checks, 'legacy only (control)', agent, None, 'no responders on unified',
                   None if ping is None else ('no responders' if ping['no_responders'] else ping['hosts']),
                   ping is not None and ping['no_responders'] is True)
    if judge_server:
        server_checks(checks, hosts, flipped, control, view, view_error)
    reply_checks(checks, probe, list(flipped) + list(control))
    return dict(checks=checks, failures=[c for c in checks if not c['ok']])


# --- from the probe to the health checks ---------------------------------------------------------

def probe_pings(probe):
    """The probe's targets as the health checks' pings: per agent and subject, the hosts that
    answered and whether the subject met nobody (no responders on every request)."""
    pings = []
    for agent in (probe or {}).get('agents') or []:
        for via in ('legacy', 'unified'):
            targets = [t for t in probe.get('targets') or [] if t['agent'] == agent['name'] and t['via'] == via]
            if not targets:
                continue
            pings.append(dict(agent=agent['name'], via=via,
                              hosts=sorted({t['host'] for t in targets if t['replies']}),
                              no_responders=all(t['sent'] and t['no_responders'] == t['sent'] for t in targets)))
    return pings


# --- from the observations to the gate's figures --------------------------------------------------

def _pct(value, digits=4):
    return None if value is None else round(value * 100.0, digits)


def _relative_pct(test, reference, digits=3):
    """(test - reference) / reference in %, None without data on either side."""
    if test is None or reference is None or reference <= 0:
        return None
    return round((test - reference) / reference * 100.0, digits)


def _difference(test, reference, digits=3):
    """test - reference, None without data on either side."""
    if test is None or reference is None:
        return None
    return round(test - reference, digits)


def _mean(values):
    values = [v for v in values if v is not None]
    return statistics.fmean(values) if values else None


def _group_p50(instance_p50s):
    """A group's median latency: the median of its instances' p50s, each the probe's HDR estimate
    (the one p50 estimator: the latency_p50 criterion reads the same figures). None when any
    instance has no p50: a group figure is never made from part of the group."""
    if not instance_p50s or any(v is None for v in instance_p50s):
        return None
    return statistics.median(instance_p50s)


def instance_key(agent, host):
    return '%s@%s' % (agent, host)


def _unit(info, host, agent):
    return ((info.get(host) or {}).get('units') or {}).get(agent)


def _elapsed(info, baseline, host):
    now = (info.get(host) or {}).get('sampled_at_uptime')
    then = (baseline.get(host) or {}).get('sampled_at_uptime')
    if now is None or then is None or now <= then:
        return None
    return now - then


def _uptime_pct(unit, elapsed):
    """Share of the watch the unit has been active. systemd keeps only the current activation,
    so time before a restart inside the watch counts as down (a restart fires agent_crash too)."""
    if unit is None or elapsed is None:
        return None
    active = unit.get('active_seconds') if unit.get('active_state') == 'active' else 0.0
    if active is None:
        return None
    return round(min(active, elapsed) / elapsed * 100.0, 4)


def _crashes(unit, before):
    """Automatic restarts since the watch began, plus one if the unit is not active now. A count
    lower than at the start means an operator restarted it by hand: not a crash."""
    if unit is None or before is None or unit.get('n_restarts') is None or before.get('n_restarts') is None:
        return None
    return max(unit['n_restarts'] - before['n_restarts'], 0) + (0 if unit.get('active_state') == 'active' else 1)


def _cpu_pct(unit, before, elapsed):
    """CPU use of one instance over the watch, in % of one CPU; None across a restart."""
    if unit is None or before is None or elapsed is None:
        return None
    now, then = unit.get('cpu_seconds'), before.get('cpu_seconds')
    if now is None or then is None or unit.get('main_pid') != before.get('main_pid') or now < then:
        return None
    return (now - then) / elapsed * 100.0


def _instance(probe_agents, agent, host):
    entry = probe_agents.get(agent) or {}
    return next((i for i in entry.get('instances') or [] if i.get('host') == host), None)


def measure(hosts, test, reference, probe, info, baseline):
    """The gate's measurements for one checkpoint.

    hosts      hosts in scope
    test       agent names under test (flipped in this wave so far)
    reference  agent names they are compared with (the control group, or earlier waves' agents)
    probe      the nats_probe result of this checkpoint (None when the probe failed)
    info       {host: agent_host_info result} now; baseline: the same at the start of the watch

    Returns {per_agent: {'agent@host': {metric: value}}, wave: {metric: value},
             samples: {test: {latency_ms: [...]}, control: {latency_ms: [...]}},
             instance_samples: {latency_ms: {'agent@host': [...]}},
             instance_counts: {rate metric: {'agent@host': (failed, sent)}},
             control_counts: {rate metric: (failed, sent)}}, every figure in
    the units of criteria/default.yml, None where there is no data.
    """
    probe_agents = {a['name']: a for a in (probe or {}).get('agents') or []}
    per_agent = {}
    cpu, memory, latency, p50 = ({'test': [], 'reference': []} for _ in range(4))
    instance_latency = {}  # the test instances' latencies, for the sequential comparison
    instance_counts = {metric: {} for metric in RATE_METRICS}  # and their failed requests
    control_counts = {metric: [0, 0] for metric in RATE_METRICS}
    elapsed_on = {host: _elapsed(info, baseline, host) for host in hosts}
    for side, names in (('test', test), ('reference', reference)):
        for agent in names:
            for host in hosts:
                unit, before, elapsed = _unit(info, host, agent), _unit(baseline, host, agent), elapsed_on[host]
                instance = _instance(probe_agents, agent, host) or {}
                cpu[side].append(_cpu_pct(unit, before, elapsed))
                memory[side].append((unit or {}).get('memory_bytes'))
                latency[side].extend(instance.get('samples_ms') or [])
                for metric in RATE_METRICS:
                    found = request_counts(instance, metric)
                    if found and side == 'test':
                        instance_counts[metric][instance_key(agent, host)] = found
                    elif found:
                        control_counts[metric] = [a + b for a, b in zip(control_counts[metric], found)]
                if side == 'test':
                    instance_latency[instance_key(agent, host)] = list(instance.get('samples_ms') or [])
                lat = instance.get('latency_ms') or {}
                p50[side].append(lat.get('p50'))
                if side != 'test':
                    continue
                # The agent's own publish time where it reports one (the reference agent's status);
                # otherwise the gap between an event's two copies as the probe saw them.
                publish = instance.get('publish_time_ms') or {}
                if not publish.get('count'):
                    publish = (probe_agents.get(agent) or {}).get('copy_gap_ms') or {}
                # Events name their instance only when the agents carry a host header; without one
                # the event figures are the agent type's, judged for each of its instances.
                by_instance = instance.get('events', True) is not None
                events_of = instance if by_instance else probe_agents.get(agent) or {}
                per_agent[instance_key(agent, host)] = dict(
                    uptime_pct=_uptime_pct(unit, elapsed),
                    error_rate_pct=_pct(instance.get('error_rate')),
                    delivery_pct=_pct(instance.get('delivery')),
                    latency_p50_ms=lat.get('p50'),
                    latency_p99_ms=lat.get('p99'),
                    latency_samples=lat.get('count'),
                    dual_publish_success_pct=_pct(events_of.get('dual_publish_success')),
                    unified_share_pct=_pct(events_of.get('unified_share')),
                    events_judged_per=('instance' if by_instance else 'agent type') if probe else None,
                    publish_time_ms=publish.get('p99'),
                    agent_crashes=_crashes(unit, before),
                    journal_errors=(unit or {}).get('journal_errors'),
                    requests=instance.get('sent'))
    loads = [(info.get(h) or {}).get('load_per_cpu') for h in hosts]
    p50_test, p50_reference = _group_p50(p50['test']), _group_p50(p50['reference'])
    wave = dict(
        cpu_overhead_pct=_relative_pct(_mean(cpu['test']), _mean(cpu['reference'])),
        cpu_increase_pct=_difference(_mean(cpu['test']), _mean(cpu['reference'])),
        memory_overhead_pct=_relative_pct(_mean(memory['test']), _mean(memory['reference'])),
        system_load=max(loads) if loads and None not in loads else None,
        latency_p50_degradation_pct=_relative_pct(p50_test, p50_reference),
        latency_p50_increase_ms=_difference(p50_test, p50_reference),
        cpu_pct_test=_mean(cpu['test']), cpu_pct_reference=_mean(cpu['reference']),
        memory_bytes_test=_mean(memory['test']), memory_bytes_reference=_mean(memory['reference']),
        latency_p50_ms_test=p50_test, latency_p50_ms_reference=p50_reference)
    return dict(per_agent=per_agent, wave=wave,
                samples=dict(test=dict(latency_ms=latency['test']), control=dict(latency_ms=latency['reference'])),
                instance_samples=dict(latency_ms=instance_latency), instance_counts=instance_counts,
                control_counts={m: tuple(c) if c[1] else None for m, c in control_counts.items()})


def _cell(value):
    if value is None:
        return 'no data'
    return '{:.6g}'.format(value) if isinstance(value, float) else str(value)


def render_round_summary(head, verdict, gate, health, measurements, reference_kind):
    """The human summary of one checkpoint or monitoring round (summary.md)."""
    lines = ['# %s' % head, '']
    lines += ['- %s' % line for line in [verdict['headline']] + gate['reasons'] + gate['notes']]
    lines += ['- health: %d checks, %d failed' % (len(health['checks']), len(health['failures']))]
    lines += ['  - %s' % describe(c) for c in health['failures']]
    lines += ['', '## Criteria', '', '| kind | criterion | instance | measured | limit | result |',
              '|---|---|---|---|---|---|']
    for row in gate['criteria']:
        if row['kind'] == 'rollback_trigger':
            result = 'no data' if row['fired'] is None else ('**FIRED**' if row['fired'] else 'quiet')
        else:
            result = 'pass' if row['passed'] else ('**FAIL**' if row['kind'] == 'primary' else 'fail (info)')
        measured = '%s %s' % (_cell(row['measured']), row['unit'])
        if row.get('samples') is not None:  # a latency percentile: of how many latencies
            measured += ' (n=%d%s)' % (row['samples'], ', too few' if row['too_few'] else '')
        limit = '%s %s' % (row['comparator'], row['threshold'])
        for word, second in (('and', row.get('also')), ('or', row.get('alternative'))):
            if second:  # the second condition, asked only once the first holds (and) or fails (or)
                limit += ' %s %s %s %s %s' % (word, second['metric'], second['comparator'], second['threshold'],
                                              second['unit'])
                if second['measured'] is not None:
                    measured += ', %s %s' % (_cell(second['measured']), second['unit'])
        lines.append('| %s | %s | %s | %s | %s | %s |' % (
            row['kind'], row['name'], row['agent'] or 'wave', measured, limit, result))
    sequential = [c for c in gate['comparisons'] if c.get('test') == 'sequential' and c.get('kind') != 'rate']
    rates = [c for c in gate['comparisons'] if c.get('test') == 'sequential' and c.get('kind') == 'rate']
    if sequential:
        lines += ['', '## Sequential test: each instance against itself before its flip, and the %s' % reference_kind,
                  '', '| metric | instance | median ms (n) | before flip | effect | reference median | '
                  'above tolerated: baseline / reference (bounds) | verdict |', '|---|---|---|---|---|---|---|---|']
        for c in sequential:
            shares = []
            for ref in ('baseline', 'control'):
                counts = c['references'][ref]
                bounds = counts['share_up_bounds']
                shares.append('no data' if not counts['n'] else '%.0f %% (%.0f-%.0f) of %d' % (
                    100 * counts['share_up'], 100 * bounds[0], 100 * bounds[1], counts['n']))
            effect = '-' if c['shift_ms'] is None else '%+.4g ms%s' % (
                c['shift_ms'], '' if c['shift_pct'] is None else ' (%+.3g %%)' % c['shift_pct'])
            lines.append('| %s | %s | %s (%d) | %s | %s | %s | %s | %s |' % (
                c['metric'], c['instance'], _cell(c['median_ms']), c['n_round'], _cell(c['baseline_median_ms']),
                effect, _cell(c['control_median_ms']), ' / '.join(shares), c['verdict']))
    if rates:
        lines += ['', '## Sequential test of rates: failed requests against the instance before its flip, and the %s'
                  % reference_kind, '', '| metric | instance | this round | before flip | reference | '
                  'over the rounds: baseline / reference (evidence) | verdict |', '|---|---|---|---|---|---|---|']
        for c in rates:
            sides = []
            for ref in ('baseline', 'control'):
                counts = c['references'][ref]
                sides.append('no data' if not counts['n'] else '%d of %d (%.3g)' % (
                    counts['failed'], counts['n'], counts['evidence']))
            lines.append('| %s | %s | %d of %d (%s %%) | %s %% | %s %% | %s | %s |' % (
                c['metric'], c['instance'], c['failed'], c['sent'], _cell(c['rate_pct']), _cell(c['baseline_rate_pct']),
                _cell(c['control_rate_pct']), ' / '.join(sides), c['verdict']))
    ranked = [c for c in gate['comparisons'] if c.get('test') != 'sequential']
    if ranked or not (sequential or rates):
        lines += ['', '## Test vs %s' % reference_kind, '',
                  '| metric | n test | n reference | p | effect r | medians apart | verdict |',
                  '|---|---|---|---|---|---|---|']
    for c in ranked:
        lines.append('| %s | %d | %d | %s | %s | %s | %s |' % (
            c['metric'], c['n_test'], c['n_control'], _cell(c['p']), _cell(c['effect']), _cell(c.get('shift')),
            c['verdict']))
    wave = measurements['wave']
    lines += ['', 'CPU %% of one core, test / reference: %s / %s. Memory bytes: %s / %s. Median latency ms: %s / %s.'
              % tuple(_cell(wave[k]) for k in ('cpu_pct_test', 'cpu_pct_reference', 'memory_bytes_test',
                                                'memory_bytes_reference', 'latency_p50_ms_test',
                                                'latency_p50_ms_reference')), '']
    return '\n'.join(lines)


# --- one round, judged ------------------------------------------------------------------------------

def triggers_only(criteria):
    """A monitoring round judges the rollback triggers only; criteria and a fixed-alpha comparison are
    for the scheduled checkpoints. A sequential comparison is judged every round: it may be."""
    comparison = criteria['comparison']
    return dict(criteria, primary=[], secondary=[],
                comparison=comparison if comparison.get('test') == 'sequential' else dict(comparison, metrics=[]))


def _probe(args):
    """The probe's measurements and why there are none: a failed nats_probe (registered with
    failed_when: false) carries no agents."""
    probe, error = args.get('probe') or None, args.get('probe_error')
    if probe is not None and 'agents' not in probe:
        return None, error or probe.get('msg') or 'the probe returned no measurements'
    if probe is not None:  # keep the measurements, not the task's bookkeeping
        probe = {k: v for k, v in probe.items() if k not in ('invocation', 'changed', 'failed', 'failed_when_result')}
    return probe, error


def _server(args):
    """The server's view of the round (fleet_server.fleet_view) and why there is none; not judged
    (None, None) when the caller names no agents (the playbooks always do)."""
    if not args.get('agents'):
        return None, None
    server = args.get('server') or None
    if server is None or 'connections' not in server:
        return None, args.get('server_error') or (server or {}).get('msg') or 'the monitoring endpoint was not read'
    return fleet_view(server, args['info'] or {}, args['agents'], args['hosts'], args.get('complete', True)), None


def judge_sequential(settings, measurements, args, before):
    """Judge this round's sequential comparison into measurements['sequential'] (fleet_gate reads it)
    and return the counts after it, for the next round ({metric: {instance: counts}}); None when the
    criteria use a fixed-alpha test. before: the counts the run's last round left (None at its first);
    args: latency_baseline ({instance: median before its flip}), request_baseline ({instance: its pre-flip
    probe counters}, for rates), tested (instances the wave tests in all)."""
    if settings.get('test') != 'sequential':
        return None
    before = before or {}
    metrics = settings.get('metrics') or []
    # alpha is shared by every instance and every compared metric: the false alarm over the wave stays alpha.
    tested = (args.get('tested') or len(args['test']) * len(args['hosts'])) * max(1, len(metrics))
    tolerance = settings.get('tolerance', DEFAULT_TOLERANCE)
    state, judged = {}, {}
    for spec in metrics:
        metric = spec['metric']
        if metric in RATE_METRICS:
            # Rates are counted: the pre-flip probe's counters and the reference group's, summed.
            baselines = {instance: request_counts(counters, metric)
                         for instance, counters in (args.get('request_baseline') or {}).items()}
            state[metric], judged[metric] = compare_rates(
                before.get(metric), (measurements.get('instance_counts') or {}).get(metric) or {},
                {i: b for i, b in baselines.items() if b}, (measurements.get('control_counts') or {}).get(metric),
                tolerance, spec.get('min_shift', 0) / 100.0, settings['alpha'], tested)
            continue
        samples = (measurements.get('instance_samples') or {}).get(metric) or {}
        control = ((measurements.get('samples') or {}).get('control') or {}).get(metric) or []
        baselines = (args.get('latency_baseline') or {}) if metric == 'latency_ms' else {}
        state[metric], judged[metric] = compare_instances(
            before.get(metric), samples, baselines, control, tolerance,
            spec.get('min_shift', 0), settings['alpha'], tested, by_round=settings.get('count') == 'round')
        if metric != 'latency_ms':
            continue
        worse = 'degraded' if spec.get('worse', 'higher') == 'higher' else 'improved'
        for row in judged[metric]:
            # The performance_degradation trigger's figures: how far the instance's median moved from
            # its own before its flip, and whether the test finds it worse (a noisy round alone is not).
            measurements['per_agent'].setdefault(row['instance'], {}).update(
                latency_degradation_pct=row['shift_pct'],
                latency_degraded=None if row['verdict'] == 'no data' else int(row['verdict'] == worse))
    measurements['sequential'] = judged
    return state


def judge_round(args, sequential_state=None):
    """Judge one checkpoint or monitoring round (args as wave_checkpoint takes them; sequential_state:
    the sequential comparison's counts the run's last judged round left, from its journal). Returns
    result (what the task returns), decision (decision.json) and files (the folder's content)."""
    detected = time.time()  # every observation is in hand: what it shows is known from now
    criteria = load_criteria(args['criteria'], args.get('criteria_file') or '<criteria>')
    monitoring = args.get('kind') == 'monitor'
    hosts, info, baseline = args['hosts'], args['info'] or {}, args['baseline'] or {}
    probe, probe_error = _probe(args)
    measurements = measure(hosts, args['test'], args['reference'], probe, info, baseline)
    state = judge_sequential(criteria['comparison'], measurements, args, sequential_state)
    gate = evaluate(triggers_only(criteria) if monitoring else criteria, measurements)
    per_type = sorted({key.split('@')[0] for key, f in measurements['per_agent'].items()
                       if f.get('events_judged_per') == 'agent type'})
    if per_type and not monitoring:
        gate['notes'].append('events of %s name no host (no Agent-Host header): their dual publishing and unified '
                             'share are the agent type\'s, judged for each instance' % ', '.join(per_type))
    units = {h: (info.get(h) or {}).get('units') or {} for h in hosts}
    restarts = {h: {a: u.get('n_restarts') for a, u in ((baseline.get(h) or {}).get('units') or {}).items()}
                for h in hosts}
    view, view_error = _server(args)
    health = evaluate_health(hosts, args['test'], args['control'], units, probe_pings(probe), restarts,
                             view=view, view_error=view_error, judge_server=bool(args.get('agents')), probe=probe)
    verdict = decide_round(gate, health, criteria.get('on_trigger', ROLL_BACK),
                           (criteria.get('comparison') or {}).get('on_inconclusive', ASK),
                           probe_error=(probe_error or 'no probe result') if probe is None else None)
    decided = time.time()
    step = 'monitoring round' if monitoring else 'checkpoint'
    folder = Layout.round_dir(args['wave'], args['label'], monitoring)
    reference_kind = args.get('reference_kind') or 'control'
    decision = dict(
        wave=args['wave'], phase=args['phase'], label=args['label'], step=step, run_id=args['run_id'],
        detected_at=utc(detected), decided_at=utc(decided), outcome=verdict['outcome'],
        next_step=verdict['next_step'], headline=verdict['headline'], reasons=verdict['reasons'],
        criteria_file=args.get('criteria_file'), test=args['test'], reference=args['reference'],
        reference_kind=reference_kind, criteria=gate['criteria'], comparisons=gate['comparisons'],
        health=health['checks'], sequential_state=state)
    head = '%s %s %s: %s' % (args['wave'], step, args['label'], verdict['outcome'])
    files = {
        'observations.json': dict(hosts=info, baseline=baseline, probe=probe, probe_error=probe_error,
                                  server_view=view, server_error=view_error),
        'measurements.json': dict(per_agent=measurements['per_agent'], wave=measurements['wave'],
                                  samples={side: {m: len(v) for m, v in metrics.items()}
                                           for side, metrics in measurements['samples'].items()}),
        'comparison.json': dict(test=args['test'], reference=args['reference'], reference_kind=reference_kind,
                                comparisons=gate['comparisons'], wave=measurements['wave']),
        'decision.json': decision,
        'summary.md': render_round_summary(head, verdict, gate, health, measurements, reference_kind),
    }
    result = dict(outcome=verdict['outcome'], next_step=verdict['next_step'], reasons=verdict['reasons'],
                  folder=folder, step=step, detected_epoch=detected, decided_epoch=decided,
                  detected_at=decision['detected_at'], decided_at=decision['decided_at'],
                  fired=sorted({r['name'] for r in gate['criteria'] if r['fired']}),
                  measured=measurements['per_agent'], wave_figures=measurements['wave'])
    return dict(result=result, decision=decision, files=files, monitoring=monitoring)
