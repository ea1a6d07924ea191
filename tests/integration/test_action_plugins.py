"""The controller-side action plugins (wave_plan, wave_checkpoint, wave_journal, wave_decision,
artifact_record) through real ansible-playbook runs on localhost, with this repository's ansible.cfg,
each called by its fully qualified name. Each playbook runs once per fixture (they take a few
seconds); the tests read its per-task results (the json stdout callback) and the artifacts it wrote:
the round folders, the run journal (runs/<run_id>/journal.jsonl), the wave's decision, report and
the run's execution checklist."""

from __future__ import annotations

import ast
import datetime
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
import yaml
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import utc

pytestmark = pytest.mark.integration

REPO = pathlib.Path(__file__).resolve().parents[2]
CONTRACT = REPO / "inventory/production/group_vars/all/00-contract.yml"
# fleet_evidence_key for these runs: waves refuse to start without one (fleet_evidence).
EVIDENCE_VARS = pathlib.Path(__file__).with_name("evidence_key.yml")
EVIDENCE_KEY = yaml.safe_load(EVIDENCE_VARS.read_text())["fleet_evidence_key"]
PLAYBOOK = pathlib.Path(sys.executable).parent / "ansible-playbook"
COLLECTION = "fleetwave.rollout"

PLAN_ARGS = dict(wave="wave2", agents="{{ fleet_agents }}", waves="{{ fleet_waves }}", schedule="{{ wave_schedule }}",
                 subject_legacy="{{ fleet_subject_legacy }}", subject_unified="{{ fleet_subject_unified }}",
                 stagger="{{ wave_stagger_seconds }}", verify_window="{{ wave_verify_window_seconds }}",
                 monitor_interval="{{ wave_monitor_interval_seconds }}")
# The one timestamp format of every artifact (fleet_artifacts.utc).
UTC_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
# A fixed start, so that recorded times can be compared exactly: 2025-01-14T09:30:00Z.
T0 = datetime.datetime(2025, 1, 14, 9, 30, tzinfo=datetime.timezone.utc).timestamp()
# What Ansible itself puts into every result, beside what the action returns (its RETURN).
ANSIBLE_KEYS = {"action", "changed", "failed", "msg", "skipped", "invocation", "warnings", "deprecations", "exception",
                "_ansible_no_log", "_ansible_verbose_always", "_ansible_ignore_errors", "ansible_loop_var", "item",
                "results", "failed_when_result"}


class Run:
    """One ansible-playbook run: returncode, output, and each task's localhost result by task name."""

    def __init__(self, proc, workdir):
        self.proc = proc
        self.workdir = workdir
        self.output = proc.stdout + proc.stderr
        try:
            report = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError("ansible-playbook did not print JSON:\n%s" % self.output)
        self.results = {t["task"]["name"]: t["hosts"]["localhost"] for play in report["plays"] for t in play["tasks"]}

    def __getitem__(self, task):
        return self.results[task]


def run_playbook(workdir, tasks, *args, vars_files=(str(CONTRACT), str(EVIDENCE_VARS))):
    """Write a one-play playbook of `tasks` into workdir and run it there on localhost."""
    workdir.mkdir(parents=True, exist_ok=True)
    play = dict(name="exercise the action plugins", hosts="localhost", gather_facts=False,
                vars_files=list(vars_files), tasks=tasks)
    (workdir / "play.yml").write_text(yaml.safe_dump([play], sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
               ANSIBLE_LOCAL_TEMP=str(workdir / ".tmp"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(PLAYBOOK), "-i", "localhost,", "-c", "local", "play.yml",
                           "-e", "ansible_python_interpreter=%s" % sys.executable, *args],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=180)
    return Run(proc, workdir)


def fqcn(module):
    return module if "." in module else "%s.%s" % (COLLECTION, module)


def task(name, module, args, **keywords):
    """A task calling this collection's module by its fully qualified name; its failure is read, not fatal."""
    return dict(name=name, **{fqcn(module): args}, ignore_errors=True, **keywords)


def plan_task(args, name="plan"):
    return {"name": name, fqcn("wave_plan"): args, "register": "__plan"}


def files_under(path):
    path = pathlib.Path(path)
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) if path.exists() else []


def sha256sum_check(folder):
    return subprocess.run(["sha256sum", "-c", "--strict", "MANIFEST.sha256"], cwd=folder, capture_output=True,
                          text=True)


def read_json(path):
    return json.loads(pathlib.Path(path).read_text())


def journal(store, run_id):
    """The records of a run's journal, in order ([] when there is none)."""
    path = pathlib.Path(store) / "runs" / run_id / "journal.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def documented_returns(module):
    """The keys of a module's RETURN, read without importing it."""
    tree = ast.parse((REPO / "plugins/modules" / ("%s.py" % module)).read_text())
    [value] = [n.value for n in tree.body
               if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", None) == "RETURN"]
    return set(yaml.safe_load(ast.literal_eval(value)))


def undocumented(result, module):
    """Keys of a task result that the module's RETURN does not document."""
    return sorted(set(result) - ANSIBLE_KEYS - documented_returns(module))


# ================================================================================ wave_plan

@pytest.fixture(scope="module")
def plan_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("wave-plan")
    bad = dict(PLAN_ARGS, subject_legacy="agent.*", stagger=-1,
               waves={"wave2": {"previous": "wave1", "phases": [{"name": "phase1", "agents": ["netwrk-expert"]}]},
                      "wave1": {"previous": None, "phases": [{"name": "phase1", "agents": ["nats-expert"]}]}})
    broken = yaml.safe_load((REPO / "criteria/default.yml").read_text())
    broken["primary"][0]["threshold"] = "99.9"
    broken["secondary"][2]["colour"] = "red"
    (work / "broken.yml").write_text(yaml.safe_dump(broken, sort_keys=False))
    (work / "bad-syntax.yml").write_text("primary: [\n")
    (work / "alias-chain.yml").write_text("a0: &a0 [1]\n" + "".join(
        "a%d: &a%d [%s]\n" % (i, i, ", ".join(["*a%d" % (i - 1)] * 9)) for i in range(1, 10)) + "primary: *a9\n")
    return run_playbook(work, [
        task("valid plan", "wave_plan", PLAN_ARGS),
        task("valid plan in check mode", "wave_plan", PLAN_ARGS, check_mode=True),
        task("bad inventory", "wave_plan", bad),
        task("undefined wave", "wave_plan", dict(PLAN_ARGS, wave="wave7")),
        task("missing and unknown arguments", "wave_plan",
             dict(wave="wave2", agents="{{ fleet_agents }}", colour="red")),
        task("plan with criteria", "wave_plan", dict(PLAN_ARGS, criteria_file=str(REPO / "criteria/default.yml"))),
        task("plan with a threshold replaced", "wave_plan", dict(PLAN_ARGS, criteria_file=str(REPO / "criteria/default.yml"),
                                                                  criteria_thresholds={"system_load": 4})),
        task("plan replacing the threshold of no criterion", "wave_plan",
             dict(PLAN_ARGS, criteria_file=str(REPO / "criteria/default.yml"),
                  criteria_thresholds={"system_lod": 4, "latency_p50": "fast"})),
        task("malformed criteria file", "wave_plan", dict(PLAN_ARGS, criteria_file=str(work / "broken.yml"))),
        task("criteria file with a syntax error", "wave_plan",
             dict(PLAN_ARGS, criteria_file=str(work / "bad-syntax.yml"))),
        task("missing criteria file", "wave_plan", dict(PLAN_ARGS, criteria_file=str(work / "absent.yml"))),
        task("last wave plan", "wave_plan", dict(PLAN_ARGS, wave="wave3")),
        task("timings that are not numbers", "wave_plan", dict(PLAN_ARGS, verify_window="soon", monitor_interval=[5])),
        task("timings of inf and nan", "wave_plan", dict(PLAN_ARGS, stagger="1e400", verify_window="inf",
                                                         monitor_interval="nan")),
        task("criteria file with an alias chain", "wave_plan",
             dict(PLAN_ARGS, criteria_file=str(work / "alias-chain.yml"))),
    ])


def test_wave_plan_returns_the_plan_of_the_inventory(plan_run):
    result = plan_run["valid plan"]
    assert not result.get("failed") and result["changed"] is False
    plan = result["plan"]
    assert (plan["wave"], plan["previous"], plan["agents"]) == ("wave2", "wave1", ["network-expert", "tdd-expert"])
    assert [w["label"] for w in plan["phases"][1]["watch"]] == ["phase2-verification", "T+1h", "T+6h", "T+12h", "T+24h"]
    assert plan["phases"][0]["agents"][0]["unified"] == "agents.infrastructure.01936f88-d2a9-7000-8000-000000000008"
    assert [a["name"] for a in plan["control"]] == ["git-expert", "graph-expert", "location-expert"]
    assert plan["timings"] == dict(stagger=30, verify_window=540, monitor_interval=300)
    assert undocumented(result, "wave_plan") == []


def test_wave_plan_works_in_check_mode(plan_run):
    assert plan_run["valid plan in check mode"]["plan"] == plan_run["valid plan"]["plan"]


def test_wave_plan_lists_every_problem_with_its_variable_and_changes_nothing(plan_run):
    result = plan_run["bad inventory"]
    assert result["failed"] and "plan" not in result
    assert result["problems"] == [
        "fleet_subject_legacy: 'agent.*' does not make a valid NATS subject (tokens of letters, digits, - and _)",
        "wave_stagger_seconds: must be a number in [0, 3,600] seconds, got -1",
        "fleet_waves.wave2.phases[0].agents: unknown agent 'netwrk-expert' (known: git-expert, graph-expert, "
        "location-expert, nats-expert, network-expert, tdd-expert)",
        "wave_schedule.wave2: phase2 not a phase of wave2"]
    assert result["msg"] == ("the inventory does not describe a valid wave2 (nothing was changed):\n  - "
                             + "\n  - ".join(result["problems"]))


def test_wave_plan_names_the_inventory_variable_of_a_timing_that_is_not_a_number(plan_run):
    # the timings are `raw` options: the plan, not the argument validation, reports them, by variable
    result = plan_run["timings that are not numbers"]
    assert result["failed"] and result["problems"] == [
        "wave_verify_window_seconds: must be a number in [0, 86,400] seconds, got 'soon'",
        "wave_monitor_interval_seconds: must be a number in [0.1, 86,400] seconds, got [5]"]


def test_wave_plan_refuses_infinite_and_nan_timings_given_as_extra_vars(plan_run):
    # -e wave_verify_window_seconds=inf arrives as a string that float() turns into inf: it never returned.
    result = plan_run["timings of inf and nan"]
    assert result["failed"] and result["problems"] == [
        "wave_stagger_seconds: must be a number in [0, 3,600] seconds, got inf",
        "wave_verify_window_seconds: must be a number in [0, 86,400] seconds, got inf",
        "wave_monitor_interval_seconds: must be a number in [0.1, 86,400] seconds, got nan"]


def test_wave_plan_refuses_a_criteria_file_with_an_alias_chain(plan_run):
    result = plan_run["criteria file with an alias chain"]
    assert result["failed"] and len(result["problems"]) == 1
    assert result["problems"][0].endswith("alias-chain.yml: line 2, column 10: alias *a0: aliases are not allowed "
                                          "in a criteria file, write the value out")


def test_wave_plan_refuses_an_undefined_wave(plan_run):
    result = plan_run["undefined wave"]
    assert result["failed"]
    assert "fleet_waves: wave 'wave7' is not defined (defined: wave1, wave2, wave3)" in result["msg"]


def test_wave_plan_names_missing_and_unknown_arguments(plan_run):
    result = plan_run["missing and unknown arguments"]
    assert result["failed"]
    assert result["msg"] == ("wave_plan: missing argument(s) waves, schedule, subject_legacy, subject_unified, "
                             "stagger, verify_window, monitor_interval; unknown argument(s) colour")


def test_wave_plan_accepts_timings_given_on_the_command_line(tmp_path):
    run = run_playbook(tmp_path, [task("plan", "wave_plan", PLAN_ARGS)], "-e", "wave_stagger_seconds=10")
    assert not run["plan"].get("failed"), run["plan"].get("msg")
    assert run["plan"]["plan"]["timings"]["stagger"] == 10


def test_wave_plan_without_criteria_file_has_no_criteria(plan_run):
    plan = plan_run["valid plan"]["plan"]
    assert "criteria" not in plan and "criteria_file" not in plan


def test_wave_plan_without_artifacts_dir_knows_no_previous_outcome(plan_run):
    assert plan_run["valid plan"]["plan"]["previous_outcome"] is None


def test_wave_plan_returns_reference_and_rounds(plan_run):
    plan = plan_run["valid plan"]["plan"]
    assert plan["reference_kind"] == "control" and plan["reference"] == plan["control"]
    rounds = plan["phases"][0]["rounds"]
    assert [r["label"] for r in rounds if r["kind"] == "checkpoint"] == ["phase1-verification", "phase1-T+1h",
                                                                          "phase1-T+2h"]
    assert rounds[0] == dict(label="phase1-monitor-001", after=300, kind="monitor")
    last = plan_run["last wave plan"]["plan"]
    assert last["reference_kind"] == "earlier waves"
    assert [a["name"] for a in last["reference"]] == ["nats-expert", "network-expert", "tdd-expert"]


def test_wave_plan_puts_the_validated_criteria_into_the_plan(plan_run):
    result = plan_run["plan with criteria"]
    assert not result.get("failed"), result.get("msg")
    plan = result["plan"]
    assert plan["criteria_file"] == str(REPO / "criteria/default.yml")
    assert plan["criteria"] == yaml.safe_load((REPO / "criteria/default.yml").read_text())
    assert plan["agents"] == plan_run["valid plan"]["plan"]["agents"]


def test_wave_plan_replaces_thresholds_the_inventory_names(plan_run):
    result = plan_run["plan with a threshold replaced"]
    assert not result.get("failed"), result.get("msg")
    expected = yaml.safe_load((REPO / "criteria/default.yml").read_text())
    [load] = [c for c in expected["secondary"] if c["name"] == "system_load"]
    load["threshold"] = 4
    assert result["plan"]["criteria"] == expected


def test_wave_plan_refuses_a_threshold_of_no_criterion_or_not_a_number(plan_run):
    result = plan_run["plan replacing the threshold of no criterion"]
    assert result["failed"] and "plan" not in result
    assert result["problems"][0] == "wave_criteria_thresholds.latency_p50: 'fast' is not a number"
    assert result["problems"][1].startswith("wave_criteria_thresholds.system_lod: no criterion is named 'system_lod' "
                                            "(criteria: ")


def test_wave_plan_refuses_a_malformed_criteria_file_listing_every_problem(plan_run):
    result = plan_run["malformed criteria file"]
    path = plan_run.workdir / "broken.yml"
    assert result["failed"] and "plan" not in result
    assert undocumented(result, "wave_plan") == []
    assert result["problems"] == [
        "%s: primary[0].threshold: '99.9' is not a number" % path,
        "%s: secondary[2].colour: unknown key 'colour' (allowed: name, metric, comparator, threshold, unit, scope, "
        "description, also, or)" % path]
    assert result["msg"] == ("the criteria file is refused (nothing was changed):\n  - "
                             + "\n  - ".join(result["problems"]))


def test_wave_plan_refuses_a_criteria_file_with_a_syntax_error(plan_run):
    result = plan_run["criteria file with a syntax error"]
    assert result["failed"] and "plan" not in result
    [problem] = result["problems"]
    assert problem.startswith("%s: line " % (plan_run.workdir / "bad-syntax.yml")) and "YAML syntax error" in problem


def test_wave_plan_refuses_a_missing_criteria_file(plan_run):
    result = plan_run["missing criteria file"]
    assert result["failed"]
    assert result["problems"] == ["%s: (file): cannot read: No such file or directory"
                                  % (plan_run.workdir / "absent.yml")]


# ================================================================================ wave_checkpoint

CRITERIA_FILE = REPO / "criteria/default.yml"
CRITERIA = yaml.safe_load(CRITERIA_FILE.read_text())
# The criteria reach wave_checkpoint as the playbooks pass them: from the plan wave_plan returned
# (registered as __plan by each fixture's first task), validated from criteria/default.yml.
PLAN_CRITERIA = "{{ __plan.plan.criteria }}"
HOSTS = ["dgx-1", "dgx-2"]
SAMPLES = [round(0.40 + 0.01 * i, 3) for i in range(30)]  # one instance's latency samples, ms


def fake_unit(restarts=0, cpu=10.0, memory=100_000_000, state="active", active_seconds=5000.0, pid=4242):
    """units.<agent> of agent_host_info."""
    return dict(unit="agent@x.service", load_state="loaded", active_state=state, sub_state="running", main_pid=pid,
                n_restarts=restarts, active_seconds=active_seconds if state == "active" else None, cpu_seconds=cpu,
                memory_bytes=memory, metrics_source="cgroup", journal_errors=0)


def fake_info(hosts, test, control, uptime, cpu=10.0, changed=None):
    """{host: agent_host_info result}; changed: {(agent, host): {unit field: value}}."""
    info = {}
    for host in hosts:
        units = {}
        for agent in list(test) + list(control):
            units[agent] = fake_unit(cpu=cpu)
            units[agent].update((changed or {}).get((agent, host), {}))
        info[host] = dict(units=units, load=[0.8, 0.5, 0.4], ncpu=8, load_per_cpu=0.1, sampled_at_epoch=1.7e9 + uptime,
                          sampled_at_uptime=uptime)
    return info


def fake_probe(hosts, test, control, changed=None, samples=SAMPLES):
    """A nats_probe result; changed: {(agent, host): {instance field: value}}."""
    agents, targets = [], []
    for agent in list(test) + list(control):
        on = agent in test
        instances = []
        for host in hosts:
            entry = dict(host=host, answered=True, sent=600, replies=600, delivery=1.0, error_rate=0.0,
                         latency_ms=dict(p50=0.55, p90=0.6, p99=0.68, max=0.69, count=600), samples_ms=samples,
                         dual_publish_success=1.0 if on else None, unified_share=0.5 if on else 0.0,
                         publish_time_ms=dict(p50=0.2, p99=0.8, max=1.0, count=200))
            entry.update((changed or {}).get((agent, host), {}))
            instances.append(entry)
            for via in ("legacy", "unified"):
                answers = on or via == "legacy"
                targets.append(dict(agent=agent, host=host, via=via, verb="ping", expected=answers, sent=300,
                                    replies=300 if answers else 0, no_responders=0 if answers else 300))
        agents.append(dict(name=agent, unified_enabled=on, duplicates=0, instances=instances))
    return dict(targets=targets, agents=agents, totals=dict(unmatched_replies=0), changed=False, failed=False)


HEALTHY = dict(
    wave="wave2", phase="phase2", hosts=HOSTS, test=["network-expert"], control=["graph-expert"],
    reference=["graph-expert"], reference_kind="control", criteria=PLAN_CRITERIA, criteria_file=str(CRITERIA_FILE),
    baseline=fake_info(HOSTS, ["network-expert"], ["graph-expert"], uptime=1000.0),
    info=fake_info(HOSTS, ["network-expert"], ["graph-expert"], uptime=1600.0, cpu=16.0),
    probe=fake_probe(HOSTS, ["network-expert"], ["graph-expert"]),
    # each instance's median before its flip, for the sequential comparison (criteria/default.yml)
    latency_baseline={"network-expert@%s" % host: 0.55 for host in HOSTS},
)
# dual publishing below its primary limit on one instance: NO-GO, no trigger.
LOW_DUAL = fake_probe(HOSTS, ["network-expert"], ["graph-expert"],
                      changed={("network-expert", "dgx-2"): dict(dual_publish_success=0.97)})
LOW_DUAL_FAILURE = ("primary dual_publish_success failed on network-expert@dgx-2: dual_publish_success_pct 97 "
                    "is not > 99 %")
# the flipped agent restarted on dgx-2: agent_crash fires.
RESTARTED = fake_info(HOSTS, ["network-expert"], ["graph-expert"], uptime=1600.0, cpu=16.0,
                      changed={("network-expert", "dgx-2"): dict(n_restarts=1, active_seconds=30.0, pid=5151)})
RESTART_REASONS = ["trigger agent_crash fired on network-expert@dgx-2: agent_crashes 1 > 0 count",
                   "health: network-expert no restarts on dgx-2: expected 0, measured 1"]
# the control agent answers on its unified subject: a health check fails, the gate alone would say GO.
CONTROL_ON_UNIFIED = fake_probe(HOSTS, ["network-expert"], ["graph-expert"])
for _t in CONTROL_ON_UNIFIED["targets"]:
    if _t["agent"] == "graph-expert" and _t["via"] == "unified" and _t["host"] == "dgx-1":
        _t.update(replies=300, no_responders=0)
# no latency of the reference group this round: the required comparison cannot be made. (Without an
# instance's pre-flip latency the performance_degradation trigger cannot be ruled out either: NO-GO.)
NO_CONTROL_LATENCY = dict(probe=fake_probe(HOSTS, ["network-expert"], ["graph-expert"],
                                           changed={("graph-expert", host): dict(samples_ms=[]) for host in HOSTS}))
FEW_SAMPLES_REASONS = ["comparison latency_ms too few samples (required): network-expert@%s: nothing to compare with "
                       "yet: no latency of the reference group (median 0.545 ms now)" % host for host in HOSTS]
ARTIFACTS = ["MANIFEST.sha256", "MANIFEST.sha256.hmac", "comparison.json", "decision.json", "measurements.json", "observations.json",
             "summary.md"]


def checkpoint(artifacts, label, run_id, **changes):
    return dict(HEALTHY, artifacts_dir=str(artifacts), label=label, run_id=run_id, **changes)


# an unknown top-level key, a threshold that is a string, an on_trigger that is not a choice
BROKEN_CRITERIA = ("{{ __plan.plan.criteria | combine({'colour': 'red', 'on_trigger': 'explode', 'primary': "
                   "__plan.plan.criteria.primary[:1]"
                   " + [__plan.plan.criteria.primary[1] | combine({'threshold': 'low'})]"
                   " + __plan.plan.criteria.primary[2:]}) }}")
ON_TRIGGER_STOP = "{{ __plan.plan.criteria | combine({'on_trigger': 'stop'}) }}"
ON_INCONCLUSIVE_ROLLBACK = ("{{ __plan.plan.criteria | combine({'comparison': {'on_inconclusive': 'rollback'}}, "
                            "recursive=true) }}")


@pytest.fixture(scope="module")
def checkpoint_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("wave-checkpoint")
    store, dry, blocked, corrupt = work / "store", work / "dry", work / "blocked", work / "corrupt"
    policy = work / "policy"
    blocked.write_text("a file where the artifact store should be")
    (corrupt / "checkpoints/wave2/T+1h").mkdir(parents=True)
    (corrupt / "checkpoints/wave2/T+1h/decision.json").write_text("{truncated")
    return run_playbook(work, [
        plan_task(dict(PLAN_ARGS, criteria_file=str(CRITERIA_FILE))),
        task("first run GO", "wave_checkpoint", checkpoint(store, "T+1h", "run-1")),
        task("second run NO-GO", "wave_checkpoint", checkpoint(store, "T+1h", "run-2", probe=LOW_DUAL)),
        task("second run again", "wave_checkpoint", checkpoint(store, "T+1h", "run-2", probe=LOW_DUAL)),
        task("other label", "wave_checkpoint", checkpoint(store, "T+6h", "run-2", started=T0)),
        task("restart rolls back", "wave_checkpoint", checkpoint(store, "T+12h", "run-2", info=RESTARTED),
             register="__restart"),
        # what the playbooks branch on
        dict(name="registered next step", set_fact=dict(registered_next_step="{{ __restart.next_step }}")),
        task("health failure", "wave_checkpoint", checkpoint(store, "T+24h", "run-2", probe=CONTROL_ON_UNIFIED)),
        task("probe failed", "wave_checkpoint",
             checkpoint(store, "phase1-T+1h", "run-2", phase="phase1",
                        probe=dict(failed=True, msg="cannot connect to nats://127.0.0.1:4222"))),
        task("monitor round", "wave_checkpoint",
             checkpoint(store, "phase2-monitor-001", "run-1", kind="monitor", probe=LOW_DUAL)),
        task("monitor round next run", "wave_checkpoint",
             checkpoint(store, "phase2-monitor-001", "run-2", kind="monitor", info=RESTARTED)),
        task("unknown kind", "wave_checkpoint", checkpoint(store, "T+1h", "run-3", kind="audit")),
        task("malformed criteria", "wave_checkpoint",
             checkpoint(store, "T+1h", "run-3", criteria=BROKEN_CRITERIA, criteria_file="criteria/broken.yml")),
        task("criteria given as data", "wave_checkpoint", checkpoint(work / "literal", "T+1h", "run-1",
                                                                     criteria=CRITERIA)),
        task("check mode", "wave_checkpoint", checkpoint(dry, "T+1h", "run-1"), check_mode=True),
        task("missing arguments", "wave_checkpoint",
             {k: v for k, v in checkpoint(store, "T+1h", "run-1").items() if k not in ("info", "control", "phase")}),
        task("old argument names", "wave_checkpoint",
             dict({k: v for k, v in checkpoint(store, "T+1h", "run-3").items() if k != "test"},
                  flipped=["network-expert"])),
        task("store not writable", "wave_checkpoint", checkpoint(blocked, "T+1h", "run-1")),
        task("corrupt previous checkpoint", "wave_checkpoint", checkpoint(corrupt, "T+1h", "run-1")),
        # the next step the criteria ask for
        task("too few samples asks a person", "wave_checkpoint",
             checkpoint(policy, "T+1h", "run-1", **NO_CONTROL_LATENCY)),
        task("too few samples rolls back when the criteria say so", "wave_checkpoint",
             checkpoint(policy, "T+6h", "run-1", criteria=ON_INCONCLUSIVE_ROLLBACK, **NO_CONTROL_LATENCY)),
        task("a fired trigger stops when the criteria say so", "wave_checkpoint",
             checkpoint(policy, "T+12h", "run-1", info=RESTARTED, criteria=ON_TRIGGER_STOP)),
    ])


def test_checkpoint_result(checkpoint_run):
    result = checkpoint_run["first run GO"]
    assert not result.get("failed") and result["changed"] is True
    assert (result["outcome"], result["next_step"], result["reasons"], result["fired"]) == ("GO", "proceed", [], [])
    assert read_json(checkpoint_run.workdir / "store/checkpoints/wave2/history/run-1/T+1h/decision.json")[
        "next_step"] == "proceed"
    assert (result["step"], result["folder"]) == ("checkpoint", "checkpoints/wave2/T+1h")
    assert result["path"] == str(checkpoint_run.workdir / "store/checkpoints/wave2/T+1h")
    assert sorted(result["measured"]) == ["network-expert@dgx-1", "network-expert@dgx-2"]
    assert result["measured"]["network-expert@dgx-1"]["uptime_pct"] == 100.0
    assert result["measured"]["network-expert@dgx-2"]["dual_publish_success_pct"] == 100.0
    assert result["wave_figures"]["system_load"] == 0.1 and result["wave_figures"]["cpu_overhead_pct"] == 0.0
    assert result["decided_epoch"] >= result["detected_epoch"]
    assert UTC_RE.fullmatch(result["detected_at"]) and UTC_RE.fullmatch(result["decided_at"])
    assert (result["detected_at"], result["decided_at"]) == (utc(result["detected_epoch"]),
                                                             utc(result["decided_epoch"]))


def test_checkpoint_returns_only_what_its_documentation_describes(checkpoint_run):
    for name in ("first run GO", "restart rolls back", "check mode"):
        assert undocumented(checkpoint_run[name], "wave_checkpoint") == [], name


def test_checkpoint_writes_its_artifacts(checkpoint_run):
    folder = checkpoint_run.workdir / "store/checkpoints/wave2/T+6h"
    assert checkpoint_run["other label"]["path"] == str(folder)
    assert files_under(folder) == ARTIFACTS


def test_checkpoint_observations_are_the_raw_inputs(checkpoint_run):
    observations = read_json(checkpoint_run.workdir / "store/checkpoints/wave2/T+6h/observations.json")
    probe = {k: v for k, v in HEALTHY["probe"].items() if k not in ("changed", "failed")}
    # No agents given: the server's view is not judged here (tests/unit/test_fleet_checkpoint_measure.py does).
    assert observations == dict(hosts=HEALTHY["info"], baseline=HEALTHY["baseline"], probe=probe, probe_error=None,
                                server_view=None, server_error=None)


def test_checkpoint_measurements_and_comparison(checkpoint_run):
    folder = checkpoint_run.workdir / "store/checkpoints/wave2/T+6h"
    measurements = read_json(folder / "measurements.json")
    assert sorted(measurements["per_agent"]) == ["network-expert@dgx-1", "network-expert@dgx-2"]
    assert measurements["samples"] == dict(test=dict(latency_ms=60), control=dict(latency_ms=60))
    comparison = read_json(folder / "comparison.json")
    assert (comparison["test"], comparison["reference"], comparison["reference_kind"]) == (
        ["network-expert"], ["graph-expert"], "control")
    # Each instance against its own pre-flip median and the control group, counted over run-2's three
    # rounds so far (30 latencies each).
    latency = {c["instance"]: c for c in comparison["comparisons"] if c["metric"] == "latency_ms"}
    assert sorted(latency) == ["network-expert@dgx-1", "network-expert@dgx-2"]
    for row in latency.values():
        assert (row["test"], row["verdict"], row["n_round"], row["baseline_median_ms"]) == (
            "sequential", "no difference so far", 30, 0.55)
        assert row["references"]["baseline"]["n"] == row["references"]["control"]["n"] == 90


def test_checkpoint_decision_record(checkpoint_run):
    decision = read_json(checkpoint_run.workdir / "store/checkpoints/wave2/T+6h/decision.json")
    assert {k: decision[k] for k in ("wave", "phase", "label", "step", "run_id", "outcome", "next_step",
                                     "reasons")} == dict(
        wave="wave2", phase="phase2", label="T+6h", step="checkpoint", run_id="run-2", outcome="GO",
        next_step="proceed", reasons=[])
    assert decision["headline"].startswith("GO: ")
    assert not {"decision", "action", "paused", "failures", "taken_at", "kind"} & set(decision)
    assert decision["criteria_file"] == str(CRITERIA_FILE) and decision["reference_kind"] == "control"
    primary = [r for r in decision["criteria"] if r["kind"] == "primary"]
    assert len(primary) == 7 * 2 and all(r["passed"] and r["measured"] is not None for r in primary)
    assert {r["name"] for r in decision["criteria"] if r["kind"] == "secondary"} == {
        c["name"] for c in CRITERIA["secondary"]}
    # 15 unit and subject checks, one answer per request for each of the 2 agents, no stray reply.
    assert len(decision["health"]) == 18 and all(c["ok"] for c in decision["health"])
    result = checkpoint_run["other label"]
    assert (decision["detected_at"], decision["decided_at"]) == (result["detected_at"], result["decided_at"])
    assert UTC_RE.fullmatch(decision["detected_at"]) and UTC_RE.fullmatch(decision["decided_at"])


def test_checkpoint_summary(checkpoint_run):
    summary = (checkpoint_run.workdir / "store/checkpoints/wave2/T+1h/summary.md").read_text()
    assert summary.startswith("# wave2 checkpoint T+1h: NO-GO\n")
    assert "- %s" % LOW_DUAL_FAILURE in summary
    assert "| primary | dual_publish_success | network-expert@dgx-2 | 97 % | > 99 | **FAIL** |" in summary
    assert "## Sequential test: each instance against itself before its flip, and the control" in summary


def test_checkpoint_manifest_passes_sha256sum(checkpoint_run):
    folder = checkpoint_run.workdir / "store/checkpoints/wave2/T+1h"
    check = sha256sum_check(folder)
    assert check.returncode == 0, check.stdout + check.stderr
    # The manifest lists every file but itself and its signature (MANIFEST.sha256.hmac), which signs it.
    assert sorted(check.stdout.splitlines()) == ["%s: OK" % n for n in ARTIFACTS if not n.startswith("MANIFEST")]
    from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_artifacts, fleet_evidence
    fleet_artifacts.ArtifactStore(folder).verify_manifest(".", fleet_evidence.EvidenceKey(EVIDENCE_KEY))


def test_checkpoint_no_go_names_the_criterion_and_the_instance(checkpoint_run):
    result = checkpoint_run["second run NO-GO"]
    assert not result.get("failed") and (result["outcome"], result["next_step"]) == ("NO-GO", "stop")
    assert result["reasons"] == [LOW_DUAL_FAILURE]
    assert read_json(checkpoint_run.workdir / "store/checkpoints/wave2/T+1h/decision.json")["next_step"] == "stop"


def test_checkpoint_restart_fires_agent_crash_and_asks_for_a_rollback(checkpoint_run):
    result = checkpoint_run["restart rolls back"]
    assert (result["outcome"], result["next_step"], result["fired"]) == ("ROLLBACK", "rollback", ["agent_crash"])
    assert checkpoint_run["registered next step"]["ansible_facts"]["registered_next_step"] == "rollback"
    decision = read_json(checkpoint_run.workdir / "store/checkpoints/wave2/T+12h/decision.json")
    assert (decision["outcome"], decision["next_step"]) == ("ROLLBACK", "rollback")
    for reason in RESTART_REASONS:
        assert reason in result["reasons"]


def test_checkpoint_failed_health_check_turns_go_into_no_go(checkpoint_run):
    result = checkpoint_run["health failure"]
    assert (result["outcome"], result["next_step"], result["fired"]) == ("NO-GO", "stop", [])
    assert read_json(checkpoint_run.workdir / "store/checkpoints/wave2/T+24h/decision.json")["next_step"] == "stop"
    assert result["reasons"] == ["health: graph-expert legacy only (control): expected no responders on unified, "
                                 "measured ['dgx-1']"]


def test_checkpoint_with_a_failed_probe_is_no_go_and_says_why(checkpoint_run):
    result = checkpoint_run["probe failed"]
    assert (result["outcome"], result["next_step"]) == ("NO-GO", "stop") and not result.get("failed")
    assert result["reasons"][0] == ("probe failed, so every NATS figure is missing: cannot connect to "
                                    "nats://127.0.0.1:4222")
    measured = result["measured"]["network-expert@dgx-1"]
    assert all(measured[k] is None for k in ("error_rate_pct", "delivery_pct", "latency_p50_ms", "latency_p99_ms",
                                             "dual_publish_success_pct", "unified_share_pct", "publish_time_ms",
                                             "requests")), measured
    assert measured["uptime_pct"] == 100.0 and measured["agent_crashes"] == 0
    observations = read_json(checkpoint_run.workdir / "store/checkpoints/wave2/phase1-T+1h/observations.json")
    assert observations["probe"] is None
    assert observations["probe_error"] == "cannot connect to nats://127.0.0.1:4222"


def test_checkpoint_lacking_samples_for_a_required_comparison_asks_a_person(checkpoint_run):
    result = checkpoint_run["too few samples asks a person"]
    assert (result["outcome"], result["next_step"], result["reasons"]) == ("INCONCLUSIVE", "ask",
                                                                             FEW_SAMPLES_REASONS)
    decision = read_json(checkpoint_run.workdir / "policy/checkpoints/wave2/T+1h/decision.json")
    assert (decision["outcome"], decision["next_step"]) == ("INCONCLUSIVE", "ask")


def test_checkpoint_lacking_samples_rolls_back_when_on_inconclusive_is_rollback(checkpoint_run):
    result = checkpoint_run["too few samples rolls back when the criteria say so"]
    assert (result["outcome"], result["next_step"], result["fired"]) == ("INCONCLUSIVE", "rollback", [])


def test_checkpoint_fired_trigger_stops_without_rollback_when_on_trigger_is_stop(checkpoint_run):
    result = checkpoint_run["a fired trigger stops when the criteria say so"]
    assert (result["outcome"], result["next_step"], result["fired"]) == ("NO-GO", "stop", ["agent_crash"])
    for reason in RESTART_REASONS:
        assert reason in result["reasons"]


def test_monitor_round_is_written_under_the_monitor_folder(checkpoint_run):
    result = checkpoint_run["monitor round"]
    folder = checkpoint_run.workdir / "store/checkpoints/wave2/history/run-1/monitor/phase2-monitor-001"
    assert (result["step"], result["folder"]) == ("monitoring round", "checkpoints/wave2/monitor/phase2-monitor-001")
    assert files_under(folder) == ARTIFACTS and sha256sum_check(folder).returncode == 0
    decision = read_json(folder / "decision.json")
    assert (decision["step"], decision["run_id"]) == ("monitoring round", "run-1")
    assert not (checkpoint_run.workdir / "store/checkpoints/wave2/phase2-monitor-001").exists()
    assert (folder / "summary.md").read_text().startswith("# wave2 monitoring round phase2-monitor-001: GO\n")


def test_monitor_round_ignores_the_primary_criteria(checkpoint_run):
    # the same probe fails dual_publish_success at a checkpoint; a monitoring round judges triggers only
    result = checkpoint_run["monitor round"]
    assert (result["outcome"], result["next_step"], result["reasons"]) == ("GO", "proceed", [])
    decision = read_json(checkpoint_run.workdir
                         / "store/checkpoints/wave2/history/run-1/monitor/phase2-monitor-001/decision.json")
    assert decision["next_step"] == "proceed"
    assert {r["kind"] for r in decision["criteria"]} == {"rollback_trigger"}
    # The sequential comparison is judged every round (anytime-valid); nothing else is compared.
    assert decision["comparisons"] and all(c["test"] == "sequential" and c["verdict"] == "no difference so far"
                                           for c in decision["comparisons"])


def test_monitor_round_rolls_back_on_a_trigger(checkpoint_run):
    result = checkpoint_run["monitor round next run"]
    assert (result["outcome"], result["next_step"], result["fired"]) == ("ROLLBACK", "rollback", ["agent_crash"])
    wave = checkpoint_run.workdir / "store/checkpoints/wave2"
    decision = read_json(wave / "monitor/phase2-monitor-001/decision.json")
    assert (decision["run_id"], decision["next_step"]) == ("run-2", "rollback")
    assert read_json(wave / "history/run-1/monitor/phase2-monitor-001/decision.json")["run_id"] == "run-1"


def test_checkpoint_of_a_previous_run_is_archived_not_overwritten(checkpoint_run):
    wave = checkpoint_run.workdir / "store/checkpoints/wave2"
    archived = wave / "history/run-1/T+1h"
    assert read_json(archived / "decision.json")["run_id"] == "run-1"
    assert read_json(archived / "decision.json")["outcome"] == "GO"
    assert sha256sum_check(archived).returncode == 0
    assert read_json(wave / "T+1h/decision.json")["run_id"] == "run-2"


def test_checkpoint_retaken_in_the_same_run_is_replaced_in_place(checkpoint_run):
    history = checkpoint_run.workdir / "store/checkpoints/wave2/history"
    assert sorted(p.name for p in history.iterdir()) == ["run-1"]
    assert sorted(p.name for p in (history / "run-1").iterdir()) == ["T+1h", "monitor"]


def test_checkpoint_journals_every_round_of_its_run_in_order(checkpoint_run):
    store = checkpoint_run.workdir / "store"
    records = journal(store, "run-2")
    assert [(r["seq"], r["step"], r["phase"], r["label"], r["outcome"], r["next_step"]) for r in records] == [
        (1, "checkpoint", "phase2", "T+1h", "NO-GO", "stop"),
        (2, "checkpoint", "phase2", "T+1h", "NO-GO", "stop"),
        (3, "checkpoint", "phase2", "T+6h", "GO", "proceed"),
        (4, "checkpoint", "phase2", "T+12h", "ROLLBACK", "rollback"),
        (5, "checkpoint", "phase2", "T+24h", "NO-GO", "stop"),
        (6, "checkpoint", "phase1", "phase1-T+1h", "NO-GO", "stop"),
        (7, "monitoring round", "phase2", "phase2-monitor-001", "ROLLBACK", "rollback")]
    tasks = ["second run NO-GO", "second run again", "other label", "restart rolls back", "health failure",
             "probe failed", "monitor round next run"]
    for record, name in zip(records, tasks):
        result = checkpoint_run[name]
        assert (record["run_id"], record["wave"], record["host"]) == ("run-2", "wave2", None)
        assert (record["reasons"], record["artifact"]) == (result["reasons"], result["folder"]), name
        assert record["finished"] == result["decided_at"], name
        assert dict(record["detail"], sequential_state=None) == dict(
            fired=result["fired"], detected_at=result["detected_at"], decided_at=result["decided_at"],
            sequential_state=None), name
        assert UTC_RE.fullmatch(record["started"]) and record["started"] <= record["finished"], name
    # The sequential comparison's counts go on from round to round of the run: 30 latencies per instance
    # and round, none in the round whose probe failed.
    assert [r["detail"]["sequential_state"]["latency_ms"]["network-expert@dgx-1"]["baseline"]["n"]
            for r in records] == [30, 60, 90, 120, 150, 150, 180]
    assert [(r["label"], r["outcome"]) for r in journal(store, "run-1")] == [("T+1h", "GO"),
                                                                              ("phase2-monitor-001", "GO")]


def test_checkpoint_journals_the_start_it_is_given(checkpoint_run):
    [record] = [r for r in journal(checkpoint_run.workdir / "store", "run-2") if r["label"] == "T+6h"]
    assert record["started"] == utc(T0) == "2025-01-14T09:30:00.000Z"


def test_checkpoint_that_fails_journals_nothing(checkpoint_run):
    for name in ("unknown kind", "malformed criteria", "old argument names"):
        assert checkpoint_run[name]["failed"], name
    assert not (checkpoint_run.workdir / "store/runs/run-3").exists()
    assert not (checkpoint_run.workdir / "corrupt/runs").exists()


def test_checkpoint_with_an_unknown_kind_fails(checkpoint_run):
    result = checkpoint_run["unknown kind"]
    assert result["failed"]
    assert result["msg"] == "wave_checkpoint: value of kind must be one of: checkpoint, monitor, got: audit"


def test_checkpoint_with_malformed_criteria_fails_naming_key_and_reason(checkpoint_run):
    result = checkpoint_run["malformed criteria"]
    assert result["failed"]
    assert result["msg"] == (
        "criteria refused:\n"
        "  - criteria/broken.yml: colour: unknown key 'colour' (allowed: primary, secondary, rollback_triggers, "
        "on_trigger, comparison)\n"
        "  - criteria/broken.yml: primary[1].threshold: 'low' is not a number\n"
        "  - criteria/broken.yml: on_trigger: 'explode' is not one of rollback, stop")
    # nothing written: T+1h is still run-2's NO-GO
    assert read_json(checkpoint_run.workdir / "store/checkpoints/wave2/T+1h/decision.json")["run_id"] == "run-2"


# ansible-core 2.19 hands playbook-literal strings over as a str subclass (_AnsibleTaggedStr).
def test_checkpoint_accepts_criteria_given_as_data_in_the_playbook(checkpoint_run):
    result = checkpoint_run["criteria given as data"]
    assert not result.get("failed"), result.get("msg")
    assert result["outcome"] == "GO"


def test_checkpoint_in_check_mode_decides_and_writes_nothing(checkpoint_run):
    result = checkpoint_run["check mode"]
    assert not result.get("failed") and result["outcome"] == "GO" and result["changed"] is False
    assert result["next_step"] == "proceed"
    assert "path" not in result and not (checkpoint_run.workdir / "dry").exists()


def test_checkpoint_names_missing_arguments(checkpoint_run):
    result = checkpoint_run["missing arguments"]
    assert result["failed"] and result["msg"] == "wave_checkpoint: missing argument(s) phase, control, info"


def test_checkpoint_refuses_the_old_argument_names(checkpoint_run):
    result = checkpoint_run["old argument names"]
    assert result["failed"]
    assert result["msg"] == "wave_checkpoint: missing argument(s) test; unknown argument(s) flipped"


def test_checkpoint_that_cannot_be_written_fails_naming_the_folder(checkpoint_run):
    result = checkpoint_run["store not writable"]
    blocked = checkpoint_run.workdir / "blocked"
    assert result["failed"] and result["msg"].startswith(
        "wave_checkpoint: could not read the run journal under %s: " % blocked), result["msg"]
    assert blocked.read_text() == "a file where the artifact store should be"


def test_checkpoint_over_a_corrupt_record_fails_naming_the_file(checkpoint_run):
    result = checkpoint_run["corrupt previous checkpoint"]
    path = checkpoint_run.workdir / "corrupt/checkpoints/wave2/T+1h/decision.json"
    assert result["failed"] and "%s is not valid JSON" % path in result["msg"]
    assert path.read_text() == "{truncated"


# ================================================================================ wave 1 helpers

PLAN_WAVE1 = dict(PLAN_ARGS, wave="wave1", criteria_file=str(CRITERIA_FILE))
WAVE1_LABELS = ["phase1-verification", "T+1h", "T+3h", "T+6h"]
WAVE1 = dict(hosts=["dgx-1"], test=["nats-expert"], control=["tdd-expert"])
WAVE1_HEALTHY = dict(
    WAVE1, wave="wave1", phase="phase1", reference=["tdd-expert"], criteria=PLAN_CRITERIA,
    baseline=fake_info(uptime=1000.0, **WAVE1), info=fake_info(uptime=1600.0, cpu=16.0, **WAVE1),
    probe=fake_probe(**WAVE1), latency_baseline={"nats-expert@dgx-1": 0.55})
# nats-expert below the dual-publishing limit: NO-GO.
WAVE1_FAILING = dict(probe=fake_probe(changed={("nats-expert", "dgx-1"): dict(dual_publish_success=0.97)}, **WAVE1))
WAVE1_FAILURE = "primary dual_publish_success failed on nats-expert@dgx-1: dual_publish_success_pct 97 is not > 99 %"
# nats-expert restarted: agent_crash fires.
WAVE1_RESTARTED = dict(info=fake_info(uptime=1600.0, cpu=16.0, changed={("nats-expert", "dgx-1"): dict(n_restarts=1)},
                                      **WAVE1))
WAVE1_RESTART_REASONS = ["trigger agent_crash fired on nats-expert@dgx-1: agent_crashes 1 > 0 count",
                         "health: nats-expert no restarts on dgx-1: expected 0, measured 1"]
# too few latency samples for the rank test's required comparison: INCONCLUSIVE, ask a person.
# (performance_degradation judges the sequential test's figures: it goes with it)
RANKED = ("{{ __plan.plan.criteria | combine({'comparison': {'test': 'mann_whitney'}, 'rollback_triggers': "
          "__plan.plan.criteria.rollback_triggers | rejectattr('name', 'eq', 'performance_degradation') | list}, "
          "recursive=true) }}")
WAVE1_FEW_SAMPLES = dict(probe=fake_probe(samples=SAMPLES[:5], **WAVE1), criteria=RANKED)
WAVE1_FEW_SAMPLES_REASON = ("comparison latency_ms too few samples (required): n 5 test / 5 control, "
                            "need 20 on each side")
# a person's answer keeps why the round asked, then says what was answered
ACCEPTED = [WAVE1_FEW_SAMPLES_REASON, "INCONCLUSIVE, accepted by a person"]
NOT_ACCEPTED = [WAVE1_FEW_SAMPLES_REASON, "INCONCLUSIVE, not accepted: the run stops here"]


def wave1_checkpoint(artifacts, run_id, label="{{ item }}", **changes):
    return dict(WAVE1_HEALTHY, artifacts_dir=str(artifacts), label=label, run_id=run_id, **changes)


def journal_step(artifacts, run_id, step, **fields):
    """wave_journal's arguments for one step of a wave1 run (fields may override the wave)."""
    return dict(dict(artifacts_dir=str(artifacts), run_id=run_id, wave="wave1", step=step), **fields)


def start_run(artifacts, run_id, **fields):
    """The run record a wave run starts its journal with: it carries the plan."""
    return journal_step(artifacts, run_id, "run", outcome="ok",
                        detail=dict(plan="{{ __plan.plan }}", hosts=["dgx-1"], operator="tester"), **fields)


def approval(artifacts, run_id, label, approved, **fields):
    return journal_step(artifacts, run_id, "approval", phase="phase1", label=label, approved=approved, **fields)


def decision(artifacts, run_id, **changes):
    return dict(plan="{{ __plan.plan }}", run_id=run_id, artifacts_dir=str(artifacts), **changes)


# ================================================================================ wave_journal

ROLLBACK_RUN = "rollback-20250114T100000Z"


@pytest.fixture(scope="module")
def journal_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("wave-journal")
    store, dry, defaults = work / "store", work / "dry", work / "defaults"
    return run_playbook(work, [
        plan_task(PLAN_WAVE1),
        task("start the run", "wave_journal", start_run(store, "run-1", started=T0, finished=T0 + 1)),
        task("controller pre-flight", "wave_journal",
             journal_step(store, "run-1", "preflight", started=T0, finished=T0 + 60, outcome="ok")),
        task("host pre-flight failed", "wave_journal",
             journal_step(store, "run-1", "preflight", host="dgx-1", started=T0 + 60, finished=T0 + 90,
                          outcome="failed", reasons=["Ensure the agent units are active: tdd-expert is failed"])),
        task("deploy", "wave_journal",
             journal_step(store, "run-1", "deploy", phase="phase1", host="dgx-1", started=T0 + 120,
                          finished=T0 + 150, outcome="ok", detail=dict(agents=["nats-expert"]))),
        task("deploy failed", "wave_journal",
             journal_step(store, "run-1", "deploy", phase="phase1", host="dgx-2", outcome="failed",
                          reasons=["Deploy: unit did not start"])),
        task("monitoring round fires", "wave_checkpoint",
             wave1_checkpoint(store, "run-1", label="phase1-monitor-002", kind="monitor", **WAVE1_RESTARTED),
             register="__fired"),
        task("automatic rollback", "wave_journal",
             journal_step(store, "run-1", "rollback", phase="phase1", label="phase1-monitor-002", kind="monitor",
                          started="{{ __fired.decided_epoch }}", outcome="rolled back", reasons="{{ __fired.reasons }}",
                          detail=dict(triggers="{{ __fired.fired }}", agents=["nats-expert"],
                                      detected_at="{{ __fired.detected_at }}", decided_at="{{ __fired.decided_at }}",
                                      seconds_detection_to_completion=19.9))),
        task("rollback run", "wave_journal",
             journal_step(store, ROLLBACK_RUN, "rollback", wave="wave2", started=T0, finished=T0 + 21.4,
                          outcome="rolled back", detail=dict(targets=["tdd-expert"], seconds=21.4))),
        task("failed rollback run", "wave_journal",
             journal_step(store, "rollback-failed", "rollback", wave="wave2", outcome="failed",
                          reasons=["Restore: no backup on dgx-2"])),
        task("phase1-verification GO", "wave_checkpoint",
             wave1_checkpoint(store, "run-1", label="phase1-verification")),
        task("T+1h asks", "wave_checkpoint", wave1_checkpoint(store, "run-1", label="T+1h", **WAVE1_FEW_SAMPLES)),
        task("T+3h asks", "wave_checkpoint", wave1_checkpoint(store, "run-1", label="T+3h", **WAVE1_FEW_SAMPLES)),
        task("accept T+1h", "wave_journal", approval(store, "run-1", "T+1h", True, detail=dict(how="prompt"))),
        task("refuse T+3h", "wave_journal", approval(store, "run-1", "T+3h", False)),
        task("answer T+1h again", "wave_journal", approval(store, "run-1", "T+1h", True)),
        task("answer a round that did not ask", "wave_journal",
             approval(store, "run-1", "phase1-verification", True)),
        task("answer a round not journaled", "wave_journal", approval(store, "run-1", "T+6h", True)),
        task("answer a round of another run", "wave_journal", approval(store, "run-2", "T+3h", True)),
        task("approval without a label", "wave_journal",
             journal_step(store, "run-1", "approval", phase="phase1", approved=True)),
        task("bad step", "wave_journal", journal_step(store, "run-1", "checkpoint", outcome="ok")),
        task("missing arguments", "wave_journal", dict(step="deploy", outcome="ok")),
        task("unknown argument", "wave_journal", journal_step(store, "run-1", "deploy", colour="red")),
        task("check mode", "wave_journal", journal_step(dry, "run-1", "deploy", outcome="ok"), check_mode=True),
        # as playbooks/wave/phase.yml sets them once for the play
        dict(name="steps with module defaults",
             module_defaults={
                 fqcn("wave_journal"): dict(artifacts_dir=str(defaults), run_id="run-md", wave="wave1", phase="phase1"),
                 fqcn("wave_checkpoint"): dict(artifacts_dir=str(defaults), run_id="run-md", wave="wave1",
                                               phase="phase1"),
                 fqcn("wave_decision"): dict(artifacts_dir=str(defaults), run_id="run-md", plan="{{ __plan.plan }}")},
             block=[
                 task("run from module defaults", "wave_journal",
                      dict(step="run", outcome="ok", detail=dict(plan="{{ __plan.plan }}"))),
                 task("deploy from module defaults", "wave_journal",
                      dict(step="deploy", host="dgx-1", started=T0, outcome="ok")),
                 task("module defaults overridden by the task", "wave_journal",
                      dict(step="deploy", host="dgx-1", outcome="ok", run_id="run-other")),
                 task("checkpoint from module defaults", "wave_checkpoint",
                      {k: v for k, v in WAVE1_HEALTHY.items() if k not in ("wave", "phase")}
                      | dict(label="phase1-verification")),
                 task("go/no-go from module defaults", "wave_decision", dict(scope="phase", phase="phase1")),
             ]),
    ])


def test_journal_appends_the_run_record_with_the_plan(journal_run):
    result = journal_run["start the run"]
    assert not result.get("failed") and result["changed"] is True
    record = result["record"]
    assert (record["seq"], record["run_id"], record["wave"], record["step"]) == (1, "run-1", "wave1", "run")
    assert (record["outcome"], record["next_step"]) == (result["outcome"], result["next_step"]) == ("ok", "proceed")
    assert (record["started"], record["finished"]) == (utc(T0), utc(T0 + 1)) == (
        "2025-01-14T09:30:00.000Z", "2025-01-14T09:30:01.000Z")
    assert record["detail"]["plan"] == journal_run["plan"]["plan"] and record["detail"]["hosts"] == ["dgx-1"]
    assert journal(journal_run.workdir / "store", "run-1")[0] == record
    assert "path" not in result


def test_journal_returns_only_what_its_documentation_describes(journal_run):
    for name in ("start the run", "automatic rollback", "rollback run", "accept T+1h", "check mode", "bad step"):
        assert undocumented(journal_run[name], "wave_journal") == [], name


def test_journal_preflight_proceeds_when_ok_and_stops_when_failed(journal_run):
    ok, failed = journal_run["controller pre-flight"]["record"], journal_run["host pre-flight failed"]["record"]
    assert (ok["step"], ok["host"], ok["outcome"], ok["next_step"], ok["reasons"]) == (
        "preflight", None, "ok", "proceed", [])
    assert (ok["started"], ok["finished"]) == ("2025-01-14T09:30:00.000Z", "2025-01-14T09:31:00.000Z")
    assert (failed["host"], failed["outcome"], failed["next_step"]) == ("dgx-1", "failed", "stop")
    assert failed["reasons"] == ["Ensure the agent units are active: tdd-expert is failed"]
    assert journal_run["host pre-flight failed"]["next_step"] == "stop"


def test_journal_deploy_of_a_host(journal_run):
    ok, failed = journal_run["deploy"]["record"], journal_run["deploy failed"]["record"]
    assert (ok["step"], ok["phase"], ok["host"], ok["outcome"], ok["next_step"]) == (
        "deploy", "phase1", "dgx-1", "ok", "proceed")
    assert ok["detail"] == dict(agents=["nats-expert"])
    assert (ok["started"], ok["finished"]) == ("2025-01-14T09:32:00.000Z", "2025-01-14T09:32:30.000Z")
    assert (failed["outcome"], failed["next_step"], failed["reasons"]) == ("failed", "stop",
                                                                           ["Deploy: unit did not start"])
    # no start given: none recorded; the finish is when the step was journaled
    assert failed["started"] is None and UTC_RE.fullmatch(failed["finished"])


def test_journal_automatic_rollback_is_written_beside_its_round(journal_run):
    result = journal_run["automatic rollback"]
    fired = journal_run["monitoring round fires"]
    assert (fired["outcome"], fired["next_step"]) == ("ROLLBACK", "rollback")
    folder = journal_run.workdir / "store/checkpoints/wave1/monitor/phase1-monitor-002"
    record = result["record"]
    assert not result.get("failed") and result["path"] == str(folder / "rollback.json")
    assert (record["step"], record["label"], record["outcome"], record["next_step"]) == (
        "rollback", "phase1-monitor-002", "rolled back", "stop")
    assert result["next_step"] == "stop"  # a rollback ends the run
    assert record["artifact"] == "checkpoints/wave1/monitor/phase1-monitor-002"
    assert record["reasons"] == WAVE1_RESTART_REASONS and record["started"] == fired["decided_at"]
    assert record["detail"]["triggers"] == ["agent_crash"] and record["detail"]["detected_at"] == fired["detected_at"]
    assert read_json(folder / "rollback.json") == record
    check = sha256sum_check(folder)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "rollback.json: OK" in check.stdout.splitlines()


def test_journal_rollback_run_is_written_to_rollbacks(journal_run):
    result = journal_run["rollback run"]
    path = journal_run.workdir / ("store/rollbacks/%s.json" % ROLLBACK_RUN)
    record = result["record"]
    assert not result.get("failed") and result["path"] == str(path)
    assert (record["run_id"], record["wave"], record["label"], record["outcome"], record["next_step"]) == (
        ROLLBACK_RUN, "wave2", None, "rolled back", "stop")
    assert record["artifact"] == "rollbacks/%s.json" % ROLLBACK_RUN
    assert (record["started"], record["finished"]) == ("2025-01-14T09:30:00.000Z", "2025-01-14T09:30:21.400Z")
    assert read_json(path) == record and journal(journal_run.workdir / "store", ROLLBACK_RUN) == [record]
    assert files_under(journal_run.workdir / "store/rollbacks") == ["%s.json" % ROLLBACK_RUN, "rollback-failed.json"]


def test_journal_failed_rollback_stops_too(journal_run):
    result = journal_run["failed rollback run"]
    assert (result["outcome"], result["next_step"]) == ("failed", "stop")
    assert read_json(result["path"])["reasons"] == ["Restore: no backup on dgx-2"]


def test_journal_approval_of_an_asking_round_proceeds_when_accepted(journal_run):
    asked = journal_run["T+1h asks"]
    assert (asked["outcome"], asked["next_step"]) == ("INCONCLUSIVE", "ask")
    result = journal_run["accept T+1h"]
    folder = journal_run.workdir / "store/checkpoints/wave1/T+1h"
    record = result["record"]
    assert not result.get("failed") and (result["outcome"], result["next_step"]) == ("GO", "proceed")
    assert (record["step"], record["phase"], record["label"], record["reasons"]) == (
        "approval", "phase1", "T+1h", ACCEPTED)
    assert record["artifact"] == "checkpoints/wave1/T+1h"
    assert record["detail"] == dict(how="prompt", approved=True)
    assert result["path"] == str(folder / "approval.json") and read_json(folder / "approval.json") == record
    check = sha256sum_check(folder)
    assert check.returncode == 0, check.stdout + check.stderr
    assert sorted(check.stdout.splitlines()) == ["%s: OK" % n for n in sorted(ARTIFACTS + ["approval.json"])
                                                 if not n.startswith("MANIFEST")]


def test_journal_approval_of_an_asking_round_stops_when_not_accepted(journal_run):
    result = journal_run["refuse T+3h"]
    assert (result["outcome"], result["next_step"]) == ("INCONCLUSIVE", "stop")
    assert result["record"]["reasons"] == NOT_ACCEPTED and result["record"]["detail"] == dict(approved=False)
    assert read_json(journal_run.workdir / "store/checkpoints/wave1/T+3h/approval.json") == result["record"]


@pytest.mark.parametrize("name, why", [
    ("answer T+1h again", "no round T+1h of phase1 waits for an answer in run run-1"),
    ("answer a round that did not ask",
     "checkpoint phase1-verification did not ask for a person (next step proceed) in run run-1"),
    ("answer a round not journaled", "no round T+6h of phase1 waits for an answer in run run-1"),
    ("answer a round of another run", "no round T+3h of phase1 waits for an answer in run run-2"),
])
def test_journal_approval_is_refused_for_a_round_that_does_not_wait_for_one(journal_run, name, why):
    result = journal_run[name]
    assert result["failed"] and "record" not in result
    assert result["msg"] == "could not journal approval of run %s under %s: %s" % (
        "run-2" if "another run" in name else "run-1", journal_run.workdir / "store", why)


def test_journal_refused_approvals_write_nothing(journal_run):
    store = journal_run.workdir / "store"
    assert not (store / "checkpoints/wave1/phase1-verification/approval.json").exists()
    assert not (store / "runs/run-2").exists()
    assert [r["label"] for r in journal(store, "run-1") if r["step"] == "approval"] == ["T+1h", "T+3h"]


def test_journal_numbers_its_records_in_order(journal_run):
    records = journal(journal_run.workdir / "store", "run-1")
    assert [(r["seq"], r["step"], r["label"]) for r in records] == [
        (1, "run", None), (2, "preflight", None), (3, "preflight", None), (4, "deploy", None), (5, "deploy", None),
        (6, "monitoring round", "phase1-monitor-002"), (7, "rollback", "phase1-monitor-002"),
        (8, "checkpoint", "phase1-verification"), (9, "checkpoint", "T+1h"), (10, "checkpoint", "T+3h"),
        (11, "approval", "T+1h"), (12, "approval", "T+3h")]
    assert all(UTC_RE.fullmatch(r["finished"]) for r in records)


def test_journal_approval_needs_phase_and_label(journal_run):
    result = journal_run["approval without a label"]
    assert result["failed"] and result["msg"] == "wave_journal: step=approval needs phase and label"


def test_journal_refuses_a_step_it_does_not_know(journal_run):
    result = journal_run["bad step"]
    assert result["failed"]
    assert result["msg"] == ("wave_journal: value of step must be one of: run, resume, preflight, deploy, watch, "
                             "approval, rollback, lock, pause, got: checkpoint")


def test_journal_names_missing_and_unknown_arguments(journal_run):
    assert journal_run["missing arguments"]["msg"] == "wave_journal: missing argument(s) artifacts_dir, run_id, wave"
    assert journal_run["unknown argument"]["msg"] == "wave_journal: unknown argument(s) colour"
    assert journal_run["missing arguments"]["failed"] and journal_run["unknown argument"]["failed"]


def test_journal_in_check_mode_writes_nothing(journal_run):
    result = journal_run["check mode"]
    assert not result.get("failed") and not result.get("changed") and result["next_step"] == "proceed"
    assert not (journal_run.workdir / "dry").exists()


def test_journal_takes_store_run_and_wave_from_module_defaults(journal_run):
    defaults = journal_run.workdir / "defaults"
    for name in ("run from module defaults", "deploy from module defaults", "module defaults overridden by the task"):
        assert not journal_run[name].get("failed"), journal_run[name].get("msg")
    records = journal(defaults, "run-md")
    assert [(r["seq"], r["run_id"], r["wave"], r["phase"], r["step"], r["host"]) for r in records[:2]] == [
        (1, "run-md", "wave1", "phase1", "run", None), (2, "run-md", "wave1", "phase1", "deploy", "dgx-1")]
    assert records[1]["started"] == utc(T0)
    # an argument given by the task wins over the default
    [other] = journal(defaults, "run-other")
    assert (other["run_id"], other["wave"], other["step"]) == ("run-other", "wave1", "deploy")


def test_checkpoint_and_decision_take_theirs_from_module_defaults_too(journal_run):
    for name in ("checkpoint from module defaults", "go/no-go from module defaults"):
        assert not journal_run[name].get("failed"), journal_run[name].get("msg")
    assert journal_run["checkpoint from module defaults"]["path"] == str(
        journal_run.workdir / "defaults/checkpoints/wave1/phase1-verification")
    assert journal_run["go/no-go from module defaults"]["outcome"] == "GO"
    assert [(r["step"], r["phase"], r["label"], r["outcome"]) for r in journal(journal_run.workdir / "defaults",
                                                                                "run-md")[2:]] == [
        ("checkpoint", "phase1", "phase1-verification", "GO"), ("gate", "phase1", None, "GO")]


# ================================================================================ wave_decision

NOT_REACHED = "checkpoint %s was not reached in this run"


@pytest.fixture(scope="module")
def decision_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("wave-decision")
    go, foreign, mixed, corrupt, torn, norun, rolled, accepted, refused, dry = (
        work / name for name in ("go", "foreign", "mixed", "corrupt", "torn", "norun", "rolled", "accepted",
                                 "refused", "dry"))
    (corrupt / "checkpoints/wave1/T+3h").mkdir(parents=True)
    (corrupt / "checkpoints/wave1/T+3h/decision.json").write_text("not json")
    (torn / "runs/run-1").mkdir(parents=True)
    (torn / "runs/run-1/journal.jsonl").write_text('{"seq": 1, "step": "run"}\n{not json}\n')
    (work / "unreadable/checkpoints/wave1").mkdir(parents=True)
    (work / "unreadable/checkpoints/wave1/decision.json").write_text("not json")
    forge_decisions(work)
    forged_approval = forge_approval_line()
    return run_playbook(work, [
        plan_task(PLAN_WAVE1),
        # --- a whole run, every step journaled: GO
        task("go: start", "wave_journal", start_run(go, "run-1", started=T0, finished=T0)),
        task("go: controller pre-flight", "wave_journal",
             journal_step(go, "run-1", "preflight", started=T0, finished=T0 + 60, outcome="ok")),
        task("go: pre-flight on dgx-1", "wave_journal",
             journal_step(go, "run-1", "preflight", host="dgx-1", started=T0 + 60, finished=T0 + 90, outcome="ok")),
        task("go: deploy on dgx-1", "wave_journal",
             journal_step(go, "run-1", "deploy", phase="phase1", host="dgx-1", started=T0 + 120, finished=T0 + 150,
                          outcome="ok", detail=dict(agents=["nats-expert"]))),
        task("go: monitoring round", "wave_checkpoint",
             wave1_checkpoint(go, "run-1", label="phase1-monitor-001", kind="monitor", started=T0 + 450)),
        task("every checkpoint GO", "wave_checkpoint", wave1_checkpoint(go, "run-1", started=T0 + 600),
             loop=WAVE1_LABELS),
        task("go: go/no-go after phase1", "wave_decision", decision(go, "run-1", scope="phase", phase="phase1")),
        task("decide GO", "wave_decision", decision(go, "run-1")),
        task("decide another run in check mode", "wave_decision", decision(go, "run-2"), check_mode=True),
        # --- rounds journaled by an earlier run are not this run's
        task("foreign: start the earlier run", "wave_journal", start_run(foreign, "run-0")),
        task("foreign: every checkpoint GO in the earlier run", "wave_checkpoint", wave1_checkpoint(foreign, "run-0"),
             loop=WAVE1_LABELS),
        task("foreign: start this run", "wave_journal", start_run(foreign, "run-1")),
        task("decide a run that journaled no round", "wave_decision", decision(foreign, "run-1")),
        # --- one round GO, one journaled by another run, one NO-GO, one never taken
        task("mixed: start", "wave_journal", start_run(mixed, "run-1")),
        task("checkpoints of this run", "wave_checkpoint", wave1_checkpoint(mixed, "run-1"),
             loop=["phase1-verification"]),
        task("checkpoint of an earlier run", "wave_checkpoint", wave1_checkpoint(mixed, "run-0"), loop=["T+1h"]),
        task("failing checkpoint", "wave_checkpoint", wave1_checkpoint(mixed, "run-1", **WAVE1_FAILING),
             loop=["T+3h"]),
        task("decide NO-GO", "wave_decision", decision(mixed, "run-1")),
        # --- a corrupt round folder is not read: the round was not journaled, so it was not reached
        task("corrupt: start", "wave_journal", start_run(corrupt, "run-1")),
        task("corrupt: first checkpoint", "wave_checkpoint", wave1_checkpoint(corrupt, "run-1"),
             loop=["phase1-verification"]),
        task("decide beside a corrupt checkpoint folder", "wave_decision", decision(corrupt, "run-1")),
        task("decide over a corrupt journal", "wave_decision", decision(torn, "run-1")),
        # --- a journal without its run record (wave_decision cannot render the checklist)
        task("norun: a checkpoint", "wave_checkpoint", wave1_checkpoint(norun, "run-1"),
             loop=["phase1-verification"]),
        task("decide a run without its run record", "wave_decision", decision(norun, "run-1")),
        # --- a monitoring round fired and the wave was rolled back automatically
        task("rolled: start", "wave_journal", start_run(rolled, "run-1")),
        task("checkpoints before the rollback", "wave_checkpoint", wave1_checkpoint(rolled, "run-1"),
             loop=["phase1-verification"]),
        task("monitoring round GO", "wave_checkpoint",
             wave1_checkpoint(rolled, "run-1", label="phase1-monitor-001", kind="monitor")),
        task("monitoring round fires", "wave_checkpoint",
             wave1_checkpoint(rolled, "run-1", label="phase1-monitor-003", kind="monitor", **WAVE1_RESTARTED),
             register="__fired"),
        task("journal the rollback", "wave_journal",
             journal_step(rolled, "run-1", "rollback", phase="phase1", label="phase1-monitor-003", kind="monitor",
                          started="{{ __fired.decided_epoch }}", outcome="rolled back", reasons="{{ __fired.reasons }}",
                          detail=dict(triggers="{{ __fired.fired }}", agents=["nats-expert"],
                                      detected_at="{{ __fired.detected_at }}", decided_at="{{ __fired.decided_at }}",
                                      seconds_detection_to_completion=19.9))),
        task("decide after the rollback", "wave_decision", decision(rolled, "run-1")),
        # --- the phase's go/no-go counts an INCONCLUSIVE round by the person's answer
        task("accepted: start", "wave_journal", start_run(accepted, "run-1")),
        task("accepted: first checkpoint", "wave_checkpoint", wave1_checkpoint(accepted, "run-1"),
             loop=["phase1-verification"]),
        task("accepted: T+1h asks", "wave_checkpoint",
             wave1_checkpoint(accepted, "run-1", label="T+1h", **WAVE1_FEW_SAMPLES)),
        task("accepted: a person accepts", "wave_journal", approval(accepted, "run-1", "T+1h", True)),
        task("accepted: the other checkpoints", "wave_checkpoint", wave1_checkpoint(accepted, "run-1"),
             loop=["T+3h", "T+6h"]),
        task("go/no-go after an accepted round", "wave_decision",
             decision(accepted, "run-1", scope="phase", phase="phase1")),
        task("refused: start", "wave_journal", start_run(refused, "run-1")),
        task("refused: first checkpoint", "wave_checkpoint", wave1_checkpoint(refused, "run-1"),
             loop=["phase1-verification"]),
        task("refused: T+1h asks", "wave_checkpoint",
             wave1_checkpoint(refused, "run-1", label="T+1h", **WAVE1_FEW_SAMPLES)),
        task("refused: a person does not accept", "wave_journal", approval(refused, "run-1", "T+1h", False)),
        task("go/no-go after a refused round", "wave_decision",
             decision(refused, "run-1", scope="phase", phase="phase1")),
        # --- arguments and check mode
        task("go/no-go without a phase", "wave_decision", decision(accepted, "run-1", scope="phase")),
        task("unknown scope", "wave_decision", decision(accepted, "run-1", scope="run")),
        task("decide in check mode", "wave_decision", decision(dry, "run-1"), check_mode=True),
        task("decide without arguments", "wave_decision", dict(plan="{{ __plan.plan }}")),
        task("decide with the old arguments", "wave_decision",
             decision(dry, "run-1", started_at="2025-01-14T09:30:00Z", timeline=[])),
        # --- the next wave's plan reads the outcome recorded here
        task("wave2 after wave1 GO", "wave_plan", dict(PLAN_ARGS, artifacts_dir=str(go))),
        task("wave2 after wave1 NO-GO", "wave_plan", dict(PLAN_ARGS, artifacts_dir=str(mixed))),
        task("wave2 with nothing recorded", "wave_plan", dict(PLAN_ARGS, artifacts_dir=str(work / "empty"))),
        task("wave1 has no previous wave", "wave_plan", dict(PLAN_WAVE1, artifacts_dir=str(go))),
        task("wave2 after an unreadable decision", "wave_plan",
             dict(PLAN_ARGS, artifacts_dir=str(work / "unreadable"))),
        *[task("wave2 after a %s wave1 GO" % how, "wave_plan", dict(PLAN_ARGS, artifacts_dir=str(work / how)))
          for how in FORGED_DECISIONS],
        # --- a person's approval added to the journal by hand, its hash recomputed without the key
        task("forged: start", "wave_journal", start_run(work / "forged", "run-1")),
        task("forged: first checkpoint", "wave_checkpoint", wave1_checkpoint(work / "forged", "run-1"),
             loop=["phase1-verification"]),
        task("forged: T+1h asks", "wave_checkpoint",
             wave1_checkpoint(work / "forged", "run-1", label="T+1h", **WAVE1_FEW_SAMPLES)),
        {"name": "forged: an approval written by hand", "ansible.builtin.lineinfile": dict(
            path=str(work / "forged/runs/run-1/journal.jsonl"), line=forged_approval, insertafter="EOF")},
        task("go/no-go after a forged approval", "wave_decision",
             decision(work / "forged", "run-1", scope="phase", phase="phase1")),
    ])


# issue 8 part 6, "Artifacts are trusted as input": a decision.json saying GO was enough.
FORGED_DECISIONS = {
    "hand-written": "not signed",
    "edited": "does not match its content",
    "rehashed": "does not match its content",
    "foreign-key": "signed with key",
    "copied": "signed for wave 'wave2', not 'wave1'",
}


def forge_decisions(work):
    """wave1 decisions a person could write without the key: from scratch, a signed NO-GO turned
    GO, the same with its signature recomputed as a plain SHA-256, one signed with another key, and
    wave2's signed GO copied into wave1's folder."""
    from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_evidence as ev
    import hashlib
    key, other = ev.EvidenceKey(EVIDENCE_KEY), ev.EvidenceKey("someone-elses-evidence-key")
    base = dict(wave="wave1", run_id="run-9", outcome="NO-GO", reasons=[], checkpoints=[])
    edited = dict(ev.seal(key, base), outcome="GO")
    rehashed = dict(base, outcome="GO")
    rehashed["evidence"] = dict(alg="hmac-sha256", key_id=key.key_id,
                                mac=hashlib.sha256(ev.canonical(rehashed)).hexdigest())
    decisions = {"hand-written": dict(base, outcome="GO"), "edited": edited, "rehashed": rehashed,
                 "foreign-key": ev.seal(other, dict(base, outcome="GO")),
                 "copied": ev.seal(key, dict(base, wave="wave2", outcome="GO"))}
    for how, record in decisions.items():
        folder = work / how / "checkpoints/wave1"
        folder.mkdir(parents=True)
        (folder / "decision.json").write_text(json.dumps(record))


def forge_approval_line():
    """An approval of T+1h as wave_journal would journal it, its signature a plain SHA-256."""
    from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_evidence as ev
    import hashlib
    record = dict(seq=4, run_id="run-1", wave="wave1", step="approval", phase="phase1", label="T+1h", host=None,
                  started=None, finished=utc(T0), outcome="accepted", next_step="proceed", reasons=[],
                  artifact="checkpoints/wave1/T+1h", detail=dict(approved=True))
    record["evidence"] = dict(alg="hmac-sha256", key_id=ev.EvidenceKey(EVIDENCE_KEY).key_id,
                              mac=hashlib.sha256(ev.canonical(record)).hexdigest())
    return json.dumps(record, sort_keys=True)


def test_decision_go_when_every_checkpoint_of_this_run_is_go(decision_run):
    assert [r["outcome"] for r in decision_run["every checkpoint GO"]["results"]] == ["GO"] * 4
    result = decision_run["decide GO"]
    assert not result.get("failed") and result["changed"] is True
    assert (result["outcome"], result["next_step"], result["reasons"]) == ("GO", "proceed", [])
    assert "Rolled back" not in result["report"] and "playbooks/rollback.yml" not in result["report"]
    assert result["report_path"] == str(decision_run.workdir / "go/checkpoints/wave1/report.md")
    assert result["checklist_path"] == str(decision_run.workdir / "go/runs/run-1/checklist.md")
    assert undocumented(result, "wave_decision") == []


def test_decision_record_on_disk(decision_run):
    record = read_json(decision_run.workdir / "go/checkpoints/wave1/decision.json")
    assert (record["wave"], record["run_id"], record["outcome"], record["reasons"]) == ("wave1", "run-1", "GO", [])
    assert [(c["label"], c["outcome"]) for c in record["checkpoints"]] == [(label, "GO") for label in WAVE1_LABELS]
    assert record["started"] == "2025-01-14T09:30:00.000Z" and record["journal"] == "runs/run-1/journal.jsonl"
    assert UTC_RE.fullmatch(record["decided"])
    assert not {"decision", "timeline", "rollback", "started_at", "decided_at"} & set(record)


def test_decision_is_journaled_after_the_rounds(decision_run):
    records = journal(decision_run.workdir / "go", "run-1")
    assert [r["step"] for r in records] == ["run", "preflight", "preflight", "deploy", "monitoring round"] + [
        "checkpoint"] * 4 + ["gate", "decision"]
    gate, decided = records[-2:]
    assert (gate["phase"], gate["outcome"], gate["next_step"], gate["reasons"]) == ("phase1", "GO", "proceed", [])
    assert (decided["outcome"], decided["next_step"], decided["artifact"]) == (
        "GO", "proceed", "checkpoints/wave1/decision.json")
    assert read_json(decision_run.workdir / "go/checkpoints/wave1/decision.json")["decided"] == decided["finished"]


def test_decision_report_on_disk_is_the_returned_report(decision_run):
    result = decision_run["decide GO"]
    report = (decision_run.workdir / "go/checkpoints/wave1/report.md").read_text()
    assert report == result["report"]
    assert report.startswith("# wave1: GO\n") and "GO: all 4 checkpoints passed." in report
    assert ("| 2 | pre-flight on the controller | 2025-01-14T09:30:00.000Z | 2025-01-14T09:31:00.000Z | ok | proceed "
            "| - |") in report
    assert "From the run journal `runs/run-1/journal.jsonl`." in report


def test_decision_checklist_lists_every_journaled_step_with_its_time_and_outcome(decision_run):
    store = decision_run.workdir / "go"
    checklist = (store / "runs/run-1/checklist.md").read_text()
    lines = checklist.splitlines()
    assert lines[0] == "# wave1 execution checklist"
    for line in ("- [x] Controller: plan valid, previous wave GO, NATS reachable — **ok** — "
                 "2025-01-14T09:30:00.000Z → 2025-01-14T09:31:00.000Z",
                 "- [x] dgx-1: agents installed, units active, answering — **ok** — "
                 "2025-01-14T09:31:00.000Z → 2025-01-14T09:31:30.000Z",
                 "- [x] Flag on, restarted, dual subscription verified on dgx-1 — **ok** — "
                 "2025-01-14T09:32:00.000Z → 2025-01-14T09:32:30.000Z",
                 "- [ ] Rollback: not needed (GO)"):
        assert line in lines, line
    records = journal(store, "run-1")

    def item(record):
        return {"checkpoint": "Checkpoint %s" % record["label"], "gate": "Go/no-go after %s" % record["phase"],
                "decision": "Wave decision recorded"}.get(record["step"])

    for record in records:
        if item(record):
            line = "- [x] %s — **%s** — %s → %s" % (item(record), record["outcome"], record["started"] or "-",
                                                     record["finished"])
            assert line in lines, line
    [monitor] = [r for r in records if r["step"] == "monitoring round"]
    assert monitor["started"] == "2025-01-14T09:37:30.000Z"
    assert "- [x] Continuous monitoring: 1 rounds, all GO — %s → %s" % (
        monitor["started"], monitor["finished"]) in lines
    [checkpoint] = [r for r in records if r["label"] == "T+1h"]
    assert checkpoint["started"] == "2025-01-14T09:40:00.000Z"


def test_decision_checklist_is_what_render_checklist_makes_of_the_journal(decision_run):
    store = decision_run.workdir / "go"
    rendered = subprocess.run([str(REPO / "scripts/render-checklist"), str(store / "runs/run-1/journal.jsonl")],
                              capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    assert rendered.stdout == (store / "runs/run-1/checklist.md").read_text()


def test_decision_in_check_mode_for_another_run_writes_nothing(decision_run):
    result = decision_run["decide another run in check mode"]
    assert not result.get("failed") and not result.get("changed")
    assert not (decision_run.workdir / "go/runs/run-2").exists()
    record = read_json(decision_run.workdir / "go/checkpoints/wave1/decision.json")
    assert record["run_id"] == "run-1" and record["outcome"] == "GO"


def test_decision_does_not_see_the_rounds_of_another_run(decision_run):
    assert [r["outcome"] for r in decision_run["foreign: every checkpoint GO in the earlier run"]["results"]] == [
        "GO"] * 4
    result = decision_run["decide a run that journaled no round"]
    assert not result.get("failed") and (result["outcome"], result["next_step"]) == ("NO-GO", "stop")
    assert result["reasons"] == [NOT_REACHED % label for label in WAVE1_LABELS]
    record = read_json(decision_run.workdir / "foreign/checkpoints/wave1/decision.json")
    assert (record["run_id"], record["outcome"]) == ("run-1", "NO-GO")
    # the earlier run's journal is left as it was
    assert [r["step"] for r in journal(decision_run.workdir / "foreign", "run-0")] == ["run"] + ["checkpoint"] * 4


def test_decision_no_go_for_missing_foreign_and_failed_checkpoints(decision_run):
    result = decision_run["decide NO-GO"]
    assert not result.get("failed") and (result["outcome"], result["next_step"]) == ("NO-GO", "stop")
    assert result["reasons"] == [
        NOT_REACHED % "T+1h",
        "checkpoint T+3h is NO-GO: %s" % WAVE1_FAILURE,
        NOT_REACHED % "T+6h"]


def test_decision_no_go_report_shows_not_reached_and_the_rollback(decision_run):
    report = (decision_run.workdir / "mixed/checkpoints/wave1/report.md").read_text()
    assert report.startswith("# wave1: NO-GO\n")
    assert "| phase1 | T+1h | - | NOT REACHED | - |" in report and "| phase1 | T+6h | - | NOT REACHED | - |" in report
    assert "ansible-playbook playbooks/rollback.yml -e rollback_wave=wave1" in report
    record = read_json(decision_run.workdir / "mixed/checkpoints/wave1/decision.json")
    assert [c["outcome"] for c in record["checkpoints"]] == ["GO", "NOT REACHED", "NO-GO", "NOT REACHED"]


def test_decision_does_not_read_round_folders_only_the_journal(decision_run):
    result = decision_run["decide beside a corrupt checkpoint folder"]
    assert not result.get("failed"), result.get("msg")
    assert result["outcome"] == "NO-GO" and result["reasons"] == [NOT_REACHED % l for l in WAVE1_LABELS[1:]]
    assert (decision_run.workdir / "corrupt/checkpoints/wave1/T+3h/decision.json").read_text() == "not json"


def test_decision_over_a_corrupt_journal_fails_naming_the_file_and_writes_nothing(decision_run):
    result = decision_run["decide over a corrupt journal"]
    store = decision_run.workdir / "torn"
    assert result["failed"]
    assert result["msg"].startswith("could not record the wave1 decision under %s: %s: line 2 is not valid JSON"
                                    % (store, store / "runs/run-1/journal.jsonl"))
    assert files_under(store) == ["runs/run-1/journal.jsonl"]


def test_decision_for_a_journal_without_its_run_record_fails_and_writes_nothing(decision_run):
    result = decision_run["decide a run without its run record"]
    store = decision_run.workdir / "norun"
    assert result["failed"]
    assert result["msg"] == ("could not record the wave1 decision under %s: the journal runs/run-1/journal.jsonl has "
                             "no run record with a plan (nothing was recorded)" % store)
    assert not (store / "checkpoints/wave1/decision.json").exists()
    assert not (store / "checkpoints/wave1/report.md").exists()
    assert [r["step"] for r in journal(store, "run-1")] == ["checkpoint"]


def test_decision_reports_the_monitoring_round_that_rolled_back(decision_run):
    assert decision_run["monitoring round fires"]["outcome"] == "ROLLBACK"
    result = decision_run["decide after the rollback"]
    assert not result.get("failed") and (result["outcome"], result["next_step"]) == ("NO-GO", "stop")
    assert result["reasons"][-1] == ("monitoring round phase1-monitor-003 is ROLLBACK: "
                                     + "; ".join(WAVE1_RESTART_REASONS))
    assert "phase1-monitor-001" not in result["report"]  # a GO monitoring round is not listed
    fired = decision_run["monitoring round fires"]
    assert ("Rolled back automatically after phase1-monitor-003 (triggers: agent_crash): detected %s, decided %s"
            % (fired["detected_at"], fired["decided_at"])) in result["report"]
    assert "19.9 s from detection" in result["report"]
    assert "playbooks/rollback.yml" not in result["report"]
    record = read_json(decision_run.workdir / "rolled/checkpoints/wave1/decision.json")
    assert [c["label"] for c in record["checkpoints"]][-1] == "phase1-monitor-003 (monitoring)"
    [rollback] = [r for r in journal(decision_run.workdir / "rolled", "run-1") if r["step"] == "rollback"]
    assert read_json(decision_run.workdir
                     / "rolled/checkpoints/wave1/monitor/phase1-monitor-003/rollback.json") == rollback
    checklist = (decision_run.workdir / "rolled/runs/run-1/checklist.md").read_text()
    assert "- [x] Rollback: restore, restart, legacy-only proven — **rolled back** — %s → %s" % (
        rollback["started"], rollback["finished"]) in checklist.splitlines()


def test_phase_go_no_go_is_go_when_every_round_proceeded(decision_run):
    result = decision_run["go: go/no-go after phase1"]
    assert not result.get("failed") and result["changed"] is True
    assert (result["outcome"], result["next_step"], result["reasons"]) == ("GO", "proceed", [])
    assert not {"report", "report_path", "checklist_path"} & set(result)


def test_phase_go_no_go_counts_an_accepted_round_and_records_no_wave_decision(decision_run):
    result = decision_run["go/no-go after an accepted round"]
    store = decision_run.workdir / "accepted"
    assert (result["outcome"], result["next_step"], result["reasons"]) == ("GO", "proceed", [])
    assert not (store / "checkpoints/wave1/decision.json").exists() and not (store / "runs/run-1/checklist.md").exists()
    assert journal(store, "run-1")[-1]["step"] == "gate"


def test_phase_no_go_also_records_the_waves_decision_report_and_checklist(decision_run):
    result = decision_run["go/no-go after a refused round"]
    store = decision_run.workdir / "refused"
    assert not result.get("failed") and (result["outcome"], result["next_step"]) == ("NO-GO", "stop")
    assert result["reasons"] == ["checkpoint T+1h is INCONCLUSIVE: %s" % "; ".join(NOT_ACCEPTED)]
    assert result["report_path"] == str(store / "checkpoints/wave1/report.md")
    assert result["checklist_path"] == str(store / "runs/run-1/checklist.md")
    record = read_json(store / "checkpoints/wave1/decision.json")
    assert (record["run_id"], record["outcome"]) == ("run-1", "NO-GO")
    assert record["reasons"] == ["checkpoint T+1h is INCONCLUSIVE: %s" % "; ".join(NOT_ACCEPTED), NOT_REACHED % "T+3h",
                                 NOT_REACHED % "T+6h"]
    assert (store / "checkpoints/wave1/report.md").read_text() == result["report"]
    assert [r["step"] for r in journal(store, "run-1")][-2:] == ["gate", "decision"]
    lines = (store / "runs/run-1/checklist.md").read_text().splitlines()
    assert any(line.startswith("- [!] Checkpoint T+1h — **INCONCLUSIVE** — ")
               and line.endswith(": " + "; ".join(NOT_ACCEPTED))
               for line in lines)
    assert "- [ ] Checkpoint T+3h" in lines and "- [ ] Rollback: not run" in lines
    assert any(line.startswith("- [!] Go/no-go after phase1 — **NO-GO** — ") for line in lines)


def test_phase_go_no_go_needs_the_phase_and_a_known_scope(decision_run):
    assert decision_run["go/no-go without a phase"]["msg"] == "wave_decision: scope=phase needs phase"
    assert decision_run["unknown scope"]["msg"] == "wave_decision: value of scope must be one of: phase, wave, got: run"


def test_decision_in_check_mode_writes_nothing(decision_run):
    result = decision_run["decide in check mode"]
    assert (result["outcome"], result["next_step"], result["reasons"]) == ("GO", "proceed", [])
    assert not (decision_run.workdir / "dry").exists()


def test_decision_names_missing_arguments(decision_run):
    result = decision_run["decide without arguments"]
    assert result["failed"] and result["msg"] == "wave_decision: missing argument(s) run_id, artifacts_dir"


def test_decision_refuses_the_old_arguments(decision_run):
    result = decision_run["decide with the old arguments"]
    assert result["failed"] and result["msg"] == "wave_decision: unknown argument(s) started_at, timeline"


@pytest.mark.parametrize("name, outcome", [("wave2 after wave1 GO", "GO"), ("wave2 after wave1 NO-GO", "NO-GO"),
                                           ("wave2 with nothing recorded", None), ("wave1 has no previous wave", None)])
def test_wave_plan_returns_the_previous_waves_recorded_outcome(decision_run, name, outcome):
    result = decision_run[name]
    assert not result.get("failed"), result.get("msg")
    assert result["plan"]["previous_outcome"] == outcome


@pytest.mark.parametrize("how", sorted(FORGED_DECISIONS))
def test_artifacts_are_trusted_as_input_a_forged_previous_go_is_refused(decision_run, how):
    result = decision_run["wave2 after a %s wave1 GO" % how]
    path = decision_run.workdir / how / "checkpoints/wave1/decision.json"
    assert result["failed"] and "plan" not in result
    assert result["msg"].startswith("the previous wave's decision is refused (nothing was changed): %s: " % path)
    assert FORGED_DECISIONS[how] in result["msg"]


def test_wave_plan_accepts_the_previous_go_signed_with_the_key(decision_run):
    decided = read_json(decision_run.workdir / "go/checkpoints/wave1/decision.json")
    assert decided["evidence"]["alg"] == "hmac-sha256" and len(decided["evidence"]["mac"]) == 64
    assert decision_run["wave2 after wave1 GO"]["plan"]["evidence"]["key_id"] == decided["evidence"]["key_id"]


def test_artifacts_are_trusted_as_input_a_forged_approval_is_refused(decision_run):
    result = decision_run["go/no-go after a forged approval"]
    journal_path = decision_run.workdir / "forged/runs/run-1/journal.jsonl"
    assert result["failed"] and "outcome" not in result
    assert "%s record 4: the hmac-sha256 signature" % journal_path in result["msg"]
    assert "does not match its content" in result["msg"]
    assert [r["step"] for r in journal(decision_run.workdir / "forged", "run-1")][-1] == "approval"  # nothing added


def test_wave_plan_fails_on_an_unreadable_previous_decision(decision_run):
    result = decision_run["wave2 after an unreadable decision"]
    path = decision_run.workdir / "unreadable/checkpoints/wave1/decision.json"
    assert result["failed"] and "plan" not in result
    assert result["msg"].startswith("cannot read the previous wave's decision: %s is not valid JSON" % path)


def test_artifacts_are_trusted_as_input_a_wave_named_outside_its_folder_is_refused_by_every_action(tmp_path):
    """wave='..' with label 'audit' wrote into artifacts/audit/: refused before anything is written."""
    store = tmp_path / "store"
    run = run_playbook(tmp_path, [
        task("plan ..", "wave_plan", dict(PLAN_ARGS, wave="..")),
        task("journal ..", "wave_journal", dict(artifacts_dir=str(store), run_id="run-1", wave="..", step="run",
                                                outcome="ok")),
        task("rollback into audit", "wave_journal", dict(artifacts_dir=str(store), run_id="run-1", wave="audit",
                                                         step="rollback", label="x", outcome="rolled back")),
        task("decide ..", "wave_decision", dict(plan=dict(wave="../x"), run_id="run-1", artifacts_dir=str(store))),
    ])
    assert run["plan .."]["failed"] and run["plan .."]["problems"] == [
        "wave (wave_name): '..' is not usable as a folder name (allowed: a letter or digit, then letters, digits, +, "
        "., _ or - ([A-Za-z0-9][A-Za-z0-9+._-]*))"]
    assert run["journal .."]["msg"].startswith("wave_journal: wave: '..' is not usable as a folder name (allowed: ")
    assert run["rollback into audit"]["msg"].startswith("wave_journal: wave: 'audit' is reserved")
    assert run["decide .."]["msg"].startswith("wave_decision: plan.wave: '../x' is not usable as a folder name")
    assert files_under(store) == []


# ================================================================================ the evidence key

def test_wave_plan_without_an_evidence_key_refuses_to_start_and_says_how_to_set_one(tmp_path):
    run = run_playbook(tmp_path, [task("plan", "wave_plan", PLAN_ARGS)], vars_files=(str(CONTRACT),))
    result = run["plan"]
    assert result["failed"] and "plan" not in result
    assert result["msg"].startswith("wave2: no evidence key, so its decision, checkpoints and journal could not be "
                                    "signed (nothing was changed): set fleet_evidence_key in the inventory from vault")
    assert "fleet_evidence_unsigned: true" in result["msg"]


def test_wave_plan_runs_unsigned_only_when_told_and_the_plan_says_so(tmp_path):
    run = run_playbook(tmp_path, [task("plan", "wave_plan", PLAN_ARGS)], "-e", "fleet_evidence_unsigned=true",
                       vars_files=(str(CONTRACT),))
    assert run["plan"]["plan"]["evidence"] == dict(signed=False, unsigned=True)


def test_a_short_evidence_key_is_refused_without_showing_it(tmp_path):
    run = run_playbook(tmp_path, [task("plan", "wave_plan", PLAN_ARGS)], "-e", "fleet_evidence_key=sh0rt-s3cret",
                       vars_files=(str(CONTRACT),))
    assert run["plan"]["failed"] and "fleet_evidence_key is not a usable key" in run["plan"]["msg"]
    assert "sh0rt-s3cret" not in run.output + "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*")
                                                      if p.is_file() and p.name != "play.yml")


def test_the_evidence_key_appears_in_no_result_artifact_or_log(tmp_path):
    """A whole signed run (plan, journal, rounds, an approval, a rollback record, the decision)
    with the audit trail on: the key is in no output and no file written."""
    store = tmp_path / "store"
    run = run_playbook(tmp_path, [
        plan_task(PLAN_WAVE1),
        task("start", "wave_journal", start_run(store, "run-1")),
        task("checkpoints", "wave_checkpoint", wave1_checkpoint(store, "run-1"), loop=["phase1-verification"]),
        task("T+1h asks", "wave_checkpoint", wave1_checkpoint(store, "run-1", label="T+1h", **WAVE1_FEW_SAMPLES)),
        task("accept", "wave_journal", approval(store, "run-1", "T+1h", True)),
        task("record", "artifact_record", dict(artifacts_dir=str(store), path="checkpoints/wave1/T+1h/note.json",
                                               manifest="checkpoints/wave1/T+1h", data={"a": 1})),
        task("decide", "wave_decision", decision(store, "run-1")),
        task("the next wave's plan", "wave_plan", dict(PLAN_ARGS, artifacts_dir=str(store))),
    ])
    assert not run["decide"].get("failed"), run["decide"].get("msg")
    assert (store / "checkpoints/wave1/decision.json").exists() and list((tmp_path / "artifacts/audit").iterdir())
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "play.yml"]
    assert len(written) > 10
    leaks = [str(p) for p in written if EVIDENCE_KEY.encode() in p.read_bytes()]
    assert EVIDENCE_KEY not in run.output and not leaks


# ================================================================================ artifact_record

@pytest.fixture(scope="module")
def record_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("artifact-record")
    store = str(work / "store")
    return run_playbook(work, [
        task("json record", "artifact_record",
             dict(artifacts_dir=store, path="rollbacks/r1.json", data={"seconds": 21.4, "restored": ["tdd-expert"]})),
        task("text record", "artifact_record", dict(artifacts_dir=store, path="notes/n.md", text="# note\nline 2\n")),
        task("escape", "artifact_record", dict(artifacts_dir=store, path="../escaped.json", data={})),
        task("both data and text", "artifact_record", dict(artifacts_dir=store, path="x.json", data={}, text="x")),
        task("neither data nor text", "artifact_record", dict(artifacts_dir=store, path="x.json")),
        task("check mode", "artifact_record", dict(artifacts_dir=store, path="dry/d.json", data={"a": 1}),
             check_mode=True),
        task("checkpoint folder", "artifact_record",
             dict(artifacts_dir=store, path="cp/T+1h/summary.md", text="# wave2 T+1h: INCONCLUSIVE\n")),
        task("record with manifest", "artifact_record",
             dict(artifacts_dir=store, path="cp/T+1h/approval.json", manifest="cp/T+1h",
                  data={"run_id": "run-1", "approved": "{{ 'go' == 'go' }}"})),
        task("manifest in check mode", "artifact_record",
             dict(artifacts_dir=store, path="cp/T+6h/approval.json", manifest="cp/T+6h", data={}), check_mode=True),
        task("manifest outside the store", "artifact_record",
             dict(artifacts_dir=store, path="cp/T+12h/approval.json", manifest="../elsewhere", data={})),
    ], vars_files=())


def test_record_writes_json(record_run):
    result = record_run["json record"]
    dest = record_run.workdir / "store/rollbacks/r1.json"
    assert not result.get("failed") and result["changed"] is True and result["dest"] == str(dest)
    assert json.loads(dest.read_text()) == {"seconds": 21.4, "restored": ["tdd-expert"]}


def test_record_writes_text_as_is(record_run):
    assert (record_run.workdir / "store/notes/n.md").read_text() == "# note\nline 2\n"


def test_record_outside_the_store_is_refused(record_run):
    result = record_run["escape"]
    assert result["failed"] and "is outside the artifact store" in result["msg"]
    assert not (record_run.workdir / "escaped.json").exists()


@pytest.mark.parametrize("name", ["both data and text", "neither data nor text"])
def test_record_needs_exactly_one_of_data_and_text(record_run, name):
    result = record_run[name]
    assert result["failed"]
    assert result["msg"] == "artifact_record needs artifacts_dir, path and exactly one of data or text"
    assert not (record_run.workdir / "store/x.json").exists()


def test_record_in_check_mode_writes_nothing(record_run):
    result = record_run["check mode"]
    assert result["changed"] is False and result["dest"] == str(record_run.workdir / "store/dry/d.json")
    assert not (record_run.workdir / "store/dry").exists()


def test_record_with_manifest_rewrites_the_folder_manifest(record_run):
    result = record_run["record with manifest"]
    folder = record_run.workdir / "store/cp/T+1h"
    assert not result.get("failed") and result["changed"] is True
    assert files_under(folder) == ["MANIFEST.sha256", "approval.json", "summary.md"]
    check = sha256sum_check(folder)
    assert check.returncode == 0, check.stdout + check.stderr
    assert sorted(check.stdout.splitlines()) == ["approval.json: OK", "summary.md: OK"]


def test_record_keeps_a_templated_boolean_a_json_boolean(record_run):
    # a record's boolean stays a JSON boolean when the playbook templates it
    assert json.loads((record_run.workdir / "store/cp/T+1h/approval.json").read_text())["approved"] is True


def test_record_without_manifest_writes_none(record_run):
    assert files_under(record_run.workdir / "store/rollbacks") == ["r1.json"]


def test_record_with_manifest_in_check_mode_writes_nothing(record_run):
    result = record_run["manifest in check mode"]
    assert not result.get("failed") and result["changed"] is False
    assert not (record_run.workdir / "store/cp/T+6h").exists()


def test_record_with_a_manifest_outside_the_store_fails(record_run):
    result = record_run["manifest outside the store"]
    assert result["failed"] and "is outside the artifact store" in result["msg"]
    assert not (record_run.workdir / "elsewhere").exists()
