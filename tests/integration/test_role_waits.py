"""The roles' waits honour a deadline in seconds, not a count of retries: agent_service's check
(tasks/verify.yml) run for real by ansible-playbook on localhost against a real nats-server.

The check waits until the NATS server's /connz shows the unit's process subscribed on its legacy
subject. Each attempt reads the whole endpoint (and the module's start-up), so a wait counted in
retries would overrun its seconds by that much per retry; the deadline ends it after the seconds
plus at most the attempt in flight, however long the wait.
This machine's PID 1 is not systemd, so `systemctl` is a stand-in script on PATH that reports the
unit active with a real process as its MainPID: the process, its sockets (read from /proc), the
server and its monitoring endpoint are real.
(tests/unit/test_role_waits.py checks that every wait of every role is built this way.)"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

REPO = pathlib.Path(__file__).resolve().parents[2]
PLAYBOOK = pathlib.Path(sys.executable).parent / "ansible-playbook"
AGENT = {"network-expert": {"id": "01936f88-d2a9-7000-8000-000000000008", "cluster": "infrastructure"}}
# Upper bound of one request attempt: its 1 s timeout, a connect (2 s at worst) and the module's
# start-up on a busy controller.
ONE_ATTEMPT = 5.0

PLAY = """\
- name: Wait for the agents as agent_service does
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Check the agents
      block:
        - name: Run the role's check
          ansible.builtin.include_role:
            name: fleetwave.rollout.agent_service
            tasks_from: verify.yml
      rescue:
        - name: Keep the failure
          ansible.builtin.set_fact:
            test_failure: "{{ ansible_failed_result.msg }}"

    - name: Measure the wait from the start of the role's clock
      ansible.builtin.set_fact:
        test_waited: "{{ now().timestamp() - (_agent_service_verify_deadline | float - agent_service_verify_seconds | float) }}"
        test_attempts: "{{ __agent_service_server.attempts | default(1) }}"
"""

SYSTEMCTL = """#!/bin/sh
# systemctl show <unit> --property=...: the unit active, its main process the one named below.
printf 'ActiveState=active\\nSubState=running\\nMainPID=%s\\nNRestarts=0\\nLoadState=loaded\\n' "$FAKE_MAIN_PID"
printf 'ActiveEnterTimestampMonotonic=1\\nCPUUsageNSec=[not set]\\nMemoryCurrent=[not set]\\n'
"""

# A client that connects and subscribes to something else than the agent's commands.
UNSUBSCRIBED = """
import asyncio, sys, nats
async def main():
    nc = await nats.connect(sys.argv[1])
    await nc.subscribe("agent.network-expert.evt.>")
    await nc.flush()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
asyncio.run(main())
"""


def run_check(tmp_path, server, seconds, main_pid):
    """Run the check with agent_service_verify_seconds=seconds, the unit's process main_pid; return
    (facts set, output)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "bin").mkdir(exist_ok=True)
    (tmp_path / "bin/systemctl").write_text(SYSTEMCTL)
    (tmp_path / "bin/systemctl").chmod(0o755)
    (tmp_path / "vars.yml").write_text(yaml.safe_dump(dict(
        fleet_agents=AGENT, fleet_nats_url=server.url, fleet_nats_monitor_url=server.monitor_url,
        agent_service_agents=list(AGENT), agent_service_verify_seconds=seconds,
        ansible_python_interpreter=sys.executable)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / ".tmp"), ANSIBLE_NOCOLOR="1", FAKE_MAIN_PID=str(main_pid),
               PATH="%s:%s" % (tmp_path / "bin", env.get("PATH", "")))
    proc = subprocess.run([str(PLAYBOOK), "-i", "localhost,", "-c", "local", "play.yml", "-e", "@vars.yml"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    facts = {}
    for play in json.loads(proc.stdout)["plays"]:
        for task in play["tasks"]:
            facts.update(task["hosts"].get("localhost", {}).get("ansible_facts", {}))
    return facts, output


@pytest.mark.parametrize("seconds", [2, 8])
def test_an_agent_never_subscribed_fails_the_check_at_the_deadline_naming_what_the_server_shows(
        nats_server, tmp_path, seconds):
    client = subprocess.Popen([sys.executable, "-c", UNSUBSCRIBED, nats_server.url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert client.stdout.readline().strip() == "ready"
        facts, output = run_check(tmp_path / str(seconds), nats_server, seconds, client.pid)
    finally:
        client.stdin.close()
        client.wait(10)
    failure = facts.get("test_failure", "")
    assert "Within agent_service_verify_seconds (%d s) the NATS server did not show the agents on localhost up" % (
        seconds) in failure, output
    assert "network-expert@localhost: connected (cid " in failure, failure
    assert "but not subscribed to agent.network-expert.cmd.ping (its subscriptions: agent.network-expert.evt.>)" in failure
    waited, attempts = float(facts["test_waited"]), int(facts["test_attempts"])
    # Never gives up early, and overruns by about one attempt (request and pause), not one per attempt.
    assert seconds <= waited <= seconds + ONE_ATTEMPT, (waited, attempts, output)
    assert waited - seconds <= 2 * waited / attempts, (waited, attempts, output)


def test_an_answering_agent_passes_the_check_well_before_the_deadline(reference_agent, nats_server, tmp_path):
    agent = reference_agent(host="localhost")
    started = time.monotonic()
    facts, output = run_check(tmp_path, nats_server, 60, agent.proc.pid)
    assert "test_failure" not in facts, output
    assert float(facts["test_waited"]) < 30 and time.monotonic() - started < 60, output
