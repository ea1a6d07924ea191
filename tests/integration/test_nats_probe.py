"""plugins/modules/nats_probe.py (+ module_utils/fleet_probe.py) run in-process against a real
nats-server and real reference agents on loopback: a healthy flipped agent, deterministic dual-publish
loss, one slow instance, a flag-off control agent, an agent type with no instance at all, one lossy
instance named by its host, the counts cross-checked with the agents' own counters and with
nats-server's monitoring, check mode and an unreachable server. Probe windows are 1-3 s."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import time
import uuid

import pytest

from tests.conftest import REFERENCE_AGENT, AgentProcess, free_port, nats_connect, run_async, wait_for
from tests.unit.conftest import ModuleExit, _exit_json, _fail_json, load_module, run_module  # noqa: F401
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

pytestmark = pytest.mark.integration

HOSTS = ["dgx-1", "dgx-2", "dgx-3"]
RUN = uuid.uuid4().hex[:6]
RATE, WINDOW = 20, 2.0  # 40 requests per target per probe
DELAY_MS = 150.0

# Private agent types, so no other test's agents answer on these subjects.
# name -> (flag, env per host)
KINDS = {
    "healthy": (True, {}),
    "lossy": (True, {"*": {"FAULT_DROP_UNIFIED_RATE": "0.03", "HEARTBEAT_INTERVAL": "3600"}}),
    "slow": (True, {"dgx-2": {"FAULT_REPLY_DELAY_MS": str(int(DELAY_MS))}}),
    "control": (False, {}),
}


def identity(kind):
    return dict(name="probe-%s-%s" % (kind, RUN), id=str(uuid.uuid4()), cluster="infrastructure")


IDS = {kind: identity(kind) for kind in list(KINDS) + ["ghost", "split"]}


def spec(kind, unified_enabled=None):
    """The nats_probe `agents` entry of one agent type."""
    ident = IDS[kind]
    flag = KINDS.get(kind, (True, {}))[0] if unified_enabled is None else unified_enabled
    return dict(name=ident["name"], legacy="agent.%s" % ident["name"],
                unified="agents.%s.%s" % (ident["cluster"], ident["id"]), unified_enabled=flag)


def start_agent(kind, host, flag, url, workdir, **env_extra):
    """One reference-agent instance of agent type `kind` on `host` (not waited for)."""
    ident = IDS[kind]
    env = dict(PATH=os.environ.get("PATH", "/usr/bin:/bin"), LANG="C.UTF-8", AGENT_NAME=ident["name"],
               AGENT_ID=ident["id"], CAPABILITY_CLUSTER=ident["cluster"], AGENT_HOST=host,
               NATS_URL=url, ENABLE_UNIFIED_SUBJECTS=str(flag).lower(), HEARTBEAT_INTERVAL="5")
    env.update(env_extra)
    return AgentProcess(env, [sys.executable, str(REFERENCE_AGENT)], workdir / ("%s-%s" % (kind, host)))


def wait_all_ready(agents):
    with concurrent.futures.ThreadPoolExecutor(len(agents)) as pool:
        list(pool.map(lambda agent: agent.wait_ready(30), agents))


def stop_all(agents):
    for agent in agents:
        try:
            agent.stop(timeout=5)
        except subprocess.TimeoutExpired:
            pass  # stop() killed it


@pytest.fixture(scope="module")
def fleet(nats_server, tmp_path_factory):
    """Three instances (dgx-1..3) of each agent type in KINDS, started together."""
    workdir = tmp_path_factory.mktemp("nats-probe-fleet")
    agents = {kind: [] for kind in KINDS}
    try:
        for kind, (flag, faults) in KINDS.items():
            for host in HOSTS:
                agents[kind].append(start_agent(kind, host, flag, nats_server.url, workdir,
                                                **faults.get("*", {}), **faults.get(host, {})))
        wait_all_ready([a for group in agents.values() for a in group])
        yield agents
    finally:
        stop_all([a for group in agents.values() for a in group])


def probe(url, agents, check=False, **options):
    """Run the module in-process (module-scoped fixtures cannot use run_module); the result dict."""
    args = dict(dict(url=url, agents=agents, hosts=HOSTS, rate=RATE, window=WINDOW, timeout=2.0), **options)
    args["_ansible_check_mode"] = check
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(basic.AnsibleModule, "exit_json", _exit_json)
        mp.setattr(basic.AnsibleModule, "fail_json", _fail_json)
        with patch_module_args(args), pytest.raises(ModuleExit) as exc:
            load_module("nats_probe").main()
    return exc.value.result


def statuses(url, kind):
    """{host: counters} from a targeted status request to each instance."""

    async def ask():
        nc = await nats_connect(url)
        try:
            found = {}
            for host in HOSTS:
                msg = await nc.request(spec(kind)["legacy"] + ".cmd.status", b"", timeout=2,
                                       headers={"Agent-Target": host})
                found[host] = json.loads(msg.data)["counters"]
            return found
        finally:
            await nc.close()

    return run_async(ask())


def closed_connection(server, cid):
    """nats-server's record of the probe's connection, once the server has seen it close."""
    found = wait_for(lambda: server.monitor("connz?state=closed&cid=%s" % cid)["connections"], 5,
                     what="closed connection %s in /connz?state=closed" % cid)
    assert len(found) == 1, found
    return found[0]


def targets(result, **where):
    return [t for t in result["targets"] if all(t[k] == v for k, v in where.items())]


def agent(result, kind):
    return next(a for a in result["agents"] if a["name"] == IDS[kind]["name"])


# --- a healthy flipped agent, cross-checked with the agents and the server -------------------------

@pytest.fixture(scope="module")
def healthy(fleet, nats_server):
    before = statuses(nats_server.url, "healthy")
    started = time.monotonic()
    result = probe(nats_server.url, [spec("healthy")])
    took = time.monotonic() - started
    closed = closed_connection(nats_server, result["connection"]["client_id"]) if "connection" in result else None
    return dict(before=before, result=result, took=took, closed=closed)


def test_healthy_flipped_agent_passes_every_measure(healthy):
    result = healthy["result"]
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    a = agent(result, "healthy")
    assert a["delivery"] == 1.0 and a["error_rate"] == 0.0 and a["dual_publish_success"] == 1.0
    assert a["timeouts"] == a["no_responders"] == a["errors"] == 0
    assert a["unified_share"] == pytest.approx(0.5, abs=0.01)  # every message on both subjects
    assert a["events"]["emitted"] == 600 and a["events"]["legacy"] >= 600
    assert a["latency_ms"]["count"] == a["sent"] == 6 * RATE * WINDOW
    assert a["latency_ms"]["p50"] < 100 and a["latency_ms"]["p99"] >= a["latency_ms"]["p50"]
    assert a["publish_time_ms"]["count"] >= 600 and a["publish_time_ms"]["p50"] is not None
    assert all(i["answered"] and i["unified"] is True and i["emitted"] == 200 for i in a["instances"])


def test_each_instance_and_subject_is_a_target_of_its_own(healthy):
    result = healthy["result"]
    assert sorted((t["host"], t["via"]) for t in result["targets"]) == sorted(
        (h, v) for h in HOSTS for v in ("legacy", "unified"))
    for t in result["targets"]:
        assert t["sent"] == t["scheduled"] == t["replies_ok"] == RATE * WINDOW, t
        assert t["delivery"] == 1.0 and t["error_rate"] == 0.0 and t["expected"] is True
        assert len(t["samples_ms"]) == t["latency_ms"]["count"] == RATE * WINDOW
        assert t["samples_ms"] == sorted(t["samples_ms"]) and t["samples_ms"][-1] <= t["latency_ms"]["max"]


def test_the_generator_keeps_the_rate_and_the_window(healthy):
    result = healthy["result"]
    assert result["requested_rate"] == 6 * RATE
    assert result["achieved_rate"] == pytest.approx(6 * RATE, rel=0.05)
    assert result["window"]["seconds"] == pytest.approx(WINDOW, abs=0.2)
    assert result["window"]["started"] < result["window"]["ended"]
    assert healthy["took"] < WINDOW + 5  # the grace ends as soon as everything is in


def test_sent_requests_agree_with_the_agents_own_counters(healthy):
    result = healthy["result"]
    for instance in agent(result, "healthy")["instances"]:
        host = instance["host"]
        before, after = healthy["before"][host]["requests"], instance["counters"]["requests"]
        sent = {t["via"]: t["sent"] for t in targets(result, host=host)}
        # legacy also carried the probe's emit and status requests to this instance
        assert after["legacy"] - before["legacy"] == sent["legacy"] + 2
        assert after["unified"] - before["unified"] == sent["unified"]
        assert after["errors"] == before["errors"]


def test_message_counts_agree_with_the_servers_monitoring(healthy):
    result = healthy["result"]
    conn = healthy["closed"]
    assert conn["name"] == "fleetwave-controller"
    assert conn["in_msgs"] == result["connection"]["published"] == result["totals"]["sent"] + 3 + 3
    assert conn["out_msgs"] == result["connection"]["received"]
    assert result["connection"]["received"] >= result["totals"]["replies"] + result["totals"]["events"]["legacy"] * 2


# --- faults --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def faulty(fleet, nats_server):
    """One probe over the lossy and the slow agent types."""
    return probe(nats_server.url, [spec("lossy"), spec("slow")], window=3.0)


def test_dropped_unified_copies_lower_dual_publish_success(faulty):
    assert not faulty.get("failed"), faulty.get("msg")
    a = agent(faulty, "lossy")
    # 3 % of each instance's 200 emitted events lose their unified copy, deterministically.
    assert a["dual_publish_success"] == pytest.approx(0.97, abs=0.005)
    assert a["events"]["legacy"] == 600 and a["events"]["paired"] == 582
    assert sum(i["counters"]["events"]["unified_dropped"] for i in a["instances"]) == 18
    assert a["delivery"] == 1.0  # requests are unaffected


def test_one_slow_instance_is_seen_on_its_own(faulty):
    slow_name = IDS["slow"]["name"]
    for t in targets(faulty, agent=slow_name):
        p50 = t["latency_ms"]["p50"]
        if t["host"] == "dgx-2":
            assert p50 == pytest.approx(DELAY_MS, rel=0.05), t["latency_ms"]
            assert t["latency_ms"]["count"] == t["sent"]  # slow, but nothing lost
        else:
            assert p50 < DELAY_MS / 3, t["latency_ms"]
    a = agent(faulty, "slow")
    assert a["latency_ms"]["p99"] >= DELAY_MS and a["delivery"] == 1.0
    assert next(i for i in a["instances"] if i["host"] == "dgx-2")["faults"] == {"reply_delay_ms": DELAY_MS}


# --- per instance: the host of a lossy instance is named -------------------------------------------------

SPLIT_HOSTS = ["dgx-1", "dgx-2"]
SPLIT_WINDOW = 1.0


@pytest.fixture(scope="module")
def split(nats_server, tmp_path_factory):
    """One flipped agent type on two hosts; the instance on dgx-2 drops 3 % of its unified event copies.
    No heartbeat in the window, so its events are exactly the 200 it is asked to emit."""
    workdir = tmp_path_factory.mktemp("nats-probe-split")
    agents = []
    try:
        for host in SPLIT_HOSTS:
            faults = {"FAULT_DROP_UNIFIED_RATE": "0.03"} if host == "dgx-2" else {}
            agents.append(start_agent("split", host, True, nats_server.url, workdir, HEARTBEAT_INTERVAL="3600",
                                      **faults))
        wait_all_ready(agents)
        yield probe(nats_server.url, [spec("split")], hosts=SPLIT_HOSTS, window=SPLIT_WINDOW)
    finally:
        stop_all(agents)


def test_a_lossy_instance_is_named_by_its_host(split):
    assert not split.get("failed"), split.get("msg")
    a = agent(split, "split")
    instances = {i["host"]: i for i in a["instances"]}
    assert sorted(instances) == SPLIT_HOSTS
    lossy, healthy = instances["dgx-2"], instances["dgx-1"]
    assert lossy["dual_publish_success"] == pytest.approx(0.97, abs=0.005)
    assert lossy["events"] == dict(legacy=200, unified=194, paired=194)
    assert lossy["faults"] == {"drop_unified_rate": 0.03}
    assert healthy["dual_publish_success"] == 1.0
    assert healthy["events"] == dict(legacy=200, unified=200, paired=200) and healthy["faults"] == {}
    # The agent level only sees the blend of the two.
    assert a["dual_publish_success"] == pytest.approx((200 + 194) / 400, abs=0.001)
    assert healthy["unified_share"] == pytest.approx(0.5, abs=0.001)
    assert lossy["unified_share"] < healthy["unified_share"]


def test_instance_request_figures_add_up_to_the_agent(split):
    a = agent(split, "split")
    per_target = RATE * SPLIT_WINDOW
    for instance in a["instances"]:
        assert instance["sent"] == instance["replies_ok"] == 2 * per_target  # legacy + unified
        assert instance["delivery"] == 1.0 and instance["error_rate"] == 0.0
        assert instance["latency_ms"]["count"] == len(instance["samples_ms"]) == instance["replies"]
        mine = targets(split, host=instance["host"])
        assert instance["sent"] == sum(t["sent"] for t in mine)
        assert instance["samples_ms"] == sorted(v for t in mine for v in t["samples_ms"])
    for key in ("sent", "replies", "replies_ok", "errors", "timeouts", "no_responders"):
        assert sum(i[key] for i in a["instances"]) == a[key], key
    assert sum(i["latency_ms"]["count"] for i in a["instances"]) == a["latency_ms"]["count"]


# --- flag off, and an agent type nobody runs ------------------------------------------------------------

@pytest.fixture(scope="module")
def unflipped(fleet, nats_server):
    return probe(nats_server.url, [spec("control"), spec("ghost")])


def test_flag_off_agent_answers_on_legacy_only(unflipped):
    assert not unflipped.get("failed"), unflipped.get("msg")
    name = IDS["control"]["name"]
    unified = targets(unflipped, agent=name, via="unified")
    assert len(unified) == 3
    for t in unified:
        assert t["no_responders"] == t["sent"] == RATE * WINDOW and t["replies"] == 0 and t["expected"] is False
        assert t["latency_ms"]["p50"] is None
    a = agent(unflipped, "control")
    assert a["unified_share"] == 0.0 and a["unified_replies"] == 0 and a["events"]["unified"] == 0
    assert a["dual_publish_success"] is None  # not applicable: neither a pass nor a fail
    assert a["delivery"] == 1.0 and a["error_rate"] == 0.0  # its expected (legacy) targets
    assert a["events"]["legacy"] >= 600


def test_an_agent_without_instances_has_no_data_not_good_data(unflipped):
    a = agent(unflipped, "ghost")
    assert a["sent"] == 6 * RATE * WINDOW and a["no_responders"] == a["sent"]
    assert a["delivery"] == 0.0 and a["error_rate"] == 1.0
    assert a["latency_ms"]["p50"] is None and a["latency_ms"]["count"] == 0
    assert a["dual_publish_success"] is None and a["unified_share"] is None
    assert a["publish_time_ms"] == dict(p50=None, p99=None, max=None, count=0)
    assert a["events"] == dict(legacy=0, unified=0, paired=0, emitted=None)


def test_no_responders_reach_the_probe_and_the_server_counts_them(unflipped, nats_server):
    conn = closed_connection(nats_server, unflipped["connection"]["client_id"])
    assert conn["in_msgs"] == unflipped["connection"]["published"]
    no_responders = unflipped["totals"]["no_responders"] + sum(
        t["no_responders"] for t in unflipped["targets"] if not t["expected"])
    assert no_responders == 3 * 3 * RATE * WINDOW  # control's unified, ghost's legacy and unified
    # The server leaves its own no-responders statuses out of out_msgs; the ghost's 3 emit and 3
    # status requests met no responders too.
    assert conn["out_msgs"] == unflipped["connection"]["received"] - no_responders - 6


# --- check mode, failures --------------------------------------------------------------------------------

def test_check_mode_measures_the_same_way(fleet, nats_server):
    result = probe(nats_server.url, [spec("healthy")], check=True, window=1.0, emit_events=0)
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False and result["totals"]["delivery"] == 1.0
    assert result["totals"]["sent"] == 6 * RATE and agent(result, "healthy")["events"]["emitted"] is None


def test_unreachable_nats_fails_clearly_and_quickly(run_module):  # noqa: F811
    port = free_port()
    started = time.monotonic()
    result = run_module("nats_probe", dict(url="nats://127.0.0.1:%d" % port, agents=[spec("healthy")], hosts=HOSTS,
                                           connect_timeout=1.0))
    assert result["failed"]
    assert result["msg"].startswith("cannot connect to NATS at nats://127.0.0.1:%d within 1.0 s" % port), result["msg"]
    assert time.monotonic() - started < 5


def test_password_in_the_url_is_not_shown(run_module):  # noqa: F811
    port = free_port()
    result = run_module("nats_probe", dict(url="nats://probe:s3cret@127.0.0.1:%d" % port, agents=[spec("healthy")],
                                           hosts=HOSTS, connect_timeout=0.5))
    assert result["failed"] and "s3cret" not in result["msg"] and "***@127.0.0.1" in result["msg"]


def test_nonsense_is_refused_before_any_traffic(run_module, nats_server):  # noqa: F811
    result = run_module("nats_probe", dict(url=nats_server.url, agents=[spec("healthy")], hosts=HOSTS, rate=0))
    assert result["failed"] and result["msg"].startswith("rate must be a number in (0, 10,000]")
