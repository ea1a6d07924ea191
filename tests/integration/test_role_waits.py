"""The roles' waits honour a deadline in seconds, not a count of retries: agent_service's check
(tasks/verify.yml) run for real by ansible-playbook on localhost against a real nats-server.

An agent that is subscribed but answers too slowly makes every request last its whole 1 s
timeout (plus the module's start-up), so a wait counted in retries (one a second) would overrun
its seconds by that much per retry, more the longer the wait; the deadline ends it after the
seconds plus at most the attempt in flight, however long the wait.
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
        test_attempts: "{{ __agent_service_ping.results[0].attempts | default(1) }}"
"""


def run_check(tmp_path, url, seconds):
    """Run the check with agent_service_verify_seconds=seconds; return (facts set, output)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "play.yml").write_text(PLAY)
    (tmp_path / "vars.yml").write_text(yaml.safe_dump(dict(
        fleet_agents=AGENT, fleet_nats_url=url, agent_service_agents=list(AGENT),
        agent_service_verify_seconds=seconds, ansible_python_interpreter=sys.executable)))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_LOCAL_TEMP=str(tmp_path / ".tmp"), ANSIBLE_NOCOLOR="1")
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
def test_a_slow_agent_fails_the_check_at_the_deadline_naming_agent_host_and_seconds(
        reference_agent, nats_server, tmp_path, seconds):
    # Subscribed, so every request waits out its 1 s timeout instead of failing fast.
    agent = reference_agent(host="localhost", FAULT_REPLY_DELAY_MS=60000, wait=False)
    wait_for(lambda: "subscribed=" in agent.output, 15, what="the slow agent subscribed")
    facts, output = run_check(tmp_path / str(seconds), nats_server.url, seconds)
    failure = facts.get("test_failure", "")
    assert "network-expert on localhost did not answer" in failure, output
    assert "agent_service_verify_seconds (%d s)" % seconds in failure, failure
    waited, attempts = float(facts["test_waited"]), int(facts["test_attempts"])
    # Never gives up early, and overruns by about one attempt (request and pause), not one per attempt.
    assert seconds <= waited <= seconds + ONE_ATTEMPT, (waited, attempts, output)
    assert waited - seconds <= 2 * waited / attempts, (waited, attempts, output)


def test_an_answering_agent_passes_the_check_well_before_the_deadline(reference_agent, nats_server, tmp_path):
    reference_agent(host="localhost")
    started = time.monotonic()
    facts, output = run_check(tmp_path, nats_server.url, 60)
    assert "test_failure" not in facts, output
    assert float(facts["test_waited"]) < 30 and time.monotonic() - started < 60, output
