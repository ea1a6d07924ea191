"""The server's view of agent instances, end to end on loopback: real client processes connected to a
real nats-server, their sockets read from /proc by agent_host_info, the server's /connz read by the
nats_server_info module as Ansible runs it, joined by fleet_server.fleet_view."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.fleetwave.rollout.plugins.modules import agent_host_info
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_server import fleet_view
from tests.conftest import ROOT, wait_for

pytestmark = pytest.mark.integration

TDD = dict(name="tdd-expert", legacy="agent.tdd-expert", unified="agents.qa.01936faa", unified_enabled=True)

CLIENT = textwrap.dedent("""
    import asyncio, sys, nats
    async def main(url, name, subjects):
        nc = await nats.connect(url, name=name or None)
        for subject in subjects:
            await nc.subscribe(subject, queue="q" if subject.endswith(">") else "")
        await nc.flush()
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
""")


@pytest.fixture
def client(nats_server):
    """client(name, *subjects): a separate process connected to the server, subscribed, until the test ends."""
    procs = []

    def start(name, *subjects):
        proc = subprocess.Popen([sys.executable, "-c", CLIENT, nats_server.url, name, *subjects],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "ready"
        return proc

    yield start
    for proc in procs:
        proc.stdin.close()
        proc.wait(10)


def server_info(monitor_url, **args):
    """nats_server_info run as Ansible runs it: a process of its own with its arguments on stdin."""
    done = subprocess.run(
        [sys.executable, "-m", "ansible_collections.fleetwave.rollout.plugins.modules.nats_server_info"],
        input=json.dumps({"ANSIBLE_MODULE_ARGS": dict(monitor_url=monitor_url, **args)}),
        env=dict(os.environ, PYTHONPATH=str(ROOT / "collections")), capture_output=True, text=True, timeout=60)
    return json.loads(done.stdout)


def unit_of(proc):
    sockets, error = agent_host_info.unit_sockets(proc.pid)
    assert error is None
    return dict(active_state="active", main_pid=proc.pid, sockets=sockets)


def test_the_server_proves_each_instance_subscriptions_and_names_an_impostor(nats_server, client):
    one = client("", "agent.tdd-expert.cmd.>", "agents.qa.01936faa.cmd.>")        # an agent with no name
    two = client("tdd-expert", "agent.tdd-expert.cmd.ping")                       # flag on, unified missing
    impostor = client("innocent", "agents.qa.01936faa.cmd.ping")
    connz = server_info(nats_server.monitor_url, page_size=1)  # one connection per page: paging is exercised
    assert not connz.get("failed"), connz
    assert len(connz["connections"]) >= 3 and connz["server"]["server_id"]
    info = {"dgx-1": dict(units={"tdd-expert": unit_of(one)}), "dgx-2": dict(units={"tdd-expert": unit_of(two)})}
    # The sockets read from /proc are the very (ip, port) pairs the server lists.
    assert info["dgx-1"]["units"]["tdd-expert"]["sockets"][0]["remote_port"] == nats_server.port

    view = fleet_view(connz, info, [TDD], ["dgx-1", "dgx-2"])
    first = view["instances"]["tdd-expert@dgx-1"]
    assert first["ok"] and first["legacy_subscribed"] and first["unified_subscribed"]
    assert view["instances"]["tdd-expert@dgx-2"]["problem"].startswith(
        "connected (cid %d) but not subscribed to its unified subject agents.qa.01936faa.cmd.ping"
        % view["instances"]["tdd-expert@dgx-2"]["connections"][0]["cid"])
    [found] = view["impostors"]
    own = next(c for c in connz["connections"] if c.get("name") == "innocent")
    assert found["cid"] == own["cid"] and found["port"] == own["port"]
    assert 'impostor: cid %d "innocent" from 127.0.0.1:%d' % (own["cid"], own["port"]) in "\n".join(view["problems"])
    impostor.stdin.close()
    impostor.wait(10)
    wait_for(lambda: not fleet_view(server_info(nats_server.monitor_url), info, [TDD], ["dgx-1", "dgx-2"])["impostors"],
             10, what="the impostor's connection gone from /connz")


def test_a_child_process_connection_belongs_to_its_unit(nats_server, client, tmp_path):
    """An agent started through a wrapper (sh -c, a launcher) connects from a child of MainPID."""
    wrapper = subprocess.Popen(["sh", "-c", '"$0" -c "$1" "$2" "" "$3"; :', sys.executable, CLIENT, nats_server.url,
                                "agent.tdd-expert.cmd.>"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert wrapper.stdout.readline().strip() == "ready"
        sockets, error = agent_host_info.unit_sockets(wrapper.pid)
        assert error is None and len(sockets) == 1
        view = fleet_view(server_info(nats_server.monitor_url), {"h": dict(units={"tdd-expert": dict(
            active_state="active", main_pid=wrapper.pid, sockets=sockets)})}, [dict(TDD, unified_enabled=False)], ["h"])
        assert view["instances"]["tdd-expert@h"]["ok"], view["problems"]
    finally:
        wrapper.stdin.close()
        wrapper.wait(10)


def test_an_unreadable_monitoring_endpoint_is_a_clear_error_without_credentials():
    result = server_info("http://watcher:s3cret@127.0.0.1:1", timeout=1)
    assert result["failed"]
    assert "NATS monitoring endpoint: http://***@127.0.0.1:1/connz could not be read" in result["msg"]
    assert "s3cret" not in json.dumps(result)
    assert "must be an http:// or https:// URL" in server_info("nats://127.0.0.1:4222")["msg"]
