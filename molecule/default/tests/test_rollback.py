"""After converge: tdd-expert, flipped in prepare, is back on its pre-flip env file and legacy-only;
network-expert, flipped by converge, is left as it was."""

from __future__ import annotations

import hashlib
import os

import pytest
import testinfra.utils.ansible_runner
from nats.errors import NoRespondersError

# podman exec into the containers, which are named after the inventory hosts (see conftest.py).
_INVENTORY = testinfra.utils.ansible_runner.AnsibleRunner.get_runner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = ["podman://" + name for name in _INVENTORY.get_hosts("dgx")]

FLAG = "ENABLE_UNIFIED_SUBJECTS"
ROLLED_BACK = "tdd-expert"
# Flipped by converge before the rollback (test_default.py): the rollback leaves it flipped.
FLIPPED = "network-expert"
FLIPPED_LABEL = "molecule/default"
UNTOUCHED = ["graph-expert"]
FLIP_LABEL = "molecule/rollback"
PRE_RESTORE = "pre-restore"


def test_rolled_back_agent_has_the_flag_off(read_env, env_path):
    assert read_env(env_path(ROLLED_BACK))[FLAG] == "false"


def test_env_file_is_the_flip_backup_byte_for_byte(host, env_path, backups):
    flip = backups(ROLLED_BACK, label=FLIP_LABEL)
    assert len(flip) == 1, "expected one backup labelled %s, the manifest has %s" % (FLIP_LABEL, backups(ROLLED_BACK))
    current = host.file(env_path(ROLLED_BACK)).content
    assert current == host.file(flip[0]["backup"]).content
    assert hashlib.sha256(current).hexdigest() == flip[0]["sha256"]


def test_pre_restore_backup_was_taken(backups):
    entries = backups(ROLLED_BACK, label=PRE_RESTORE)
    # One rollback did the work; the idempotence run restored nothing, so took no second copy.
    assert len(entries) == 1, "expected one pre-restore backup, the manifest has %s" % backups(ROLLED_BACK)
    assert entries[0]["flag"] == "true"


def test_pre_restore_backup_holds_the_flipped_env_file(host, read_env, backups):
    backup = backups(ROLLED_BACK, label=PRE_RESTORE)[0]["backup"]
    assert host.file(backup).is_file
    assert read_env(backup)[FLAG] == "true"


@pytest.mark.parametrize("agent", UNTOUCHED)
def test_untouched_agent_keeps_the_flag_off(read_env, env_path, agent):
    assert read_env(env_path(agent))[FLAG] == "false"


def test_rolled_back_agent_unit_is_running_and_enabled(host):
    # Every agent's unit: test_default.py.
    service = host.service("agent@%s.service" % ROLLED_BACK)
    assert service.is_running
    assert service.is_enabled


def test_rollback_of_one_agent_leaves_the_other_flipped_agent_alone(read_env, env_path, backups):
    # Its flip backup only: the rollback neither restored it nor took a pre-restore copy of it.
    assert read_env(env_path(FLIPPED))[FLAG] == "true"
    assert [b.get("label") for b in backups(FLIPPED)] == [FLIPPED_LABEL], backups(FLIPPED)


def test_flip_of_another_agent_took_no_backup_of_the_rolled_back_one(backups):
    # Its flip and its pre-restore copy, nothing from network-expert's flip.
    assert [b.get("label") for b in backups(ROLLED_BACK)] == [FLIP_LABEL, PRE_RESTORE], backups(ROLLED_BACK)


def test_rolled_back_agent_was_restarted_after_the_restore(backups, backup_time, active_since):
    # Without the restart the unit would still run the flipped configuration read before the
    # restore (which takes the pre-restore backup just before writing the file).
    assert active_since(ROLLED_BACK) > backup_time(backups(ROLLED_BACK, label=PRE_RESTORE)[0])


def test_rolled_back_agent_has_no_unified_subscriber(subjects, ping):
    with pytest.raises(NoRespondersError):
        ping(subjects(ROLLED_BACK)[1])


def test_rolled_back_agent_answers_on_its_legacy_subject_with_the_flag_off(subjects, ping, hostname):
    reply = ping(subjects(ROLLED_BACK)[0])
    assert reply["unified"] is False
    assert reply["host"] == hostname
