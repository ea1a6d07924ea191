"""After converge: every agent installed, network-expert flipped by wave_deploy, graph-expert untouched
(tdd-expert, flipped in prepare and rolled back by converge: test_rollback.py)."""

from __future__ import annotations

import os

import pytest
import testinfra.utils.ansible_runner
from nats.errors import NoRespondersError

# podman exec into the containers, which are named after the inventory hosts (see conftest.py).
_INVENTORY = testinfra.utils.ansible_runner.AnsibleRunner.get_runner(os.environ["MOLECULE_INVENTORY_FILE"])
testinfra_hosts = ["podman://" + name for name in _INVENTORY.get_hosts("dgx")]

FLAG = "ENABLE_UNIFIED_SUBJECTS"
FLIPPED = "network-expert"
# Flipped in prepare, rolled back in converge: test_rollback.py checks it.
ROLLED_BACK = "tdd-expert"
UNTOUCHED = ["graph-expert"]
EVERY_AGENT = [FLIPPED, ROLLED_BACK] + UNTOUCHED
LABEL = "molecule/default"
REFERENCE_AGENT = "/opt/fleetwave/reference-agent/reference_agent.py"
FAULTS_OFF = {"FAULT_DROP_UNIFIED_RATE": "0", "FAULT_REPLY_DELAY_MS": "0", "FAULT_CRASH_AFTER_S": "0",
              "FAULT_REFUSE_START": "false"}


def test_flipped_agent_has_the_flag_on(read_env, env_path):
    assert read_env(env_path(FLIPPED))[FLAG] == "true"


@pytest.mark.parametrize("agent", UNTOUCHED)
def test_untouched_agent_keeps_the_flag_off(read_env, env_path, agent):
    assert read_env(env_path(agent))[FLAG] == "false"


def test_flip_backup_is_recorded_in_the_manifest(backups, backup_dir):
    entries = backups(FLIPPED, label=LABEL)
    assert len(entries) == 1, "expected one backup labelled %s, the manifest has %s" % (LABEL, backups(FLIPPED))
    assert entries[0]["backup"].startswith(backup_dir + "/network-expert.env.")
    assert entries[0]["flag"] == "false"


def test_flip_backup_holds_the_flag_off(host, read_env, backups):
    backup = backups(FLIPPED, label=LABEL)[0]["backup"]
    assert host.file(backup).is_file
    assert read_env(backup)[FLAG] == "false"


@pytest.mark.parametrize("agent", UNTOUCHED)
def test_untouched_agent_has_no_backup(backups, agent):
    assert backups(agent) == []


def test_unit_template_is_installed(host):
    unit = host.file("/etc/systemd/system/agent@.service")
    assert unit.is_file
    assert "EnvironmentFile=/etc/agents/%i.env" in unit.content_string


@pytest.mark.parametrize("agent", EVERY_AGENT)
def test_agent_unit_is_running_and_enabled(host, agent):
    service = host.service("agent@%s.service" % agent)
    assert service.is_running
    assert service.is_enabled


def test_flipped_agent_was_restarted_after_the_flip(backups, backup_time, active_since):
    # Had the restart been skipped, the unit would still be the instance started at install
    # time, before the backup was taken, running with the flag off.
    assert active_since(FLIPPED) > backup_time(backups(FLIPPED, label=LABEL)[0])


@pytest.mark.parametrize("agent", EVERY_AGENT)
def test_reference_agent_is_the_unit_main_process(host, unit_property, agent):
    pid = unit_property(agent, "MainPID")
    assert pid != "0"
    assert REFERENCE_AGENT in host.file("/proc/%s/cmdline" % pid).content_string


@pytest.mark.parametrize("agent", EVERY_AGENT)
def test_reference_agent_fault_knobs_are_written_off(read_env, env_path, agent):
    # Written off unless the inventory turns one on, so removing a knob turns it off.
    env = read_env(env_path(agent))
    assert {key: env.get(key) for key in FAULTS_OFF} == FAULTS_OFF


@pytest.mark.parametrize("agent", EVERY_AGENT)
def test_env_file_is_readable_by_root_only_after_install_and_flip(host, env_path, agent):
    # It may hold NATS credentials; systemd reads it as root before the agent drops privileges.
    env = host.file(env_path(agent))
    assert (env.user, env.group, env.mode) == ("root", "root", 0o600)


def test_unit_carries_the_installed_programs_checksum(host):
    # A new program changes the unit, and a changed unit restarts every agent (agent_service).
    sha1 = host.check_output("sha1sum %s", REFERENCE_AGENT).split()[0]
    assert 'Environment="REFERENCE_AGENT_SHA1=%s"' % sha1 in host.file("/etc/systemd/system/agent@.service").content_string


def test_flipped_agent_answers_on_its_unified_subject(subjects, ping, hostname):
    reply = ping(subjects(FLIPPED)[1])
    assert reply["unified"] is True
    assert reply["host"] == hostname


def test_flipped_agent_still_answers_on_its_legacy_subject(subjects, ping, hostname):
    reply = ping(subjects(FLIPPED)[0])
    assert reply["unified"] is True
    assert reply["host"] == hostname


@pytest.mark.parametrize("agent", UNTOUCHED)
def test_untouched_agent_has_no_unified_subscriber(subjects, ping, agent):
    with pytest.raises(NoRespondersError):
        ping(subjects(agent)[1])
