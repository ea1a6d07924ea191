#!/usr/bin/python
# -*- coding: utf-8 -*-
# Documentation stub: the work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r'''
---
module: wave_decision
short_description: Record a wave's GO/NO-GO from its checkpoint artifacts
description:
  - Reads back every checkpoint of the plan (C(checkpoints/<wave>/<label>/decision.json)) and
    decides GO only when each was taken in this run and is GO. A checkpoint not reached counts
    against GO.
  - Writes C(checkpoints/<wave>/decision.json) and a readable C(report.md) atomically; the
    next wave's pre-flight reads the decision.
  - Runs once on the controller (an action plugin).
version_added: "0.1.0"
author: fleetwave maintainers
options:
  plan:
    description: The plan returned by M(wave_plan).
    type: dict
    required: true
  run_id:
    description: This run's id, as given to M(wave_checkpoint).
    type: str
    required: true
  artifacts_dir:
    description: Root of the artifact store on the controller.
    type: path
    required: true
  started_at:
    description: When the run started (ISO-8601).
    type: str
    required: true
  timeline:
    description: "Steps of the run, each C({step, started, finished, result}), for the report."
    type: list
    elements: dict
notes:
  - In check mode the decision is returned and nothing is written.
'''

EXAMPLES = r'''
- name: Record the wave 2 decision
  wave_decision:
    plan: "{{ _wave_plan }}"
    run_id: "{{ _wave_run_id }}"
    artifacts_dir: "{{ fleet_artifacts_dir }}"
    started_at: "{{ _wave_started_at }}"
  register: __wave_decision
'''

RETURN = r'''
decision:
  description: GO or NO-GO.
  returned: always
  type: str
  sample: GO
reasons:
  description: Why the decision is not GO (empty for GO).
  returned: always
  type: list
  elements: str
  sample: ["checkpoint T+6h is NO-GO: tdd-expert unit active on dgx-2: expected active, measured failed"]
rollback:
  description: The automatic rollback recorded beside a checkpoint of this run (C(rollback.json)), or null.
  returned: always
  type: dict
  sample: {"label": "phase2-monitor-004", "triggers": ["agent_crash"], "completed": true,
           "detected_at": "2026-11-23T10:00:00.123+00:00", "seconds_detection_to_completion": 21.4}
report:
  description: The report, as Markdown.
  returned: always
  type: str
  sample: "# wave2: GO\n..."
report_path:
  description: Where the report is written.
  returned: always
  type: str
  sample: /srv/fleetwave/artifacts/checkpoints/wave2/report.md
'''
