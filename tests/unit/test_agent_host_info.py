"""plugins/modules/agent_host_info.py: `systemctl show` parsed per agent unit, with a fake systemctl
and fake /proc/uptime and /proc/loadavg."""

from __future__ import annotations

import builtins
import io

import pytest
from ansible.module_utils import basic

pytestmark = pytest.mark.unit

UPTIME = "1000.50 3900.00\n"
LOADAVG = "0.12 0.08 0.02 1/234 5678\n"
PROPERTIES = "--property=ActiveState,SubState,MainPID,NRestarts,ActiveEnterTimestampMonotonic,LoadState"


def show(active="active", sub="running", pid="4242", restarts="0", entered="400250000", load="loaded"):
    """What `systemctl show <unit> --property=...` prints (systemd orders the lines its own way)."""
    return ("MainPID=%s\nNRestarts=%s\nLoadState=%s\nActiveState=%s\nSubState=%s\n"
            "ActiveEnterTimestampMonotonic=%s\n" % (pid, restarts, load, active, sub, entered))


@pytest.fixture
def systemctl(monkeypatch):
    """Units to fake: systemctl.units[unit] = (rc, stdout, stderr); systemctl.calls records argv."""

    class Fake:
        units = {}
        calls = []

    def run_command(self, args, *a, **kw):
        Fake.calls.append(list(args))
        return Fake.units.get(args[2], (0, show(active="inactive", sub="dead", pid="0", entered="0",
                                                load="not-found"), ""))

    real_open = builtins.open

    def fake_open(file, *args, **kwargs):
        if file == "/proc/uptime":
            return io.StringIO(UPTIME)
        if file == "/proc/loadavg":
            return io.StringIO(LOADAVG)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", lambda self, name, *a, **kw: "/usr/bin/" + name)
    monkeypatch.setattr(builtins, "open", fake_open)
    return Fake


@pytest.fixture
def host_info(run_module, systemctl):
    def run(agents, check=False, **args):
        return run_module("agent_host_info", dict(args, agents=agents), check=check)
    return run


def test_active_unit_is_reported_in_full(host_info, systemctl):
    systemctl.units["agent@network-expert.service"] = (0, show(), "")
    result = host_info(["network-expert"])
    assert not result.get("failed") and result["changed"] is False
    assert result["units"] == {"network-expert": dict(
        unit="agent@network-expert.service", load_state="loaded", active_state="active", sub_state="running",
        main_pid=4242, n_restarts=0, active_seconds=600.25)}


def test_active_seconds_is_uptime_minus_activation_time(host_info, systemctl):
    systemctl.units["agent@tdd-expert.service"] = (0, show(entered="999000000"), "")
    assert host_info(["tdd-expert"])["units"]["tdd-expert"]["active_seconds"] == 1.5


def test_inactive_unit_has_no_active_seconds(host_info, systemctl):
    systemctl.units["agent@tdd-expert.service"] = (0, show(active="inactive", sub="dead", pid="0",
                                                           entered="400250000"), "")
    unit = host_info(["tdd-expert"])["units"]["tdd-expert"]
    assert unit["active_state"] == "inactive" and unit["sub_state"] == "dead"
    assert unit["main_pid"] == 0 and unit["active_seconds"] is None


def test_failed_unit_keeps_its_restart_count(host_info, systemctl):
    systemctl.units["agent@tdd-expert.service"] = (0, show(active="failed", sub="failed", pid="0", restarts="5"), "")
    unit = host_info(["tdd-expert"])["units"]["tdd-expert"]
    assert (unit["active_state"], unit["n_restarts"], unit["active_seconds"]) == ("failed", 5, None)


def test_active_unit_without_activation_timestamp_has_no_active_seconds(host_info, systemctl):
    systemctl.units["agent@tdd-expert.service"] = (0, show(entered="0"), "")
    assert host_info(["tdd-expert"])["units"]["tdd-expert"]["active_seconds"] is None


@pytest.mark.parametrize("restarts, expected", [("3", 3), ("0", 0), ("", None), ("[not set]", None)])
def test_restart_count_parsing(host_info, systemctl, restarts, expected):
    systemctl.units["agent@tdd-expert.service"] = (0, show(restarts=restarts), "")
    assert host_info(["tdd-expert"])["units"]["tdd-expert"]["n_restarts"] == expected


def test_properties_systemd_did_not_print_are_none(host_info, systemctl):
    # An older systemd without NRestarts simply leaves the line out.
    systemctl.units["agent@tdd-expert.service"] = (0, "ActiveState=active\nSubState=running\n", "")
    unit = host_info(["tdd-expert"])["units"]["tdd-expert"]
    assert unit["n_restarts"] is None and unit["main_pid"] is None and unit["active_seconds"] is None
    assert unit["active_state"] == "active"


def test_values_containing_equals_signs_are_kept_whole(host_info, systemctl):
    systemctl.units["agent@tdd-expert.service"] = (0, show(sub="odd=value"), "")
    assert host_info(["tdd-expert"])["units"]["tdd-expert"]["sub_state"] == "odd=value"


def test_unknown_unit_reports_not_found(host_info):
    unit = host_info(["ghost-expert"])["units"]["ghost-expert"]
    assert unit["load_state"] == "not-found" and unit["active_state"] == "inactive"


def test_every_agent_is_asked_for_with_the_unit_prefix(host_info, systemctl):
    result = host_info(["network-expert", "tdd-expert"], unit_prefix="fleet")
    assert sorted(result["units"]) == ["network-expert", "tdd-expert"]
    assert systemctl.calls == [["/usr/bin/systemctl", "show", "fleet@network-expert.service", PROPERTIES],
                               ["/usr/bin/systemctl", "show", "fleet@tdd-expert.service", PROPERTIES]]
    assert result["units"]["tdd-expert"]["unit"] == "fleet@tdd-expert.service"


def test_load_averages_are_read(host_info):
    assert host_info(["tdd-expert"])["load"] == [0.12, 0.08, 0.02]


def test_systemctl_failure_fails_naming_the_unit(host_info, systemctl):
    systemctl.units["agent@tdd-expert.service"] = (1, "", "Failed to connect to bus: No such file or directory\n")
    result = host_info(["network-expert", "tdd-expert"])
    assert result["failed"]
    assert result["msg"] == ("systemctl show agent@tdd-expert.service failed (rc=1): "
                             "Failed to connect to bus: No such file or directory")


def test_check_mode_reports_the_same(host_info, systemctl):
    systemctl.units["agent@network-expert.service"] = (0, show(), "")
    assert host_info(["network-expert"], check=True) == host_info(["network-expert"])


def test_agents_are_required(run_module, systemctl):
    result = run_module("agent_host_info", {})
    assert result["failed"] and "agents" in result["msg"]


def test_documentation_matches_argument_spec(check_docs):
    check_docs("agent_host_info")
