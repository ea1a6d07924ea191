#!/usr/bin/python
# -*- coding: utf-8 -*-
# Documentation stub: the work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r'''
---
module: readiness_status
short_description: Update where a production-readiness run stands
description:
  - Changes one area of a readiness run's status record (C(artifacts/readiness/<run>/status.json)) and
    rewrites, under a lock and atomically, the record, its two pages (C(status.html), which refreshes
    itself until the run is complete, and C(status.md)) and the completion markers it calls for (the
    area's C(complete), the phase's, the run's). The record's format is documented in
    C(plugins/plugin_utils/fleet_status.py).
  - A complete area stays complete; a failed one may be run again. A refused change (an unknown area, a
    state it cannot go to, a progress outside 0..1, a link leaving the run folder) fails the task naming
    it and changes nothing.
  - Runs once on the controller (an action plugin).
version_added: "1.2.0"
author: fleetwave maintainers
extends_documentation_fragment:
  - fleetwave.rollout.readiness
options:
  area:
    description: The area changed.
    type: str
    required: true
    choices: [rollback-rehearsal, load, stress, failure-modes, runbooks, gates, evidence, authorization, reports]
  state:
    description: The area's new state.
    type: str
    choices: [pending, running, complete, failed]
  done:
    description: Steps of the area done so far (with O(total), the progress).
    type: int
  total:
    description: Steps of the area in all.
    type: int
  progress:
    description: Progress as a fraction from 0 to 1, when not given by O(done) and O(total).
    type: float
  message:
    description: One line on what the area is doing or did (cut to 200 characters).
    type: str
  outcome:
    description: The area's outcome in a few words, e.g. C(PASS) or C(FAIL - 2 scenarios).
    type: str
  links:
    description: Names of files the area wrote, to relative paths inside the run folder.
    type: dict
notes:
  - In check mode nothing is written; the change is still validated.
'''

EXAMPLES = r'''
- name: Say the load area has run two of its six scenarios
  fleetwave.rollout.readiness_status:
    artifacts_dir: "{{ fleet_artifacts_dir }}"
    run: "{{ readiness_run }}"
    area: load
    state: running
    done: 2
    total: 6
    message: "spike: 500 requests/s for 10 s"
'''

RETURN = r'''
state:
  description: The run's state after the change (pending, running, complete, failed).
  returned: success
  type: str
  sample: running
complete:
  description: Whether the whole run is complete.
  returned: success
  type: bool
  sample: false
area:
  description: The changed area's entry of the record.
  returned: success
  type: dict
  sample: {"phase": 1, "state": "running", "done": 2, "total": 6, "progress": 0.333, "message": "spike"}
page:
  description: The status page (HTML) of the run.
  returned: success
  type: str
  sample: /srv/fleetwave/artifacts/readiness/readiness-20261202T101500Z/status.html
'''
