"""Fixtures shared by the Molecule scenarios' testinfra tests (rollback/tests/conftest.py links here).

The tests run on the controller with the project's venv. They reach the stand-ins with
testinfra's podman backend (each test module sets ``testinfra_hosts`` to ``podman://<host>``:
the containers are named after their inventory hosts, and testinfra has no backend for the
containers.podman.podman connection), and reach NATS directly with nats-py at the controller
URL the inventory gives the roles (fleet_nats_controller_url).
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os

import nats
import pytest
import testinfra.utils.ansible_runner


def _utc(text, fmt):
    return datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.timezone.utc)


def _parse_env(text):
    """KEY=VALUE lines of an env file as a dict (comments and blank lines skipped)."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";")):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("\"'")
    return values


@pytest.fixture(scope="module")
def hostname(host):
    """The inventory hostname of the host under test (= its container name)."""
    return host.backend.get_hostname()


@pytest.fixture(scope="module")
def hostvars(hostname):
    """Its inventory variables, untemplated (as written in molecule.yml)."""
    runner = testinfra.utils.ansible_runner.AnsibleRunner.get_runner(os.environ["MOLECULE_INVENTORY_FILE"])
    return runner.get_variables(hostname)


@pytest.fixture
def env_path(hostvars):
    """env_path(agent) -> the agent's env file."""
    env_dir = hostvars.get("fleet_env_dir", "/etc/agents")
    return lambda agent: "%s/%s.env" % (env_dir, agent)


@pytest.fixture
def backup_dir(hostvars):
    return hostvars.get("fleet_backup_dir", "/var/lib/fleetwave/backups")


@pytest.fixture
def read_env(host):
    """read_env(path) -> the KEY=VALUE pairs of an env file (or a backup of one) on the host."""
    return lambda path: _parse_env(host.file(path).content_string)


@pytest.fixture
def backups(host, env_path, backup_dir):
    """backups(agent, label=None) -> the manifest's entries for the agent's env file, oldest first."""

    def _backups(agent, label=None):
        manifest = json.loads(host.file(backup_dir + "/manifest.json").content_string)
        entries = [b for b in manifest["backups"] if b["path"] == env_path(agent)
                   and (label is None or b.get("label") == label)]
        return sorted(entries, key=lambda b: b["created"])

    return _backups


@pytest.fixture
def backup_time():
    """backup_time(entry) -> when a manifest entry was taken (UTC)."""
    return lambda entry: _utc(entry["created"], "%Y-%m-%dT%H:%M:%S.%fZ")


@pytest.fixture
def unit_property(host):
    """unit_property(agent, name) -> `systemctl show` value of agent@<agent>.service (timestamps in µs, UTC)."""

    def _show(agent, name):
        return host.check_output("systemctl show --timestamp=us+utc --value -p %s agent@%s.service", name, agent)

    return _show


@pytest.fixture
def active_since(unit_property):
    """active_since(agent) -> when the agent's unit last became active (UTC, µs)."""
    return lambda agent: _utc(unit_property(agent, "ActiveEnterTimestamp"), "%a %Y-%m-%d %H:%M:%S.%f UTC")


@pytest.fixture
def subjects(hostvars):
    """subjects(agent) -> (legacy, unified) ping subjects, from the same patterns the roles use."""
    agents = hostvars["fleet_agents"]

    def _subjects(agent):
        fields = dict(name=agent, id=agents[agent]["id"], cluster=agents[agent]["cluster"])
        legacy = hostvars.get("fleet_subject_legacy", "agent.{name}").format(**fields)
        unified = hostvars.get("fleet_subject_unified", "agents.{cluster}.{id}").format(**fields)
        return legacy + ".cmd.ping", unified + ".cmd.ping"

    return _subjects


async def _request(url, subject, headers, timeout):
    nc = await nats.connect(url, connect_timeout=2, allow_reconnect=False, max_reconnect_attempts=0)
    try:
        msg = await nc.request(subject, b"", timeout=timeout, headers=headers)
        return json.loads(msg.data)
    finally:
        await nc.close()


@pytest.fixture
def ping(hostvars, hostname):
    """ping(subject) -> the JSON reply of the host under test (the Agent-Target header narrows
    the request to it). Raises nats.errors.NoRespondersError when nobody subscribes at all."""
    url = hostvars["fleet_nats_controller_url"]
    return lambda subject, timeout=2.0: asyncio.run(_request(url, subject, {"Agent-Target": hostname}, timeout))
