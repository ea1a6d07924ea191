#!/usr/bin/python
# -*- coding: utf-8 -*-
# Documentation stub: the work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r'''
---
module: readiness_certificate_info
short_description: Check a readiness authorization certificate offline
description:
  - Verifies a readiness run's certificate (a DSSE envelope holding an in-toto statement) as
    C(scripts/verify-certificate) does (C(plugins/plugin_utils/fleet_attest.py), C(verify)) and returns
    what it found. The payload type, each Ed25519 signature over the DSSE pre-authentication encoding, the
    threshold of distinct trusted keys among the named approvers, every subject's SHA-256 against its file,
    the evidence index, the validity window and the audit trails it names.
  - With the evidence key of the inventory (C(fleet_evidence_key)) every audit trail line's HMAC is checked
    too.
  - Never fails because the certificate is refused (read RV(valid) and RV(failures)); the task fails only
    on arguments it cannot use. The pre-flight of a wave that requires a certificate
    (C(wave_require_certificate)) asserts on it.
  - Runs once on the controller (an action plugin); reads only, so it always reports C(changed=false).
version_added: "1.2.0"
author: fleetwave maintainers
options:
  certificate:
    description: The certificate, C(artifacts/readiness/<run>/certificate.json).
    type: path
    required: true
  base_dir:
    description: The evidence folder its subjects are relative to (default C(evidence/) beside the certificate).
    type: path
  trusted_keys:
    description: The trusted public keys, C([{name, public_key}]).
    type: list
    elements: dict
    required: true
  threshold:
    description: How many distinct trusted keys of named approvers must have signed.
    type: int
    required: true
'''

EXAMPLES = r'''
- name: Check the readiness certificate that authorizes this step
  fleetwave.rollout.readiness_certificate_info:
    certificate: "{{ wave_certificate }}"
    trusted_keys: "{{ readiness_trusted_keys }}"
    threshold: "{{ readiness_certificate_threshold }}"
  register: certificate
'''

RETURN = r'''
valid:
  description: Whether every check passed.
  returned: success
  type: bool
  sample: false
failures:
  description: Each check that failed, naming what (the file, the signature, the window).
  returned: success
  type: list
  elements: str
  sample: ["subject load/results.json: sha256 differs from the file (edited since it was signed)"]
decision:
  description: The decision the statement carries (GO, NO-GO, GO with constraints), or null when it cannot be read.
  returned: success
  type: str
  sample: GO
constraints:
  description: The constraints of a GO with constraints.
  returned: success
  type: list
  elements: str
  sample: []
signers:
  description: The approvers whose signatures counted.
  returned: success
  type: list
  elements: str
  sample: [release-manager, sre-lead]
valid_until:
  description: The end of the validity window (UTC), or null.
  returned: success
  type: str
  sample: "2026-12-10T10:15:00.000Z"
run:
  description: The readiness run folder's name, from the certificate's path.
  returned: success
  type: str
  sample: readiness-20261203T101500Z
'''
