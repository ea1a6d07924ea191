"""Issue 8: the agent units ran as root without systemd hardening. The unit template, rendered the
way the template module renders it, now drops root and sandboxes the agent; the same directives
are started for real by tests/integration/test_reference_agent.py where systemd can."""

from __future__ import annotations

import pytest

from tests.conftest import render_agent_unit as render

pytestmark = pytest.mark.unit

# What the issue asks of the unit (values as systemd reads them).
REQUIRED = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "RestrictRealtime": "yes",
    "SystemCallFilter": "@system-service",
    "CapabilityBoundingSet": "",
}


def test_reference_agent_units_no_longer_run_as_root_unhardened():
    unit = render()
    assert unit["DynamicUser"] == ["yes"] and "User" not in unit
    for key, value in REQUIRED.items():
        assert value in unit.get(key, []), key
    assert unit["EnvironmentFile"] == ["/etc/agents/%i.env"]  # read by systemd as root, before the drop
    assert unit["RestartPreventExitStatus"] == ["78"]


def test_stand_ins_without_mount_namespaces_use_a_static_user_with_the_same_hardening():
    unit = render(agent_service_user="fleetwave-agent")
    assert (unit["User"], unit["Group"]) == (["fleetwave-agent"], ["fleetwave-agent"])
    assert "DynamicUser" not in unit
    assert all(value in unit.get(key, []) for key, value in REQUIRED.items())


def test_hardening_off_gives_back_the_plain_root_unit():
    unit = render(agent_service_hardening=False)
    assert not {"DynamicUser", "User", *REQUIRED} & unit.keys()
