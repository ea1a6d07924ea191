#!/usr/bin/python
# -*- coding: utf-8 -*-
# Documentation stub: the work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r'''
---
module: readiness_authorize
short_description: Decide and sign a readiness run's authorization certificate
description:
  - Phase 2 of the production-readiness run. Decides GO, NO-GO or GO with constraints from the gate
    records in the run's evidence folder and the areas of phase 1 its status record shows incomplete
    (C(fleet_gates.authorization_decision)), states it as an in-toto Statement whose subjects are the
    evidence index and every file it lists (by SHA-256), signs it in a DSSE envelope with the Ed25519 key
    of each named approver, writes it as C(artifacts/readiness/<run>/certificate.json) with the trusted
    public keys beside it (C(trusted-keys.json)), and verifies it as C(scripts/verify-certificate) would.
  - The approvers' private keys are read from the inventory (C(readiness_signing_keys), a mapping of
    approver name to key, from vault or an AWX credential), never from the task's arguments; they are
    held in memory only and never written, shown or logged. An approver without a key, or a key not
    among O(trusted_keys), fails the task naming the approver.
  - A NO-GO is signed too, as the record that the fleet state was refused, with its reasons.
  - Runs once on the controller (an action plugin).
version_added: "1.2.0"
author: fleetwave maintainers
extends_documentation_fragment:
  - fleetwave.rollout.readiness
options:
  approvers:
    description: The names of those who sign; each has a key in C(readiness_signing_keys).
    type: list
    elements: str
    required: true
  trusted_keys:
    description: The approvers' public keys, C([{name, public_key}]) (Ed25519, PEM, ssh-ed25519, or the 32 bytes in hex or base64).
    type: list
    elements: dict
    required: true
  threshold:
    description: How many distinct trusted keys must have signed for the certificate to be valid.
    type: int
    required: true
  valid_hours:
    description: How long the certificate stays valid from its issue, in hours.
    type: float
    required: true
  fleet_state:
    description: The certified fleet state (hosts, agents, subjects, flags).
    type: dict
    required: true
  criteria_file:
    description:
      - The criteria file the next step is judged by (C(wave_criteria_file)); its primary and secondary
        criteria are stated as the certificate's success criteria, its rollback triggers as its rollback
        triggers, one line each, so the certificate says what the next step's gate will hold it to.
    type: path
    required: true
  criteria_thresholds:
    description: Thresholds replaced by the inventory (C(wave_criteria_thresholds)), by criterion name.
    type: dict
    default: {}
  constraint_gates:
    description: Gates whose failure gives GO with constraints instead of NO-GO.
    type: list
    elements: str
    default: []
  next_step:
    description: What the certificate authorizes (the final cut-over, the next fleet).
    type: str
  audit_trails:
    description: Audit trails inside the evidence folder (relative paths) the decision relies on; each is verified and its head recorded.
    type: list
    elements: str
    default: []
  keys_only:
    description:
      - Only check that every approver can sign - a usable key in C(readiness_signing_keys) that is their
        trusted key - and that the criteria file reads; decide, sign and write nothing. The readiness run
        does this before its first area, so that a missing key is found before hours of load.
    type: bool
    default: false
notes:
  - In check mode the decision is made and returned; nothing is signed or written.
'''

EXAMPLES = r'''
- name: Decide and sign the authorization
  fleetwave.rollout.readiness_authorize:
    artifacts_dir: "{{ fleet_artifacts_dir }}"
    run: "{{ readiness_run }}"
    approvers: "{{ readiness_approvers }}"
    trusted_keys: "{{ readiness_trusted_keys }}"
    threshold: "{{ readiness_certificate_threshold }}"
    valid_hours: "{{ readiness_certificate_valid_hours }}"
    fleet_state: "{{ readiness_fleet_state }}"
    criteria_file: "{{ wave_criteria_file }}"
    criteria_thresholds: "{{ wave_criteria_thresholds }}"
'''

RETURN = r'''
decision:
  description: GO, NO-GO or GO with constraints.
  returned: success
  type: str
  sample: NO-GO
reasons:
  description: Why not GO (each blocking gate and incomplete area), empty otherwise.
  returned: success
  type: list
  elements: str
  sample: ["gate testing FAIL: no evidence: no test results for commit 0a1b2c3"]
constraints:
  description: The failed gates a GO with constraints carries.
  returned: success
  type: list
  elements: str
  sample: []
certificate:
  description: Where the certificate was written.
  returned: success
  type: str
  sample: /srv/fleetwave/artifacts/readiness/readiness-20261203T101500Z/certificate.json
signers:
  description: The approvers whose signatures verified.
  returned: success
  type: list
  elements: str
  sample: [release-manager, sre-lead]
valid_until:
  description: When the certificate expires (UTC).
  returned: success
  type: str
  sample: "2026-12-10T10:15:00.000Z"
verify:
  description: The command that checks the certificate offline.
  returned: success
  type: str
  sample: scripts/verify-certificate .../certificate.json --trusted-keys .../trusted-keys.json --base-dir .../evidence
'''
