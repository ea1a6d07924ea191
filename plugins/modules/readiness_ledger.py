#!/usr/bin/python
# -*- coding: utf-8 -*-
# Documentation stub: the work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r'''
---
module: readiness_ledger
short_description: Write a failure mode's data-integrity ledger from the traffic that ran through it
description:
  - The readiness run's failure-modes area injects each failure while M(fleetwave.rollout.nats_traffic) sends
    requests and listens to the agents' events. This action reads those observations (O(traffic)), accounts for
    every request sent and every event copy published against what came back or was received
    (C(fleet_traffic.ledger_inputs), C(fleet_ledger.build_ledger)), judges the result against the failure mode's
    loss budget (O(budget)) and writes the ledger atomically to C(<run>/failure-modes/<mode>/ledger.json), where the
    deployment gate, the evidence and the reports read it.
  - The failure window is what the playbook recorded on the controller - O(injected_at) and O(recovered_at). When
    the failure was detected is what the traffic saw - the first request that failed after the injection, when its
    timeout ran out or its error came back - unless O(detected_at) says otherwise.
  - A ledger over budget is a result, not a task failure - RV(verdict) says FAIL and RV(reasons) why, naming what was
    lost; the task fails only on bad input (a malformed observations file, a time out of order, a budget out of
    range), naming what and where.
  - Runs once on the controller (an action plugin).
version_added: "1.2.0"
author: fleetwave maintainers
extends_documentation_fragment:
  - fleetwave.rollout.readiness
options:
  mode:
    description: The failure mode.
    type: str
    required: true
    choices: [agent-kill, standin-stop, nats-restart, node-freeze, env-corrupt-or-disk-full]
  traffic:
    description: The observations file M(fleetwave.rollout.nats_traffic) wrote (its O(dest)).
    type: path
    required: true
  injected_at:
    description: When the failure was injected, epoch seconds (a finite number) or C(YYYY-MM-DDTHH:MM:SS.mmmZ).
    type: raw
    required: true
  detected_at:
    description: When the run's monitoring detected it; by default the moment the traffic first saw a failure.
    type: raw
  recovered_at:
    description: When the injection was undone and the instance answered again; unset means it never recovered.
    type: raw
  timeout:
    description: Seconds a request may wait for its reply (as the traffic was told), in (0, 300].
    type: float
    required: true
  budget:
    description: >-
      The failure mode's loss budget, its entry of the inventory's C(readiness_loss_budgets) - every key of
      C(fleet_ledger.BUDGET_KEYS), each within its range.
    type: dict
    required: true
notes:
  - In check mode the inputs are read and judged, and nothing is written.
'''

EXAMPLES = r'''
- name: Write the ledger of agent-kill
  fleetwave.rollout.readiness_ledger:
    artifacts_dir: "{{ fleet_artifacts_dir }}"
    run: "{{ readiness_run }}"
    mode: agent-kill
    traffic: "{{ _readiness_dir }}/failure-modes/agent-kill/traffic.json"
    injected_at: "{{ _injected_at }}"
    recovered_at: "{{ _recovered_at }}"
    timeout: 2
    budget: "{{ readiness_loss_budgets['agent-kill'] }}"
'''

RETURN = r'''
ledger:
  description: The ledger file (written unless in check mode).
  returned: success
  type: str
  sample: /srv/fleetwave/artifacts/readiness/readiness-20261203T101500Z/failure-modes/agent-kill/ledger.json
verdict:
  description: PASS when every figure is within the budget, else FAIL.
  returned: success
  type: str
  sample: PASS
reasons:
  description: Why the ledger fails its budget, each naming the figure, its limit and what was lost.
  returned: success
  type: list
  elements: str
  sample: ['requests lost: 12 of 400 (3 %, at most 2 %): requests to nats-expert@dgx-3 ...']
lost:
  description: What was lost, one line per target and subject, and per agent instance and subject family.
  returned: success
  type: list
  elements: str
  sample: ['requests to nats-expert@dgx-3 on agent.nats-expert.cmd.ping: 4 of 140 lost (4 in the failure window, 0 outside): r12, r15, r18, r21']
timings:
  description: Detection and recovery, in seconds from the injection, with the first and last failed requests.
  returned: success
  type: dict
  sample: {detection_seconds: 2.1, recovery_seconds: 3.4, declared_recovery_seconds: 3.0, failed_requests: 4}
measured:
  description: The figures judged against the budget.
  returned: success
  type: dict
  sample: {requests: 400, events: 1200, requests_lost_pct: 1.0, events_lost_pct: 0.0, late: 0, duplicated: 0}
'''
