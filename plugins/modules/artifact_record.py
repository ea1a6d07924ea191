#!/usr/bin/python
# -*- coding: utf-8 -*-
# Documentation stub: the work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r'''
---
module: artifact_record
short_description: Write a record into the artifact store
description:
  - Writes O(data) as JSON, or O(text) as is, to O(path) under O(artifacts_dir) on the
    controller - atomically (temp file, fsync, rename), creating folders as needed.
  - Runs once on the controller (an action plugin).
version_added: "0.1.0"
author: fleetwave maintainers
options:
  artifacts_dir:
    description: Root of the artifact store.
    type: path
    required: true
  path:
    description: Path of the record, relative to O(artifacts_dir); it may not leave it.
    type: str
    required: true
  data:
    description: Written as indented JSON. Exactly one of O(data) and O(text).
    type: raw
  text:
    description: Written as is. Exactly one of O(data) and O(text).
    type: str
  manifest:
    description: >-
      A folder (relative to O(artifacts_dir)) whose C(MANIFEST.sha256) is written anew after the record,
      for a record added to a checkpoint folder.
    type: str
notes:
  - In check mode nothing is written.
'''

EXAMPLES = r'''
- name: Record the rollback
  fleetwave.rollout.artifact_record:
    artifacts_dir: "{{ fleet_artifacts_dir }}"
    path: rollbacks/rollback-20261123T101500Z.json
    data: {seconds: 21.4, restored: [tdd-expert]}
'''

RETURN = r'''
dest:
  description: Absolute path of the record.
  returned: success
  type: str
  sample: /srv/fleetwave/artifacts/rollbacks/rollback-20261123T101500Z.json
'''
