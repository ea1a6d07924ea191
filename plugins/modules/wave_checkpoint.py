#!/usr/bin/python
# -*- coding: utf-8 -*-
# Documentation stub: the work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r'''
---
module: wave_checkpoint
short_description: Judge a health checkpoint and write its artifacts
description:
  - Judges the observations of one checkpoint - each agent unit active and not restarted since
    the baseline, each flipped agent answering on its legacy and unified subjects on every
    host, each control agent answering on legacy only - and decides GO or NO-GO.
  - A check without an observation fails; no data is never a pass.
  - Writes C(checkpoints/<wave>/<label>/) under O(artifacts_dir) atomically -
    C(observations.json), C(decision.json), C(summary.md) and C(MANIFEST.sha256). A folder
    left by another run is moved to C(checkpoints/<wave>/history/<run_id>/) first.
  - Runs once on the controller (an action plugin).
version_added: "0.1.0"
author: fleetwave maintainers
options:
  wave:
    description: Wave name.
    type: str
    required: true
  label:
    description: Checkpoint label, the folder name (e.g. C(T+1h)).
    type: str
    required: true
  run_id:
    description: Identifies the run, to tell this run's artifacts from an earlier one's.
    type: str
    required: true
  artifacts_dir:
    description: Root of the artifact store on the controller.
    type: path
    required: true
  hosts:
    description: Hosts in scope.
    type: list
    elements: str
    required: true
  flipped:
    description: Agents whose flag is on.
    type: list
    elements: str
    required: true
  control:
    description: Agents with the flag off (control group).
    type: list
    elements: str
    required: true
  units:
    description: Per host, per agent, the C(units) result of M(agent_host_info).
    type: dict
    required: true
  pings:
    description: "List of C({agent, via, hosts, no_responders}) from M(nats_request) results."
    type: list
    elements: dict
    required: true
  baseline:
    description: Per host, per agent, the restart count at the start of the watch.
    type: dict
notes:
  - In check mode the decision is returned and nothing is written.
'''

EXAMPLES = r'''
- name: Record checkpoint T+1h
  wave_checkpoint:
    wave: wave2
    label: T+1h
    run_id: "{{ _wave_run_id }}"
    artifacts_dir: "{{ fleet_artifacts_dir }}"
    hosts: "{{ ansible_play_hosts }}"
    flipped: [network-expert, tdd-expert]
    control: [graph-expert]
    units: "{{ _units }}"
    pings: "{{ _pings }}"
  run_once: true
'''

RETURN = r'''
decision:
  description: GO or NO-GO.
  returned: always
  type: str
  sample: GO
failures:
  description: One sentence per failed check.
  returned: always
  type: list
  elements: str
  sample: ["tdd-expert answers on unified on dgx-2: expected True, measured False"]
restarts:
  description: Restart count per host and agent, to use as the next baseline.
  returned: always
  type: dict
  sample: {"dgx-1": {"network-expert": 0}}
folder:
  description: The checkpoint folder, relative to the artifact store.
  returned: always
  type: str
  sample: checkpoints/wave2/T+1h
path:
  description: Absolute path of the written checkpoint folder.
  returned: when written
  type: str
  sample: /srv/fleetwave/artifacts/checkpoints/wave2/T+1h
'''
