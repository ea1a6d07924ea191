"""The contract-only agent (tests/agents/contract_agent.py) as a real subprocess against a real
nats-server (loopback only).

The agent is the test double of "agents we did not write": the contract's subjects and nothing
more. Each test shows one promise a playbook may rely on with any agent (flag off/on subjects,
dual publishing with one Nats-Msg-Id, one answer per request from the queue group, the fault
knobs, exit codes), and that it offers none of the reference agent's extensions.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import zipfile
from pathlib import Path

import nats
import pytest
from nats.errors import NoRespondersError

from tests.conftest import AgentProcess, EventRecorder, gather_replies, nats_connect, run_async, wait_for

pytestmark = pytest.mark.integration

BOOKWORM_PYTHON = Path("/usr/bin/python3")
EX_CONFIG = 78


async def record(nc, *subjects: str) -> dict:
    """Subscribe to subjects; the returned dict fills with subject pattern -> [messages]."""
    recorder = EventRecorder()
    await recorder.watch(nc, *subjects)
    return recorder.messages


def assert_bare_reply(msg, agent: AgentProcess, verb: str = "ping") -> None:
    """The contract agent's answer: its name and the verb, no host, no headers at all."""
    assert json.loads(msg.data) == {"ok": True, "agent": agent.name, "verb": verb}
    assert not msg.headers, msg.headers  # no Agent-Host, and the request's headers are not echoed


# ---------------------------------------------------------------- flag off / on


def test_flag_off_answers_and_publishes_on_legacy_only(contract_agent, nats_server):
    agent = contract_agent(unified=False)

    async def scenario():
        nc = await nats_connect(nats_server.url)
        events = await record(nc, agent.event_subject(">"), agent.event_subject(">", "unified"))
        reply = await nc.request(agent.command_subject("ping"), b"", timeout=2)
        with pytest.raises(NoRespondersError):
            await nc.request(agent.command_subject("ping", "unified"), b"", timeout=2)
        await asyncio.sleep(0.5)  # about five heartbeats at 0.1 s
        await nc.close()
        return reply, events

    reply, events = run_async(scenario())
    assert_bare_reply(reply, agent)
    legacy = events[agent.event_subject(">")]
    assert len(legacy) >= 3 and {m.subject for m in legacy} == {agent.event_subject("heartbeat")}
    assert events[agent.event_subject(">", "unified")] == []
    assert "flag off" in agent.stdout and f"{agent.legacy_prefix}.cmd.>" in agent.stdout
    assert agent.unified_prefix not in agent.stdout


def test_flag_on_answers_on_both_subjects_and_publishes_every_event_twice(contract_agent, nats_server):
    agent = contract_agent(unified=True, heartbeat_interval=0.02)

    async def scenario():
        nc = await nats_connect(nats_server.url)
        events = await record(nc, agent.event_subject(">"), agent.event_subject(">", "unified"))
        legacy = await nc.request(agent.command_subject("ping"), b"", timeout=2)
        unified = await nc.request(agent.command_subject("deploy.check", "unified"), b"", timeout=2)
        await asyncio.sleep(0.6)
        await nc.close()
        return legacy, unified, events

    legacy_reply, unified_reply, events = run_async(scenario())
    assert_bare_reply(legacy_reply, agent)
    assert_bare_reply(unified_reply, agent, verb="deploy.check")  # any verb, the rest of the subject

    def by_msg_id(via):
        return {m.headers["Nats-Msg-Id"]: m for m in events[agent.event_subject(">", via)]}

    legacy, unified = by_msg_id("legacy"), by_msg_id("unified")
    assert len(legacy) == len(events[agent.event_subject(">")])  # a fresh id per event
    # The last event may have been cut by close(): every other one arrived on both subjects.
    assert len(legacy) >= 10 and len(legacy.keys() ^ unified.keys()) <= 1
    for msg_id in legacy.keys() & unified.keys():
        twin, msg = unified[msg_id], legacy[msg_id]
        assert (msg.subject, twin.subject) == (agent.event_subject("heartbeat"), agent.event_subject("heartbeat", "unified"))
        assert twin.data == msg.data and twin.headers == msg.headers == {"Nats-Msg-Id": msg_id}
        assert set(json.loads(msg.data)) == {"agent", "id", "type", "seq", "ts"}  # no host field
    assert "flag on" in agent.stdout and f"{agent.unified_prefix}.cmd.>" in agent.stdout


def test_three_instances_give_one_answer_per_request_and_ignore_agent_target(contract_agent, nats_server):
    agents = [contract_agent(unified=True, host=f"dgx-{n}") for n in (1, 2, 3)]

    async def scenario():
        nc = await nats_connect(nats_server.url)
        answers = []
        for via in ("legacy", "unified"):
            for _ in range(5):
                # Agent-Target is the reference agent's extension: this agent answers regardless,
                # and never names its host (Agent-Host) nor echoes the request's headers.
                headers = {"Agent-Target": "dgx-3", "Agent-Host": "dgx-3"}
                answers.append(await gather_replies(nc, agents[0].command_subject("ping", via), headers=headers))
        await nc.close()
        return answers

    for replies in run_async(scenario()):
        assert len(replies) == 1  # the queue group: one instance of the three answers
        assert_bare_reply(replies[0], agents[0])
    for agent in agents:
        assert "queue group network-expert" in agent.stdout
        assert "dgx-" not in agent.output  # AGENT_HOST is ignored, not even logged


# ---------------------------------------------------------------- fault knobs


def test_drop_knob_drops_exactly_three_percent_of_unified_copies(contract_agent, nats_server):
    agent = contract_agent(unified=True, heartbeat_interval=0.005, FAULT_DROP_UNIFIED_PCT=3)

    async def scenario():
        nc = await nats_connect(nats_server.url)
        events = await record(nc, agent.event_subject(">"), agent.event_subject(">", "unified"))
        wait_until = time.monotonic() + 8
        while len(events[agent.event_subject(">")]) < 330 and time.monotonic() < wait_until:
            await asyncio.sleep(0.05)
        await nc.close()
        return events

    events = run_async(scenario())

    def seqs(via):
        return [json.loads(m.data)["seq"] for m in events[agent.event_subject(">", via)]]

    legacy, unified = seqs("legacy"), set(seqs("unified"))
    assert len(legacy) >= 330, len(legacy)
    # 300 consecutive events, well clear of the recording's ends: every legacy copy arrived.
    window = list(range(legacy[10], legacy[10] + 300))
    assert set(window) <= set(legacy)
    missing = [seq for seq in window if seq not in unified]
    assert len(missing) == 9  # exactly 3 of every 100, whichever 300 they are
    for start in range(0, 300, 100):
        assert len([seq for seq in window[start : start + 100] if seq not in unified]) == 3


def test_reply_delay_adds_latency_to_each_reply_without_serialising(contract_agent, nats_server):
    agent = contract_agent(FAULT_REPLY_DELAY_MS=200)
    subject = agent.command_subject("ping")

    async def scenario():
        nc = await nats_connect(nats_server.url)
        started = time.perf_counter()
        await nc.request(subject, b"", timeout=2)
        single = time.perf_counter() - started
        started = time.perf_counter()
        await asyncio.gather(*(nc.request(subject, b"", timeout=3) for _ in range(10)))
        concurrent = time.perf_counter() - started
        await nc.close()
        return single, concurrent

    single, concurrent = run_async(scenario())
    assert 0.200 <= single < 0.400, single
    assert 0.200 <= concurrent < 0.600, concurrent  # serialised would take 10 x 200 ms


# ---------------------------------------------------------------- configuration and lifecycle


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        pytest.param({"id": None}, "AGENT_ID", id="id-missing"),
        pytest.param({"name": "tdd.expert"}, "AGENT_NAME", id="name-not-a-token"),
        pytest.param({"unified": None}, "ENABLE_UNIFIED_SUBJECTS", id="flag-missing"),
        pytest.param({"unified": "maybe"}, "ENABLE_UNIFIED_SUBJECTS", id="flag-not-boolean"),
        pytest.param({"url": ""}, "NATS_URL", id="url-empty"),
        pytest.param({"UNIFIED_SUBJECT_PREFIX": "agents.{team}.{id}"}, "UNIFIED_SUBJECT_PREFIX", id="unknown-field"),
        pytest.param({"heartbeat_interval": "0"}, "HEARTBEAT_INTERVAL_S", id="interval-zero"),
        pytest.param({"FAULT_DROP_UNIFIED_PCT": "150"}, "FAULT_DROP_UNIFIED_PCT", id="pct-above-100"),
        pytest.param({"FAULT_REPLY_DELAY_MS": "soon"}, "FAULT_REPLY_DELAY_MS", id="delay-not-number"),
    ],
)
def test_bad_config_exits_78_naming_the_variable(contract_agent, env, variable):
    agent = contract_agent(wait=False, **env)
    assert agent.wait_exit(timeout=5) == EX_CONFIG
    assert "configuration error" in agent.stderr and variable in agent.stderr, agent.stderr
    assert agent.stdout == ""


def test_sigterm_answers_in_flight_requests_then_exits_0(contract_agent, nats_server):
    agent = contract_agent(FAULT_REPLY_DELAY_MS=300)

    async def scenario():
        nc = await nats_connect(nats_server.url)
        pending = asyncio.ensure_future(nc.request(agent.command_subject("ping"), b"", timeout=3))
        await asyncio.sleep(0.1)  # the agent holds the request in its reply delay
        os.kill(agent.pid, signal.SIGTERM)
        reply = await pending
        await nc.close()
        return reply

    reply = run_async(scenario())
    assert agent.wait_exit(timeout=5) == 0
    assert_bare_reply(reply, agent)
    assert "draining" in agent.stdout and "stopped" in agent.stdout


def test_agent_waits_for_the_server_and_reconnects_after_a_restart(contract_agent, nats_server_factory):
    server = nats_server_factory(start=False)  # port chosen, nothing listening yet
    agent = contract_agent(url=server.url, wait=False)
    time.sleep(1.0)
    assert agent.proc.poll() is None, agent.output  # keeps trying
    server.start()
    agent.wait_ready(timeout=5)
    server.stop()
    wait_for(lambda: "disconnected from NATS" in agent.stdout, timeout=5, what="disconnect logged")
    server.start()
    agent.wait_ready(timeout=5)
    assert "reconnected to" in agent.stdout
    assert agent.stop() == 0


def test_credentials_are_used(contract_agent, nats_server_factory):
    password = "pw-3a9d-contract"
    server = nats_server_factory(extra_config=f'authorization {{ user: fleet, password: "{password}" }}')
    agent = contract_agent(url=server.url, wait=False, NATS_USER="fleet", NATS_PASSWORD=password)
    agent.wait_ready(timeout=5, url=server.url.replace("nats://", f"nats://fleet:{password}@"))
    assert agent.stop() == 0 and password not in agent.output


@pytest.mark.skipif(not BOOKWORM_PYTHON.exists(), reason="needs the system /usr/bin/python3")
def test_runs_on_system_python_with_nats_py_from_a_zip(contract_agent, tmp_path):
    """As on the stand-ins: /usr/bin/python3, nats-py zipimported from a wheel on PYTHONPATH."""
    package = Path(nats.__file__).parent
    archive = tmp_path / "nats_py.whl.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for path in package.rglob("*.py"):
            zipped.write(path, path.relative_to(package.parent))
    agent = contract_agent(python=str(BOOKWORM_PYTHON), pythonpath=str(archive), unified=True)
    assert agent.stop() == 0
