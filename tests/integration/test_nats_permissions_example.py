"""inventory/production/nats-server-permissions.conf.example on a real nats-server: the contract-only
agent runs as its own user and answers the controller on both subjects, while another agent's user
can neither answer as it nor forge its events (the impostor the README warns of)."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.conftest import ROOT, nats_connect

pytestmark = pytest.mark.integration


def run(coro):
    return asyncio.run(coro)

EXAMPLE = ROOT / "inventory/production/nats-server-permissions.conf.example"
USERS = ["nats-expert", "network-expert", "tdd-expert", "graph-expert", "git-expert", "location-expert",
         "fleetwave-controller"]
TDD = {"name": "tdd-expert", "id": "01936faa-f4cb-7000-8000-00000000000a", "cluster": "quality-assurance"}
LEGACY, UNIFIED = "agent.tdd-expert", "agents.quality-assurance.01936faa-f4cb-7000-8000-00000000000a"


def password(user: str) -> str:
    return "pw-" + user


@pytest.fixture
def secured_server(nats_server_factory, monkeypatch):
    for user in USERS:  # the example reads each password from the server's environment
        monkeypatch.setenv("NATS_PASSWORD_" + user.upper().replace("-", "_"), password(user))
    return nats_server_factory(extra_config=EXAMPLE.read_text())


def url_for(server, user: str) -> str:
    return server.url.replace("nats://", "nats://%s:%s@" % (user, password(user)))


def test_each_agent_answers_as_itself_only(secured_server, contract_agent):
    agent = contract_agent(**TDD, unified=True, url=secured_server.url, wait=False, heartbeat_interval=0.05,
                           NATS_USER="tdd-expert", NATS_PASSWORD=password("tdd-expert"))
    agent.wait_ready(timeout=10, url=url_for(secured_server, "fleetwave-controller"))

    async def scenario():
        violations = []

        async def on_error(exc):
            violations.append(str(exc).lower())

        controller = await nats_connect(url_for(secured_server, "fleetwave-controller"))
        impostor = await nats_connect(url_for(secured_server, "network-expert"), error_cb=on_error)
        forged, events = [], []

        async def keep(msg):
            (forged if msg.data == b"forged" else events).append(msg)

        await controller.subscribe(LEGACY + ".evt.>", cb=keep)
        await controller.subscribe(UNIFIED + ".evt.>", cb=keep)
        await controller.flush()

        # The impostor tries to take tdd-expert's commands and to publish its events.
        await impostor.subscribe(LEGACY + ".cmd.>", cb=keep)
        await impostor.publish(LEGACY + ".evt.heartbeat", b"forged")
        await impostor.publish(UNIFIED + ".evt.heartbeat", b"forged")
        await impostor.flush()
        # The controller may send commands but not publish events either.
        await controller.publish(LEGACY + ".evt.heartbeat", b"forged")
        # An agent's user replies to requests it received (allow_responses), not into any inbox.
        agent_user = await nats_connect(url_for(secured_server, "tdd-expert"), error_cb=on_error)
        inbox = controller.new_inbox()
        await controller.subscribe(inbox, cb=keep)
        await controller.flush()
        await agent_user.publish(inbox, b"forged")
        await agent_user.flush()

        replies = [json.loads((await controller.request(prefix + ".cmd.ping", b"", timeout=2)).data)
                   for prefix in (LEGACY, UNIFIED) for _ in range(3)]
        await asyncio.sleep(0.3)
        await impostor.close()
        await agent_user.close()
        await controller.close()
        return replies, events, forged, violations, inbox

    replies, events, forged, violations, inbox = run(scenario())
    assert replies == [{"ok": True, "agent": "tdd-expert", "verb": "ping"}] * 6
    assert {m.subject for m in events} == {LEGACY + ".evt.heartbeat", UNIFIED + ".evt.heartbeat"}
    assert forged == []
    assert 'nats: permissions violation for subscription to "%s.cmd.>"' % LEGACY in violations
    assert 'nats: permissions violation for publish to "%s.evt.heartbeat"' % UNIFIED in violations
    assert 'nats: permissions violation for publish to "%s"' % inbox.lower() in violations
