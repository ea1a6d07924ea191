"""The documentation of every module in plugins/modules: it parses, names the module, describes every
return key completely, agrees with the code that takes the options (argument_spec, or the action
plugin for documentation stubs), and its EXAMPLES use only documented options."""

from __future__ import annotations

import ast
import pathlib

import pytest
import yaml

pytestmark = pytest.mark.unit

REPO = pathlib.Path(__file__).resolve().parents[2]
MODULES = sorted(p.stem for p in (REPO / "plugins/modules").glob("*.py") if p.stem != "__init__")
ACTIONS = REPO / "plugins/action"


def constants(path):
    """The module- and class-level constants of a Python file, read without importing it."""
    found = {}
    tree = ast.parse(path.read_text())
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef)]
    for node in tree.body + [n for c in classes for n in c.body]:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                found[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return found


def has_main(name):
    tree = ast.parse((REPO / "plugins/modules" / ("%s.py" % name)).read_text())
    return any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body)


STUBS = [m for m in MODULES if not has_main(m)]
IMPLEMENTED = [m for m in MODULES if has_main(m)]


def docs(name):
    found = constants(REPO / "plugins/modules" / ("%s.py" % name))
    return (yaml.safe_load(found["DOCUMENTATION"]), yaml.safe_load(found["EXAMPLES"]),
            yaml.safe_load(found["RETURN"]))


def return_problems(entries, where="RETURN"):
    problems = []
    for key, doc in entries.items():
        missing = {"description", "returned", "type", "sample"} - set(doc or {})
        if missing:
            problems.append("%s.%s lacks %s" % (where, key, ", ".join(sorted(missing))))
        problems += return_problems((doc or {}).get("contains", {}), "%s.%s" % (where, key))
    return problems


def test_the_expected_modules_are_covered():
    assert {"nats_request", "agent_host_info", "wave_plan", "wave_checkpoint", "wave_decision",
            "artifact_record"} <= set(MODULES)
    assert {"wave_plan", "wave_checkpoint", "wave_decision", "artifact_record"} <= set(STUBS)


@pytest.mark.parametrize("name", MODULES)
def test_docs_parse_and_name_the_module(name):
    documentation, examples, returns = docs(name)
    assert documentation["module"] == name
    assert documentation["short_description"] and documentation["description"]
    assert isinstance(examples, list) and examples
    assert isinstance(returns, dict) and returns


@pytest.mark.parametrize("name", MODULES)
def test_every_option_has_a_description_and_a_type(name):
    options = docs(name)[0]["options"]
    assert [o for o, d in options.items() if not d.get("description") or not d.get("type")] == []


@pytest.mark.parametrize("name", MODULES)
def test_every_return_key_is_complete(name):
    assert return_problems(docs(name)[2]) == []


@pytest.mark.parametrize("name", MODULES)
def test_examples_use_documented_options_and_give_the_required_ones(name):
    options = docs(name)[0]["options"]
    required = {o for o, d in options.items() if d.get("required")}
    tasks = [t for t in docs(name)[1] if name in t or "fleetwave.%s" % name in t]
    assert tasks, "no example calls %s" % name
    for task in tasks:
        args = task.get(name) or {}
        assert set(args) <= set(options), "%s: undocumented %s" % (task["name"], sorted(set(args) - set(options)))
        assert required <= set(args), "%s: lacks %s" % (task["name"], sorted(required - set(args)))


@pytest.mark.parametrize("name", IMPLEMENTED)
def test_documentation_matches_argument_spec(check_docs, name):
    check_docs(name)


@pytest.mark.parametrize("name", STUBS)
def test_documentation_stub_has_an_action_plugin(name):
    assert (ACTIONS / ("%s.py" % name)).is_file()


@pytest.mark.parametrize("name, constant", [("wave_plan", "ARGS"), ("wave_checkpoint", "REQUIRED"),
                                            ("wave_decision", "REQUIRED")])
def test_stub_required_options_are_what_the_action_plugin_requires(name, constant):
    options = docs(name)[0]["options"]
    required = constants(ACTIONS / ("%s.py" % name))[constant]
    assert sorted(o for o, d in options.items() if d.get("required")) == sorted(required)


def test_wave_plan_documents_exactly_the_arguments_it_accepts():
    # wave_plan refuses unknown arguments, so a documented option it does not know would always fail.
    accepted = constants(ACTIONS / "wave_plan.py")
    assert sorted(docs("wave_plan")[0]["options"]) == sorted(accepted["ARGS"] + accepted["OPTIONAL"])


@pytest.mark.parametrize("name, optional", [("wave_checkpoint", {"kind", "reference_kind", "criteria_file", "probe", "probe_error"}),
                                            ("wave_decision", {"timeline"}),
                                            ("artifact_record", {"data", "text", "manifest"})])
def test_stub_optional_options_are_read_by_the_action_plugin(name, optional):
    options = docs(name)[0]["options"]
    assert {o for o, d in options.items() if not d.get("required")} == optional
    source = (ACTIONS / ("%s.py" % name)).read_text()
    for option in optional:
        assert "'%s'" % option in source, option
