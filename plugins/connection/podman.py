# -*- coding: utf-8 -*-
# The stand-ins' connection: containers.podman.podman with pipelining. A task then costs one
# `podman exec -i` per host (the module on stdin, as over SSH with pipelining) instead of a mount,
# a temp dir, a copy, a chmod, the run and a cleanup - each its own podman process, which on a
# small controller is most of what a task on a stand-in costs.

from __future__ import annotations

DOCUMENTATION = r'''
---
name: podman
short_description: Run tasks in the sandbox's podman stand-ins, pipelined
description:
  - The C(containers.podman.podman) connection with pipelining - each module is sent on the
    standard input of one C(podman exec -i) - for the systemd stand-ins of the sandbox, test and
    bench fleets (C(scripts/sandbox)). Real hosts are reached over SSH, pipelined the same way
    (C(pipelining = true) in C(ansible.cfg)).
  - The container's filesystem is not mounted; files (C(copy), C(template)) go in with C(podman cp).
author: fleetwave maintainers
version_added: "1.2.0"
options:
  remote_addr:
    description: The container's name or ID.
    default: inventory_hostname
    vars:
      - name: ansible_host
      - name: inventory_hostname
      - name: ansible_podman_host
  remote_user:
    description: User to run commands as inside the container (default the container's).
    ini:
      - section: defaults
        key: remote_user
    env:
      - name: ANSIBLE_REMOTE_USER
    vars:
      - name: ansible_user
  podman_extra_args:
    description: Extra arguments to the podman command line.
    default: ''
    ini:
      - section: defaults
        key: podman_extra_args
    vars:
      - name: ansible_podman_extra_args
    env:
      - name: ANSIBLE_PODMAN_EXTRA_ARGS
  podman_executable:
    description: The podman executable.
    default: podman
    vars:
      - name: ansible_podman_executable
    env:
      - name: ANSIBLE_PODMAN_EXECUTABLE
  pipelining:
    description: Send modules on standard input, one podman process per task.
    type: boolean
    default: true
    ini:
      - section: defaults
        key: pipelining
      - section: connection
        key: pipelining
    env:
      - name: ANSIBLE_PIPELINING
    vars:
      - name: ansible_pipelining
'''

import shlex

from ansible.module_utils.common.text.converters import to_native
from ansible.plugins.connection import ConnectionBase
from ansible_collections.containers.podman.plugins.connection.podman import Connection as PodmanConnection


class Connection(PodmanConnection):
    transport = 'fleetwave.rollout.podman'
    has_pipelining = True

    def _connect(self):
        # No `podman mount` (a process per task): files go in with `podman cp`.
        ConnectionBase._connect(self)
        self._mount_point = None
        self._connected = True
        return self

    def exec_command(self, cmd, in_data=None, sudoable=False):
        ConnectionBase.exec_command(self, cmd, in_data=in_data, sudoable=sudoable)
        if not self._connected:
            self._connect()
        # `podman exec` passes stdin on only with -i: a pipelined module arrives that way.
        args = ['exec'] + (['-i'] if in_data is not None else []) + (['--user', self.user] if self.user else [])
        return self._podman(args, shlex.split(to_native(cmd, errors='surrogate_or_strict')), in_data)
