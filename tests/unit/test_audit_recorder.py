"""AuditRecorder (plugins/module_utils/fleet_audit.py) driven with plain values, and the audit_trail
callback plugin's mapping of Ansible's hooks onto it, driven with fake task/result objects: the
expected events, durations from the task start, names but never values of extra vars, never module
arguments, diffs or output, and only the censored form of a no_log result."""

from __future__ import annotations

import json
import os
import pathlib
from types import SimpleNamespace

import pytest
from ansible import context
from ansible.module_utils.common.collections import ImmutableDict
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_audit import CENSORED, AuditLog, AuditRecorder, check, verify
from ansible.plugins.loader import callback_loader
from ansible.utils import vars as ansible_vars

pytestmark = pytest.mark.unit

REPO = pathlib.Path(__file__).resolve().parents[2]
SECRET = "S3cretValue"


class Clock:
    """Monotonic seconds that move only when told."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def events(path):
    return [json.loads(line) for line in pathlib.Path(path).read_text().splitlines()]


def fields(event):
    """An event without the chain keys."""
    return {k: v for k, v in event.items() if k not in ("seq", "ts", "prev", "sha256")}


@pytest.fixture
def rec(tmp_path):
    """(recorder, clock, path) on a fresh log."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    clock = Clock()
    yield AuditRecorder(log, clock=clock), clock, path
    log.close()


# ================================================================================ the recorder


def test_a_run_writes_the_expected_events(rec):
    recorder, clock, path = rec
    recorder.playbook_start("playbooks/wave2.yml", "run-1", "awx", True, "dgx-1", ["wave_name", "secret"])
    recorder.play_start("Wave 2", ["fleet"], [1])
    recorder.task_start("t1", "Set the flag", "fleetwave.agent_env", role="agent_flag", path="roles/x.yml:3")
    clock.now += 1.5
    recorder.host_result("t1", "dgx-1", "ok", dict(changed=True, msg="flag set"), task="Set the flag",
                         action="fleetwave.agent_env")
    recorder.task_start("h1", "Restart the agent", "ansible.builtin.systemd_service", handler=True)
    clock.now += 0.25
    recorder.host_result("h1", "dgx-1", "ok", dict(changed=False), task="Restart the agent")
    counts = {"dgx-1": dict(ok=2, changed=1, failures=0, unreachable=0, skipped=0)}
    recorder.stats(counts)
    clock.now += 0.5
    recorder.playbook_end(counts)

    assert [fields(e) for e in events(path)] == [
        dict(event="playbook_start", playbook="playbooks/wave2.yml", run_id="run-1", user="awx", check_mode=True,
             limit="dgx-1", extra_vars=["secret", "wave_name"]),
        dict(event="play_start", name="Wave 2", hosts=["fleet"], serial=[1]),
        dict(event="task_start", name="Set the flag", action="fleetwave.agent_env", role="agent_flag",
             path="roles/x.yml:3"),
        dict(event="host_result", host="dgx-1", task="Set the flag", action="fleetwave.agent_env", status="changed",
             changed=True, duration_ms=1500, msg="flag set"),
        dict(event="handler_start", name="Restart the agent", action="ansible.builtin.systemd_service", role=None,
             path=None),
        dict(event="host_result", host="dgx-1", task="Restart the agent", action=None, status="ok", changed=False,
             duration_ms=250),
        dict(event="stats", hosts=counts),
        dict(event="playbook_end", outcome="ok", failed_hosts=[], duration_ms=2250),
    ]
    assert verify(path) == (True, None, "8 lines, chain intact")


def test_failed_skipped_unreachable_and_ignored_results(rec):
    recorder, _clock, path = rec
    recorder.task_start("t", "Probe", "ansible.builtin.ping")
    recorder.host_result("t", "dgx-1", "failed", dict(failed=True, msg="boom"), ignored=True)
    recorder.host_result("t", "dgx-2", "skipped", dict(skipped=True, skip_reason="Conditional result was False"))
    recorder.host_result("t", "dgx-3", "unreachable", dict(unreachable=True, msg="ssh: no route"))
    got = [fields(e) for e in events(path)[1:]]
    assert [(e["host"], e["status"], e.get("ignored"), e.get("msg")) for e in got] == [
        ("dgx-1", "failed", True, "boom"), ("dgx-2", "skipped", None, None),
        ("dgx-3", "unreachable", None, "ssh: no route")]
    recorder.playbook_end({"dgx-1": dict(failures=1), "dgx-3": dict(unreachable=1), "dgx-2": dict(failures=0)})
    end = events(path)[-1]
    assert end["outcome"] == "failed" and end["failed_hosts"] == ["dgx-1", "dgx-3"] and end["duration_ms"] is None


def test_loop_items_keep_their_label_and_the_loop_its_item_count(rec):
    recorder, _clock, path = rec
    recorder.task_start("t", "Each agent", "ansible.builtin.debug")
    recorder.host_result("t", "dgx-1", "ok", dict(msg="one", item=dict(name="one", token=SECRET),
                                                   _ansible_item_label="one"), item=True)
    recorder.host_result("t", "dgx-1", "skipped", dict(skipped=True, item=3), item=True)
    recorder.host_result("t", "dgx-1", "ok", dict(msg="All items completed", results=[{}, {}]))
    got = [fields(e) for e in events(path)[1:]]
    assert [(e["status"], e.get("item"), e.get("loop_item"), e.get("items")) for e in got] == [
        ("ok", "one", True, None), ("skipped", "3", True, None), ("ok", None, None, 2)]
    assert SECRET not in path.read_text()


def test_a_result_of_an_unknown_task_has_no_duration(rec):
    recorder, _clock, path = rec
    recorder.host_result("never-started", "dgx-1", "ok", {})
    assert events(path)[0]["duration_ms"] is None


@pytest.mark.parametrize("how", ["task no_log", "result _ansible_no_log"])
def test_no_log_results_are_censored(rec, how):
    recorder, _clock, path = rec
    result = dict(changed=True, msg=SECRET, stdout=SECRET, item=SECRET, _ansible_item_label=SECRET,
                  invocation=dict(module_args=dict(password=SECRET)), results=[dict(msg=SECRET)])
    if how == "result _ansible_no_log":
        result["_ansible_no_log"] = True
    recorder.task_start("t", "Use the secret", "ansible.builtin.debug")
    recorder.host_result("t", "localhost", "ok", result, task="Use the secret", no_log=how == "task no_log")
    recorder.host_result("t", "localhost", "failed", dict(result, failed=True), no_log=how == "task no_log",
                         item=True)
    ok, failed = (fields(e) for e in events(path)[1:])
    assert ok == dict(event="host_result", host="localhost", task="Use the secret", action=None, status="changed",
                      changed=True, duration_ms=0, censored=CENSORED)
    assert failed == dict(event="host_result", host="localhost", task=None, action=None, status="failed",
                          changed=True, duration_ms=0, censored=CENSORED, loop_item=True)
    assert SECRET not in path.read_text()


def test_args_diffs_and_output_are_never_recorded(rec):
    recorder, _clock, path = rec
    recorder.task_start("t", "Write the env file", "fleetwave.agent_env")
    recorder.host_result("t", "dgx-1", "ok", dict(
        changed=True, msg="updated", invocation=dict(module_args=dict(nats_password=SECRET)),
        diff=dict(before="A=%s" % SECRET, after="B"), stdout=SECRET, stdout_lines=[SECRET], stderr=SECRET,
        backup_file="/var/lib/x", env=dict(NATS_PASSWORD=SECRET)))
    event = fields(events(path)[1])
    assert sorted(event) == ["action", "changed", "duration_ms", "event", "host", "msg", "status", "task"]
    assert SECRET not in path.read_text()


def test_extra_vars_are_recorded_by_name_only(rec):
    recorder, _clock, path = rec
    recorder.playbook_start("site.yml", "r", "u", False, None, {"vault_nats_password": SECRET, "wave": "wave2"})
    assert events(path)[0]["extra_vars"] == ["vault_nats_password", "wave"]
    assert SECRET not in path.read_text()


def test_long_messages_are_truncated_and_their_length_kept(tmp_path):
    with AuditLog(tmp_path / "a.jsonl") as log:
        AuditRecorder(log, max_msg_chars=10).host_result("t", "h", "failed", dict(msg="x" * 25))
        AuditRecorder(log, max_msg_chars=10).host_result("t", "h", "failed", dict(msg=dict(rc=1, why="b" * 20)))
        AuditRecorder(log, max_msg_chars=0).host_result("t", "h", "failed", dict(msg="kept nowhere"), item=True)
        AuditRecorder(log).host_result("t", "h", "ok", dict(msg=""))
        AuditRecorder(log).host_result("t", "h", "ok", dict(msg={1: "a", "b": 2}))
    got = [fields(e) for e in events(tmp_path / "a.jsonl")]
    assert (got[0]["msg"], got[0]["msg_chars"]) == ("x" * 10, 25)
    assert (got[1]["msg"], got[1]["msg_chars"]) == ('{"rc": 1, ', 40)
    assert "msg" not in got[2] and got[2]["item"] is None
    assert "msg" not in got[3] and "msg_chars" not in got[3]
    assert got[4]["msg"] == "{1: 'a', 'b': 2}"


# ================================================================================ the plugin


class FakeDisplay:
    def __init__(self):
        self.warnings, self.lines = [], []

    def warning(self, msg):
        self.warnings.append(msg)

    def display(self, msg, stderr=False):
        self.lines.append((msg, stderr))


def fake_task(uuid, name, action="ansible.builtin.debug", no_log=False, role=None):
    return SimpleNamespace(_uuid=uuid, get_name=lambda: name, action=action, no_log=no_log,
                           _role=SimpleNamespace(get_name=lambda: role) if role else None,
                           get_path=lambda: "play.yml:%d" % len(name))


def fake_result(task, host, result):
    return SimpleNamespace(task=task, host=SimpleNamespace(get_name=lambda: host), task_name=task.get_name(),
                           result=result)


@pytest.fixture
def plugin(monkeypatch):
    """make(**options) -> the audit_trail callback with options set directly and a fake display."""
    monkeypatch.setattr(context, "CLIARGS", ImmutableDict(check=True, subset="dgx-1",
                                                          extra_vars=("secret=%s" % SECRET, "wave=wave2")))
    monkeypatch.setattr(ansible_vars.load_extra_vars, "extra_vars", None, raising=False)  # it caches
    callback_loader.add_directory(str(REPO / "plugins/callback"))

    def make(**options):
        callback = callback_loader.get("audit_trail")
        assert callback is not None, "plugins/callback/audit_trail.py not found"
        callback.set_options(direct=options)
        callback._display = FakeDisplay()
        return callback

    return make


def test_the_plugin_is_an_aggregate_callback_that_must_be_enabled(plugin, tmp_path):
    callback = plugin(path=str(tmp_path / "a.jsonl"))
    assert (callback.CALLBACK_TYPE, callback.CALLBACK_NAME, callback.CALLBACK_NEEDS_ENABLED) == (
        "aggregate", "audit_trail", True)
    assert callback.get_option("max_msg_chars") == 2000


def test_the_plugin_maps_each_hook_onto_the_recorder(plugin, tmp_path):
    callback = plugin(path=str(tmp_path / "audit" / "a.jsonl"), max_msg_chars=5)
    callback.v2_playbook_on_start(SimpleNamespace(_file_name="playbooks/wave2.yml", _loader=None))
    callback.v2_playbook_on_play_start(SimpleNamespace(get_name=lambda: "Wave 2", hosts="fleet", serial=[1]))
    task = fake_task("t1", "Set the flag", "fleetwave.agent_env", role="agent_flag")
    callback.v2_playbook_on_task_start(task, False)
    callback.v2_runner_on_ok(fake_result(task, "dgx-1", dict(changed=True, msg="flag set")))
    callback.v2_runner_on_failed(fake_result(task, "dgx-2", dict(failed=True, msg="nope")), ignore_errors=True)
    callback.v2_runner_on_skipped(fake_result(task, "dgx-3", dict(skipped=True)))
    callback.v2_runner_on_unreachable(fake_result(task, "dgx-4", dict(unreachable=True, msg="gone")))
    loop = fake_task("t2", "Each", no_log=True)
    callback.v2_playbook_on_task_start(loop, False)
    for hook in (callback.v2_runner_item_on_ok, callback.v2_runner_item_on_failed, callback.v2_runner_item_on_skipped):
        hook(fake_result(loop, "dgx-1", dict(msg=SECRET, _ansible_item_label=SECRET)))
    callback.v2_playbook_on_handler_task_start(fake_task("h1", "Restart"))
    counts = dict(ok=1, failures=0, unreachable=0, changed=1, skipped=0, rescued=0, ignored=0)
    callback.v2_playbook_on_stats(SimpleNamespace(processed={"dgx-1": 1}, summarize=lambda host: counts))

    got = events(tmp_path / "audit" / "a.jsonl")
    assert [(e["event"], e.get("status")) for e in got] == [
        ("playbook_start", None), ("play_start", None), ("task_start", None), ("host_result", "changed"),
        ("host_result", "failed"), ("host_result", "skipped"), ("host_result", "unreachable"), ("task_start", None),
        ("host_result", "ok"), ("host_result", "failed"), ("host_result", "skipped"), ("handler_start", None),
        ("stats", None), ("playbook_end", None)]
    start = fields(got[0])
    assert start["extra_vars"] == ["secret", "wave"] and start["check_mode"] is True and start["limit"] == "dgx-1"
    assert start["run_id"] == callback.run_id and start["user"]
    assert got[2]["role"] == "agent_flag" and got[2]["path"] == "play.yml:12"
    assert got[3]["msg"] == "flag " and got[4]["ignored"] is True
    assert all(e["censored"] == CENSORED and e["loop_item"] for e in got[8:11])
    assert SECRET not in (tmp_path / "audit" / "a.jsonl").read_text()
    assert verify(tmp_path / "audit" / "a.jsonl")[0]
    (line, stderr), = callback._display.lines
    path = tmp_path / "audit" / "a.jsonl"
    assert stderr and line == "audit_trail: %s: 14 lines, anchor %s" % (path, check(path).anchor)
    assert callback._display.warnings == []


def test_without_a_path_each_run_gets_its_own_file_under_artifacts_audit(plugin, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    callback = plugin()
    callback.v2_playbook_on_start(SimpleNamespace(_file_name="playbooks/wave2.yml", _loader=None))
    callback.v2_playbook_on_stats(SimpleNamespace(processed={}, summarize=None))
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.jsonl")
                     if p.name != "anchors.jsonl")  # the heads anchored beside the trails
    assert len(written) == 1 and written[0].startswith("artifacts/audit/wave2-"), written
    assert (tmp_path / "artifacts/audit/anchors.jsonl").exists()
    assert verify(tmp_path / written[0]) == (True, None, "3 lines, chain intact")


def test_a_log_that_cannot_be_written_warns_once_and_records_nothing_more(plugin, tmp_path):
    callback = plugin(path=str(tmp_path))  # a folder: cannot be opened as the log
    callback.v2_playbook_on_start(SimpleNamespace(_file_name="site.yml", _loader=None))
    callback.v2_playbook_on_play_start(SimpleNamespace(get_name=lambda: "p", hosts="all", serial=None))
    assert callback.disabled is True and len(callback._display.warnings) == 1
    assert "cannot open %s" % tmp_path in callback._display.warnings[0]


def test_a_write_error_mid_run_warns_once_and_stops_recording(plugin, tmp_path):
    callback = plugin(path=str(tmp_path / "a.jsonl"))
    callback.v2_playbook_on_start(SimpleNamespace(_file_name="site.yml", _loader=None))
    callback.v2_playbook_on_play_start(SimpleNamespace(get_name=lambda: "p", hosts="all", serial=None))
    callback.recorder.log.close()  # the next write fails as a full disk would
    callback.v2_playbook_on_task_start(fake_task("t", "x"), False)
    assert callback.disabled is True and len(callback._display.warnings) == 1
    assert "cannot write" in callback._display.warnings[0]
    assert verify(tmp_path / "a.jsonl") == (True, None, "2 lines, chain intact")  # playbook_start, play_start


def test_a_run_that_ends_without_stats_ends_its_trail_at_exit(plugin, tmp_path):
    path = tmp_path / "a.jsonl"
    callback = plugin(path=str(path))
    callback.v2_playbook_on_start(SimpleNamespace(_file_name="site.yml", _loader=None))
    callback._at_exit(os.getpid() + 1)  # a forked worker exiting: not the run's end
    assert not path.exists()  # the trail opens at the first play (the evidence key), or at the run's end
    callback._at_exit(os.getpid())
    callback._at_exit(os.getpid())  # once only
    assert [(e["event"], e.get("outcome")) for e in events(path)] == [("playbook_start", None),
                                                                      ("playbook_end", "aborted")]
    assert callback._display.lines == [("audit_trail: %s: 2 lines, anchor %s" % (path, check(path).anchor), True)]
