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
    return dict(name=name, **{module: args}, ignore_errors=True, **keywords)


def files_under(path):
    path = pathlib.Path(path)
    return sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file()) if path.exists() else []


def sha256sum_check(folder):
    return subprocess.run(["sha256sum", "-c", "--strict", "MANIFEST.sha256"], cwd=folder, capture_output=True,
                          text=True)


# ================================================================================ wave_plan

@pytest.fixture(scope="module")
def plan_run(tmp_path_factory):
    bad = dict(PLAN_ARGS, subject_legacy="agent.*", stagger=-1,
               waves={"wave2": {"previous": "wave1", "phases": [{"name": "phase1", "agents": ["netwrk-expert"]}]},
                      "wave1": {"previous": None, "phases": [{"name": "phase1", "agents": ["nats-expert"]}]}})
    return run_playbook(tmp_path_factory.mktemp("wave-plan"), [
        task("valid plan", "wave_plan", PLAN_ARGS),
        task("valid plan in check mode", "wave_plan", PLAN_ARGS, check_mode=True),
        task("bad inventory", "wave_plan", bad),
        task("undefined wave", "wave_plan", dict(PLAN_ARGS, wave="wave7")),
        task("missing and unknown arguments", "wave_plan",
             dict(wave="wave2", agents="{{ fleet_agents }}", colour="red")),
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


# ================================================================================ wave_checkpoint

HOSTS = ["dgx-1", "dgx-2"]
HEALTHY = dict(
    wave="wave2", hosts=HOSTS, flipped=["network-expert"], control=["graph-expert"],
    units={h: {"network-expert": dict(active_state="active", n_restarts=0),
               "graph-expert": dict(active_state="active", n_restarts=1)} for h in HOSTS},
    pings=[dict(agent="network-expert", via="legacy", hosts=HOSTS, no_responders=False),
           dict(agent="network-expert", via="unified", hosts=HOSTS, no_responders=False),
           dict(agent="graph-expert", via="legacy", hosts=HOSTS, no_responders=False),
           dict(agent="graph-expert", via="unified", hosts=[], no_responders=True)],
    baseline={h: {"network-expert": 0, "graph-expert": 1} for h in HOSTS},
)
BROKEN_UNITS = {"dgx-1": HEALTHY["units"]["dgx-1"],
                "dgx-2": {"network-expert": dict(active_state="failed", n_restarts=0),
                          "graph-expert": dict(active_state="active", n_restarts=1)}}


def checkpoint(artifacts, label, run_id, **changes):
    return dict(HEALTHY, artifacts_dir=str(artifacts), label=label, run_id=run_id, **changes)


@pytest.fixture(scope="module")
def checkpoint_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("wave-checkpoint")
    store, dry, blocked, corrupt = work / "store", work / "dry", work / "blocked", work / "corrupt"
    blocked.write_text("a file where the artifact store should be")
    (corrupt / "checkpoints/wave2/T+1h").mkdir(parents=True)
    (corrupt / "checkpoints/wave2/T+1h/decision.json").write_text("{truncated")
    return run_playbook(work, [
        task("first run GO", "wave_checkpoint", checkpoint(store, "T+1h", "run-1")),
        task("second run NO-GO", "wave_checkpoint", checkpoint(store, "T+1h", "run-2", units=BROKEN_UNITS)),
        task("second run again", "wave_checkpoint", checkpoint(store, "T+1h", "run-2", units=BROKEN_UNITS)),
        task("other label", "wave_checkpoint", checkpoint(store, "T+6h", "run-2")),
        task("check mode", "wave_checkpoint", checkpoint(dry, "T+1h", "run-1"), check_mode=True),
        task("missing arguments", "wave_checkpoint",
             {k: v for k, v in checkpoint(store, "T+1h", "run-1").items() if k not in ("pings", "control")}),
        task("store not writable", "wave_checkpoint", checkpoint(blocked, "T+1h", "run-1")),
        task("corrupt previous checkpoint", "wave_checkpoint", checkpoint(corrupt, "T+1h", "run-1")),
    ])


def test_checkpoint_result(checkpoint_run):
    result = checkpoint_run["first run GO"]
    assert not result.get("failed") and result["changed"] is True
    assert result["decision"] == "GO" and result["failures"] == [] and result["folder"] == "checkpoints/wave2/T+1h"
    assert result["restarts"] == {h: {"network-expert": 0, "graph-expert": 1} for h in HOSTS}


def test_checkpoint_writes_its_four_artifacts(checkpoint_run):
    folder = checkpoint_run.workdir / "store/checkpoints/wave2/T+6h"
    assert checkpoint_run["other label"]["path"] == str(folder)
    assert files_under(folder) == ["MANIFEST.sha256", "decision.json", "observations.json", "summary.md"]


def test_checkpoint_observations_are_the_raw_inputs(checkpoint_run):
    observations = json.loads((checkpoint_run.workdir / "store/checkpoints/wave2/T+6h/observations.json").read_text())
    assert observations == dict(units=HEALTHY["units"], pings=HEALTHY["pings"], baseline=HEALTHY["baseline"])


def test_checkpoint_decision_record(checkpoint_run):
    decision = json.loads((checkpoint_run.workdir / "store/checkpoints/wave2/T+6h/decision.json").read_text())
    assert {k: decision[k] for k in ("wave", "label", "run_id", "decision", "failures")} == dict(
        wave="wave2", label="T+6h", run_id="run-2", decision="GO", failures=[])
    assert len(decision["checks"]) == 15 and all(c["ok"] for c in decision["checks"])
    assert len(decision["taken_at"]) == len("2025-01-14T09:30:00Z") and decision["taken_at"].endswith("Z")


def test_checkpoint_summary(checkpoint_run):
    summary = (checkpoint_run.workdir / "store/checkpoints/wave2/T+1h/summary.md").read_text()
    assert summary.startswith("# wave2 T+1h: NO-GO\n")
    assert "- network-expert unit active on dgx-2: expected active, measured failed" in summary


def test_checkpoint_manifest_passes_sha256sum(checkpoint_run):
    folder = checkpoint_run.workdir / "store/checkpoints/wave2/T+1h"
    check = sha256sum_check(folder)
    assert check.returncode == 0, check.stdout + check.stderr
    assert sorted(check.stdout.splitlines()) == ["decision.json: OK", "observations.json: OK", "summary.md: OK"]


def test_checkpoint_no_go_names_each_failure(checkpoint_run):
    result = checkpoint_run["second run NO-GO"]
    assert not result.get("failed") and result["decision"] == "NO-GO"
    assert result["failures"] == ["network-expert unit active on dgx-2: expected active, measured failed"]


def test_checkpoint_of_a_previous_run_is_archived_not_overwritten(checkpoint_run):
    wave = checkpoint_run.workdir / "store/checkpoints/wave2"
    archived = wave / "history/run-1/T+1h"
    assert json.loads((archived / "decision.json").read_text())["run_id"] == "run-1"
    assert json.loads((archived / "decision.json").read_text())["decision"] == "GO"
    assert sha256sum_check(archived).returncode == 0
    assert json.loads((wave / "T+1h/decision.json").read_text())["run_id"] == "run-2"


def test_checkpoint_retaken_in_the_same_run_is_replaced_in_place(checkpoint_run):
    history = checkpoint_run.workdir / "store/checkpoints/wave2/history"
    assert sorted(p.name for p in history.iterdir()) == ["run-1"]
    assert sorted(p.name for p in (history / "run-1").iterdir()) == ["T+1h"]


def test_checkpoint_in_check_mode_decides_and_writes_nothing(checkpoint_run):
    result = checkpoint_run["check mode"]
    assert not result.get("failed") and result["decision"] == "GO" and result["changed"] is False
    assert "path" not in result and not (checkpoint_run.workdir / "dry").exists()


def test_checkpoint_names_missing_arguments(checkpoint_run):
    result = checkpoint_run["missing arguments"]
    assert result["failed"] and result["msg"] == "wave_checkpoint: missing argument(s) control, pings"


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

PLAN_WAVE1 = dict(PLAN_ARGS, wave="wave1")
WAVE1_LABELS = ["phase1-verification", "T+1h", "T+3h", "T+6h"]
WAVE1_HEALTHY = dict(wave="wave1", hosts=["dgx-1"], flipped=["nats-expert"], control=["tdd-expert"],
                     units={"dgx-1": {"nats-expert": dict(active_state="active", n_restarts=0),
                                      "tdd-expert": dict(active_state="active", n_restarts=0)}},
                     pings=[dict(agent="nats-expert", via="legacy", hosts=["dgx-1"], no_responders=False),
                            dict(agent="nats-expert", via="unified", hosts=["dgx-1"], no_responders=False),
                            dict(agent="tdd-expert", via="legacy", hosts=["dgx-1"], no_responders=False),
                            dict(agent="tdd-expert", via="unified", hosts=[], no_responders=True)])
TIMELINE = [dict(step="preflight", started="2025-01-14T09:30:00Z", finished="2025-01-14T09:31:00Z", result="ok")]


def wave1_checkpoint(artifacts, run_id, **changes):
    return dict(WAVE1_HEALTHY, artifacts_dir=str(artifacts), label="{{ item }}", run_id=run_id, **changes)


def decision(artifacts, run_id, **changes):
    return dict(dict(plan="{{ __plan.plan }}", run_id=run_id, artifacts_dir=str(artifacts),
                     started_at="2025-01-14T09:30:00Z", timeline=TIMELINE), **changes)


@pytest.fixture(scope="module")
def decision_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("wave-decision")
    go, mixed, dry, corrupt = work / "go", work / "mixed", work / "dry", work / "corrupt"
    (corrupt / "checkpoints/wave1/T+3h").mkdir(parents=True)
    (corrupt / "checkpoints/wave1/T+3h/decision.json").write_text("not json")
    failing = dict(units={"dgx-1": {"nats-expert": dict(active_state="active", n_restarts=2),
                                    "tdd-expert": dict(active_state="active", n_restarts=0)}},
                   baseline={"dgx-1": {"nats-expert": 0, "tdd-expert": 0}})
    return run_playbook(work, [
        dict(name="plan", wave_plan=PLAN_WAVE1, register="__plan"),
        task("every checkpoint GO", "wave_checkpoint", wave1_checkpoint(go, "run-1"), loop=WAVE1_LABELS),
        task("decide GO", "wave_decision", decision(go, "run-1")),
        task("decide another run in check mode", "wave_decision", decision(go, "run-2"), check_mode=True),
        task("checkpoints of this run", "wave_checkpoint", wave1_checkpoint(mixed, "run-1"),
             loop=["phase1-verification"]),
        task("checkpoint of an earlier run", "wave_checkpoint", wave1_checkpoint(mixed, "run-0"), loop=["T+1h"]),
        task("failing checkpoint", "wave_checkpoint", wave1_checkpoint(mixed, "run-1", **failing), loop=["T+3h"]),
        task("decide NO-GO", "wave_decision", decision(mixed, "run-1")),
        task("decide in check mode", "wave_decision", decision(dry, "run-1"), check_mode=True),
        task("decide over a corrupt checkpoint", "wave_decision", decision(corrupt, "run-1")),
        task("decide without arguments", "wave_decision", dict(plan="{{ __plan.plan }}")),
    ])


def test_decision_go_when_every_checkpoint_of_this_run_is_go(decision_run):
    result = decision_run["decide GO"]
    assert not result.get("failed") and result["changed"] is True
    assert result["decision"] == "GO" and result["reasons"] == []
    assert result["report_path"] == str(decision_run.workdir / "go/checkpoints/wave1/report.md")


def test_decision_record_on_disk(decision_run):
    record = json.loads((decision_run.workdir / "go/checkpoints/wave1/decision.json").read_text())
    assert (record["wave"], record["run_id"], record["decision"], record["reasons"]) == ("wave1", "run-1", "GO", [])
    assert [(c["label"], c["decision"]) for c in record["checkpoints"]] == [(label, "GO") for label in WAVE1_LABELS]
    assert record["started_at"] == "2025-01-14T09:30:00Z" and record["timeline"] == TIMELINE
    assert record["decided_at"].endswith("Z")


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
        "checkpoint T+3h is NO-GO: nats-expert no restarts on dgx-1: expected 0, measured 2",
        "checkpoint T+6h was not reached in this run"]


def test_decision_no_go_report_shows_not_reached_and_the_rollback(decision_run):
    report = (decision_run.workdir / "mixed/checkpoints/wave1/report.md").read_text()
    assert report.startswith("# wave1: NO-GO\n")
    assert "| phase1 | T+1h | - | NOT REACHED | - |" in report and "| phase1 | T+6h | - | NOT REACHED | - |" in report
    assert "ansible-playbook playbooks/rollback.yml -e rollback_wave=wave1" in report
    record = json.loads((decision_run.workdir / "mixed/checkpoints/wave1/decision.json").read_text())
    assert [c["decision"] for c in record["checkpoints"]] == ["GO", "NOT REACHED", "NO-GO", "NOT REACHED"]


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
    assert result["failed"] and result["msg"] == "wave_decision: missing argument(s) run_id, artifacts_dir, started_at"


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
