"""A real fleet's agents (issue 9): tdd-expert's units on the three stand-ins run an agent written
from shared/contract.md alone (tests/agents/contract_agent.py: no Agent-Target, no Agent-Host, no
emit, no status; commands in a queue group), installed the way a fleet installs its own program
(agent_service_agent_exec_start, a systemd drop-in). Waves 1-2 and a rollback run end to end; each
instance is proven from the NATS server's own view; a 3 % unified drop and an impostor answering
for an agent are caught and named."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from .conftest import AGENTS, ARTIFACTS, HOSTS, NATS_URL, QUICK_WAVE2, ROOT, env_flag, podman_exec, run_playbook

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(900)]

AGENT = "tdd-expert"
PROGRAM = "/opt/fleetwave/contract-agent/contract_agent.py"
ENV = "/etc/agents/%s.env" % AGENT
# Fast heartbeats: a 2 s checkpoint window holds a few hundred events of the three instances.
CONTRACT_UNITS = {"agent_service_agent_exec_start": {AGENT: "/usr/bin/python3 " + PROGRAM},
                  "agent_service_agent_env": {AGENT: {"HEARTBEAT_INTERVAL_S": "0.02", "FAULT_DROP_UNIFIED_PCT": "0"}}}


def set_drop(pct):
    """The contract agent's unified drop knob in every tdd-expert env file, then a restart."""
    for host in HOSTS:
        podman_exec(host, "sed", "-i", "s/^FAULT_DROP_UNIFIED_PCT=.*/FAULT_DROP_UNIFIED_PCT=%s/" % pct, ENV)
        podman_exec(host, "systemctl", "restart", "agent@%s.service" % AGENT)


@pytest.fixture(scope="module")
def contract_fleet(sandbox, wave1_go, tmp_path_factory):
    """The test fleet with tdd-expert run by the contract agent, legacy-only; put back after the module."""
    tmp = tmp_path_factory.mktemp("contract-fleet")
    assert run_playbook(tmp, "rollback.yml", extravars={"rollback_wave": "wave2"}).rc == 0
    for host in HOSTS:
        podman_exec(host, "mkdir", "-p", "-m", "0755", PROGRAM.rsplit("/", 1)[0])
        subprocess.run(["podman", "cp", str(ROOT / "tests/agents/contract_agent.py"),
                        "fleetwave-test-%s:%s" % (host, PROGRAM)], check=True)
        podman_exec(host, "chmod", "0644", PROGRAM)
    run = run_playbook(tmp, "site.yml", extravars=CONTRACT_UNITS)
    assert run.rc == 0, run.stdout[-4000:]
    for host in HOSTS:
        assert "contract_agent.py" in podman_exec(host, "systemctl", "show", "-p", "ExecStart", "agent@%s.service" % AGENT)
    yield tmp
    # Back to the reference agent everywhere (the role removes the drop-ins it wrote), legacy-only,
    # without the contract agent's settings.
    assert run_playbook(tmp, "rollback.yml", extravars={"rollback_wave": "wave2"}).rc == 0
    for host in HOSTS:
        podman_exec(host, "sed", "-i", "/^FAULT_DROP_UNIFIED_PCT=/d; /^HEARTBEAT_INTERVAL_S=/d", ENV)
    run = run_playbook(tmp, "site.yml")
    assert run.rc == 0, run.stdout[-4000:]
    for host in HOSTS:
        assert "reference_agent.py" in podman_exec(host, "systemctl", "show", "-p", "ExecStart", "agent@%s.service" % AGENT)


def wave2_decision():
    return json.loads((ARTIFACTS / "checkpoints/wave2/decision.json").read_text())


def round_decision(label):
    return json.loads((ARTIFACTS / "checkpoints/wave2" / label / "decision.json").read_text())


def test_contract_agents_go_through_wave2_and_a_rollback_proven_by_the_server(contract_fleet, tmp_path):
    run = run_playbook(tmp_path, "wave2.yml", extravars=QUICK_WAVE2)
    assert run.rc == 0, run.stdout[-4000:]
    assert wave2_decision()["outcome"] == "GO"
    last = round_decision("T+24h")
    # Each instance proven by the server, though no reply names its host.
    checks = [c for c in last["health"] if c["agent"] == AGENT and c["check"] == "server: subscriptions"]
    assert sorted(c["host"] for c in checks) == list(HOSTS) and all(c["ok"] for c in checks), checks
    assert all(c["measured"].startswith("subscribed on legacy and unified (cid ") for c in checks), checks
    rows = [r for r in last["criteria"] if r["name"] == "dual_publish_success" and r["agent"].startswith(AGENT)]
    assert len(rows) == 3 and all(r["passed"] and r["measured"] > 99 for r in rows), rows
    summary = (ARTIFACTS / "checkpoints/wave2/T+24h/summary.md").read_text()
    assert "events of tdd-expert name no host" in summary
    for host in HOSTS:
        assert env_flag(host, AGENT) == "true"

    run = run_playbook(tmp_path, "rollback.yml", extravars={"rollback_wave": "wave2"})
    assert run.rc == 0, run.stdout[-4000:]
    record = json.loads(sorted((ARTIFACTS / "rollbacks").glob("rollback-*.json"))[-1].read_text())
    proof = record["detail"]["legacy_only"]
    assert proof["proven"] is True, proof
    server = proof["server"]
    assert server["proven"] and server["impostors"] == [], server
    for host in HOSTS:
        instance = server["instances"]["%s@%s" % (AGENT, host)]
        assert instance["ok"] and instance["legacy"] is True and instance["unified"] is False and instance["cids"], instance
        assert env_flag(host, AGENT) == "false"


IMPOSTOR = textwrap.dedent("""
    import asyncio, sys, nats
    async def main(url, subject):
        nc = await nats.connect(url, name="friendly-helper")
        async def answer(msg):
            await nc.publish(msg.reply, b'{"ok": true}')
        await nc.subscribe(subject, cb=answer)
        await nc.flush()
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    asyncio.run(main(sys.argv[1], sys.argv[2]))
""")


def test_an_impostor_answering_for_an_agent_stops_the_wave_naming_its_connection(contract_fleet, tmp_path):
    assert run_playbook(tmp_path, "rollback.yml", extravars={"rollback_wave": "wave2"}).rc == 0
    unified = "agents.%s.%s.cmd.ping" % (AGENTS[AGENT]["cluster"], AGENTS[AGENT]["id"])
    impostor = subprocess.Popen([sys.executable, "-c", IMPOSTOR, NATS_URL, unified], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
    try:
        assert impostor.stdout.readline().strip() == "ready"
        run = run_playbook(tmp_path, "wave2.yml", extravars=QUICK_WAVE2)
    finally:
        impostor.stdin.close()
        impostor.wait(10)
    assert run.rc != 0
    first = round_decision("phase1-verification")
    assert first["outcome"] == "NO-GO"
    named = [r for r in first["reasons"] if "no impostor on its command subjects" in r]
    assert len(named) == 1 and named[0].startswith("health: %s no impostor" % AGENT), first["reasons"]
    assert 'measured cid ' in named[0] and '"friendly-helper" from 127.0.0.1:' in named[0], named
    assert "NO-GO for wave2 after phase1" in run.stdout


def test_three_percent_of_unified_copies_dropped_is_no_go_naming_criterion_and_agent(contract_fleet, tmp_path):
    assert run_playbook(tmp_path, "rollback.yml", extravars={"rollback_wave": "wave2"}).rc == 0
    set_drop(3)
    try:
        run = run_playbook(tmp_path, "wave2.yml", extravars=QUICK_WAVE2)
        assert run.rc != 0
        judged = round_decision("phase2-verification")
        assert judged["outcome"] == "NO-GO", judged["reasons"]
        failed = [r for r in judged["reasons"] if r.startswith("primary dual_publish_success failed on %s@" % AGENT)]
        assert len(failed) == 3, judged["reasons"]
        rows = [r for r in judged["criteria"] if r["name"] == "dual_publish_success" and r["agent"].startswith(AGENT)]
        # Exactly 3 of every 100 unified copies are missing, so the agent type's figure is 97 % give or
        # take the block a window starts in; all three instances carry it.
        assert len({r["measured"] for r in rows}) == 1 and 96 <= rows[0]["measured"] <= 98, rows
    finally:
        assert run_playbook(tmp_path, "rollback.yml", extravars={"rollback_wave": "wave2"}).rc == 0
        set_drop(0)  # the rollback put back the pre-flip file, knob included
