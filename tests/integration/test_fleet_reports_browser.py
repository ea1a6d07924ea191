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

from tests.browser import chromium, ink, near, needs_chromium, read_png
from tests.unit.test_fleet_reports import CHART_IDS, NOW, build_run

pytestmark = pytest.mark.integration

# Each chart in a fixed box, three per row at about half its size (the decoding of a screenshot, pure
# Python, takes seconds per million pixels), so the screenshot can be read chart by chart.
BOX_W, BOX_H, GAP, PER_ROW = 370, 185, 15, 3
WIDTH = 1200


def place(index):
    return GAP + (index % PER_ROW) * (BOX_W + GAP), GAP + (index // PER_ROW) * (BOX_H + GAP)


def charts_in_boxes(page, ids):
    """The page with the rest hidden and each chart in its box (the page's own markup, a stylesheet added)."""
    css = ['body{visibility:hidden}',
           'svg.fleetwave-chart{visibility:visible;position:absolute!important;margin:0!important;'
           'max-width:none!important;width:%dpx!important;height:%dpx!important}' % (BOX_W, BOX_H)]
    css += ['svg.fleetwave-chart[data-chart="%s"]{left:%dpx;top:%dpx}' % ((chart,) + place(i)) for i, chart in
            enumerate(ids)]
    return page.replace('</head>', '<style>%s</style>\n</head>' % ''.join(css), 1)


def check_page(tmp_path, page, expected, height, colours, charts_in_view):
    """page holds the expected charts, drawn in colours (of the palette); a screenshot of height px shows them
    (charts_in_view) or only the top of the page."""
    html = page.read_text(encoding='utf-8')
    ids = fc.chart_ids(html)
    assert ids == expected
    url = page.resolve().as_uri()

    dom = chromium(tmp_path, '--dump-dom', url)
    assert fc.chart_ids(dom) == ids
    assert '<script' not in dom.lower()

    # The page as it is: not blank; the charts in view (the brief's) drawn in their colours.
    shot = tmp_path / ('%s.png' % page.stem)
    chromium(tmp_path, '--screenshot=%s' % shot, url, window=(WIDTH, height))
    width, shot_height, bpp, rows = read_png(shot)
    assert (width, shot_height) == (WIDTH, height)
    dark = ink(rows, bpp, 0, 0, width, shot_height)
    assert dark > 50000, '%s: the screenshot is (nearly) blank: %d dark pixels' % (page.name, dark)
    for colour in colours if charts_in_view else ():
        assert near(rows, bpp, colour) >= 200, '%s: no %s on the page' % (page.name, colour)

    # Each chart in its own box.
    boxed = tmp_path / ('%s-charts.html' % page.stem)
    boxed.write_text(charts_in_boxes(html, ids), encoding='utf-8')
    rows_n = (len(ids) + PER_ROW - 1) // PER_ROW
    window = (WIDTH, GAP + rows_n * (BOX_H + GAP) + 60)
    shot = tmp_path / ('%s-charts.png' % page.stem)
    chromium(tmp_path, '--screenshot=%s' % shot, boxed.resolve().as_uri(), window=window)
    width, shot_height, bpp, rows = read_png(shot)
    outside = ink(rows, bpp, 0, GAP + rows_n * (BOX_H + GAP), width, shot_height)
    assert outside == 0, 'ink below the charts: the rest of the page was not hidden'
    for i, chart in enumerate(ids):
        left, top = place(i)
        title_band = ink(rows, bpp, left, top, left + BOX_W, top + 16)
        plot = ink(rows, bpp, left, top + 32, left + BOX_W, top + BOX_H)
        assert title_band > 60, '%s %s: no title drawn (%d dark pixels)' % (page.name, chart, title_band)
        # axes, grid, lines or bars: nearly 2,000 pixels and more at this size ('no data' would be one word)
        assert plot > 1000, '%s %s: %d dark pixels in its plot' % (page.name, chart, plot)
    for colour in colours:  # the shapes were drawn, not only the text
        assert near(rows, bpp, colour) >= 100, '%s: no %s in the charts' % (page.name, colour)


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
