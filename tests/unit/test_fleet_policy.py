"""plugins/plugin_utils/fleet_policy.py: the one place that turns judged figures into an outcome and
the next step. decide_round judges a checkpoint or monitoring round from the gate's findings and the
health checks; decide_approval turns a person's answer into the next step; decide_gate and
decide_wave read the recorded next steps back from the run journal (hand-built records here; the
journal itself is tested in test_fleet_journal.py)."""

from __future__ import annotations

import copy

import pytest
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_policy
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_policy import (
    ASK, GO, INCONCLUSIVE, NO_GO, PROCEED, ROLL_BACK, ROLLBACK, STOP, decide_approval, decide_gate, decide_round,
    decide_wave, describe, next_step_of, settled)

pytestmark = pytest.mark.unit

# --- decide_round ----------------------------------------------------------------------------------

TRIGGER = dict(name="agent_crash", metric="agent_crashes", agent="tdd-expert@dgx-2", fired=True)
LOSS = dict(name="message_loss", metric="delivery_pct", agent="tdd-expert@dgx-1", fired=True)
UNKNOWN = dict(name="performance_degradation", metric="latency_p50_degradation_pct", agent=None, fired=None)
PRIMARY = dict(name="latency_p99", metric="latency_p99_ms", agent="tdd-expert@dgx-1", passed=False)
DEGRADED = dict(metric="latency_ms", verdict="degraded", required=True)
SHORT = dict(metric="latency_ms", verdict="too few samples", required=True)
CHECK_OK = dict(check="unit active", agent="tdd-expert", host="dgx-1", expected="active", measured="active", ok=True)
CHECK_BAD = dict(check="unit active", agent="tdd-expert", host="dgx-2", expected="active", measured="failed",
                 ok=False)
HEALTH_OK = dict(checks=[CHECK_OK], failures=[])
HEALTH_BAD = dict(checks=[CHECK_OK, CHECK_BAD], failures=[CHECK_BAD])
BAD_LINE = "health: tdd-expert unit active on dgx-2: expected active, measured failed"


def gate(fired=(), unknown=(), failed=(), degraded=(), short=(), reasons=None, n_primary=14, n_comparisons=1):
    """fleet_gate.evaluate's findings; one reason line per finding unless given."""
    if reasons is None:
        reasons = (['trigger %s fired' % r['name'] for r in fired] + ['trigger %s unknown' % r['name'] for r in unknown]
                   + ['primary %s failed' % r['name'] for r in failed]
                   + ['comparison %s degraded' % c['metric'] for c in degraded]
                   + ['comparison %s short' % c['metric'] for c in short])
    return dict(fired=list(fired), unknown=list(unknown), failed=list(failed), degraded=list(degraded),
                short=list(short), n_primary=n_primary, n_comparisons=n_comparisons, reasons=list(reasons))


def verdict_of(got):
    return got["outcome"], got["next_step"]


def test_nothing_found_is_go_and_proceeds():
    got = decide_round(gate(), HEALTH_OK)
    assert verdict_of(got) == (GO, PROCEED) and got["reasons"] == []
    assert got["headline"] == "GO: 14 primary checks passed, no rollback trigger, 1 comparison(s) without degradation"
    assert set(got) == {"outcome", "next_step", "headline", "reasons"}


def test_a_fired_trigger_rolls_back_by_default():
    got = decide_round(gate(fired=[TRIGGER]))
    assert verdict_of(got) == (ROLLBACK, ROLL_BACK)
    assert got["headline"] == "ROLLBACK: 1 rollback trigger(s) fired: agent_crash"
    assert got["reasons"] == ["trigger agent_crash fired"]


def test_fired_triggers_are_counted_and_named_once_sorted():
    got = decide_round(gate(fired=[TRIGGER, LOSS, dict(TRIGGER, agent="tdd-expert@dgx-1")]), on_trigger=ROLL_BACK)
    assert got["headline"] == "ROLLBACK: 3 rollback trigger(s) fired: agent_crash, message_loss"


def test_a_fired_trigger_stops_when_on_trigger_is_stop():
    got = decide_round(gate(fired=[TRIGGER]), on_trigger=STOP)
    assert verdict_of(got) == (NO_GO, STOP)
    assert got["headline"] == "NO-GO: 1 rollback trigger(s) fired: agent_crash"


@pytest.mark.parametrize("on_trigger, expected", [(ROLL_BACK, (ROLLBACK, ROLL_BACK)), (STOP, (NO_GO, STOP))])
def test_a_fired_trigger_comes_before_every_other_finding(on_trigger, expected):
    everything = gate(fired=[TRIGGER], unknown=[UNKNOWN], failed=[PRIMARY], degraded=[DEGRADED], short=[SHORT])
    got = decide_round(everything, HEALTH_BAD, on_trigger=on_trigger, on_inconclusive=ASK)
    assert verdict_of(got) == expected
    # Every finding is still given, the gate's first, the health checks' after.
    assert got["reasons"] == ["trigger agent_crash fired", "trigger performance_degradation unknown",
                              "primary latency_p99 failed", "comparison latency_ms degraded",
                              "comparison latency_ms short", BAD_LINE]


@pytest.mark.parametrize("findings, count", [
    (dict(unknown=[UNKNOWN]), 1),            # a trigger that cannot be ruled out holds, never rolls back
    (dict(failed=[PRIMARY]), 1),
    (dict(degraded=[DEGRADED]), 1),
    (dict(unknown=[UNKNOWN], failed=[PRIMARY, PRIMARY], degraded=[DEGRADED]), 4),
], ids=["unknown-trigger", "failed-primary", "degraded-comparison", "all-three"])
def test_a_failed_check_is_no_go_and_stops(findings, count):
    got = decide_round(gate(**findings), HEALTH_OK, on_trigger=ROLL_BACK, on_inconclusive=ROLL_BACK)
    assert verdict_of(got) == (NO_GO, STOP)
    assert got["headline"] == "NO-GO: %d check(s) failed" % count


def test_a_failed_health_check_is_no_go_and_stops():
    got = decide_round(gate(), HEALTH_BAD)
    assert verdict_of(got) == (NO_GO, STOP)
    assert got["headline"] == "NO-GO: 1 check(s) failed" and got["reasons"] == [BAD_LINE]


def test_no_health_check_at_all_is_a_failure_not_a_pass():
    got = decide_round(gate(), dict(checks=[], failures=[]))
    assert verdict_of(got) == (NO_GO, STOP)
    assert got["reasons"] == ["health: nothing was checked (no host or agent in scope)"]


def test_health_not_judged_leaves_the_gate_alone():
    assert verdict_of(decide_round(gate(), None)) == (GO, PROCEED)


@pytest.mark.parametrize("health", [HEALTH_OK, HEALTH_BAD])
def test_a_failed_check_comes_before_too_few_samples(health):
    assert verdict_of(decide_round(gate(failed=[PRIMARY], short=[SHORT]), health)) == (NO_GO, STOP)


@pytest.mark.parametrize("on_inconclusive", [ASK, ROLL_BACK])
def test_too_few_samples_is_inconclusive_with_on_inconclusive(on_inconclusive):
    got = decide_round(gate(short=[SHORT, dict(SHORT, metric="publish_ms")]), HEALTH_OK,
                       on_inconclusive=on_inconclusive)
    assert verdict_of(got) == (INCONCLUSIVE, on_inconclusive)
    assert got["headline"] == "INCONCLUSIVE: required comparison(s) lack samples: latency_ms, publish_ms"


def test_a_health_failure_turns_inconclusive_into_no_go():
    assert verdict_of(decide_round(gate(short=[SHORT]), HEALTH_BAD)) == (NO_GO, STOP)


@pytest.mark.parametrize("findings", [dict(), dict(fired=[TRIGGER]), dict(failed=[PRIMARY])])
def test_a_probe_error_is_the_first_reason(findings):
    got = decide_round(gate(**findings), HEALTH_BAD, probe_error="nats: connection refused")
    assert got["reasons"][0] == "probe failed, so every NATS figure is missing: nats: connection refused"
    assert got["reasons"][1:] == gate(**findings)["reasons"] + [BAD_LINE]


def test_decide_round_does_not_modify_its_inputs():
    findings, health = gate(fired=[TRIGGER]), copy.deepcopy(HEALTH_BAD)
    before = copy.deepcopy(findings)
    decide_round(findings, health, probe_error="x")
    assert findings == before and health == HEALTH_BAD


def test_the_vocabulary():
    assert fleet_policy.OUTCOMES == (GO, NO_GO, ROLLBACK, INCONCLUSIVE) == ("GO", "NO-GO", "ROLLBACK", "INCONCLUSIVE")
    assert fleet_policy.NEXT_STEPS == ("proceed", "stop", "rollback", "ask")
    assert fleet_policy.ON_TRIGGER == ("rollback", "stop") and fleet_policy.ON_INCONCLUSIVE == ("ask", "rollback")


# --- next_step_of and describe ----------------------------------------------------------------------

@pytest.mark.parametrize("step, outcome, expected", [
    ("run", "ok", PROCEED), ("preflight", "ok", PROCEED), ("deploy", "ok", PROCEED),
    ("preflight", "failed", STOP), ("deploy", "failed", STOP), ("deploy", None, STOP),
    ("rollback", "rolled back", STOP), ("rollback", "failed", STOP), ("rollback", "ok", STOP),
])
def test_next_step_of_a_step_not_judged_by_criteria(step, outcome, expected):
    assert next_step_of(step, outcome) == expected


def test_describe_names_agent_check_host_expected_and_measured():
    assert describe(CHECK_BAD) == "tdd-expert unit active on dgx-2: expected active, measured failed"
    assert describe(dict(CHECK_BAD, host=None, check="legacy only (control)", measured=["dgx-1"])) == (
        "tdd-expert legacy only (control): expected active, measured ['dgx-1']")


# --- journal records, by hand ----------------------------------------------------------------------

def rec(step, phase, label, outcome=GO, next_step=PROCEED, reasons=(), finished=None, **more):
    return dict(step=step, phase=phase, label=label, outcome=outcome, next_step=next_step, reasons=list(reasons),
                finished=finished or "2025-01-14T10:00:00.000Z", **more)


def checkpoint(phase, label, outcome=GO, next_step=PROCEED, reasons=(), **more):
    return rec("checkpoint", phase, label, outcome, next_step, reasons, **more)


def monitor(phase, label, outcome=GO, next_step=PROCEED, reasons=(), **more):
    return rec("monitoring round", phase, label, outcome, next_step, reasons, **more)


def approval(phase, label, approved=True, reasons=("too few samples",)):
    answer = decide_approval(dict(step="checkpoint", label=label, next_step=ASK, reasons=list(reasons)), approved)
    return rec("approval", phase, label, answer["outcome"], answer["next_step"], answer["reasons"],
               finished="2025-01-14T11:00:00.000Z")


ASKED = ("INCONCLUSIVE", ASK, ["too few samples"])


# --- decide_approval ---------------------------------------------------------------------------------

def test_an_accepted_answer_is_go_and_proceeds_keeping_why_it_was_asked():
    got = decide_approval(checkpoint("phase1", "T+1h", *ASKED), True)
    assert got == dict(outcome=GO, next_step=PROCEED, reasons=["too few samples", "INCONCLUSIVE, accepted by a person"])


def test_a_refused_answer_stays_inconclusive_and_stops():
    got = decide_approval(checkpoint("phase1", "T+1h", *ASKED), False)
    assert got == dict(outcome=INCONCLUSIVE, next_step=STOP,
                       reasons=["too few samples", "INCONCLUSIVE, not accepted: the run stops here"])


@pytest.mark.parametrize("outcome, next_step", [(GO, PROCEED), (NO_GO, STOP), (ROLLBACK, ROLL_BACK),
                                                 (INCONCLUSIVE, ROLL_BACK)])
def test_only_a_round_that_asked_can_be_answered(outcome, next_step):
    with pytest.raises(ValueError, match=r"^checkpoint T\+1h did not ask for a person \(next step %s\)$" % next_step):
        decide_approval(checkpoint("phase1", "T+1h", outcome, next_step), True)


def test_decide_approval_does_not_modify_the_round():
    round_record = checkpoint("phase1", "T+1h", *ASKED)
    before = copy.deepcopy(round_record)
    decide_approval(round_record, True)
    assert round_record == before


# --- settled -----------------------------------------------------------------------------------------

def test_settled_is_the_last_word_on_a_round():
    asked, answer = checkpoint("phase1", "T+1h", *ASKED), approval("phase1", "T+1h")
    gate_record = rec("gate", "phase1", None)
    records = [checkpoint("phase1", "v"), asked, answer, gate_record]
    assert settled(records, "phase1", "T+1h") is answer
    assert settled(records, "phase1", "v") is records[0]
    assert settled(records, "phase1", "T+6h") is None
    assert settled(records, "phase2", "T+1h") is None


# --- decide_gate -------------------------------------------------------------------------------------

def test_gate_is_go_when_every_round_of_the_phase_proceeded():
    records = [checkpoint("phase1", "phase1-verification"), monitor("phase1", "phase1-monitor-001"),
               checkpoint("phase1", "phase1-T+1h")]
    assert decide_gate(records, "phase1") == dict(outcome=GO, next_step=PROCEED, reasons=[])


def test_a_round_that_did_not_proceed_is_no_go_naming_it():
    records = [checkpoint("phase1", "phase1-verification"),
               checkpoint("phase1", "phase1-T+1h", NO_GO, STOP, ["primary latency_p99 failed", "health: x"])]
    assert decide_gate(records, "phase1") == dict(outcome=NO_GO, next_step=STOP, reasons=[
        "checkpoint phase1-T+1h is NO-GO: primary latency_p99 failed; health: x"])


def test_a_round_without_reasons_says_no_detail():
    got = decide_gate([checkpoint("phase1", "v", NO_GO, STOP)], "phase1")
    assert got["reasons"] == ["checkpoint v is NO-GO: no detail"]


def test_a_monitoring_round_that_stopped_is_named():
    records = [checkpoint("phase1", "v"), monitor("phase1", "phase1-monitor-002", NO_GO, STOP, ["x"])]
    assert decide_gate(records, "phase1")["reasons"] == ["monitoring round phase1-monitor-002 is NO-GO: x"]


def test_a_rollback_that_already_ran_stops_the_run_not_rolls_back_again():
    records = [checkpoint("phase1", "v", ROLLBACK, ROLL_BACK, ["trigger agent_crash fired"]),
               rec("rollback", "phase1", "v", "rolled back", STOP)]
    got = decide_gate(records, "phase1")
    assert (got["outcome"], got["next_step"]) == (NO_GO, STOP)
    assert got["reasons"] == ["checkpoint v is ROLLBACK: trigger agent_crash fired"]


def test_an_accepted_answer_overrides_the_round_that_asked():
    records = [checkpoint("phase1", "v"), checkpoint("phase1", "T+1h", *ASKED), approval("phase1", "T+1h")]
    assert decide_gate(records, "phase1") == dict(outcome=GO, next_step=PROCEED, reasons=[])


def test_a_refused_answer_is_no_go_naming_the_round():
    records = [checkpoint("phase1", "T+1h", *ASKED), approval("phase1", "T+1h", approved=False)]
    assert decide_gate(records, "phase1") == dict(outcome=NO_GO, next_step=STOP, reasons=[
        "checkpoint T+1h is INCONCLUSIVE: too few samples; INCONCLUSIVE, not accepted: the run stops here"])


def test_a_round_still_asking_is_no_go():
    got = decide_gate([checkpoint("phase1", "T+1h", *ASKED)], "phase1")
    assert (got["outcome"], got["reasons"]) == (NO_GO, ["checkpoint T+1h is INCONCLUSIVE: too few samples"])


def test_an_answer_to_a_monitoring_round_overrides_it():
    records = [monitor("phase1", "phase1-monitor-001", *ASKED), approval("phase1", "phase1-monitor-001")]
    assert decide_gate(records, "phase1")["outcome"] == GO


def test_a_phase_without_any_round_is_no_go():
    assert decide_gate([checkpoint("phase2", "v")], "phase1") == dict(
        outcome=NO_GO, next_step=STOP, reasons=["no checkpoint of phase1 was recorded"])


def test_records_of_another_phase_are_ignored():
    records = [checkpoint("phase1", "v"), checkpoint("phase2", "T+1h", NO_GO, STOP, ["x"]),
               rec("deploy", "phase1", None, "failed", STOP), rec("gate", "phase1", None, NO_GO, STOP)]
    assert decide_gate(records, "phase1") == dict(outcome=GO, next_step=PROCEED, reasons=[])


def test_the_same_label_in_two_phases_is_kept_apart():
    records = [checkpoint("phase1", "verification", NO_GO, STOP, ["x"]), checkpoint("phase2", "verification"),
               approval("phase2", "T+1h")]
    assert decide_gate(records, "phase2")["outcome"] == GO
    assert decide_gate(records, "phase1")["reasons"] == ["checkpoint verification is NO-GO: x"]


def test_deciding_a_gate_does_not_modify_the_records():
    records = [checkpoint("phase1", "T+1h", *ASKED), approval("phase1", "T+1h", approved=False)]
    before = copy.deepcopy(records)
    decide_gate(records, "phase1")
    assert records == before


# --- decide_wave -------------------------------------------------------------------------------------

PLAN = dict(
    wave="wave2", agents=["network-expert", "tdd-expert"], control=[dict(name="git-expert")],
    phases=[dict(name="phase1", watch=[dict(label="phase1-verification", after=5), dict(label="phase1-T+1h", after=7)]),
            dict(name="phase2", watch=[dict(label="phase2-verification", after=5), dict(label="T+1h", after=7)])])
WATCH = [("phase1", "phase1-verification"), ("phase1", "phase1-T+1h"), ("phase2", "phase2-verification"),
         ("phase2", "T+1h")]


def all_go(**changes):
    """One record per scheduled checkpoint, GO, at 10:00, 10:01, ...; changes: {label: record}."""
    records = []
    for minute, (phase, label) in enumerate(WATCH):
        records.append(changes.get(label) or checkpoint(phase, label, finished="2025-01-14T10:%02d:00.000Z" % minute))
    return records


def test_all_checkpoints_go_is_go():
    got = decide_wave(PLAN, all_go())
    assert got["outcome"] == GO and got["reasons"] == []
    assert [(r["phase"], r["label"], r["outcome"]) for r in got["rows"]] == [(p, lbl, GO) for p, lbl in WATCH]
    assert got["rows"][3] == dict(phase="phase2", label="T+1h", outcome=GO, at="2025-01-14T10:03:00.000Z", reasons=[])


def test_a_checkpoint_not_reached_is_a_row_and_a_reason():
    records = [r for r in all_go() if r["label"] != "T+1h"]
    got = decide_wave(PLAN, records)
    assert got["outcome"] == NO_GO and got["reasons"] == ["checkpoint T+1h was not reached in this run"]
    assert got["rows"][3] == dict(phase="phase2", label="T+1h", outcome="NOT REACHED", at=None, reasons=[])


def test_a_checkpoint_not_go_gives_its_reasons():
    records = all_go(**{"T+1h": checkpoint("phase2", "T+1h", NO_GO, STOP, [
        "health: tdd-expert unit active on dgx-2: expected active, measured failed",
        "health: tdd-expert no restarts on dgx-2: expected 0, measured 1"])})
    got = decide_wave(PLAN, records)
    assert got["outcome"] == NO_GO
    assert got["reasons"] == ["checkpoint T+1h is NO-GO: health: tdd-expert unit active on dgx-2: expected active, "
                              "measured failed; health: tdd-expert no restarts on dgx-2: expected 0, measured 1"]
    assert got["rows"][3]["reasons"][1].startswith("health: tdd-expert no restarts")


def test_a_checkpoint_not_go_without_reasons_says_no_detail():
    got = decide_wave(PLAN, all_go(**{"phase1-verification": checkpoint("phase1", "phase1-verification", NO_GO, STOP)}))
    assert got["reasons"] == ["checkpoint phase1-verification is NO-GO: no detail"]


def test_every_problem_is_a_reason_in_plan_order():
    records = [checkpoint("phase1", "phase1-verification", NO_GO, STOP, ["x"])]
    assert decide_wave(PLAN, records)["reasons"] == [
        "checkpoint phase1-verification is NO-GO: x",
        "checkpoint phase1-T+1h was not reached in this run",
        "checkpoint phase2-verification was not reached in this run",
        "checkpoint T+1h was not reached in this run"]


def test_a_plan_without_checkpoints_is_no_go():
    assert decide_wave(dict(PLAN, phases=[dict(name="phase1", watch=[])]), all_go()) == dict(
        outcome=NO_GO, reasons=[], rows=[])


def test_an_inconclusive_checkpoint_accepted_by_a_person_is_go():
    records = all_go(**{"phase1-T+1h": checkpoint("phase1", "phase1-T+1h", *ASKED)})
    records.append(approval("phase1", "phase1-T+1h"))
    got = decide_wave(PLAN, records)
    assert got["outcome"] == GO and got["reasons"] == []
    assert got["rows"][1] == dict(phase="phase1", label="phase1-T+1h", outcome=GO, at="2025-01-14T11:00:00.000Z",
                                  reasons=["too few samples", "INCONCLUSIVE, accepted by a person"])


@pytest.mark.parametrize("answered", [False, None], ids=["refused", "not-answered"])
def test_an_inconclusive_checkpoint_not_accepted_is_no_go(answered):
    records = all_go(**{"T+1h": checkpoint("phase2", "T+1h", *ASKED)})
    if answered is not None:
        records.append(approval("phase2", "T+1h", approved=answered))
    got = decide_wave(PLAN, records)
    assert got["outcome"] == NO_GO and got["rows"][3]["outcome"] == INCONCLUSIVE
    assert got["reasons"][0].startswith("checkpoint T+1h is INCONCLUSIVE: too few samples")


@pytest.mark.parametrize("outcome, next_step", [(NO_GO, STOP), (ROLLBACK, ROLL_BACK)])
def test_an_approval_cannot_follow_a_failed_checkpoint_so_it_stays_failed(outcome, next_step):
    records = all_go(**{"T+1h": checkpoint("phase2", "T+1h", outcome, next_step, ["x"])})
    got = decide_wave(PLAN, records)
    assert got["outcome"] == NO_GO and got["rows"][3]["outcome"] == outcome


def test_monitoring_rounds_that_proceeded_do_not_show():
    records = all_go() + [monitor("phase1", "phase1-monitor-001"), monitor("phase2", "phase2-monitor-001")]
    got = decide_wave(PLAN, records)
    assert got["outcome"] == GO and [r["label"] for r in got["rows"]] == [lbl for _, lbl in WATCH]


def test_a_monitoring_round_that_stopped_is_listed_after_its_phase_checkpoints():
    reason = "trigger agent_crash fired on network-expert@dgx-2: agent_crashes 1 > 0 count"
    records = all_go() + [monitor("phase1", "phase1-monitor-001"),
                          monitor("phase1", "phase1-monitor-002", ROLLBACK, ROLL_BACK, [reason],
                                  finished="2025-01-14T10:30:00.000Z")]
    got = decide_wave(PLAN, records)
    assert got["outcome"] == NO_GO
    assert got["reasons"] == ["monitoring round phase1-monitor-002 is ROLLBACK: " + reason]
    assert [r["label"] for r in got["rows"]] == ["phase1-verification", "phase1-T+1h",
                                                 "phase1-monitor-002 (monitoring)", "phase2-verification", "T+1h"]
    assert got["rows"][2] == dict(phase="phase1", label="phase1-monitor-002 (monitoring)", outcome=ROLLBACK,
                                  at="2025-01-14T10:30:00.000Z", reasons=[reason])


def test_a_monitoring_round_answered_by_a_person_is_settled_by_the_answer():
    asked = [monitor("phase2", "phase2-monitor-001", *ASKED)]
    accepted = decide_wave(PLAN, all_go() + asked + [approval("phase2", "phase2-monitor-001")])
    assert accepted["outcome"] == GO and len(accepted["rows"]) == 4
    refused = decide_wave(PLAN, all_go() + asked + [approval("phase2", "phase2-monitor-001", approved=False)])
    assert refused["outcome"] == NO_GO
    assert refused["reasons"] == ["monitoring round phase2-monitor-001 is INCONCLUSIVE: too few samples; "
                                  "INCONCLUSIVE, not accepted: the run stops here"]
    assert refused["rows"][-1]["label"] == "phase2-monitor-001 (monitoring)"


def test_the_same_label_in_two_phases_is_kept_apart():
    plan = dict(PLAN, phases=[dict(name="phase1", watch=[dict(label="verification", after=5)]),
                              dict(name="phase2", watch=[dict(label="verification", after=5)])])
    records = [checkpoint("phase1", "verification"), checkpoint("phase2", "verification", NO_GO, STOP, ["x"])]
    got = decide_wave(plan, records)
    assert [(r["phase"], r["outcome"]) for r in got["rows"]] == [("phase1", GO), ("phase2", NO_GO)]
    assert got["reasons"] == ["checkpoint verification is NO-GO: x"]
    # Only phase 1's: phase 2's checkpoint was not reached.
    got = decide_wave(plan, records[:1])
    assert [(r["phase"], r["outcome"]) for r in got["rows"]] == [("phase1", GO), ("phase2", "NOT REACHED")]


def test_records_of_a_phase_not_in_the_plan_are_ignored():
    records = all_go() + [checkpoint("phase3", "T+1h", NO_GO, STOP, ["x"]),
                          monitor("phase3", "phase3-monitor-001", NO_GO, STOP, ["y"])]
    got = decide_wave(PLAN, records)
    assert got["outcome"] == GO and len(got["rows"]) == 4


def test_deciding_a_wave_does_not_modify_the_records():
    records = all_go(**{"T+1h": checkpoint("phase2", "T+1h", *ASKED)}) + [approval("phase2", "T+1h")]
    before = copy.deepcopy(records)
    decide_wave(PLAN, records)
    assert records == before
