"""A program per agent type (agent_service_agent_exec_start, agent_service_agent_unit_environment):
the drop-in the role writes, rendered as the template module renders it, and the role's own
expressions — the preflight checks, which drop-ins are stale, which agents restart — evaluated
with Ansible's templar on the role's defaults and vars. No host is touched."""

from __future__ import annotations

import re

import jinja2
import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

ROLE = ROOT / "roles/agent_service"
DROPIN_TEMPLATE = ROLE / "templates/etc/systemd/system/agent@.service.d/program.conf.j2"
CATALOGUE = yaml.safe_load((ROOT / "inventory/production/group_vars/all/00-contract.yml").read_text())["fleet_agents"]


def load(path):
    return yaml.safe_load(path.read_text()) or {}


def trusted(value):
    return trust_as_template(value) if isinstance(value, str) else value


def templar(**overrides) -> Templar:
    """The role's defaults and vars (templates left for the templar), the production catalogue, overrides."""
    variables = {"fleet_agents": CATALOGUE, "fleet_unit_prefix": "agent"}
    for part in ("defaults", "vars"):
        variables.update({k: trusted(v) for k, v in load(ROLE / part / "main.yml").items()})
    variables.update({k: trusted(v) for k, v in overrides.items()})
    return Templar(loader=DataLoader(), variables=variables)


def evaluate(expression: str, **variables):
    return templar(**variables).template(trust_as_template("{{ %s }}" % expression))


def task(path: str, name: str) -> dict:
    found = [t for t in load(ROLE / path) if t["name"] == name]
    assert len(found) == 1, name
    return found[0]


def render_dropin(item: str, **overrides) -> str:
    variables = {
        "ansible_managed": "Ansible managed",
        "agent_service_agent_exec_start": {},
        "agent_service_agent_unit_environment": {},
        "item": item,
        **overrides,
    }
    environment = jinja2.Environment(trim_blocks=True, undefined=jinja2.StrictUndefined)
    return environment.from_string(DROPIN_TEMPLATE.read_text()).render(**variables)


def settings(text: str) -> list[tuple[str, str]]:
    """The drop-in's settings in order, comments left out."""
    return [tuple(line.split("=", 1)) for line in text.splitlines() if line and not line.startswith(("#", "["))]


# ---------------------------------------------------------------- the drop-in


def test_dropin_replaces_the_units_execstart_for_that_agent():
    text = render_dropin("tdd-expert", agent_service_agent_exec_start={
        "tdd-expert": "/usr/bin/python3 /opt/fleetwave/contract-agent/contract_agent.py",
        "network-expert": "/usr/bin/other",
    })
    assert "[Service]" in text.splitlines()
    # The empty assignment first: without it systemd would refuse a second ExecStart for Type=simple.
    assert settings(text) == [("ExecStart", ""), ("ExecStart", "/usr/bin/python3 /opt/fleetwave/contract-agent/contract_agent.py")]


def test_dropin_adds_the_agents_environment_sorted_and_keeps_the_units_program_without_execstart():
    text = render_dropin("network-expert", agent_service_agent_unit_environment={
        "network-expert": {"PYTHONPATH": "/opt/lib.whl", "HEARTBEAT_INTERVAL_S": 0.2},
    })
    assert settings(text) == [("Environment", '"HEARTBEAT_INTERVAL_S=0.2"'), ("Environment", '"PYTHONPATH=/opt/lib.whl"')]


def test_dropin_is_marked_as_the_roles_so_that_only_its_own_are_ever_removed():
    text = render_dropin("tdd-expert", agent_service_agent_exec_start={"tdd-expert": "/bin/true"})
    assert text.splitlines()[0] == "# Ansible managed"
    marker = load(ROLE / "vars/main.yml")["_agent_service_dropin_marker"]
    # ansible.builtin.find's `contains` matches each line from its start (re.match).
    assert [line for line in text.splitlines(keepends=True) if re.match(marker, line)]
    assert not re.match(marker, "# Written by hand for tdd-expert\n")


def test_dropins_are_written_for_listed_agents_run_on_this_host_only():
    assert evaluate("_agent_service_dropin_agents",
                    agent_service_agents=["nats-expert", "tdd-expert", "network-expert"],
                    agent_service_agent_exec_start={"tdd-expert": "/a", "git-expert": "/b"},
                    agent_service_agent_unit_environment={"network-expert": {"A": "1"}}) == ["tdd-expert", "network-expert"]
    assert evaluate("_agent_service_dropin_agents") == []  # the defaults: no drop-in at all


# ---------------------------------------------------------------- stale drop-ins and restarts


@pytest.mark.parametrize(("path", "removed"), [
    ("/etc/systemd/system/agent@network-expert.service.d/program.conf", True),  # no longer listed
    ("/etc/systemd/system/agent@tdd-expert.service.d/program.conf", False),  # still listed
    ("/etc/systemd/system/other@network-expert.service.d/program.conf", False),  # another unit prefix
    ("/etc/systemd/system/program.conf", False),  # not in a drop-in directory
])
def test_only_drop_ins_of_agents_no_longer_listed_are_removed(path, removed):
    remove = task("tasks/configure.yml", "Ensure agents no longer listed run the unit's program again")
    find = task("tasks/configure.yml", "Find the program drop-ins this role wrote")
    assert find["ansible.builtin.find"]["contains"] == "{{ _agent_service_dropin_marker }}"
    assert find["ansible.builtin.find"]["patterns"] == "{{ _agent_service_dropin_name }}"
    variables = dict(remove["vars"], item={"path": path}, agent_service_agents=["tdd-expert", "network-expert"],
                     agent_service_agent_exec_start={"tdd-expert": "/a"})
    assert evaluate("(%s)" % remove["when"], **variables) is removed


def test_the_agents_whose_drop_in_changed_are_restarted_with_a_daemon_reload():
    handler = load(ROLE / "handlers/main.yml")[0]
    restarted = handler["loop"].strip()[3:-3]
    reload = handler["ansible.builtin.systemd_service"]["daemon_reload"][3:-3]
    results = dict(
        agent_service_agents=["nats-expert", "network-expert", "tdd-expert"],
        __agent_service_unit={"changed": False},
        __agent_service_env={"results": [{"item": "nats-expert", "changed": True},
                                         {"item": "network-expert", "changed": False},
                                         {"item": "tdd-expert", "changed": False}]},
        __agent_service_dropin={"results": [{"item": "tdd-expert", "changed": True}]},
        __agent_service_dropin_stale={"results": [
            {"item": {"path": "/etc/systemd/system/agent@network-expert.service.d/program.conf"}, "changed": True},
            {"item": {"path": "/etc/systemd/system/agent@tdd-expert.service.d/program.conf"}, "changed": False},
        ]},
    )
    assert evaluate(restarted, **results) == ["nats-expert", "network-expert", "tdd-expert"]
    assert evaluate(reload, **results) is True
    # Only an env file changed: that agent alone, no reload (as before drop-ins existed).
    results.update(__agent_service_dropin={"results": []}, __agent_service_dropin_stale={"results": []})
    assert evaluate(restarted, **results) == ["nats-expert"]
    assert evaluate(reload, **results) is False


# ---------------------------------------------------------------- preflight


def failures(**variables) -> list[str]:
    """The fail_msg of each new preflight check that fails with these variables."""
    names = ["Ensure each agent with a program of its own is in the catalogue",
             "Ensure each agent's own program is one command line",
             "Ensure each agent's own unit environment is a set of one-line settings"]
    messages = []
    for name in names:
        check = task("tasks/preflight.yml", name)
        that = check["ansible.builtin.assert"]["that"]
        scope = {**{k: trusted(v) for k, v in check.get("vars", {}).items()}, **variables}
        if not all(evaluate("(%s)" % condition, **scope) for condition in ([that] if isinstance(that, str) else that)):
            messages.append(" ".join(str(templar(**scope).template(
                trust_as_template(check["ansible.builtin.assert"]["fail_msg"]))).split()))
    return messages


def test_preflight_accepts_programs_and_environments_of_catalogued_agents():
    assert failures() == []
    assert failures(agent_service_agent_exec_start={"tdd-expert": "/usr/bin/python3 /opt/a.py %i"},
                    agent_service_agent_unit_environment={"tdd-expert": {"PYTHONPATH": "/opt/nats.whl", "N": 2}}) == []


def test_preflight_names_an_agent_not_in_the_catalogue():
    [message] = failures(agent_service_agent_exec_start={"tdd-exprt": "/a"},
                         agent_service_agent_unit_environment={"graph-xpert": {"A": "1"}})
    assert "names graph-xpert, tdd-exprt, not in the catalogue" in message
    assert "known: git-expert, graph-expert" in message


@pytest.mark.parametrize("value", ["", "   ", "/a\n/b", "/a\r", 3, None, ["/a"]],
                         ids=["empty", "blank", "two-lines", "carriage-return", "number", "null", "list"])
def test_preflight_refuses_a_program_that_is_not_one_command_line(value):
    [message] = failures(agent_service_agent_exec_start={"tdd-expert": value, "network-expert": "/ok"})
    assert message.startswith("agent_service_agent_exec_start gives tdd-expert no usable ExecStart")
    assert "non-empty string on one line" in message


def test_preflight_names_each_bad_unit_environment_setting():
    [message] = failures(agent_service_agent_unit_environment={
        "tdd-expert": {"1X": "a", "QUOTED": 'say "hi"', "SLASHED": "a\\b", "LIST": [1], "FINE": "ok"},
        "git-expert": "not a mapping",
    })
    assert message.startswith("agent_service_agent_unit_environment must map each agent to {KEY: value}")
    for part in ("git-expert is not a mapping", "1X is not a variable name",
                 "LIST has a value that is neither a string nor a number",
                 "QUOTED has a value with a quote, backslash or newline",
                 "SLASHED has a value with a quote, backslash or newline"):
        assert part in message
    assert "FINE" not in message
