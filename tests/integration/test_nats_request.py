"""plugins/modules/nats_request.py (+ module_utils/fleet_nats.py) run in-process against a real
nats-server and real reference agents on loopback: scatter-gather, targeting, expectations,
no-responders, early stop, unreachable servers and credential redaction."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import REFERENCE_AGENT, AgentProcess, free_port
from tests.unit.conftest import run_module  # noqa: F401  (the fixture, shared with the unit tests)

pytestmark = pytest.mark.integration

HOSTS = ["dgx-1", "dgx-2", "dgx-3"]
# A private agent type, so no other test's agents can answer on these subjects.
NAME = "probe-%s" % uuid.uuid4().hex[:8]
AGENT_ID = str(uuid.uuid4())
CLUSTER = "infrastructure"
LEGACY = "agent.%s.cmd.ping" % NAME
UNIFIED = "agents.%s.%s.cmd.ping" % (CLUSTER, AGENT_ID)
NOBODY = "agents.nobody.%s.cmd.ping" % uuid.uuid4()


@pytest.fixture(scope="module")
def fleet(nats_server, tmp_path_factory):
    """Three instances of one agent type (flag on) on hosts dgx-1..3, shared by this module."""
    workdir = tmp_path_factory.mktemp("nats-request-fleet")
    agents = []
    try:
        for host in HOSTS:
            env = dict(PATH=os.environ.get("PATH", "/usr/bin:/bin"), LANG="C.UTF-8", AGENT_NAME=NAME,
                       AGENT_ID=AGENT_ID, CAPABILITY_CLUSTER=CLUSTER, AGENT_HOST=host, NATS_URL=nats_server.url,
                       ENABLE_UNIFIED_SUBJECTS="true", HEARTBEAT_INTERVAL="5")
            agents.append(AgentProcess(env, [sys.executable, str(REFERENCE_AGENT)], workdir / host))
        for agent in agents:
            agent.wait_ready(15)
        yield agents
    finally:
        for agent in agents:
            try:
                agent.stop(timeout=5)
            except subprocess.TimeoutExpired:
                pass  # stop() killed it


@pytest.fixture
def request_(run_module, nats_server):  # noqa: F811
    """request_(subject, **options) -> (result, seconds the module took)."""

    def send(subject, **options):
        started = time.monotonic()
        result = run_module("nats_request", dict(dict(url=nats_server.url, timeout=1.0), subject=subject, **options))
        return result, time.monotonic() - started

    return send


# --- gathering -----------------------------------------------------------------------------------

def test_gathers_one_reply_from_each_instance(fleet, request_):
    result, _ = request_(LEGACY, timeout=1.0)
    assert not result.get("failed"), result.get("msg")
    assert result["hosts"] == HOSTS and len(result["replies"]) == 3
    assert sorted(r["host"] for r in result["replies"]) == HOSTS
    assert result["no_responders"] is False and result["changed"] is False and result["subject"] == LEGACY


def test_replies_are_decoded_with_headers_and_latency(fleet, request_):
    result, _ = request_(UNIFIED, timeout=5.0, expect_replies=1)
    reply = result["replies"][0]
    assert reply["data"]["agent"] == NAME and reply["data"]["via"] == "unified" and reply["data"]["ok"] is True
    assert reply["headers"]["Agent-Host"] == reply["host"] == reply["data"]["host"]
    assert 0 < reply["latency_ms"] < 1000


def test_without_expect_replies_the_whole_window_is_waited(fleet, request_):
    result, took = request_(LEGACY, timeout=1.0)
    assert result["elapsed_ms"] >= 950 and took >= 0.95


def test_expect_replies_stops_gathering_early(fleet, request_):
    result, took = request_(LEGACY, timeout=10.0, expect_replies=3)
    assert not result.get("failed") and result["hosts"] == HOSTS
    assert result["elapsed_ms"] < 2000 and took < 3


def test_agent_target_header_gets_one_reply(fleet, request_):
    result, _ = request_(LEGACY, timeout=0.5, headers={"Agent-Target": "dgx-2"})
    assert [r["host"] for r in result["replies"]] == ["dgx-2"] and result["hosts"] == ["dgx-2"]


def test_request_is_sent_in_check_mode_too(fleet, run_module, nats_server):  # noqa: F811
    result = run_module("nats_request", dict(url=nats_server.url, subject=LEGACY, timeout=5.0, expect_replies=3),
                        check=True)
    assert result["hosts"] == HOSTS


# --- expectations --------------------------------------------------------------------------------

def test_expected_hosts_that_answer_pass(fleet, request_):
    result, took = request_(LEGACY, timeout=5.0, expect_hosts=HOSTS, expect_replies=3)
    assert not result.get("failed") and result["hosts"] == HOSTS and took < 3


def test_missing_expected_host_fails_naming_host_subject_url_and_timeout(fleet, request_, nats_server):
    result, _ = request_(LEGACY, timeout=0.5, expect_hosts=["dgx-1", "dgx-9", "dgx-3", "dgx-8"])
    assert result["failed"]
    assert result["msg"] == "no reply from dgx-9, dgx-8 on %s via %s within 0.5 s" % (LEGACY, nats_server.url)
    assert result["hosts"] == HOSTS  # what did answer is still reported


def test_replies_that_name_no_host_are_not_called_silence(request_, nats_server):
    """An agent written to the contract alone answers without saying where from (issue 9)."""
    responder = subprocess.Popen([sys.executable, "-c", ANONYMOUS_RESPONDER, nats_server.url],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert responder.stdout.readline().strip() == "ready"
        result, _ = request_("agent.anonymous.cmd.ping", timeout=0.5, expect_hosts=["dgx-1"])
    finally:
        responder.stdin.close()
        responder.wait(10)
    assert result["failed"] and result["hosts"] == [] and len(result["replies"]) == 1
    assert result["msg"] == ("no reply from dgx-1 on agent.anonymous.cmd.ping via %s within 0.5 s: 1 reply came, "
                             "but nothing in it names its host (no Agent-Host header, no host field); prove the "
                             "instance from the server's view instead" % nats_server.url)


ANONYMOUS_RESPONDER = """
import asyncio, sys, nats
async def main():
    nc = await nats.connect(sys.argv[1])
    async def answer(msg):
        await msg.respond(b'{"ok": true}')
    await nc.subscribe("agent.anonymous.cmd.ping", cb=answer)
    await nc.flush()
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    await nc.close()
asyncio.run(main())
"""


def test_forbidden_host_that_answers_fails(fleet, request_, nats_server):
    result, _ = request_(LEGACY, timeout=0.5, forbid_hosts=["dgx-2", "dgx-7"])
    assert result["failed"]
    assert result["msg"] == "unexpected reply from dgx-2 on %s via %s within 0.5 s" % (LEGACY, nats_server.url)


def test_forbidden_host_that_stays_silent_passes(fleet, request_):
    result, _ = request_(LEGACY, timeout=0.5, headers={"Agent-Target": "dgx-1"}, forbid_hosts=["dgx-2", "dgx-3"])
    assert not result.get("failed") and result["hosts"] == ["dgx-1"]


# --- no responders -------------------------------------------------------------------------------

def test_expect_no_responders_passes_quickly_when_nobody_subscribes(request_):
    result, took = request_(NOBODY, timeout=5.0, expect_no_responders=True)
    assert not result.get("failed"), result.get("msg")
    assert result["no_responders"] is True and result["hosts"] == [] and result["replies"] == []
    assert result["elapsed_ms"] < 2000 and took < 3


def test_expect_no_responders_fails_when_someone_answers(fleet, request_, nats_server):
    result, _ = request_(LEGACY, timeout=0.5, expect_no_responders=True)
    assert result["failed"] and result["no_responders"] is False
    assert result["msg"] == ("expected no responders on %s via %s within 0.5 s, but dgx-1, dgx-2, dgx-3 answered"
                             % (LEGACY, nats_server.url))


def test_no_responders_is_reported_without_failing_by_default(request_):
    result, _ = request_(NOBODY, timeout=5.0)
    assert not result.get("failed") and result["no_responders"] is True and result["hosts"] == []


def test_no_responders_with_expected_hosts_fails_saying_so(request_, nats_server):
    result, _ = request_(NOBODY, timeout=5.0, expect_hosts=["dgx-1"])
    assert result["failed"] and result["no_responders"] is True
    assert result["msg"] == ("no reply from dgx-1 on %s via %s within 5.0 s (the server reports no responders)"
                             % (NOBODY, nats_server.url))


# --- connecting ----------------------------------------------------------------------------------

def test_unreachable_nats_fails_fast_naming_the_url(run_module):  # noqa: F811
    port = free_port()
    started = time.monotonic()
    result = run_module("nats_request", dict(url="nats://127.0.0.1:%d" % port, subject=LEGACY))
    assert time.monotonic() - started < 5
    assert result["failed"] and result["subject"] == LEGACY
    assert result["msg"].startswith("cannot connect to NATS at nats://127.0.0.1:%d within 2.0 s: " % port)


@pytest.fixture
def silent_server():
    """A TCP listener that accepts and never speaks NATS (a hung server, a wrong port)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield "nats://127.0.0.1:%d" % sock.getsockname()[1]


def test_silent_server_fails_within_the_connect_timeout(run_module, silent_server):  # noqa: F811
    started = time.monotonic()
    result = run_module("nats_request", dict(url=silent_server, subject=LEGACY, connect_timeout=1.0))
    assert time.monotonic() - started < 4
    assert result["failed"] and result["msg"].startswith("cannot connect to NATS at %s within 1.0 s" % silent_server)


def test_silent_server_failure_says_why(run_module, silent_server):  # noqa: F811
    result = run_module("nats_request", dict(url=silent_server, subject=LEGACY, connect_timeout=1.0))
    assert not result["msg"].rstrip().endswith(":")


def test_password_in_the_url_is_redacted_when_unreachable(run_module):  # noqa: F811
    port = free_port()
    result = run_module("nats_request", dict(url="nats://fleet:s3cret-pw@127.0.0.1:%d" % port, subject=LEGACY))
    assert result["failed"] and "nats://***@127.0.0.1:%d" % port in result["msg"]
    assert "s3cret-pw" not in json.dumps(result)


def test_password_in_the_url_is_redacted_in_expectation_failures(fleet, run_module, nats_server):  # noqa: F811
    # The test server has no authorization, so it accepts (and ignores) the credentials.
    url = nats_server.url.replace("nats://", "nats://fleet:s3cret-pw@")
    result = run_module("nats_request", dict(url=url, subject=LEGACY, timeout=0.5, expect_hosts=["dgx-9"]))
    assert result["failed"] and result["hosts"] == HOSTS
    assert "via nats://***@127.0.0.1:%d " % nats_server.port in result["msg"]
    assert "s3cret-pw" not in json.dumps(result)


def test_token_in_the_url_is_redacted(run_module):  # noqa: F811
    port = free_port()
    result = run_module("nats_request", dict(url="nats://s3cret-token@127.0.0.1:%d" % port, subject=LEGACY))
    assert result["failed"] and "s3cret-token" not in json.dumps(result)


# --- secrets in the whole result of the real module process (issue 8) ----------------------------

MODULE_ARGS = dict(nats_request=dict(subject=LEGACY),
                   nats_probe=dict(agents=[dict(name=NAME, legacy="agent." + NAME, unified="agents.x." + AGENT_ID)],
                                   hosts=HOSTS))


def run_module_process(name, args):
    """Run fleetwave.rollout.<name> as a process of its own, as Ansible runs it, so that AnsibleModule's
    real result handling (no_log masking, invocation.module_args) is part of what is checked."""
    done = subprocess.run(
        [sys.executable, "-m", "ansible_collections.fleetwave.rollout.plugins.modules." + name],
        input=json.dumps({"ANSIBLE_MODULE_ARGS": dict(MODULE_ARGS[name], connect_timeout=0.5, **args)}),
        env=dict(os.environ, PYTHONPATH=os.path.join(os.path.dirname(__file__), "..", "..", "collections")),
        capture_output=True, text=True, timeout=60)
    return json.loads(done.stdout), done.stdout + done.stderr


@pytest.mark.parametrize("name", ["nats_request", "nats_probe"])
@pytest.mark.parametrize("args, secrets", [
    (dict(url="nats://svc:s3cr%2Ft@127.0.0.1:1"), ["s3cr%2Ft", "s3cr/t"]),
    (dict(url="svc:s3cret-pw@127.0.0.1:1"), ["s3cret-pw"]),
    (dict(url="nats://svc:s3/cret pw@127.0.0.1:1"), ["s3/cret pw", "cret pw"]),
    (dict(url="s3cret-token@127.0.0.1:1"), ["s3cret-token"]),
    (dict(url="nats://127.0.0.1:1", user="svc", password="s3cret-pw"), ["s3cret-pw"]),
], ids=["percent_encoded_password", "scheme_less_url_password", "password_with_slash_and_space",
        "scheme_less_token", "password_option"])
def test_unreachable_url_password_appears_nowhere_in_the_result(name, args, secrets):
    result, output = run_module_process(name, args)
    assert result["failed"] and "127.0.0.1:1 within 0.5 s" in result["msg"], result["msg"]
    assert not [secret for secret in secrets if secret in output], output


@pytest.mark.parametrize("name", ["nats_request", "nats_probe"])
def test_url_without_credentials_is_still_shown(name):
    result, _ = run_module_process(name, dict(url="nats://127.0.0.1:1"))
    assert result["msg"].startswith("cannot connect to NATS at nats://127.0.0.1:1 within 0.5 s: ")
    assert result["invocation"]["module_args"]["url"] == "nats://127.0.0.1:1"
