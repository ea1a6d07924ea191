"""A real fleet's agents (issue 9). The test fleet is mixed: tdd-expert's units run an agent written
from shared/contract.md alone (tests/agents/contract_agent.py: no Agent-Target, no Agent-Host, no emit,
no status; commands in a queue group), installed the way a fleet installs its own program
(agent_service_agent_exec_start, a systemd drop-in). Its healthy wave 2 and rollback are in
test_wave2_sandbox.py; here its faults are caught from what the NATS server itself shows."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from .conftest import (AGENTS, ARTIFACTS, HOSTS, NATS_URL, QUICK_WAVE2, ensure_legacy, podman_exec, roll_back_wave2,
                       run_playbook)

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(900)]

AGENT = "tdd-expert"
ENV = "/etc/agents/%s.env" % AGENT

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


def set_drop(pct):
    """The contract agent's unified drop knob in every tdd-expert env file, then a restart."""
    for host in HOSTS:
        podman_exec(host, "sed", "-i", "s/^FAULT_DROP_UNIFIED_PCT=.*/FAULT_DROP_UNIFIED_PCT=%s/" % pct, ENV)
        podman_exec(host, "systemctl", "restart", "agent@%s.service" % AGENT)


def test_dropped_unified_copies_and_an_impostor_are_each_named_from_the_servers_view(sandbox, wave1_go, tmp_path):
    """One wave 2 run (the suite's time is finite) with two faults that each have their own check:
    3 % of the contract agent's unified copies dropped (a primary criterion, on every instance, from
    the agent type's events since they name no host), and another client answering on its unified
    subject (a health check naming the impostor's connection as the server lists it, and the
    duplicate answers it caused)."""
    ensure_legacy(tmp_path)
    unified = "agents.%s.%s.cmd.ping" % (AGENTS[AGENT]["cluster"], AGENTS[AGENT]["id"])
    set_drop(3)
    impostor = subprocess.Popen([sys.executable, "-c", IMPOSTOR, NATS_URL, unified], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
    try:
        assert impostor.stdout.readline().strip() == "ready"
        run = run_playbook(tmp_path, "wave2.yml", extravars=QUICK_WAVE2)
    finally:
        impostor.stdin.close()
        impostor.wait(10)
        assert roll_back_wave2(tmp_path).rc == 0
        set_drop(0)  # the rollback put back the pre-flip file, knob included
    # A file whose flag is off already is left as it is by the next rollback (it used to put the
    # pre-flip backup back, knob and all, undoing the edit above).
    assert roll_back_wave2(tmp_path).rc == 0
    for host in HOSTS:
        assert "FAULT_DROP_UNIFIED_PCT=0" in podman_exec(host, "cat", ENV).splitlines(), host
    assert run.rc != 0
    assert "NO-GO for wave2 after phase2" in run.stdout
    # tdd-expert is watched from phase 2 on (in phase 1 it is neither test nor control).
    judged = json.loads((ARTIFACTS / "checkpoints/wave2/phase2-verification/decision.json").read_text())
    assert judged["outcome"] == "NO-GO" and judged["run_id"].startswith("wave2-"), judged["reasons"]

    failed = [r for r in judged["reasons"] if r.startswith("primary dual_publish_success failed on %s@" % AGENT)]
    assert len(failed) == len(HOSTS), judged["reasons"]
    rows = [r for r in judged["criteria"] if r["name"] == "dual_publish_success" and r["agent"].startswith(AGENT)]
    # Exactly 3 of every 100 unified copies are missing, so the agent type's figure is 97 % give or take
    # the block a window starts in; all three instances carry it.
    assert len({r["measured"] for r in rows}) == 1 and 96 <= rows[0]["measured"] <= 98, rows

    named = [r for r in judged["reasons"] if "no impostor on its command subjects" in r]
    assert len(named) == 1 and named[0].startswith("health: %s no impostor" % AGENT), judged["reasons"]
    assert 'measured cid ' in named[0] and '"friendly-helper" from 127.0.0.1:' in named[0], named
    # Its answers beside the agent's are counted, not silently dropped.
    assert any(r.startswith("health: %s one answer per request: expected 0 duplicate replies, measured " % AGENT)
               for r in judged["reasons"]), judged["reasons"]
