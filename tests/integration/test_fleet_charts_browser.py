"""The readiness report charts (plugins/plugin_utils/fleet_charts.py, issue 10 phase 3) in a real
browser: an HTML page holding one chart of each kind, rendered by Debian's headless Chromium. The
screenshot is decoded (PNG, standard library only) and must show every chart - ink in each chart's
place and the palette's colours, so the shapes were drawn, not only the text - and Chromium's DOM
must hold every chart's data-chart id. scripts/setup installs chromium; without it the test skips."""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_charts as fc

pytestmark = pytest.mark.integration

CHROMIUM = Path('/usr/bin/chromium')
WINDOW = (1200, 1600)
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


def chromium(tmp_path, *args):
    command = [str(CHROMIUM), '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
               '--disable-background-networking', '--disable-component-update', '--disable-sync',
               '--hide-scrollbars', '--force-device-scale-factor=1',
               '--user-data-dir=%s' % (tmp_path / 'profile'), '--window-size=%d,%d' % WINDOW] + list(args)
    done = subprocess.run(command, capture_output=True, text=True, timeout=180,
                          env=dict(os.environ, HOME=str(tmp_path)))
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def read_png(path):
    """(width, height, rows): rows of RGB(A) bytes, unfiltered (PNG spec, filters 0-4), 8-bit only."""
    data = path.read_bytes()
    assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack('>I4s', data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b'IHDR':
            header = struct.unpack('>IIBBBBB', chunk)
        elif kind == b'IDAT':
            idat.append(chunk)
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    raw = zlib.decompress(b''.join(idat))
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        row = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if kind == 1:
            for i in range(bpp, stride):
                row[i] = (row[i] + row[i - bpp]) & 255
        elif kind == 2:
            row = bytearray((a + b) & 255 for a, b in zip(row, prev))
        elif kind == 3:
            for i in range(stride):
                row[i] = (row[i] + ((row[i - bpp] if i >= bpp else 0) + prev[i]) // 2) & 255
        elif kind == 4:
            for i in range(stride):
                a = row[i - bpp] if i >= bpp else 0
                b, c = prev[i], prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                row[i] = (row[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(row))
        prev = row
    return width, height, bpp, rows


def ink(rows, bpp, x0, y0, x1, y1):
    """Pixels in the box that are not white (any channel below 240)."""
    count = 0
    for row in rows[y0:y1]:
        part = row[x0 * bpp:x1 * bpp]
        if part.count(255) == len(part):
            continue
        count += sum(1 for i in range(0, len(part), bpp) if min(part[i:i + 3]) < 240)
    return count


def near(rows, bpp, colour, tolerance=24):
    """Pixels within tolerance of an #RRGGBB colour, anywhere."""
    target = bytes.fromhex(colour[1:])
    count = 0
    for row in rows:
        for i in range(0, len(row), bpp):
            if row[i] != 255 or row[i + 1] != 255:
                if all(abs(row[i + k] - target[k]) <= tolerance for k in range(3)):
                    count += 1
    return count


@pytest.mark.skipif(not CHROMIUM.exists(),
                    reason='needs Debian chromium at /usr/bin/chromium (scripts/setup installs it)')
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
