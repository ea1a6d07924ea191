#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import annotations

DOCUMENTATION = r'''
---
module: agent_host_info
short_description: Report the state of agent units on a host
description:
  - For each agent, reads its systemd unit C(<unit_prefix>@<agent>.service) - one
    C(systemctl show) for all the units - active state, main PID, restart count, how long it has been active,
    CPU time used and memory in use - and the host's load average, CPU count and sampling times.
  - CPU and memory come from the unit's cgroup (C(CPUUsageNSec), C(MemoryCurrent)) when systemd
    accounts for it; otherwise (cgroup v1 without delegation, accounting off) from
    C(/proc/<MainPID>/stat) and C(/proc/<MainPID>/status), which cover the main process only.
  - Two samples give the unit's CPU share in between - the difference of C(cpu_seconds) over the
    difference of C(sampled_at_uptime) - as long as C(main_pid) and C(metrics_source) are unchanged.
  - With O(since), also counts each unit's journal entries of priority C(err) or worse since then.
  - Lists the established TCP connections of each running unit's processes (its main process and
    their descendants) from C(/proc). The local address and port of each is how the NATS server
    (C(/connz)) sees that client, so the server's view of each instance can be joined to its unit
    without anything from the agent itself.
  - Read-only; never changes anything.
version_added: "0.1.0"
author: fleetwave maintainers
options:
  agents:
    description: Agent names.
    type: list
    elements: str
    required: true
  unit_prefix:
    description: Units are named C(<unit_prefix>@<agent>.service).
    type: str
    default: agent
  since:
    description:
      - Epoch seconds (fractions allowed). When given, the units' journal is read from this
        time on with one C(journalctl -u <unit> -u <unit>... -p err) and each unit's error entries
        counted and sampled.
      - When not given, the journal is not read and the journal fields are null.
    type: float
notes:
  - Supports check mode.
  - Reading the system journal needs root or membership of C(systemd-journal) (use C(become));
    without it journalctl finds no entries and reports no error.
'''

EXAMPLES = r'''
- name: Read the state of the wave's agent units
  fleetwave.rollout.agent_host_info:
    agents: [network-expert, tdd-expert]
  register: __units

- name: Read them again with the journal errors since the watch started
  fleetwave.rollout.agent_host_info:
    agents: [network-expert, tdd-expert]
    since: "{{ _wave_watch_t0 }}"
  register: __units
'''

RETURN = r'''
units:
  description:
    - Per agent, the unit's state.
    - C(unit) (str), C(load_state) (str), C(active_state) (str), C(sub_state) (str),
      C(main_pid) (int), C(n_restarts) (int), C(active_seconds) (float, null unless active).
    - C(cpu_seconds) (float) - CPU time the unit (cgroup) or its main process (proc) has used so far.
    - C(memory_bytes) (int) - memory in use by the unit (cgroup C(MemoryCurrent)) or the main
      process's resident set (proc C(VmRSS)).
    - C(metrics_source) (str) - C(cgroup) or C(proc) for where both figures came from, C(mixed)
      when one came from each, null when there is no figure (unit not active, no main PID,
      process gone); the figures are then null too.
    - C(journal_errors) (int) - entries of priority C(err) or worse since O(since); null without
      O(since) or when journalctl is missing or fails.
    - C(journal_error_sample) (list of str) - the last up to 5 of their messages, each cut to
      200 characters; null when C(journal_errors) is.
    - C(journal_error_note) (str) - why C(journal_errors) is null although O(since) was given;
      null otherwise.
    - C(sockets) (list of dict) - the established TCP connections of the unit's processes, each
      C(local_ip), C(local_port), C(remote_ip), C(remote_port) (IPv4-mapped IPv6 addresses as IPv4);
      empty when the unit is not running.
    - C(sockets_error) (str) - why C(sockets) could not be read (e.g. not root); null otherwise.
  returned: always
  type: dict
  sample:
    network-expert:
      unit: agent@network-expert.service
      load_state: loaded
      active_state: active
      sub_state: running
      main_pid: 4242
      n_restarts: 0
      active_seconds: 361.2
      cpu_seconds: 0.27
      memory_bytes: 31113216
      metrics_source: proc
      journal_errors: 1
      journal_error_sample: ["ERROR reference-agent: lost connection to nats://127.0.0.1:4222"]
      journal_error_note: null
      sockets: [{local_ip: 127.0.0.1, local_port: 40422, remote_ip: 127.0.0.1, remote_port: 4222}]
      sockets_error: null
load:
  description: The host's 1, 5 and 15 minute load averages.
  returned: always
  type: list
  elements: float
  sample: [0.12, 0.08, 0.02]
ncpu:
  description: The host's CPU count (C(os.cpu_count())); null if unknown.
  returned: always
  type: int
  sample: 8
load_per_cpu:
  description: The 1 minute load average divided by RV(ncpu), rounded to 3 digits; null if RV(ncpu) is.
  returned: always
  type: float
  sample: 0.015
sampled_at_epoch:
  description: When the sample was taken, in epoch seconds (the host's clock).
  returned: always
  type: float
  sample: 1795477318.52
sampled_at_uptime:
  description: When the sample was taken, in seconds since the host booted (C(/proc/uptime)); the
    base for CPU shares between two samples, unaffected by clock changes.
  returned: always
  type: float
  sample: 1000.5
'''

import json
import math
import os
import socket
import sys
import time

from ansible.module_utils.basic import AnsibleModule

PROPERTIES = ('ActiveState', 'SubState', 'MainPID', 'NRestarts', 'ActiveEnterTimestampMonotonic', 'LoadState',
              'CPUUsageNSec', 'MemoryCurrent')
# systemd prints "[not set]" for a figure it does not account; some versions print UINT64_MAX instead.
UNSET = 2 ** 64 - 1
SAMPLE_SIZE = 5
SAMPLE_CHARS = 200


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _accounted(value):
    """A systemd accounting figure, or None when systemd does not have one."""
    value = _int(value)
    return None if value is None or value == UNSET else value


def _read(path):
    try:
        # A command name need not be valid UTF-8.
        with open(path, errors='replace') as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def proc_cpu_seconds(pid):
    """utime + stime of a process from /proc/<pid>/stat, or None when it cannot be read."""
    stat = _read('/proc/%d/stat' % pid)
    if stat is None or ')' not in stat:
        return None
    # The command name (field 2) is in parentheses and may hold spaces and ')': the fields after
    # it start after the last ')', with the state (field 3) first, so utime and stime (fields 14
    # and 15) are at 11 and 12.
    fields = stat[stat.rindex(')') + 1:].split()
    try:
        ticks = int(fields[11]) + int(fields[12])
    except (IndexError, ValueError):
        return None
    return ticks / float(os.sysconf('SC_CLK_TCK'))


def proc_memory_bytes(pid):
    """VmRSS of a process from /proc/<pid>/status in bytes, or None (gone, or a kernel thread)."""
    status = _read('/proc/%d/status' % pid)
    for line in (status or '').splitlines():
        if line.startswith('VmRSS:'):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024
    return None


def unit_metrics(props, active, pid):
    """(cpu_seconds, memory_bytes, metrics_source): the cgroup's figures where systemd has them,
    the main process's from /proc otherwise, all None when the unit is not running."""
    if active != 'active':
        return None, None, None
    sources = []
    cpu = _accounted(props.get('CPUUsageNSec'))
    if cpu is not None:
        cpu = cpu / 1e9
        sources.append('cgroup')
    elif pid:
        cpu = proc_cpu_seconds(pid)
        if cpu is not None:
            sources.append('proc')
    memory = _accounted(props.get('MemoryCurrent'))
    if memory is not None:
        sources.append('cgroup')
    elif pid:
        memory = proc_memory_bytes(pid)
        if memory is not None:
            sources.append('proc')
    source = None if not sources else sources[0] if len(set(sources)) == 1 else 'mixed'
    return cpu, memory, source


TCP_ESTABLISHED = '01'


def _hex_address(text):
    """An address of /proc/net/tcp{,6} ("0100007F:0FA6"): (ip, port). The kernel prints the IP as
    32-bit words in host byte order; an IPv4-mapped IPv6 address is given as plain IPv4."""
    ip_hex, port_hex = text.split(':')
    raw = bytes.fromhex(ip_hex)
    if sys.byteorder == 'little':
        raw = b''.join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, raw)
    else:
        ip = socket.inet_ntop(socket.AF_INET6, raw)
        if ip.startswith('::ffff:') and '.' in ip:
            ip = ip[len('::ffff:'):]
    return ip, int(port_hex, 16)


def process_children():
    """{parent pid: [child pids]} from /proc/<n>/stat (read once per module run, for every unit)."""
    children = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        stat = _read('/proc/%s/stat' % entry)
        if stat and ')' in stat:
            fields = stat[stat.rindex(')') + 1:].split()
            if len(fields) > 1 and fields[1].isdigit():
                children.setdefault(int(fields[1]), []).append(int(entry))
    return children


def process_tree(pid, children):
    """pid and every descendant of it."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        if current not in found:
            found.append(current)
            todo.extend(children.get(current, []))
    return found


def _socket_inodes(pid):
    inodes = set()
    for fd in os.listdir('/proc/%d/fd' % pid):
        try:
            target = os.readlink('/proc/%d/fd/%s' % (pid, fd))
        except FileNotFoundError:
            continue  # closed meanwhile
        if target.startswith('socket:['):
            inodes.add(target[len('socket:['):-1])
    return inodes


def unit_sockets(pid, children=None):
    """(sockets, error): the established TCP connections of pid and its descendants, read from
    their fds and their network namespace's /proc/<pid>/net/tcp{,6}; error names what failed.
    children: process_children(), when several units are read at once."""
    sockets = []
    try:
        pids = process_tree(pid, process_children() if children is None else children)
        inodes = set()
        for each in pids:
            try:
                inodes |= _socket_inodes(each)
            except FileNotFoundError:
                continue  # exited meanwhile
        for table in ('tcp', 'tcp6'):
            text = _read('/proc/%d/net/%s' % (pid, table)) or ''
            for line in text.splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == TCP_ESTABLISHED and fields[9] in inodes:
                    (local_ip, local_port), (remote_ip, remote_port) = _hex_address(fields[1]), _hex_address(fields[2])
                    sockets.append(dict(local_ip=local_ip, local_port=local_port,
                                        remote_ip=remote_ip, remote_port=remote_port))
    except PermissionError as exc:
        # Reading another user's fds takes root with CAP_SYS_PTRACE (a real host's root has it; a
        # container's root may not: podman --cap-add SYS_PTRACE).
        return [], 'permission denied reading %s (needs root with CAP_SYS_PTRACE: become)' % exc.filename
    except (OSError, ValueError) as exc:
        return [], 'reading the sockets of PID %d failed: %s' % (pid, exc)
    return sorted(sockets, key=lambda s: (s['local_ip'], s['local_port'])), None


# The fields `journalctl -u` matches a unit on: the unit's own processes, systemd about it, processes
# allowed to log for it, and coredumps of it.
UNIT_FIELDS = ('_SYSTEMD_UNIT', 'UNIT', 'OBJECT_SYSTEMD_UNIT', 'COREDUMP_UNIT')


def _message(entry):
    message = entry.get('MESSAGE')
    if isinstance(message, list):
        # journald gives a message that is not valid UTF-8 as a list of byte values.
        try:
            return bytes(message).decode('utf-8', 'replace')[:SAMPLE_CHARS]
        except (TypeError, ValueError):
            return ''
    # None: no message, or one larger than journalctl prints in JSON without --all.
    return '' if message is None else str(message)[:SAMPLE_CHARS]


def journal_errors(module, journalctl, units, since):
    """{unit: (count, sample, note)}: each unit's journal entries of priority err or worse since
    `since`, from one journalctl call for all of them (a host's journal is read once per sample)."""
    if journalctl is None:
        return dict.fromkeys(units, (None, None, 'journalctl not found on this host'))
    since_arg = '@' + ('%.6f' % since).rstrip('0').rstrip('.')
    args = [journalctl] + [arg for unit in units for arg in ('-u', unit)]
    args += ['--since', since_arg, '-p', 'err', '-o', 'json', '--no-pager', '-q']
    rc, out, err = module.run_command(args)
    if rc != 0:
        note = 'journalctl %s --since %s failed (rc=%d): %s' % (
            ' '.join('-u ' + u for u in units), since_arg, rc, (err.strip() or out.strip())[:SAMPLE_CHARS])
        return dict.fromkeys(units, (None, None, note))
    messages = {unit: [] for unit in units}
    for line in out.splitlines():
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            named = [entry.get(field) for field in UNIT_FIELDS]
        except (ValueError, AttributeError):
            note = 'journalctl printed a line that is not a JSON object: %s' % line[:SAMPLE_CHARS]
            return dict.fromkeys(units, (None, None, note))
        unit = next((n for n in named if n in messages), units[0] if len(units) == 1 else None)
        if unit is not None:  # -u matched it on one of UNIT_FIELDS; a single unit needs no field
            messages[unit].append(_message(entry))
    return {unit: (len(found), found[-SAMPLE_SIZE:], None) for unit, found in messages.items()}


def show_units(module, systemctl, units):
    """{unit: {property: value}} from one `systemctl show` of every unit (a block each, in order)."""
    rc, out, err = module.run_command([systemctl, 'show'] + list(units) + ['--property=' + ','.join(PROPERTIES)])
    if rc != 0:
        module.fail_json(msg='systemctl show %s failed (rc=%d): %s' % (' '.join(units), rc, err.strip()))
    blocks = out.strip('\n').split('\n\n') if out.strip() else []
    if len(blocks) != len(units):
        module.fail_json(msg='systemctl show %s printed %d blocks of properties for %d units: %s' % (
            ' '.join(units), len(blocks), len(units), out.strip()[:SAMPLE_CHARS]))
    return {unit: dict(line.split('=', 1) for line in block.splitlines() if '=' in line)
            for unit, block in zip(units, blocks)}


def read_unit(unit, props, uptime, journal=(None, None, None), children=None):
    """One unit's figures from its properties, its journal errors and its processes' sockets."""
    entered = _int(props.get('ActiveEnterTimestampMonotonic'))
    active = props.get('ActiveState')
    pid = _int(props.get('MainPID'))
    cpu, memory, source = unit_metrics(props, active, pid)
    errors, sample, note = journal
    sockets, sockets_error = unit_sockets(pid, children) if active == 'active' and pid else ([], None)
    return dict(
        unit=unit,
        load_state=props.get('LoadState'),
        active_state=active,
        sub_state=props.get('SubState'),
        main_pid=pid,
        n_restarts=_int(props.get('NRestarts')),
        active_seconds=round(uptime - entered / 1e6, 3) if active == 'active' and entered else None,
        cpu_seconds=cpu,
        memory_bytes=memory,
        metrics_source=source,
        journal_errors=errors,
        journal_error_sample=sample,
        journal_error_note=note,
        sockets=sockets,
        sockets_error=sockets_error,
    )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            agents=dict(type='list', elements='str', required=True),
            unit_prefix=dict(type='str', default='agent'),
            since=dict(type='float'),
        ),
        supports_check_mode=True,
    )
    since = module.params['since']
    if since is not None and not (math.isfinite(since) and since >= 0):
        module.fail_json(msg='since must be a time in epoch seconds (0 or more), got %r' % since)
    systemctl = module.get_bin_path('systemctl', required=True)
    journalctl = module.get_bin_path('journalctl') if since is not None else None
    with open('/proc/uptime') as handle:
        uptime = float(handle.read().split()[0])
    sampled_at = time.time()
    with open('/proc/loadavg') as handle:
        load = [float(x) for x in handle.read().split()[:3]]
    ncpu = os.cpu_count()
    children = process_children()
    names = {a: '%s@%s.service' % (module.params['unit_prefix'], a) for a in module.params['agents']}
    unique = list(dict.fromkeys(names.values()))
    props = show_units(module, systemctl, unique) if unique else {}
    journals = journal_errors(module, journalctl, unique, since) if since is not None and unique else {}
    units = {a: read_unit(unit, props[unit], uptime, journals.get(unit, (None, None, None)), children)
             for a, unit in names.items()}
    module.exit_json(changed=False, units=units, load=load, ncpu=ncpu,
                     load_per_cpu=round(load[0] / ncpu, 3) if ncpu else None,
                     sampled_at_epoch=sampled_at, sampled_at_uptime=uptime)


if __name__ == '__main__':
    main()
