# -*- coding: utf-8 -*-
"""Charts of the production-readiness reports (issue 10, phase 3), as self-contained inline SVG.

Each function returns one ``<svg>`` element as text, to be pasted into the HTML or Markdown of a
report: no script, no stylesheet, no font file, no URL (the only ``http`` is the SVG namespace), so
it renders offline in a browser, a mail client or a Markdown viewer that keeps inline SVG. Pure
Python, standard library only.

Public API
==========
``line_chart(title, series, x_label, y_label, x_unit='', y_unit='', thresholds=(), bands=(),
y_scale='linear', slug=None, width=720, height=360)``
    Several named series of ``(x, y)`` points, e.g. latency p50/p95/p99 of a load scenario against
    seconds since its start, or throughput over time. ``series`` is a mapping ``name -> points`` or a
    sequence of ``(name, points)``; x and y are numbers (numeric text is read as one) and points are
    drawn in x order. A point whose y is ``None`` has no data: the line stops there and starts again
    after it (a gap, never a zero). With ``x_unit='s'`` an axis spanning two minutes or two hours or
    more is shown in min or h. ``thresholds``: ``(value, label)`` pairs drawn as labelled horizontal
    lines ("p99 limit 200 ms"); ``bands``: ``(x_from, x_to, label)`` shaded across the plot (a failure
    window), ``x_to`` ``None`` for "to the end". ``y_scale``: ``'linear'`` (from zero), ``'log'``
    (decades, for latencies that span orders of magnitude) or ``'auto'`` (log when every value is
    positive and the largest is at least ``AUTO_LOG_RATIO`` times the smallest).
``bar_chart(title, groups, y_label, y_unit='', limits=(), group_limits=None, group_limit_label='limit',
slug=None, width=720, height=360)``
    Grouped bars, e.g. requested vs achieved rate per scenario, detection and recovery seconds per
    failure mode, test vs reference medians. ``groups`` is a mapping ``group -> {bar: value}`` or a
    sequence of ``(group, {bar: value})``; each bar name keeps one colour across the groups. Each bar
    carries its value; a bar without a value is marked ``n/a`` at the baseline, never drawn as zero.
    ``limits``: ``(value, label)`` lines across the chart; ``group_limits``: ``{group: value}``, a
    marker over that group's bars (each failure mode's own budget), named ``group_limit_label`` in
    the legend.
``chart_ids(text)``
    The ``data-chart`` slugs of the charts in an HTML or Markdown text, in document order (a slug
    used twice is listed twice), for a report test to check that every chart is there.
``nice_ticks(lo, hi, max_ticks)``, ``slugify(text)``
    The axis ticks (1-2-5 steps) and the slug rule the charts use.

What every chart guarantees
===========================
- The root is ``<svg class="fleetwave-chart" data-chart="<slug>" role="img" width=.. height=..
  viewBox="0 0 <width> <height>">``; ``slug`` defaults to ``slugify(title)`` (pass one per chart when
  titles repeat on a page). Its first children are ``<title>`` (the full title) and ``<desc>`` (what
  the chart shows in words: per series its points, range and last value; each bar's value; the
  thresholds; what was left out), for screen readers and for whoever cannot see the colours.
- Colours come from the Okabe-Ito palette (``PALETTE``, safe for the common colour-vision
  deficiencies; yellow left out, unreadable on white). After seven series the lines are dashed too;
  after seven bar names the fills are half-transparent.
- Bad data never raises: a chart without data says "no data"; points whose value is NaN, infinite,
  not a number, beyond ``MAX_ABS``, or not positive on a log scale are left out and counted in a
  small note (and in the description), and the line breaks there as for ``None``. One point, equal
  values and negative values are drawn. Names of any length and content: longer than ``MAX_NAME``
  characters they are cut with an ellipsis and the full text is the element's ``<title>`` (a
  tooltip); every text is XML-escaped, and characters XML cannot hold become U+FFFD.
- Every coordinate is inside the viewBox; tick labels are spaced so they cannot overlap (their
  width estimated at ``CHAR_EM`` of the font size, a wide sans-serif's digits).
- Deterministic: the same input gives the same bytes (fixed float formatting, input order kept).
- Elements carry classes a test or a stylesheet can find: ``x-tick``, ``y-tick``, ``legend``,
  ``series``, ``bar``, ``value``, ``no-value``, ``threshold``, ``group-limit``, ``band``, ``note``,
  ``no-data``.

Bad arguments (an unknown ``y_scale``, a width or height out of ``SIZE_RANGE``) are caller errors and
raise ``ValueError``.
"""

from __future__ import annotations

import math
import re

CHART_CLASS = 'fleetwave-chart'
# Okabe & Ito (2008): blue, vermillion, bluish green, reddish purple, orange, sky blue, black.
PALETTE = ('#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000')
# Series 8-14 dashed, 15-21 dotted: still told apart once the colours repeat.
DASHES = ('', '8 4', '2 3')
SIZE_RANGE = (240, 4000)
MAX_NAME = 32          # characters of a name shown before the ellipsis
MAX_ABS = 1e15         # larger magnitudes are left out: no report figure is that big, spans stay finite
AUTO_LOG_RATIO = 100.0
CHAR_EM = 0.62         # estimated advance of a character, in ems (DejaVu Sans digits are 0.64)
_LOG_MIN = 1e-100    # a log axis spans at most 115 decades: 10.0 ** -324 would be zero
MARKERS_UP_TO = 30     # points of a series drawn with a dot; beyond, only isolated points get one

_FONT, _SMALL, _TITLE = 12, 11, 15
_INK, _MUTED, _GRID = '#222222', '#666666', '#e3e3e3'
_LIMIT_INK = '#222222'
_XML_BAD = re.compile('[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]')
_SPACE = re.compile(r'\s+')
_SVG_TAG = re.compile(r'<svg\b[^>]*>', re.IGNORECASE)
_ATTR = re.compile(r'([A-Za-z_:][-\w:.]*)\s*=\s*(?:"([^"]*)"|\'([^\']*)\')')


# ================================================================================ text and numbers

def _clean(text):
    """One line of text XML can hold: whitespace runs as one space, forbidden characters as U+FFFD."""
    return _XML_BAD.sub('\ufffd', _SPACE.sub(' ', str(text))).strip()


def _esc(text):
    return (text.replace('&', '&amp;').replace('<', '&lt;').replace('>', '&gt;')
            .replace('"', '&quot;').replace("'", '&#39;'))


def _cut(text, max_chars):
    """(shown, full): text cut to max_chars with an ellipsis; full is None when nothing was cut."""
    max_chars = max(2, int(max_chars))
    if len(text) <= max_chars:
        return text, None
    return text[:max_chars - 1].rstrip() + '\u2026', text


def _width(text, size):
    return len(text) * size * CHAR_EM


def _c(value):
    """A coordinate: one decimal, no '-0'."""
    text = '%.1f' % value
    if text.endswith('.0'):
        text = text[:-2]
    return '0' if text == '-0' else text


def _fmt(value):
    """A value for people: three significant digits, k/M/G/T beyond 10,000, never '1e+03' below 1e15."""
    if value == 0:
        return '0'
    size = abs(value)
    if size >= 1e15 or size < 1e-4:
        return '%.3g' % value
    for factor, suffix in ((1e12, 'T'), (1e9, 'G'), (1e6, 'M'), (1e4, 'k')):
        if size >= factor:
            scaled = value / (1e3 if suffix == 'k' else factor)
            return _fmt(scaled) + suffix
    decimals = max(0, 2 - int(math.floor(math.log10(size))))
    text = '%.*f' % (decimals, value)
    if '.' in text:
        text = text.rstrip('0').rstrip('.')
    return '0' if text in ('-0', '') else text


def _fmt_tick(value, step):
    """A tick label: as many decimals as the step needs, so neighbouring labels always differ."""
    if value == 0:
        return '0'
    if step < 1e-4 or abs(value) >= 1e15:
        return '%g' % value
    for factor, suffix in ((1e12, 'T'), (1e9, 'G'), (1e6, 'M'), (1e3, 'k')):
        if step >= factor and abs(value) >= 10 * factor:
            return _fmt_tick(value / factor, step / factor) + suffix
    decimals = max(0, -int(math.floor(math.log10(step) + 1e-9)))
    text = '%.*f' % (decimals, value)
    return '0' if text.strip('-0.') == '' else text


def _with_unit(text, unit):
    return '%s (%s)' % (text, unit) if unit else text


def _number(value):
    """(float, None) for a finite number (or numeric text, as Ansible templates give); else (None, why):
    'no value' for None, 'NaN/inf', 'not a number', 'out of range' (beyond MAX_ABS)."""
    if value is None:
        return None, 'no value'
    if isinstance(value, bool):
        return None, 'not a number'
    try:
        number = float(value)
    except OverflowError:  # an int beyond the float range
        return None, 'out of range'
    except (TypeError, ValueError):
        return None, 'not a number'
    if number != number or number in (float('inf'), float('-inf')):
        return None, 'NaN/inf'
    if abs(number) > MAX_ABS:
        return None, 'out of range'
    return number, None


def slugify(text):
    """The data-chart id of a title: lower-case ASCII letters and digits joined by '-', at most 60
    characters; 'chart' when nothing is left."""
    slug = re.sub(r'[^a-z0-9]+', '-', str(text).lower()).strip('-')[:60].strip('-')
    return slug or 'chart'


def chart_ids(text):
    """The data-chart slugs of the fleetwave charts in an HTML or Markdown text, in document order."""
    found = []
    for tag in _SVG_TAG.findall(str(text)):
        attrs = {m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
                 for m in _ATTR.finditer(tag)}
        if CHART_CLASS in attrs.get('class', '').split() and 'data-chart' in attrs:
            found.append(attrs['data-chart'])
    return found


def _items(value):
    """(name, content) pairs of a mapping or of a sequence of pairs; anything else gives none."""
    if value is None:
        return []
    if hasattr(value, 'items'):
        return list(value.items())
    pairs = []
    try:
        for item in value:
            try:
                name, content = item
            except (TypeError, ValueError):
                continue
            pairs.append((name, content))
    except TypeError:
        return []
    return pairs


class _Dropped(object):
    """Counts of what was left out, by reason, in first-seen order; rendered as one note."""

    def __init__(self):
        self.counts = {}

    def add(self, why, n=1):
        self.counts[why] = self.counts.get(why, 0) + n

    def text(self, gaps_word='without a value (gaps)'):
        if not self.counts:
            return ''
        parts = ['%d %s' % (n, gaps_word if why == 'no value' else why) for why, n in self.counts.items()]
        return 'Left out: ' + ', '.join(parts) + '.'


# ================================================================================ scales

def nice_ticks(lo, hi, max_ticks=6):
    """Evenly spaced ticks covering [lo, hi], first <= lo and last >= hi, with the smallest step of
    1, 2 or 5 times a power of ten that needs at most max_ticks (at least 3) ticks."""
    lo, hi = float(lo), float(hi)
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi < lo:
        raise ValueError('nice_ticks: need finite lo <= hi, got %r, %r' % (lo, hi))
    max_ticks = max(3, int(max_ticks))
    if hi == lo:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    span = max(hi - lo, max(abs(lo), abs(hi)) * 1e-12)
    e = int(math.floor(math.log10(span / (max_ticks - 1))))
    while True:  # ends: a step as large as the span needs at most three ticks
        for mantissa in (1, 2, 5):
            # mantissa / 10 ** -e rather than mantissa * 0.1 ** -e: 0.3 stays 0.3, not 0.30000000000000004
            step = mantissa * 10.0 ** e if e >= 0 else mantissa / 10.0 ** -e
            first = int(math.floor(lo / step + 1e-9))
            last = int(math.ceil(hi / step - 1e-9))
            if last - first + 1 <= max_ticks:
                return [k * mantissa * 10.0 ** e if e >= 0 else k * mantissa / 10.0 ** -e
                        for k in range(first, last + 1)]
        e += 1


def _log_ticks(lo, hi, max_ticks):
    """The ticks of a log axis over [lo, hi] (both > 0), its first and last its bounds: whole decades,
    every 2nd, 5th, 10th... decade when they are many, and 2 and 5 within each decade when there is room."""
    first = int(math.floor(math.log10(lo) + 1e-9))
    last = int(math.ceil(math.log10(hi) - 1e-9))
    if last <= first:
        last = first + 1
    decades = last - first
    if 3 * decades + 1 <= max_ticks:
        ticks = []
        for e in range(first, last):
            ticks.extend(m * 10.0 ** e for m in (1, 2, 5))
        return ticks + [10.0 ** last]
    for step in (1, 2, 5, 10, 20, 50, 100, 200, 500):
        low, high = first - first % step, last + (-last) % step
        if (high - low) // step + 1 <= max_ticks:
            break
    return [10.0 ** e for e in range(low, high + 1, step)]


def _time_unit(unit, lo, hi):
    """(factor, shown unit): seconds spanning hours or minutes are shown in h or min."""
    if unit == 's':
        span = hi - lo
        if span >= 7200:
            return 3600.0, 'h'
        if span >= 120:
            return 60.0, 'min'
    return 1.0, unit


class _Axis(object):
    """A value -> pixel mapping along [p0, p1] for the ticks' range (linear or log)."""

    def __init__(self, ticks, p0, p1, log=False, factor=1.0):
        self.log, self.factor = log, factor
        self.ticks = ticks
        self.lo, self.hi = ticks[0] * factor, ticks[-1] * factor
        self.p0, self.p1 = p0, p1

    def __call__(self, value):
        if self.log:
            where = (math.log10(value) - math.log10(self.lo)) / (math.log10(self.hi) - math.log10(self.lo))
        else:
            where = (value - self.lo) / (self.hi - self.lo)
        where = min(1.0, max(0.0, where))
        return self.p0 + where * (self.p1 - self.p0)


# ================================================================================ SVG pieces

class _Svg(object):
    """The parts of one chart and its frame."""

    def __init__(self, title, slug, width, height):
        for what, size in (('width', width), ('height', height)):
            if isinstance(size, bool) or not isinstance(size, int) or not SIZE_RANGE[0] <= size <= SIZE_RANGE[1]:
                raise ValueError('%s must be an integer from %d to %d, got %r'
                                 % (what, SIZE_RANGE[0], SIZE_RANGE[1], size))
        self.title = _clean(title) or 'Chart'
        self.slug = slugify(self.title if slug is None else slug)
        self.width, self.height = width, height
        self.parts = []

    def add(self, text):
        self.parts.append(text)

    def text(self, x, y, text, size=_FONT, anchor='start', cls=None, fill=_INK, max_chars=None, weight=None,
             rotate=False, halo=False):
        """A <text>, cut to max_chars with the full text as its tooltip; a halo (a white outline under
        the glyphs) keeps a label over lines readable."""
        shown, full = _cut(text, max_chars) if max_chars else (text, None)
        attrs = ['x="%s" y="%s"' % (_c(x), _c(y)), 'font-size="%s"' % size, 'fill="%s"' % fill]
        if anchor != 'start':
            attrs.append('text-anchor="%s"' % anchor)
        if weight:
            attrs.append('font-weight="%s"' % weight)
        if rotate:
            attrs.append('transform="rotate(-90 %s %s)"' % (_c(x), _c(y)))
        if halo:
            attrs.append('stroke="#ffffff" stroke-width="3" stroke-linejoin="round" paint-order="stroke"')
        if cls and not full:
            attrs.insert(0, 'class="%s"' % cls)
        element = '<text %s>%s</text>' % (' '.join(attrs), _esc(shown))
        if full:
            element = '<g%s><title>%s</title>%s</g>' % (' class="%s"' % cls if cls else '', _esc(full), element)
        self.add(element)

    def render(self, desc):
        head = ('<svg xmlns="http://www.w3.org/2000/svg" class="%s" data-chart="%s" role="img" '
                'width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" '
                'style="max-width:100%%;height:auto">' % (CHART_CLASS, self.slug, self.width, self.height,
                                                         self.width, self.height))
        frame = ['<title>%s</title>' % _esc(self.title), '<desc>%s</desc>' % _esc(_clean(desc)),
                 '<rect class="background" x="0" y="0" width="%d" height="%d" fill="#ffffff"/>'
                 % (self.width, self.height)]
        return '\n'.join([head] + frame + self.parts + ['</svg>']) + '\n'

    def heading(self):
        self.text(12, 22, self.title, size=_TITLE, weight='bold', cls='chart-title',
                  max_chars=int((self.width - 24) / (_TITLE * CHAR_EM)))


def _no_data(svg, note, what):
    """The chart of nothing: its title, 'no data' in the middle, and what was left out."""
    svg.heading()
    svg.text(svg.width / 2.0, svg.height / 2.0, 'no data', size=18, anchor='middle', cls='no-data', fill=_MUTED)
    if note:
        svg.text(svg.width / 2.0, svg.height / 2.0 + 24, note, size=_SMALL, anchor='middle', cls='note',
                 fill=_MUTED, max_chars=int((svg.width - 24) / (_SMALL * CHAR_EM)))
    return svg.render('%s: no data. %s' % (what, note))


def _legend(svg, entries, top):
    """Legend entries [(draw_swatch(x, y) -> None, name)] in rows under the title; returns the y below
    it. Rows are capped at a quarter of the height; what does not fit is counted ('+3 more')."""
    row_h, x0, right = 18, 12.0, svg.width - 12.0
    max_rows = max(1, int(svg.height / 4 / row_h))
    more_w = _width('+999 more', _SMALL) + 8
    x, row = x0, 0
    for i, (swatch, name) in enumerate(entries):
        shown, _ = _cut(name, MAX_NAME)
        w = 26 + _width(shown, _SMALL) + 16
        limit = right - (more_w if row == max_rows - 1 and i < len(entries) - 1 else 0)
        if x + w > limit and x > x0:
            if row == max_rows - 1:
                svg.text(x, top + row * row_h + 4, '+%d more' % (len(entries) - i), size=_SMALL, cls='legend',
                         fill=_MUTED)
                break
            row, x = row + 1, x0
        y = top + row * row_h
        svg.add('<g class="legend">')
        swatch(x, y)
        svg.text(x + 26, y + 4, name, size=_SMALL, max_chars=MAX_NAME)
        svg.add('</g>')
        x += w
    return top + (row + 1) * row_h


def _y_axis(svg, axis, left, right, labels):
    """Grid lines and y tick labels (right-aligned left of the plot)."""
    for value, label in zip(axis.ticks, labels):
        y = axis(value * axis.factor)
        svg.add('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1"/>'
                % (_c(left), _c(y), _c(right), _c(y), _GRID))
        svg.text(left - 6, y + 4, label, size=_SMALL, anchor='end', cls='y-tick', fill=_MUTED)


def _y_label(svg, text, top, bottom):
    svg.text(16, (top + bottom) / 2.0, text, size=_FONT, anchor='middle', cls='y-label', rotate=True,
             max_chars=int((bottom - top) / (_FONT * CHAR_EM)))


def _y_ticks(lo, hi, top, bottom, log):
    """(ticks, labels) of the y axis for data in [lo, hi]; ticks at least 28 px apart. A linear axis
    keeps 16 px beyond the data at either end that has data, for the labels above a bar or a limit."""
    max_ticks = max(3, min(11, int((bottom - top) / 28) + 1))
    if log:
        ticks = _log_ticks(lo, hi, max_ticks)
        return ticks, [_fmt(t) for t in ticks]
    room = (hi - lo) * 16.0 / max(bottom - top - 32, 1)
    hi, lo = hi + (room if hi > 0 else 0), lo - (room if lo < 0 else 0)
    ticks = nice_ticks(lo, hi, max_ticks)
    step = ticks[1] - ticks[0]
    return ticks, [_fmt_tick(t, step) for t in ticks]


def _x_ticks(lo, hi, plot_w):
    """Ticks and labels of a linear x axis whose labels, centred on their ticks, keep 10 px apart."""
    for max_ticks in range(11, 2, -1):
        ticks = nice_ticks(lo, hi, max_ticks)
        step = ticks[1] - ticks[0]
        labels = [_fmt_tick(t, step) for t in ticks]
        widest = max(_width(label, _SMALL) for label in labels)
        if plot_w / (len(ticks) - 1) >= widest + 10:
            return ticks, labels
    return ticks, labels


def _limit_line(svg, y, left, right, label, top, cls, used):
    """A dashed horizontal limit line and its label at its right end (left end when another label is
    already there), above the line or below it near the top."""
    svg.add('<g class="%s">' % cls)
    svg.add('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1.5" stroke-dasharray="6 4"/>'
            % (_c(left), _c(y), _c(right), _c(y), _LIMIT_INK))
    label_y = y - 4 if y - top > 16 else y + 13
    at_right = not any(abs(label_y - other) < 13 for other in used)
    if label:
        svg.text(right - 4 if at_right else left + 4, label_y, label, size=_SMALL,
                 anchor='end' if at_right else 'start', fill=_LIMIT_INK, halo=True,
                 max_chars=int((right - left) / 2 / (_SMALL * CHAR_EM)))
    used.append(label_y)
    svg.add('</g>')


def _pairs(value):
    """(number, label, why) triples of (value, label) pairs; why names the bad ones."""
    out = []
    for item in _items(value):
        number, why = _number(item[0])
        out.append((number, _clean(item[1]) if item[1] is not None else '', why))
    return out


# ================================================================================ line chart

def _series(points, dropped):
    """The points of one series as (x, input order, y or None) in x order; a point without a usable x
    is counted in dropped and skipped, a y left out is counted and kept as None (a gap)."""
    entries = []
    try:
        iterator = list(points) if points is not None else []
    except TypeError:
        iterator = []
        dropped.add('series not a list of points')
    for order, point in enumerate(iterator):
        try:
            x_raw, y_raw = point
        except (TypeError, ValueError):
            dropped.add('not an (x, y) pair')
            continue
        x, why = _number(x_raw)
        if why:
            dropped.add('with x ' + ('missing' if why == 'no value' else why))
            continue
        y, why = _number(y_raw)
        if why:
            dropped.add(why)
        entries.append((x, order, y))
    entries.sort(key=lambda e: (e[0], e[1]))  # x order, input order among equal x: deterministic
    return entries


def _runs(entries):
    """The lines of a series: runs of (x, y) between the points without a value."""
    runs, run = [], []
    for x, _, y in entries:
        if y is None:
            if run:
                runs.append(run)
            run = []
        else:
            run.append((x, y))
    if run:
        runs.append(run)
    return runs


def line_chart(title, series, x_label, y_label, x_unit='', y_unit='', thresholds=(), bands=(),
               y_scale='linear', slug=None, width=720, height=360):
    """One line per named series of (x, y) points; see the module documentation."""
    if y_scale not in ('linear', 'log', 'auto'):
        raise ValueError("y_scale must be 'linear', 'log' or 'auto', got %r" % (y_scale,))
    svg = _Svg(title, slug, width, height)
    dropped = _Dropped()
    named = [(_clean(name), _series(points, dropped)) for name, points in _items(series)]
    x_unit, y_unit = _clean(x_unit), _clean(y_unit)
    limits = _pairs(thresholds)

    values = [y for _, entries in named for _, _, y in entries if y is not None]
    log = y_scale == 'log' or (y_scale == 'auto' and values and min(values) > 0
                               and max(values) >= AUTO_LOG_RATIO * min(values))
    if log:  # a log axis has no place for zero or below: such points are left out, not clamped
        for i, (name, entries) in enumerate(named):
            kept = []
            for x, order, y in entries:
                if y is not None and y < _LOG_MIN:
                    dropped.add('not positive (log scale)' if y <= 0 else 'too small for the log scale')
                    y = None
                kept.append((x, order, y))
            named[i] = (name, kept)
        limits = [(v, label, 'below the log scale' if not why and v < _LOG_MIN else why) for v, label, why in limits]
    for _, _, why in limits:
        if why:
            dropped.add('threshold ' + why)
    runs = [(name, _runs(entries)) for name, entries in named]
    xs = [x for _, rs in runs for run in rs for x, _ in run]
    ys = [y for _, rs in runs for run in rs for _, y in run]
    if not ys:
        return _no_data(svg, dropped.text(), 'Line chart %s' % svg.title)

    shades = []
    for item in (bands or ()):
        try:
            start, end, label = item
        except (TypeError, ValueError):
            dropped.add('band not (from, to, label)')
            continue
        x0, why0 = _number(start)
        x1, why1 = (max(xs), None) if end is None else _number(end)
        if why0 or why1 or x1 < x0:
            dropped.add('band without finite from <= to')
            continue
        shades.append((x0, x1, _clean(label)))
    limits_ok = [(v, label) for v, label, why in limits if not why]

    x_lo = min(xs + [s[0] for s in shades])
    x_hi = max(xs + [s[1] for s in shades])
    y_values = ys + [v for v, _ in limits_ok]
    y_lo, y_hi = min(y_values), max(y_values)
    if not log:  # linear y from zero: a bar or line that starts at zero cannot exaggerate a change
        y_lo, y_hi = min(y_lo, 0.0), max(y_hi, 0.0)
        if y_lo == y_hi:
            y_hi = 1.0

    # Layout: title, legend, plot, x ticks, x label, note.
    svg.heading()
    entries = []
    for i, (name, rs) in enumerate(runs):
        colour, dash = PALETTE[i % len(PALETTE)], DASHES[(i // len(PALETTE)) % len(DASHES)]
        entries.append((_swatch_line(svg, colour, dash), name + ('' if rs else ' (no data)')))
    top = _legend(svg, entries, 40) + 4
    note = dropped.text()
    bottom = height - (44 + (16 if note else 0))
    if bottom - top < 40:
        top = max(30, bottom - 40)
    y_ticks, y_labels = _y_ticks(y_lo, y_hi, top, bottom, log)
    left = 32 + max(_width(label, _SMALL) for label in y_labels) + 8
    right = width - 16
    y_axis = _Axis(y_ticks, bottom, top, log=log)

    factor, x_shown_unit = _time_unit(x_unit, x_lo, x_hi)
    x_ticks, x_labels = _x_ticks(x_lo / factor, x_hi / factor, right - left)
    x_axis = _Axis(x_ticks, left, right, factor=factor)

    for x0, x1, label in shades:
        px0, px1 = x_axis(x0), x_axis(x1)
        svg.add('<g class="band"><rect x="%s" y="%s" width="%s" height="%s" fill="#8c8c8c" fill-opacity="0.18"/>'
                % (_c(px0), _c(top), _c(max(px1 - px0, 1.0)), _c(bottom - top)))
        if label:
            svg.text(px0 + 3, top + 12, label, size=_SMALL, fill=_INK, max_chars=MAX_NAME, halo=True)
        svg.add('</g>')
    _y_axis(svg, y_axis, left, right, y_labels)
    for value, label in zip(x_ticks, x_labels):
        x = x_axis(value * factor)
        svg.add('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1"/>'
                % (_c(x), _c(bottom), _c(x), _c(bottom + 4), _MUTED))
        svg.text(x, bottom + 16, label, size=_SMALL, anchor='middle', cls='x-tick', fill=_MUTED)
    svg.add('<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1"/>'
            % (_c(left), _c(bottom), _c(right), _c(bottom), _MUTED))
    svg.add('<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1"/>'
            % (_c(left), _c(top), _c(left), _c(bottom), _MUTED))
    svg.text((left + right) / 2.0, bottom + 34, _with_unit(_clean(x_label), x_shown_unit), anchor='middle',
             cls='x-label', max_chars=int((right - left) / (_FONT * CHAR_EM)))
    _y_label(svg, _with_unit(_clean(y_label), y_unit) + (', log scale' if log else ''), top, bottom)

    used = []
    for value, label in limits_ok:
        _limit_line(svg, y_axis(value), left, right, label, top, 'threshold', used)

    for i, (name, rs) in enumerate(runs):
        colour, dash = PALETTE[i % len(PALETTE)], DASHES[(i // len(PALETTE)) % len(DASHES)]
        svg.add('<g class="series" data-series="%d"><title>%s</title>' % (i, _esc(name)))
        path = ' '.join('M' + ' L'.join('%s %s' % (_c(x_axis(x)), _c(y_axis(y))) for x, y in run)
                        for run in rs if len(run) > 1)
        if path:
            svg.add('<path d="%s" fill="none" stroke="%s" stroke-width="2" stroke-linejoin="round"%s/>'
                    % (path, colour, ' stroke-dasharray="%s"' % dash if dash else ''))
        count = sum(len(run) for run in rs)
        for run in rs:
            if len(run) == 1 or count <= MARKERS_UP_TO:  # a lone point has no line to show it
                for x, y in run:
                    svg.add('<circle cx="%s" cy="%s" r="2.5" fill="%s"/>' % (_c(x_axis(x)), _c(y_axis(y)), colour))
        svg.add('</g>')
    if note:
        svg.text(12, height - 8, note, size=_SMALL - 1, cls='note', fill=_MUTED,
                 max_chars=int((width - 24) / ((_SMALL - 1) * CHAR_EM)))

    x_unit_text = ' %s' % x_unit if x_unit else ''
    y_unit_text = ' %s' % y_unit if y_unit else ''
    desc = ['Line chart of %s against %s%s.' % (_with_unit(_clean(y_label), y_unit) or 'values',
                                                 _with_unit(_clean(x_label), x_unit) or 'x',
                                                 ', log scale' if log else '')]
    for name, rs in runs:
        points = [p for run in rs for p in run]
        if not points:
            desc.append('%s: no data.' % name)
            continue
        values = [y for _, y in points]
        desc.append('%s: %d point%s from %s to %s%s, min %s%s, max %s%s, last %s%s%s.' % (
            name, len(points), '' if len(points) == 1 else 's', _fmt(points[0][0]), _fmt(points[-1][0]), x_unit_text,
            _fmt(min(values)), y_unit_text, _fmt(max(values)), y_unit_text, _fmt(values[-1]), y_unit_text,
            ', %d gap%s' % (len(rs) - 1, '' if len(rs) == 2 else 's') if len(rs) > 1 else ''))
    for value, label in limits_ok:
        desc.append('Line %s at %s%s.' % (label or 'threshold', _fmt(value), y_unit_text))
    for x0, x1, label in shades:
        desc.append('Shaded %s from %s to %s%s.' % (label or 'band', _fmt(x0), _fmt(x1), x_unit_text))
    return svg.render(' '.join(desc + [note]))


def _swatch_line(svg, colour, dash):
    def draw(x, y):
        svg.add('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2.5"%s/>'
                % (_c(x), _c(y), _c(x + 20), _c(y), colour, ' stroke-dasharray="%s"' % dash if dash else ''))
    return draw


def _swatch_box(svg, fill):
    def draw(x, y):
        svg.add('<rect x="%s" y="%s" width="20" height="10" %s/>' % (_c(x), _c(y - 5), fill))
    return draw


def _bar_fill(i):
    """The fill attributes of the i-th bar name: after seven, the palette again at half strength."""
    colour = PALETTE[i % len(PALETTE)]
    return 'fill="%s"' % colour if i < len(PALETTE) else 'fill="%s" fill-opacity="0.5"' % colour


def _swatch_limit(svg):
    def draw(x, y):
        svg.add('<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="3"/>'
                % (_c(x), _c(y), _c(x + 20), _c(y), _LIMIT_INK))
    return draw


# ================================================================================ bar chart

def bar_chart(title, groups, y_label, y_unit='', limits=(), group_limits=None, group_limit_label='limit',
              slug=None, width=720, height=360):
    """Grouped bars, a value on each; see the module documentation."""
    svg = _Svg(title, slug, width, height)
    dropped = _Dropped()
    y_unit = _clean(y_unit)
    rows, bar_names = [], []
    for group, bars in _items(groups):
        values = {}
        for bar, value in _items(bars):
            bar = _clean(bar)
            if bar not in bar_names:
                bar_names.append(bar)
            number, why = _number(value)
            if why:
                dropped.add(why)
            values[bar] = number
        rows.append((_clean(group), values))
    lines = _pairs(limits)
    for _, _, why in lines:
        if why:
            dropped.add('limit ' + why)
    lines = [(v, label) for v, label, why in lines if not why]
    markers = {}
    for group, value in _items(group_limits):
        number, why = _number(value)
        if why:
            dropped.add('%s %s' % (_clean(group_limit_label) or 'limit', why))
        else:
            markers[_clean(group)] = number
    values = [v for _, vs in rows for v in vs.values() if v is not None]
    note = dropped.text(gaps_word='without a value (marked n/a)')
    if not values:
        return _no_data(svg, note, 'Bar chart %s' % svg.title)

    svg.heading()
    entries = [(_swatch_box(svg, _bar_fill(i)), name) for i, name in enumerate(bar_names)]
    if any(group in markers for group, _ in rows):
        entries.append((_swatch_limit(svg), _clean(group_limit_label) or 'limit'))
    top = _legend(svg, entries, 40) + 4
    bottom = height - (40 + (16 if note else 0))
    if bottom - top < 40:
        top = max(30, bottom - 40)

    extent = values + [v for v, _ in lines] + [markers[g] for g, _ in rows if g in markers]
    lo, hi = min(extent + [0.0]), max(extent + [0.0])
    if lo == hi:
        hi = 1.0
    y_ticks, y_labels = _y_ticks(lo, hi, top, bottom, False)
    left = 32 + max(_width(label, _SMALL) for label in y_labels) + 8
    right = width - 16
    y_axis = _Axis(y_ticks, bottom, top)
    _y_axis(svg, y_axis, left, right, y_labels)
    _y_label(svg, _with_unit(_clean(y_label), y_unit), top, bottom)

    group_w = (right - left) / float(len(rows))
    bar_w = group_w * 0.8 / max(1, len(bar_names))
    base = y_axis(0.0)
    labels = [_fmt(v) if v is not None else 'n/a' for _, vs in rows for v in vs.values()] + ['n/a']
    value_size = _SMALL
    while value_size > 8 and max(_width(t, value_size) for t in labels) > bar_w + 4:
        value_size -= 1
    show_values = max(_width(t, value_size) for t in labels) <= bar_w + 4
    for g, (group, vs) in enumerate(rows):
        g_left = left + g * group_w + group_w * 0.1
        for b, name in enumerate(bar_names):
            x = g_left + b * bar_w
            centre = x + bar_w / 2.0
            if name not in vs or vs[name] is None:
                svg.text(centre, base - 4, 'n/a', size=value_size, anchor='middle', cls='no-value', fill=_MUTED)
                continue
            value = vs[name]
            y = y_axis(value)
            svg.add('<rect class="bar" x="%s" y="%s" width="%s" height="%s" %s><title>%s</title></rect>'
                    % (_c(x + 1), _c(min(y, base)), _c(max(bar_w - 2, 1.0)), _c(max(abs(base - y), 0.5)),
                       _bar_fill(b), _esc('%s, %s: %s%s' % (group, name, _fmt(value),
                                                                          ' ' + y_unit if y_unit else ''))))
            if show_values:
                svg.text(centre, y - 4 if value >= 0 else y + value_size + 2, _fmt(value), size=value_size,
                         anchor='middle', cls='value')
        if group in markers:
            y = y_axis(markers[group])
            svg.add('<line class="group-limit" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="3">'
                    '<title>%s</title></line>'
                    % (_c(g_left - 4), _c(y), _c(g_left + len(bar_names) * bar_w + 4), _c(y), _LIMIT_INK,
                       _esc('%s, %s: %s%s' % (group, _clean(group_limit_label) or 'limit', _fmt(markers[group]),
                                               ' ' + y_unit if y_unit else ''))))
        svg.text(left + (g + 0.5) * group_w, bottom + 16, group, size=_SMALL, anchor='middle', cls='x-tick',
                 max_chars=int((group_w - 6) / (_SMALL * CHAR_EM)))
    svg.add('<line class="axis" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1"/>'
            % (_c(left), _c(base), _c(right), _c(base), _INK))
    used = []
    for value, label in lines:
        _limit_line(svg, y_axis(value), left, right, label, top, 'threshold', used)
    if not show_values:
        note = (note + ' ' if note else '') + 'Values in the description (bars too narrow to label).'
    if note:
        svg.text(12, height - 8, note, size=_SMALL - 1, cls='note', fill=_MUTED,
                 max_chars=int((width - 24) / ((_SMALL - 1) * CHAR_EM)))

    unit = ' %s' % y_unit if y_unit else ''
    desc = ['Bar chart of %s.' % (_with_unit(_clean(y_label), y_unit) or 'values')]
    for group, vs in rows:
        parts = ['%s %s' % (name, _fmt(vs[name]) + unit if vs.get(name) is not None else 'n/a')
                 for name in bar_names]
        if group in markers:
            parts.append('%s %s%s' % (_clean(group_limit_label) or 'limit', _fmt(markers[group]), unit))
        desc.append('%s: %s.' % (group, ', '.join(parts)))
    for value, label in lines:
        desc.append('Line %s at %s%s.' % (label or 'limit', _fmt(value), unit))
    return svg.render(' '.join(desc + [note]))
