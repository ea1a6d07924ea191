"""The readiness report charts (plugins/plugin_utils/fleet_charts.py, issue 10 phase 3) in a real
browser: an HTML page holding one chart of each kind, rendered by Debian's headless Chromium. The
screenshot is decoded (PNG, standard library only) and must show every chart - ink in each chart's
place and the palette's colours, so the shapes were drawn, not only the text - and Chromium's DOM
must hold every chart's data-chart id. scripts/setup installs chromium; without it the test skips
(tests/browser.py runs it and decodes the screenshot)."""

from __future__ import annotations

import pytest

from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_charts as fc

from tests.browser import WINDOW, chromium, ink, near, needs_chromium, read_png

pytestmark = pytest.mark.integration

# Each chart in a fixed box, two per row, so the screenshot can be read chart by chart.
BOX_W, BOX_H, GAP = 580, 290, 20


def charts():
    """(slug, svg) of one chart of each kind the reports use, bad data included."""
    spike = {'p50': [(t, 1.0 + (t % 7) / 10.0) for t in range(0, 300, 5)],
             'p95': [(t, 6.0 + t / 20.0) for t in range(0, 300, 5)],
             'p99': [(t, 20.0 + t if not 120 <= t < 150 else None) for t in range(0, 300, 5)]}
    return [
        ('latency-spike', fc.line_chart('Latency, spike', spike, 'Time since start', 'Latency', x_unit='s',
                                        y_unit='ms', thresholds=[(200, 'p99 limit 200 ms')],
                                        bands=[(120, 150, 'nats-server restart')], y_scale='auto',
                                        slug='latency-spike')),
        ('throughput-soak', fc.line_chart('Throughput, soak', {'achieved': [(t, 48 + (t // 600) % 3 if t != 3600
                                                                             else float('nan'))
                                                                         for t in range(0, 4 * 3600, 300)]},
                                          'Time', 'Rate', x_unit='s', y_unit='req/s',
                                          thresholds=[(50, 'requested 50 req/s')], slug='throughput-soak')),
        ('rate-per-scenario', fc.bar_chart('Requested vs achieved rate', {
            '10 concurrent': {'requested': 100, 'achieved': 97.3}, '50 concurrent': {'requested': 500, 'achieved': 480},
            'spike': {'requested': 800, 'achieved': 310}, 'soak': {'requested': 50, 'achieved': None}},
            'Rate', y_unit='req/s', slug='rate-per-scenario')),
        ('recovery-per-failure-mode', fc.bar_chart('Detection and recovery per failure mode', {
            'agent-kill': {'detection': 1.2, 'recovery': 6.5}, 'standin-stop': {'detection': 3.0, 'recovery': 21},
            'nats-restart': {'detection': 0.8, 'recovery': 4.1}, 'node-freeze': {'detection': 9.5, 'recovery': 40}},
            'Seconds', y_unit='s', group_limits={'agent-kill': 30, 'standin-stop': 30, 'nats-restart': 15,
                                                 'node-freeze': 60},
            group_limit_label='recovery budget', slug='recovery-per-failure-mode')),
        ('endurance-not-run', fc.line_chart('Latency, endurance', {}, 'Time', 'Latency', slug='endurance-not-run')),
        ('hostile-names', fc.bar_chart('<script>alert("x")</script> & \'quotes\'', {
            '</svg><p>group</p>': {'"test"': 1.1, "'reference'": 1.0}}, 'Median', y_unit='ms', slug='hostile-names')),
    ]


def page(items):
    boxes = []
    for i, (_, svg) in enumerate(items):
        left, top = GAP + (i % 2) * (BOX_W + GAP), GAP + (i // 2) * (BOX_H + GAP)
        # The charts' own style (max-width:100%; height:auto) fits the 720x360 viewBox to the box.
        boxes.append('<div style="position:absolute;left:%dpx;top:%dpx;width:%dpx;height:%dpx">%s</div>'
                     % (left, top, BOX_W, BOX_H, svg))
    return ('<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>charts</title></head>'
            '<body style="margin:0;background:#fff">\n%s\n</body></html>\n' % '\n'.join(boxes))


@needs_chromium
def test_every_chart_renders_in_headless_chromium(tmp_path):
    items = charts()
    html = tmp_path / 'report.html'
    html.write_text(page(items), encoding='utf-8')
    url = html.resolve().as_uri()

    dom = chromium(tmp_path, '--dump-dom', url)
    assert fc.chart_ids(dom) == [slug for slug, _ in items]
    assert '<script' not in dom.lower()  # the hostile title stayed text

    shot = tmp_path / 'report.png'
    chromium(tmp_path, '--screenshot=%s' % shot, url)
    width, height, bpp, rows = read_png(shot)
    assert (width, height) == WINDOW

    outside = ink(rows, bpp, 0, GAP + 3 * (BOX_H + GAP), width, height)
    assert outside == 0, 'ink below the charts: the page is not laid out as written'
    for i, (slug, _) in enumerate(items):
        left, top = GAP + (i % 2) * (BOX_W + GAP), GAP + (i // 2) * (BOX_H + GAP)
        title_band = ink(rows, bpp, left, top, left + BOX_W, top + 30)
        plot = ink(rows, bpp, left, top + 60, left + BOX_W, top + BOX_H)
        assert title_band > 100, '%s: no title drawn (%d dark pixels)' % (slug, title_band)
        # A chart with data draws axes, grid, lines or bars: thousands of pixels; 'no data' only a word.
        assert plot > (150 if slug == 'endurance-not-run' else 3000), '%s: %d dark pixels in its plot' % (slug, plot)
    # The shapes are drawn in their colours: bars of the first two palette colours, lines of the others.
    for colour, least in ((fc.PALETTE[0], 5000), (fc.PALETTE[1], 5000), (fc.PALETTE[2], 100)):
        assert near(rows, bpp, colour) >= least, colour
