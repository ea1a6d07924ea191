#!/usr/bin/python
# -*- coding: utf-8 -*-
# Documentation stub: the work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r'''
---
module: wave_checkpoint
short_description: Judge a checkpoint or monitoring round against the criteria and write its artifacts
description:
  - Turns one round of observations - M(agent_host_info) on every host and one M(nats_probe) of the
    wave's agents and their reference group - into the figures of the criteria file, per agent
    instance (C(agent@host)) and for the wave, and judges them with the gate - rollback triggers,
    primary criteria (all must pass), secondary criteria (reported), and test vs reference by
    Mann-Whitney U with an effect size.
  - Health checks ride along - each unit active and not restarted since the watch began, each
    flipped agent answering on its legacy and unified subjects on every host, each control agent
    on legacy only. A failed health check turns GO into NO-GO.
  - The outcome (GO, NO-GO, ROLLBACK, INCONCLUSIVE) and the next step (proceed, stop, rollback,
    ask) are decided by the collection's decision policy (plugin_utils/fleet_policy.py); the
    playbook branches on RV(next_step) only. A figure without data fails its criterion, and a
    trigger without data holds the wave at NO-GO.
  - Appends the round's record (step, phase, label, started, finished, outcome, next step,
    reasons, artifact folder) to the run journal C(runs/<run_id>/journal.jsonl).
  - A O(kind=monitor) round judges the rollback triggers and the health checks only.
  - Writes C(checkpoints/<wave>/<label>/) (monitoring rounds C(checkpoints/<wave>/monitor/<label>/))
    under O(artifacts_dir) atomically - C(observations.json) (raw), C(measurements.json),
    C(comparison.json), C(decision.json), C(summary.md) and C(MANIFEST.sha256). A folder left by
    another run is moved to C(checkpoints/<wave>/history/<run_id>/) first.
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
  phase:
    description: The phase whose watch this round belongs to (e.g. C(phase1)), for the journal.
    type: str
    required: true
  started:
    description: When the round began observing, in seconds since the epoch (default - when the
      action starts).
    type: float
  kind:
    description: A scheduled C(checkpoint), or a continuous-monitoring round (C(monitor)).
    type: str
    choices: [checkpoint, monitor]
    default: checkpoint
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
  test:
    description: Agents whose flag is on in this wave (the test group).
    type: list
    elements: str
    required: true
  control:
    description: Agents with the flag off (control group; must answer on legacy subjects only).
    type: list
    elements: str
    required: true
  reference:
    description: Agents the test group is compared with (the control group, or earlier waves' agents).
    type: list
    elements: str
    required: true
  reference_kind:
    description: What O(reference) is, for the record (C(control), C(earlier waves)).
    type: str
    default: control
  criteria:
    description: The criteria (as in C(criteria/default.yml)); validated again before use.
    type: dict
    required: true
  criteria_file:
    description: Where the criteria came from, for messages and the record.
    type: str
  info:
    description: Per host, the result of M(agent_host_info) now.
    type: dict
    required: true
  baseline:
    description: Per host, the result of M(agent_host_info) at the start of the watch.
    type: dict
    required: true
  probe:
    description: The result of M(nats_probe) for this round; null when the probe failed.
    type: dict
  probe_error:
    description: Why there is no probe result, for the record.
    type: str
  agents:
    description:
      - The probed agents as M(nats_probe) takes them (C(name), C(legacy), C(unified) subject
        prefixes, C(unified_enabled)). When given, the NATS server's view of every instance is
        judged from O(server) (the playbooks always give it) - each instance's own connection
        subscribed on legacy, and on unified exactly when its flag is on, and no connection that
        is not one of an agent's instances holding its command subjects (an impostor).
    type: list
    elements: dict
  server:
    description: The result of M(nats_server_info) for this round; null (or a failed result) is no
      data, which fails every server check.
    type: dict
  server_error:
    description: Why there is no server view, for the record.
    type: str
  latency_baseline:
    description:
      - Each test instance's median reply latency (ms) before its flip, keyed C(agent@host), from the
        pre-flip probe of pre-flight; the sequential comparison (C(comparison.test=sequential) in the
        criteria) compares each instance with it. An instance without one has no baseline data, and
        its comparison waits.
      - The counts the comparison accumulated over the run's earlier rounds are read from the run
        journal, so a resumed run goes on with them.
    type: dict
  request_baseline:
    description:
      - Each test instance's request counters before its flip (C(sent), C(replies), C(replies_ok),
        C(errors), C(timeouts), C(no_responders)), keyed C(agent@host), from the same pre-flip probe;
        the sequential comparison of a rate (C(error_rate_pct), C(delivery_loss_pct) in the criteria's
        C(comparison.metrics)) compares each instance's failed requests with them.
    type: dict
  tested:
    description: How many instances the wave tests in all (every phase's agents on every host); the
      sequential comparison shares its alpha among them. Default - the instances of O(test).
    type: int
  complete:
    description: Whether O(hosts) are all the hosts the agents run on. Only then is a connection
      that is no instance an impostor; in a C(--limit) run it is recorded as unattributed.
    type: bool
    default: true
notes:
  - In check mode the outcome is returned and nothing is written.
'''

EXAMPLES = r'''
- name: Judge and record checkpoint T+1h
  fleetwave.rollout.wave_checkpoint:
    wave: wave2
    label: T+1h
    run_id: "{{ _wave_run_id }}"
    artifacts_dir: "{{ fleet_artifacts_dir }}"
    hosts: "{{ ansible_play_hosts }}"
    phase: phase2
    test: [network-expert, tdd-expert]
    control: [git-expert, graph-expert, location-expert]
    reference: [git-expert, graph-expert, location-expert]
    criteria: "{{ _wave_plan.criteria }}"
    criteria_file: "{{ _wave_plan.criteria_file }}"
    info: "{{ _info }}"
    baseline: "{{ _baseline }}"
    probe: "{{ __probe }}"
  run_once: true
'''

RETURN = r'''
status_line:
  description:
    - Where the run stands after this step, in one line (also in C(runs/<run_id>/status.json), and
      the latest run's in C(status.json) at the store's root, rewritten with every journal record).
    - The audit_trail callback prints it, so the console and AWX's job output follow a long wave.
  returned: when written (not in check mode)
  type: str
  sample: "wave2 wave2-20261202T101500Z: checkpoint phase1 phase1-T+1h GO; next monitor phase1-monitor-011 due 2026-12-02T11:20:00.000Z"
outcome:
  description: GO, NO-GO, ROLLBACK or INCONCLUSIVE.
  returned: always
  type: str
  sample: GO
next_step:
  description: What the run does now - proceed, stop, rollback or ask (a person decides).
  returned: always
  type: str
  sample: proceed
reasons:
  description: One sentence per failed criterion, fired or unknown trigger and failed health check.
  returned: always
  type: list
  elements: str
  sample: ["primary latency_p50 failed on network-expert@dgx-2: latency_p50_ms 152.3 is not < 100 ms"]
fired:
  description: Names of the rollback triggers that fired.
  returned: always
  type: list
  elements: str
  sample: [agent_crash]
measured:
  description: Per agent instance (C(agent@host)), the figures judged.
  returned: always
  type: dict
  sample: {"network-expert@dgx-1": {"uptime_pct": 100.0, "latency_p50_ms": 0.61}}
wave_figures:
  description: The wave-level figures (overheads, load, latency degradation) and their inputs.
  returned: always
  type: dict
  sample: {"system_load": 0.4, "cpu_overhead_pct": 1.2}
detected_at:
  description: When every observation of the round was in hand (UTC, ISO 8601).
  returned: always
  type: str
  sample: "2026-11-23T10:00:00.123Z"
decided_at:
  description: When the gate decided (UTC, ISO 8601).
  returned: always
  type: str
  sample: "2026-11-23T10:00:00.125Z"
detected_epoch:
  description: RV(detected_at) in seconds since the epoch.
  returned: always
  type: float
  sample: 1795477200.123
decided_epoch:
  description: RV(decided_at) in seconds since the epoch.
  returned: always
  type: float
  sample: 1795477200.125
step:
  description: The round's step in the run journal - C(checkpoint), or C(monitoring round) for O(kind=monitor).
  returned: always
  type: str
  sample: checkpoint
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
