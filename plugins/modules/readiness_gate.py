#!/usr/bin/python
# -*- coding: utf-8 -*-
# Documentation stub: the work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r'''
---
module: readiness_gate
short_description: Decide one readiness gate from its evidence and record it
description:
  - Decides one of the production-readiness run's gates from the evidence files named in O(evidence)
    (the gate's inputs, documented in C(plugins/plugin_utils/fleet_gates.py)) and writes its record,
    C(gates/<gate>.json), into the run's folder - the outcome (PASS or FAIL), the reasons, every
    evidence file read with its SHA-256, and the figures it was decided on.
  - A gate without its evidence fails, saying what it expected where; the task itself fails only when
    O(evidence) names an input the gate does not take, and never because the gate failed (read
    RV(record.outcome)).
  - The security gate's secrets are never arguments (they would travel in the task's invocation); the
    action reads them from the inventory itself - C(fleet_nats_password), C(fleet_nats_token),
    C(fleet_nats_creds), C(fleet_evidence_key), every value of C(readiness_signing_keys) - with the
    controller's C(fleet_nats_connection); the record names a secret found by its variable, never its value.
  - Runs once on the controller (an action plugin). The evidence key, for the gates that check MACs,
    is read from the inventory (C(fleet_evidence_key)), never passed as an argument.
version_added: "1.2.0"
author: fleetwave maintainers
extends_documentation_fragment:
  - fleetwave.rollout.readiness
options:
  gate:
    description: The gate decided.
    type: str
    required: true
    choices: [code, security, performance, compliance, docs, testing, deployment, support]
  evidence:
    description: The gate's inputs by name, e.g. C({results, criteria_file}) for C(performance).
    type: dict
    required: true
notes:
  - In check mode the gate is decided but its record is not written.
'''

EXAMPLES = r'''
- name: Decide the performance gate from this run's load results
  fleetwave.rollout.readiness_gate:
    artifacts_dir: "{{ fleet_artifacts_dir }}"
    run: "{{ readiness_run }}"
    gate: performance
    evidence:
      results: "{{ readiness_dir }}/load/results.json"
      criteria_file: "{{ wave_criteria_file }}"
  register: performance
'''

RETURN = r'''
record:
  description: The gate's record (gate, outcome, reasons, evidence with digests, measured).
  returned: success
  type: dict
  sample: {"gate": "performance", "outcome": "FAIL", "reasons": ["load scenario spike (...): dropped 12 > 0"]}
dest:
  description: Where the record was written (or would be, in check mode).
  returned: success
  type: str
  sample: /srv/fleetwave/artifacts/readiness/readiness-20261202T101500Z/gates/performance.json
'''
