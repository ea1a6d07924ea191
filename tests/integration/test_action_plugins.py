"""The controller-side action plugins (wave_plan, wave_checkpoint, wave_decision, artifact_record)
through real ansible-playbook runs on localhost, with this repository's ansible.cfg. Each playbook
runs once per module (they take a few seconds); the tests read its per-task results (the json
stdout callback) and the artifacts it wrote."""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = pathlib.Path(__file__).resolve().parents[2]
CONTRACT = REPO / "inventory/production/group_vars/all/00-contract.yml"
PLAYBOOK = pathlib.Path(sys.executable).parent / "ansible-playbook"

PLAN_ARGS = dict(wave="wave2", agents="{{ fleet_agents }}", waves="{{ fleet_waves }}", schedule="{{ wave_schedule }}",
                 subject_legacy="{{ fleet_subject_legacy }}", subject_unified="{{ fleet_subject_unified }}",
                 stagger="{{ wave_stagger_seconds }}", verify_window="{{ wave_verify_window_seconds }}",
                 monitor_interval="{{ wave_monitor_interval_seconds }}")


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


def run_playbook(workdir, tasks, *args, vars_files=(str(CONTRACT),)):
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
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=120)
    return Run(proc, workdir)


def task(name, module, args, **keywords):
    """A task calling the collection's `module` by its fully qualified name."""
    return dict(name=name, **{"fleetwave.rollout." + module: args}, ignore_errors=True, **keywords)


def files_under(path):
    path = pathlib.Path(path)
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) if path.exists() else []


def sha256sum_check(folder):
    return subprocess.run(["sha256sum", "-c", "--strict", "MANIFEST.sha256"], cwd=folder, capture_output=True,
                          text=True)


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
    return run_playbook(work, [
        task("valid plan", "wave_plan", PLAN_ARGS),
        task("valid plan in check mode", "wave_plan", PLAN_ARGS, check_mode=True),
        task("bad inventory", "wave_plan", bad),
        task("undefined wave", "wave_plan", dict(PLAN_ARGS, wave="wave7")),
        task("missing and unknown arguments", "wave_plan",
             dict(wave="wave2", agents="{{ fleet_agents }}", colour="red")),
        task("plan with criteria", "wave_plan", dict(PLAN_ARGS, criteria_file=str(REPO / "criteria/default.yml"))),
        task("malformed criteria file", "wave_plan", dict(PLAN_ARGS, criteria_file=str(work / "broken.yml"))),
        task("criteria file with a syntax error", "wave_plan",
             dict(PLAN_ARGS, criteria_file=str(work / "bad-syntax.yml"))),
        task("missing criteria file", "wave_plan", dict(PLAN_ARGS, criteria_file=str(work / "absent.yml"))),
        task("last wave plan", "wave_plan", dict(PLAN_ARGS, wave="wave3")),
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


def test_wave_plan_works_in_check_mode(plan_run):
    assert plan_run["valid plan in check mode"]["plan"] == plan_run["valid plan"]["plan"]


def test_wave_plan_lists_every_problem_with_its_variable_and_changes_nothing(plan_run):
    result = plan_run["bad inventory"]
    assert result["failed"] and "plan" not in result
    assert result["problems"] == [
        "fleet_subject_legacy: 'agent.*' does not make a valid NATS subject (tokens of letters, digits, - and _)",
        "wave_stagger_seconds: must be a number of seconds >= 0, got -1",
        "fleet_waves.wave2.phases[0].agents: unknown agent 'netwrk-expert' (known: git-expert, graph-expert, "
        "location-expert, nats-expert, network-expert, tdd-expert)",
        "wave_schedule.wave2: phase2 not a phase of wave2"]
    assert result["msg"] == ("the inventory does not describe a valid wave2 (nothing was changed):\n  - "
                             + "\n  - ".join(result["problems"]))


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


def test_wave_plan_refuses_a_malformed_criteria_file_listing_every_problem(plan_run):
    result = plan_run["malformed criteria file"]
    path = plan_run.workdir / "broken.yml"
    assert result["failed"] and "plan" not in result
    assert result["problems"] == [
        "%s: primary[0].threshold: '99.9' is not a number" % path,
        "%s: secondary[2].colour: unknown key 'colour' (allowed: name, metric, comparator, threshold, unit, scope, "
        "description)" % path]
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


def fake_info(hosts, flipped, control, uptime, cpu=10.0, changed=None):
    """{host: agent_host_info result}; changed: {(agent, host): {unit field: value}}."""
    info = {}
    for host in hosts:
        units = {}
        for agent in list(flipped) + list(control):
            units[agent] = fake_unit(cpu=cpu)
            units[agent].update((changed or {}).get((agent, host), {}))
        info[host] = dict(units=units, load=[0.8, 0.5, 0.4], ncpu=8, load_per_cpu=0.1, sampled_at_epoch=1.7e9 + uptime,
                          sampled_at_uptime=uptime)
    return info


def fake_probe(hosts, flipped, control, changed=None):
    """A nats_probe result; changed: {(agent, host): {instance field: value}}."""
    agents, targets = [], []
    for agent in list(flipped) + list(control):
        on = agent in flipped
        instances = []
        for host in hosts:
            entry = dict(host=host, answered=True, sent=600, replies=600, delivery=1.0, error_rate=0.0,
                         latency_ms=dict(p50=0.55, p90=0.6, p99=0.68, max=0.69, count=600), samples_ms=SAMPLES,
                         dual_publish_success=1.0 if on else None, unified_share=0.5 if on else 0.0,
                         publish_time_ms=dict(p50=0.2, p99=0.8, max=1.0, count=200))
            entry.update((changed or {}).get((agent, host), {}))
            instances.append(entry)
            for via in ("legacy", "unified"):
                answers = on or via == "legacy"
                targets.append(dict(agent=agent, host=host, via=via, verb="ping", expected=answers, sent=300,
                                    replies=300 if answers else 0, no_responders=0 if answers else 300))
        agents.append(dict(name=agent, unified_enabled=on, instances=instances))
    return dict(targets=targets, agents=agents, totals={}, changed=False, failed=False)


HEALTHY = dict(
    wave="wave2", hosts=HOSTS, flipped=["network-expert"], control=["graph-expert"], reference=["graph-expert"],
    reference_kind="control", criteria=PLAN_CRITERIA, criteria_file=str(CRITERIA_FILE),
    baseline=fake_info(HOSTS, ["network-expert"], ["graph-expert"], uptime=1000.0),
    info=fake_info(HOSTS, ["network-expert"], ["graph-expert"], uptime=1600.0, cpu=16.0),
    probe=fake_probe(HOSTS, ["network-expert"], ["graph-expert"]),
)
# dual publishing below its primary limit on one instance: NO-GO, no trigger.
LOW_DUAL = fake_probe(HOSTS, ["network-expert"], ["graph-expert"],
                      changed={("network-expert", "dgx-2"): dict(dual_publish_success=0.97)})
LOW_DUAL_FAILURE = ("primary dual_publish_success failed on network-expert@dgx-2: dual_publish_success_pct 97 "
                    "is not > 99 %")
# the flipped agent restarted on dgx-2: agent_crash fires.
RESTARTED = fake_info(HOSTS, ["network-expert"], ["graph-expert"], uptime=1600.0, cpu=16.0,
                      changed={("network-expert", "dgx-2"): dict(n_restarts=1, active_seconds=30.0, pid=5151)})
# the control agent answers on its unified subject: a health check fails, the gate alone would say GO.
CONTROL_ON_UNIFIED = fake_probe(HOSTS, ["network-expert"], ["graph-expert"])
for _t in CONTROL_ON_UNIFIED["targets"]:
    if _t["agent"] == "graph-expert" and _t["via"] == "unified" and _t["host"] == "dgx-1":
        _t.update(replies=300, no_responders=0)
ARTIFACTS = ["MANIFEST.sha256", "comparison.json", "decision.json", "measurements.json", "observations.json",
             "summary.md"]


def checkpoint(artifacts, label, run_id, **changes):
    return dict(HEALTHY, artifacts_dir=str(artifacts), label=label, run_id=run_id, **changes)


# an unknown top-level key, a threshold that is a string, an on_trigger that is not a choice
BROKEN_CRITERIA = ("{{ __plan.plan.criteria | combine({'colour': 'red', 'on_trigger': 'explode', 'primary': "
                   "__plan.plan.criteria.primary[:1]"
                   " + [__plan.plan.criteria.primary[1] | combine({'threshold': 'low'})]"
                   " + __plan.plan.criteria.primary[2:]}) }}")


@pytest.fixture(scope="module")
def checkpoint_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("wave-checkpoint")
    store, dry, blocked, corrupt = work / "store", work / "dry", work / "blocked", work / "corrupt"
    blocked.write_text("a file where the artifact store should be")
    (corrupt / "checkpoints/wave2/T+1h").mkdir(parents=True)
    (corrupt / "checkpoints/wave2/T+1h/decision.json").write_text("{truncated")
    return run_playbook(work, [
        dict(name="plan", **{"fleetwave.rollout.wave_plan": dict(PLAN_ARGS, criteria_file=str(CRITERIA_FILE))}, register="__plan"),
        task("first run GO", "wave_checkpoint", checkpoint(store, "T+1h", "run-1")),
        task("second run NO-GO", "wave_checkpoint", checkpoint(store, "T+1h", "run-2", probe=LOW_DUAL)),
        task("second run again", "wave_checkpoint", checkpoint(store, "T+1h", "run-2", probe=LOW_DUAL)),
        task("other label", "wave_checkpoint", checkpoint(store, "T+6h", "run-2")),
        task("restart rolls back", "wave_checkpoint", checkpoint(store, "T+12h", "run-2", info=RESTARTED),
             register="__restart"),
        # what the playbooks branch on
        dict(name="registered action", set_fact=dict(registered_action="{{ __restart.gate_action }}")),
        task("health failure", "wave_checkpoint", checkpoint(store, "T+24h", "run-2", probe=CONTROL_ON_UNIFIED)),
        task("probe failed", "wave_checkpoint",
             checkpoint(store, "phase1-T+1h", "run-2",
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
             {k: v for k, v in checkpoint(store, "T+1h", "run-1").items() if k not in ("info", "control")}),
        task("store not writable", "wave_checkpoint", checkpoint(blocked, "T+1h", "run-1")),
        task("corrupt previous checkpoint", "wave_checkpoint", checkpoint(corrupt, "T+1h", "run-1")),
    ])


def read_json(path):
    return json.loads(pathlib.Path(path).read_text())


def test_checkpoint_result(checkpoint_run):
    result = checkpoint_run["first run GO"]
    assert not result.get("failed") and result["changed"] is True
    assert (result["decision"], result["failures"], result["fired"]) == ("GO", [], [])
    assert read_json(checkpoint_run.workdir / "store/checkpoints/wave2/history/run-1/T+1h/decision.json")[
        "action"] == "proceed"
    assert result["folder"] == "checkpoints/wave2/T+1h"
    assert result["path"] == str(checkpoint_run.workdir / "store/checkpoints/wave2/T+1h")
    assert sorted(result["measured"]) == ["network-expert@dgx-1", "network-expert@dgx-2"]
    assert result["measured"]["network-expert@dgx-1"]["uptime_pct"] == 100.0
    assert result["measured"]["network-expert@dgx-2"]["dual_publish_success_pct"] == 100.0
    assert result["wave_figures"]["system_load"] == 0.1 and result["wave_figures"]["cpu_overhead_pct"] == 0.0
    assert result["decided_epoch"] >= result["detected_epoch"] and result["detected_at"].endswith("+00:00")


def test_checkpoint_writes_its_artifacts(checkpoint_run):
    folder = checkpoint_run.workdir / "store/checkpoints/wave2/T+6h"
    assert checkpoint_run["other label"]["path"] == str(folder)
    assert files_under(folder) == ARTIFACTS


def test_checkpoint_observations_are_the_raw_inputs(checkpoint_run):
    observations = read_json(checkpoint_run.workdir / "store/checkpoints/wave2/T+6h/observations.json")
    probe = {k: v for k, v in HEALTHY["probe"].items() if k not in ("changed", "failed")}
    assert observations == dict(hosts=HEALTHY["info"], baseline=HEALTHY["baseline"], probe=probe, probe_error=None)


def test_checkpoint_measurements_and_comparison(checkpoint_run):
    folder = checkpoint_run.workdir / "store/checkpoints/wave2/T+6h"
    measurements = read_json(folder / "measurements.json")
    assert sorted(measurements["per_agent"]) == ["network-expert@dgx-1", "network-expert@dgx-2"]
    assert measurements["samples"] == dict(test=dict(latency_ms=60), control=dict(latency_ms=60))
    comparison = read_json(folder / "comparison.json")
    assert (comparison["test"], comparison["reference"], comparison["reference_kind"]) == (
        ["network-expert"], ["graph-expert"], "control")
    [latency] = [c for c in comparison["comparisons"] if c["metric"] == "latency_ms"]
    assert (latency["n_test"], latency["n_control"], latency["verdict"]) == (60, 60, "no difference")


def test_checkpoint_decision_record(checkpoint_run):
    decision = read_json(checkpoint_run.workdir / "store/checkpoints/wave2/T+6h/decision.json")
    assert {k: decision[k] for k in ("wave", "label", "kind", "run_id", "decision", "action", "failures")} == dict(
        wave="wave2", label="T+6h", kind="checkpoint", run_id="run-2", decision="GO", action="proceed", failures=[])
    assert decision["criteria_file"] == str(CRITERIA_FILE) and decision["reference_kind"] == "control"
    primary = [r for r in decision["criteria"] if r["kind"] == "primary"]
    assert len(primary) == 7 * 2 and all(r["passed"] and r["measured"] is not None for r in primary)
    assert {r["name"] for r in decision["criteria"] if r["kind"] == "secondary"} == {
        c["name"] for c in CRITERIA["secondary"]}
    assert len(decision["health"]) == 15 and all(c["ok"] for c in decision["health"])
    assert len(decision["taken_at"]) == len("2025-01-14T09:30:00Z") and decision["taken_at"].endswith("Z")


def test_checkpoint_summary(checkpoint_run):
    summary = (checkpoint_run.workdir / "store/checkpoints/wave2/T+1h/summary.md").read_text()
    assert summary.startswith("# wave2 T+1h: NO-GO\n")
    assert "- %s" % LOW_DUAL_FAILURE in summary
    assert "| primary | dual_publish_success | network-expert@dgx-2 | 97 % | > 99 | **FAIL** |" in summary
    assert "## Test vs control" in summary


def test_checkpoint_manifest_passes_sha256sum(checkpoint_run):
    folder = checkpoint_run.workdir / "store/checkpoints/wave2/T+1h"
    check = sha256sum_check(folder)
    assert check.returncode == 0, check.stdout + check.stderr
    assert sorted(check.stdout.splitlines()) == ["%s: OK" % n for n in ARTIFACTS if n != "MANIFEST.sha256"]


def test_checkpoint_no_go_names_the_criterion_and_the_instance(checkpoint_run):
    result = checkpoint_run["second run NO-GO"]
    assert not result.get("failed") and result["decision"] == "NO-GO"
    assert result["failures"] == [LOW_DUAL_FAILURE]
    assert read_json(checkpoint_run.workdir / "store/checkpoints/wave2/T+1h/decision.json")["action"] == "stop"


def test_checkpoint_restart_fires_agent_crash_and_asks_for_a_rollback(checkpoint_run):
    result = checkpoint_run["restart rolls back"]
    assert (result["decision"], result["fired"]) == ("ROLLBACK", ["agent_crash"])
    assert checkpoint_run["registered action"]["ansible_facts"]["registered_action"] == "rollback"
    decision = read_json(checkpoint_run.workdir / "store/checkpoints/wave2/T+12h/decision.json")
    assert (decision["decision"], decision["action"]) == ("ROLLBACK", "rollback")
    assert "trigger agent_crash fired on network-expert@dgx-2: agent_crashes 1 > 0 count" in result["failures"]
    assert "health: network-expert no restarts on dgx-2: expected 0, measured 1" in result["failures"]


def test_checkpoint_failed_health_check_turns_go_into_no_go(checkpoint_run):
    result = checkpoint_run["health failure"]
    assert (result["decision"], result["fired"]) == ("NO-GO", [])
    assert read_json(checkpoint_run.workdir / "store/checkpoints/wave2/T+24h/decision.json")["action"] == "stop"
    assert result["failures"] == ["health: graph-expert legacy only (control): expected no responders on unified, "
                                  "measured ['dgx-1']"]


def test_checkpoint_with_a_failed_probe_is_no_go_and_says_why(checkpoint_run):
    result = checkpoint_run["probe failed"]
    assert result["decision"] == "NO-GO" and not result.get("failed")
    assert result["failures"][0] == ("probe failed, so every NATS figure is missing: cannot connect to "
                                     "nats://127.0.0.1:4222")
    measured = result["measured"]["network-expert@dgx-1"]
    assert all(measured[k] is None for k in ("error_rate_pct", "delivery_pct", "latency_p50_ms", "latency_p99_ms",
                                             "dual_publish_success_pct", "unified_share_pct", "publish_time_ms",
                                             "requests")), measured
    assert measured["uptime_pct"] == 100.0 and measured["agent_crashes"] == 0
    observations = read_json(checkpoint_run.workdir / "store/checkpoints/wave2/phase1-T+1h/observations.json")
    assert observations["probe"] is None
    assert observations["probe_error"] == "cannot connect to nats://127.0.0.1:4222"


def test_monitor_round_is_written_under_the_monitor_folder(checkpoint_run):
    result = checkpoint_run["monitor round"]
    folder = checkpoint_run.workdir / "store/checkpoints/wave2/history/run-1/monitor/phase2-monitor-001"
    assert result["folder"] == "checkpoints/wave2/monitor/phase2-monitor-001"
    assert files_under(folder) == ARTIFACTS and sha256sum_check(folder).returncode == 0
    decision = read_json(folder / "decision.json")
    assert (decision["kind"], decision["run_id"]) == ("monitor", "run-1")
    assert not (checkpoint_run.workdir / "store/checkpoints/wave2/phase2-monitor-001").exists()
    assert (folder / "summary.md").read_text().startswith("# wave2 phase2-monitor-001 (monitoring round): GO\n")


def test_monitor_round_ignores_the_primary_criteria(checkpoint_run):
    # the same probe fails dual_publish_success at a checkpoint; a monitoring round judges triggers only
    result = checkpoint_run["monitor round"]
    assert (result["decision"], result["failures"]) == ("GO", [])
    decision = read_json(checkpoint_run.workdir
                         / "store/checkpoints/wave2/history/run-1/monitor/phase2-monitor-001/decision.json")
    assert decision["action"] == "proceed"
    assert {r["kind"] for r in decision["criteria"]} == {"rollback_trigger"}
    assert not [c for c in decision["comparisons"] if c.get("required")]


def test_monitor_round_rolls_back_on_a_trigger(checkpoint_run):
    result = checkpoint_run["monitor round next run"]
    assert (result["decision"], result["fired"]) == ("ROLLBACK", ["agent_crash"])
    wave = checkpoint_run.workdir / "store/checkpoints/wave2"
    decision = read_json(wave / "monitor/phase2-monitor-001/decision.json")
    assert (decision["run_id"], decision["action"]) == ("run-2", "rollback")
    assert read_json(wave / "history/run-1/monitor/phase2-monitor-001/decision.json")["run_id"] == "run-1"


def test_checkpoint_of_a_previous_run_is_archived_not_overwritten(checkpoint_run):
    wave = checkpoint_run.workdir / "store/checkpoints/wave2"
    archived = wave / "history/run-1/T+1h"
    assert read_json(archived / "decision.json")["run_id"] == "run-1"
    assert read_json(archived / "decision.json")["decision"] == "GO"
    assert sha256sum_check(archived).returncode == 0
    assert read_json(wave / "T+1h/decision.json")["run_id"] == "run-2"


def test_checkpoint_retaken_in_the_same_run_is_replaced_in_place(checkpoint_run):
    history = checkpoint_run.workdir / "store/checkpoints/wave2/history"
    assert sorted(p.name for p in history.iterdir()) == ["run-1"]
    assert sorted(p.name for p in (history / "run-1").iterdir()) == ["T+1h", "monitor"]


def test_checkpoint_with_an_unknown_kind_fails(checkpoint_run):
    result = checkpoint_run["unknown kind"]
    assert result["failed"] and result["msg"] == "wave_checkpoint: kind must be one of checkpoint, monitor, got 'audit'"


def test_checkpoint_with_malformed_criteria_fails_naming_key_and_reason(checkpoint_run):
    result = checkpoint_run["malformed criteria"]
    assert result["failed"]
    assert result["msg"] == (
        "criteria refused:\n"
        "  - criteria/broken.yml: colour: unknown key 'colour' (allowed: primary, secondary, rollback_triggers, "
        "on_trigger, comparison)\n"
        "  - criteria/broken.yml: primary[1].threshold: 'low' is not a number\n"
        "  - criteria/broken.yml: on_trigger: 'explode' is not one of rollback, pause")
    # nothing written: T+1h is still run-2's NO-GO
    assert read_json(checkpoint_run.workdir / "store/checkpoints/wave2/T+1h/decision.json")["run_id"] == "run-2"


# ansible-core 2.19 hands playbook-literal strings over as a str subclass (_AnsibleTaggedStr).
def test_checkpoint_accepts_criteria_given_as_data_in_the_playbook(checkpoint_run):
    result = checkpoint_run["criteria given as data"]
    assert not result.get("failed"), result.get("msg")
    assert result["decision"] == "GO"


def test_checkpoint_in_check_mode_decides_and_writes_nothing(checkpoint_run):
    result = checkpoint_run["check mode"]
    assert not result.get("failed") and result["decision"] == "GO" and result["changed"] is False
    assert "path" not in result and not (checkpoint_run.workdir / "dry").exists()


def test_checkpoint_names_missing_arguments(checkpoint_run):
    result = checkpoint_run["missing arguments"]
    assert result["failed"] and result["msg"] == "fleetwave.rollout.wave_checkpoint: missing argument(s) control, info"


def test_checkpoint_that_cannot_be_written_fails_naming_the_folder(checkpoint_run):
    result = checkpoint_run["store not writable"]
    blocked = checkpoint_run.workdir / "blocked"
    assert result["failed"] and result["msg"].startswith("could not write checkpoint checkpoints/wave2/T+1h under %s: "
                                                         % blocked)
    assert blocked.read_text() == "a file where the artifact store should be"


def test_checkpoint_over_a_corrupt_record_fails_naming_the_file(checkpoint_run):
    result = checkpoint_run["corrupt previous checkpoint"]
    path = checkpoint_run.workdir / "corrupt/checkpoints/wave2/T+1h/decision.json"
    assert result["failed"] and "%s is not valid JSON" % path in result["msg"]
    assert path.read_text() == "{truncated"


# ================================================================================ wave_decision

PLAN_WAVE1 = dict(PLAN_ARGS, wave="wave1", criteria_file=str(CRITERIA_FILE))
WAVE1_LABELS = ["phase1-verification", "T+1h", "T+3h", "T+6h"]
WAVE1 = dict(hosts=["dgx-1"], flipped=["nats-expert"], control=["tdd-expert"])
WAVE1_HEALTHY = dict(
    WAVE1, wave="wave1", reference=["tdd-expert"], criteria=PLAN_CRITERIA,
    baseline=fake_info(uptime=1000.0, **WAVE1), info=fake_info(uptime=1600.0, cpu=16.0, **WAVE1),
    probe=fake_probe(**WAVE1))
TIMELINE = [dict(step="preflight", started="2025-01-14T09:30:00Z", finished="2025-01-14T09:31:00Z", result="ok")]
ROLLBACK_RECORD = dict(run_id="run-1", completed=True, triggers=["agent_crash"], detected_at="2025-01-14T10:00:00.1Z",
                       decided_at="2025-01-14T10:00:00.2Z", completed_at="2025-01-14T10:00:20Z",
                       seconds_detection_to_completion=19.9)


def wave1_checkpoint(artifacts, run_id, **changes):
    return dict(WAVE1_HEALTHY, artifacts_dir=str(artifacts), label="{{ item }}", run_id=run_id, **changes)


def decision(artifacts, run_id, **changes):
    return dict(dict(plan="{{ __plan.plan }}", run_id=run_id, artifacts_dir=str(artifacts),
                     started_at="2025-01-14T09:30:00Z", timeline=TIMELINE), **changes)


@pytest.fixture(scope="module")
def decision_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("wave-decision")
    go, mixed, dry, corrupt, rolled = work / "go", work / "mixed", work / "dry", work / "corrupt", work / "rolled"
    (corrupt / "checkpoints/wave1/T+3h").mkdir(parents=True)
    (corrupt / "checkpoints/wave1/T+3h/decision.json").write_text("not json")
    failing = dict(probe=fake_probe(changed={("nats-expert", "dgx-1"): dict(dual_publish_success=0.97)}, **WAVE1))
    restarted = dict(info=fake_info(uptime=1600.0, cpu=16.0, changed={("nats-expert", "dgx-1"): dict(n_restarts=1)},
                                    **WAVE1))
    return run_playbook(work, [
        dict(name="plan", **{"fleetwave.rollout.wave_plan": PLAN_WAVE1}, register="__plan"),
        task("every checkpoint GO", "wave_checkpoint", wave1_checkpoint(go, "run-1"), loop=WAVE1_LABELS),
        task("decide GO", "wave_decision", decision(go, "run-1")),
        task("decide another run in check mode", "wave_decision", decision(go, "run-2"), check_mode=True),
        task("checkpoints of this run", "wave_checkpoint", wave1_checkpoint(mixed, "run-1"),
             loop=["phase1-verification"]),
        task("checkpoint of an earlier run", "wave_checkpoint", wave1_checkpoint(mixed, "run-0"), loop=["T+1h"]),
        task("failing checkpoint", "wave_checkpoint", wave1_checkpoint(mixed, "run-1", **failing), loop=["T+3h"]),
        task("decide NO-GO", "wave_decision", decision(mixed, "run-1")),
        task("checkpoints before the rollback", "wave_checkpoint", wave1_checkpoint(rolled, "run-1"),
             loop=["phase1-verification"]),
        task("monitoring round GO", "wave_checkpoint", wave1_checkpoint(rolled, "run-1", kind="monitor"),
             loop=["phase1-monitor-001"]),
        task("monitoring round fires", "wave_checkpoint",
             wave1_checkpoint(rolled, "run-1", kind="monitor", **restarted), loop=["phase1-monitor-003"]),
        task("record the rollback", "artifact_record",
             dict(artifacts_dir=str(rolled), path="checkpoints/wave1/monitor/phase1-monitor-003/rollback.json",
                  manifest="checkpoints/wave1/monitor/phase1-monitor-003", data=ROLLBACK_RECORD)),
        task("decide after the rollback", "wave_decision", decision(rolled, "run-1")),
        task("decide in check mode", "wave_decision", decision(dry, "run-1"), check_mode=True),
        task("decide over a corrupt checkpoint", "wave_decision", decision(corrupt, "run-1")),
        task("decide without arguments", "wave_decision", dict(plan="{{ __plan.plan }}")),
    ])


def test_decision_go_when_every_checkpoint_of_this_run_is_go(decision_run):
    assert [r["decision"] for r in decision_run["every checkpoint GO"]["results"]] == ["GO"] * 4
    result = decision_run["decide GO"]
    assert not result.get("failed") and result["changed"] is True
    assert result["decision"] == "GO" and result["reasons"] == [] and result["rollback"] is None
    assert result["report_path"] == str(decision_run.workdir / "go/checkpoints/wave1/report.md")


def test_decision_record_on_disk(decision_run):
    record = json.loads((decision_run.workdir / "go/checkpoints/wave1/decision.json").read_text())
    assert (record["wave"], record["run_id"], record["decision"], record["reasons"]) == ("wave1", "run-1", "GO", [])
    assert [(c["label"], c["decision"]) for c in record["checkpoints"]] == [(label, "GO") for label in WAVE1_LABELS]
    assert record["started_at"] == "2025-01-14T09:30:00Z" and record["timeline"] == TIMELINE
    assert record["decided_at"].endswith("Z") and record["rollback"] is None


def test_decision_report_on_disk_is_the_returned_report(decision_run):
    result = decision_run["decide GO"]
    report = (decision_run.workdir / "go/checkpoints/wave1/report.md").read_text()
    assert report == result["report"]
    assert report.startswith("# wave1: GO\n") and "GO: all 4 checkpoints passed." in report
    assert "| preflight | 2025-01-14T09:30:00Z | 2025-01-14T09:31:00Z | ok |" in report


def test_decision_for_another_run_finds_nothing_reached_and_check_mode_writes_nothing(decision_run):
    result = decision_run["decide another run in check mode"]
    assert result["decision"] == "NO-GO" and result["changed"] is False
    assert result["reasons"] == ["checkpoint %s was not reached in this run" % label for label in WAVE1_LABELS]
    record = json.loads((decision_run.workdir / "go/checkpoints/wave1/decision.json").read_text())
    assert record["run_id"] == "run-1" and record["decision"] == "GO"


def test_decision_no_go_for_missing_foreign_and_failed_checkpoints(decision_run):
    result = decision_run["decide NO-GO"]
    assert not result.get("failed") and result["decision"] == "NO-GO"
    assert result["reasons"] == [
        "checkpoint T+1h was not reached in this run",
        "checkpoint T+3h is NO-GO: primary dual_publish_success failed on nats-expert@dgx-1: "
        "dual_publish_success_pct 97 is not > 99 %",
        "checkpoint T+6h was not reached in this run"]


def test_decision_no_go_report_shows_not_reached_and_the_rollback(decision_run):
    report = (decision_run.workdir / "mixed/checkpoints/wave1/report.md").read_text()
    assert report.startswith("# wave1: NO-GO\n")
    assert "| phase1 | T+1h | - | NOT REACHED | - |" in report and "| phase1 | T+6h | - | NOT REACHED | - |" in report
    assert "ansible-playbook playbooks/rollback.yml -e rollback_wave=wave1" in report
    record = json.loads((decision_run.workdir / "mixed/checkpoints/wave1/decision.json").read_text())
    assert [c["decision"] for c in record["checkpoints"]] == ["GO", "NOT REACHED", "NO-GO", "NOT REACHED"]


def test_decision_reports_the_monitoring_round_that_rolled_back(decision_run):
    assert decision_run["monitoring round fires"]["results"][0]["decision"] == "ROLLBACK"
    result = decision_run["decide after the rollback"]
    assert not result.get("failed") and result["decision"] == "NO-GO"
    assert result["rollback"] == dict(ROLLBACK_RECORD, label="phase1-monitor-003")
    assert result["reasons"][-1] == ("monitoring round phase1-monitor-003 is ROLLBACK: trigger agent_crash fired on "
                                     "nats-expert@dgx-1: agent_crashes 1 > 0 count; health: nats-expert no restarts "
                                     "on dgx-1: expected 0, measured 1")
    assert "phase1-monitor-001" not in result["report"]  # a GO monitoring round is not listed
    assert "Rolled back automatically after phase1-monitor-003 (triggers: agent_crash)" in result["report"]
    assert "playbooks/rollback.yml" not in result["report"]
    record = json.loads((decision_run.workdir / "rolled/checkpoints/wave1/decision.json").read_text())
    assert record["rollback"]["label"] == "phase1-monitor-003"


def test_decision_in_check_mode_writes_nothing(decision_run):
    result = decision_run["decide in check mode"]
    assert result["decision"] == "NO-GO" and result["report"].startswith("# wave1: NO-GO")
    assert not (decision_run.workdir / "dry").exists()


def test_decision_over_a_corrupt_checkpoint_fails_naming_the_file(decision_run):
    result = decision_run["decide over a corrupt checkpoint"]
    path = decision_run.workdir / "corrupt/checkpoints/wave1/T+3h/decision.json"
    assert result["failed"]
    assert result["msg"].startswith("could not record the wave1 decision under %s: %s is not valid JSON"
                                    % (decision_run.workdir / "corrupt", path))
    assert not (decision_run.workdir / "corrupt/checkpoints/wave1/decision.json").exists()


def test_decision_names_missing_arguments(decision_run):
    result = decision_run["decide without arguments"]
    assert result["failed"] and result["msg"] == "fleetwave.rollout.wave_decision: missing argument(s) run_id, artifacts_dir, started_at"


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
    # decide_wave accepts an approval only when approved is JSON true
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
