"""One real ansible-playbook run of agent_env on localhost: flip with backup, idempotence, restore."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = pathlib.Path(__file__).resolve().parents[2]
ORIGINAL = "# tdd-expert\nAGENT_NAME=tdd-expert\nNATS_PASSWORD='hunter2'\nENABLE_UNIFIED_SUBJECTS=false\n"

PLAYBOOK = """\
- name: Exercise agent_env against a scratch directory
  hosts: localhost
  gather_facts: false
  vars:
    _test_env: "{{ scratch }}/agents/tdd-expert.env"
    _test_backups: "{{ scratch }}/backups"
  tasks:
    - name: Ensure tdd-expert has unified subjects on, backed up first
      fleetwave.rollout.agent_env:
        path: "{{ _test_env }}"
        values:
          ENABLE_UNIFIED_SUBJECTS: true
        secret_values:
          NATS_TOKEN: not-for-the-log
        backup: true
        backup_dir: "{{ _test_backups }}"
        label: wave2/phase2
      register: __test_first

    - name: Ensure the same settings again change nothing
      fleetwave.rollout.agent_env:
        path: "{{ _test_env }}"
        values:
          ENABLE_UNIFIED_SUBJECTS: true
        secret_values:
          NATS_TOKEN: not-for-the-log
        backup: true
        backup_dir: "{{ _test_backups }}"
        label: wave2/phase2
      register: __test_second

    - name: Ensure tdd-expert runs its pre-wave configuration again
      fleetwave.rollout.agent_env:
        path: "{{ _test_env }}"
        state: restored
        backup_dir: "{{ _test_backups }}"
        require:
          ENABLE_UNIFIED_SUBJECTS: false
      register: __test_restore

    - name: Read the restored file back
      fleetwave.rollout.agent_env_info:
        paths:
          - "{{ _test_env }}"
        backup_dir: "{{ _test_backups }}"
      register: __test_info

    - name: Ensure each step reported what it did
      ansible.builtin.assert:
        that:
          - __test_first is changed
          - __test_first.backup_file is string
          - __test_second is not changed
          - __test_second.backup_file is none
          - __test_restore is changed
          - __test_restore.restored_from == __test_first.backup_file
          - __test_info.files[_test_env].unified is false
          - __test_info.files[_test_env].backups | length == 2
"""


def test_flip_idempotence_and_restore(tmp_path):
    agents = tmp_path / "agents"
    agents.mkdir()
    (agents / "tdd-expert.env").write_text(ORIGINAL)
    (tmp_path / "play.yml").write_text(PLAYBOOK)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(
        ANSIBLE_COLLECTIONS_PATH=str(REPO / "collections"),
        ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_REMOTE_TEMP=str(tmp_path / "tmp"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_RETRY_FILES_ENABLED="0",
    )
    playbook = pathlib.Path(sys.executable).parent / "ansible-playbook"
    proc = subprocess.run(
        [str(playbook), "-i", "localhost,", "-c", "local", "--diff", "play.yml",
         "-e", "ansible_python_interpreter=%s" % sys.executable, "-e", "scratch=%s" % tmp_path],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (agents / "tdd-expert.env").read_text() == ORIGINAL
    assert "hunter2" not in proc.stdout and "not-for-the-log" not in proc.stdout
    assert "+ENABLE_UNIFIED_SUBJECTS=true" in proc.stdout  # the --diff of the first task
