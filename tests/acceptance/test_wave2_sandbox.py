"""Wave 2 and rollback end to end on the test fleet, proven over real NATS requests.

The tests of this module share one wave 2 run (module fixture) and run in file order: the
read-only checks first, then a second run, then the rollbacks that change the fleet.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time

import pytest

from .conftest import (AGENTS, ARTIFACTS, HOSTS, QUICK_WAVE2, ROOT, ensure_legacy, env_flag, fleet_snapshot, gather,
                       podman_exec, run_playbook, server_subscribers, subject)

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(900)]

WAVE2 = ("network-expert", "tdd-expert")
# The test fleet is mixed: tdd-expert's units run tests/agents/contract_agent.py, an agent written from
# the contract alone (no Agent-Target, no Agent-Host, no emit, no status), the others the reference agent.
CONTRACT_ONLY = "tdd-expert"
CONTROL = ("graph-expert", "git-expert", "location-expert")
LABELS = ["phase1-verification", "phase1-T+1h", "phase1-T+2h",
          "phase2-verification", "T+1h", "T+6h", "T+12h", "T+24h"]


def decision():
    return json.loads((ARTIFACTS / "checkpoints/wave2/decision.json").read_text())


def journal():
    """The records of the run the wave decision was made from."""
    return [json.loads(line) for line in (ARTIFACTS / decision()["journal"]).read_text().splitlines() if line]


@pytest.fixture(scope="module")
def wave2(sandbox, wave1_go, tmp_path_factory):
    """Wave 2 run once from a legacy-only fleet with the sandbox's settings as a user runs it."""
    tmp = tmp_path_factory.mktemp("wave2")
    ensure_legacy(tmp)
    started = time.monotonic()
    # As an AWX workflow starts it: wave 1's job handed its run over (set_stats), which the pre-flight
    # holds against the decision recorded.
    wave1 = json.loads(wave1_go.read_text())
    run = run_playbook(tmp, "wave2.yml", extravars={"fleetwave_wave1": {"run_id": wave1["run_id"], "decision": "GO"}})
    print("wave 2 on the sandbox took %.0f s" % (time.monotonic() - started))
    assert run.rc == 0, run.stdout[-4000:]
    return run


def test_check_mode_previews_the_flip_and_changes_nothing(legacy_fleet, wave1_go, tmp_path):
    before = fleet_snapshot()
    run = run_playbook(tmp_path, "wave2.yml", "--check", "--diff")
    assert run.rc == 0, run.stdout[-4000:]
    assert "+ENABLE_UNIFIED_SUBJECTS=true" in run.stdout
    assert fleet_snapshot() == before


def test_wave2_ends_go_with_every_checkpoint(wave2):
    recorded = decision()
    assert recorded["outcome"] == "GO"
    assert [c["label"] for c in recorded["checkpoints"]] == LABELS
    assert all(c["outcome"] == "GO" for c in recorded["checkpoints"])
    report = (ARTIFACTS / "checkpoints/wave2/report.md").read_text()
    assert report.startswith("# wave2: GO")
    assert "GO: all 8 checkpoints passed." in report


def test_wave2_hands_its_run_and_decision_over_to_the_next_node(wave2):
    handed = wave2.handed_over()["fleetwave_wave2"]
    recorded = decision()
    assert (handed["run_id"], handed["decision"], handed["reasons"]) == (recorded["run_id"], "GO", [])
    assert handed["lock_holder"] is None  # released with the decision (the pre-flight's was the run)
    for name, path in (("decision", ARTIFACTS / "checkpoints/wave2/decision.json"),
                       ("report", ARTIFACTS / "checkpoints/wave2/report.md")):
        assert handed["%s_sha256" % name] == hashlib.sha256(path.read_bytes()).hexdigest(), name
    assert handed["report"] == str(ARTIFACTS / "checkpoints/wave2/report.md")


def test_a_wave_handed_another_run_of_the_previous_wave_refuses_and_changes_nothing(wave2, tmp_path):
    before = fleet_snapshot()
    run = run_playbook(tmp_path, "wave3.yml", extravars={"fleetwave_wave2": {"run_id": "wave2-20990101T000000Z",
                                                                             "decision": "GO"}})
    assert run.rc != 0
    assert any("The workflow handed over wave2 run wave2-20990101T000000Z" in m
               and "records run %s (GO)" % decision()["run_id"] in m and "Nothing was changed" in m
               for m in run.failed_messages()), run.failed_messages() or run.stdout[-3000:]
    assert fleet_snapshot() == before


PRIMARY = {"agent_uptime", "error_rate", "message_delivery", "latency_p50", "latency_p99", "dual_publish_success",
           "unified_traffic_share"}
SECONDARY = {"cpu_overhead", "memory_overhead", "publish_time", "system_load"}


def test_every_checkpoint_measures_all_primary_criteria_and_reports_the_secondary(wave2):
    for label in LABELS:
        record = json.loads((ARTIFACTS / "checkpoints/wave2" / label / "decision.json").read_text())
        flipped = WAVE2[:1] if label.startswith("phase1") else WAVE2
        instances = {"%s@%s" % (agent, host) for agent in flipped for host in HOSTS}
        primary = [r for r in record["criteria"] if r["kind"] == "primary"]
        assert {(r["name"], r["agent"]) for r in primary} == {(n, i) for n in PRIMARY for i in instances}, label
        assert all(r["measured"] is not None and r["passed"] for r in primary), (label, primary)
        secondary = {r["name"]: r for r in record["criteria"] if r["kind"] == "secondary"}
        assert set(secondary) == SECONDARY, label
        assert all(r["measured"] is not None for r in secondary.values()), (label, secondary)
        # A healthy wave fails no secondary criterion either (issue 12): a figure that fails on every
        # healthy run teaches people to ignore the report.
        assert [n for n, r in secondary.items() if not r["passed"]] == [], (label, secondary)
        assert record["outcome"] == "GO" and record["next_step"] == "proceed", label
        assert record["reference_kind"] == "control", label
        # Each flipped instance against its own pre-flip latency and failed requests: no difference in
        # a healthy wave.
        sequential = [c for c in record["comparisons"] if c.get("test") == "sequential"]
        for metric in ("latency_ms", "error_rate_pct"):
            rows = [c for c in sequential if c["metric"] == metric]
            assert {c["instance"] for c in rows} == instances, (label, metric)
            assert all(c["verdict"] == "no difference so far" for c in rows), rows
        assert all(c["baseline_median_ms"] for c in sequential if c["metric"] == "latency_ms"), sequential
        assert all(c["baseline_rate_pct"] is not None for c in sequential if c["metric"] == "error_rate_pct"), sequential


def test_phase1_goes_host_by_host_before_phase2(wave2):
    deploys = [(r["phase"], r["host"], r["started"], r["finished"]) for r in journal() if r["step"] == "deploy"]
    assert [d[:2] for d in deploys] == [("phase1", h) for h in HOSTS] + [("phase2", h) for h in HOSTS]
    # Host by host: each deploy starts after the one before it finished.
    assert all(deploys[i][3] <= deploys[i + 1][2] for i in range(len(deploys) - 1)), deploys
    gate = [r for r in journal() if r["step"] == "gate" and r["phase"] == "phase1"]
    assert gate and gate[0]["outcome"] == "GO" and gate[0]["finished"] <= deploys[3][2]


def test_the_checklist_and_report_show_every_step_with_its_real_time(wave2):
    """Rendered from the journal this GO run wrote: every step of the seed's checklist is done,
    with the times the journal recorded, and the report's timeline lists the same records."""
    records = journal()
    run_id = decision()["run_id"]
    checklist = (ARTIFACTS / "runs" / run_id / "checklist.md").read_text()
    items = [line for line in checklist.splitlines() if line.startswith("- [")]
    expected = 1 + len(HOSTS) + 1 + 2 * len(HOSTS) + len(LABELS) + 1 + 2 + 1 + 1  # see the headings below
    assert len(items) == expected, checklist
    done = [line for line in items if line.startswith("- [x]")]
    assert len(done) == expected - 1 and items[-1] == "- [ ] Rollback: not needed (GO)", checklist
    for record in records:
        if record["step"] in ("preflight", "deploy", "checkpoint", "gate", "decision"):
            assert "%s → %s" % (record["started"] or "-", record["finished"]) in checklist, record
    for heading in ("Phase 0 — pre-deployment", "Phase 1 — deploy network-expert (phase1)",
                    "Phase 2 — phase1 stabilization", "Phase 3 — deploy tdd-expert (phase2)", "Phase 4 — monitoring",
                    "Phase 5 — final analysis", "Phase 6 — rollback"):
        assert "## " + heading in checklist
    rendered = subprocess.run([str(ROOT / "scripts/render-checklist"), str(ARTIFACTS / "runs" / run_id / "journal.jsonl")],
                              capture_output=True, text=True, check=True).stdout
    assert rendered == checklist
    report = (ARTIFACTS / "checkpoints/wave2/report.md").read_text()
    assert "From the run journal `runs/%s/journal.jsonl`." % run_id in report
    for record in records:
        if record["step"] in ("deploy", "checkpoint"):
            assert "| %d | " % record["seq"] in report and record["finished"] in report, record


def test_every_checkpoint_folder_verifies_against_its_manifest(wave2):
    for label in LABELS:
        folder = ARTIFACTS / "checkpoints/wave2" / label
        assert {"observations.json", "decision.json", "summary.md"} <= {p.name for p in folder.iterdir()}
        subprocess.run(["sha256sum", "--quiet", "-c", "MANIFEST.sha256"], cwd=folder, check=True)


def test_wave2_agents_answer_on_both_subjects_and_control_stays_legacy(wave2):
    for host in HOSTS:
        for agent in WAVE2:
            assert env_flag(host, agent) == "true", (host, agent)
        for agent in CONTROL:
            assert env_flag(host, agent) == "false", (host, agent)
    unified = gather(subject("network-expert", "unified"))
    assert unified["hosts"] == list(HOSTS) and unified["unified"] == [True], unified
    assert gather(subject("network-expert", "legacy"))["hosts"] == list(HOSTS)
    # The contract-only agent names no host: the server shows its three instances on both subjects.
    for via in ("unified", "legacy"):
        assert len(server_subscribers(subject(CONTRACT_ONLY, via))) == len(HOSTS), via
        assert gather(subject(CONTRACT_ONLY, via))["replies"] == 1, via  # a queue group: one answer
    for agent in CONTROL:
        assert gather(subject(agent, "unified"))["no_responders"], agent


def test_the_contract_only_agent_goes_through_wave2_proven_by_the_server(wave2):
    """An agent we did not write, as tdd-expert's real units: every instance proven from the NATS
    server's own view, its events (which name no host) judged per agent type, GO."""
    for host in HOSTS:
        assert "contract_agent.py" in podman_exec(host, "systemctl", "show", "-p", "ExecStart",
                                                  "agent@%s.service" % CONTRACT_ONLY)
    last = json.loads((ARTIFACTS / "checkpoints/wave2/T+24h/decision.json").read_text())
    assert last["outcome"] == "GO"
    checks = [c for c in last["health"] if c["agent"] == CONTRACT_ONLY and c["check"] == "server: subscriptions"]
    assert sorted(c["host"] for c in checks) == list(HOSTS) and all(c["ok"] for c in checks), checks
    assert all(c["measured"].startswith("subscribed on legacy and unified (cid ") for c in checks), checks
    rows = [r for r in last["criteria"] if r["name"] == "dual_publish_success" and r["agent"].startswith(CONTRACT_ONLY)]
    assert len(rows) == len(HOSTS) and all(r["passed"] and r["measured"] > 99 for r in rows), rows
    summary = (ARTIFACTS / "checkpoints/wave2/T+24h/summary.md").read_text()
    assert "events of %s name no host" % CONTRACT_ONLY in summary


def test_a_second_run_changes_nothing_and_is_still_go(wave2, tmp_path):
    before = fleet_snapshot()
    run = run_playbook(tmp_path, "wave2.yml", extravars=QUICK_WAVE2)
    assert run.rc == 0, run.stdout[-4000:]
    assert fleet_snapshot() == before, "a second run restarted an agent, took a backup or changed a file"
    assert decision()["outcome"] == "GO"


def latest_rollback_record() -> dict:
    """The newest record of rollback.yml (a readiness run's rehearsal writes rehearsal-<run>.json)."""
    return json.loads(max((ARTIFACTS / "rollbacks").glob("rollback-*.json"), key=lambda p: p.stat().st_mtime_ns)
                      .read_text())


def test_rollback_of_one_agent_on_one_host_leaves_the_rest(wave2, tmp_path):
    run = run_playbook(tmp_path, "rollback.yml", "--limit", "dgx-2", extravars={"rollback_agents": "network-expert"})
    assert run.rc == 0, run.stdout[-4000:]
    assert env_flag("dgx-2", "network-expert") == "false"
    assert env_flag("dgx-2", "tdd-expert") == "true"
    assert env_flag("dgx-1", "network-expert") == "true"
    assert gather(subject("network-expert", "unified"))["hosts"] == ["dgx-1", "dgx-3"]
    assert gather(subject("network-expert", "legacy"))["hosts"] == list(HOSTS)
    # The proof covers the limited host only, though dgx-1 and dgx-3 still answer on unified.
    proof = latest_rollback_record()["detail"]["legacy_only"]
    assert proof["proven"] is True and proof["hosts"] == ["dgx-2"], proof
    assert list(proof["instances"]) == ["network-expert@dgx-2"], proof
    assert proof["instances"]["network-expert@dgx-2"]["events_unified"] == 0, proof
    # The server's view of that instance: its own connection holds legacy, not unified. A limited run
    # cannot tell other hosts' instances from impostors, so it judges none.
    server = proof["server"]
    assert list(server["instances"]) == ["network-expert@dgx-2"], server
    assert server["instances"]["network-expert@dgx-2"]["ok"] and server["impostors"] == [], server


def test_rollback_returns_every_flipped_agent_to_legacy_only(wave2, tmp_path):
    flipped = {h: sorted(a for a in AGENTS if env_flag(h, a) == "true") for h in HOSTS}
    assert any(flipped.values())
    started = time.monotonic()
    run = run_playbook(tmp_path, "rollback.yml")
    print("rollback took %.1f s" % (time.monotonic() - started))
    assert run.rc == 0, run.stdout[-4000:]
    for agent in WAVE2:
        for host in HOSTS:
            assert env_flag(host, agent) == "false", (host, agent)
        unified = gather(subject(agent, "unified"))
        assert unified["no_responders"] and unified["replies"] == 0, (agent, unified)
        assert server_subscribers(subject(agent, "unified")) == [], agent
        assert len(server_subscribers(subject(agent, "legacy"))) == len(HOSTS), agent
    legacy = gather(subject("network-expert", "legacy"))
    assert legacy["hosts"] == list(HOSTS) and legacy["unified"] == [False], legacy
    record = latest_rollback_record()
    assert record["step"] == "rollback" and record["outcome"] == "rolled back" and record["next_step"] == "stop"
    proof = record["detail"]["legacy_only"]
    assert proof["proven"] is True and proof["hosts"] == list(HOSTS), proof
    # Every agent with a backup restored (wave 1's nats-expert too, and every one that was flipped),
    # proven on every host.
    restored = {b["agent"] for backups in record["detail"]["backups"].values() for b in backups}
    assert {a for agents in flipped.values() for a in agents} <= restored, (flipped, restored)
    assert sorted(proof["instances"]) == sorted("%s@%s" % (a, h) for a in restored for h in HOSTS), proof
    assert all(i["delivery"] == 1.0 and i["unified_replies"] == 0 for i in proof["instances"].values()), proof
    # Events by instance where they name their host (the reference agent); the contract-only agent's
    # are judged for the agent type as a whole, which is exact for a rollback of every host.
    for name, i in proof["instances"].items():
        if name.startswith(CONTRACT_ONLY + "@"):
            assert i["events_legacy"] is None and i["events_unified"] is None, (name, i)
        else:
            assert i["events_legacy"] > 0 and i["events_unified"] == 0, (name, i)
    assert proof["events"][CONTRACT_ONLY]["legacy"] > 0 and proof["events"][CONTRACT_ONLY]["unified"] == 0, proof
    # ... and by the NATS server: each instance's own connection on legacy only, no impostor.
    server = proof["server"]
    assert server["proven"] and sorted(server["instances"]) == sorted(proof["instances"]), server
    assert all(i["legacy"] is True and i["unified"] is False and i["cids"] for i in server["instances"].values()), server
    # ... and watched after (the test fleet's compressed hour: one round 1 s after the proof).
    watch = record["detail"]["post_rollback"]
    assert watch["stable"] is True and watch["reasons"] == [], watch
    handed = run.handed_over()["fleetwave_rollback"]
    assert (handed["run_id"], handed["proven"], handed["stable"]) == (record["run_id"], True, True)
    assert handed["record"] == str(ARTIFACTS / "rollbacks" / ("%s.json" % record["run_id"]))
    assert [r["round"] for r in watch["rounds"]] == [1] and watch["rounds"][0]["at_seconds"] >= 1, watch
    assert {h: sorted(a) for h, a in record["detail"]["changed"].items()} == flipped


def test_the_post_rollback_check_proves_the_rolled_back_agents_again_and_fails_on_one_flipped(wave2, tmp_path):
    """After the rollback above: the check on its own passes; once an agent is flipped by hand behind
    it, the check fails naming that instance, and changes nothing."""
    run = run_playbook(tmp_path, "post-rollback-check.yml", extravars={"rollback_wave": "wave2"})
    assert run.rc == 0, run.stdout[-4000:]
    handed = run.handed_over()["fleetwave_post_rollback_check"]
    assert handed["agents"] == list(WAVE2) and handed["proven"] is True and handed["stable"] is True, handed
    env = "/etc/agents/network-expert.env"
    podman_exec("dgx-3", "sed", "-i", "s/^ENABLE_UNIFIED_SUBJECTS=.*/ENABLE_UNIFIED_SUBJECTS=true/", env)
    podman_exec("dgx-3", "systemctl", "restart", "agent@network-expert.service")
    try:
        before = fleet_snapshot()
        run = run_playbook(tmp_path, "post-rollback-check.yml",
                           extravars={"rollback_agents": "network-expert", "wave_rollback_verify_seconds": 5})
        assert run.rc != 0, run.stdout[-4000:]
        assert any("network-expert@dgx-3" in m for m in run.failed_messages()), run.failed_messages()
        assert fleet_snapshot() == before
    finally:
        podman_exec("dgx-3", "sed", "-i", "s/^ENABLE_UNIFIED_SUBJECTS=.*/ENABLE_UNIFIED_SUBJECTS=false/", env)
        podman_exec("dgx-3", "systemctl", "restart", "agent@network-expert.service")
