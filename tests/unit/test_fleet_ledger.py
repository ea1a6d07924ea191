"""plugins/plugin_utils/fleet_ledger.py: the data-integrity ledger of a failure mode (issue 10). Every
request and event copy accounted for (answered, lost inside or outside the failure window, duplicated,
reordered, late), detection and recovery times, the verdict against the loss budget naming what was
lost, the bound on ids kept, the inventory's budgets, bad input refused naming field and range, the
record written and read back by the deployment gate."""

from __future__ import annotations

import json
import os

import pytest
import yaml

from ansible_collections.fleetwave.rollout.plugins.module_utils import fleet_limits
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_gates as fg, fleet_ledger as fl
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import ArtifactStore, Layout, utc

from tests.unit.conftest import REPO

pytestmark = pytest.mark.unit

T0 = 1_796_000_000.0  # 2026-11-30T00:53:20Z, epoch seconds
TARGETS = ("tdd-expert@dgx-1", "tdd-expert@dgx-2")
SUBJECT = "agent.tdd-expert.cmd.ping"
BUDGET = dict(max_lost_pct=5, max_lost_outside_window=0, max_duplicated=0, max_reordered=0, max_late=0,
              max_detection_seconds=30, max_recovery_seconds=60)
# The failure held from T0+20 to T0+25 s; detected at T0+22 s.
WINDOW = dict(injected_at=T0 + 20, detected_at=T0 + 22, recovered_at=T0 + 25)
CONTRACT = REPO / "inventory/production/group_vars/all/00-contract.yml"


def rid(target, second):
    return "%s-%02d" % (target.split("@")[1], second)


def traffic(seconds=60, drop=(), late=(), twice=(), unsent=(), errors=()):
    """One request a second to each target, each answered 10 ms later unless its id is in drop (no
    reply), late (3 s later, past the 2 s timeout), twice (two replies), unsent (never sent), errors."""
    requests, replies = [], []
    for second in range(seconds):
        for target in TARGETS:
            request_id, at = rid(target, second), T0 + second
            requests.append(dict(id=request_id, subject=SUBJECT, target=target, intended_at=at,
                                 sent_at=None if request_id in unsent else at + 0.001))
            if request_id in drop or request_id in unsent:
                continue
            reply = dict(request=request_id, responder=target, at=at + (3.0 if request_id in late else 0.01))
            if request_id in errors:
                reply["error"] = True
            replies.append(reply)
            if request_id in twice:
                replies.append(dict(reply, at=reply["at"] + 0.002))
    return requests, replies


def events(seconds=60, drop=(), twice=(), order=None, times=True):
    """One event a second from tdd-expert on dgx-1, dual-published (a legacy and a unified copy), each
    received 5 ms after; drop and twice name (msg id, subject) copies; order: the msg ids in the order
    they arrive (same spacing)."""
    published, received = [], []
    ids = ["ev-%02d" % second for second in range(seconds)]
    for second, msg_id in enumerate(ids):
        for subject in ("legacy", "unified"):
            copy = dict(agent="tdd-expert", host="dgx-1", msg_id=msg_id, subject=subject, seq=second)
            if times:
                copy["published_at"] = T0 + second
            published.append(copy)
    for position, msg_id in enumerate(order or ids):
        for subject in ("legacy", "unified"):
            if (msg_id, subject) in drop:
                continue
            seen = dict(msg_id=msg_id, subject=subject, at=T0 + position + 0.005)
            received.append(seen)
            if (msg_id, subject) in twice:
                received.append(dict(seen, at=seen["at"] + 0.001))
    return published, received


def ledger(mode="agent-kill", window=WINDOW, budget=BUDGET, requests=None, events_=None, timeout=2.0, **kwargs):
    requests, replies = requests or traffic()
    published, received = events_ or events()
    return fl.build_ledger(mode, window, requests, replies, published, received, timeout, budget, **kwargs)


def passes(record):
    assert record["verdict"] == fl.PASS, record["reasons"]
    assert record["reasons"] == []
    json.dumps(record)  # one JSON-serialisable record
    return record


def fails(record, *parts):
    """The record failed, and one reason holds every part."""
    assert record["verdict"] == fl.FAIL, record
    assert any(all(part in reason for part in parts) for reason in record["reasons"]), (parts, record["reasons"])
    json.dumps(record)
    return record


# ================================================================================ accounting

def test_a_perfect_run_loses_nothing_and_is_within_budget():
    record = passes(ledger())
    requests, events_ = record["requests"]["totals"], record["events"]["totals"]
    assert (requests["sent"], requests["answered"], requests["lost"], requests["late"], requests["duplicated"]) == (
        120, 120, 0, 0, 0)
    assert (events_["published"], events_["received"], events_["lost"], events_["reordered"]) == (120, 120, 0, 0)
    assert record["lost"] == []
    assert record["measured"]["requests_lost_pct"] == 0 and record["measured"]["events_lost_pct"] == 0
    assert set(record["requests"]["groups"]) == {"%s %s" % (t, SUBJECT) for t in TARGETS}
    assert set(record["events"]["groups"]) == {"tdd-expert@dgx-1 legacy", "tdd-expert@dgx-1 unified"}
    assert record["window"] == dict(injected_at=utc(T0 + 20), detected_at=utc(T0 + 22), recovered_at=utc(T0 + 25))
    assert record["budget"] == BUDGET and record["mode"] == "agent-kill"


def test_loss_inside_the_window_within_budget_passes_and_names_what_was_lost():
    lost = ("dgx-1-21", "dgx-1-22", "dgx-1-23")
    record = passes(ledger(requests=traffic(drop=lost), events_=events(drop={("ev-22", "unified")})))
    group = record["requests"]["groups"]["tdd-expert@dgx-1 %s" % SUBJECT]
    assert (group["lost"], group["lost_in_window"], group["lost_outside_window"]) == (3, 3, 0)
    assert group["lost_in_window_ids"] == list(lost)
    assert record["requests"]["groups"]["tdd-expert@dgx-2 %s" % SUBJECT]["lost"] == 0
    assert record["events"]["groups"]["tdd-expert@dgx-1 unified"]["lost_in_window_ids"] == ["ev-22"]
    assert record["measured"]["requests_lost_pct"] == 2.5  # 3 of 120
    assert record["lost"] == [
        "requests to tdd-expert@dgx-1 on %s: 3 of 60 lost (3 in the failure window, 0 outside): "
        "dgx-1-21, dgx-1-22, dgx-1-23" % SUBJECT,
        "events of tdd-expert@dgx-1 on unified: 1 of 60 lost (1 in the failure window, 0 outside): ev-22"]


def test_a_request_whose_life_reaches_into_the_window_is_lost_inside_it():
    # sent at T0+19, timeout 2 s: its reply was due by T0+21, after the injection at T0+20
    record = ledger(requests=traffic(drop=("dgx-1-19", "dgx-1-17")))
    group = record["requests"]["groups"]["tdd-expert@dgx-1 %s" % SUBJECT]
    assert group["lost_in_window_ids"] == ["dgx-1-19"] and group["lost_outside_window_ids"] == ["dgx-1-17"]


def test_loss_outside_the_window_fails_naming_it():
    record = fails(ledger(requests=traffic(drop=("dgx-2-05", "dgx-1-22")),
                          events_=events(drop={("ev-40", "legacy")})),
                   "lost outside the failure window: 2 (at most 0)", "requests to tdd-expert@dgx-2 on %s" % SUBJECT,
                   "dgx-2-05", "events of tdd-expert@dgx-1 on legacy", "ev-40")
    assert "dgx-1-22" not in next(r for r in record["reasons"] if r.startswith("lost outside"))
    assert record["measured"]["lost_outside_window"] == 2


def test_loss_over_the_budget_fails_naming_the_share_and_the_ids():
    lost = tuple("dgx-1-%02d" % s for s in range(20, 27))
    record = fails(ledger(requests=traffic(drop=lost), window=dict(WINDOW, recovered_at=T0 + 30)),
                   "requests lost: 7 of 120 (5.833333 %, at most 5 %)", "dgx-1-20", "dgx-1-26")
    assert not any("events lost" in reason for reason in record["reasons"])
    # the same loss with a budget that allows it
    passes(ledger(requests=traffic(drop=lost), window=dict(WINDOW, recovered_at=T0 + 30),
                  budget=dict(BUDGET, max_lost_pct=6)))


def test_unsent_requests_during_a_server_restart_are_lost_never_hidden():
    unsent = tuple("%s-%02d" % (host, s) for host in ("dgx-1", "dgx-2") for s in range(20, 25))
    record = ledger("nats-restart", requests=traffic(unsent=unsent), budget=dict(BUDGET, max_lost_pct=10))
    totals = record["requests"]["totals"]
    assert (totals["sent"], totals["unsent"], totals["lost"], totals["lost_in_window"]) == (120, 10, 10, 10)
    assert record["verdict"] == fl.PASS and len(record["lost"]) == 2
    fails(ledger("nats-restart", requests=traffic(unsent=unsent)), "requests lost: 10 of 120")


def test_an_event_copy_without_a_publish_time_counts_outside_the_window():
    record = fails(ledger(events_=events(drop={("ev-22", "legacy")}, times=False)),
                   "lost outside the failure window: 1", "ev-22")
    assert record["events"]["groups"]["tdd-expert@dgx-1 legacy"]["lost_outside_window_ids"] == ["ev-22"]


def test_duplicates_are_counted_and_judged():
    twice_requests, twice_events = ("dgx-1-03", "dgx-2-40"), {("ev-10", "unified")}
    record = fails(ledger(requests=traffic(twice=twice_requests), events_=events(twice=twice_events)),
                   "duplicated: 3 (at most 0)", "replies to tdd-expert@dgx-1 %s: 1 (dgx-1-03)" % SUBJECT,
                   "dgx-2-40", "event copies of tdd-expert@dgx-1 unified: 1 (ev-10)")
    assert record["requests"]["totals"]["duplicated"] == 2 and record["events"]["totals"]["duplicated"] == 1
    assert record["requests"]["totals"]["answered"] == 120 and record["events"]["totals"]["received"] == 120
    assert record["events"]["totals"]["reordered"] == 0  # a second copy is a duplicate, not a reordering
    passes(ledger(requests=traffic(twice=twice_requests), events_=events(twice=twice_events),
                  budget=dict(BUDGET, max_duplicated=3)))


def test_events_received_out_of_their_publish_order_are_reordered():
    order = ["ev-%02d" % s for s in range(60)]
    order[30], order[31], order[32] = order[32], order[30], order[31]  # 32 overtakes 30 and 31
    record = fails(ledger(events_=events(order=order)), "reordered: 4 (at most 0)",
                   "events of tdd-expert@dgx-1 legacy: 2 (ev-30, ev-31)")
    assert record["events"]["groups"]["tdd-expert@dgx-1 unified"]["reordered_ids"] == ["ev-30", "ev-31"]
    assert record["events"]["totals"]["lost"] == 0
    passes(ledger(events_=events(order=order), budget=dict(BUDGET, max_reordered=4)))


def test_order_is_by_publish_time_without_seq_and_per_agent_and_subject():
    published, received = events(seconds=4)
    for copy in published:
        del copy["seq"]
    # another instance's events interleaved with a later publish time are not a reordering of dgx-1's
    published.append(dict(agent="tdd-expert", host="dgx-2", msg_id="other", subject="legacy", published_at=T0 + 99))
    received.insert(0, dict(msg_id="other", subject="legacy", at=T0))
    received.sort(key=lambda r: r["at"])
    record = ledger(events_=(published, received), requests=traffic(seconds=4), window=dict(WINDOW, injected_at=T0 + 1,
                                                                                          detected_at=T0 + 1,
                                                                                          recovered_at=T0 + 2))
    assert record["events"]["totals"]["reordered"] == 0
    received[1]["at"], received[3]["at"] = received[3]["at"], received[1]["at"]  # ev-00 legacy after ev-01 legacy
    record = ledger(events_=(published, received), requests=traffic(seconds=4), window=dict(WINDOW, injected_at=T0 + 1,
                                                                                          detected_at=T0 + 1,
                                                                                          recovered_at=T0 + 2))
    assert record["events"]["groups"]["tdd-expert@dgx-1 legacy"]["reordered_ids"] == ["ev-00"]


def test_late_replies_are_neither_answered_nor_lost_and_are_judged():
    record = fails(ledger(requests=traffic(late=("dgx-2-21", "dgx-2-22"))), "late: 2 (at most 0)",
                   "requests to tdd-expert@dgx-2 %s: 2 (dgx-2-21, dgx-2-22)" % SUBJECT)
    totals = record["requests"]["totals"]
    assert (totals["answered"], totals["late"], totals["lost"]) == (118, 2, 0)
    record = passes(ledger(requests=traffic(late=("dgx-2-21", "dgx-2-22")), budget=dict(BUDGET, max_late=2)))
    assert record["lost"] == []
    # a request's own timeout overrides the ledger's
    requests, replies = traffic(late=("dgx-2-21",))
    next(r for r in requests if r["id"] == "dgx-2-21")["timeout"] = 5.0
    assert ledger(requests=(requests, replies))["requests"]["totals"]["late"] == 0


# ================================================================================ detection and recovery

def test_detection_and_recovery_times():
    record = passes(ledger(requests=traffic(drop=("dgx-1-21", "dgx-1-23"), late=("dgx-2-24",)),
                           budget=dict(BUDGET, max_late=1)))
    timings = record["timings"]
    assert (timings["detection_seconds"], timings["declared_recovery_seconds"]) == (2.0, 5.0)
    assert timings["failed_requests"] == 3
    assert timings["first_failed_at"] == utc(T0 + 21) and timings["last_failed_at"] == utc(T0 + 24)
    # the first good reply to a request intended after the last failure (T0+24): T0+25 + 10 ms
    assert timings["first_good_reply_after_at"] == utc(T0 + 25.01) and timings["recovery_seconds"] == 5.01


def test_error_replies_count_as_failures_for_the_timings():
    record = ledger(requests=traffic(errors=("dgx-1-30",)))
    assert record["requests"]["totals"]["errors"] == 1 and record["timings"]["last_failed_at"] == utc(T0 + 30)
    assert record["timings"]["recovery_seconds"] == 11.01


def test_without_any_failure_recovery_is_the_first_good_reply_after_the_injection():
    assert passes(ledger())["timings"]["recovery_seconds"] == 0.01


@pytest.mark.parametrize("window, budget, expected", [
    (dict(WINDOW, detected_at=None), BUDGET, "not detected"),
    (dict(WINDOW, detected_at=T0 + 55), BUDGET, "detected after 35 s (at most 30 s)"),
    (dict(WINDOW, recovered_at=None), dict(BUDGET, max_lost_outside_window=10), "not recovered"),
    (WINDOW, dict(BUDGET, max_recovery_seconds=1), 
     "recovered after 2.01 s, the first good reply at %s (at most 1 s)" % utc(T0 + 22.01)),
], ids=["undetected", "slow-detection", "never-recovered", "slow-recovery"])
def test_detection_and_recovery_are_judged(window, budget, expected):
    fails(ledger(window=window, budget=budget, requests=traffic(drop=("dgx-1-21",))), expected)


def test_a_window_never_recovered_reaches_the_end_of_the_run():
    record = ledger(window=dict(WINDOW, recovered_at=None), requests=traffic(drop=("dgx-1-50",)))
    assert record["requests"]["totals"]["lost_in_window"] == 1 and record["window"]["recovered_at"] is None


def test_no_good_reply_after_the_last_failure_is_not_recovered():
    record = fails(ledger(requests=traffic(drop=("dgx-1-59",))), "no good reply after the last failed request",
                   utc(T0 + 59))
    assert record["timings"]["recovery_seconds"] is None


def test_replies_and_events_nobody_accounts_for_fail():
    requests, replies = traffic()
    replies.append(dict(request="never-sent", responder="impostor", at=T0 + 3))
    published, received = events()
    received.append(dict(msg_id="forged", subject="legacy", at=T0 + 4))
    record = fails(ledger(requests=(requests, replies), events_=(published, received)),
                   "unmatched: 1 replies to no request sent and 1 event copies nobody published")
    assert record["measured"]["unmatched"] == 2


def test_no_traffic_is_never_a_pass():
    fails(ledger(requests=([], []), events_=([], [])), "no requests recorded", "no data is never a pass")
    fails(ledger(events_=([], [])), "no events published")


# ================================================================================ memory bound

def test_the_ids_kept_are_bounded_and_the_counts_complete():
    lost = tuple(rid(target, s) for target in TARGETS for s in range(60))
    many = ledger(requests=traffic(drop=lost), sample=5, budget=dict(BUDGET, max_lost_pct=100))
    group = many["requests"]["groups"]["tdd-expert@dgx-1 %s" % SUBJECT]
    assert group["lost"] == 60 and len(group["lost_in_window_ids"]) + len(group["lost_outside_window_ids"]) == 10
    assert group["lost_outside_window_ids"] == ["dgx-1-%02d" % s for s in range(5)]  # the first, in send order
    assert many["lost"][0].endswith("and 50 more")
    # ten times the run, everything lost: the record grows by a few digits, not by the ids
    longer = tuple(rid(target, s) for target in TARGETS for s in range(600))
    ten_times = ledger(requests=traffic(seconds=600, drop=longer), sample=5, budget=dict(BUDGET, max_lost_pct=100))
    assert ten_times["requests"]["totals"]["lost"] == 1200
    assert len(json.dumps(ten_times)) - len(json.dumps(many)) < 50
    assert fl.SAMPLE_IDS == 20 and ledger()["sample_ids"] == 20


def test_more_items_than_the_cap_are_refused_before_they_are_all_read(monkeypatch):
    monkeypatch.setattr(fl, "MAX_LEDGER_ITEMS", 50)
    read = []

    def endless():
        for number in range(10 ** 6):
            read.append(number)
            yield dict(id="r%d" % number, subject=SUBJECT, target=TARGETS[0], intended_at=T0, sent_at=T0)

    with pytest.raises(fl.LedgerError, match=r"requests\[50\]: the ledger holds at most 50 requests"):
        fl.build_ledger("agent-kill", WINDOW, endless(), [], [], [], 2.0, BUDGET)
    assert len(read) == 51
    assert fleet_limits.MAX_LEDGER_ITEMS == 1_000_000


# ================================================================================ bad input

@pytest.mark.parametrize("key, value", [
    ("max_lost_pct", -1), ("max_lost_pct", 100.5), ("max_lost_pct", float("nan")), ("max_lost_pct", float("inf")),
    ("max_lost_pct", True), ("max_lost_pct", "5"), ("max_lost_outside_window", -1), ("max_duplicated", 1.5),
    ("max_reordered", float("inf")), ("max_late", 10 ** 7), ("max_detection_seconds", 0),
    ("max_recovery_seconds", float("nan")),
])
def test_a_budget_out_of_its_range_is_refused_naming_the_field_and_the_range(key, value):
    expected = "readiness_loss_budgets.agent-kill.%s: %s" % (key, fleet_limits.out_of_range(key, value))
    with pytest.raises(fl.LedgerError) as raised:
        ledger(budget=dict(BUDGET, **{key: value}))
    assert str(raised.value) == expected
    assert fleet_limits.describe(key) in expected


def test_a_budget_with_a_key_missing_or_unknown_is_refused():
    budget = dict(BUDGET, max_lost=1)
    del budget["max_late"]
    with pytest.raises(fl.LedgerError) as raised:
        ledger(budget=budget)
    assert "readiness_loss_budgets.agent-kill.max_late: missing" in str(raised.value)
    assert "readiness_loss_budgets.agent-kill.max_lost: unknown key (allowed: max_lost_pct," in str(raised.value)


def good_inputs():
    requests, replies = traffic(seconds=3)
    published, received = events(seconds=3)
    return dict(window=dict(WINDOW), requests=requests, replies=replies, published=published, received=received)


@pytest.mark.parametrize("what, change, expected", [
    ("requests", dict(priority=1), "requests[0]: unknown field priority (allowed: id, subject, target, intended_at, "
                                   "sent_at, timeout)"),
    ("replies", dict(latency=1), "replies[0]: unknown field latency (allowed: request, responder, at, error)"),
    ("published", dict(payload="x"), "published[0]: unknown field payload (allowed: agent, msg_id, subject, host, "
                                     "seq, published_at)"),
    ("received", dict(host="dgx-1"), "received[0]: unknown field host (allowed: msg_id, subject, at)"),
    ("requests", dict(sent_at="yesterday"), "requests[0].sent_at: must be a time (epoch seconds or "
                                            "YYYY-MM-DDTHH:MM:SS.mmmZ) or null, got 'yesterday'"),
    ("requests", dict(intended_at=float("nan")), "requests[0].intended_at: must be a time"),
    ("requests", dict(timeout=float("inf")), "requests[0].timeout: must be a number in (0, 300] seconds, got inf"),
    ("requests", dict(id=""), "requests[0].id: must be a non-empty string"),
    ("replies", dict(error="yes"), "replies[0].error: must be true or false, got 'yes'"),
    ("replies", dict(request=["x"]), "replies[0].request: must be a non-empty string"),
    ("published", dict(subject="agents.quality-assurance"), "published[0].subject: must be one of legacy, unified"),
    ("published", dict(seq=1.5), "published[0].seq: must be an integer, got 1.5"),
    ("received", dict(at=None), "received[0].at: must be a time"),
])
def test_bad_items_are_refused_naming_the_field(what, change, expected):
    inputs = good_inputs()
    inputs[what][0] = dict(inputs[what][0], **change)
    with pytest.raises(fl.LedgerError) as raised:
        fl.build_ledger("agent-kill", timeout=2.0, budget=BUDGET, **inputs)
    assert str(raised.value).startswith(expected), str(raised.value)


@pytest.mark.parametrize("change, expected", [
    (dict(window=dict(WINDOW, cause="kill")), "window: unknown field cause (allowed: injected_at, detected_at, "
                                              "recovered_at)"),
    (dict(window=dict(WINDOW, detected_at=T0 + 10)), "window.detected_at: %s is before window.injected_at %s"
     % (utc(T0 + 10), utc(T0 + 20))),
    (dict(window=dict(WINDOW, recovered_at=T0)), "window.recovered_at: "),
    (dict(window={"detected_at": T0}), "window: missing injected_at"),
    (dict(mode="kill"), "mode: must be one of agent-kill, standin-stop, nats-restart, node-freeze, "
                        "env-corrupt-or-disk-full, got 'kill'"),
    (dict(timeout=0), "timeout: must be a number in (0, 300] seconds, got 0"),
    (dict(timeout=float("nan")), "timeout: must be a number in (0, 300] seconds, got nan"),
    (dict(sample=0), "sample: must be an integer in [1, 1,000] ids, got 0"),
    (dict(requests=None), "requests: must be a list of mappings (id, subject, target, intended_at, sent_at, "
                          "timeout), got None"),
    (dict(received={"msg_id": "m"}), "received: must be a list of mappings"),
])
def test_bad_arguments_are_refused_naming_them(change, expected):
    inputs = dict(good_inputs(), mode="agent-kill", timeout=2.0, budget=BUDGET)
    inputs.update(change)
    with pytest.raises(fl.LedgerError) as raised:
        fl.build_ledger(**inputs)
    assert str(raised.value).startswith(expected), str(raised.value)


def test_an_id_given_twice_is_refused():
    inputs = good_inputs()
    inputs["requests"].append(dict(inputs["requests"][0]))
    with pytest.raises(fl.LedgerError, match=r"requests\[6\].id: 'dgx-1-00' is given twice"):
        fl.build_ledger("agent-kill", timeout=2.0, budget=BUDGET, **inputs)
    inputs = good_inputs()
    inputs["published"].append(dict(inputs["published"][1]))
    with pytest.raises(fl.LedgerError, match=r"published\[6\]: message id 'ev-00' on unified is published twice"):
        fl.build_ledger("agent-kill", timeout=2.0, budget=BUDGET, **inputs)


def test_times_may_be_the_artifacts_utc_stamps():
    inputs = good_inputs()
    inputs["window"] = {key: utc(value) for key, value in WINDOW.items()}
    record = fl.build_ledger("agent-kill", timeout=2.0, budget=BUDGET, **inputs)
    assert record["window"]["detected_at"] == utc(T0 + 22) and record["timings"]["detection_seconds"] == 2.0


# ================================================================================ the inventory's budgets

def test_the_production_inventory_declares_a_valid_budget_for_each_failure_mode():
    budgets = yaml.safe_load(CONTRACT.read_text())[fl.BUDGET_VARIABLE]
    checked = fl.validate_budgets(budgets)
    assert list(checked) == list(fl.FAILURE_MODES)
    assert all(b["max_lost_outside_window"] == 0 and b["max_duplicated"] == 0 for b in checked.values())


def test_budgets_missing_a_mode_or_naming_an_unknown_one_are_refused_listing_every_problem():
    budgets = {mode: dict(BUDGET) for mode in fl.FAILURE_MODES}
    del budgets["node-freeze"]
    budgets["disk-full"] = dict(BUDGET)
    budgets["nats-restart"]["max_lost_pct"] = -0.5
    with pytest.raises(fl.LedgerError) as raised:
        fl.validate_budgets(budgets)
    message = str(raised.value)
    assert "readiness_loss_budgets.node-freeze: missing" in message
    assert "readiness_loss_budgets.disk-full: unknown failure mode (allowed: agent-kill," in message
    assert "readiness_loss_budgets.nats-restart.max_lost_pct: must be a number in [0, 100] percent, got -0.5" in message
    with pytest.raises(fl.LedgerError, match="readiness_loss_budgets: must be a mapping"):
        fl.validate_budgets([BUDGET])


# ================================================================================ written, read back, gated

def test_write_ledger_writes_the_record_atomically_where_layout_says(tmp_path):
    store = ArtifactStore(str(tmp_path))
    record = ledger(requests=traffic(drop=("dgx-1-22",)))
    path = fl.write_ledger(store, "readiness/run-1/failure-modes", record)
    assert path == store.path(Layout.failure_ledger("readiness/run-1/failure-modes", "agent-kill"))
    assert path.endswith("failure-modes/agent-kill/ledger.json")
    assert json.loads(open(path).read()) == record
    assert os.listdir(os.path.dirname(path)) == ["ledger.json"]  # no temp file left beside it


def test_check_record_confirms_a_verdict_from_its_own_figures():
    record = ledger(requests=traffic(drop=("dgx-1-22",)))
    assert fl.check_record(record, "x.json") == []
    edited = json.loads(json.dumps(record))
    edited["measured"]["lost_outside_window"] = 4  # figures that fail, verdict still PASS
    assert fl.check_record(edited, "x.json")[0].startswith("x.json says PASS but its figures fail its budget: "
                                                           "lost outside the failure window: 4")
    over = ledger(requests=traffic(drop=("dgx-1-05",)))
    assert fl.check_record(over, "y.json") == ["y.json: %s" % reason for reason in over["reasons"]]
    assert fl.check_record({"mode": "agent-kill"}, "z.json") == ["z.json is not a ledger record (version 1)"]
    loose = json.loads(json.dumps(record))
    loose["budget"]["max_lost_pct"] = 1000
    assert "max_lost_pct: must be a number in [0, 100] percent" in fl.check_record(loose, "w.json")[0]


def write_all(tmp_path, **records):
    store = ArtifactStore(str(tmp_path / "artifacts"))
    return [fl.write_ledger(store, "failure-modes", records.get(mode) or ledger(mode)) for mode in fl.FAILURE_MODES]


def test_the_gate_hook_passes_every_mode_within_budget(tmp_path):
    reasons, measured = fg.ledger_problems(write_all(tmp_path))
    assert reasons == [] and list(measured) == list(fl.FAILURE_MODES)
    assert measured["nats-restart"]["verdict"] == fl.PASS and measured["nats-restart"]["lost"] == []


def test_a_mode_over_its_budget_turns_the_deployment_gate_red_naming_what_was_lost(tmp_path):
    over = ledger("nats-restart", requests=traffic(drop=("dgx-2-07",)))
    paths = write_all(tmp_path, **{"nats-restart": over})
    reasons, measured = fg.ledger_problems(paths)
    assert any(r.startswith("failure mode nats-restart: ") and "dgx-2-07" in r and "nats-restart/ledger.json" in r
               for r in reasons), reasons
    assert measured["nats-restart"]["lost"][0].startswith("requests to tdd-expert@dgx-2")
    record = fg.deployment_gate(None, None, ledgers=paths)
    assert record["outcome"] == fg.FAIL and any("dgx-2-07" in reason for reason in record["reasons"])
    assert {e["path"] for e in record["evidence"]} == set(paths)


def test_the_gate_hook_wants_every_mode_once(tmp_path):
    paths = write_all(tmp_path)
    reasons, _measured = fg.ledger_problems(paths[:-1] + [paths[0], str(tmp_path / "gone.json")])
    assert "no evidence: no ledger of failure mode env-corrupt-or-disk-full among" in " ".join(reasons)
    assert any("failure mode agent-kill has two ledgers" in r for r in reasons)
    assert any("no evidence: a failure-mode ledger expected at" in r and "gone.json" in r for r in reasons)
