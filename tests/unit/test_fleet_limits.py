# -*- coding: utf-8 -*-
# The one table of numeric ranges (issue 8): its checks, and the docs that state it.

from __future__ import annotations

import math
import pathlib

import pytest
import yaml
from ansible_collections.fleetwave.rollout.plugins.module_utils import fleet_limits
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_limits import (
    LIMITS, MAX_CRITERIA_BYTES, MAX_ROUNDS_PER_WAVE, MAX_YAML_DEPTH, MAX_YAML_NODES, describe, markdown_table,
    out_of_range)
from ansible_collections.fleetwave.rollout.plugins.modules import nats_probe, nats_request, wave_plan
from tests.unit.conftest import documented_options

pytestmark = pytest.mark.unit

REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", sorted(LIMITS))
def test_every_range_is_finite_and_not_empty(name):
    limit = LIMITS[name]
    assert math.isfinite(limit.low) and math.isfinite(limit.high) and limit.low < limit.high


@pytest.mark.parametrize("value, reason", [
    (0, "must be a number in (0, 3,600] seconds, got 0"),
    (3600.0001, "must be a number in (0, 3,600] seconds, got 3600.0001"),
    (float("nan"), "must be a number in (0, 3,600] seconds, got nan"),
    (float("inf"), "must be a number in (0, 3,600] seconds, got inf"),
    (True, "must be a number in (0, 3,600] seconds, got True"),
    ("60", "must be a number in (0, 3,600] seconds, got '60'"),
    (10 ** 80, "must be a number in (0, 3,600] seconds, got %s..." % ("1" + "0" * 56)),
    (10 ** 5000, "must be a number in (0, 3,600] seconds, got an integer of thousands of digits"),
    ([1] * 100, "must be a number in (0, 3,600] seconds, got %s..." % repr([1] * 100)[:57]),
], ids=["low-open", "above", "nan", "inf", "bool", "string", "long-int", "int-past-str-limit", "long-list"])
def test_out_of_range_names_the_range_and_a_bounded_value(value, reason):
    assert out_of_range("window", value) == reason


@pytest.mark.parametrize("name, value", [("window", 3600), ("window", 1e-9), ("wave_stagger_seconds", 0),
                                         ("emit_events", 10000), ("emit_events", 0)])
def test_bounds_are_inclusive_where_written_so(name, value):
    assert out_of_range(name, value) is None


def test_an_integer_range_refuses_floats():
    assert out_of_range("emit_events", 5.0) == "must be an integer in [0, 10,000] events per instance, got 5.0"


def test_the_readme_states_the_table():
    assert markdown_table() in (REPO / "README.md").read_text()


def options(module):
    return documented_options(yaml.safe_load(module.DOCUMENTATION))


def text(option):
    description = option["description"]
    return " ".join(description) if isinstance(description, list) else description


def bounds(name):
    """'(0, 10,000]' of describe(name), as the option docs write it."""
    return describe(name).split(" ")[0] + " " + describe(name).split(" ")[1]


@pytest.mark.parametrize("module, option, name", [
    (nats_probe, "rate", "rate"), (nats_probe, "window", "window"), (nats_probe, "timeout", "timeout"),
    (nats_probe, "connect_timeout", "connect_timeout"), (nats_probe, "emit_events", "emit_events"),
    (nats_request, "timeout", "timeout"), (nats_request, "connect_timeout", "connect_timeout"),
    (nats_request, "expect_replies", "expect_replies"),
    (wave_plan, "stagger", "wave_stagger_seconds"), (wave_plan, "verify_window", "wave_verify_window_seconds"),
    (wave_plan, "monitor_interval", "wave_monitor_interval_seconds"), (wave_plan, "schedule", "at"),
])
def test_option_docs_state_the_range_of_the_table(module, option, name):
    assert "in %s" % bounds(name) in text(options(module)[option]).lower()


def test_wave_plan_docs_state_the_caps():
    docs = text(options(wave_plan)["schedule"]) + text(options(wave_plan)["criteria_file"])
    assert "{:,}".format(MAX_ROUNDS_PER_WAVE) in docs and "%d KiB" % (MAX_CRITERIA_BYTES // 1024) in docs
    assert "{:,} values".format(MAX_YAML_NODES) in docs and "%d levels" % MAX_YAML_DEPTH in docs


def test_nats_probe_docs_state_the_load_cap():
    notes = " ".join(yaml.safe_load(nats_probe.DOCUMENTATION)["notes"])
    assert "{:,} per probe".format(fleet_limits.MAX_PROBE_LOAD) in notes


@pytest.mark.parametrize("overrides, msg", [
    (dict(timeout="inf"), "timeout must be a number in (0, 300] seconds, got inf"),
    (dict(timeout="nan"), "timeout must be a number in (0, 300] seconds, got nan"),
    (dict(connect_timeout=1e300), "connect_timeout must be a number in (0, 60] seconds, got 1e+300"),
    (dict(expect_replies=-1), "expect_replies must be an integer in [0, 10,000] replies, got -1"),
])
def test_nats_request_refuses_numbers_out_of_range_before_connecting(run_module, overrides, msg):
    # Port 1 is never listened on: reaching the connection would fail with another message.
    result = run_module("nats_request", dict(dict(url="nats://127.0.0.1:1", subject="agent.x.cmd.ping"), **overrides))
    assert result["failed"] and result["msg"] == msg
