#!/usr/bin/python
# -*- coding: utf-8 -*-
# Documentation stub: the work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r'''
---
module: audit_trail_info
short_description: The head of this run's audit trail, or whether a handed-over trail still holds its anchor
description:
  - Without O(trail), names the audit trail this run writes (the C(fleetwave.rollout.audit_trail) callback's
    file) and its head C(SEQ:SHA256) now, which a job hands over to the next jobs of a workflow
    (C(set_stats)). Kept outside the trail (in AWX, the job's artifacts), the anchor later proves that no
    line up to it was removed or replaced.
  - With O(trail) and O(anchor), checks that trail as C(scripts/audit-verify --anchor) does - the chain,
    each line's HMAC with the inventory's evidence key (C(fleet_evidence_key)) when there is one, and the
    anchored line still in place - and returns RV(verified) and RV(reason).
  - Never fails because a trail does not verify (read RV(verified)); a trail that is not here (kept
    where its job ran) gives RV(verified) null. Runs once on the controller (an action plugin); reads
    only, so it always reports C(changed=false).
version_added: "1.3.0"
author: fleetwave maintainers
options:
  trail:
    description: A trail to check (default - this run's, which is only read).
    type: path
  anchor:
    description: The C(SEQ:SHA256) handed over with O(trail), which it must still hold.
    type: str
    default: ''
'''

EXAMPLES = r'''
- name: Read where this run's audit trail stands
  fleetwave.rollout.audit_trail_info:
  register: audit

- name: Check the trail the previous job handed over
  fleetwave.rollout.audit_trail_info:
    trail: "{{ fleetwave_wave1.audit_trail }}"
    anchor: "{{ fleetwave_wave1.audit_anchor }}"
  register: previous_audit
'''

RETURN = r'''
trail:
  description: The trail's path; null when this run records none (the callback is not enabled).
  returned: always
  type: str
  sample: /var/lib/fleetwave/artifacts/audit/wave2-20261204T101500Z.jsonl
anchor:
  description: The trail's head now, C(SEQ:SHA256) of its last complete line; null before its first.
  returned: always
  type: str
  sample: "412:9f2c...e1"
lines:
  description: The trail's complete lines.
  returned: always
  type: int
  sample: 412
verified:
  description: With O(trail) - whether it verifies and holds O(anchor); null when the file is not here.
  returned: always
  type: bool
  sample: true
reason:
  description: What the check found (the first bad line and why), or why nothing was checked.
  returned: always
  type: str
  sample: "412 lines, chain intact, anchor 300 holds"
'''
