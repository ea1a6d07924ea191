"""Each role's defaults and its meta/argument_specs.yml stay in step (names and defaults), and the
fleet-wide variables are declared once, by the internal role fleetwave.rollout.fleet."""

from __future__ import annotations

import re

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

ROLES = sorted(p.parent.parent.name for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))
SHARED = "fleet"
# The fleet-wide variables: declared by roles/fleet only, set by the inventory, read by every role.
FLEET_VARIABLES = ["fleet_agents", "fleet_backup_dir", "fleet_env_dir", "fleet_env_secret_keys", "fleet_nats_connection",
                   "fleet_nats_controller_url", "fleet_nats_monitor_url",
                   "fleet_nats_password", "fleet_nats_url", "fleet_nats_user", "fleet_subject_legacy",
                   "fleet_subject_unified", "fleet_unit_prefix"]
CONTRACT = ROOT / "inventory/production/group_vars/all/00-contract.yml"


def options(role):
    return yaml.safe_load((ROOT / "roles" / role / "meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]


def defaults(role):
    return yaml.safe_load((ROOT / "roles" / role / "defaults/main.yml").read_text()) or {}


def role_text(role):
    return "\n".join(p.read_text() for p in sorted((ROOT / "roles" / role).rglob("*")) if p.suffix in (".yml", ".j2"))


def test_every_role_has_argument_specs():
    assert ROLES == sorted(p.name for p in (ROOT / "roles").iterdir() if p.is_dir())


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_argument_specs_agree(role):
    declared, specs = defaults(role), options(role)
    assert sorted(declared) == sorted(specs)
    for name, spec in specs.items():
        if "default" in spec:
            assert spec["default"] == declared[name], name
        else:
            assert spec.get("required"), "%s has a default in defaults/ but none in the spec" % name
        # ansible-lint's var-naming[no-role-prefix]: a role's variables start with its name.
        assert name.startswith(role + "_"), name
        assert spec.get("description"), name


@pytest.mark.parametrize("role", ROLES)
def test_secret_options_are_no_log(role):
    def walk(specs):
        for name, spec in specs.items():
            yield name, spec
            yield from walk(spec.get("options", {}))

    for name, spec in walk(options(role)):
        if "password" in name or "token" in name or name == "fleet_nats_connection":
            assert spec.get("no_log") is True, name


def test_the_fleet_role_declares_the_fleet_wide_variables():
    assert sorted(defaults(SHARED)) == FLEET_VARIABLES


def test_the_fleet_roles_defaults_are_the_production_contracts_values():
    contract = yaml.safe_load(CONTRACT.read_text())
    differ = sorted(name for name in FLEET_VARIABLES if defaults(SHARED)[name] != contract[name])
    # The catalogue is the inventory's to name; the credentials come from vault through it.
    assert differ == ["fleet_agents", "fleet_nats_password", "fleet_nats_user"]


@pytest.mark.parametrize("role", [r for r in ROLES if r != SHARED])
def test_no_other_role_declares_a_fleet_wide_variable_again(role):
    assert [name for name in defaults(role) if name.startswith("fleet_")] == []
    assert [name for name in options(role) if name.startswith("fleet_")] == []


@pytest.mark.parametrize("role", ROLES)
def test_roles_reading_fleet_variables_depend_on_the_fleet_role(role):
    meta = yaml.safe_load((ROOT / "roles" / role / "meta/main.yml").read_text())
    dependencies = [d["role"] if isinstance(d, dict) else d for d in meta.get("dependencies") or []]
    reads = sorted(set(re.findall(r"\bfleet_[a-z_]+", role_text(role))) & set(FLEET_VARIABLES))
    if role != SHARED and reads:
        assert dependencies == ["fleetwave.rollout.fleet"], (role, reads)
    else:
        assert dependencies == [], role


def nats_calls(tasks, connection=None):
    """(task, the group/fleetwave.rollout.nats module_defaults in force) for every NATS module call."""
    for task in tasks or []:
        here = (task.get("module_defaults") or {}).get("group/fleetwave.rollout.nats", connection)
        for key in ("block", "rescue", "always"):
            yield from nats_calls(task.get(key), here)
        if any(key in task for key in ("fleetwave.rollout.nats_request", "fleetwave.rollout.nats_probe")):
            yield task, here


@pytest.mark.parametrize("path", sorted((ROOT / "roles").glob("*/tasks/*.yml")), ids=lambda p: str(p.relative_to(ROOT)))
def test_nats_calls_in_roles_take_the_connection_from_block_module_defaults(path):
    for task, connection in nats_calls(yaml.safe_load(path.read_text())):
        module = task.get("fleetwave.rollout.nats_request") or task.get("fleetwave.rollout.nats_probe")
        assert connection == "{{ fleet_nats_connection }}", task["name"]
        assert not {"url", "user", "password", "token"} & set(module), task["name"]
