"""The audit_trail callback in a real ansible-playbook run on localhost, with this repository's
ansible.cfg: the trail verifies, holds the expected events in order with plausible timestamps and
durations, never holds the secret passed as an extra var (only its name), keeps the no_log result
censored; scripts/audit-verify accepts it and names the line after one is edited."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
import yaml

pytestmark = pytest.mark.integration

REPO = pathlib.Path(__file__).resolve().parents[2]
PLAYBOOK = pathlib.Path(sys.executable).parent / "ansible-playbook"
AUDIT_VERIFY = REPO / "scripts" / "audit-verify"
SECRET = "S3cretValue"
CENSORED = "the output has been hidden due to the fact that 'no_log: true' was specified for this result"

PLAY = dict(
    name="Exercise the audit trail", hosts="localhost", gather_facts=False,
    tasks=[
        {"name": "Report ok", "ansible.builtin.debug": {"msg": "all good"}},
        {"name": "Change something", "ansible.builtin.command": {"cmd": "true"}, "notify": "Announce the change"},
        {"name": "Fail but carry on", "ansible.builtin.fail": {"msg": "deliberate failure"}, "ignore_errors": True},
        {"name": "Skip this", "ansible.builtin.debug": {"msg": "never"}, "when": False},
        {"name": "Check each item", "ansible.builtin.assert": {"that": "item != 3", "quiet": True},
         "loop": [1, 2, 3], "when": "item != 2", "ignore_errors": True},
        {"name": "Use the secret", "ansible.builtin.debug": {"msg": "the secret is {{ secret }}"}, "no_log": True},
        {"name": "Reach a closed port", "ansible.builtin.ping": {}, "ignore_unreachable": True,
         "vars": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1}},
    ],
    handlers=[{"name": "Announce the change", "ansible.builtin.debug": {"msg": "changed"}}],
)


class Run:
    def __init__(self, proc, audit, started, finished):
        self.proc, self.audit, self.started, self.finished = proc, audit, started, finished
        self.output = proc.stdout + proc.stderr
        self.events = [json.loads(line) for line in audit.read_text().splitlines()] if audit.exists() else []

    def results(self, task):
        return [e for e in self.events if e["event"] == "host_result" and e["task"] == task]


def run_playbook(workdir, play):
    """Run `play` on localhost from workdir with the trail at workdir/trail/audit.jsonl."""
    (workdir / "play.yml").write_text(yaml.safe_dump([play], sort_keys=False))
    audit = workdir / "trail" / "audit.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "FLEETWAVE_AUDIT_"))}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_CALLBACKS_ENABLED="fleetwave.rollout.audit_trail",
               FLEETWAVE_AUDIT_PATH=str(audit), ANSIBLE_LOCAL_TEMP=str(workdir / ".tmp"),
               ANSIBLE_SSH_CONTROL_PATH_DIR=str(workdir / ".cp"), ANSIBLE_NOCOLOR="1")
    started = datetime.datetime.now(datetime.timezone.utc)
    proc = subprocess.run([str(PLAYBOOK), "-i", "localhost,", "-c", "local", "play.yml",
                           "-e", "ansible_python_interpreter=%s" % sys.executable, "-e", "secret=%s" % SECRET],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=120)
    finished = datetime.datetime.now(datetime.timezone.utc)
    return Run(proc, audit, started, finished)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return run_playbook(tmp_path_factory.mktemp("audit-run"), PLAY)


def test_the_run_succeeds_and_announces_the_trail(run):
    assert run.proc.returncode == 0, run.output
    assert "audit_trail: %s: %d lines, anchor %d:" % (run.audit, len(run.events), len(run.events)) in run.proc.stderr


def test_the_trail_verifies(run):
    proc = subprocess.run([str(AUDIT_VERIFY), str(run.audit)], capture_output=True, text=True, timeout=30)
    assert (proc.returncode, proc.stdout) == (0, "%s: OK (%d lines, chain intact, 1 anchors hold)\n" % (run.audit, len(run.events)))
    anchor = run.proc.stderr.split("anchor ")[1].split()[0]
    proc = subprocess.run([str(AUDIT_VERIFY), "--anchor", anchor, str(run.audit)], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0, proc.stdout


def test_the_events_come_in_the_expected_order(run):
    summary = [(e["event"], e.get("name") or e.get("task"), e.get("status"), e.get("item")) for e in run.events]
    assert summary == [
        ("playbook_start", None, None, None),
        ("play_start", "Exercise the audit trail", None, None),
        ("task_start", "Report ok", None, None),
        ("host_result", "Report ok", "ok", None),
        ("task_start", "Change something", None, None),
        ("host_result", "Change something", "changed", None),
        ("task_start", "Fail but carry on", None, None),
        ("host_result", "Fail but carry on", "failed", None),
        ("task_start", "Skip this", None, None),
        ("host_result", "Skip this", "skipped", None),
        ("task_start", "Check each item", None, None),
        ("host_result", "Check each item", "ok", "1"),
        ("host_result", "Check each item", "skipped", "2"),
        ("host_result", "Check each item", "failed", "3"),
        ("host_result", "Check each item", "failed", None),
        ("task_start", "Use the secret", None, None),
        ("host_result", "Use the secret", "ok", None),
        ("task_start", "Reach a closed port", None, None),
        ("host_result", "Reach a closed port", "unreachable", None),
        ("handler_start", "Announce the change", None, None),
        ("host_result", "Announce the change", "ok", None),
        ("stats", None, None, None),
        ("playbook_end", None, None, None),
    ]


def test_the_run_is_described_without_values(run):
    start, play, end = run.events[0], run.events[1], run.events[-1]
    assert start["playbook"] == "play.yml" and start["check_mode"] is False and start["limit"] is None
    assert start["extra_vars"] == ["ansible_python_interpreter", "secret"] and start["user"] and start["run_id"]
    assert (play["hosts"], play["serial"]) == (["localhost"], [])
    assert run.results("Fail but carry on")[0]["msg"] == "deliberate failure"
    assert run.results("Fail but carry on")[0]["ignored"] is True
    assert run.results("Check each item")[-1]["items"] == 3
    task = next(e for e in run.events if e["event"] == "task_start" and e["name"] == "Change something")
    source = (pathlib.Path(task["path"].rpartition(":")[0])).read_text().splitlines()
    assert source[int(task["path"].rpartition(":")[2]) - 1].strip() == "- name: Change something"
    assert task["action"] == "ansible.builtin.command" and task["role"] is None
    assert run.events[-2]["hosts"]["localhost"] == dict(ok=7, changed=1, failures=0, unreachable=0, skipped=1,
                                                        rescued=0, ignored=3)
    assert end["outcome"] == "ok" and end["failed_hosts"] == []


def test_timestamps_and_durations_are_plausible(run):
    stamps = [datetime.datetime.strptime(e["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)
              for e in run.events]
    assert run.started <= stamps[0] and stamps[-1] <= run.finished
    assert stamps == sorted(stamps)
    durations = [e["duration_ms"] for e in run.events if e["event"] == "host_result"]
    assert all(isinstance(d, int) and 0 <= d <= 60000 for d in durations), durations
    total = (run.finished - run.started).total_seconds() * 1000
    assert 0 < run.events[-1]["duration_ms"] <= total


def test_the_secret_is_nowhere_and_the_no_log_result_is_censored(run):
    assert SECRET not in run.audit.read_text()
    result, = run.results("Use the secret")
    assert result["censored"] == CENSORED and "msg" not in result


def test_audit_verify_names_an_edited_line(run, tmp_path):
    lines = run.audit.read_bytes().splitlines(keepends=True)
    k = next(n for n, e in enumerate(run.events, 1) if e.get("task") == "Change something" and "status" in e)
    assert b'"changed":true' in lines[k - 1]
    lines[k - 1] = lines[k - 1].replace(b'"changed":true', b'"changed":false')
    edited = tmp_path / "edited.jsonl"
    edited.write_bytes(b"".join(lines))
    proc = subprocess.run([str(AUDIT_VERIFY), str(run.audit), str(edited)], capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "%s: OK (%d lines, chain intact, 1 anchors hold)" % (run.audit, len(lines)),
        "%s: BROKEN at line %d: content does not match its own sha256 (the line was edited)" % (edited, k)]


def test_audit_verify_runs_without_the_venv(run, tmp_path):
    """A bare python3 with only its standard library: no venv on PATH, no PYTHONPATH."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
    lines = run.audit.read_bytes().splitlines(keepends=True)
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"".join(lines[:-1]))
    anchor = run.proc.stderr.split("anchor ")[1].split()[0]
    proc = subprocess.run([str(AUDIT_VERIFY), "--anchor", anchor, str(cut)], capture_output=True, text=True,
                          env=env, timeout=30)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.startswith("%s: BROKEN at line %d: the log ends at seq" % (cut, len(lines)))


def test_a_run_aborted_by_an_error_still_ends_its_trail(tmp_path):
    play = dict(name="Abort", hosts="localhost", gather_facts=False,
                tasks=[{"name": "Notify a handler that does not exist", "ansible.builtin.command": {"cmd": "true"},
                        "notify": "No such handler"}])
    aborted = run_playbook(tmp_path, play)
    assert aborted.proc.returncode != 0 and "No such handler" in aborted.output
    assert [(e["event"], e.get("outcome")) for e in aborted.events] == [
        ("playbook_start", None), ("play_start", None), ("task_start", None), ("playbook_end", "aborted")]
    proc = subprocess.run([str(AUDIT_VERIFY), str(aborted.audit)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stdout


# --- issue 8 part 6: the trail keyed with fleet_evidence_key, anchored while it runs -----------------

KEY = "integration-audit-key-not-a-secret"


@pytest.fixture(scope="module")
def keyed_run(tmp_path_factory):
    """PLAY with fleet_evidence_key in the inventory's group_vars, as a vault value would be."""
    workdir = tmp_path_factory.mktemp("audit-keyed")
    (workdir / "inventory/group_vars").mkdir(parents=True)
    (workdir / "inventory/hosts.yml").write_text("all:\n  hosts:\n    localhost:\n")
    (workdir / "inventory/group_vars/all.yml").write_text("fleet_evidence_key: %s\n" % KEY)
    (workdir / "play.yml").write_text(yaml.safe_dump([PLAY], sort_keys=False))
    audit = workdir / "trail" / "audit.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "FLEETWAVE_AUDIT_", "FLEET_"))}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_CALLBACKS_ENABLED="fleetwave.rollout.audit_trail",
               FLEETWAVE_AUDIT_PATH=str(audit), ANSIBLE_LOCAL_TEMP=str(workdir / ".tmp"),
               FLEETWAVE_AUDIT_ANCHOR_EVERY="5", ANSIBLE_SSH_CONTROL_PATH_DIR=str(workdir / ".cp"),
               ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([str(PLAYBOOK), "-i", "inventory", "-c", "local", "play.yml",
                           "-e", "ansible_python_interpreter=%s" % sys.executable, "-e", "secret=%s" % SECRET],
                          cwd=workdir, env=env, capture_output=True, text=True, timeout=120)
    return Run(proc, audit, None, None)


def verify_with_key(*files):
    env = dict(os.environ, FLEET_EVIDENCE_KEY=KEY)
    return subprocess.run([str(AUDIT_VERIFY), *map(str, files)], capture_output=True, text=True, timeout=30, env=env)


def test_artifacts_are_trusted_as_input_the_trail_is_keyed_and_anchored_during_the_run(keyed_run):
    assert keyed_run.proc.returncode == 0, keyed_run.output
    assert all(e.get("mac") and e["key_id"] == keyed_run.events[0]["key_id"] for e in keyed_run.events)
    anchors = [json.loads(line) for line in (keyed_run.audit.parent / "anchors.jsonl").read_text().splitlines()]
    assert [a["seq"] for a in anchors][:3] == [5, 10, 15] and anchors[-1]["seq"] == len(keyed_run.events)
    proc = verify_with_key(keyed_run.audit)
    assert proc.returncode == 0 and proc.stdout.strip().endswith(
        "OK (%d lines, chain intact, every mac valid (key %s), %d anchors hold)"
        % (len(keyed_run.events), keyed_run.events[0]["key_id"], len(anchors)))


def test_artifacts_are_trusted_as_input_audit_verify_names_a_rehashed_forgery(keyed_run, tmp_path):
    lines = keyed_run.audit.read_bytes().splitlines()
    k = next(n for n, e in enumerate(keyed_run.events, 1) if e.get("task") == "Change something" and "status" in e)
    lines[k - 1] = lines[k - 1].replace(b'"changed":true', b'"changed":false')
    out, head = [], "0" * 64
    for raw in lines:  # every hash recomputed, as anyone who can write the file could
        record = json.loads(raw)
        record["prev"] = head
        body = {key: v for key, v in record.items() if key not in ("sha256", "mac")}
        record["sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        out.append(json.dumps(record, sort_keys=True, separators=(",", ":")).encode())
        head = hashlib.sha256(out[-1]).hexdigest()
    forged = tmp_path / "audit.jsonl"
    forged.write_bytes(b"\n".join(out) + b"\n")
    assert subprocess.run([str(AUDIT_VERIFY), str(forged)], capture_output=True, timeout=30).returncode == 0
    proc = verify_with_key(forged)
    assert proc.returncode == 1
    assert proc.stdout.strip() == ("%s: BROKEN at line %d: its mac does not match (the line was edited and its hashes "
                                   "recomputed without the key)" % (forged, k))


def test_the_evidence_key_is_nowhere_in_the_trail_anchors_or_output(keyed_run):
    written = [p for p in keyed_run.audit.parent.rglob("*") if p.is_file()]
    assert len(written) == 2
    assert KEY not in keyed_run.output and not [p for p in written if KEY.encode() in p.read_bytes()]


def test_artifacts_are_trusted_as_input_a_trail_killed_with_sigkill_verifies_up_to_its_last_anchor(tmp_path):
    """A real ansible-playbook run killed with SIGKILL mid-play: no exit hook, no printed anchor, yet
    the anchors written while it ran vouch for its trail, and cutting the trail below one is caught."""
    (tmp_path / "inventory/group_vars").mkdir(parents=True)
    (tmp_path / "inventory/hosts.yml").write_text("all:\n  hosts:\n    localhost:\n")
    (tmp_path / "inventory/group_vars/all.yml").write_text("fleet_evidence_key: %s\n" % KEY)
    play = dict(name="Run until killed", hosts="localhost", gather_facts=False, tasks=[
        {"name": "Report each item", "ansible.builtin.debug": {"msg": "{{ item }}"}, "loop": list(range(12))},
        {"name": "Wait to be killed", "ansible.builtin.pause": {"seconds": 120}}])
    (tmp_path / "play.yml").write_text(yaml.safe_dump([play], sort_keys=False))
    audit, anchors = tmp_path / "trail" / "audit.jsonl", tmp_path / "trail" / "anchors.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "FLEETWAVE_AUDIT_", "FLEET_"))}
    env.update(ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_CALLBACKS_ENABLED="fleetwave.rollout.audit_trail",
               FLEETWAVE_AUDIT_PATH=str(audit), ANSIBLE_LOCAL_TEMP=str(tmp_path / ".tmp"),
               FLEETWAVE_AUDIT_ANCHOR_EVERY="5", ANSIBLE_NOCOLOR="1")
    proc = subprocess.Popen([str(PLAYBOOK), "-i", "inventory", "-c", "local", "play.yml",
                             "-e", "ansible_python_interpreter=%s" % sys.executable],
                            cwd=tmp_path, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and not (
                audit.exists() and any('"Wait to be killed"' in line for line in audit.read_text().splitlines())):
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        output = proc.communicate(timeout=30)[0].decode()
    assert proc.returncode == -signal.SIGKILL, output
    lines = audit.read_bytes().splitlines(keepends=True)
    assert not any(json.loads(line)["event"] == "playbook_end" for line in lines)  # killed, not ended
    last = [json.loads(line) for line in anchors.read_text().splitlines()][-1]
    assert last["seq"] >= 10, last  # anchored while it ran: 12 items and the starts give 15+ lines
    checked = verify_with_key(audit)
    assert checked.returncode == 0 and "anchors hold" in checked.stdout, checked.stdout + checked.stderr
    # Cut below the last anchor (as a tamperer hiding the last records would): refused, naming the line.
    (tmp_path / "cut").mkdir()
    cut = tmp_path / "cut" / "audit.jsonl"
    cut.write_bytes(b"".join(lines[:last["seq"] - 1]))
    (tmp_path / "cut" / "anchors.jsonl").write_bytes(anchors.read_bytes())
    refused = verify_with_key(cut)
    assert refused.returncode != 0 and "line %d" % last["seq"] in refused.stdout + refused.stderr, (
        refused.stdout + refused.stderr)
