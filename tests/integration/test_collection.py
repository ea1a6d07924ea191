"""The repository is the collection fleetwave.rollout: `ansible-galaxy collection build` packs it, and
the artifact, installed into an empty collections path with nothing of this checkout in sight
(no ansible.cfg, no PYTHONPATH), is all the playbooks need to resolve every module, plugin and role.
Also the layout rules: no sys.path or importlib tricks in shipped code, and every custom module,
filter and role referenced by its fully qualified name."""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
SHORT_NAMES = sorted({p.stem for p in (REPO / "plugins/modules").glob("*.py")}
                     | {p.name for p in (REPO / "roles").iterdir()})


def clean_env(tmp_path, collections):
    """An environment that knows nothing of this checkout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "PYTHONPATH"}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_LOCAL_TEMP=str(tmp_path / ".tmp"),
               ANSIBLE_NOCOLOR="1", HOME=str(tmp_path))
    return env


def run(cmd, cwd, env):
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module", name="installed")
def fixture_installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("collection")
    env = clean_env(tmp, tmp / "collections")
    built = run([BIN / "ansible-galaxy", "collection", "build", "--output-path", tmp / "dist", REPO], tmp, env)
    assert built.returncode == 0, built.stdout + built.stderr
    artifact = tmp / "dist" / ("%s-%s-%s.tar.gz" % (GALAXY["namespace"], GALAXY["name"], GALAXY["version"]))
    assert artifact.is_file(), built.stdout
    got = run([BIN / "ansible-galaxy", "collection", "install", "--offline", "-p", tmp / "collections", artifact],
              tmp, env)
    assert got.returncode == 0, got.stdout + got.stderr
    root = tmp / "collections" / "ansible_collections" / GALAXY["namespace"] / GALAXY["name"]
    assert (root / "MANIFEST.json").is_file(), got.stdout
    return tmp, root, env


def test_the_built_collection_leaves_out_the_projects_own_tooling(installed):
    _, root, _ = installed
    for gone in ("tests", "molecule", "collections", "scripts", ".git"):
        assert not (root / gone).exists(), gone
    for kept in ("plugins/plugin_utils/fleet_gate.py", "plugins/modules/agent_env.py", "roles/wave_rollback",
                 "playbooks/rollback.yml", "meta/runtime.yml", "criteria/default.yml"):
        assert (root / kept).exists(), kept


@pytest.mark.parametrize("playbook", ["rollback.yml", "wave2.yml", "site.yml"])
def test_the_installed_collection_runs_the_playbooks_syntax_check(installed, playbook):
    tmp, root, env = installed
    proc = run([BIN / "ansible-playbook", "-i", "localhost,", root / "playbooks" / playbook, "--syntax-check"],
               tmp, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr


MODULES = sorted(p.stem for p in (REPO / "plugins/modules").glob("*.py") if p.stem != "__init__")
PLUGINS = [("module", "%s.%s.%s" % (GALAXY["namespace"], GALAXY["name"], m)) for m in MODULES] + [
    ("callback", "%s.%s.audit_trail" % (GALAXY["namespace"], GALAXY["name"]))]


@pytest.mark.parametrize(("kind", "name"), PLUGINS, ids=[name for _, name in PLUGINS])
def test_ansible_doc_renders_each_plugin_of_the_installed_collection(installed, kind, name):
    """What a user reads first: ansible-doc renders every module (doc fragments merged) and the callback."""
    tmp, _, env = installed
    proc = run([BIN / "ansible-doc", "-t", kind, name], tmp, env)
    assert proc.returncode == 0 and "[ERROR]" not in proc.stderr, proc.stdout + proc.stderr
    assert name in proc.stdout, proc.stdout


def test_without_the_collection_the_same_check_fails(installed):
    """The check above is not vacuous: a copy of the playbooks with no collection installed fails."""
    tmp, root, _ = installed
    # A playbook inside ansible_collections/<ns>/<name>/ would find its own collection: use a copy.
    copy = tmp / "bare" / "playbooks"
    copy.mkdir(parents=True, exist_ok=True)
    for path in (root / "playbooks").rglob("*.yml"):
        dest = copy / path.relative_to(root / "playbooks")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(path.read_text())
    proc = run([BIN / "ansible-playbook", "-i", "localhost,", copy / "rollback.yml", "--syntax-check"],
               tmp, clean_env(tmp, tmp / "empty"))
    assert proc.returncode != 0 and "fleetwave.rollout" in proc.stdout + proc.stderr


def test_the_nats_action_group_covers_every_module_taking_a_nats_url():
    runtime = yaml.safe_load((REPO / "meta/runtime.yml").read_text())
    takes_url = sorted(p.stem for p in (REPO / "plugins/modules").glob("*.py") if "NATS_ARGUMENT_SPEC" in p.read_text())
    assert sorted(runtime["action_groups"]["nats"]) == takes_url


def shipped_python():
    for folder in ("plugins", "bench", "scripts"):
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and (path.suffix == ".py" or path.read_bytes().startswith(b"#!/usr/bin/env python")):
                yield path


def test_no_sys_path_or_importlib_tricks_in_shipped_code():
    found = [str(p.relative_to(REPO)) for p in shipped_python()
             if re.search(r"sys\.path|importlib|__path__\.append", p.read_text())]
    assert found == []


def yaml_files():
    for folder in ("playbooks", "roles", "molecule"):
        yield from (REPO / folder).rglob("*.yml")


def test_custom_modules_filters_and_roles_are_named_fully():
    short = "|".join(SHORT_NAMES)
    filters = "|".join(sorted(re.findall(r"'(\w+)': ", (REPO / "plugins/filter/fleet.py").read_text())))
    problems = []
    for path in yaml_files():
        text = path.read_text()
        for lineno, line in enumerate(text.splitlines(), 1):
            if re.match(r"^\s*-?\s*(%s):\s*$" % short, line) or re.search(r"\|\s*(%s)\b|\(\s*'(%s)'" % (filters, filters), line) \
                    or re.match(r"^\s*-?\s*(role|name):\s*(%s)\s*$" % short, line):
                problems.append("%s:%d: %s" % (path.relative_to(REPO), lineno, line.strip()))
    assert problems == []
