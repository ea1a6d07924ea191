"""The documentation of every module in plugins/modules: it parses, names the module, describes every
return key completely, agrees with the code that takes the options (argument_spec for modules that run
on a host; for documentation stubs, the action plugin takes its argument spec from the stub's
DOCUMENTATION, and every documented option is read by the code behind it), and its EXAMPLES use only
documented options and call the module by its fully qualified name."""

from __future__ import annotations

import ast
import importlib
import pathlib
import types

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import controller_action

from tests.unit.conftest import documented_options

pytestmark = pytest.mark.unit

REPO = pathlib.Path(__file__).resolve().parents[2]
COLLECTION = "fleetwave.rollout"
MODULES = sorted(p.stem for p in (REPO / "plugins/modules").glob("*.py") if p.stem != "__init__")
ACTIONS = REPO / "plugins/action"
PACKAGE = "ansible_collections.fleetwave.rollout.plugins"


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
    """DOCUMENTATION (its doc fragments' options merged in, as ansible-doc does), EXAMPLES, RETURN."""
    found = constants(REPO / "plugins/modules" / ("%s.py" % name))
    documentation = yaml.safe_load(found["DOCUMENTATION"])
    documentation["options"] = documented_options(documentation)
    return documentation, yaml.safe_load(found["EXAMPLES"]), yaml.safe_load(found["RETURN"])


def return_problems(entries, where="RETURN"):
    problems = []
    for key, doc in entries.items():
        missing = {"description", "returned", "type", "sample"} - set(doc or {})
        if missing:
            problems.append("%s.%s lacks %s" % (where, key, ", ".join(sorted(missing))))
        problems += return_problems((doc or {}).get("contains", {}), "%s.%s" % (where, key))
    return problems


def example_tasks(name):
    """The EXAMPLES tasks that call the module, with its arguments, by either of its names."""
    return [(t, t.get("%s.%s" % (COLLECTION, name), t.get(name)) or {}) for t in docs(name)[1]
            if name in t or "%s.%s" % (COLLECTION, name) in t]


def test_the_expected_modules_are_covered():
    assert {"nats_request", "agent_host_info", "wave_plan", "wave_checkpoint", "wave_decision", "wave_journal",
            "artifact_record"} <= set(MODULES)
    assert {"wave_plan", "wave_checkpoint", "wave_decision", "wave_journal", "artifact_record"} <= set(STUBS)


@pytest.mark.parametrize("name", MODULES)
def test_docs_parse_and_name_the_module(name):
    documentation, examples, returns = docs(name)
    assert documentation["module"] == name
    assert documentation["short_description"] and documentation["description"]
    assert isinstance(examples, list) and examples
    assert isinstance(returns, dict) and returns
    # Every description is text (a line with "word: more" in plain YAML parses as a mapping, which
    # ansible-doc cannot render).
    descriptions = [documentation["description"]] + [o["description"] for o in documentation["options"].values()] + [
        r["description"] for r in returns.values()]
    assert [d for d in descriptions if not isinstance(d, str) and not (
        isinstance(d, list) and all(isinstance(line, str) for line in d))] == []


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
    tasks = example_tasks(name)
    assert tasks, "no example calls %s" % name
    for task, args in tasks:
        assert set(args) <= set(options), "%s: undocumented %s" % (task["name"], sorted(set(args) - set(options)))
        assert required <= set(args), "%s: lacks %s" % (task["name"], sorted(required - set(args)))


@pytest.mark.parametrize("name", MODULES)
def test_examples_call_the_collections_modules_by_their_fully_qualified_names(name):
    short = [key for task in docs(name)[1] for key in task if key in MODULES]
    assert short == [], "short module names in EXAMPLES: %s" % short
    assert any("%s.%s" % (COLLECTION, name) in task for task in docs(name)[1])


@pytest.mark.parametrize("name", IMPLEMENTED)
def test_documentation_matches_argument_spec(check_docs, name):
    check_docs(name)


# ================================================================================ documentation stubs

@pytest.mark.parametrize("name", STUBS)
def test_documentation_stub_has_an_action_plugin(name):
    assert (ACTIONS / ("%s.py" % name)).is_file()


@pytest.mark.parametrize("name", STUBS)
def test_action_plugin_takes_its_argument_spec_from_its_stubs_documentation(name):
    stub = importlib.import_module("%s.modules.%s" % (PACKAGE, name))
    action = importlib.import_module("%s.action.%s" % (PACKAGE, name)).ActionModule
    assert issubclass(action, controller_action.ControllerAction)
    assert action.DOCUMENTATION is stub.DOCUMENTATION  # the constant imported, not a copy


# What a stub's option may say: the keys controller_action.argument_spec passes to the validation,
# and prose. Anything else (aliases, suboptions, mutually_exclusive...) would be documented and ignored.
DOC_ONLY_KEYS = {"description", "version_added"}
KNOWN_TYPES = {"str", "int", "float", "bool", "list", "dict", "path", "raw"}


@pytest.mark.parametrize("name", STUBS)
def test_stub_options_say_only_what_the_argument_validation_reads(name):
    options = docs(name)[0]["options"]
    ignored = {o: sorted(set(d) - DOC_ONLY_KEYS - set(controller_action._SPEC_KEYS)) for o, d in options.items()}
    assert {o: keys for o, keys in ignored.items() if keys} == {}
    assert {o: d["type"] for o, d in options.items() if d["type"] not in KNOWN_TYPES} == {}
    assert {o: d["elements"] for o, d in options.items() if d.get("elements", "str") not in KNOWN_TYPES} == {}


@pytest.mark.parametrize("name", STUBS)
def test_stub_argument_spec_requires_what_is_documented_and_applies_its_defaults(name):
    options = docs(name)[0]["options"]
    spec = controller_action.argument_spec(constants(REPO / "plugins/modules" / ("%s.py" % name))["DOCUMENTATION"])
    assert sorted(spec) == sorted(options)
    checked = ArgumentSpecValidator(spec).validate({})
    required = sorted(o for o, d in options.items() if d.get("required"))
    assert checked.error_messages == (["missing required arguments: %s" % ", ".join(required)] if required else [])
    # every documented default is valid for its type and choices, and is what the action gets
    assert {o: checked.validated_parameters[o] for o, d in options.items() if "default" in d} == {
        o: d["default"] for o, d in options.items() if "default" in d}


# Where each stub's arguments are read: its action plugin, and the plugin_utils functions it hands
# the whole argument dict to.
RUN_DIR = ("plugin_utils/controller_action.py", {"readiness_run_dir"})  # the readiness fragment's options
READ_BY = {
    "artifact_record": [("action/artifact_record.py", None)],
    "wave_plan": [("action/wave_plan.py", None)],
    "wave_checkpoint": [("action/wave_checkpoint.py", None),
                        ("plugin_utils/fleet_checkpoint.py", {"judge_round", "_probe", "_server", "judge_sequential"}),
                        ("plugin_utils/fleet_journal.py", {"record_round"})],
    "wave_journal": [("action/wave_journal.py", None), ("plugin_utils/fleet_journal.py", {"record_step"})],
    "wave_decision": [("action/wave_decision.py", None)],
    "fleet_lock": [("action/fleet_lock.py", None)],
    "audit_trail_info": [("action/audit_trail_info.py", None)],
    "readiness_status": [("action/readiness_status.py", None), RUN_DIR],
    "readiness_gate": [("action/readiness_gate.py", None)],
    "readiness_evidence": [("action/readiness_evidence.py", None), RUN_DIR],
    "readiness_authorize": [("action/readiness_authorize.py", None), RUN_DIR],
    "readiness_certificate_info": [("action/readiness_certificate_info.py", None)],
    "readiness_reports": [("action/readiness_reports.py", None), RUN_DIR],
    "readiness_ledger": [("action/readiness_ledger.py", None), RUN_DIR],
}


def _is_args(node):
    return isinstance(node, ast.Name) and node.id == "args"


def _key_read(node):
    """The key node of args[key] or args.get(key, ...), else None."""
    if isinstance(node, ast.Subscript) and _is_args(node.value):
        return node.slice
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
            and _is_args(node.func.value) and node.args:
        return node.args[0]
    return None


def arguments_read(path, functions=None):
    """The argument names a file (or only the named functions in it) reads from `args`: args['x'],
    args.get('x'), and {k: args[k] for k in ('x', 'y')} or `for k in SOME_CONSTANT`."""
    tree = ast.parse(path.read_text())
    known = constants(path)
    scopes = [tree] if functions is None else [n for n in ast.walk(tree)
                                               if isinstance(n, ast.FunctionDef) and n.name in functions]
    assert functions is None or {s.name for s in scopes} == set(functions), "functions moved in %s" % path
    read = set()
    for scope in scopes:
        for node in ast.walk(scope):
            key = _key_read(node)
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                read.add(key.value)
            if isinstance(node, (ast.DictComp, ast.ListComp, ast.SetComp, ast.GeneratorExp)):
                looped = {g.target.id: g.iter for g in node.generators if isinstance(g.target, ast.Name)}
                for inner in ast.walk(node):
                    key = _key_read(inner)
                    if isinstance(key, ast.Name) and key.id in looped:
                        source = looped[key.id]
                        if isinstance(source, ast.Name):
                            read.update(known[source.id])
                        else:
                            read.update(ast.literal_eval(source))
    return read


def test_every_stub_says_where_its_arguments_are_read():
    assert sorted(READ_BY) == sorted(STUBS)


@pytest.mark.parametrize("name", STUBS)
def test_every_documented_option_is_read_and_every_argument_read_is_documented(name):
    options = set(docs(name)[0]["options"])
    read = set().union(*(arguments_read(REPO / "plugins" / path, functions) for path, functions in READ_BY[name]))
    assert sorted(options - read) == [], "documented, never read"
    assert sorted(read - options) == [], "read, not documented (the validation would refuse it)"


# --- the validation the stubs drive (ControllerAction.validated_args), without a playbook --------

def validated(name, args):
    stub = importlib.import_module("%s.modules.%s" % (PACKAGE, name))
    action = object.__new__(importlib.import_module("%s.action.%s" % (PACKAGE, name)).ActionModule)
    action._task = types.SimpleNamespace(args=args, action="%s.%s" % (COLLECTION, name))
    assert action.DOCUMENTATION is stub.DOCUMENTATION
    return action.validated_args()


JOURNAL = dict(artifacts_dir="/srv/artifacts", run_id="run-1", wave="wave2", step="deploy")


def test_validation_applies_types_and_defaults():
    args, problem = validated("wave_journal", dict(JOURNAL, started="1736847000.5", approved="yes"))
    assert problem is None
    assert (args["started"], args["approved"], args["kind"], args["host"]) == (1736847000.5, True, "checkpoint", None)


def test_validation_names_missing_arguments_in_documented_order_and_unknown_ones_sorted():
    args, problem = validated("wave_journal", dict(step="deploy", zeta=1, colour="red", run_id=None))
    assert args is None
    assert problem == "wave_journal: missing argument(s) artifacts_dir, run_id, wave; unknown argument(s) colour, zeta"


def test_validation_reports_a_value_outside_the_choices():
    args, problem = validated("wave_journal", dict(JOURNAL, step="checkpoint"))
    assert args is None
    assert problem == ("wave_journal: value of step must be one of: run, resume, preflight, deploy, watch, "
                       "approval, rollback, lock, pause, got: checkpoint")


def test_validation_reports_a_value_of_the_wrong_type():
    args, problem = validated("wave_checkpoint", dict(
        wave="wave2", label="T+1h", phase="phase2", run_id="run-1", artifacts_dir="/srv/artifacts", hosts=["dgx-1"],
        test=["network-expert"], control=[], reference=[], criteria={}, info={}, baseline={}, started="soon"))
    assert args is None and problem.startswith("wave_checkpoint: argument 'started' is of type str")


def test_validation_leaves_raw_timings_to_the_plan():
    # wave_plan reports a bad timing with its inventory variable's name: the validation lets it through
    plan = dict(wave="wave2", agents={}, waves={}, schedule={}, subject_legacy="agent.{name}",
                subject_unified="agents.{cluster}.{id}", stagger="soon", verify_window=[1], monitor_interval=None)
    args, problem = validated("wave_plan", dict(plan, monitor_interval=0))
    assert problem is None and (args["stagger"], args["verify_window"], args["monitor_interval"]) == ("soon", [1], 0)
    assert validated("wave_plan", plan)[1] == "wave_plan: missing argument(s) monitor_interval"
