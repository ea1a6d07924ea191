"""The readiness run's reports (plugins/plugin_utils/fleet_reports.py, issue 10 phase 3) in a real browser:
report.html and brief.html of a run folder built as the unit tests build it (tests/unit/test_fleet_reports.py),
opened by Debian's headless Chromium (tests/browser.py). Chromium's DOM must hold every chart the page
holds; the page's screenshot must not be blank and must show the charts' colours; and each chart, lifted
by a test stylesheet into a fixed box of its own with the rest of the page hidden, must draw its title and
thousands of pixels in its plot. scripts/setup installs chromium; without it the test skips."""

from __future__ import annotations

from pathlib import Path

import pytest

from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_charts as fc
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_reports as fr

from tests.browser import check_page, needs_chromium
from tests.unit.test_fleet_reports import CHART_IDS, NOW, build_run

pytestmark = pytest.mark.integration

@needs_chromium
def test_the_report_and_the_brief_render_every_chart_in_headless_chromium(tmp_path):
    run_dir = build_run(tmp_path / 'run')
    written = fr.render_reports(run_dir, now=NOW)
    reports = Path(run_dir) / 'reports'
    assert 'reports/report.html' in written and 'reports/brief.html' in written
    # the report's charts start below its first screen (lines: a third colour); the brief's two bar charts are in view
    check_page(tmp_path, reports / 'report.html', CHART_IDS, 1200, fc.PALETTE[:3], charts_in_view=False)
    check_page(tmp_path, reports / 'brief.html', ['load-rate', 'failure-modes-recovery'], 2000, fc.PALETTE[:2],
               charts_in_view=True)
