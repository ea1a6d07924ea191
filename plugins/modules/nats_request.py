#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import annotations

DOCUMENTATION = r'''
---
module: nats_request
short_description: Send one NATS request and gather every reply within a window
description:
  - Publishes one request on O(subject) with a private reply inbox and collects every reply
    that arrives within O(timeout) seconds (scatter-gather), so that the answers of all
    instances of an agent type are seen, not only the fastest.
  - Replies are attributed to hosts by the C(Agent-Host) header, or the C(host) field of a
    JSON reply.
  - Optional expectations turn the answer into a check - which hosts must answer, which must
    not, or that nobody listens at all (the server's "no responders" status).
  - Runs on the controller (use C(delegate_to) localhost); it never changes anything.
version_added: "0.1.0"
author: fleetwave maintainers
extends_documentation_fragment:
  - fleetwave.rollout.nats
options:
  subject:
    description: Subject to send the request to.
    type: str
    required: true
  payload:
    description: Request body; a dict or list is sent as JSON.
    type: raw
    default: ''
  headers:
    description: NATS headers to send, e.g. C(Agent-Target) to address one instance.
    type: dict
    default: {}
  timeout:
    description: Seconds to gather replies, in (0, 300].
    type: float
    default: 2.0
  expect_replies:
    description: >-
      Stop gathering as soon as this many replies have arrived (0 = wait the whole O(timeout)), in
      [0, 10,000].
    type: int
    default: 0
  expect_hosts:
    description: Hosts that must answer; the module fails naming each one that did not.
    type: list
    elements: str
    default: []
  forbid_hosts:
    description: Hosts that must not answer; the module fails naming each one that did.
    type: list
    elements: str
    default: []
  expect_no_responders:
    description:
      - When true, succeed only if the server reports that nobody subscribes to O(subject).
      - When false (the default) a "no responders" answer is reported, and fails the module only if O(expect_hosts) is set.
    type: bool
    default: false
notes:
  - Supports check mode (the request is read-only and is sent in check mode too).
requirements:
  - nats-py on the controller
'''

EXAMPLES = r'''
- name: Ensure dgx-1's network-expert answers on the unified subject
  fleetwave.rollout.nats_request:
    url: "{{ fleet_nats_controller_url }}"
    subject: agents.infrastructure.01936f88-d2a9-7000-8000-000000000008.cmd.ping
    headers:
      Agent-Target: dgx-1
    expect_hosts: [dgx-1]
    expect_replies: 1
  delegate_to: localhost

- name: Ensure nobody answers on the unified subject after a rollback
  fleetwave.rollout.nats_request:
    url: "{{ fleet_nats_controller_url }}"
    subject: agents.infrastructure.01936f88-d2a9-7000-8000-000000000008.cmd.ping
    expect_no_responders: true
  delegate_to: localhost
'''

RETURN = r'''
replies:
  description: Every reply received, in arrival order.
  returned: always
  type: list
  elements: dict
  sample: [{"host": "dgx-1", "latency_ms": 1.4, "headers": {"Agent-Host": "dgx-1"}, "data": {"ok": true, "unified": true}}]
hosts:
  description: Hosts that answered, sorted.
  returned: always
  type: list
  elements: str
  sample: ["dgx-1", "dgx-2"]
no_responders:
  description: Whether the server reported that nobody subscribes to the subject.
  returned: always
  type: bool
  sample: false
elapsed_ms:
  description: Milliseconds from sending the request to the end of gathering.
  returned: always
  type: float
  sample: 2001.7
subject:
  description: The subject the request was sent to.
  returned: always
  type: str
  sample: agent.network-expert.cmd.ping
'''

import asyncio
import json
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_limits import out_of_range
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_nats import (
    NATS_ARGUMENT_SPEC, check_nats_library, connect, is_no_responders, protect_secrets, redact_url, run_or_fail)


def _decode(data):
    try:
        return json.loads(data.decode('utf-8'))
    except (UnicodeDecodeError, ValueError):
        return data.decode('utf-8', errors='replace')


async def gather(params):
    nc = await connect(params)
    try:
        replies, no_responders = [], False
        enough = asyncio.Event()
        payload = params['payload']
        if not isinstance(payload, (str, bytes)):
            payload = json.dumps(payload)
        if isinstance(payload, str):
            payload = payload.encode('utf-8')

        async def on_reply(msg):
            nonlocal no_responders
            if is_no_responders(msg):
                no_responders = True
                enough.set()
                return
            data = _decode(msg.data)
            headers = dict(msg.headers or {})
            host = headers.get('Agent-Host') or (data.get('host') if isinstance(data, dict) else None)
            replies.append(dict(host=host, headers=headers, data=data,
                                latency_ms=round((time.monotonic() - sent) * 1000.0, 3)))
            if params['expect_replies'] and len(replies) >= params['expect_replies']:
                enough.set()

        inbox = nc.new_inbox()
        await nc.subscribe(inbox, cb=on_reply)
        sent = time.monotonic()
        await nc.publish(params['subject'], payload, reply=inbox, headers=params['headers'] or None)
        await nc.flush(timeout=params['connect_timeout'])
        try:
            await asyncio.wait_for(enough.wait(), params['timeout'])
        except asyncio.TimeoutError:
            pass
        elapsed_ms = round((time.monotonic() - sent) * 1000.0, 3)
        return replies, no_responders, elapsed_ms
    finally:
        await nc.close()


def check_expectations(params, hosts, no_responders, anonymous=0):
    """Return the failure message, or None when every expectation holds. anonymous: replies that
    named no host, said apart from silence so that an agent without the header is not called dead."""
    where = 'on %s via %s within %.1f s' % (params['subject'], redact_url(params['url']), params['timeout'])
    if params['expect_no_responders'] and not no_responders:
        return 'expected no responders %s, but %s answered' % (where, ', '.join(hosts) or 'somebody (a subscriber exists)')
    missing = [h for h in params['expect_hosts'] if h not in hosts]
    if missing:
        why = ' (the server reports no responders)' if no_responders else ''
        if anonymous:
            why = (': %d repl%s came, but nothing in %s names its host (no Agent-Host header, no host field);'
                   ' prove the instance from the server\'s view instead' % (
                       anonymous, 'y' if anonymous == 1 else 'ies', 'it' if anonymous == 1 else 'them'))
        return 'no reply from %s %s%s' % (', '.join(missing), where, why)
    unwanted = [h for h in params['forbid_hosts'] if h in hosts]
    if unwanted:
        return 'unexpected reply from %s %s' % (', '.join(unwanted), where)
    return None


def main():
    module = AnsibleModule(
        argument_spec=NATS_ARGUMENT_SPEC | dict(
            subject=dict(type='str', required=True),
            payload=dict(type='raw', default=''),
            headers=dict(type='dict', default={}),
            timeout=dict(type='float', default=2.0),
            expect_replies=dict(type='int', default=0),
            expect_hosts=dict(type='list', elements='str', default=[]),
            forbid_hosts=dict(type='list', elements='str', default=[]),
            expect_no_responders=dict(type='bool', default=False),
        ),
        supports_check_mode=True,
    )
    check_nats_library(module)
    protect_secrets(module)
    params = module.params
    # Before connecting: inf or NaN would wait forever or fail deep inside asyncio.
    for name in ('connect_timeout', 'timeout', 'expect_replies'):
        bad = out_of_range(name, params[name])
        if bad:
            module.fail_json(msg='%s %s' % (name, bad), subject=params['subject'])
    params['headers'] = {str(k): str(v) for k, v in params['headers'].items()}
    replies, no_responders, elapsed_ms = run_or_fail(module, gather(params), 'request on %s' % params['subject'],
                                                     subject=params['subject'])

    hosts = sorted({r['host'] for r in replies if r['host']})
    result = dict(changed=False, replies=replies, hosts=hosts, no_responders=no_responders,
                  elapsed_ms=elapsed_ms, subject=params['subject'])
    failure = check_expectations(params, hosts, no_responders, sum(1 for r in replies if not r['host']))
    if failure:
        module.fail_json(msg=failure, **result)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
