"""Fixtures of the integration tests: the contract-only agent (tests/agents/contract_agent.py) as a
subprocess, the way tests.conftest's reference_agent starts the reference agent."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import ROOT, agent_processes, stop_all

CONTRACT_AGENT = ROOT / "tests/agents/contract_agent.py"


@pytest.fixture
def contract_agent(nats_server, tmp_path: Path):
    """Factory: contract_agent(name=, id=, cluster=, unified=, url=, **ENV) -> AgentProcess
    (tests.conftest.agent_processes of the contract-only agent), stopped after the test.

    AGENT_HOST is always set (as the role writes it), so the tests show it is never used.
    """
    start, agents = agent_processes(nats_server, tmp_path, CONTRACT_AGENT, "HEARTBEAT_INTERVAL_S", 0.1,
                                    "contract-agent")
    yield start
    stop_all(agents)
