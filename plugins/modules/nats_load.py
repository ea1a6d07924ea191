#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import annotations

DOCUMENTATION = r'''
---
module: nats_load
short_description: Run one load scenario of the readiness run against a NATS request subject
description:
  - Drives one scenario of C(readiness_load_scenarios) (closed model C(constant-vus), C(ramping-vus);
    open model C(constant-arrival-rate), C(ramping-arrival-rate)) against O(subject) with NATS
    requests, and returns the scenario's record - requested vs achieved rate, dropped requests, HDR
    latency percentiles, errors by kind, a time series, and every threshold with its measured value
    over the whole run and over sliding windows. The record's format is documented in
    C(plugins/module_utils/fleet_load.py).
  - Open model - each request is due at its intended time and its latency is measured from that time;
    a request that cannot be sent because O(scenario) C(max_vus) are already in flight is counted as
    dropped, never silently skipped.
  - A reply with an C(Agent-Error) header, or a JSON body whose C(ok) is false, counts as an error
    reply; a timeout, no responders or a broken connection as a failure, by kind.
  - The module judges nothing itself beyond the scenario's thresholds, and fails only when the
    scenario is not valid or NATS cannot be reached; the readiness run's performance gate judges
    the record.
  - Runs on the controller (use C(delegate_to) localhost). In check mode the scenario is validated and
    no request is sent.
version_added: "1.1.0"
author: fleetwave maintainers
extends_documentation_fragment:
  - fleetwave.rollout.nats
options:
  subject:
    description:
      - Subject every request is sent to, e.g. an agent's C(ping) command subject.
      - Exactly one of O(subject) and O(subjects).
    type: str
  subjects:
    description:
      - Subjects the requests go to in turn (request i to subject i modulo their number), to load
        several agents in one scenario, e.g. every agent's C(ping) command subject.
      - Exactly one of O(subject) and O(subjects).
    type: list
    elements: str
  scenario:
    description:
      - The scenario, as one entry of C(readiness_load_scenarios) (format and ranges in
        C(plugins/module_utils/fleet_load.py) and the README's limits table).
    type: dict
    required: true
  name:
    description: The scenario's name, used in the record and in error messages.
    type: str
    default: scenario
  payload:
    description: Request body; a dict or list is sent as JSON.
    type: raw
    default: ''
  headers:
    description: NATS headers sent with every request, e.g. C(Agent-Target) to load one instance.
    type: dict
    default: {}
  timeout:
    description: Seconds one request may wait for its reply, in (0, 300]; a later reply is a timeout.
    type: float
    default: 2.0
notes:
  - Supports check mode (validation only, no request is sent).
requirements:
  - nats-py and hdrh on the controller
'''

EXAMPLES = r'''
- name: Hold 50 requests/s for a minute against network-expert on dgx-1
  fleetwave.rollout.nats_load:
    url: "{{ fleet_nats_controller_url }}"
    subject: agent.network-expert.cmd.ping
    headers:
      Agent-Target: dgx-1
    name: soak
    scenario:
      executor: constant-arrival-rate
      rate: 50
      duration: 60
      max_vus: 100
      thresholds:
        - {name: p99, metric: latency_p99_ms, comparator: "<", threshold: 200, window_seconds: 10}
  delegate_to: localhost
  register: soak
'''

RETURN = r'''
record:
  description:
    - The scenario's record (fleet_load's format), what the performance gate reads; null in check mode.
  returned: always
  type: dict
  sample: {"scenario": "soak", "model": "open", "requested_rate": 50.0, "achieved_rate": 49.98,
           "requests": 3000, "errors": 0, "dropped": 0, "latency_ms": {"p50": 1.2, "p95": 2.1, "p99": 3.4},
           "summary": "soak: open model ..."}
summary:
  description: One line - the load applied (requested vs achieved, dropped), errors, latency, thresholds.
  returned: always
  type: str
  sample: "soak: open model (constant-arrival-rate, max 100 in flight): 3000 requests at 49.98/s, the requested 50/s, none dropped; ..."
subjects:
  description: The subjects the requests were sent to, in turn (also in RV(record.subjects)).
  returned: always
  type: list
  elements: str
  sample: [agent.network-expert.cmd.ping]
'''

import json
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_limits import out_of_range
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_nats import (
    NATS_ARGUMENT_SPEC, check_nats_library, connect, protect_secrets, run_or_fail)
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_probe import HAS_HDRH, HDRH_IMPORT_ERROR, reply_is_error

try:
    from ansible_collections.fleetwave.rollout.plugins.module_utils import fleet_load
    LOAD_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - hdrh missing; reported below
    fleet_load = None
    LOAD_IMPORT_ERROR = traceback.format_exc()


async def run(params):
    nc = await connect(params)
    payload = params['payload']
    if not isinstance(payload, (str, bytes)):
        payload = json.dumps(payload)
    if isinstance(payload, str):
        payload = payload.encode('utf-8')
    headers = params['headers'] or None

    subjects = params['subjects']

    async def send(index):
        # Raises on a timeout, no responders or a broken connection: fleet_load counts each by kind.
        reply = await nc.request(subjects[index % len(subjects)], payload, timeout=params['timeout'], headers=headers)
        return not reply_is_error(reply.headers, reply.data)

    try:
        return await fleet_load.run_scenario(params['scenario'], send, name=params['name'])
    finally:
        await nc.close()


def main():
    module = AnsibleModule(
        argument_spec=NATS_ARGUMENT_SPEC | dict(
            subject=dict(type='str'),
            subjects=dict(type='list', elements='str'),
            scenario=dict(type='dict', required=True),
            name=dict(type='str', default='scenario'),
            payload=dict(type='raw', default=''),
            headers=dict(type='dict', default={}),
            timeout=dict(type='float', default=2.0),
        ),
        mutually_exclusive=[('subject', 'subjects')],
        required_one_of=[('subject', 'subjects')],
        supports_check_mode=True,
    )
    check_nats_library(module)
    if not HAS_HDRH or fleet_load is None:
        module.fail_json(msg=missing_required_lib('hdrh'), exception=HDRH_IMPORT_ERROR or LOAD_IMPORT_ERROR)
    protect_secrets(module)
    params = module.params
    params['subjects'] = [params['subject']] if params['subject'] is not None else params['subjects']
    # Before connecting: every problem of the scenario at once, with where and the allowed range.
    problems = fleet_load.scenario_problems(params['name'], params['scenario'])
    for name in ('connect_timeout', 'timeout'):
        bad = out_of_range(name, params[name])
        if bad:
            problems.append('%s %s' % (name, bad))
    if not params['subjects'] or not all(isinstance(s, str) and s.strip() for s in params['subjects']):
        problems.append('subjects must name at least one subject, none empty (got %r)' % (params['subjects'],))
    if problems:
        module.fail_json(msg='the load scenario is refused (nothing was sent):\n  - ' + '\n  - '.join(problems),
                         problems=problems, subjects=params['subjects'])
    if module.check_mode:
        module.exit_json(changed=False, record=None, subjects=params['subjects'],
                         summary='%s: valid; check mode, no request sent' % params['name'])
    params['headers'] = {str(k): str(v) for k, v in params['headers'].items()}
    shown = ', '.join(params['subjects'][:3]) + (' and %d more' % (len(params['subjects']) - 3)
                                                  if len(params['subjects']) > 3 else '')
    record = run_or_fail(module, run(params), 'load on %s' % shown, subjects=params['subjects'])
    record['subjects'] = params['subjects']
    module.exit_json(changed=False, record=record, summary=record['summary'], subjects=params['subjects'])


if __name__ == '__main__':
    main()
