#!/usr/bin/python
# -*- coding: utf-8 -*-

from __future__ import annotations

DOCUMENTATION = r"""
---
module: agent_env
short_description: Manage an agent's systemd environment file, with recorded backups and restore
description:
  - Sets keys in an agent's C(EnvironmentFile=) file (for example C(/etc/agents/tdd-expert.env)),
    keeping comments, blank lines, key order and untouched lines exactly as they were.
  - With O(backup=true) the original file is copied into O(backup_dir) before any change and
    recorded in C(<backup_dir>/manifest.json), which O(state=restored) later uses to put it back.
  - The file is read with systemd's own C(EnvironmentFile=) grammar (C(\r) ends a line, a trailing
    backslash continues it, C(\q) inside double quotes stays C(\q), quoted parts concatenate).
    A file that is malformed or that systemd would read differently than it looks (line without
    C(=), invalid or duplicate key, quote never closed, comment ending in a backslash, C(export)
    prefix, byte-order mark, NUL, invalid UTF-8) is never rewritten; the module fails naming the
    file and line, never the line's text.
  - New values systemd cannot hold on one line (newline, carriage return, NUL or another control
    character other than tab) are refused.
  - Secrets are shown as C(********) in every result, diff and error. That is the values of keys whose names
    contain C(PASS), C(PWD), C(SECRET), C(TOKEN), C(KEY), C(CRED), C(AUTH), C(SEED), C(PRIVATE),
    C(COOKIE) or C(SESSION), keys given in O(secret_values) and keys listed in O(secret_keys).
    Under any key, the user information of a URL (C(nats://user:pw@host)) is masked.
  - Every change holds an exclusive lock, C(<backup_dir>/.lock), while it reads and rewrites the
    env file and the manifest, so that tasks running at the same time on one host lose nothing.
version_added: "1.0.0"
author: fleetwave maintainers
options:
  path:
    description: The env file to manage.
    type: path
    required: true
  state:
    description:
      - V(present) sets O(values), O(secret_values) and O(defaults), creating the file (and its
        parent directory, mode 0755) when it is missing.
      - V(restored) puts back the newest backup recorded for O(path) in the manifest, skipping
        the C(pre-restore) backups this state takes itself, or the one O(restore_from) names.
    type: str
    choices: [present, restored]
    default: present
  values:
    description: Keys to set. YAML booleans are written as C(true)/C(false).
    type: dict
    default: {}
  secret_values:
    description: Like O(values), for secrets; never logged and always masked in results and diffs.
    type: dict
    default: {}
  defaults:
    description:
      - Keys set only when absent from the file, so that install time can write
        C(ENABLE_UNIFIED_SUBJECTS=false) without undoing a later flip.
      - A key also given in O(values) or O(secret_values) takes that value instead.
    type: dict
    default: {}
  secret_keys:
    description: More key names to mask, for secrets whose names the pattern above does not catch.
    type: list
    elements: str
    default: []
  backup:
    description:
      - With O(state=present), copy the original file to C(<backup_dir>/<basename>.<YYYYmmddTHHMMSSffffffZ>)
        and record it in the manifest before changing it. No change (or no original file), no backup.
      - O(state=restored) always backs up the file it overwrites, labelled C(pre-restore).
    type: bool
    default: false
  backup_dir:
    description:
      - Where backups, C(manifest.json) and the lock file live; created with mode 0700, also when
        O(backup=false) (the lock lives there).
      - An existing directory with group or other permissions is tightened to 0700, with a warning.
        A symlink, or a directory owned by a user other than root or the one running the module, is refused.
      - O(state=restored) only restores backup files directly inside this directory; a manifest
        entry naming another place is refused.
    type: path
    default: /var/lib/fleetwave/backups
  label:
    description: Free text recorded with the backup in the manifest, for example C(wave2/phase1).
    type: str
  owner:
    description: Owner of the env file.
    type: str
  group:
    description: Group of the env file.
    type: str
  mode:
    description:
      - Mode of the env file, as an octal string or symbolic mode.
      - When not set, an existing file keeps its mode and owner (a 0600 file stays 0600) and a new
        file is created 0600.
    type: raw
  follow:
    description:
      - Whether to edit the file a symlinked O(path) points to (its mode and owner are kept).
      - With V(false), a symlink at O(path) is refused.
    type: bool
    default: false
  restore_from:
    description:
      - With O(state=restored), the backup to put back (as RV(backup_file) or RV(restored_from)
        returned it), instead of the newest; it must be recorded in the manifest for O(path), and
        may be a C(pre-restore) one. A rollback rehearsal puts the file it rolled back in place
        again this way, byte for byte.
    type: path
  require:
    description:
      - With O(state=restored), values the backup must have, or nothing is restored.
      - C(ENABLE_UNIFIED_SUBJECTS) is compared as a boolean (C(false) matches C(0) and C(no)),
        other keys as strings.
    type: dict
    default: {}
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
notes:
  - Writes go to a fsynced temporary file in the same directory, then M(agent_env) renames it into place.
  - The manifest records O(path) as given; use the same spelling to back up and to restore.
seealso:
  - module: agent_env_info
"""

EXAMPLES = r"""
- name: Ensure network-expert has the env file, flag off unless already set
  fleetwave.rollout.agent_env:
    path: /etc/agents/network-expert.env
    values:
      AGENT_NAME: network-expert
      AGENT_ID: 01936f88-d2a9-7000-8000-000000000008
      CAPABILITY_CLUSTER: infrastructure
      NATS_URL: nats://nats.internal:4222
    secret_values:
      NATS_PASSWORD: "{{ vault_wave_nats_password }}"
    defaults:
      ENABLE_UNIFIED_SUBJECTS: "false"
    owner: root
    group: agents
    mode: "0640"

- name: Ensure network-expert publishes on unified subjects (backed up first)
  fleetwave.rollout.agent_env:
    path: /etc/agents/network-expert.env
    values:
      ENABLE_UNIFIED_SUBJECTS: "true"
    backup: true
    label: wave2/phase1
  register: __wave_env
  notify: Restart agent

- name: Ensure network-expert runs its pre-wave configuration again (rollback)
  fleetwave.rollout.agent_env:
    path: /etc/agents/network-expert.env
    state: restored
    require:
      ENABLE_UNIFIED_SUBJECTS: "false"
"""

RETURN = r"""
path:
  description: The env file managed.
  returned: always
  type: str
  sample: /etc/agents/network-expert.env
values:
  description: Every key in the file afterwards (what check mode would write), secrets masked.
  returned: success
  type: dict
  sample: {"AGENT_NAME": "network-expert", "ENABLE_UNIFIED_SUBJECTS": "true", "NATS_PASSWORD": "********"}
previous:
  description: Every key in the file before the task, secrets masked; empty when the file was missing or unreadable.
  returned: success
  type: dict
  sample: {"AGENT_NAME": "network-expert", "ENABLE_UNIFIED_SUBJECTS": "false", "NATS_PASSWORD": "********"}
changed_keys:
  description: Keys added, changed or (when restoring) removed, in file order.
  returned: success
  type: list
  elements: str
  sample: [ENABLE_UNIFIED_SUBJECTS]
backup_file:
  description:
    - The backup taken of the original file (C(pre-restore) for O(state=restored)), or null when none was taken.
    - In check mode, the path a backup would have had.
  returned: success
  type: str
  sample: /var/lib/fleetwave/backups/network-expert.env.20250114T093000123456Z
restored_from:
  description: The backup whose content was (or already is) in O(path).
  returned: success and O(state=restored)
  type: str
  sample: /var/lib/fleetwave/backups/network-expert.env.20250114T093000123456Z
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.fleetwave.rollout.plugins.module_utils.agent_env import (
    FLAG_KEY, PRE_RESTORE_LABEL, EnvFile, EnvFileError, atomic_write, backup_name, backups_for, check_backup_file,
    ensure_backup_dir, host_lock, load_manifest, manifest_path, mask_value, mask_values, newest_backup, parse_bool,
    read_nofollow, sha256_bytes, utc_now, validate_values, write_backup,
)


def target_path(module):
    """The file to write: ``path`` itself, or with follow=true what its symlink points to."""
    path = module.params["path"]
    if os.path.islink(path) and not module.params["follow"]:
        module.fail_json(msg="%s is a symlink (to %s); agent_env does not follow symlinks unless follow=true; "
                             "nothing changed" % (path, os.readlink(path)), path=path)
    return os.path.realpath(path) if module.params["follow"] else path


def read_current(module, real_path):
    """(bytes or None when missing, os.stat or None)."""
    if not os.path.lexists(real_path):
        return None, None
    try:
        return read_nofollow(real_path, "the env file")
    except EnvFileError as e:
        module.fail_json(msg="%s; nothing changed" % e, path=module.params["path"])


def load_manifest_or_fail(module, backup_dir):
    try:
        return load_manifest(backup_dir)
    except EnvFileError as e:
        module.fail_json(msg="%s; nothing changed" % e, path=module.params["path"])


def write_env(module, real_path, content):
    parent = os.path.dirname(real_path)
    if not os.path.isdir(parent):
        os.makedirs(parent)
        os.chmod(parent, 0o755)  # /etc/agents itself holds nothing secret; the files do
    atomic_write(module, real_path, content)


def text_diff(path, before, after):
    return dict(before=before, after=after, before_header=path, after_header=path)


def finish(module, result, real_path, diffs, warning=None):
    """Apply owner/group/mode (only those asked for), then exit with the text and attribute diffs."""
    if warning:
        module.warn(warning)
    if os.path.exists(real_path) and any(module.params[k] is not None for k in ("owner", "group", "mode")):
        attr_diff = {}
        file_args = module.load_file_common_arguments(module.params, path=real_path)
        result["changed"] = module.set_fs_attributes_if_different(file_args, result["changed"], diff=attr_diff)
        if attr_diff:
            diffs.append(attr_diff)
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


def locked(module, body, *args):
    """Run ``body`` holding the host lock in backup_dir (creating/checking that directory first).

    Check mode writes nothing, so it neither creates the directory nor waits for the lock.
    """
    backup_dir = module.params["backup_dir"]
    if module.check_mode:
        return body(*args, warning=None)
    warning = ensure_backup_dir(backup_dir)
    with host_lock(backup_dir):
        return body(*args, warning=warning)


def present(module, secret_keys, real_path, warning):
    p = module.params
    path = p["path"]
    new = {}
    for source in ("values", "secret_values"):
        checked, err = validate_values(p[source], source)
        if err:
            module.fail_json(msg="%s (for %s); nothing changed" % (err, path), path=path)
        new.update(checked)
    defaults, err = validate_values(p["defaults"], "defaults")
    if err:
        module.fail_json(msg="%s (for %s); nothing changed" % (err, path), path=path)

    original, st = read_current(module, real_path)
    try:
        env = EnvFile(path) if original is None else EnvFile.from_bytes(original, path)
    except EnvFileError as e:
        module.fail_json(msg="%s; nothing changed" % e, path=path)
    previous, before = env.values, env.render(secret_keys)
    changed_keys = env.update(new)
    changed_keys += [k for k in env.update(defaults, only_missing=True) if k not in changed_keys]
    changed = original is None or bool(changed_keys)

    result = dict(changed=changed, path=path, backup_file=None, changed_keys=changed_keys,
                  values=mask_values(env.values, secret_keys), previous=mask_values(previous, secret_keys))
    if changed and p["backup"] and original is not None:
        # Load first: a malformed manifest must fail the task before anything is written.
        manifest = load_manifest_or_fail(module, p["backup_dir"])
        if module.check_mode:
            result["backup_file"] = backup_name(path, p["backup_dir"], utc_now())
        else:
            entry, _ = write_backup(module, path, original, p["backup_dir"], manifest, p["label"],
                                    previous.get(FLAG_KEY), st)
            result["backup_file"] = entry["backup"]
    if changed and not module.check_mode:
        write_env(module, real_path, env.render().encode("utf-8"))
    finish(module, result, real_path, [text_diff(path, before, env.render(secret_keys))], warning)


def check_require(module, env, require, backup_file, secret_keys):
    path = module.params["path"]
    for key, want in require.items():
        want = ("true" if want else "false") if isinstance(want, bool) else str(want)
        have = env.values.get(key)
        if key == FLAG_KEY and have is not None:
            try:
                ok = parse_bool(have, backup_file, env.line_of(key)) == parse_bool(want, "require")
            except EnvFileError as e:
                module.fail_json(msg="%s; not restoring %s, nothing changed" % (e, path), path=path)
        else:
            ok = have == want
        if not ok:
            shown = "is missing %s" % key if have is None else "has %s=%s" % (key, mask_value(key, have, secret_keys))
            module.fail_json(msg="backup %s for %s %s but require says %s=%s; not restoring, nothing changed"
                                 % (backup_file, path, shown, key, mask_value(key, want, secret_keys)), path=path)


def restored(module, secret_keys, real_path, warning):
    p = module.params
    path, backup_dir = p["path"], p["backup_dir"]
    manifest = load_manifest_or_fail(module, backup_dir)
    wanted = p["restore_from"]
    if wanted:
        entry = next((b for b in backups_for(manifest, path) if b["backup"] == wanted), None)
        if entry is None:
            module.fail_json(msg="restore_from %s is not a backup recorded for %s in %s; nothing changed"
                                 % (wanted, path, manifest_path(backup_dir)), path=path)
    else:
        entry = newest_backup(manifest, path)
    if entry is None:
        module.fail_json(msg="no backup recorded for %s in %s; nothing to restore" % (path, manifest_path(backup_dir)),
                         path=path)
    backup_file = entry["backup"]
    try:
        check_backup_file(backup_dir, backup_file)
        content, _ = read_nofollow(backup_file, "the backup")
    except EnvFileError as e:
        module.fail_json(msg="%s; not restoring %s, nothing changed" % (e, path), path=path)
    except OSError as e:
        module.fail_json(msg="backup %s of %s (recorded in %s) cannot be read: %s; nothing changed"
                             % (backup_file, path, manifest_path(backup_dir), e.strerror), path=path)
    digest = sha256_bytes(content)
    if digest != entry.get("sha256"):
        module.fail_json(msg="backup %s of %s has sha256 %s but %s recorded %s; refusing to restore a "
                             "changed backup, nothing changed"
                             % (backup_file, path, digest, manifest_path(backup_dir), entry.get("sha256")), path=path)
    try:
        target = EnvFile.from_bytes(content, backup_file)
    except EnvFileError as e:
        module.fail_json(msg="%s; not restoring %s, nothing changed" % (e, path), path=path)
    check_require(module, target, p["require"], backup_file, secret_keys)

    current, st = read_current(module, real_path)
    try:
        env = EnvFile.from_bytes(current, path) if current is not None else EnvFile(path)
        previous, before = env.values, env.render(secret_keys)
    except EnvFileError as e:
        # A broken file is exactly what a restore is for; its text is not shown (the error never holds values).
        env, previous, before = None, {}, "# %s (content not shown)\n" % e
    values = target.values
    changed_keys = [k for k in list(values) + [k for k in previous if k not in values]
                    if previous.get(k) != values.get(k)]
    changed = current != content

    result = dict(changed=changed, path=path, restored_from=backup_file, backup_file=None, changed_keys=changed_keys,
                  values=mask_values(values, secret_keys), previous=mask_values(previous, secret_keys))
    if changed and current is not None:
        if module.check_mode:
            result["backup_file"] = backup_name(path, backup_dir, utc_now())
        else:
            flag = env.values.get(FLAG_KEY) if env is not None else None
            pre, _ = write_backup(module, path, current, backup_dir, manifest, PRE_RESTORE_LABEL, flag, st)
            result["backup_file"] = pre["backup"]
    if changed and not module.check_mode:
        write_env(module, real_path, content)
    finish(module, result, real_path, [text_diff(path, before, target.render(secret_keys))], warning)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", default="present", choices=["present", "restored"]),
            values=dict(type="dict", default={}),
            secret_values=dict(type="dict", default={}, no_log=True),
            defaults=dict(type="dict", default={}),
            secret_keys=dict(type="list", elements="str", default=[], no_log=False),
            backup=dict(type="bool", default=False),
            backup_dir=dict(type="path", default="/var/lib/fleetwave/backups"),
            label=dict(type="str"),
            owner=dict(type="str"),
            group=dict(type="str"),
            mode=dict(type="raw"),
            follow=dict(type="bool", default=False),
            require=dict(type="dict", default={}),
            restore_from=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    secret_keys = set(module.params["secret_keys"]) | set(module.params["secret_values"])
    state, path = module.params["state"], module.params["path"]
    # Silently ignoring an option would hide a mistake in a rollback play.
    other_state = {"present": ("require", "restore_from"), "restored": ("values", "secret_values", "defaults")}[state]
    misplaced = [k for k in other_state if module.params[k]]
    if misplaced:
        module.fail_json(msg="%s cannot be used with state=%s (for %s); nothing changed"
                             % ("/".join(misplaced), state, path), path=path)
    # Ansible scrubs no_log values from everything it returns, the echoed module_args included:
    # a secret passed in `values` (e.g. NATS_URL with a password) must not show there either.
    for source in ("values", "defaults", "require"):
        for key, value in (module.params[source] or {}).items():
            if isinstance(value, str) and value and mask_value(str(key), value, secret_keys) != value:
                module.no_log_values.add(value)
    real_path = target_path(module)
    try:
        locked(module, present if state == "present" else restored, module, secret_keys, real_path)
    except (OSError, EnvFileError) as e:
        # Validation has passed by now: this is the backup directory, its lock or a write failing
        # (disk full, read-only fs, permissions).
        module.fail_json(msg="could not update %s (backups in %s): %s; nothing changed"
                             % (path, module.params["backup_dir"], e), path=path)


if __name__ == "__main__":
    main()
