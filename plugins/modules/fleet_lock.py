#!/usr/bin/python
# -*- coding: utf-8 -*-
# Documentation stub: the work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r'''
---
module: fleet_lock
short_description: Take, renew or release the fleet lock - one run at a time changes the fleet
description:
  - Every run that changes the fleet (a wave, a rollback, C(site.yml)) holds the fleet lock, the
    key C(lock.<fleet>) of the fleet's state store. Its value names the holder - who (the AWX user,
    else C($USER)), run id, playbook, controller host and process, since - and a lease,
    C(lease_until), that the holder renews (a wave at every round).
  - O(state=acquired) takes the lock. Held by another run whose lease still runs, it is refused,
    and the task fails naming the holder - who, run id, playbook, since, lease until - before the
    run changes anything. A lock whose lease has expired is taken over, and so is one whose holder
    provably is gone (a run of this same controller whose process has exited); the takeover is
    written into the lock and returned (RV(takeover)). O(force) takes over a live holder's lock
    (recorded the same way). The same O(run_id) taking it again is a resumed run - allowed once
    that run's earlier process is gone (or its lease expired), and said so (RV(outcome)
    C(resumed)); while it may still run, refused like any other holder.
  - O(resume_run_id) names an unfinished run that this one would continue (a wave re-run after its
    controller was killed) - when the lock is still held by that run, it is resumed under that run
    id (RV(run_id)); otherwise the lock is taken for O(run_id) as usual, or, with
    O(resume_required), refused.
  - O(state=renewed) extends this run's lease to now + O(lease_seconds); when another run has
    taken the lock meanwhile it fails, naming that run, so this run stops before changing more.
  - O(state=released) gives the lock up if this run holds it; a lock already gone is fine, one
    held by another run is left to it (a warning says so).
  - The store is chosen by O(backend) - a local directory (O(state_dir)) or a NATS JetStream
    Key-Value bucket (O(bucket), over the connection options) - both with compare-and-swap on the
    entry's revision. Set them once per play with C(module_defaults) (the inventory's
    C(fleet_lock_defaults)).
  - Runs once on the controller (an action plugin).
version_added: "1.1.0"
author: fleetwave maintainers
extends_documentation_fragment:
  - fleetwave.rollout.nats.url_optional
options:
  state:
    description: Take the lock, renew this run's lease, or release it.
    type: str
    required: true
    choices: [acquired, renewed, released]
  run_id:
    description: The run that holds (or wants) the lock.
    type: str
    required: true
  resume_run_id:
    description:
      - For O(state=acquired), an unfinished run to continue if the lock is still held by it (see
        above). Empty - never resume.
    type: str
    default: ''
  resume_required:
    description:
      - For O(state=acquired), take nothing unless the lock still names O(resume_run_id) - a run a
        workflow paused and handed over is gone on with, never replaced by a new run (a run that
        took the fleet since, a rollback say, ended it).
    type: bool
    default: false
  backend:
    description:
      - Where the lock lives. C(directory) - a file in O(state_dir), changed under an exclusive
        C(flock) and written atomically. C(jetstream) - the NATS JetStream Key-Value bucket
        O(bucket), created on first use (O(url) and the credentials are then required).
    type: str
    choices: [directory, jetstream]
    default: directory
  state_dir:
    description: The directory of the C(directory) backend (the inventory's C(fleet_state_dir)).
    type: path
  bucket:
    description: The Key-Value bucket of the C(jetstream) backend.
    type: str
    default: fleetwave
  fleet:
    description: The fleet's name; the lock is the key C(lock.<fleet>).
    type: str
    default: fleet
  playbook:
    description: The playbook of the run, shown to whoever is refused (default - the play's name).
    type: str
    default: ''
  operator:
    description: Who runs it (default - the AWX user, C(awx_user_name) or C(tower_user_name), else C($USER)).
    type: str
    default: ''
  lease_seconds:
    description:
      - How long the hold lasts without a renewal, in [10, 86,400] seconds; C(inf) and C(NaN) are refused.
      - A wave renews it at every round, so it must outlast the wait between two rounds (see O(renew_interval)).
    type: float
    default: 900
  renew_interval:
    description:
      - For O(state=acquired), the interval at which the run will renew the lease (a wave - its
        C(wave_monitor_interval_seconds)). The lease must be at least twice as long - a round's wait
        and the round itself - or the lock is refused before it is taken.
    type: float
  force:
    description:
      - For O(state=acquired), take the lock over even from a live holder whose lease still runs
        (recorded in RV(takeover) as forced). For a rollback that cannot wait for a stuck wave.
    type: bool
    default: false
  force_run_id:
    description:
      - For O(state=acquired), take the lock over from this run only, live or not, as O(force) does;
        any other holder still refuses. For the rollback a workflow runs after a failed wave, which
        the wave's job handed over (its C(set_stats) run id), so a wave started since is not taken over.
    type: str
    default: ""
notes:
  - In check mode nothing is written; the result says what would happen (RV(outcome)), and a lock
    held by another run gives a warning rather than a failure.
  - Credentials (O(password), O(token), user info in O(url)) never appear in the result or its messages.
requirements:
  - nats-py on the controller, for the C(jetstream) backend
'''

EXAMPLES = r'''
- name: Take the fleet lock
  fleetwave.rollout.fleet_lock:
    state: acquired
    run_id: "{{ _wave_run_id }}"
    playbook: wave2.yml
    backend: directory
    state_dir: "{{ fleet_artifacts_dir }}/state"
    lease_seconds: 900
    renew_interval: 300
  register: __lock

- name: Renew the lease, in the same store over NATS JetStream
  fleetwave.rollout.fleet_lock:
    state: renewed
    run_id: "{{ _wave_run_id }}"
    backend: jetstream
    bucket: fleetwave
    url: "{{ fleet_nats_controller_url }}"
    user: "{{ fleet_nats_user }}"
    password: "{{ fleet_nats_password }}"
    lease_seconds: 900

- name: Release it (settings from the inventory, for every fleet_lock task of the play)
  fleetwave.rollout.fleet_lock:
    state: released
    run_id: "{{ _wave_run_id }}"
  module_defaults:
    fleetwave.rollout.fleet_lock: "{{ fleet_lock_defaults }}"
'''

RETURN = r'''
outcome:
  description:
    - What was done (in check mode - what would be done) -
      C(acquired), C(resumed) (the same run id took it again), C(taken over), C(renewed),
      C(released), C(already released) (nobody held it), C(not held) (another run holds it; left
      to it), C(refused) (another run holds it - the task fails; in check mode it warns), C(lost)
      (renewal refused - another run holds it; the task fails), C(failed) (the store could not be used).
  returned: always
  type: str
  sample: taken over
run_id:
  description: The run that holds the lock after O(state=acquired) - O(resume_run_id) when it was resumed, else O(run_id).
  returned: when acquired, resumed or taken over
  type: str
  sample: wave2-20261201T101500Z
holder:
  description: The lock's holder after the task (for C(refused) and C(not held), the other run).
  returned: when a lock is or was held
  type: dict
  sample: {"who": "alice", "run_id": "wave2-20261201T101500Z", "playbook": "wave2.yml", "controller": "ctl-1",
           "pid": 4242, "process": "9f1c.../pid:[4026531836]/123456", "since": "2026-12-01T10:15:00.123Z",
           "lease_until": "2026-12-01T10:30:00.123Z", "lease_seconds": 900.0}
takeover:
  description:
    - When the lock was taken over - the previous holder, why (its lease expired, its process
      exited, or forced), since when its lease had expired and for how long; else null.
  returned: always
  type: dict
  sample: {"previous": {"who": "bob", "run_id": "wave2-20261130T080000Z"},
           "reason": "its lease expired at 2026-11-30T09:00:00.000Z",
           "forced": false, "at": "2026-12-01T10:15:00.123Z", "expired_since": "2026-11-30T09:00:00.000Z",
           "expired_for_seconds": 91500.123}
lock:
  description: Which lock - its key, the backend and where the store is (credentials redacted).
  returned: always
  type: dict
  sample: {"key": "lock.fleet", "backend": "directory", "where": "/srv/fleetwave/artifacts/state", "revision": 7}
lapsed_seconds:
  description: For O(state=renewed), how long the lease had already expired before it was renewed (0 - it had not).
  returned: when renewed
  type: float
  sample: 0
'''
