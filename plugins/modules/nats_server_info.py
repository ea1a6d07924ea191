#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import annotations

DOCUMENTATION = r'''
---
module: nats_server_info
short_description: Read the NATS server's own view of its clients from its monitoring endpoint
description:
  - Reads C(/connz?subs=detail) from the NATS server's HTTP monitoring endpoint, page by page, and
    returns every client connection with its address and port, name, client library, message
    counters and subscriptions (subject and queue group).
  - This is what the server itself knows, so no client can forge it. The rollout joins it with the
    sockets of each agent unit (M(fleetwave.rollout.agent_host_info)) to prove, per agent instance,
    its connection and its subscriptions (dual subscription, legacy only), and to find connections
    that hold an agent's command subject without being one of its instances (impostors).
  - Read-only; runs on the controller (delegate it to C(localhost)).
version_added: "0.3.0"
author: fleetwave maintainers
options:
  monitor_url:
    description:
      - The server's monitoring base URL, e.g. C(http://nats.internal:8222) (nats-server C(-m 8222)).
      - Kept out of logs; errors name it with any user info masked.
    type: str
    required: true
  timeout:
    description: Seconds to wait for each HTTP response.
    type: float
    default: 5.0
  page_size:
    description: Connections asked for per request (C(limit)); pages are read until all are in.
    type: int
    default: 1024
  validate_certs:
    description: Verify the TLS certificate of an C(https) monitoring URL.
    type: bool
    default: true
notes:
  - Supports check mode (it changes nothing).
  - A cluster's servers each list only their own clients; point O(monitor_url) at the server the
    agents connect to, or read each server and merge the results.
'''

EXAMPLES = r'''
- name: Read the server's view of every client connection
  fleetwave.rollout.nats_server_info:
    monitor_url: "{{ fleet_nats_monitor_url }}"
  delegate_to: localhost
  run_once: true
  register: __nats_server
'''

RETURN = r'''
server:
  description: The server's id and the time it took the first page (its own clock).
  returned: success
  type: dict
  sample: {server_id: NC6OHWMU3C6..., now: "2026-12-02T02:10:35.253575203Z"}
connections:
  description:
    - Every client connection, each with C(cid), C(name), C(ip), C(port), C(lang), C(version),
      C(start), C(in_msgs), C(out_msgs), C(in_bytes), C(out_bytes), C(authorized_user) (when
      the server reports it) and C(subscriptions), a list of C(subject), C(queue) (null without a
      queue group) and C(msgs) (messages delivered to that subscription).
  returned: success
  type: list
  elements: dict
  sample:
    - cid: 5
      name: tdd-expert
      ip: 127.0.0.1
      port: 36626
      lang: python3
      version: 2.16.0
      in_msgs: 120
      out_msgs: 118
      subscriptions: [{subject: agent.tdd-expert.cmd.>, queue: tdd-expert, msgs: 60}]
'''

import json

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import open_url

from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_nats import redact_url

KEPT = ('cid', 'name', 'ip', 'port', 'lang', 'version', 'start', 'in_msgs', 'out_msgs', 'in_bytes', 'out_bytes',
        'authorized_user')
# One page per 1024 connections: this many pages is a fleet far beyond any we plan for, or a
# server answering nonsense; either way stop instead of looping.
MAX_PAGES = 1000


class MonitorError(Exception):
    pass


def connection(raw):
    """The facts of one /connz entry the rollout uses."""
    found = {k: raw.get(k) for k in KEPT if k in raw}
    found['subscriptions'] = [dict(subject=s.get('subject'), queue=s.get('qgroup') or None, msgs=s.get('msgs'))
                              for s in raw.get('subscriptions_list_detail') or []]
    return found


def read_connz(fetch, page_size):
    """Every connection of /connz?subs=detail, paging by offset; fetch(path) returns parsed JSON."""
    connections, server, offset = [], None, 0
    for _ in range(MAX_PAGES):
        page = fetch('connz?subs=detail&limit=%d&offset=%d' % (page_size, offset))
        if not isinstance(page, dict) or not isinstance(page.get('connections', []), list):
            raise MonitorError('connz answered something that is not a connection list')
        if server is None:
            server = dict(server_id=page.get('server_id'), now=page.get('now'))
        got = page.get('connections') or []
        connections.extend(connection(c) for c in got)
        offset += len(got)
        if not got or offset >= int(page.get('total') or 0):
            return server, connections
    raise MonitorError('connz still had connections after %d pages of %d' % (MAX_PAGES, page_size))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            monitor_url=dict(type='str', required=True, no_log=True),
            timeout=dict(type='float', default=5.0),
            page_size=dict(type='int', default=1024),
            validate_certs=dict(type='bool', default=True),
        ),
        supports_check_mode=True,
    )
    params = module.params
    base = params['monitor_url'].rstrip('/')
    shown = redact_url(base)
    if not base.startswith(('http://', 'https://')):
        module.fail_json(msg='monitor_url %s must be an http:// or https:// URL (the server\'s -m port)' % shown)
    if not 0 < params['timeout'] <= 300:
        module.fail_json(msg='timeout must be more than 0 and at most 300 seconds, got %r' % params['timeout'])
    if not 1 <= params['page_size'] <= 100000:
        module.fail_json(msg='page_size must be 1 to 100000, got %r' % params['page_size'])

    def fetch(path):
        try:
            response = open_url('%s/%s' % (base, path), timeout=params['timeout'],
                                validate_certs=params['validate_certs'])
            return json.loads(response.read())
        except ValueError as exc:
            raise MonitorError('%s/%s did not answer JSON: %s' % (shown, path.split('?')[0], exc))
        except Exception as exc:  # urllib, socket and TLS errors alike
            raise MonitorError('%s/%s could not be read: %s' % (shown, path.split('?')[0],
                                                                str(exc).replace(base, shown)))

    try:
        server, connections = read_connz(fetch, params['page_size'])
    except MonitorError as exc:
        module.fail_json(msg='NATS monitoring endpoint: %s' % exc)
    module.exit_json(changed=False, server=server, connections=connections)


if __name__ == '__main__':
    main()
