"""Fixtures of the integration tests: the contract-only agent (tests/agents/contract_agent.py) as a
subprocess, the way tests.conftest's reference_agent starts the reference agent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Optional

import pytest

from tests.conftest import DEFAULT_AGENT, ROOT, AgentProcess

CONTRACT_AGENT = ROOT / "tests/agents/contract_agent.py"


@pytest.fixture
def contract_agent(nats_server, tmp_path: Path):
    """Factory: contract_agent(name=, id=, cluster=, unified=, url=, **ENV) -> AgentProcess.

    A keyword set to None leaves that variable out; extra keywords are environment variables.
    AGENT_HOST is always set (as the role writes it), so the tests show it is never used.
    """
    agents: list[AgentProcess] = []

    def start(
        *,
        name: Optional[str] = DEFAULT_AGENT["name"],
        id: Optional[str] = DEFAULT_AGENT["id"],  # noqa: A002 - mirrors AGENT_ID
        cluster: Optional[str] = DEFAULT_AGENT["cluster"],
        host: str = DEFAULT_AGENT["host"],
        unified: Any = False,
        url: Optional[str] = None,
        heartbeat_interval: Any = 0.1,
        wait: bool = True,
        python: str = sys.executable,
        pythonpath: Optional[str] = None,
        **extra_env: Any,
    ) -> AgentProcess:
        settings = {
            "AGENT_NAME": name,
            "AGENT_ID": id,
            "CAPABILITY_CLUSTER": cluster,
            "AGENT_HOST": host,
            "NATS_URL": nats_server.url if url is None else url,
            "ENABLE_UNIFIED_SUBJECTS": str(unified).lower() if isinstance(unified, bool) else unified,
            "HEARTBEAT_INTERVAL_S": heartbeat_interval,
            "PYTHONPATH": pythonpath,
            **extra_env,
        }
        # A clean environment, like systemd's EnvironmentFile= gives a real agent.
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
        env.update({key: str(value) for key, value in settings.items() if value is not None})
        agent = AgentProcess(env, [python, str(CONTRACT_AGENT)], tmp_path / f"contract-agent-{len(agents)}")
        agents.append(agent)
        if wait:
            agent.wait_ready(timeout=10)
        return agent

    yield start
    for agent in agents:
        try:
            agent.stop(timeout=5)
        except subprocess.TimeoutExpired:
            pass  # stop() already killed it
