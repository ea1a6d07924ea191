#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import annotations

DOCUMENTATION = r'''
---
module: agent_host_info
short_description: Report the state of agent units on a host
description:
  - For each agent, reads its systemd unit C(<unit_prefix>@<agent>.service) with
    C(systemctl show) - active state, main PID, restart count, how long it has been active -
    and the host's load average.
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
notes:
  - Supports check mode.
'''

EXAMPLES = r'''
- name: Read the state of the wave's agent units
  agent_host_info:
    agents: [network-expert, tdd-expert]
  register: __units
'''

RETURN = r'''
units:
  description: Per agent, the unit's state.
  returned: always
  type: dict
  sample:
    network-expert:
      unit: agent@network-expert.service
      active_state: active
      sub_state: running
      main_pid: 4242
      n_restarts: 0
      active_seconds: 361.2
load:
  description: The host's 1, 5 and 15 minute load averages.
  returned: always
  type: list
  elements: float
  sample: [0.12, 0.08, 0.02]
'''

from ansible.module_utils.basic import AnsibleModule

PROPERTIES = ('ActiveState', 'SubState', 'MainPID', 'NRestarts', 'ActiveEnterTimestampMonotonic', 'LoadState')


def _int(value):
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def read_unit(module, systemctl, unit, uptime):
    rc, out, err = module.run_command([systemctl, 'show', unit, '--property=' + ','.join(PROPERTIES)])
    if rc != 0:
        module.fail_json(msg='systemctl show %s failed (rc=%d): %s' % (unit, rc, err.strip()))
    props = dict(line.split('=', 1) for line in out.splitlines() if '=' in line)
    entered = _int(props.get('ActiveEnterTimestampMonotonic'))
    active = props.get('ActiveState')
    return dict(
        unit=unit,
        load_state=props.get('LoadState'),
        active_state=active,
        sub_state=props.get('SubState'),
        main_pid=_int(props.get('MainPID')),
        n_restarts=_int(props.get('NRestarts')),
        active_seconds=round(uptime - entered / 1e6, 3) if active == 'active' and entered else None,
    )


def main():
    module = AnsibleModule(
        argument_spec=dict(
            agents=dict(type='list', elements='str', required=True),
            unit_prefix=dict(type='str', default='agent'),
        ),
        supports_check_mode=True,
    )
    systemctl = module.get_bin_path('systemctl', required=True)
    with open('/proc/uptime') as handle:
        uptime = float(handle.read().split()[0])
    with open('/proc/loadavg') as handle:
        load = [float(x) for x in handle.read().split()[:3]]
    units = {a: read_unit(module, systemctl, '%s@%s.service' % (module.params['unit_prefix'], a), uptime)
             for a in module.params['agents']}
    module.exit_json(changed=False, units=units, load=load)


if __name__ == '__main__':
    main()
