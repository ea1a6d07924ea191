#!/usr/bin/python
# -*- coding: utf-8 -*-
# Documentation stub: the work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r'''
---
module: wave_decision
short_description: Record a phase's go/no-go or a wave's GO/NO-GO from the run journal
description:
  - Reads the run journal (C(runs/<run_id>/journal.jsonl)) and records what the collection's
    decision policy (plugin_utils/fleet_policy.py) makes of it; it never judges figures again.
  - With the inventory's C(fleet_evidence_key) every journal record read must carry its valid
    HMAC-SHA256 (a forged or edited record, an approval among them, fails the task naming the file,
    the record and what failed), and the wave's C(decision.json) is written signed.
  - O(scope=phase) - the go/no-go after a phase's watch - GO when every round of the phase in
    the journal settled on C(proceed) (an INCONCLUSIVE round counts by the person's answer). It
    is appended to the journal; a NO-GO also records the wave's decision (the run ends there).
  - O(scope=wave) - the wave's decision - GO only when every scheduled checkpoint of every phase
    was reached in this run and settled on C(proceed), and no monitoring round stopped it.
    Appended to the journal, and written as C(checkpoints/<wave>/decision.json) (which the next
    wave's pre-flight reads), C(checkpoints/<wave>/report.md) and the run's execution checklist
    C(runs/<run_id>/checklist.md), both rendered from the journal.
  - Runs once on the controller (an action plugin).
version_added: "0.1.0"
author: fleetwave maintainers
options:
  plan:
    description: The plan returned by M(fleetwave.rollout.wave_plan).
    type: dict
    required: true
  run_id:
    description: This run's id, whose journal is read.
    type: str
    required: true
  artifacts_dir:
    description: Root of the artifact store on the controller.
    type: path
    required: true
  scope:
    description: A phase's go/no-go, or the wave's decision.
    type: str
    choices: [phase, wave]
    default: wave
  phase:
    description: The phase, for O(scope=phase).
    type: str
notes:
  - In check mode nothing is read or written; the outcome is C(GO) with no reasons.
'''

EXAMPLES = r'''
- name: Decide the go/no-go after phase 1
  fleetwave.rollout.wave_decision:
    plan: "{{ _wave_plan }}"
    run_id: "{{ _wave_run_id }}"
    artifacts_dir: "{{ fleet_artifacts_dir }}"
    scope: phase
    phase: phase1
  register: __wave_gate

- name: Record the wave 2 decision
  fleetwave.rollout.wave_decision:
    plan: "{{ _wave_plan }}"
    run_id: "{{ _wave_run_id }}"
    artifacts_dir: "{{ fleet_artifacts_dir }}"
  register: __wave_decision
'''

RETURN = r'''
outcome:
  description: GO or NO-GO.
  returned: always
  type: str
  sample: GO
next_step:
  description: proceed after GO, stop after NO-GO.
  returned: always
  type: str
  sample: proceed
reasons:
  description: Why the outcome is not GO (empty for GO).
  returned: always
  type: list
  elements: str
  sample: ["checkpoint T+6h is NO-GO: health: tdd-expert unit active on dgx-2: expected active, measured failed"]
report:
  description: The wave report, as Markdown (when the wave's decision was recorded).
  returned: when the wave's decision is recorded
  type: str
  sample: "# wave2: GO\n..."
report_path:
  description: Where the wave report is written.
  returned: when the wave's decision is recorded
  type: str
  sample: /srv/fleetwave/artifacts/checkpoints/wave2/report.md
checklist_path:
  description: Where the run's execution checklist is written.
  returned: when the wave's decision is recorded
  type: str
  sample: /srv/fleetwave/artifacts/runs/wave2-20261123T100000Z/checklist.md
'''
