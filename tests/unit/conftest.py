"""Shared fixtures for the unit tests of plugins/modules and plugins/module_utils.

The project is not a collection: ansible.cfg points `module_utils` at plugins/module_utils, so
modules import `ansible.module_utils.agent_env`. Extending the package path does the same here.
"""

from __future__ import annotations

import importlib.util
import pathlib
from unittest import mock

import ansible.module_utils
import pytest
import yaml
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

REPO = pathlib.Path(__file__).resolve().parents[2]
MODULES = REPO / "plugins" / "modules"

if str(REPO / "plugins" / "module_utils") not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(str(REPO / "plugins" / "module_utils"))


class ModuleExit(Exception):
    """exit_json or fail_json was called; ``result`` holds what the module returned."""

    def __init__(self, result):
        super().__init__(result)
        self.result = result


def _exit_json(self, **kwargs):
    kwargs.setdefault("changed", False)
    raise ModuleExit(kwargs)


def _fail_json(self, msg, **kwargs):
    raise ModuleExit(dict(kwargs, msg=msg, failed=True))


def load_module(name):
    """Import plugins/modules/<name>.py under a private name (it would clash with module_utils)."""
    spec = importlib.util.spec_from_file_location("fleetwave_module_%s" % name, MODULES / ("%s.py" % name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def run_module(monkeypatch):
    """run_module("agent_env", {...}, check=False, diff=False) -> the result dict.

    Failures come back as a result with ``failed: True`` and ``msg``, so tests assert on both
    outcomes the same way.
    """
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", _fail_json)

    def run(name, args, check=False, diff=False):
        args = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
        with patch_module_args(args), pytest.raises(ModuleExit) as exc:
            load_module(name).main()
        return exc.value.result

    return run


class _SpecSeen(Exception):
    pass


def _argument_spec(name):
    """The argument_spec main() passes to AnsibleModule, captured before anything runs."""
    seen = {}

    def capture(self, argument_spec, **kwargs):
        seen.update(argument_spec)
        raise _SpecSeen

    with mock.patch.object(basic.AnsibleModule, "__init__", capture), patch_module_args({}):
        with pytest.raises(_SpecSeen):
            load_module(name).main()
    return seen


def _check_return(docs, where="RETURN"):
    for key, doc in docs.items():
        missing = {"description", "returned", "type", "sample"} - set(doc)
        assert not missing, "%s.%s lacks %s" % (where, key, sorted(missing))
        _check_return(doc.get("contains", {}), "%s.%s" % (where, key))


@pytest.fixture
def check_docs():
    """check_docs("agent_env"): DOCUMENTATION options agree with argument_spec; RETURN keys are complete."""

    def check(name):
        module = load_module(name)
        options = yaml.safe_load(module.DOCUMENTATION)["options"]
        spec = _argument_spec(name)
        assert sorted(options) == sorted(spec)
        for option, doc in options.items():

            def fields(d):
                return (
                    d.get("type", "str"),
                    d.get("default"),
                    d.get("choices"),
                    d.get("elements"),
                    d.get("required", False),
                )

            assert fields(doc) == fields(spec[option]), option
        _check_return(yaml.safe_load(module.RETURN))
        yaml.safe_load(module.EXAMPLES)

    return check
