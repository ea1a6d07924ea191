"""plugins/module_utils/fleet_traffic.py (and the input checks of plugins/modules/nats_traffic.py): what the
nats_traffic module observed turned into fleet_ledger.build_ledger's inputs (ledger_inputs), then the ledger
built over synthetic observations - requests lost inside and outside the failure window, unsent,
duplicated and late replies; events lost (a gap in a publisher's seqs, at the start and end by its status),
duplicated and reordered, an agent restarted (its new process counted from seq 1, not reordered), events
that cannot be accounted for (unmatched, never a silent pass); bad observations and bad input refused
naming what and the range; the observations written atomically."""

from __future__ import annotations

import json

import pytest

from ansible_collections.fleetwave.rollout.plugins.module_utils import fleet_traffic as ft
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_ledger import build_ledger

from tests.unit.conftest import _argument_spec, run_module  # noqa: F401  (run_module: the fixture)

pytestmark = pytest.mark.unit

T0 = 1_796_000_000.0
SUBJECT = "agent.tdd-expert.cmd.ping"
AGENT_ID = "01936faa-f4cb-7000-8000-00000000000a"
BOOT, BOOT2 = 1_795_999_000_000, 1_796_000_030_000
BUDGET = dict(max_lost_pct=5, max_lost_outside_window=0, max_duplicated=0, max_reordered=0, max_late=0,
              max_detection_seconds=30, max_recovery_seconds=60)
# The failure held from T0+20 to T0+25 s, detected at T0+21 s.
WINDOW = dict(injected_at=T0 + 20, detected_at=T0 + 21, recovered_at=T0 + 25)
TIMEOUT = 2.0


def msg_id(seq, boot=BOOT):
    return "%s.dgx-1.%d.%d" % (AGENT_ID, boot, seq)


def status_row(at, last_seq, boot=BOOT):
    return ["agent.tdd-expert.cmd.status", "dgx-1", at, True, "tdd-expert", AGENT_ID, "dgx-1", boot, last_seq, True]


def observations(seconds=60, no_reply=(), late=(), twice=(), unsent=(), events=None, start=0, end=None,
                 families=("legacy", "unified"), **extra):
    """One request a second to tdd-expert@dgx-1 (r<i> at T0+i), answered 10 ms later unless in no_reply,
    late (3 s later), twice (two replies) or unsent (never sent). events: received copies as
    (family, seq, boot, arrival offset from T0); default: one event a second, seq i+1 published at T0+i,
    both copies received 5 ms later. start/end: the publisher's last_seq in the status before/after (end
    None: no status answer at the end)."""
    requests, replies = [], []
    for i in range(seconds):
        rid = "r%d" % i
        requests.append([rid, 0, T0 + i, None if rid in unsent else T0 + i + 0.001])
        if rid in no_reply or rid in unsent:
            continue
        replies.append([rid, "dgx-1", T0 + i + (3.0 if rid in late else 0.01), False])
        if rid in twice:
            replies.append([rid, "dgx-1", T0 + i + 0.012, False])
    if events is None:
        events = [(family, i + 1, BOOT, i + 0.005) for i in range(seconds) for family in ("legacy", "unified")]
    items = []
    for family, seq, boot, arrival in events:
        published = T0 + seq - 1 if boot == BOOT else T0 + 30 + seq - 1
        items.append([family, msg_id(seq, boot), T0 + arrival, "tdd-expert", "dgx-1", seq, published, True])
    status = dict(fields=list(ft.STATUS_FIELDS), start=[status_row(T0 - 0.5, start)],
                  end=[] if end is None else [status_row(T0 + seconds + 1, end, extra.pop("end_boot", BOOT))])
    return dict(dict(
        version=ft.OBSERVATIONS_VERSION, name="test", started_at=T0 - 1, ended_at=T0 + seconds + 2,
        targets=[dict(subject=SUBJECT, target="tdd-expert@dgx-1", host="dgx-1", no_responders=0)],
        families=list(families), requests=dict(fields=list(ft.REQUEST_FIELDS), items=requests),
        replies=dict(fields=list(ft.REPLY_FIELDS), items=replies), events=dict(fields=list(ft.EVENT_FIELDS),
                                                                               items=items),
        status=status, overflow=None), **extra)


def ledger(obs, window=WINDOW, budget=BUDGET):
    return build_ledger("agent-kill", window, **ft.ledger_inputs(obs), timeout=TIMEOUT, budget=budget)


def test_the_inputs_have_the_ledgers_shapes_and_a_healthy_run_passes():
    inputs = ft.ledger_inputs(observations(end=60))
    assert inputs["requests"][0] == dict(id="r0", subject=SUBJECT, target="tdd-expert@dgx-1", intended_at=T0,
                                         sent_at=T0 + 0.001)
    assert inputs["replies"][0] == dict(request="r0", responder="dgx-1", at=T0 + 0.01, error=False)
    assert inputs["published"][:2] == [
        dict(agent="tdd-expert", host="dgx-1", msg_id=msg_id(1), subject=family, seq=1, published_at=T0)
        for family in ("legacy", "unified")]
    assert inputs["received"][0] == dict(msg_id=msg_id(1), subject="legacy", at=T0 + 0.005)
    assert len(inputs["published"]) == len(inputs["received"]) == 120
    record = ledger(observations(end=60))
    assert record["verdict"] == "PASS", record["reasons"]
    assert record["requests"]["totals"]["answered"] == 60 and record["events"]["totals"]["received"] == 120


def test_requests_lost_inside_and_outside_the_window_and_unsent_ones():
    # r21-r23 unanswered and r22... unsent during the failure; r40 unanswered long after it.
    record = ledger(observations(no_reply=("r21", "r23", "r40"), unsent=("r22",), end=60))
    totals = record["requests"]["totals"]
    assert (totals["lost"], totals["lost_in_window"], totals["lost_outside_window"], totals["unsent"]) == (4, 3, 1, 1)
    group = record["requests"]["groups"]["tdd-expert@dgx-1 %s" % SUBJECT]
    assert group["lost_in_window_ids"] == ["r21", "r22", "r23"] and group["lost_outside_window_ids"] == ["r40"]
    assert record["verdict"] == "FAIL"
    assert any(reason.startswith("lost outside the failure window: 1 (at most 0)") and "r40" in reason
               for reason in record["reasons"]), record["reasons"]


def test_a_second_reply_is_a_duplicate_and_one_after_the_timeout_late():
    record = ledger(observations(twice=("r5",), late=("r22",), end=60))
    totals = record["requests"]["totals"]
    assert totals["duplicated"] == 1 and totals["late"] == 1 and totals["lost"] == 0
    group = record["requests"]["groups"]["tdd-expert@dgx-1 %s" % SUBJECT]
    assert group["duplicated_ids"] == ["r5"] and group["late_ids"] == ["r22"]
    assert {r.split(":")[0] for r in record["reasons"]} >= {"duplicated", "late"}


def test_event_gaps_are_lost_in_or_outside_the_window_by_their_interpolated_publish_time():
    # seq 23 (published T0+22, in the window) and seq 46 (T0+45, outside) never arrive, on either family;
    # seq 31's legacy copy arrives twice; seq 51's unified copy after seq 52's.
    events = []
    for i in range(60):
        seq = i + 1
        for family in ("legacy", "unified"):
            if seq in (23, 46):
                continue
            arrival = i + 0.005
            if seq == 51 and family == "unified":
                arrival = 51 + 0.5  # after seq 52's copy (51.005)
            events.append((family, seq, BOOT, arrival))
            if seq == 31 and family == "legacy":
                events.append((family, seq, BOOT, arrival + 0.001))
    inputs = ft.ledger_inputs(observations(events=events, end=60))
    lost = [e for e in inputs["published"] if e["msg_id"] == msg_id(23)]
    assert [e["published_at"] for e in lost] == [T0 + 22, T0 + 22]  # between seq 22 (T0+21) and 24 (T0+23)
    record = ledger(observations(events=events, end=60))
    totals = record["events"]["totals"]
    assert (totals["published"], totals["lost"], totals["lost_in_window"], totals["lost_outside_window"]) == (
        120, 4, 2, 2)
    assert totals["duplicated"] == 1 and totals["reordered"] == 1 and totals["unmatched"] == 0
    unified = record["events"]["groups"]["tdd-expert@dgx-1 unified"]
    assert unified["lost_in_window_ids"] == [msg_id(23)] and unified["lost_outside_window_ids"] == [msg_id(46)]
    assert unified["reordered_ids"] == [msg_id(51)]
    assert record["events"]["groups"]["tdd-expert@dgx-1 legacy"]["duplicated_ids"] == [msg_id(31)]


def test_the_status_counts_events_lost_at_the_start_and_end_and_leaves_out_those_before_the_run():
    # The status before the run said last_seq 3: seqs 1-3 arriving now were published before; seq 4 never
    # arrives (lost at the start); the status at the end says 62: seqs 61 and 62 were lost after the last copy.
    events = [(family, seq, BOOT, seq - 1 + 0.005) for seq in range(1, 61) if seq != 4
              for family in ("legacy", "unified")]
    inputs = ft.ledger_inputs(observations(events=events, start=3, end=62))
    ids = [e["msg_id"] for e in inputs["published"] if e["subject"] == "legacy"]
    assert ids[0] == msg_id(4) and ids[-1] == msg_id(62) and len(ids) == 59
    assert msg_id(3) not in {e["msg_id"] for e in inputs["received"]}
    tail = [e["published_at"] for e in inputs["published"] if e["msg_id"] == msg_id(62)]
    assert tail == [T0 + 61, T0 + 61]  # the end status's answer time: the nearest anchor
    totals = ledger(observations(events=events, start=3, end=62))["events"]["totals"]
    assert totals["lost"] == 2 * 3 and totals["lost_outside_window"] == 6 and totals["received"] == 2 * 56


def test_a_restarted_agent_counts_from_seq_1_and_is_not_reordered():
    # Process BOOT publishes seq 1-20 (T0..T0+19) and is killed; process BOOT2 starts at T0+30, its seqs
    # 1-2 are lost, 3-30 arrive. Lost before the first copy of a process, an event takes that copy's
    # publish time (the nearest known), T0+32: inside a window recovered at T0+33.
    events = [(family, seq, BOOT, seq - 1 + 0.005) for seq in range(1, 21) for family in ("legacy", "unified")]
    events += [(family, seq, BOOT2, 30 + seq - 1 + 0.005) for seq in range(3, 31) for family in ("legacy", "unified")]
    obs = observations(events=events, end=30, end_boot=BOOT2)
    record = ledger(obs, window=dict(injected_at=T0 + 20, detected_at=T0 + 21, recovered_at=T0 + 33))
    totals = record["events"]["totals"]
    assert totals["published"] == 2 * 50 and totals["lost"] == 4 and totals["lost_in_window"] == 4
    assert totals["reordered"] == 0 and totals["unmatched"] == 0
    lost = record["events"]["groups"]["tdd-expert@dgx-1 legacy"]["lost_in_window_ids"]
    assert lost == [msg_id(1, BOOT2), msg_id(2, BOOT2)]
    seqs = {e["msg_id"]: e["seq"] for e in ft.ledger_inputs(obs)["published"]}
    assert seqs[msg_id(20)] < seqs[msg_id(1, BOOT2)] == ft.BOOT_SEQ_STRIDE + 1


def test_events_that_cannot_be_accounted_for_are_unmatched_never_a_silent_pass():
    obs = observations(end=60)
    obs["events"]["items"] = [["legacy", "9b1f0c1e2d", T0 + i, "graph-expert", None, i + 1, T0 + i, None]
                              for i in range(10)]  # random ids, as tests/agents/contract_agent.py sends
    obs["status"]["end"] = obs["status"]["start"] = []
    record = ledger(obs)
    assert record["events"]["totals"]["unmatched"] == 10 and record["events"]["totals"]["published"] == 0
    assert record["verdict"] == "FAIL" and any("no events published" in r for r in record["reasons"])
    assert any(r.startswith("unmatched: 0 replies to no request sent and 10 event copies") for r in record["reasons"])
    counts = dict(events=10, events_unaccountable=10)
    assert ft.event_accounting(counts, [dict(subject="agent.graph-expert.evt.>", family="legacy")]).startswith(
        "partial: 10 of 10 event copies carry no publisher sequence")
    assert ft.event_accounting(counts, []).startswith("none: no event_subjects")


@pytest.mark.parametrize("change, why", [
    (dict(version=0), "not nats_traffic observations of version 1"),
    (dict(overflow="event copy on x and later items not recorded"), "the observations are incomplete (event copy"),
    (dict(targets=[]), "targets: must be a non-empty list"),
    (dict(requests=dict(fields=["id"], items=[])), "requests.fields: must be id, target, intended_at, sent_at"),
])
def test_bad_observations_are_refused_naming_what(change, why):
    with pytest.raises(ft.TrafficError) as exc:
        ft.ledger_inputs(dict(observations(), **change))
    assert str(exc.value).startswith(why), str(exc.value)


def test_a_malformed_item_is_named():
    obs = observations()
    obs["requests"]["items"][3] = ["r3", 5, T0, T0]
    with pytest.raises(ft.TrafficError, match=r"requests\[3\].target: must index targets \(0 to 0\), got 5"):
        ft.ledger_inputs(obs)
    obs = observations()
    obs["replies"]["items"][1] = ["r1"]
    with pytest.raises(ft.TrafficError, match=r"replies.items\[1\]: must be a list of request, responder, at, error"):
        ft.ledger_inputs(obs)


def test_a_publisher_is_the_msg_id_without_its_seq():
    assert ft._publisher(msg_id(7), 7) == "%s.dgx-1.%d" % (AGENT_ID, BOOT)
    assert ft._publisher(msg_id(7), 8) is None and ft._publisher("7", 7) is None
    assert ft._publisher(None, 7) is None and ft._publisher(msg_id(7), None) is None
    assert ft._publisher(msg_id(7), True) is None
    assert ft._interpolate([(1, 10.0), (5, 14.0)], 3) == 12.0 and ft._interpolate([(1, 10.0)], 9) == 10.0
    assert ft._interpolate([], 3) is None


PARAMS = dict(duration=10.0, rate=20.0, timeout=2.0, connect_timeout=2.0, status_verb="status",
              targets=[dict(subject=SUBJECT, host="dgx-1", target=None)],
              event_subjects=[dict(subject="agent.tdd-expert.evt.>", family="legacy")])


@pytest.mark.parametrize("change, why", [
    (dict(rate=float("inf")), "rate must be a number in (0, 10,000] requests per second, got inf"),
    (dict(rate=0.0), "rate must be a number in (0, 10,000] requests per second, got 0.0"),
    (dict(duration=float("nan")), "duration must be a number in (0, 3,600] seconds, got nan"),
    (dict(duration=3601.0), "duration must be a number in (0, 3,600] seconds, got 3601.0"),
    (dict(timeout=-1.0), "timeout must be a number in (0, 300] seconds, got -1.0"),
    (dict(rate=100.0, duration=600.0), "rate x duration = 100/s x 600 s = 60000 requests: with one reply each over "
                                       "100000 items"),
    (dict(targets=[]), "targets (or subjects) must name at least one request subject"),
    (dict(targets=[dict(subject="agent.>", host=None)]), "targets[0].subject 'agent.>': must be a literal"),
    (dict(targets=[dict(subject=SUBJECT, host="dgx 1")]), "targets[0].host 'dgx 1': must be non-empty"),
    (dict(event_subjects=[dict(subject="agent.>.evt", family="legacy")]), "event_subjects[0].subject 'agent.>.evt'"),
    (dict(event_subjects=[dict(subject="agent.x.evt.>", family="both")]), "event_subjects[0].family 'both'"),
    (dict(status_verb="cmd.status"), "status_verb 'cmd.status': must be one subject token"),
])
def test_bad_input_is_refused_naming_key_and_range(change, why):
    problems = ft.validate(dict(PARAMS, **change))
    assert any(problem.startswith(why) for problem in problems), problems


def test_good_input_passes_and_patterns_are_checked():
    assert ft.validate(PARAMS) == [] and ft.validate(dict(PARAMS, status_verb="")) == []
    assert ft.is_pattern("agents.*.x.evt.>") and not ft.is_pattern("a.b*") and not ft.is_pattern("a..b")
    assert ft.status_subject("agent.x.cmd.ping", "status") == "agent.x.cmd.status"
    assert ft.status_subject("ping", "status") is None
    assert ft.plan_targets([dict(subject="s.cmd.ping", host="h"), dict(subject="s.cmd.ping", target="t")]) == [
        dict(subject="s.cmd.ping", target="s.cmd.ping@h", host="h"), dict(subject="s.cmd.ping", target="t", host=None)]


def test_the_observations_encode_as_json_without_nan():
    assert json.loads(ft.encode_observations(observations()))["version"] == ft.OBSERVATIONS_VERSION
    with pytest.raises(ValueError):  # NaN is not JSON: refused rather than written
        ft.encode_observations(dict(observations(), started_at=float("nan")))


def test_the_module_keeps_secrets_out_of_logs_and_check_mode_connects_to_nothing(run_module, tmp_path):  # noqa: F811
    spec = _argument_spec("nats_traffic")
    assert {name for name, option in spec.items() if option.get("no_log")} == {"url", "password", "token"}
    dest = tmp_path / "t.json"
    args = dict(url="svc:s3/cret@127.0.0.1:1", subjects=[SUBJECT], dest=str(dest), duration=1, rate=5)
    result = run_module("nats_traffic", args, check=True)
    assert not result.get("failed") and result["changed"] is False and not dest.exists()
    result = run_module("nats_traffic", dict(args, rate=float("inf")))
    assert result["failed"] and "rate must be a number in (0, 10,000]" in result["msg"] and not dest.exists()
    result = run_module("nats_traffic", dict(args, connect_timeout=0.3))
    assert result["failed"] and result["msg"].startswith("cannot connect to NATS at ***@127.0.0.1:1 within 0.3 s")
    assert "s3/cret" not in str(result) and not dest.exists()
