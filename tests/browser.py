"""Headless Chromium for the tests that look at a page (tests/integration/test_fleet_charts_browser.py,
test_fleet_reports_browser.py): Debian's chromium run on a local file, its screenshot decoded (PNG,
standard library only) and counted. scripts/setup installs chromium; the tests skip without it."""

from __future__ import annotations

import os
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

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
