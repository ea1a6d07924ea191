#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import annotations

DOCUMENTATION = r'''
---
module: nats_probe
short_description: Measure delivery, errors, latency and dual publishing of agents over NATS
description:
  - Sends C(ping) (or other O(verbs)) requests to every instance of every agent in O(agents), on
    the legacy and on the unified subject, at a fixed O(rate) for O(window) seconds, and reports
    what the rollout criteria need - delivery, error rate, latency percentiles, dual-publishing
    success, unified (agent-ref) traffic share and the agents' own publish time.
  - The generator is open loop - request i of a target is due at M(start + i/rate) whether or not
    earlier requests were answered - so a stalled agent shows up as latency and timeouts instead of
    as a lower request rate (coordinated-omission safe). A request is timed from when it left, or,
    when it left more than 5 ms late (a stall of the probe, not its timer's wake-up error), from its
    intended time plus those 5 ms, so the stall counts. Latencies go into HDR histograms (1 us to
    60 s, 3 significant digits).
  - Each request carries C(Agent-Target) so each instance is measured on its own. Replies are
    matched by a per-request inbox; NATS "no responders" statuses are counted apart from timeouts
    (no reply within the window plus O(timeout)) and error replies (C(Agent-Error) header or C(ok=false)).
  - Before the first request each instance is asked to C(emit) O(emit_events) events, and the
    requests start once every emit is confirmed (or after O(timeout)), so the agents' publishing
    burst does not land in the request latencies. The legacy
    and unified copies of every event seen from the emits to the end of the window are paired by C(Nats-Msg-Id) and attributed
    to their instance by C(Agent-Host), so dual publishing and unified share are reported per agent
    and per instance (agent x host).
  - After the window each instance is asked for its C(status), whose C(publish_time_ms) and
    counters are reported as the agent gives them.
  - A value without data (nothing sent, no events seen, flag off for dual publishing) is null,
    never 0 or 1, so a criterion evaluated on it cannot pass by accident.
  - Runs on the controller (use C(delegate_to) localhost and C(run_once)); it never changes anything.
version_added: "0.1.0"
author: fleetwave maintainers
extends_documentation_fragment:
  - fleetwave.rollout.nats
options:
  agents:
    description: The agent types to probe; every one is probed on every host in O(hosts).
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Agent name, as reported in the results.
        type: str
        required: true
      legacy:
        description: Legacy subject prefix, e.g. C(agent.network-expert); commands go to C(<legacy>.cmd.<verb>).
        type: str
        required: true
      unified:
        description: Unified subject prefix, e.g. C(agents.infrastructure.<id>).
        type: str
        required: true
      unified_enabled:
        description:
          - Whether the flag is meant to be on for this agent. Its unified targets count in the
            agent's aggregates and dual publishing is measured only when true; when false the
            unified subject is still probed (every request should meet "no responders").
        type: bool
        default: false
  hosts:
    description: The instance hosts (the C(Agent-Target) of each request), e.g. C(groups['dgx']).
    type: list
    elements: str
    required: true
  rate:
    description: Requests per second sent to each target (agent x host x subject x verb), in (0, 10,000].
    type: float
    default: 20
  window:
    description: Seconds of sending (the measurement window), in (0, 3,600].
    type: float
    default: 10
  timeout:
    description: >-
      Grace seconds after the window for the last replies (and for the C(status) replies); a request unanswered by
      then is a timeout. In (0, 300].
    type: float
    default: 2
  emit_events:
    description: >-
      Events each instance is asked to emit before the requests start, for a large and deterministic dual-publishing
      sample (0 to skip). In [0, 10,000] (the reference agent's cap on one emit).
    type: int
    default: 200
  verbs:
    description: Command verbs to send; each verb is a target of its own.
    type: list
    elements: str
    default: [ping]
notes:
  - Supports check mode. The probe changes no configuration, so it runs in check mode too (it sends
    its requests and asks the agents to emit synthetic C(probe) events).
  - Window, rate, the number of targets and O(emit_events) decide the load; rate x window x targets requests plus
    emit_events x agents x hosts events are capped at 1,000,000 per probe.
  - Out-of-range, NaN or infinite numbers are refused before connecting, with the allowed range.
requirements:
  - nats-py and hdrhistogram on the controller
'''

EXAMPLES = r'''
- name: Measure network-expert (flag on) against graph-expert (control) for the verification window
  fleetwave.rollout.nats_probe:
    url: "{{ fleet_nats_controller_url }}"
    agents:
      - name: network-expert
        legacy: agent.network-expert
        unified: agents.infrastructure.01936f88-d2a9-7000-8000-000000000008
        unified_enabled: true
      - name: graph-expert
        legacy: agent.graph-expert
        unified: agents.knowledge.01936fbb-05dc-7000-8000-00000000000b
        unified_enabled: false
    hosts: "{{ groups['dgx'] }}"
    rate: 20
    window: 60
  delegate_to: localhost
  run_once: true
  register: __wave_probe

- name: Ensure the probe saw every request answered
  ansible.builtin.assert:
    that:
      - __wave_probe.totals.delivery == 1.0
    fail_msg: "delivery {{ __wave_probe.totals.delivery }} over {{ __wave_probe.totals.sent }} requests"
'''

RETURN = r'''
targets:
  description: One entry per agent x host x subject (legacy, unified) x verb.
  returned: always
  type: list
  elements: dict
  sample: [{"agent": "network-expert", "host": "dgx-1", "via": "unified", "verb": "ping",
            "subject": "agents.infrastructure.01936f88-d2a9-7000-8000-000000000008.cmd.ping", "expected": true,
            "scheduled": 200, "sent": 200, "replies": 200, "replies_ok": 200, "errors": 0, "timeouts": 0,
            "no_responders": 0, "delivery": 1.0, "error_rate": 0.0,
            "latency_ms": {"p50": 0.61, "p90": 0.93, "p99": 1.8, "max": 3.2, "mean": 0.66, "count": 200},
            "samples_ms": [0.412, 0.431, 0.6]}]
  contains:
    agent:
      description: Agent name.
      returned: always
      type: str
      sample: network-expert
    host:
      description: Instance host (the C(Agent-Target) header).
      returned: always
      type: str
      sample: dgx-1
    via:
      description: Which subject, C(legacy) or C(unified).
      returned: always
      type: str
      sample: unified
    verb:
      description: Command verb.
      returned: always
      type: str
      sample: ping
    subject:
      description: The subject the requests went to.
      returned: always
      type: str
      sample: agents.infrastructure.01936f88-d2a9-7000-8000-000000000008.cmd.ping
    expected:
      description: >-
        Whether the target counts in the aggregates (false for the unified subject of an agent with the flag off).
      returned: always
      type: bool
      sample: true
    scheduled:
      description: Requests due in the window (rate x window).
      returned: always
      type: int
      sample: 200
    sent:
      description: Requests sent (fewer than scheduled only if the generator could not keep up).
      returned: always
      type: int
      sample: 200
    replies:
      description: Agent replies, successful or not.
      returned: always
      type: int
      sample: 200
    replies_ok:
      description: Successful replies.
      returned: always
      type: int
      sample: 200
    errors:
      description: Error replies (C(Agent-Error) header or C(ok=false)).
      returned: always
      type: int
      sample: 0
    timeouts:
      description: Requests unanswered by the end of the window plus O(timeout).
      returned: always
      type: int
      sample: 0
    no_responders:
      description: Requests the server answered with "no responders" (nobody subscribes to the subject).
      returned: always
      type: int
      sample: 0
    delivery:
      description: replies_ok / sent; null when nothing was sent.
      returned: always
      type: float
      sample: 1.0
    error_rate:
      description: (errors + timeouts + no_responders) / sent; null when nothing was sent.
      returned: always
      type: float
      sample: 0.0
    latency_ms:
      description: >-
        Reply latency in ms, from the send time (from the intended time when the request left more than 5 ms late);
        values null and count 0 without replies.
      returned: always
      type: dict
      sample: {"p50": 0.61, "p90": 0.93, "p99": 1.8, "max": 3.2, "mean": 0.66, "count": 200}
    samples_ms:
      description: >-
        Raw latencies in ms, sorted, downsampled to at most 1000 evenly spaced order statistics (for rank tests).
      returned: always
      type: list
      elements: float
      sample: [0.412, 0.431, 0.6]
agents:
  description: Per agent aggregates over its expected targets (all its instances).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "network-expert", "unified_enabled": true, "sent": 1200, "replies": 1200, "replies_ok": 1200,
            "errors": 0, "timeouts": 0, "no_responders": 0, "delivery": 1.0, "error_rate": 0.0,
            "latency_ms": {"p50": 0.62, "p90": 0.95, "p99": 2.1, "max": 4.0, "mean": 0.68, "count": 1200},
            "unified_replies": 600, "events": {"legacy": 603, "unified": 603, "paired": 603, "emitted": 600},
            "dual_publish_success": 1.0, "unified_share": 0.5,
            "publish_time_ms": {"p50": 0.03, "p99": 0.09, "max": 0.4, "count": 1806}, "instances": []}]
  contains:
    name:
      description: Agent name.
      returned: always
      type: str
      sample: network-expert
    unified_enabled:
      description: The O(agents[].unified_enabled) given.
      returned: always
      type: bool
      sample: true
    sent:
      description: Requests sent to the expected targets.
      returned: always
      type: int
      sample: 1200
    replies:
      description: Agent replies on the expected targets.
      returned: always
      type: int
      sample: 1200
    replies_ok:
      description: Successful replies on the expected targets.
      returned: always
      type: int
      sample: 1200
    errors:
      description: Error replies on the expected targets.
      returned: always
      type: int
      sample: 0
    timeouts:
      description: Timeouts on the expected targets.
      returned: always
      type: int
      sample: 0
    no_responders:
      description: No-responders statuses on the expected targets.
      returned: always
      type: int
      sample: 0
    delivery:
      description: replies_ok / sent; null without data.
      returned: always
      type: float
      sample: 1.0
    error_rate:
      description: (errors + timeouts + no_responders) / sent; null without data.
      returned: always
      type: float
      sample: 0.0
    latency_ms:
      description: Latency over all expected targets of the agent (p50, p90, p99, max, mean in ms, count).
      returned: always
      type: dict
      sample: {"p50": 0.62, "p90": 0.95, "p99": 2.1, "max": 4.0, "mean": 0.68, "count": 1200}
    unified_replies:
      description: >-
        Replies received on the unified subject (expected or not; non-zero after a rollback means it did not take).
      returned: always
      type: int
      sample: 600
    events:
      description: >-
        Events of the window seen on legacy, on unified, on both (paired by C(Nats-Msg-Id)), and emitted as confirmed
        by the agents (null when no emit was confirmed).
      returned: always
      type: dict
      sample: {"legacy": 603, "unified": 603, "paired": 603, "emitted": 600}
    dual_publish_success:
      description: Events seen on both subjects / events seen on legacy; null when the flag is off or no event was seen.
      returned: always
      type: float
      sample: 1.0
    unified_share:
      description: >-
        Unified agent messages (event copies and replies on unified) / all agent messages in the window; null without
        messages.
      returned: always
      type: float
      sample: 0.5
    publish_time_ms:
      description: >-
        The agents' own publish time (p50, p99, max of the worst instance; count summed), from C(status); null values
        without data.
      returned: always
      type: dict
      sample: {"p50": 0.03, "p99": 0.09, "max": 0.4, "count": 1806}
    instances:
      description:
        - One entry per host in O(hosts) - the agent instance on that host. What C(status) reported after the
          window (null fields when the instance did not answer), and the instance's own request, event and
          share figures, so a checkpoint can name the host of a misbehaving instance.
        - Event figures are attributed by the C(Agent-Host) header of the event copies; they are null when none
          of the agent's events in the window carried one (an agent too old to send it), never 0 or 1.
      returned: always
      type: list
      elements: dict
      sample: [{"host": "dgx-2", "answered": true, "emitted": 200, "unified": true, "pid": 4242, "uptime_s": 812.4,
                "counters": {"requests": {"legacy": 201, "unified": 200, "errors": 0},
                             "events": {"legacy": 363, "unified": 357, "unified_dropped": 6, "failed": 0}},
                "faults": {"drop_unified_rate": 0.03},
                "publish_time_ms": {"count": 363, "mean": 0.03, "p50": 0.03, "p99": 0.09, "max": 0.4},
                "sent": 400, "replies": 400, "replies_ok": 400, "errors": 0, "timeouts": 0, "no_responders": 0,
                "delivery": 1.0, "error_rate": 0.0,
                "latency_ms": {"p50": 0.62, "p90": 0.95, "p99": 2.1, "max": 4.0, "mean": 0.68, "count": 400},
                "samples_ms": [0.412, 0.431, 0.6], "events": {"legacy": 200, "unified": 194, "paired": 194},
                "dual_publish_success": 0.97, "unified_share": 0.495}]
      contains:
        host:
          description: Instance host (the C(Agent-Target) of its requests).
          returned: always
          type: str
          sample: dgx-2
        answered:
          description: Whether the instance answered the C(status) request after the window.
          returned: always
          type: bool
          sample: true
        emitted:
          description: Events the instance confirmed emitting at the start of the window; null without confirmation.
          returned: always
          type: int
          sample: 200
        unified:
          description: The flag as the instance reports it in C(status); null when it did not answer.
          returned: always
          type: bool
          sample: true
        pid:
          description: The instance's process id from C(status); null when it did not answer.
          returned: always
          type: int
          sample: 4242
        uptime_s:
          description: The instance's uptime in seconds from C(status); null when it did not answer.
          returned: always
          type: float
          sample: 812.4
        counters:
          description: The instance's own request and event counters from C(status); null when it did not answer.
          returned: always
          type: dict
          sample: {"requests": {"legacy": 201, "unified": 200, "errors": 0},
                   "events": {"legacy": 363, "unified": 357, "unified_dropped": 6, "failed": 0}}
        faults:
          description: The fault knobs switched on in the instance, from C(status); null when it did not answer.
          returned: always
          type: dict
          sample: {"drop_unified_rate": 0.03}
        publish_time_ms:
          description: The instance's own publish time from C(status); null when it did not answer.
          returned: always
          type: dict
          sample: {"count": 363, "mean": 0.03, "p50": 0.03, "p99": 0.09, "max": 0.4}
        sent:
          description: Requests sent to the instance's expected targets.
          returned: always
          type: int
          sample: 400
        replies:
          description: The instance's replies on its expected targets, successful or not.
          returned: always
          type: int
          sample: 400
        replies_ok:
          description: Successful replies on the instance's expected targets.
          returned: always
          type: int
          sample: 400
        errors:
          description: Error replies on the instance's expected targets.
          returned: always
          type: int
          sample: 0
        timeouts:
          description: Timeouts on the instance's expected targets.
          returned: always
          type: int
          sample: 0
        no_responders:
          description: No-responders statuses on the instance's expected targets.
          returned: always
          type: int
          sample: 0
        delivery:
          description: replies_ok / sent of the instance; null when nothing was sent.
          returned: always
          type: float
          sample: 1.0
        error_rate:
          description: (errors + timeouts + no_responders) / sent of the instance; null when nothing was sent.
          returned: always
          type: float
          sample: 0.0
        latency_ms:
          description: >-
            Latency over the instance's expected targets (p50, p90, p99, max, mean in ms, count); values null and
            count 0 without replies.
          returned: always
          type: dict
          sample: {"p50": 0.62, "p90": 0.95, "p99": 2.1, "max": 4.0, "mean": 0.68, "count": 400}
        samples_ms:
          description: >-
            Raw latencies in ms of the instance's expected targets, sorted, downsampled to at most 1000 evenly
            spaced order statistics (for rank tests).
          returned: always
          type: list
          elements: float
          sample: [0.412, 0.431, 0.6]
        events:
          description: >-
            The instance's events of the window (by their C(Agent-Host) header) seen on legacy, on unified and on
            both; null when none of the agent's events in the window carried C(Agent-Host) (not attributable).
          returned: always
          type: dict
          sample: {"legacy": 200, "unified": 194, "paired": 194}
        dual_publish_success:
          description: >-
            The instance's events seen on both subjects / its events seen on legacy; null when the flag is off, the
            events are not attributable or none of the instance's events was seen.
          returned: always
          type: float
          sample: 0.97
        unified_share:
          description: >-
            The instance's unified messages (its unified event copies and replies on its unified targets) / all its
            messages (its event copies and replies on all its targets); null when the events are not attributable
            or without messages.
          returned: always
          type: float
          sample: 0.495
totals:
  description: Aggregates over every expected target and every agent.
  returned: always
  type: dict
  sample: {"targets": 12, "sent": 2400, "replies": 2400, "replies_ok": 2400, "errors": 0, "timeouts": 0,
           "no_responders": 0, "delivery": 1.0, "error_rate": 0.0,
           "latency_ms": {"p50": 0.6, "p90": 0.9, "p99": 2.0, "max": 4.0, "mean": 0.66, "count": 2400},
           "events": {"legacy": 1206, "unified": 603, "paired": 603}, "dual_publish_success": 1.0,
           "unified_share": 0.33, "unmatched_replies": 0}
window:
  description: >-
    When the measurement window started (the emits, or the first request without them) and ended (UTC, ISO 8601),
    its length, and the seconds of sending requests within it.
  returned: always
  type: dict
  sample: {"started": "2025-01-01T10:00:00.000+00:00", "ended": "2025-01-01T10:00:10.051+00:00", "seconds": 10.051,
           "requests_seconds": 10.001}
achieved_rate:
  description: >-
    Requests actually sent per second over all targets; compare with RV(requested_rate) to see that the generator kept
    up.
  returned: always
  type: float
  sample: 239.98
requested_rate:
  description: O(rate) x number of targets.
  returned: always
  type: float
  sample: 240.0
send_lag_ms:
  description: >-
    How late requests left compared with their intended time (p50, p99, max in ms); only what is above 5 ms counts in
    the measured latency.
  returned: always
  type: dict
  sample: {"p50": 0.5, "p99": 1.1, "max": 2.3}
connection:
  description:
    - The probe's NATS connection - the server's client id (C(cid)), and messages published and received.
    - They match the server's C(/connz?state=closed&cid=<client_id>) in_msgs, and out_msgs plus the
      "no responders" statuses (which the server does not count).
  returned: always
  type: dict
  sample: {"client_id": 17, "published": 2412, "received": 3624}
'''

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_nats import (
    NATS_ARGUMENT_SPEC, check_nats_library, protect_secrets, run_or_fail)
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_probe import HAS_HDRH, HDRH_IMPORT_ERROR, run_probe, validate


def main():
    module = AnsibleModule(
        argument_spec=NATS_ARGUMENT_SPEC | dict(
            agents=dict(type='list', elements='dict', required=True, options=dict(
                name=dict(type='str', required=True),
                legacy=dict(type='str', required=True),
                unified=dict(type='str', required=True),
                unified_enabled=dict(type='bool', default=False),
            )),
            hosts=dict(type='list', elements='str', required=True),
            rate=dict(type='float', default=20),
            window=dict(type='float', default=10),
            timeout=dict(type='float', default=2),
            emit_events=dict(type='int', default=200),
            verbs=dict(type='list', elements='str', default=['ping']),
        ),
        supports_check_mode=True,
    )
    check_nats_library(module)
    protect_secrets(module)
    if not HAS_HDRH:
        module.fail_json(msg=missing_required_lib('hdrhistogram'), exception=HDRH_IMPORT_ERROR)
    params = module.params
    problem = validate(params)
    if problem:
        module.fail_json(msg=problem)
    result = run_or_fail(module, run_probe(params), 'probe (window %g s, grace %g s)' % (params['window'],
                                                                                          params['timeout']))
    module.exit_json(changed=False, **result)


if __name__ == '__main__':
    main()
