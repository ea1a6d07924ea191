"""Shared fixtures for the unit tests of plugins/modules and plugins/module_utils.

The checkout is the collection fleetwave.rollout; pytest.ini puts collections/ (which links it as
ansible_collections/fleetwave/rollout) on the path, so modules import as Ansible imports them.
"""

from __future__ import annotations

import importlib
import pathlib
from unittest import mock

import pytest
import yaml
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

REPO = pathlib.Path(__file__).resolve().parents[2]


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
    """The module fleetwave.rollout.<name> (plugins/modules/<name>.py), executed afresh so that it
    binds what a test patched in its module_utils."""
    return importlib.reload(importlib.import_module("ansible_collections.fleetwave.rollout.plugins.modules.%s" % name))


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


def documented_options(documentation):
    """A module's DOCUMENTATION options with its doc fragments' (plugins/doc_fragments) merged in,
    as ansible-doc merges them; an option documented twice is an error."""
    options = dict(documentation.get("options") or {})
    for name in documentation.get("extends_documentation_fragment") or []:
        module, _, variable = name.split(".", 2)[2].partition(".")
        fragment = importlib.import_module("ansible_collections.fleetwave.rollout.plugins.doc_fragments.%s" % module)
        for option, spec in yaml.safe_load(getattr(fragment.ModuleDocFragment, (variable or "DOCUMENTATION").upper()))["options"].items():
            assert option not in options, "%s is documented in the module and in %s" % (option, name)
            options[option] = spec
    return options


@pytest.fixture
def check_docs():
    """check_docs("agent_env"): DOCUMENTATION options agree with argument_spec; RETURN keys are complete."""

    def check(name):
        module = load_module(name)
        options = documented_options(yaml.safe_load(module.DOCUMENTATION))
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


# --- agent_env: each test module defines `env`, the env file it starts from -----------------------

@pytest.fixture
def backups(tmp_path):
    return tmp_path / "backups"


@pytest.fixture
def agent_env(run_module, env, backups):
    """agent_env with path (the module's `env` fixture) and backup_dir filled in; extra args as keywords."""
    def run(check=False, diff=False, **args):
        return run_module("agent_env", dict(dict(path=str(env), backup_dir=str(backups)), **args), check, diff)
    return run
