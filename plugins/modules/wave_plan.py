#!/usr/bin/python
# -*- coding: utf-8 -*-
# Documentation stub: the work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r'''
---
module: wave_plan
short_description: Validate a wave's inventory data and return the plan to follow
description:
  - Checks the agent catalogue, the wave's phases, its checkpoint schedule, the subject
    patterns and the timings, and returns a normalised plan (phases with each agent's
    identity and subject prefixes, checkpoints, the control group).
  - Every problem is reported at once, each with the variable path where it sits; nothing
    is changed anywhere, so a bad inventory stops a run before any host is touched.
  - Runs once on the controller (an action plugin).
  - The evidence key is the inventory variable C(fleet_evidence_key) (from vault or an AWX credential), read
    by every action of this collection, never an argument. Without it the plan is refused, unless
    C(fleet_evidence_unsigned=true) (then RV(plan.evidence) says so, and the run journal with it). With it
    the previous wave's C(decision.json) counts only when its HMAC-SHA256 verifies and it names that wave;
    otherwise the task fails naming the file and what failed.
version_added: "0.1.0"
author: fleetwave maintainers
options:
  wave:
    description: Name of the wave, a key of O(waves).
    type: str
    required: true
  agents:
    description: The agent catalogue, C(fleet_agents) (name -> {id, cluster}).
    type: dict
    required: true
  waves:
    description: The wave definitions, C(fleet_waves).
    type: dict
    required: true
  schedule:
    description: >-
      Checkpoints per wave and phase, C(wave_schedule); each C(at) in (0, 604,800] seconds (7 days). The
      checkpoints and monitoring rounds of a wave together are capped at 5,000, counted before any is planned.
    type: dict
    required: true
  subject_legacy:
    description: Legacy subject prefix pattern, e.g. C(agent.{name}).
    type: str
    required: true
  subject_unified:
    description: Unified subject prefix pattern, e.g. C(agents.{cluster}.{id}).
    type: str
    required: true
  stagger:
    description: Seconds between hosts of a phase, in [0, 3,600]. A number (a numeric string from C(-e) is accepted);
      anything else, NaN and infinities are reported with the inventory variable it came from and the range.
    type: raw
    required: true
  verify_window:
    description: Seconds a phase is watched after its last host, in [0, 86,400]. A number (a numeric string from
      C(-e) is accepted); anything else, NaN and infinities are reported with the inventory variable it came from
      and the range.
    type: raw
    required: true
  monitor_interval:
    description: Seconds between continuous-monitoring rounds while waiting for a checkpoint, in [0.1, 86,400]. A number
      (a numeric string from C(-e) is accepted); anything else, NaN and infinities are reported with the inventory
      variable it came from and the range.
    type: raw
    required: true
  criteria_file:
    description:
      - >-
        Path of the criteria file the checkpoints are judged by (see C(criteria/default.yml)).
        It is validated here, before any host is touched; a malformed file fails the task with
        every problem as C(<file>: <key path>: <reason>).
      - >-
        The file is refused unread above 64 KiB, and while parsing at more than 5,000 values, nesting deeper
        than 20 levels or any YAML alias (aliases are never expanded).
    type: path
  criteria_thresholds:
    description:
      - >-
        Thresholds of the criteria file replaced for this inventory, a mapping of criterion name to
        threshold (C(wave_criteria_thresholds)); the plan, and so the run journal, holds the criteria
        as judged. A name that is no criterion of the file, or a threshold that is not a finite
        number, fails the task naming it.
    type: dict
    default: {}
  artifacts_dir:
    description: Root of the artifact store, where the previous wave's decision is read (RV(plan.previous_outcome)).
    type: path
notes:
  - Supports check mode; it never changes anything.
'''

EXAMPLES = r'''
- name: Ensure the inventory describes a valid wave 2
  fleetwave.rollout.wave_plan:
    wave: wave2
    agents: "{{ fleet_agents }}"
    waves: "{{ fleet_waves }}"
    schedule: "{{ wave_schedule }}"
    subject_legacy: "{{ fleet_subject_legacy }}"
    subject_unified: "{{ fleet_subject_unified }}"
    stagger: "{{ wave_stagger_seconds }}"
    verify_window: "{{ wave_verify_window_seconds }}"
    monitor_interval: "{{ wave_monitor_interval_seconds }}"
    criteria_file: "{{ wave_criteria_file }}"
  register: __wave_plan
'''

RETURN = r'''
unfinished:
  description:
    - The latest run of this wave when it was cut off mid-way (no decision recorded, nothing stopped
      it) - C(run_id), its recorded C(plan), C(started), its C(last) journal record and
      C(interrupted_at); null when there is none. The pre-flight resumes it when the fleet lock is
      still held by it (M(fleetwave.rollout.fleet_lock) O(resume_run_id)).
  returned: success
  type: dict
  sample: {"run_id": "wave2-20261201T101500Z", "interrupted_at": "2026-12-01T21:40:02.118Z"}
plan:
  description: >-
    The validated plan; C(previous_outcome) is the previous wave's recorded outcome (GO, NO-GO,
    or null when none is recorded or O(artifacts_dir) is not given), C(previous_run_id) the run
    that recorded it and C(previous_record) the file it is read from; C(evidence) is C({signed: true, key_id}) (the first 8 hex digits of the
    key's SHA-256, never the key) or C({signed: false, unsigned: true}).
  returned: success
  type: dict
  sample:
    wave: wave2
    previous: wave1
    agents: [network-expert, tdd-expert]
    phases:
      - name: phase1
        agents:
          - {name: network-expert, id: 01936f88-d2a9-7000-8000-000000000008, cluster: infrastructure,
             legacy: agent.network-expert, unified: agents.infrastructure.01936f88-d2a9-7000-8000-000000000008}
        checkpoints: [{label: phase1-T+1h, at: 3600}, {label: phase1-T+2h, at: 7200}]
        watch: [{label: phase1-verification, after: 540}, {label: phase1-T+1h, after: 4140}]
        rounds: [{label: phase1-monitor-001, after: 300, kind: monitor},
                 {label: phase1-verification, after: 540, kind: checkpoint}]
    control: [{name: graph-expert, id: 01936fbb-05dc-7000-8000-00000000000b, cluster: knowledge,
               legacy: agent.graph-expert, unified: agents.knowledge.01936fbb-05dc-7000-8000-00000000000b}]
    reference: [{name: graph-expert, id: 01936fbb-05dc-7000-8000-00000000000b, cluster: knowledge,
                 legacy: agent.graph-expert, unified: agents.knowledge.01936fbb-05dc-7000-8000-00000000000b}]
    reference_kind: control
    timings: {stagger: 30, verify_window: 540, monitor_interval: 300}
    criteria_file: criteria/default.yml
    criteria: {primary: [], secondary: [], rollback_triggers: [], on_trigger: rollback, comparison: {}}
    previous_outcome: GO
    previous_run_id: wave1-20261130T080000Z
    previous_record: /srv/fleetwave/artifacts/checkpoints/wave1/decision.json
    evidence: {signed: true, key_id: 3f2a9c01}
problems:
  description: Every problem found, each naming the variable path.
  returned: failure
  type: list
  elements: str
  sample: ["fleet_waves.wave2.phases[0].agents: unknown agent 'netwrk-expert' (known: git-expert, ...)"]
'''
