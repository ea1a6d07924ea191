"""agent_host_info on a stand-in, real systemd and journald: one `systemctl show` and one `journalctl`
for every unit of the host, each unit's error entries counted for it alone."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from .conftest import INVENTORY, ROOT, playbook_env, podman_exec

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(300)]

HOST = "dgx-1"
# Transient units of their own (no template of this name exists), so no agent of the fleet is touched.
PREFIX = "fleetwave-hostinfo"
ERRORS = {"a": 1, "b": 2, "c": 0}


def host_info(since: float) -> dict:
    env = dict(playbook_env("host-info"), ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOAD_CALLBACK_PLUGINS="1")
    args = dict(agents=sorted(ERRORS), unit_prefix=PREFIX, since=since)
    done = subprocess.run(["ansible", "-i", str(INVENTORY), HOST, "-m", "fleetwave.rollout.agent_host_info",
                           "-a", json.dumps(args)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return json.loads(done.stdout)["plays"][0]["tasks"][0]["hosts"][HOST]


def test_one_journal_read_gives_each_unit_its_own_errors(sandbox):
    since = float(podman_exec(HOST, "date", "+%s.%N"))
    for name, count in ERRORS.items():
        # "<3>" is priority err, "<6>" info (not counted); each unit logs, then is gone (--wait).
        lines = ['echo "<3>%s error %d"' % (name, n) for n in range(count)] + ['echo "<6>%s info"' % name]
        podman_exec(HOST, "systemd-run", "--unit=%s@%s.service" % (PREFIX, name), "--wait", "--quiet",
                    "sh", "-c", "; ".join(lines))
    deadline = time.monotonic() + 30
    while True:  # journald stores what the units printed a moment later
        units = host_info(since)["units"]
        counts = {name: units[name]["journal_errors"] for name in ERRORS}
        if counts == ERRORS or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert counts == ERRORS, units
    assert units["b"]["journal_error_sample"] == ["b error 0", "b error 1"], units["b"]
    assert units["a"]["journal_error_sample"] == ["a error 0"] and units["c"]["journal_error_sample"] == []
    # Gone after --wait: not loaded, no process, and said so rather than failing the read.
    assert all(units[name]["active_state"] == "inactive" and units[name]["main_pid"] == 0 for name in ERRORS), units
