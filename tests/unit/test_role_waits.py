"""Every wait in the roles is measured in seconds with a deadline, not in a count of retries.

A task that retries (`until`) must stop once `now()` passes a deadline that an earlier task of the
same block set to `now() + <role>_verify_seconds`; its retries, rendered with Ansible's templar for
any number of seconds, must outlast that deadline (so the count never ends a wait early); and a
request that may fail while waiting is judged after the wait by an assertion that names the
seconds. tests/integration/test_role_waits.py runs one of these waits for real."""

from __future__ import annotations

import re

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

NATS_MODULES = ("fleetwave.rollout.nats_request", "fleetwave.rollout.nats_probe")


def task_lists(tasks):
    """Every list of sibling tasks, blocks' own lists included."""
    yield tasks
    for task in tasks:
        for key in ("block", "rescue", "always"):
            if isinstance(task.get(key), list):
                yield from task_lists(task[key])


def waits():
    for path in sorted((ROOT / "roles").glob("*/tasks/*.yml")):
        for siblings in task_lists(yaml.safe_load(path.read_text()) or []):
            for index, task in enumerate(siblings):
                if "until" in task:
                    yield pytest.param(path.parts[-3], siblings, index, id="%s:%s" % (path.relative_to(ROOT), task["name"]))


WAITS = list(waits())


def render(role, expression, seconds):
    variables = {}
    for part in ("defaults", "vars"):
        data = yaml.safe_load((ROOT / "roles" / role / part / "main.yml").read_text()) or {}
        variables.update({k: trust_as_template(v) if isinstance(v, str) else v for k, v in data.items()})
    variables["%s_verify_seconds" % role] = seconds
    return Templar(loader=DataLoader(), variables=variables).template(trust_as_template(str(expression)))


def test_the_roles_have_waits_to_check():
    assert {role for role, *_ in (w.values for w in WAITS)} == {"agent_service", "wave_deploy", "wave_rollback"}


@pytest.mark.parametrize(("role", "siblings", "index"), WAITS)
def test_each_wait_ends_at_a_deadline_set_from_its_seconds(role, siblings, index):
    task = siblings[index]
    deadline = re.search(r"now\(\)\.timestamp\(\) > (_\w+_deadline) \| float", task["until"])
    assert deadline, "until must stop at a deadline: %s" % task["until"]
    setters = [t for t in siblings[:index] if deadline.group(1) in t.get("ansible.builtin.set_fact", {})]
    assert setters, "no earlier task of the block sets %s" % deadline.group(1)
    assert re.fullmatch(r"\{\{ now\(\)\.timestamp\(\) \+ %s_verify_seconds \| float \}\}" % role,
                        setters[-1]["ansible.builtin.set_fact"][deadline.group(1)])


@pytest.mark.parametrize("seconds", [1, 15, 30, 600])
@pytest.mark.parametrize(("role", "siblings", "index"), WAITS)
def test_each_wait_has_retries_that_outlast_its_deadline(role, siblings, index, seconds):
    task = siblings[index]
    retries = int(render(role, task["retries"], seconds))
    delay = float(render(role, task["delay"], seconds))
    # Attempts are at least `delay` apart, so after `retries` of them more than `seconds` have passed.
    assert delay > 0 and retries * delay > seconds, (retries, delay)
    # ... and not absurdly many either: the count follows the seconds.
    assert retries * delay <= seconds + 1


@pytest.mark.parametrize(("role", "siblings", "index"), [w for w in WAITS if any(m in w.values[1][w.values[2]] for m in NATS_MODULES)])
def test_each_nats_wait_is_judged_after_the_deadline_naming_the_seconds(role, siblings, index):
    task = siblings[index]
    # A failed attempt must not end the wait: it is retried, and judged once the wait is over.
    assert task.get("failed_when") is False
    # ... by an assertion that reads what it registered, directly or through facts set from it.
    readers, judged = {task["register"]}, []
    for later in siblings[index + 1:]:
        text = yaml.safe_dump(later)
        if not any(name in text for name in readers):
            continue
        if "ansible.builtin.set_fact" in later:
            readers |= set(later["ansible.builtin.set_fact"])
        elif "ansible.builtin.assert" in later:
            judged.append(later)
    assert judged, "no assertion after %s reads %s" % (task["name"], task["register"])
    message = judged[0]["ansible.builtin.assert"]["fail_msg"]
    assert "{{ %s_verify_seconds }} s" % role in message
    # ... naming who failed: the host of a per-host wait; each instance, from the judged reasons,
    # of a wait run once for all hosts.
    if task.get("run_once"):
        assert re.search(r"\{\{ \w+\.reasons \| join", message), message
    else:
        assert "{{ inventory_hostname }}" in message, message


def test_no_wait_is_still_named_in_retries_or_a_timeout():
    for path in (ROOT / "roles").rglob("*.yml"):
        assert not re.search(r"_verify_timeout\b", path.read_text()), path
