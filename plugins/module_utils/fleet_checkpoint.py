# -*- coding: utf-8 -*-
# Health checkpoints: what was observed on the hosts (systemd) and on NATS (requests), judged
# check by check. Each check keeps its expected and measured value, so the decision can be
# read back from the artifact; a check with no observation fails (no data is never a pass).

from __future__ import annotations

GO, NO_GO = 'GO', 'NO-GO'


def _check(checks, name, agent, host, expected, measured, ok):
    checks.append(dict(check=name, agent=agent, host=host, expected=expected, measured=measured, ok=bool(ok)))


def evaluate_health(hosts, flipped, control, units, pings, baseline=None):
    """Judge one checkpoint.

    hosts     hosts in scope
    flipped   agent names whose flag is on (must answer on legacy and unified subjects)
    control   agent names with the flag off (must answer on legacy only)
    units     {host: {agent: {active_state, n_restarts, ...}}} from agent_host_info
    pings     [{agent, via: legacy|unified, hosts: [...], no_responders: bool}] from nats_request
    baseline  {host: {agent: n_restarts}} at the start of the watch; a higher count is a crash
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
    failures = [c for c in checks if not c['ok']]
    return dict(decision=GO if checks and not failures else NO_GO, checks=checks, failures=failures)


def describe(check):
    where = ' on %s' % check['host'] if check['host'] else ''
    return '%s %s%s: expected %s, measured %s' % (check['agent'], check['check'], where,
                                                   check['expected'], check['measured'])


def render_summary(wave, label, taken_at, result):
    lines = ['# %s %s: %s' % (wave, label, result['decision']), '',
             'Taken at %s. %d checks, %d failed.' % (taken_at, len(result['checks']), len(result['failures'])), '']
    if result['failures']:
        lines += ['## Failed', ''] + ['- %s' % describe(c) for c in result['failures']] + ['']
    lines += ['## Checks', '', '| agent | host | check | expected | measured | ok |', '|---|---|---|---|---|---|']
    lines += ['| %s | %s | %s | %s | %s | %s |' % (c['agent'], c['host'] or '-', c['check'], c['expected'],
                                                   c['measured'], 'yes' if c['ok'] else '**NO**')
              for c in result['checks']]
    return '\n'.join(lines) + '\n'
