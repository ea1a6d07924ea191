#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import annotations

DOCUMENTATION = r'''
---
module: nats_traffic
short_description: Run request and event traffic over NATS through an injected failure, for the data-integrity ledger
description:
  - For O(duration) seconds sends requests at O(rate) per second (open model, round robin over O(targets)), each
    with its own id and reply subject, and records every request (id, target, intended and sent time) and every
    reply (time, responder, error); meanwhile records every event copy received on O(event_subjects). Writes these
    raw observations to O(dest) (JSON, atomically) for the readiness run's data-integrity ledger - the playbook turns
    them into the ledger with C(fleet_traffic.ledger_inputs) and C(fleet_ledger.build_ledger) over the failure
    window it recorded. The format is documented in C(plugins/module_utils/fleet_traffic.py).
  - The connection survives a server restart - the client reconnects without end (every 0.25 s) and resubscribes; a
    request due while it is cut off is not sent and is recorded as unsent (lost), never buffered for later.
  - What counts as published comes from the agents' own sequence numbers - an event copy whose C(Nats-Msg-Id) is
    C(<publisher>.<seq>), with C(seq) in its JSON body (the reference agent's ids). A gap in a publisher's seqs is a
    lost event. Where the agents answer O(status_verb) (C(last_seq), C(boot_id)), they are asked before the first
    request and after the last reply, so events lost at the start and end of the run count too. Copies of agents
    that do not number their events this way cannot be accounted for; the record says how many
    (RV(event_accounting)) and the ledger counts them as unmatched, which fails it - never a silent pass.
  - The module judges nothing; it fails only on bad input or when the server cannot be reached at the start.
  - Runs on the controller (use C(delegate_to) localhost and C(run_once)). In check mode the input is validated and
    nothing is sent or written.
version_added: "1.2.0"
author: fleetwave maintainers
extends_documentation_fragment:
  - fleetwave.rollout.nats
options:
  targets:
    description:
      - Where the requests go, in turn (request i to target i modulo their number). Exactly one of O(targets) and
        O(subjects).
    type: list
    elements: dict
    suboptions:
      subject:
        description: The command subject, e.g. C(agent.network-expert.cmd.ping).
        type: str
        required: true
      host:
        description: >-
          The instance to address; sent as the C(Agent-Target) header, so that only that instance answers.
        type: str
      target:
        description: >-
          The target's name in the ledger, e.g. C(network-expert@dgx-1); default C(<subject>@<host>), or the subject
          without a host.
        type: str
  subjects:
    description: Request subjects without a host (a target each). Exactly one of O(targets) and O(subjects).
    type: list
    elements: str
  event_subjects:
    description:
      - Subjects or patterns the agents publish events on, each with its family - C(legacy) or C(unified) (the
        ledger's subject families). They must cover every event type of the agents (C(<prefix>.evt.>)), since a
        gap in a publisher's seqs counts as a lost event.
    type: list
    elements: dict
    default: []
    suboptions:
      subject:
        description: A subject or pattern, e.g. C(agent.network-expert.evt.>).
        type: str
        required: true
      family:
        description: The subject family of the copies received on it.
        type: str
        required: true
        choices: [legacy, unified]
  status_verb:
    description: >-
      The verb asked before and after the traffic on each target's C(<prefix>.cmd.<verb>) for its C(last_seq) and
      C(boot_id) (the reference agent's C(status)); an empty string asks nothing.
    type: str
    default: status
  duration:
    description: Seconds of sending, in (0, 3,600].
    type: float
    default: 10
  rate:
    description: >-
      Requests per second over all targets, in (0, 10,000]; rate x duration requests (and a reply each) may take at
      most half of the 200,000 items the observations hold.
    type: float
    default: 20
  timeout:
    description: Seconds a request may wait for its reply, in (0, 300]; the last replies are awaited that long.
    type: float
    default: 2.0
  payload:
    description: Request body; a dict or list is sent as JSON.
    type: raw
    default: ''
  headers:
    description: NATS headers sent with every request (a target's host adds C(Agent-Target)).
    type: dict
    default: {}
  dest:
    description: The JSON file the observations are written to (atomically), on the controller.
    type: path
    required: true
  name:
    description: A name for the run (the failure mode), in the observations and the summary.
    type: str
    default: traffic
notes:
  - Supports check mode (validation only - nothing is sent, nothing is written).
  - Out-of-range, NaN or infinite numbers are refused before connecting, naming the option and its range.
requirements:
  - nats-py on the controller
'''

EXAMPLES = r'''
- name: Traffic to network-expert on every host while its dgx-2 instance is killed
  fleetwave.rollout.nats_traffic:
    url: "{{ fleet_nats_controller_url }}"
    targets:
      - {subject: agent.network-expert.cmd.ping, host: dgx-1, target: network-expert@dgx-1}
      - {subject: agent.network-expert.cmd.ping, host: dgx-2, target: network-expert@dgx-2}
      - {subject: agent.network-expert.cmd.ping, host: dgx-3, target: network-expert@dgx-3}
    event_subjects:
      - {subject: agent.network-expert.evt.>, family: legacy}
      - {subject: agents.infrastructure.01936f88-d2a9-7000-8000-000000000008.evt.>, family: unified}
    rate: 50
    duration: 60
    timeout: 2
    name: agent-kill
    dest: "{{ readiness_run_dir }}/failure-modes/agent-kill.traffic.json"
  delegate_to: localhost
  run_once: true
  async: 120
  poll: 0
  register: __traffic
'''

RETURN = r'''
dest:
  description: The observations file written; null in check mode.
  returned: always
  type: str
  sample: /var/lib/fleetwave/readiness/run-1/failure-modes/agent-kill.traffic.json
summary:
  description: One line - requests sent, unsent, answered, no responders, duplicates, events, reconnects.
  returned: always
  type: str
  sample: "agent-kill: 3000 requests at 49.98/s (0 unsent while cut off), 2950 answered, 50 no responders, ..."
counts:
  description: The observations' counts (null in check mode).
  returned: always
  type: dict
  sample: {"scheduled": 3000, "requests": 3000, "sent": 3000, "unsent": 0, "answered": 2950, "no_responders": 50,
           "unanswered": 0, "replies": 2950, "duplicate_replies": 0, "error_replies": 0, "unmatched_replies": 0,
           "events": 120, "events_accountable": 120, "events_unaccountable": 0, "requests_seconds": 60.0,
           "achieved_rate": 50.0}
event_accounting:
  description: How the events can be accounted for - C(sequence), C(partial) or C(none), with why (null in check mode).
  returned: always
  type: str
  sample: "sequence: every event copy carries its publisher and seq (Nats-Msg-Id <publisher>.<seq>)"
connection:
  description: The client's disconnects, reconnects, outages (epoch from, to), errors (redacted); null in check mode.
  returned: always
  type: dict
  sample: {"disconnects": 1, "reconnects": 1, "outages": [[1764757200.1, 1764757201.4]], "disconnected_at_end": false,
           "errors": [], "error_count": 0, "client_id": 12}
window:
  description: When the run started and ended (epoch seconds); null in check mode.
  returned: always
  type: dict
  sample: {"started_at": 1764757190.0, "ended_at": 1764757252.6}
'''

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fleetwave.rollout.plugins.module_utils.agent_env import atomic_write
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_nats import (
    NATS_ARGUMENT_SPEC, check_nats_library, protect_secrets, run_or_fail)
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_traffic import (
    encode_observations, run_traffic, summary, validate)


def main():
    module = AnsibleModule(
        argument_spec=NATS_ARGUMENT_SPEC | dict(
            targets=dict(type='list', elements='dict', options=dict(
                subject=dict(type='str', required=True),
                host=dict(type='str'),
                target=dict(type='str'),
            )),
            subjects=dict(type='list', elements='str'),
            event_subjects=dict(type='list', elements='dict', default=[], options=dict(
                subject=dict(type='str', required=True),
                family=dict(type='str', required=True, choices=['legacy', 'unified']),
            )),
            status_verb=dict(type='str', default='status'),
            duration=dict(type='float', default=10),
            rate=dict(type='float', default=20),
            timeout=dict(type='float', default=2.0),
            payload=dict(type='raw', default=''),
            headers=dict(type='dict', default={}),
            dest=dict(type='path', required=True),
            name=dict(type='str', default='traffic'),
        ),
        mutually_exclusive=[('targets', 'subjects')],
        required_one_of=[('targets', 'subjects')],
        supports_check_mode=True,
    )
    check_nats_library(module)
    protect_secrets(module)
    params = module.params
    if params['targets'] is None:
        params['targets'] = [dict(subject=subject, host=None, target=None) for subject in params['subjects']]
    problems = validate(params)
    if problems:
        module.fail_json(msg='the traffic is refused (nothing was sent):\n  - ' + '\n  - '.join(problems),
                         problems=problems)
    if module.check_mode:
        module.exit_json(changed=False, dest=None, counts=None, event_accounting=None, connection=None, window=None,
                         summary='%s: valid; check mode, nothing sent or written' % params['name'])
    observations = run_or_fail(module, run_traffic(params), 'traffic (%g s at %g/s)' % (params['duration'],
                                                                                       params['rate']))
    try:
        os.makedirs(os.path.dirname(os.path.abspath(params['dest'])), exist_ok=True)
        atomic_write(module, params['dest'], encode_observations(observations))
        os.chmod(params['dest'], 0o644)  # observations, no secret: readable like the run's other artifacts
    except (OSError, ValueError) as exc:
        module.fail_json(msg='cannot write the observations to %s: %s' % (params['dest'], exc),
                         counts=observations['counts'])
    module.exit_json(changed=True, dest=params['dest'], summary=summary(observations), counts=observations['counts'],
                     event_accounting=observations['event_accounting'], connection=observations['connection'],
                     window=dict(started_at=observations['started_at'], ended_at=observations['ended_at']))


if __name__ == '__main__':
    main()
