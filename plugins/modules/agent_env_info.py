#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import annotations

DOCUMENTATION = r"""
---
module: agent_env_info
short_description: Read agents' systemd environment files and their recorded backups
description:
  - For each env file, reports whether it exists, its values (secrets masked), whether
    C(ENABLE_UNIFIED_SUBJECTS) is on, and the backups recorded for it in C(<backup_dir>/manifest.json).
  - Files are read with systemd's C(EnvironmentFile=) grammar, as M(agent_env) reads them
    (C(FOO=1\rENABLE_UNIFIED_SUBJECTS=true) sets the flag); see M(agent_env) for what is refused.
  - Never changes anything.
version_added: "1.0.0"
author: fleetwave maintainers
options:
  paths:
    description: The env files to read.
    type: list
    elements: path
    required: true
  backup_dir:
    description: Where the backups and C(manifest.json) written by M(agent_env) live.
    type: path
    default: /var/lib/fleetwave/backups
  fail_on_malformed:
    description:
      - Fail, naming the file and line, when an env file cannot be parsed or its
        C(ENABLE_UNIFIED_SUBJECTS) is not a boolean.
      - With V(false), report the problem in that file's RV(files.error) instead.
      - A malformed manifest always fails.
    type: bool
    default: true
  secret_keys:
    description:
      - More key names to mask, besides those containing C(PASS), C(PWD), C(SECRET), C(TOKEN), C(KEY),
        C(CRED), C(AUTH), C(SEED), C(PRIVATE), C(COOKIE) or C(SESSION).
      - Credentials in URLs (C(nats://user:pw@host)) are masked under any key.
    type: list
    elements: str
    default: []
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
seealso:
  - module: agent_env
"""

EXAMPLES = r"""
- name: Read the wave 2 env files
  fleetwave.rollout.agent_env_info:
    paths:
      - /etc/agents/network-expert.env
      - /etc/agents/tdd-expert.env
  register: __wave_env_info

- name: Ensure network-expert has unified subjects on
  ansible.builtin.assert:
    that: __wave_env_info.files['/etc/agents/network-expert.env'].unified
    fail_msg: ENABLE_UNIFIED_SUBJECTS is not true in /etc/agents/network-expert.env

- name: Ensure a backup exists before the wave starts
  ansible.builtin.assert:
    that: __wave_env_info.files['/etc/agents/tdd-expert.env'].backups | length > 0
    fail_msg: no backup of /etc/agents/tdd-expert.env recorded; run the backup step first
"""

RETURN = r"""
files:
  description: One entry per requested path, keyed by that path.
  returned: always
  type: dict
  sample:
    /etc/agents/network-expert.env:
      path: /etc/agents/network-expert.env
      exists: true
      values: {"AGENT_NAME": "network-expert", "ENABLE_UNIFIED_SUBJECTS": "true", "NATS_PASSWORD": "********"}
      unified: true
      error: null
      backups:
        - path: /etc/agents/network-expert.env
          backup: /var/lib/fleetwave/backups/network-expert.env.20250114T093000123456Z
          sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
          created: "2025-01-14T09:30:00.123456Z"
          label: wave2/phase1
          flag: "false"
  contains:
    path:
      description: The file.
      returned: always
      type: str
      sample: /etc/agents/network-expert.env
    exists:
      description: Whether the file exists.
      returned: always
      type: bool
      sample: true
    values:
      description: Every key in the file, secrets masked; empty when missing or malformed.
      returned: always
      type: dict
      sample: {"ENABLE_UNIFIED_SUBJECTS": "true", "NATS_PASSWORD": "********"}
    unified:
      description:
        - C(ENABLE_UNIFIED_SUBJECTS) as a boolean.
        - Null when the key (or the file) is absent, or the file is malformed.
      returned: always
      type: bool
      sample: true
    backups:
      description: Manifest entries for this path, newest first (C(pre-restore) ones included).
      returned: always
      type: list
      elements: dict
      sample:
        - backup: /var/lib/fleetwave/backups/network-expert.env.20250114T093000123456Z
          label: wave2/phase1
    error:
      description:
        - Why the file could not be read (path, line, reason), only with O(fail_on_malformed=false).
        - Null otherwise.
      returned: always
      type: str
      sample: "/etc/agents/tdd-expert.env line 3: 'ENABLE_UNIFIED_SUBJECTS' is defined twice (first on line 1)"
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fleetwave.rollout.plugins.module_utils.agent_env import EnvFile, EnvFileError, backups_for, load_manifest, mask_values


def describe(path, manifest, secret_keys):
    """The report for one path; raises EnvFileError when it is malformed."""
    info = dict(path=path, exists=os.path.exists(path), values={}, unified=None, error=None,
                backups=backups_for(manifest, path))
    if info["exists"]:
        with open(path, "rb") as f:
            env = EnvFile.from_bytes(f.read(), path)
        info.update(unified=env.flag(), values=mask_values(env.values, secret_keys))
    return info


def main():
    module = AnsibleModule(
        argument_spec=dict(
            paths=dict(type="list", elements="path", required=True),
            backup_dir=dict(type="path", default="/var/lib/fleetwave/backups"),
            fail_on_malformed=dict(type="bool", default=True),
            secret_keys=dict(type="list", elements="str", default=[], no_log=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        manifest = load_manifest(p["backup_dir"])
    except EnvFileError as e:
        module.fail_json(msg=str(e))

    files = {}
    for path in p["paths"]:
        try:
            files[path] = describe(path, manifest, set(p["secret_keys"]))
        except (EnvFileError, OSError) as e:
            if p["fail_on_malformed"]:
                module.fail_json(msg=str(e), path=path)
            files[path] = dict(path=path, exists=os.path.exists(path), values={}, unified=None,
                               backups=backups_for(manifest, path), error=str(e))
    module.exit_json(changed=False, files=files)


if __name__ == "__main__":
    main()
