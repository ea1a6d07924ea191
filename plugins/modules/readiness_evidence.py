#!/usr/bin/python
# -*- coding: utf-8 -*-
# Documentation stub: the work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r'''
---
module: readiness_evidence
short_description: Collect a readiness run's evidence into its folder and index it
description:
  - Copies the evidence a readiness run's decision rests on into C(artifacts/readiness/<run>/evidence/)
    (each file written atomically), then writes its index, C(evidence-index.json), listing every file
    of the folder with its size and SHA-256 (C(plugins/plugin_utils/fleet_attest.py), C(collect)). The
    authorization certificate names the index and each file it lists by digest.
  - Audit trails are copied into C(evidence/audit/) with their complete lines only (a trail still being
    written, this run's own, is copied up to its last whole line), after the entries of the anchors file
    beside them that name them, so the copy verifies with C(scripts/audit-verify).
  - A source that does not exist is not an error; it is returned in RV(missing), and the compliance gate
    judges what the index must list.
  - Also writes C(evidence/summary.md), the executive summary, and C(evidence/technical-report.md), from the
    gate records and load results copied.
  - Running it again copies again and rewrites the index (to seal the folder after a late gate record).
  - Runs once on the controller (an action plugin).
version_added: "1.2.0"
author: fleetwave maintainers
extends_documentation_fragment:
  - fleetwave.rollout.readiness
options:
  files:
    description: Files to copy, a mapping of each destination (relative to the evidence folder) to its source file.
    type: dict
    default: {}
  folders:
    description: Folders to copy whole, a mapping of each destination (relative to the evidence folder) to its source folder.
    type: dict
    default: {}
  audit_trails:
    description: Audit trails (JSON-lines files of the audit_trail callback) to copy into C(audit/).
    type: list
    elements: path
    default: []
notes:
  - In check mode nothing is copied or written; the task reports what would be.
'''

EXAMPLES = r'''
- name: Collect the run's evidence and index it
  fleetwave.rollout.readiness_evidence:
    artifacts_dir: "{{ fleet_artifacts_dir }}"
    run: "{{ readiness_run }}"
    folders:
      gates: "{{ readiness_dir }}/gates"
      load: "{{ readiness_dir }}/load"
    audit_trails: "{{ readiness_trails }}"
'''

RETURN = r'''
index:
  description: Where the evidence index was written.
  returned: success
  type: str
  sample: /srv/fleetwave/artifacts/readiness/readiness-20261203T101500Z/evidence/evidence-index.json
files:
  description: How many files the index lists.
  returned: success
  type: int
  sample: 42
copied:
  description: The files copied, relative to the evidence folder.
  returned: success
  type: list
  elements: str
  sample: [gates/code.json, audit/wave2-20261203T090000Z.jsonl]
missing:
  description: Sources named that did not exist.
  returned: success
  type: list
  elements: str
  sample: [/srv/fleetwave/artifacts/rollbacks]
'''
