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
  - Stress keys of the scenario (issue 10, "Stress") - C(payload_bytes) sets the request body's size
    (O(payload) padded with spaces to it; refused before anything is sent when it exceeds the server's
    C(max_payload)); C(connections) spreads the requests over that many NATS connections opened by the
    module, C(connect) C(ahead) (default, before the clock starts) or C(storm) (all at once at the start,
    with C(connect_ms) percentiles and connection failures in the record); executor C(rate-search) finds
    the saturation knee; C(recovery) (C(ramping-arrival-rate)) measures the time back to health after an
    overload; C(slow_consumer) C({subject, pending_limit, delay_ms}) subscribes a deliberately slow
    consumer (a handler sleeping C(delay_ms) per message, at most C(pending_limit) messages queued) on
    its own connection for the scenario and records C(slow_consumer) C({received, dropped, pending, errors})
    - C(dropped) are the messages nats-py discarded with a SlowConsumerError.
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
    description:
      - Request body; a dict or list is sent as JSON.
      - With the scenario's C(payload_bytes), padded with spaces to that size (a longer payload is refused).
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

import asyncio
import json
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_limits import out_of_range
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_nats import (
    NATS_ARGUMENT_SPEC, check_nats_library, connect, protect_secrets, run_or_fail)
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_probe import HAS_HDRH, HDRH_IMPORT_ERROR, reply_is_error

try:
    from nats.errors import SlowConsumerError
except ImportError:  # pragma: no cover - nats-py missing; check_nats_library reports it
    SlowConsumerError = None

try:
    from ansible_collections.fleetwave.rollout.plugins.module_utils import fleet_load
    LOAD_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - hdrh missing; reported below
    fleet_load = None
    LOAD_IMPORT_ERROR = traceback.format_exc()


class Refused(Exception):
    """The scenario cannot run against this server (nothing was sent)."""


def body_of(params):
    """The request body: the payload (JSON for a dict or list), padded with spaces to payload_bytes."""
    payload = params['payload']
    if not isinstance(payload, (str, bytes)):
        payload = json.dumps(payload)
    if isinstance(payload, str):
        payload = payload.encode('utf-8')
    size = params['scenario'].get('payload_bytes')
    if size is not None:
        if len(payload) > size:
            raise Refused('payload_bytes %d is smaller than the payload (%d bytes): nothing was sent'
                          % (size, len(payload)))
        payload += b' ' * (size - len(payload))
    return payload


async def slow_consumer(params, spec, closing):
    """A deliberately slow subscriber on its own connection: its handler sleeps delay_ms per message and
    nats-py queues at most pending_limit; what it discards arrives as SlowConsumerError."""
    nc = await connect(params)
    closing.append(nc)
    counts = dict(received=0, dropped=0, errors=0)
    forward = nc._error_cb  # fleet_nats.connect's recorder; nats-py has no public per-connection hook

    async def on_error(exc):
        if isinstance(exc, SlowConsumerError):
            counts['dropped'] += 1
        else:
            counts['errors'] += 1
            if forward is not None:
                await forward(exc)

    nc._error_cb = on_error
    delay = spec['delay_ms'] / 1000.0

    async def handler(msg):
        counts['received'] += 1
        if delay:
            await asyncio.sleep(delay)

    sub = await nc.subscribe(spec['subject'], cb=handler, pending_msgs_limit=spec['pending_limit'])
    await nc.flush()

    async def result():
        # Every copy the server sent before this round trip is parsed by then - queued, or discarded with
        # its SlowConsumerError scheduled - and the scheduled callbacks run in the pause: none is missed.
        await nc.flush()
        await asyncio.sleep(0.05)
        return dict(subject=spec['subject'], pending_limit=spec['pending_limit'], delay_ms=spec['delay_ms'],
                    received=counts['received'], dropped=counts['dropped'], pending=sub.pending_msgs,
                    errors=counts['errors'])
    return result


async def run(params):
    nc = await connect(params)
    closing = [nc]
    scenario = params['scenario']
    headers = params['headers'] or None
    subjects = params['subjects']
    try:
        payload = body_of(params)
        max_payload = getattr(nc, 'max_payload', None)  # what the server announced (nats-py); None: not known
        if max_payload is not None and len(payload) > max_payload:
            raise Refused("payload_bytes %d (the request body) exceeds the server's max_payload of %d bytes: "
                          "nothing was sent" % (len(payload), max_payload))

        async def send(index, connection=None):
            # Raises on a timeout, no responders or a broken connection: fleet_load counts each by kind.
            reply = await (connection or nc).request(subjects[index % len(subjects)], payload,
                                                     timeout=params['timeout'], headers=headers)
            return not reply_is_error(reply.headers, reply.data)

        async def open_connection(number):
            connection = await connect(params)
            closing.append(connection)
            return connection

        slow = None
        if scenario.get('slow_consumer'):
            slow = await slow_consumer(params, scenario['slow_consumer'], closing)
        spread = 'connections' in scenario or 'connect' in scenario
        record = await fleet_load.run_scenario(scenario, send, name=params['name'], payload_bytes=len(payload),
                                               open_connection=open_connection if spread else None)
        record['max_payload'] = max_payload
        record['slow_consumer'] = (await slow()) if slow else None
        return record
    finally:
        await asyncio.gather(*(connection.close() for connection in closing), return_exceptions=True)


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
    try:
        record = run_or_fail(module, run(params), 'load on %s' % shown, subjects=params['subjects'])
    except Refused as exc:
        module.fail_json(msg='the load scenario is refused: %s' % exc, problems=[str(exc)], subjects=params['subjects'])
    record['subjects'] = params['subjects']
    module.exit_json(changed=False, record=record, summary=record['summary'], subjects=params['subjects'])


if __name__ == '__main__':
    main()
