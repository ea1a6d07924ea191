"""plugins/modules/agent_host_info.py: one `systemctl show` and one `journalctl` for every agent unit,
parsed per unit, with a fake systemctl and journalctl, fake /proc files and a fake clock."""

from __future__ import annotations

import builtins
import io
import json
import os
import time

import pytest
from ansible.module_utils import basic

pytestmark = pytest.mark.unit

UPTIME = "1000.50 3900.00\n"
LOADAVG = "0.12 0.08 0.02 1/234 5678\n"
PROPERTIES = ("--property=ActiveState,SubState,MainPID,NRestarts,ActiveEnterTimestampMonotonic,LoadState,"
              "CPUUsageNSec,MemoryCurrent")
NOW = 1795477318.25
NCPU = 4
CLK_TCK = 100
# A real /proc/<pid>/stat line, its command name made awkward: spaces and ')' inside the parentheses.
# utime (field 14) is 250 ticks, stime (field 15) 25.
PROC_STAT = ("4242 (python3 (agent) x) S 1 4242 4242 0 -1 4194304 5413 0 0 0 250 25 0 0 20 0 1 0 1156253 "
             "37318656 7519 18446744073709551615 4321280 7154137 140732148743376 0 0 0 0 16781312 16386\n")
PROC_STATUS = "Name:\tpython3\nState:\tS (sleeping)\nVmPeak:\t  40000 kB\nVmRSS:\t   30384 kB\nThreads:\t2\n"


def show(active="active", sub="running", pid="4242", restarts="0", entered="400250000", load="loaded",
         cpu="[not set]", memory="[not set]"):
    """What `systemctl show <unit> --property=...` prints (systemd orders the lines its own way).
    Accounting figures default to what the podman stand-ins print: "[not set]"."""
    return ("MainPID=%s\nNRestarts=%s\nLoadState=%s\nActiveState=%s\nSubState=%s\n"
            "ActiveEnterTimestampMonotonic=%s\nMemoryCurrent=%s\nCPUUsageNSec=%s\n"
            % (pid, restarts, load, active, sub, entered, memory, cpu))


def journal(*messages, unit="agent@tdd-expert.service", field="_SYSTEMD_UNIT"):
    """What `journalctl -o json` prints: one JSON object per line, oldest first."""
    return "".join(json.dumps({"PRIORITY": "3", field: unit, "MESSAGE": m}) + "\n" for m in messages)


@pytest.fixture
def systemctl(monkeypatch):
    """Units to fake: systemctl.units[unit] = (rc, stdout, stderr); systemctl.journal[unit] the same for
    journalctl; systemctl.files[path] = text under /proc/ (any other /proc/ path does not exist);
    systemctl.missing names commands not on PATH; systemctl.calls records argv."""

    class Fake:
        units = {}
        journal = {}
        files = {"/proc/uptime": UPTIME, "/proc/loadavg": LOADAVG}
        missing = set()
        calls = []

    def run_command(self, args, *a, **kw):
        Fake.calls.append(list(args))
        if os.path.basename(args[0]) == "journalctl":  # -u <unit> for each unit: their entries together
            found = [Fake.journal.get(args[i + 1], (0, "", "")) for i, arg in enumerate(args) if arg == "-u"]
        else:  # show <unit>... --property=...: a block of properties per unit, a blank line between
            found = [Fake.units.get(unit, (0, show(active="inactive", sub="dead", pid="0", entered="0",
                                                   load="not-found"), "")) for unit in args[2:-1]]
        failed = [f for f in found if f[0] != 0]
        if failed:
            return failed[0]
        return 0, ("" if "journalctl" in args[0] else "\n").join(f[1] for f in found), ""

    def get_bin_path(self, name, required=False, *a, **kw):
        if name in Fake.missing:
            if required:
                self.fail_json(msg="Failed to find required executable %s" % name)
            return None
        return "/usr/bin/" + name

    real_open = builtins.open

    def fake_open(file, *args, **kwargs):
        if isinstance(file, str) and file.startswith("/proc/"):
            if file not in Fake.files:
                raise FileNotFoundError(2, "No such file or directory", file)
            return io.StringIO(Fake.files[file])
        return real_open(file, *args, **kwargs)

    real_sysconf = os.sysconf
    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", get_bin_path)
    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(time, "time", lambda: NOW)
    monkeypatch.setattr(os, "cpu_count", lambda: NCPU)
    monkeypatch.setattr(os, "sysconf", lambda name: CLK_TCK if name == "SC_CLK_TCK" else real_sysconf(name))
    return Fake


def journal_calls(systemctl):
    return [c for c in systemctl.calls if c[0] == "/usr/bin/journalctl"]


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
        main_pid=4242, n_restarts=0, active_seconds=600.25, cpu_seconds=None, memory_bytes=None,
        metrics_source=None, journal_errors=None, journal_error_sample=None, journal_error_note=None,
        sockets=[], sockets_error=None)}


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
    assert systemctl.calls == [["/usr/bin/systemctl", "show", "fleet@network-expert.service",
                                "fleet@tdd-expert.service", PROPERTIES]]
    assert result["units"]["tdd-expert"]["unit"] == "fleet@tdd-expert.service"


def test_load_averages_are_read(host_info):
    assert host_info(["tdd-expert"])["load"] == [0.12, 0.08, 0.02]


# CPU and memory per unit


def test_cgroup_figures_are_used_when_systemd_accounts(host_info, systemctl):
    # /proc of the main PID is there too, with other figures: the cgroup's must win.
    systemctl.files.update({"/proc/4242/stat": PROC_STAT, "/proc/4242/status": PROC_STATUS})
    systemctl.units["agent@tdd-expert.service"] = (0, show(cpu="12345678901", memory="52428800"), "")
    unit = host_info(["tdd-expert"])["units"]["tdd-expert"]
    assert unit["cpu_seconds"] == pytest.approx(12.345678901)
    assert (unit["memory_bytes"], unit["metrics_source"]) == (52428800, "cgroup")


def test_proc_figures_are_used_without_accounting(host_info, systemctl):
    systemctl.files.update({"/proc/4242/stat": PROC_STAT, "/proc/4242/status": PROC_STATUS})
    systemctl.units["agent@tdd-expert.service"] = (0, show(), "")
    unit = host_info(["tdd-expert"])["units"]["tdd-expert"]
    # (250 + 25) ticks at 100 a second; 30384 kB resident.
    assert unit["cpu_seconds"] == pytest.approx(2.75)
    assert (unit["memory_bytes"], unit["metrics_source"]) == (30384 * 1024, "proc")


def test_uint64_max_counts_as_not_accounted(host_info, systemctl):
    systemctl.files.update({"/proc/4242/stat": PROC_STAT, "/proc/4242/status": PROC_STATUS})
    systemctl.units["agent@tdd-expert.service"] = (0, show(cpu="18446744073709551615",
                                                           memory="18446744073709551615"), "")
    unit = host_info(["tdd-expert"])["units"]["tdd-expert"]
    assert (unit["cpu_seconds"], unit["memory_bytes"], unit["metrics_source"]) == (
        pytest.approx(2.75), 30384 * 1024, "proc")


def test_memory_falls_back_to_vmrss_on_its_own(host_info, systemctl):
    systemctl.files.update({"/proc/4242/stat": PROC_STAT, "/proc/4242/status": PROC_STATUS})
    systemctl.units["agent@tdd-expert.service"] = (0, show(cpu="2000000000"), "")
    unit = host_info(["tdd-expert"])["units"]["tdd-expert"]
    assert (unit["cpu_seconds"], unit["memory_bytes"], unit["metrics_source"]) == (2.0, 30384 * 1024, "mixed")


def test_memory_current_is_used_without_cpu_accounting(host_info, systemctl):
    systemctl.files.update({"/proc/4242/stat": PROC_STAT, "/proc/4242/status": PROC_STATUS})
    systemctl.units["agent@tdd-expert.service"] = (0, show(memory="1048576"), "")
    unit = host_info(["tdd-expert"])["units"]["tdd-expert"]
    assert (unit["cpu_seconds"], unit["memory_bytes"], unit["metrics_source"]) == (
        pytest.approx(2.75), 1048576, "mixed")


@pytest.mark.parametrize("status", ["Name:\tkworker/0:1\nState:\tI (idle)\n", "VmRSS:\n"])
def test_no_vmrss_line_leaves_memory_unknown(host_info, systemctl, status):
    systemctl.files.update({"/proc/4242/stat": PROC_STAT, "/proc/4242/status": status})
    systemctl.units["agent@tdd-expert.service"] = (0, show(), "")
    unit = host_info(["tdd-expert"])["units"]["tdd-expert"]
    assert (unit["cpu_seconds"], unit["memory_bytes"], unit["metrics_source"]) == (pytest.approx(2.75), None, "proc")


@pytest.mark.parametrize("active, sub, pid", [("inactive", "dead", "0"), ("failed", "failed", "0"),
                                              ("activating", "auto-restart", "0"), ("active", "running", "0"),
                                              ("active", "exited", "")])
def test_no_figures_without_a_running_main_process(host_info, systemctl, active, sub, pid):
    systemctl.files.update({"/proc/0/stat": PROC_STAT, "/proc/0/status": PROC_STATUS})
    systemctl.units["agent@tdd-expert.service"] = (0, show(active=active, sub=sub, pid=pid), "")
    unit = host_info(["tdd-expert"])["units"]["tdd-expert"]
    assert (unit["cpu_seconds"], unit["memory_bytes"], unit["metrics_source"]) == (None, None, None)


def test_inactive_unit_has_no_figures_even_if_systemd_prints_some(host_info, systemctl):
    systemctl.units["agent@tdd-expert.service"] = (0, show(active="inactive", sub="dead", pid="0",
                                                           cpu="5000000000", memory="1048576"), "")
    unit = host_info(["tdd-expert"])["units"]["tdd-expert"]
    assert (unit["cpu_seconds"], unit["memory_bytes"], unit["metrics_source"]) == (None, None, None)


def test_main_process_gone_before_proc_is_read_gives_nulls(host_info, systemctl):
    # No /proc/4242 files: the process exited between `systemctl show` and the read.
    systemctl.units["agent@tdd-expert.service"] = (0, show(), "")
    result = host_info(["tdd-expert"])
    assert not result.get("failed")
    unit = result["units"]["tdd-expert"]
    assert (unit["cpu_seconds"], unit["memory_bytes"], unit["metrics_source"]) == (None, None, None)


def test_main_process_gone_between_the_two_proc_reads_keeps_what_was_read(host_info, systemctl):
    systemctl.files["/proc/4242/stat"] = PROC_STAT
    systemctl.units["agent@tdd-expert.service"] = (0, show(), "")
    unit = host_info(["tdd-expert"])["units"]["tdd-expert"]
    assert (unit["cpu_seconds"], unit["memory_bytes"], unit["metrics_source"]) == (pytest.approx(2.75), None, "proc")


@pytest.mark.parametrize("stat", ["", "4242 (python3", "4242 (python3) S 1 4242\n", "4242 (x) S" + " y" * 20])
def test_unreadable_proc_stat_gives_no_cpu_figure(host_info, systemctl, stat):
    systemctl.files.update({"/proc/4242/stat": stat, "/proc/4242/status": PROC_STATUS})
    systemctl.units["agent@tdd-expert.service"] = (0, show(), "")
    unit = host_info(["tdd-expert"])["units"]["tdd-expert"]
    assert (unit["cpu_seconds"], unit["memory_bytes"]) == (None, 30384 * 1024)


# Host figures


def test_host_figures_for_cpu_shares_between_samples(host_info):
    result = host_info(["tdd-expert"])
    assert result["ncpu"] == NCPU and result["load_per_cpu"] == 0.03
    assert result["sampled_at_epoch"] == NOW and result["sampled_at_uptime"] == 1000.5


def test_load_per_cpu_is_rounded_to_three_digits(host_info, systemctl, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 3)
    systemctl.files["/proc/loadavg"] = "1.00 0.50 0.25 1/234 5678\n"
    assert host_info(["tdd-expert"])["load_per_cpu"] == 0.333


def test_unknown_cpu_count_gives_no_load_per_cpu(host_info, monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    result = host_info(["tdd-expert"])
    assert result["ncpu"] is None and result["load_per_cpu"] is None


# Journal errors since a time


def test_without_since_the_journal_is_not_read(host_info, systemctl):
    systemctl.units["agent@tdd-expert.service"] = (0, show(), "")
    unit = host_info(["tdd-expert"])["units"]["tdd-expert"]
    assert journal_calls(systemctl) == []
    assert (unit["journal_errors"], unit["journal_error_sample"], unit["journal_error_note"]) == (None, None, None)


def test_journal_errors_are_counted_per_unit_since_the_time(host_info, systemctl):
    systemctl.journal["agent@tdd-expert.service"] = (0, journal("first", "second", "third"), "")
    result = host_info(["network-expert", "tdd-expert"], since=1795473718.5)
    assert journal_calls(systemctl) == [
        ["/usr/bin/journalctl", "-u", "agent@network-expert.service", "-u", "agent@tdd-expert.service",
         "--since", "@1795473718.5", "-p", "err", "-o", "json", "--no-pager", "-q"]]
    tdd = result["units"]["tdd-expert"]
    assert (tdd["journal_errors"], tdd["journal_error_sample"], tdd["journal_error_note"]) == (
        3, ["first", "second", "third"], None)
    network = result["units"]["network-expert"]
    assert (network["journal_errors"], network["journal_error_sample"], network["journal_error_note"]) == (
        0, [], None)


@pytest.mark.parametrize("since, argument", [(1795473718, "@1795473718"), ("1795473718.25", "@1795473718.25"),
                                             (0, "@0")])
def test_since_is_passed_as_epoch_seconds(host_info, systemctl, since, argument):
    host_info(["tdd-expert"], since=since)
    assert journal_calls(systemctl)[0][3:5] == ["--since", argument]


@pytest.mark.parametrize("field", ["_SYSTEMD_UNIT", "UNIT", "OBJECT_SYSTEMD_UNIT", "COREDUMP_UNIT"])
def test_entries_of_one_journal_read_go_to_the_unit_they_name(host_info, systemctl, field):
    # systemd's own entry about a unit names it in UNIT, a coredump in COREDUMP_UNIT.
    systemctl.journal["agent@tdd-expert.service"] = (0, journal("tdd down", field=field), "")
    systemctl.journal["agent@network-expert.service"] = (0, journal("net 1", "net 2", unit="agent@network-expert.service",
                                                                    field=field), "")
    units = host_info(["network-expert", "tdd-expert"], since=1.0)["units"]
    assert [(units[a]["journal_errors"], units[a]["journal_error_sample"]) for a in ("network-expert", "tdd-expert")] \
        == [(2, ["net 1", "net 2"]), (1, ["tdd down"])]
    assert len(journal_calls(systemctl)) == 1


def test_a_show_that_does_not_print_a_block_per_unit_fails_saying_so(host_info, systemctl):
    systemctl.units["agent@network-expert.service"] = (0, "", "")
    result = host_info(["network-expert", "tdd-expert"])
    assert result["failed"] and result["msg"].startswith(
        "systemctl show agent@network-expert.service agent@tdd-expert.service printed 1 blocks of properties for 2 "
        "units: ")


def test_journal_sample_is_the_last_five_messages_cut_to_200_chars(host_info, systemctl):
    messages = ["error %d" % n for n in range(1, 8)] + ["x" * 250]
    systemctl.journal["agent@tdd-expert.service"] = (0, journal(*messages), "")
    unit = host_info(["tdd-expert"], since=1.0)["units"]["tdd-expert"]
    assert unit["journal_errors"] == 8
    assert unit["journal_error_sample"] == ["error 4", "error 5", "error 6", "error 7", "x" * 200]


def test_journal_messages_that_are_bytes_or_missing_are_kept_as_text(host_info, systemctl):
    lines = (json.dumps({"MESSAGE": [98, 97, 100, 255, 33]}) + "\n" + json.dumps({"PRIORITY": "3"}) + "\n"
             + json.dumps({"MESSAGE": None}) + "\n")
    systemctl.journal["agent@tdd-expert.service"] = (0, lines, "")
    unit = host_info(["tdd-expert"], since=1.0)["units"]["tdd-expert"]
    assert unit["journal_errors"] == 3
    assert unit["journal_error_sample"] == ["bad\ufffd!", "", ""]


def test_journalctl_failure_is_a_note_not_a_failure(host_info, systemctl):
    systemctl.units["agent@tdd-expert.service"] = (0, show(), "")
    systemctl.journal["agent@tdd-expert.service"] = (1, "", "Failed to open journal: Permission denied\n")
    result = host_info(["tdd-expert"], since=1795473718)
    assert not result.get("failed") and result["changed"] is False
    unit = result["units"]["tdd-expert"]
    assert (unit["journal_errors"], unit["journal_error_sample"]) == (None, None)
    assert unit["journal_error_note"] == ("journalctl -u agent@tdd-expert.service --since @1795473718 failed (rc=1): "
                                          "Failed to open journal: Permission denied")
    assert unit["active_state"] == "active"


def test_journalctl_output_that_is_not_json_is_a_note(host_info, systemctl):
    systemctl.journal["agent@tdd-expert.service"] = (0, journal("fine") + "-- No entries --\n", "")
    unit = host_info(["tdd-expert"], since=1.0)["units"]["tdd-expert"]
    assert (unit["journal_errors"], unit["journal_error_sample"]) == (None, None)
    assert "not a JSON object: -- No entries --" in unit["journal_error_note"]


def test_missing_journalctl_is_a_note_not_a_failure(host_info, systemctl):
    systemctl.missing.add("journalctl")
    result = host_info(["tdd-expert"], since=1795473718)
    assert not result.get("failed")
    unit = result["units"]["tdd-expert"]
    assert unit["journal_errors"] is None and unit["journal_error_note"] == "journalctl not found on this host"
    assert journal_calls(systemctl) == []


def test_missing_journalctl_does_not_matter_without_since(host_info, systemctl):
    systemctl.missing.add("journalctl")
    unit = host_info(["tdd-expert"])["units"]["tdd-expert"]
    assert unit["journal_error_note"] is None


@pytest.mark.parametrize("since", [-1, -0.5, "nan", "inf"])
def test_invalid_since_fails_naming_the_option(host_info, systemctl, since):
    result = host_info(["tdd-expert"], since=since)
    assert result["failed"] and result["msg"].startswith("since must be a time in epoch seconds")
    assert systemctl.calls == []


def test_since_that_is_not_a_number_fails_naming_the_option(host_info, systemctl):
    result = host_info(["tdd-expert"], since="an hour ago")
    assert result["failed"] and "since" in result["msg"]
    assert systemctl.calls == []


def test_systemctl_failure_fails_naming_the_unit(host_info, systemctl):
    systemctl.units["agent@tdd-expert.service"] = (1, "", "Failed to connect to bus: No such file or directory\n")
    result = host_info(["network-expert", "tdd-expert"])
    assert result["failed"]
    assert result["msg"] == ("systemctl show agent@network-expert.service agent@tdd-expert.service failed (rc=1): "
                             "Failed to connect to bus: No such file or directory")


def test_check_mode_reports_the_same(host_info, systemctl):
    systemctl.units["agent@network-expert.service"] = (0, show(), "")
    systemctl.files.update({"/proc/4242/stat": PROC_STAT, "/proc/4242/status": PROC_STATUS})
    systemctl.journal["agent@network-expert.service"] = (0, journal("boom"), "")
    checked = host_info(["network-expert"], check=True, since=1.0)
    assert checked == host_info(["network-expert"], since=1.0)
    assert checked["units"]["network-expert"]["journal_errors"] == 1


def test_agents_are_required(run_module, systemctl):
    result = run_module("agent_host_info", {})
    assert result["failed"] and "agents" in result["msg"]


def test_documentation_matches_argument_spec(check_docs):
    check_docs("agent_host_info")


def test_fds_that_cannot_be_read_are_an_error_naming_the_capability_not_an_empty_list(monkeypatch):
    """A container's root without CAP_SYS_PTRACE may list /proc/<pid>/fd but not read its links: that
    must not look like a process without connections."""
    from ansible_collections.fleetwave.rollout.plugins.modules import agent_host_info

    def denied(path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(agent_host_info.os, "readlink", denied)
    sockets, error = agent_host_info.unit_sockets(os.getpid(), children={})
    assert sockets == []
    assert error == "permission denied reading /proc/%d/fd/0 (needs root with CAP_SYS_PTRACE: become)" % os.getpid()
