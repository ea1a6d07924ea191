# -*- coding: utf-8 -*-
# The NATS server's own view of the fleet: which client connection is which agent instance, and
# what each one is subscribed to. Ground truth no client can forge, and it needs nothing from an
# agent beyond the contract (the env file, the unit, the subjects).
#
# The join: on each host, agent_host_info reads the unit's processes' established TCP sockets
# (local address and port); the server's /connz (nats_server_info) lists every client connection
# by the address and port it sees. Without address translation between them the two are the same
# pair, so a connection is an instance's exactly when its (ip, port) is one of that instance's
# local sockets. Connections that hold an agent's command subject and are no instance of it are
# impostors: they can answer for the agent.

from __future__ import annotations

VERB = 'ping'


def subject_matches(pattern, subject):
    """Whether a subscription `pattern` (NATS wildcards: * one token, > one or more at the end)
    receives messages published on the literal `subject`."""
    wanted, tokens = pattern.split('.'), subject.split('.')
    for index, token in enumerate(wanted):
        if token == '>':
            return len(tokens) > index
        if index >= len(tokens) or (token != '*' and token != tokens[index]):
            return False
    return len(wanted) == len(tokens)


def address(ip, port):
    """(ip, port) in one spelling for both sides: IPv4-mapped IPv6 as IPv4, no brackets."""
    ip = str(ip or '').strip('[]').lower()
    if ip.startswith('::ffff:') and '.' in ip:
        ip = ip[len('::ffff:'):]
    try:
        return ip, int(port)
    except (TypeError, ValueError):
        return ip, None


def _spelt(ip, port):
    return ('[%s]:%s' if ':' in ip else '%s:%s') % (ip, port)


def command_subjects(agent, verb=VERB):
    """{via: the literal subject a command to this agent goes to}: what an instance must hold."""
    return {via: '%s.cmd.%s' % (agent[via], verb) for via in ('legacy', 'unified')}


def _holds(connections, subject):
    return any(subject_matches(s['subject'], subject) for c in connections for s in c.get('subscriptions') or [])


def describe_connection(conn):
    """'cid 12 "name" from 127.0.0.1:40422 (python3 2.9.0)': how a report names a connection."""
    name = ' "%s"' % conn['name'] if conn.get('name') else ''
    client = ' (%s %s)' % (conn.get('lang') or '?', conn.get('version') or '?') if conn.get('lang') else ''
    return 'cid %s%s from %s%s' % (conn.get('cid'), name, _spelt(*address(conn.get('ip'), conn.get('port'))), client)


def _instance_problem(agent, unit, sockets, mine, subjects, unified_enabled):
    """Why the server's view does not show this instance as it should be, in words; None if it does."""
    if not unit:
        return 'its unit was not read'
    if unit.get('active_state') != 'active' or not unit.get('main_pid'):
        return 'its unit is %s (no running process to connect)' % (unit.get('active_state') or 'unknown')
    if unit.get('sockets_error'):
        return 'its sockets could not be read: %s' % unit['sockets_error']
    if not sockets:
        return 'its process (PID %s) has no established TCP connection' % unit.get('main_pid')
    if not mine:
        return ('its process (PID %s) has TCP connection(s) from %s, none of which the NATS server lists as a client'
                % (unit.get('main_pid'), ', '.join(_spelt(*s) for s in sorted(sockets, key=str))))
    held = sorted({s['subject'] for c in mine for s in c['subscriptions']})
    cids = ', '.join(str(c.get('cid')) for c in mine)
    if not _holds(mine, subjects['legacy']):
        return 'connected (cid %s) but not subscribed to %s (its subscriptions: %s)' % (
            cids, subjects['legacy'], ', '.join(held) or 'none')
    if unified_enabled is True and not _holds(mine, subjects['unified']):
        return 'connected (cid %s) but not subscribed to its unified subject %s (its subscriptions: %s)' % (
            cids, subjects['unified'], ', '.join(held) or 'none')
    if unified_enabled is False and _holds(mine, subjects['unified']):
        return 'subscribed to its unified subject %s although its flag is off (cid %s)' % (subjects['unified'], cids)
    return None


def fleet_view(connz, info, agents, hosts, complete=True, verb=VERB):
    """Join the server's connections with the agent units' sockets.

    connz     nats_server_info's result: {connections: [{cid, ip, port, name, subscriptions: [{subject,
              queue, msgs}], ...}]}, each connection already in the one shape that module gives it
    info      {host: agent_host_info result}: units[agent].sockets = [{local_ip, local_port, ...}]
    agents    [{name, legacy, unified, unified_enabled}] (nats_probe's agents; unified_enabled None:
              the unified subscription is not judged)
    hosts     the hosts whose instances are judged
    complete  whether `info` covers every host the agents run on: only then is a connection that is
              no instance an impostor; otherwise (a --limit run) it is listed as unattributed
    Returns {instances: {'agent@host': {...}}, impostors: [...], unattributed: [...], problems: [...]}.
    """
    connections = [dict(c, subscriptions=c.get('subscriptions') or []) for c in (connz or {}).get('connections') or []]
    by_address = {address(c.get('ip'), c.get('port')): c for c in connections}
    owned, instances, problems = set(), {}, []
    for agent in agents:
        subjects = command_subjects(agent, verb)
        # None: the flag is not known here, so the unified subscription is reported, not judged.
        enabled = agent.get('unified_enabled')
        enabled = None if enabled is None else bool(enabled)
        for host in hosts:
            unit = (((info or {}).get(host) or {}).get('units') or {}).get(agent['name'])
            sockets = [address(s.get('local_ip'), s.get('local_port')) for s in (unit or {}).get('sockets') or []]
            mine = [by_address[s] for s in sockets if s in by_address]
            owned.update(c['cid'] for c in mine)
            problem = _instance_problem(agent, unit, sockets, mine, subjects, enabled)
            key = '%s@%s' % (agent['name'], host)
            instances[key] = dict(
                agent=agent['name'], host=host, pid=(unit or {}).get('main_pid'), unified_enabled=enabled,
                connections=[dict(c, subscriptions=[s['subject'] for s in c['subscriptions']]) for c in mine],
                legacy_subscribed=_holds(mine, subjects['legacy']) if mine else None,
                unified_subscribed=_holds(mine, subjects['unified']) if mine else None,
                in_msgs=sum(c.get('in_msgs') or 0 for c in mine) if mine else None,
                out_msgs=sum(c.get('out_msgs') or 0 for c in mine) if mine else None,
                ok=problem is None, problem=problem)
            if problem:
                problems.append('%s: %s' % (key, problem))
    strangers = []
    for conn in connections:
        if conn['cid'] in owned:
            continue
        held = {}
        for agent in agents:
            for via, subject in command_subjects(agent, verb).items():
                matched = [s['subject'] for s in conn['subscriptions'] if subject_matches(s['subject'], subject)]
                if matched:
                    held.setdefault(agent['name'], set()).update(matched)
        if held:
            strangers.append(dict(conn, agents=sorted(held), subscriptions=sorted(set().union(*held.values())),
                                  described=describe_connection(conn)))
    impostors, unattributed = (strangers, []) if complete else ([], strangers)
    for stranger in impostors:
        problems.append('impostor: %s holds %s of %s, and is no instance of %s'
                        % (stranger['described'], ', '.join(stranger['subscriptions']),
                           ', '.join(stranger['agents']), 'it' if len(stranger['agents']) == 1 else 'them'))
    return dict(instances=instances, impostors=impostors, unattributed=unattributed, problems=problems,
                complete=bool(complete), server=(connz or {}).get('server'))
