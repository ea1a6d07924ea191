"""plugins/module_utils/fleet_checklist.py and scripts/render-checklist: the seed's execution checklist
filled from an audit trail. The trails are written with fleet_audit's own AuditLog and AuditRecorder
(a fake clock), event by event as playbooks/wave*.yml would produce them; every time in the checklist
must be the time of one of those events.

data/wave1-sandbox-20261123T215330Z.jsonl is a real sandbox run of playbooks/wave1.yml: its
ansible-runner job events (the same hooks and results the audit_trail callback receives, with the
runner's event times) fed through fleet_audit.AuditRecorder, so play and task names are exactly as
Ansible templated them. Only statuses, msg and loop labels are kept (no module args, no secrets)."""

from __future__ import annotations

import datetime
import json
import pathlib
import re

import pytest
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_audit import AuditLog, AuditRecorder
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_checklist import (PLAY_DECIDE, PLAY_DEPLOY, PLAY_PREFLIGHT, PLAY_PREFLIGHT_HOSTS,
                                                  PLAY_ROLLBACK_CHECK, PLAY_ROLLBACK_RESTORE, PLAY_ROLLBACK_VERIFY,
                                                  PLAY_WATCH, T_AGENTS_ANSWER, T_CHECKPOINTS, T_DECISION,
                                                  T_DEPLOY_DONE, T_FLIP, T_GATE, T_GATE_NOGO, T_JUDGE, T_NATS,
                                                  T_PLAN, T_PREVIOUS, T_RB_RECORD, T_RB_SUMMARY, T_SHOW,
                                                  T_UNITS_ACTIVE, T_VERDICT, T_WAIT, ChecklistError, load_events,
                                                  render_checklist, waves_in)
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_checklist import main as render_checklist_main

pytestmark = pytest.mark.unit

REPO = pathlib.Path(__file__).resolve().parents[2]
REAL_WAVE1 = pathlib.Path(__file__).parent / "data" / "wave1-sandbox-20261123T215330Z.jsonl"
HOSTS = ["dgx-1", "dgx-2", "dgx-3"]
ALL_AGENTS = ["nats-expert", "network-expert", "tdd-expert"]
WAVE1 = [(["nats-expert"], ["phase1-verification", "T+1h", "T+3h", "T+6h"])]
WAVE2 = [(["network-expert"], ["phase1-verification", "phase1-T+1h", "phase1-T+2h"]),
         (["tdd-expert"], ["phase2-verification", "T+1h", "T+6h", "T+12h", "T+24h"])]
TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")


class Trail:
    """Writes an audit trail the way the callback does, with a clock that moves only when told."""

    def __init__(self, path):
        self.path = path
        self.now = datetime.datetime(2026, 1, 23, 20, 0, tzinfo=datetime.timezone.utc)
        self.log = AuditLog(path, clock=lambda: self.now)
        self.recorder = AuditRecorder(self.log, clock=lambda: self.now.timestamp())
        self.task_id, self.task_name, self.runs, self.failed = 0, None, 0, set()

    def wait(self, seconds):
        self.now += datetime.timedelta(seconds=seconds)

    def run(self, playbook, check=False):
        self.runs += 1
        self.failed = set()
        self.recorder.playbook_start(playbook, "run-%d" % self.runs, "root", check, None, extra_vars=())

    def play(self, name, serial=None):
        self.wait(1)
        self.recorder.play_start(name, ["dgx"], serial or [])

    def task(self, name):
        self.wait(1)
        self.task_id += 1
        self.task_name = name
        self.recorder.task_start(self.task_id, name, "action")

    def result(self, host, status="ok", msg=None, item=None, changed=False, seconds=1):
        self.wait(seconds)
        result = {"changed": changed}
        if msg is not None:
            result["msg"] = msg
        if item is not None:
            result.update(item=item, _ansible_item_label=item)
        if status == "failed":
            self.failed.add(host)
        self.recorder.host_result(self.task_id, host, status, result, task=self.task_name, item=item is not None)

    def end(self):
        hosts = {h: {"ok": 1, "failures": int(h in self.failed), "unreachable": 0} for h in HOSTS + ["localhost"]}
        self.recorder.stats(hosts)
        self.recorder.playbook_end(hosts)

    def events(self):
        return [json.loads(line) for line in pathlib.Path(self.path).read_text().splitlines()]


def wave_run(trail, wave, phases, nogo=None, fail_deploy=None, stop_waiting_for=None, fail_preflight=None):
    """The events of playbooks/<wave>.yml. nogo: the checkpoint judged NO-GO (the later ones of its
    phase are still taken, as include_tasks does); fail_deploy: (phase, host) whose dual-subscription
    check fails; stop_waiting_for: the checkpoint whose wait the trail ends in (a run in progress);
    fail_preflight: the host whose agent units are not all active."""
    t = trail
    t.run("playbooks/%s.yml" % wave)
    t.play(PLAY_PREFLIGHT.format(wave=wave))
    t.task("Start the run record")
    t.result("localhost")
    t.task(T_PLAN)
    t.result("localhost")
    t.task(T_PREVIOUS)
    t.result("localhost", "skipped" if wave == "wave1" else "ok", msg=None if wave == "wave1" else "All assertions passed")
    t.task(T_NATS)
    t.result("localhost")
    t.play(PLAY_PREFLIGHT_HOSTS.format(wave=wave))
    t.task(T_AGENTS_ANSWER)
    wave_agents = [a for agents, _labels in phases for a in agents]
    for host in HOSTS:
        for agent in wave_agents:
            t.result(host, item=agent)
        t.result(host, msg="All items completed")
    t.task(T_UNITS_ACTIVE)
    for host in HOSTS:
        t.result(host, "failed" if host == fail_preflight else "ok")
    if fail_preflight:
        t.end()
        return t
    for number, (agents, labels) in enumerate(phases, 1):
        for host in HOSTS:
            t.play(PLAY_DEPLOY.format(wave=wave, n=number), serial=[1])
            t.task("Note when this host's deploy starts")
            t.result(host)
            t.task(T_FLIP)
            for agent in agents:
                t.result(host, item=agent, changed=True, seconds=2)
            t.result(host, changed=True, msg="All items completed")
            t.task("Ensure each agent answers on its unified subject (dual subscription)")
            if fail_deploy == (number, host):
                t.result(host, "failed", msg="1 of 1 expected replies missing from %s" % host, seconds=20)
                t.task("Restore the env files changed by this run")
                t.result(host, changed=True)
                t.task("Stop the deploy with the reason")
                t.result(host, "failed", msg="Deploying %s on %s failed at 'Ensure each agent answers on its unified "
                         "subject (dual subscription)': no reply. Restored %s from backup and restarted: the host "
                         "is back on legacy subjects." % (", ".join(agents), host, ", ".join(agents)))
                t.end()
                return t
            t.result(host, seconds=3)
            t.task(T_DEPLOY_DONE)
            t.result(host)
            t.task("Stagger before the next host (start to start)")
            t.result(host, "skipped" if host == HOSTS[-1] else "ok", seconds=1 if host == HOSTS[-1] else 22)
        t.play(PLAY_WATCH.format(wave=wave, n=number))
        t.task("Start the watch clock")
        t.result("dgx-1")
        t.task(T_CHECKPOINTS)
        for host in HOSTS:
            for label in labels:
                t.result(host, item=label, seconds=0)
            t.result(host, msg="All items completed", seconds=0)
        decisions = []
        for label in labels:
            t.task(T_WAIT.format(label=label))
            if label == stop_waiting_for:
                return t
            t.result("dgx-1", seconds=3000)
            t.task(T_JUDGE.format(label=label))
            t.result("dgx-1", changed=True)
            decision = "NO-GO" if label == nogo else "GO"
            t.task(T_SHOW.format(label=label))
            t.result("dgx-1", msg="%s %s: %s" % (wave, label, decision)
                     + (" \u2014 dgx-2 %s uptime 98.0 %% (needs > 99.9 %%)" % agents[0] if decision != "GO" else ""))
            decisions.append(decision)
        t.task("Record the go/no-go in the run's timeline")
        t.result("dgx-1")
        t.task(T_GATE_NOGO)
        t.result("dgx-1", "ok" if "NO-GO" in decisions else "skipped", changed="NO-GO" in decisions)
        t.task(T_GATE)
        if "NO-GO" in decisions:
            t.result("dgx-1", "failed", msg="NO-GO for %s after phase%d: checkpoint %s is NO-GO. The run stops here. "
                     "Roll back with: ansible-playbook playbooks/rollback.yml -e rollback_wave=%s"
                     % (wave, number, nogo, wave))
            t.end()
            return t
        t.result("dgx-1", msg="GO for %s after phase%d" % (wave, number))
    t.play(PLAY_DECIDE.format(wave=wave))
    t.task("End here in check mode (no checkpoint was taken)")
    t.result("localhost", "skipped")
    t.task(T_DECISION)
    t.result("localhost", changed=True)
    t.task(T_VERDICT)
    t.result("localhost", msg="%s is GO (report: artifacts/checkpoints/%s/report.md)" % (wave, wave))
    t.end()
    return t


def rollback_run(trail, agents):
    t = trail
    t.wait(600)
    t.run("playbooks/rollback.yml")
    t.play(PLAY_ROLLBACK_CHECK)
    t.task("Start the rollback record")
    t.result("dgx-1")
    t.task("Settle the targets")
    t.result("dgx-1")
    t.play(PLAY_ROLLBACK_RESTORE)
    t.task("Restore the env files from their backups")
    for host in HOSTS:
        t.result(host, changed=True, seconds=5)
    t.play(PLAY_ROLLBACK_VERIFY)
    t.task("Ensure every host answers on the legacy subjects of the rolled-back agents")
    t.result("dgx-1")
    t.task(T_RB_RECORD)
    t.result("dgx-1", changed=True)
    t.task(T_RB_SUMMARY)
    t.result("dgx-1", msg="Restored %s (%s at the pre-flip backup) in 31.0 s; legacy-only verified fleet-wide over NATS."
             % (", ".join(agents), ", ".join(agents)))
    t.end()
    return t


def section(text, number):
    """The lines of '## Phase <number> — ...' up to the next section."""
    match = re.search(r"^## Phase %d — .*?(?=^## |\Z)" % number, text, re.S | re.M)
    assert match, "no section %d in:\n%s" % (number, text)
    return match.group(0)


def checks(text):
    """The checklist's items (the lines that start with a checkbox)."""
    return "\n".join(line for line in text.splitlines() if line.startswith("- ["))


def when(events, kind, task=None, host=None):
    """The time (to the second) of the last event of that kind, task and host."""
    found = [e["ts"] for e in events if e["event"] == kind
             and (task is None or e.get("task", e.get("name")) == task) and (host is None or e.get("host") == host)
             and not e.get("loop_item")]
    assert found, (kind, task, host)
    return found[-1][:19] + "Z"


def assert_times_are_event_times(text, events):
    stamps = {e["ts"][:19] + "Z" for e in events}
    assert set(TIME.findall(text)) <= stamps


@pytest.fixture(name="go_wave2")
def fixture_go_wave2(tmp_path):
    return wave_run(Trail(tmp_path / "wave2.jsonl"), "wave2", WAVE2)


# ================================================================================ wave 2

def test_a_complete_go_run_fills_every_phase_of_the_seed_checklist(go_wave2):
    events = load_events(go_wave2.path)
    text = render_checklist(events, "wave2")
    titles = re.findall(r"^## (.*)$", text, re.M)
    assert titles == ["Phase 0 — Pre-deployment (pre-flight)",
                      "Phase 1 — Deploy network-expert (wave2 phase 1)",
                      "Phase 2 — Phase 1 stabilization",
                      "Phase 3 — Deploy tdd-expert (wave2 phase 2)",
                      "Phase 4 — Wave 2 complete monitoring",
                      "Phase 5 — Final analysis and GO/NO-GO",
                      "Phase 6 — Rollback"]
    assert "- [!]" not in text and "- [ ]" not in text and "not reached" not in checks(text)
    for number in range(6):
        assert re.search(r"^\| %d \| .* \| done \|" % number, text, re.M), number
    assert "| 6 | Rollback | not needed |" in text
    assert "Not needed: the wave ended GO" in section(text, 6)
    assert_times_are_event_times(text, events)


def test_each_host_line_has_its_batch_start_and_finish(go_wave2):
    events = load_events(go_wave2.path)
    text = render_checklist(events, "wave2")
    # dgx-2's phase-2 batch: the first task after its play_start, and its timeline record.
    batch = [i for i, e in enumerate(events) if e["event"] == "play_start" and e["name"] == PLAY_DEPLOY.format(
        wave="wave2", n=2)][1]
    started = events[batch + 1]["ts"][:19] + "Z"
    finished = [e for e in events[batch:] if e.get("task") == T_DEPLOY_DONE][0]["ts"][:19] + "Z"
    assert ("- [x] **dgx-2** — started %s, finished %s (11 s) — ok: flipped tdd-expert" % (started, finished)
            in section(text, 3))
    lines = [line for line in section(text, 1).splitlines() if line.startswith("- ")]
    assert [line.split("**")[1] for line in lines] == HOSTS


def test_each_checkpoint_has_the_time_it_was_judged_and_its_decision(go_wave2):
    events = load_events(go_wave2.path)
    text = render_checklist(events, "wave2")
    for label in WAVE2[1][1]:
        taken = when(events, "host_result", T_JUDGE.format(label=label))
        assert "- [x] `%s` — taken %s — GO" % (label, taken) in section(text, 4)
    gate = when(events, "host_result", T_GATE)
    assert "- [x] Go/no-go at the end of the monitoring — GO at %s: GO for wave2 after phase2" % gate in text
    assert "- [x] Go/no-go for phase 2 — GO at" in section(text, 2)
    verdict = when(events, "host_result", T_VERDICT)
    assert "- [x] Wave decision: **GO** at %s — wave2 is GO" % verdict in section(text, 5)


def test_the_header_names_the_run_and_its_real_duration(go_wave2):
    events = load_events(go_wave2.path)
    text = render_checklist(events, "wave2", source="wave2.jsonl")
    start, end = events[0]["ts"], events[-1]["ts"]
    assert "Source: wave2.jsonl (hash chain verified)." in text
    assert "- Run `run-1`: `playbooks/wave2.yml` by `root`, limit `none`, check mode no" in text
    hours = (datetime.datetime.fromisoformat(end[:19]) - datetime.datetime.fromisoformat(start[:19])).total_seconds() / 3600
    assert "- Started %sZ, ended %sZ (%d h " % (start[:19], end[:19], int(hours)) in text
    assert "outcome **ok**" in text


# ================================================================================ stopped runs

def test_a_nogo_at_the_phase_1_gate_leaves_the_later_phases_not_reached(tmp_path):
    trail = wave_run(Trail(tmp_path / "wave2.jsonl"), "wave2", WAVE2, nogo="phase1-T+1h")
    events = load_events(trail.path)
    text = render_checklist(events, "wave2")
    stabilization = section(text, 2)
    taken = when(events, "host_result", T_JUDGE.format(label="phase1-T+1h"))
    assert ("- [!] `phase1-T+1h` — taken %s — **NO-GO**: dgx-2 network-expert uptime 98.0 %% (needs > 99.9 %%)"
            % taken) in stabilization
    assert "- [x] `phase1-T+2h` — taken" in stabilization  # taken anyway, as the playbook does
    assert "- [!] Go/no-go for phase 2 — **NO-GO** at %s: NO-GO for wave2 after phase1" % when(
        events, "host_result", T_GATE) in stabilization
    deploy2 = section(text, 3)
    assert deploy2.startswith("## Phase 3 — Deploy tdd-expert (wave2 phase 2)")
    assert [line for line in deploy2.splitlines() if line.startswith("- ")] == [
        "- [ ] **%s** — not reached" % host for host in HOSTS]
    assert "- [ ] Checkpoints — not reached" in section(text, 4)
    assert "- [ ] Go/no-go at the end of the monitoring — not reached" in section(text, 4)
    final = section(text, 5)
    assert "- [ ] Checkpoints aggregated, criteria evaluated, decision and report recorded — not reached" in final
    assert "- [!] Wave decision: **NO-GO**, recorded at the phase 1 gate at %s" % when(
        events, "host_result", T_GATE_NOGO) in final
    assert ("- [ ] Not run in this trail: the run ended NO-GO with the flag flipped on dgx-1, dgx-2, dgx-3. Roll back "
            "with `ansible-playbook playbooks/rollback.yml -e rollback_wave=wave2`" in section(text, 6))
    for row in ("| 2 | Phase 1 stabilization | NO-GO |", "| 3 | Deploy tdd-expert (wave2 phase 2) | not reached |",
                "| 5 | Final analysis and GO/NO-GO | NO-GO |", "| 6 | Rollback | not run |"):
        assert row in text
    assert "outcome **failed**" in text
    assert_times_are_event_times(text, events)


def test_a_rollback_in_the_same_trail_fills_phase_6(tmp_path):
    trail = wave_run(Trail(tmp_path / "wave2.jsonl"), "wave2", WAVE2, nogo="phase1-T+2h")
    rollback_run(trail, ["network-expert"])
    events = load_events(trail.path)
    text = render_checklist(events, "wave2")
    rollback = section(text, 6)
    starts = [e["ts"][:19] + "Z" for e in events if e["event"] == "playbook_start"]
    assert "- [x] Rollback run `run-2` (playbooks/rollback.yml) started %s" % starts[1] in rollback
    for host in HOSTS:
        assert "- [x] **%s**: restore, restart, verify legacy-only — %s" % (
            host, when(events, "host_result", "Restore the env files from their backups", host)) in rollback
    assert "- [x] Verified fleet-wide and recorded — %s: Restored network-expert" % when(
        events, "host_result", T_RB_RECORD) in rollback
    assert re.search(r"- \[x\] Rollback ended %s — outcome \*\*ok\*\*, \d+ s" % re.escape(events[-1]["ts"][:19] + "Z"),
                     rollback)
    assert "| 6 | Rollback | done |" in text
    assert_times_are_event_times(text, events)


def test_a_deploy_failure_on_dgx_2_is_marked_failed_and_stops_the_checklist(tmp_path):
    trail = wave_run(Trail(tmp_path / "wave2.jsonl"), "wave2", WAVE2, fail_deploy=(1, "dgx-2"))
    events = load_events(trail.path)
    text = render_checklist(events, "wave2")
    deploy = section(text, 1)
    assert "- [x] **dgx-1** — started" in deploy
    failed = when(events, "host_result", "Stop the deploy with the reason", "dgx-2")
    assert re.search(r"- \[!\] \*\*dgx-2\*\* — started \S+, \*\*FAILED\*\* at %s \(\d+ s\) in 'Ensure each agent "
                     r"answers on its unified subject \(dual subscription\)': Deploying network-expert on dgx-2 failed"
                     % re.escape(failed), deploy)
    assert "Restored network-expert from backup" in deploy
    assert "- [ ] **dgx-3** — not reached" in deploy
    assert "| 1 | Deploy network-expert (wave2 phase 1) | FAILED |" in text
    for number in (2, 3, 4):
        assert "- [x]" not in section(text, number) and "not reached" in section(text, number)
    assert "Deploy tdd-expert (wave2 phase 2)" in text  # the wave's other agents: a phase not reached
    assert ("the run ended without a decision with the flag flipped on dgx-1 (dgx-2 restored by the deploy's rescue)"
            in section(text, 6))
    assert "outcome **failed**, failed hosts: dgx-2" in text
    assert_times_are_event_times(text, events)


def test_a_failed_deploy_restored_by_its_rescue_needs_no_rollback(tmp_path):
    trail = wave_run(Trail(tmp_path / "wave1.jsonl"), "wave1", WAVE1, fail_deploy=(1, "dgx-1"))
    text = render_checklist(load_events(trail.path), "wave1")
    assert "- [!] **dgx-1** — started" in section(text, 1)
    assert ("Not needed: no host was left changed by this run (dgx-1 restored by the deploy's rescue); no rollback "
            "ran in this trail." in section(text, 4))
    assert "| 4 | Rollback | not needed |" in text


def test_a_failed_pre_flight_changes_nothing(tmp_path):
    trail = wave_run(Trail(tmp_path / "wave2.jsonl"), "wave2", WAVE2, fail_preflight="dgx-3")
    events = load_events(trail.path)
    text = render_checklist(events, "wave2")
    assert "- [!] **dgx-3**: agents installed, well-formed and answering; units active — **FAILED** at %s in %r" % (
        when(events, "host_result", T_UNITS_ACTIVE, "dgx-3"), T_UNITS_ACTIVE) in section(text, 0)
    assert "| 0 | Pre-deployment (pre-flight) | FAILED |" in text
    # The wave's agents are known from the pre-flight, not their split into phases: one phase not reached.
    assert "## Phase 1 — Deploy network-expert, tdd-expert (wave2 phase 1)" in text
    assert "- [x]" not in "".join(section(text, n) for n in (1, 2, 3))
    assert "Not needed: no host was left changed by this run; no rollback ran in this trail." in text


def test_a_check_mode_run_is_a_preview(tmp_path):
    """--check --diff: the deploy plays run (and report what they would change), the watch and the
    decision end at once."""
    trail = Trail(tmp_path / "wave2.jsonl")
    trail.run("playbooks/wave2.yml", check=True)
    trail.play(PLAY_DEPLOY.format(wave="wave2", n=1), serial=[1])
    trail.task(T_FLIP)
    trail.result("dgx-1", item="network-expert", changed=True)
    trail.result("dgx-1", changed=True, msg="All items completed")
    trail.task(T_DEPLOY_DONE)
    trail.result("dgx-1")
    trail.play(PLAY_WATCH.format(wave="wave2", n=1))
    trail.task("End the watch in check mode (nothing was flipped)")
    trail.result("dgx-1")
    trail.end()
    text = render_checklist(load_events(trail.path), "wave2")
    assert "check mode yes (a preview: nothing was changed or watched)" in text
    assert "— ok: would flip (check mode) network-expert" in section(text, 1)
    assert "Not needed: a check-mode run changes nothing." in text


def test_a_run_still_waiting_for_a_checkpoint_shows_where_it_is(tmp_path):
    trail = wave_run(Trail(tmp_path / "wave2.jsonl"), "wave2", WAVE2, stop_waiting_for="T+12h")
    events = load_events(trail.path)
    text = render_checklist(events, "wave2")
    waiting = [e for e in events if e.get("name") == T_WAIT.format(label="T+12h")][0]["ts"][:19] + "Z"
    assert "- [x] `T+6h` — taken" in section(text, 4)
    assert "- [ ] `T+12h` — not reached (the trail ends while waiting for it, since %s)" % waiting in section(text, 4)
    assert "- [ ] `T+24h` — not reached" in section(text, 4)
    assert "without the end of the run (still running, or killed)" in text
    assert "Not run: the wave run has not ended in this trail." in section(text, 6)
    assert "| 4 | Wave 2 complete monitoring | incomplete |" in text


def test_a_renamed_task_shows_as_not_reached_never_as_done(go_wave2):
    events = load_events(go_wave2.path)
    renamed = []
    for event in events:
        event = dict(event)
        if event.get("host") == "dgx-2" and event.get("task") == T_DEPLOY_DONE:
            event["task"] = "Record this deploy"
        if event.get("name") == T_JUDGE.format(label="T+6h") or event.get("task") == T_JUDGE.format(label="T+6h"):
            event["name" if event["event"] == "task_start" else "task"] = "Judge checkpoint T+6h"
        renamed.append(event)
    text = render_checklist(renamed, "wave2")
    assert re.search(r"- \[ \] \*\*dgx-2\*\* — started \S+, not finished in this trail \(no \"Record the deploy in "
                     r"the run's timeline\" result\)", text)
    assert "- [ ] `T+6h` — not reached" in text
    assert "| 4 | Wave 2 complete monitoring | incomplete |" in text


# ================================================================================ waves 1 and 3

def test_wave_1_has_a_single_phase(tmp_path):
    trail = wave_run(Trail(tmp_path / "wave1.jsonl"), "wave1", WAVE1)
    events = load_events(trail.path)
    text = render_checklist(events, "wave1")
    assert re.findall(r"^## (.*)$", text, re.M) == [
        "Phase 0 — Pre-deployment (pre-flight)", "Phase 1 — Deploy nats-expert (wave1 phase 1)",
        "Phase 2 — Monitoring", "Phase 3 — Final analysis and GO/NO-GO", "Phase 4 — Rollback"]
    assert "- [ ] Previous wave's GO recorded — skipped by the playbook at" in section(text, 0)
    assert [label for label in re.findall(r"`([^`]+)` — taken", text)] == WAVE1[0][1]
    assert "| 0 | Pre-deployment (pre-flight) | done |" in text
    assert_times_are_event_times(text, events)


def test_wave_3_deploys_its_three_agents_in_one_phase(tmp_path):
    agents = ["graph-expert", "git-expert", "location-expert"]
    trail = wave_run(Trail(tmp_path / "wave3.jsonl"), "wave3", [(agents, ["phase1-verification", "T+1h"])])
    text = render_checklist(load_events(trail.path), "wave3")
    assert "## Phase 1 — Deploy graph-expert, git-expert, location-expert (wave3 phase 1)" in text
    assert "ok: flipped graph-expert, git-expert, location-expert" in section(text, 1)
    assert "## Phase 4 — Rollback" in text


def test_a_real_sandbox_wave_1_trail():
    events = load_events(REAL_WAVE1)
    assert waves_in(events) == ["wave1"]
    text = render_checklist(events, "wave1")
    assert "- [!]" not in text and "not reached" not in checks(text)
    # The same times as the run's own report (artifacts/checkpoints/wave1/report.md of that run).
    for host, started, finished in (("dgx-1", "21:53:39", "21:53:49"), ("dgx-2", "21:53:49", "21:53:58"),
                                    ("dgx-3", "21:53:58", "21:54:07")):
        assert "- [x] **%s** — started 2026-11-23T%sZ, finished 2026-11-23T%sZ" % (host, started, finished) in text
    for label, taken in (("phase1-verification", "21:54:24"), ("T+1h", "21:54:33"), ("T+3h", "21:54:43"),
                         ("T+6h", "21:54:54")):
        assert "- [x] `%s` — taken 2026-11-23T%sZ — GO" % (label, taken) in text
    assert "- [x] Wave decision: **GO** at 2026-11-23T21:54:55Z — wave1 is GO" in text
    assert "Not needed: the wave ended GO" in text
    assert_times_are_event_times(text, events)


# ================================================================================ the trail

def test_a_broken_trail_is_refused_with_its_file_and_line(go_wave2):
    path = pathlib.Path(go_wave2.path)
    lines = path.read_text().splitlines(keepends=True)
    lines[9] = lines[9].replace('"status":"ok"', '"status":"failed"', 1)
    path.write_text("".join(lines))
    with pytest.raises(ChecklistError, match=r"^%s: line 10: content does not match its own sha256" % re.escape(str(path))):
        load_events(path)


def test_a_trail_cut_short_is_refused_with_its_anchor(go_wave2):
    anchor = go_wave2.log.anchor
    path = pathlib.Path(go_wave2.path)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[:-2]))
    with pytest.raises(ChecklistError, match="lines were removed from the end"):
        load_events(path, anchor=anchor)


def test_the_last_run_of_the_wave_is_rendered_unless_one_is_named(tmp_path):
    trail = wave_run(Trail(tmp_path / "wave2.jsonl"), "wave2", WAVE2, nogo="phase1-T+1h")
    trail.wait(3600)
    wave_run(trail, "wave2", WAVE2)
    events = load_events(trail.path)
    latest = render_checklist(events, "wave2")
    assert "- Run `run-2`" in latest and "Wave decision: **GO**" in latest
    assert "- This trail holds 1 earlier run(s) of wave2: `run-1`" in latest
    first = render_checklist(events, "wave2", run_id="run-1")
    assert "- Run `run-1`" in first and "Wave decision: **NO-GO**" in first and "earlier run" not in first


def test_a_rollback_belongs_to_the_wave_run_before_it(tmp_path):
    trail = wave_run(Trail(tmp_path / "wave2.jsonl"), "wave2", WAVE2, nogo="phase1-T+1h")
    trail.wait(3600)
    wave_run(trail, "wave2", WAVE2, nogo="T+1h")
    rollback_run(trail, ["network-expert", "tdd-expert"])
    events = load_events(trail.path)
    assert "Rollback run `run-3`" in section(render_checklist(events, "wave2"), 6)
    assert "- [ ] Not run in this trail" in section(render_checklist(events, "wave2", run_id="run-1"), 6)


def test_a_trail_without_a_run_of_the_wave_is_an_error(go_wave2):
    with pytest.raises(ChecklistError, match=r"no run of wave3 in this trail \(runs: playbooks/wave2.yml \(run-1\)\)"):
        render_checklist(load_events(go_wave2.path), "wave3")


# ================================================================================ the script

@pytest.fixture(name="script")
def fixture_script():
    """scripts/render-checklist's main(), in-process."""
    return render_checklist_main


def test_the_script_prints_the_checklist_of_the_wave_it_finds(script, go_wave2, capsys):
    assert script([str(go_wave2.path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# wave2 execution checklist\n")
    assert "Source: %s (hash chain verified)." % go_wave2.path in out


def test_the_script_writes_the_output_file_and_takes_a_rollback_trail(script, tmp_path, capsys):
    trail = wave_run(Trail(tmp_path / "wave2.jsonl"), "wave2", WAVE2, nogo="T+6h")
    rollback = rollback_run(Trail(tmp_path / "rollback.jsonl"), ["network-expert", "tdd-expert"])
    out = tmp_path / "CHECKLIST.md"
    assert script([str(trail.path), str(rollback.path), "--wave", "wave2", "-o", str(out)]) == 0
    assert "wrote %s" % out in capsys.readouterr().err
    text = out.read_text()
    assert "- [!] `T+6h` — taken" in text
    assert "Restored network-expert, tdd-expert" in section(text, 6)


def test_the_script_exits_1_on_a_broken_trail_naming_the_line(script, go_wave2, capsys):
    path = pathlib.Path(go_wave2.path)
    lines = path.read_text().splitlines(keepends=True)
    del lines[4]
    path.write_text("".join(lines))
    assert script([str(path)]) == 1
    err = capsys.readouterr().err
    assert "%s: line 5: seq is 6 where 5 was expected" % path in err
    assert "refusing to render" in err


def test_the_script_exits_1_when_no_wave_ran(script, tmp_path, capsys):
    trail = Trail(tmp_path / "site.jsonl")
    trail.run("playbooks/site.yml")
    trail.play("Ensure the agent services are installed and running")
    trail.end()
    assert script([str(trail.path)]) == 1
    assert "no wave run found; name the wave with --wave" in capsys.readouterr().err
