"""Each role's defaults and its meta/argument_specs.yml stay in step (names and defaults)."""

from __future__ import annotations

import pytest
import yaml

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

ROLES = sorted(p.parent.parent.name for p in (ROOT / "roles").glob("*/meta/argument_specs.yml"))


def test_every_role_has_argument_specs():
    assert ROLES == sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "tasks").is_dir())


@pytest.mark.parametrize("role", ROLES)
def test_defaults_and_argument_specs_agree(role):
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults/main.yml").read_text()) or {}
    options = yaml.safe_load((ROOT / "roles" / role / "meta/argument_specs.yml").read_text())[
        "argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(options)
    for name, spec in options.items():
        if "default" in spec:
            assert spec["default"] == defaults[name], name
        else:
            assert spec.get("required"), "%s has a default in defaults/ but none in the spec" % name
        assert name.startswith(role + "_") or name.startswith(role.split("_")[0] + "_"), name
        assert spec.get("description"), name


@pytest.mark.parametrize("role", ROLES)
def test_secret_options_are_no_log(role):
    options = yaml.safe_load((ROOT / "roles" / role / "meta/argument_specs.yml").read_text())[
        "argument_specs"]["main"]["options"]
    for name, spec in options.items():
        if "password" in name or "token" in name:
            assert spec.get("no_log") is True, name
