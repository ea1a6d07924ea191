#!/usr/bin/python
# -*- coding: utf-8 -*-
# Documentation stub: the work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r'''
---
module: wave_journal
short_description: Append one step of a wave run to its journal
description:
  - Appends a structured record - step, phase, host, label, started, finished, outcome, next
    step, reasons, artifact - to the run journal C(runs/<run_id>/journal.jsonl) in the artifact
    store, under a lock and fsync'ed. The report, the timeline and the execution checklist are
    rendered from the journal (M(fleetwave.rollout.wave_decision)); checkpoints and monitoring
    rounds are journaled by M(fleetwave.rollout.wave_checkpoint) itself.
  - With the inventory's C(fleet_evidence_key) each record is signed (its C(evidence) field,
    HMAC-SHA256) and the journal's earlier records must verify before anything is appended.
  - O(step=approval) records a person's answer to a round whose next step was C(ask); the
    decision policy turns it into the next step (C(proceed) when accepted, else C(stop)), and
    the answer is also written as C(approval.json) in the round's folder.
  - O(step=rollback) records a rollback; with O(label) (an automatic rollback) also as
    C(rollback.json) in that round's folder, otherwise (a rollback run) as
    C(rollbacks/<run_id>.json). Its next step is always C(stop).
  - O(step=lock) records the fleet lock this run took (M(fleetwave.rollout.fleet_lock)), and in
    O(detail) the holder and, when it was taken over, the takeover (previous holder, why, since when).
  - O(step=resume) records that a run cut off mid-way (its controller killed) goes on - after which
    step, cut off since when and for how long, computed from the journal - and returns
    RV(progress), what the run had done, so that the re-run does none of it again.
  - O(step=watch) records when a phase's watch clock started and the units it started from (in
    O(detail) - C(t0) and C(baseline)), so that a resumed run keeps that clock.
  - Runs once on the controller (an action plugin).
version_added: "1.0.0"
author: fleetwave maintainers
options:
  artifacts_dir:
    description: Root of the artifact store on the controller.
    type: path
    required: true
  run_id:
    description: The run whose journal is appended to.
    type: str
    required: true
  wave:
    description: The wave (or, for a rollback run, what was rolled back).
    type: str
    required: true
  step:
    description:
      - What happened. C(pause) ends a job after a phase's go/no-go (C(wave_pause_after_phase)); the run
        stays unfinished, and the next job resumes it.
    type: str
    required: true
    choices: [run, resume, preflight, deploy, watch, approval, rollback, lock, pause]
  phase:
    description: The phase the step belongs to.
    type: str
  host:
    description: The host the step ran on (none for controller steps).
    type: str
  label:
    description: The round (checkpoint or monitoring round) the step is about.
    type: str
  kind:
    description: Whether O(label) is a checkpoint or a monitoring round.
    type: str
    choices: [checkpoint, monitor]
    default: checkpoint
  started:
    description: When the step began, in seconds since the epoch.
    type: float
  finished:
    description: When it ended, in seconds since the epoch (default - now).
    type: float
  outcome:
    description: How it ended - C(ok) or C(failed) (pre-flight, deploy), C(rolled back) or C(failed) (rollback).
    type: str
  reasons:
    description: Why, one sentence each.
    type: list
    elements: str
  approved:
    description: For O(step=approval), whether the person accepted.
    type: bool
    default: false
  detail:
    description: Step-specific facts kept with the record (the plan for O(step=run), the agents
      deployed, a rollback's triggers, times and legacy-only proof).
    type: dict
notes:
  - In check mode nothing is written and the next step is C(proceed).
'''

EXAMPLES = r'''
- name: Journal this host's deploy
  fleetwave.rollout.wave_journal:
    artifacts_dir: "{{ fleet_artifacts_dir }}"
    run_id: "{{ _wave_run_id }}"
    wave: wave2
    step: deploy
    phase: phase1
    host: "{{ inventory_hostname }}"
    started: "{{ _wave_host_started }}"
    outcome: ok
    detail:
      agents: [network-expert]
  delegate_to: localhost
'''

RETURN = r'''
status_line:
  description:
    - Where the run stands after this step, in one line (also in C(runs/<run_id>/status.json), and
      the latest run's in C(status.json) at the store's root, rewritten with every journal record).
    - The audit_trail callback prints it, so the console and AWX's job output follow a long wave.
  returned: when written
  type: str
  sample: "wave2 wave2-20261202T101500Z: checkpoint phase1 phase1-T+1h GO; next monitor phase1-monitor-011 due 2026-12-02T11:20:00.000Z"
record:
  description: The record as appended (with its C(seq)).
  returned: when written
  type: dict
  sample: {"seq": 4, "step": "deploy", "phase": "phase1", "host": "dgx-1", "outcome": "ok", "next_step": "proceed"}
outcome:
  description: The record's outcome.
  returned: when written
  type: str
  sample: ok
next_step:
  description: What the run does now - proceed or stop.
  returned: always
  type: str
  sample: proceed
progress:
  description:
    - For O(step=resume), what the run had done (plugin_utils/fleet_journal.progress) - C(deployed)
      {phase - {host - epoch}}, C(watch) {phase - {t0, baseline}}, C(rounds) {phase - {label - next
      step}}, C(gates) {phase - next step}, and C(pending), the last round whose rollback or question
      was not taken before the run was cut off (else null).
  returned: for step=resume
  type: dict
  sample: {"deployed": {"phase1": {"dgx-1": 1764670500.1}}, "watch": {}, "rounds": {}, "gates": {}, "pending": null}
path:
  description: The file written beside the journal (approval.json, rollback.json, rollbacks/<run_id>.json).
  returned: when such a file is written
  type: str
  sample: /srv/fleetwave/artifacts/checkpoints/wave2/monitor/phase2-monitor-004/rollback.json
'''
