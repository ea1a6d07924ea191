"""plugins/plugin_utils/fleet_server.py: the server's view of each agent instance, joined from /connz
and the units' sockets; subject wildcards; impostors."""

from __future__ import annotations

import pytest

from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_server import (
    address, describe_connection, fleet_view, subject_matches)

pytestmark = pytest.mark.unit

TDD = dict(name="tdd-expert", legacy="agent.tdd-expert", unified="agents.qa.01936faa", unified_enabled=True)
NET = dict(name="network-expert", legacy="agent.network-expert", unified="agents.infra.01936f88",
           unified_enabled=False)


@pytest.mark.parametrize("pattern, subject, matches", [
    ("agent.tdd-expert.cmd.ping", "agent.tdd-expert.cmd.ping", True),
    ("agent.tdd-expert.cmd.*", "agent.tdd-expert.cmd.ping", True),
    ("agent.tdd-expert.cmd.>", "agent.tdd-expert.cmd.ping", True),
    ("agent.*.cmd.ping", "agent.tdd-expert.cmd.ping", True),
    (">", "agent.tdd-expert.cmd.ping", True),
    ("agent.tdd-expert.>", "agent.tdd-expert", False),
    ("agent.tdd-expert.cmd", "agent.tdd-expert.cmd.ping", False),
    ("agent.tdd-expert.cmd.ping.x", "agent.tdd-expert.cmd.ping", False),
    ("agent.tdd-expert.cmd.*", "agent.tdd-expert.cmd.ping.x", False),
    ("agent.tdd.cmd.ping", "agent.tdd-expert.cmd.ping", False),
    ("agent.tdd-expert.evt.>", "agent.tdd-expert.cmd.ping", False),
])
def test_subject_wildcards_match_as_nats_delivers(pattern, subject, matches):
    assert subject_matches(pattern, subject) is matches


def test_addresses_are_spelt_one_way_on_both_sides():
    assert address("::ffff:127.0.0.1", "4000") == ("127.0.0.1", 4000)
    assert address("[::1]", 4000) == ("::1", 4000)
    assert address("127.0.0.1", None) == ("127.0.0.1", None)


def conn(cid, port, *subjects, name=None, ip="127.0.0.1"):
    return dict(cid=cid, ip=ip, port=port, name=name, lang="python3", version="2.16.0", in_msgs=10, out_msgs=12,
                subscriptions=[dict(subject=s, queue=None, msgs=0) for s in subjects])


def unit(pid, *ports, state="active"):
    return dict(active_state=state, main_pid=pid if state == "active" else 0,
                sockets=[dict(local_ip="127.0.0.1", local_port=p, remote_ip="127.0.0.1", remote_port=4222)
                         for p in ports])


def info(**hosts):
    return {host: dict(units=units) for host, units in hosts.items()}


def test_each_instance_is_its_own_connection_with_both_subscriptions():
    connz = dict(connections=[
        conn(1, 5001, "agent.tdd-expert.cmd.>", "agents.qa.01936faa.cmd.>"),
        conn(2, 5002, "agent.tdd-expert.cmd.ping", "agents.qa.01936faa.cmd.ping"),
        conn(3, 5003, "_INBOX.x.*", "agent.tdd-expert.evt.>")])  # the probe: events only, no command
    view = fleet_view(connz, info(**{"dgx-1": {"tdd-expert": unit(11, 5001)},
                                     "dgx-2": {"tdd-expert": unit(12, 5002)}}), [TDD], ["dgx-1", "dgx-2"])
    assert view["problems"] == [] and view["impostors"] == []
    one = view["instances"]["tdd-expert@dgx-1"]
    assert one["ok"] and one["legacy_subscribed"] and one["unified_subscribed"] and one["pid"] == 11
    assert [c["cid"] for c in one["connections"]] == [1] and one["in_msgs"] == 10 and one["out_msgs"] == 12
    assert [c["cid"] for c in view["instances"]["tdd-expert@dgx-2"]["connections"]] == [2]


def test_what_the_server_shows_is_said_when_an_instance_is_not_as_it_should_be():
    connz = dict(connections=[conn(1, 5001, "agent.tdd-expert.cmd.>"),
                              conn(4, 5004, "agent.network-expert.cmd.>", "agents.infra.01936f88.cmd.>")])
    view = fleet_view(connz, info(**{
        "dgx-1": {"tdd-expert": unit(11, 5001), "network-expert": unit(21, 5004)},
        "dgx-2": {"tdd-expert": unit(12, 5009), "network-expert": unit(22)},
        "dgx-3": {"tdd-expert": unit(13, state="failed")}}), [TDD, NET], ["dgx-1", "dgx-2", "dgx-3"])
    problems = "\n".join(view["problems"])
    assert ("tdd-expert@dgx-1: connected (cid 1) but not subscribed to its unified subject "
            "agents.qa.01936faa.cmd.ping (its subscriptions: agent.tdd-expert.cmd.>)") in problems
    assert ("tdd-expert@dgx-2: its process (PID 12) has TCP connection(s) from 127.0.0.1:5009, none of which "
            "the NATS server lists as a client") in problems
    assert "tdd-expert@dgx-3: its unit is failed (no running process to connect)" in problems
    assert ("network-expert@dgx-1: subscribed to its unified subject agents.infra.01936f88.cmd.ping although "
            "its flag is off (cid 4)") in problems
    assert "network-expert@dgx-2: its process (PID 22) has no established TCP connection" in problems
    assert "network-expert@dgx-3: its unit was not read" in problems
    assert view["instances"]["tdd-expert@dgx-2"]["legacy_subscribed"] is None  # no connection: no data


def test_a_connection_holding_an_agents_command_subject_that_is_no_instance_is_an_impostor():
    connz = dict(connections=[conn(1, 5001, "agent.tdd-expert.cmd.>", "agents.qa.01936faa.cmd.>"),
                              conn(7, 6007, "agents.qa.01936faa.cmd.ping", name="helper"),
                              conn(8, 6008, ">", name="nats-sub-everything"),
                              conn(9, 6009, "agent.other.cmd.>")])
    hosts = info(**{"dgx-1": {"tdd-expert": unit(11, 5001)}})
    view = fleet_view(connz, hosts, [TDD], ["dgx-1"])
    assert [i["cid"] for i in view["impostors"]] == [7, 8]
    assert view["impostors"][0]["agents"] == ["tdd-expert"]
    assert view["impostors"][0]["subscriptions"] == ["agents.qa.01936faa.cmd.ping"]
    assert ('impostor: cid 7 "helper" from 127.0.0.1:6007 (python3 2.16.0) holds agents.qa.01936faa.cmd.ping '
            'of tdd-expert, and is no instance of it') in view["problems"]
    # A run that read only some hosts (--limit) cannot tell another host's instance from an impostor.
    partial = fleet_view(connz, hosts, [TDD], ["dgx-1"], complete=False)
    assert partial["impostors"] == [] and [u["cid"] for u in partial["unattributed"]] == [7, 8]
    assert partial["problems"] == []


def test_no_server_view_is_no_data_not_a_pass():
    view = fleet_view(None, info(**{"dgx-1": {"tdd-expert": unit(11, 5001)}}), [TDD], ["dgx-1"])
    assert not view["instances"]["tdd-expert@dgx-1"]["ok"]
    assert view["problems"] == ["tdd-expert@dgx-1: its process (PID 11) has TCP connection(s) from 127.0.0.1:5001, "
                                "none of which the NATS server lists as a client"]


def test_a_connection_is_named_by_cid_name_address_and_client():
    assert describe_connection(conn(7, 6007, name="x", ip="::1")) == 'cid 7 "x" from [::1]:6007 (python3 2.16.0)'
    assert describe_connection(dict(cid=3, ip="10.0.0.2", port=4)) == "cid 3 from 10.0.0.2:4"


def test_an_unknown_flag_leaves_the_unified_subscription_unjudged():
    connz = dict(connections=[conn(1, 5001, "agent.tdd-expert.cmd.>", "agents.qa.01936faa.cmd.>"),
                              conn(2, 5002, "agent.tdd-expert.cmd.>")])
    view = fleet_view(connz, info(**{"dgx-1": {"tdd-expert": unit(11, 5001)}, "dgx-2": {"tdd-expert": unit(12, 5002)}}),
                      [dict(TDD, unified_enabled=None)], ["dgx-1", "dgx-2"])
    assert view["problems"] == []
    assert [view["instances"]["tdd-expert@%s" % h]["unified_subscribed"] for h in ("dgx-1", "dgx-2")] == [True, False]
