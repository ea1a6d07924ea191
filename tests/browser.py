"""Headless Chromium for the tests that look at a page (tests/integration/test_fleet_charts_browser.py,
test_fleet_reports_browser.py, tests/acceptance/test_readiness.py): Debian's chromium run on a local
file, its screenshot decoded (PNG, standard library only) and counted, and a report page checked chart
by chart (check_page). scripts/setup installs chromium; the tests skip without it."""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_charts as fc

CHROMIUM = Path('/usr/bin/chromium')
WINDOW = (1200, 1600)

needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(),
                                    reason='needs Debian chromium at /usr/bin/chromium (scripts/setup installs it)')


def chromium(tmp_path, *args, window=WINDOW):
    """Run headless chromium with args (--dump-dom URL, --screenshot=PATH URL); its stdout."""
    command = [str(CHROMIUM), '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
               '--disable-background-networking', '--disable-component-update', '--disable-sync',
               '--hide-scrollbars', '--force-device-scale-factor=1',
               '--user-data-dir=%s' % (tmp_path / 'profile'), '--window-size=%d,%d' % tuple(window)] + list(args)
    done = subprocess.run(command, capture_output=True, text=True, timeout=180,
                          env=dict(os.environ, HOME=str(tmp_path)))
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def read_png(path):
    """(width, height, bpp, rows): rows of RGB(A) bytes, unfiltered (PNG spec, filters 0-4), 8-bit only."""
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
