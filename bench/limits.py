#!/usr/bin/env python3
"""How long the controller takes to refuse the inputs of issue 8 ("the controller hangs on
numbers"), each of which used to hang, blow up memory or crash: an infinite or NaN timing, a
checkpoint at 1e7 s watched every second, a nine-level YAML alias chain, an oversized criteria
file, a file dense with values, rate=1e300 x window=1e300, a 100,000-host list with a duplicate,
and an emit load beyond the cap. Nothing is asserted; figures are printed. A few seconds.

    source scripts/lib.sh && use_venv && python -m bench.limits
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from pathlib import Path

import yaml
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_limits import MAX_CRITERIA_BYTES
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_probe import validate
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_gate import CriteriaError, load_criteria
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_plan import PlanError, build_plan

REPO = Path(__file__).resolve().parents[1]
CONTRACT = yaml.safe_load((REPO / "inventory/production/group_vars/all/00-contract.yml").read_text())
AGENT = dict(name="a", legacy="agent.a", unified="agents.x.a", unified_enabled=True)


def plan(**timings):
    inv = copy.deepcopy(CONTRACT)
    at = timings.pop("at", None)
    if at is not None:
        inv["wave_schedule"]["wave2"]["phase2"][-1]["at"] = at
    args = dict(dict(stagger=inv["wave_stagger_seconds"], verify_window=inv["wave_verify_window_seconds"],
                     monitor_interval=inv["wave_monitor_interval_seconds"]), **timings)
    build_plan("wave2", inv["fleet_agents"], inv["fleet_waves"], inv["wave_schedule"], inv["fleet_subject_legacy"],
               inv["fleet_subject_unified"], **args)


def probe(**overrides):
    params = dict(rate=10.0, window=1.0, timeout=1.0, connect_timeout=2.0, emit_events=0, agents=[AGENT],
                  hosts=["h1"], verbs=["ping"])
    params.update(overrides)
    problem = validate(params)
    if problem:
        raise ValueError(problem)


def criteria(text):
    load_criteria(text, "bench.yml")


def alias_chain(levels=9, fan=9):
    lines = ["a0: &a0 [1]"] + ["a%d: &a%d [%s]" % (i, i, ", ".join(["*a%d" % (i - 1)] * fan))
                               for i in range(1, levels + 1)]
    return "\n".join(lines) + "\nprimary:\n  - threshold: *a%d\n" % levels


def main():
    with tempfile.TemporaryDirectory() as tmp:
        big = os.path.join(tmp, "big.yml")
        with open(big, "w") as handle:  # 50 MB, as in the finding
            handle.write(("#" * 1023 + "\n") * 50 * 1024)
        cases = [
            ("wave_verify_window_seconds=inf", lambda: plan(verify_window=float("inf"))),
            ("wave_monitor_interval_seconds=nan", lambda: plan(monitor_interval=float("nan"))),
            ("checkpoint at 1e7 s, interval 1 s", lambda: plan(at=1e7, monitor_interval=1)),
            ("checkpoint at 7 days, interval 1 s", lambda: plan(at=604800, monitor_interval=1)),
            ("criteria: nine-level alias chain", lambda: criteria(alias_chain())),
            ("criteria: 50 MB file", lambda: load_criteria(big)),
            ("criteria: %d KiB of flow values" % (MAX_CRITERIA_BYTES // 1024),
             lambda: criteria("primary: [" + "1," * (MAX_CRITERIA_BYTES // 2 - 10) + "]\n")),
            ("probe: rate=1e300 window=1e300", lambda: probe(rate=1e300, window=1e300)),
            ("probe: 100,000 hosts, one duplicate",
             lambda: probe(rate=0.5, hosts=["h%d" % i for i in range(100000)] + ["h0"])),
            ("probe: emit 10,000 x 100 hosts", lambda: probe(emit_events=10000, hosts=["h%d" % i for i in range(100)])),
        ]
        print("%-40s %11s  %s" % ("input", "refused in", "message"))
        for name, call in cases:
            start = time.perf_counter()
            try:
                call()
                message = "ACCEPTED"
            except (PlanError, CriteriaError, ValueError) as exc:
                message = str(exc).splitlines()[0]
            print("%-40s %8.1f ms  %s" % (name, (time.perf_counter() - start) * 1000, message[:110]))


if __name__ == "__main__":
    main()
