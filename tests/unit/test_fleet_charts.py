"""plugins/plugin_utils/fleet_charts.py: the SVG charts of the readiness reports (issue 10, phase 3).
Every chart parses as XML; its ticks are 1-2-5 steps that cover the data and cannot overlap; lines,
bars, thresholds and bands sit where their values say (read back through the chart's own tick
labels); a missing value is a gap or 'n/a', never a zero; bad data is left out and counted, never an
exception; names are escaped and cut with their full text kept; output is deterministic,
self-contained, accessible and findable by chart_ids."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import pytest

from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_charts as fc

pytestmark = pytest.mark.unit

NS = '{http://www.w3.org/2000/svg}'
# A wide sans-serif's digit advance (DejaVu Sans: 0.636 em), a little more than the module assumes.
TEST_EM = 0.64
NAN, INF = float('nan'), float('inf')

LATENCY = {
    'p50': [(t, 2.0 + (t % 10) / 10.0) for t in range(0, 60, 5)],
    'p95': [(t, 10.0 + t / 6.0) for t in range(0, 60, 5)],
    'p99': [(t, 20.0 + t) for t in range(0, 60, 5)],
}


# ================================================================================ helpers

def parse(svg):
    root = ET.fromstring(svg)
    assert root.tag == NS + 'svg'
    return root


def box(root):
    minx, miny, w, h = (float(v) for v in root.get('viewBox').split())
    return minx, miny, minx + w, miny + h


def coordinates(root):
    """Every (x, y) the chart draws at: text anchors, line ends, circles, rectangle corners, path points."""
    out = []
    for el in root.iter():
        a = el.attrib
        if el.tag in (NS + 'text',):
            out.append((float(a['x']), float(a['y'])))
        elif el.tag == NS + 'line':
            out += [(float(a['x1']), float(a['y1'])), (float(a['x2']), float(a['y2']))]
        elif el.tag == NS + 'circle':
            out.append((float(a['cx']), float(a['cy'])))
        elif el.tag == NS + 'rect':
            x, y = float(a.get('x', 0)), float(a.get('y', 0))
            out += [(x, y), (x + float(a['width']), y + float(a['height']))]
        elif el.tag == NS + 'path':
            out += path_points(a['d'])
    return out


def path_points(d):
    numbers = [float(v) for v in re.findall(r'-?\d+(?:\.\d+)?(?:e-?\d+)?', d)]
    return list(zip(numbers[0::2], numbers[1::2]))


def subpaths(d):
    """The polylines of a path: one per 'M'."""
    return [path_points(part) for part in d.split('M') if part.strip()]


def labelled(root, cls):
    """(text element, full text) of the elements of a class: a <text class=..>, or a <g class=..>
    wrapping a cut <text> with its full text as <title>."""
    out = []
    for el in root.iter():
        if el.get('class') != cls:
            continue
        if el.tag == NS + 'text':
            out.append((el, el.text))
        elif el.tag == NS + 'g' and el.find(NS + 'text') is not None and el.find(NS + 'title') is not None:
            out.append((el.find(NS + 'text'), el.find(NS + 'title').text))
    return out


def ticks(root, cls):
    """[(value, position)] of the numeric tick labels of an axis ('x-tick': x, 'y-tick': y of the line)."""
    out = []
    for el, _ in labelled(root, cls):
        value = number(el.text)
        out.append((value, float(el.get('x')) if cls == 'x-tick' else float(el.get('y')) - 4))
    return out


def number(label):
    """A tick label's value: '250', '-0.5', '12k', '100T', '1e-05'."""
    factor = {'k': 1e3, 'M': 1e6, 'G': 1e9, 'T': 1e12}.get(label[-1:], 1)
    return float(label[:-1] if factor != 1 else label) * factor


def scale(tick_list, log=False):
    """value -> position, from the chart's own tick labels (the first and last)."""
    (v0, p0), (v1, p1) = tick_list[0], tick_list[-1]
    f = math.log10 if log else (lambda v: v)
    return lambda value: p0 + (f(value) - f(v0)) * (p1 - p0) / (f(v1) - f(v0))


def series_groups(root):
    return [g for g in root.iter(NS + 'g') if g.get('class') == 'series']


def desc(root):
    return root.find(NS + 'desc').text


def note(root):
    notes = labelled(root, 'note')
    return notes[0][1] if notes else ''


def is_125(step):
    mantissa = step / 10 ** math.floor(math.log10(step) + 1e-9)
    return any(math.isclose(mantissa, m, rel_tol=1e-9) for m in (1, 2, 5, 10))


# ================================================================================ nice ticks

@pytest.mark.parametrize('lo, hi, max_ticks', [
    (0, 1, 6), (0, 97.3, 6), (0, 100, 11), (-29.7, 9, 8), (3.2, 3.3, 5), (0, 1e15, 11), (-1e15, 1e15, 5),
    (1e-9, 2e-9, 6), (0, 0.0004, 4), (7, 7, 6), (0, 0, 6), (-5, -5, 6), (123456, 123999, 7), (0, 1, 3)])
def test_nice_ticks_are_1_2_5_steps_covering_the_range_within_the_count(lo, hi, max_ticks):
    result = fc.nice_ticks(lo, hi, max_ticks)
    assert 2 <= len(result) <= max_ticks
    assert result[0] <= lo and result[-1] >= hi
    steps = [b - a for a, b in zip(result, result[1:])]
    assert all(math.isclose(s, steps[0], rel_tol=1e-6) for s in steps)
    assert is_125(steps[0])
    if lo != hi:
        # The smallest such step: the 1-2-5 step below it would need more ticks than allowed.
        e = math.floor(math.log10(steps[0]) + 1e-9)
        m = round(steps[0] / 10 ** e)
        smaller = {1: 0.5, 2: 1, 5: 2}[m] * 10 ** e
        assert math.ceil(hi / smaller - 1e-9) - math.floor(lo / smaller + 1e-9) + 1 > max_ticks


def test_nice_ticks_refuses_what_has_no_range():
    for lo, hi in ((1, 0), (NAN, 1), (0, INF)):
        with pytest.raises(ValueError):
            fc.nice_ticks(lo, hi, 5)


# ================================================================================ the frame

def test_every_chart_is_an_accessible_findable_svg_of_fixed_size():
    charts = [fc.line_chart('Latency, spike', LATENCY, 'Time', 'Latency', x_unit='s', y_unit='ms'),
              fc.bar_chart('Rate per scenario', {'spike': {'requested': 500, 'achieved': 310}}, 'Rate'),
              fc.line_chart('Nothing yet', {}, 'Time', 'Latency', width=400, height=300)]
    for svg, slug, size in zip(charts, ('latency-spike', 'rate-per-scenario', 'nothing-yet'),
                               ((720, 360), (720, 360), (400, 300))):
        root = parse(svg)
        assert root.get('class') == 'fleetwave-chart' and root.get('data-chart') == slug
        assert root.get('role') == 'img'
        assert (int(root.get('width')), int(root.get('height'))) == size
        assert root.get('viewBox') == '0 0 %d %d' % size
        first, second = list(root)[:2]
        assert first.tag == NS + 'title' and second.tag == NS + 'desc' and second.text


def test_charts_are_self_contained():
    svg = fc.line_chart('url(http://x) <script>', {'https://evil/x.woff': [(0, 1), (1, 2)]}, 'a', 'b',
                        thresholds=[(1.5, '@import url(x)')], bands=[(0, 1, 'href=x')])
    svg += fc.bar_chart('b', {'g': {'a': 1}}, 'v', limits=[(1, 'l')], group_limits={'g': 2})
    elements = {el.tag for chunk in svg.split('</svg>') if chunk.strip() for el in parse(chunk + '</svg>').iter()}
    assert not elements & {NS + n for n in ('script', 'style', 'image', 'use', 'a', 'foreignObject', 'font-face')}
    for chunk in svg.split('</svg>')[:-1]:
        for el in parse(chunk + '</svg>').iter():
            for name, value in el.attrib.items():
                assert 'href' not in name and 'url(' not in value, (name, value)
    # The only address is the SVG namespace; the names above appear only as escaped text.
    assert re.findall(r'xmlns="[^"]*"', svg) == ['xmlns="http://www.w3.org/2000/svg"'] * 2


def test_the_same_input_gives_the_same_bytes_from_a_mapping_or_pairs():
    one = fc.line_chart('L', LATENCY, 't', 'ms', thresholds=[(50, 'limit')], bands=[(10, 20, 'fail')])
    assert one == fc.line_chart('L', LATENCY, 't', 'ms', thresholds=[(50, 'limit')], bands=[(10, 20, 'fail')])
    assert one == fc.line_chart('L', list(LATENCY.items()), 't', 'ms', thresholds=[(50, 'limit')],
                                bands=[(10, 20, 'fail')])
    groups = {'a': {'x': 1, 'y': 2}, 'b': {'x': 3}}
    assert fc.bar_chart('B', groups, 'v') == fc.bar_chart('B', list(groups.items()), 'v')


def test_points_are_drawn_in_x_order_whatever_their_input_order():
    ordered = fc.line_chart('L', {'a': [(0, 1), (1, 3), (2, 2)]}, 't', 'v')
    assert fc.line_chart('L', {'a': [(2, 2), (0, 1), (1, 3)]}, 't', 'v') == ordered


def test_bad_arguments_are_caller_errors():
    with pytest.raises(ValueError, match='y_scale'):
        fc.line_chart('L', LATENCY, 't', 'v', y_scale='cubic')
    for size in (10, 10000, 360.5, True, '360'):
        with pytest.raises(ValueError, match='width'):
            fc.line_chart('L', LATENCY, 't', 'v', width=size)
        with pytest.raises(ValueError, match='height'):
            fc.bar_chart('B', {'g': {'a': 1}}, 'v', height=size)


# ================================================================================ chart_ids

def test_chart_ids_lists_every_chart_of_a_page_in_order():
    page = '\n'.join(['<html><body><h1>Report</h1>',
                      fc.line_chart('Latency', LATENCY, 't', 'ms', slug='latency-10-concurrent'),
                      '<svg class="icon" data-chart="not-a-chart"></svg>',
                      '<p>text</p>', fc.bar_chart('Recovery', {'agent-kill': {'s': 3}}, 's'),
                      fc.line_chart('Empty', {}, 't', 'ms'),
                      fc.line_chart('Latency', LATENCY, 't', 'ms', slug='latency-10-concurrent'),
                      "<SVG data-chart='spike' class='x fleetwave-chart'></SVG>", '</body></html>'])
    assert fc.chart_ids(page) == ['latency-10-concurrent', 'recovery', 'empty', 'latency-10-concurrent', 'spike']
    assert fc.chart_ids('no charts here') == []


def test_slugs_are_safe_ids():
    assert fc.slugify('Latency — p99 <spike> & "soak" 2×') == 'latency-p99-spike-soak-2'
    assert fc.slugify('***') == 'chart'
    assert len(fc.slugify('x' * 500)) == 60
    root = parse(fc.line_chart('T', LATENCY, 't', 'v', slug='A "quoted" <slug>'))
    assert root.get('data-chart') == 'a-quoted-slug'


# ================================================================================ line chart

def test_axes_have_numeric_ticks_labels_with_units_and_cover_the_data():
    root = parse(fc.line_chart('Latency', LATENCY, 'Time since start', 'Latency', x_unit='s', y_unit='ms'))
    xs, ys = ticks(root, 'x-tick'), ticks(root, 'y-tick')
    assert 3 <= len(xs) <= 11 and 3 <= len(ys) <= 11
    assert xs[0][0] <= 0 and xs[-1][0] >= 55 and ys[0][0] == 0 and ys[-1][0] >= 75
    assert [p for _, p in xs] == sorted(p for _, p in xs)            # x grows to the right
    assert [p for _, p in ys] == sorted((p for _, p in ys), reverse=True)  # y grows upwards
    assert is_125(xs[1][0] - xs[0][0]) and is_125(ys[1][0] - ys[0][0])
    assert labelled(root, 'x-label')[0][1] == 'Time since start (s)'
    assert labelled(root, 'y-label')[0][1] == 'Latency (ms)'


def test_each_point_is_drawn_where_its_value_is_on_the_axes():
    data = {'p99': [(0, 20.0), (10, 35.5), (20, 80.0), (30, 41.0)]}
    root = parse(fc.line_chart('L', data, 't', 'ms'))
    to_x, to_y = scale(ticks(root, 'x-tick')), scale(ticks(root, 'y-tick'))
    (path,) = series_groups(root)[0].iter(NS + 'path')
    drawn = path_points(path.get('d'))
    assert len(drawn) == 4
    for (x, y), (px, py) in zip(data['p99'], drawn):
        assert abs(to_x(x) - px) <= 0.2 and abs(to_y(y) - py) <= 0.2


def test_a_legend_entry_per_series_in_its_colour():
    root = parse(fc.line_chart('L', LATENCY, 't', 'ms'))
    legend = [g for g in root.iter(NS + 'g') if g.get('class') == 'legend']
    assert [g.find(NS + 'text').text for g in legend] == ['p50', 'p95', 'p99']
    swatches = [g.find(NS + 'line').get('stroke') for g in legend]
    strokes = [next(g.iter(NS + 'path')).get('stroke') for g in series_groups(root)]
    assert swatches == strokes and len(set(strokes)) == 3
    assert set(strokes) <= set(fc.PALETTE)


def test_series_beyond_the_palette_stay_distinct_by_dash():
    many = {'s%d' % i: [(0, i), (1, i + 1)] for i in range(3 * len(fc.PALETTE))}
    root = parse(fc.line_chart('L', many, 't', 'v', height=1200))
    styles = [(p.get('stroke'), p.get('stroke-dasharray')) for g in series_groups(root) for p in g.iter(NS + 'path')]
    assert len(styles) == len(many) == len(set(styles))


def test_a_legend_too_long_for_the_chart_says_how_many_more():
    many = {'scenario number %d p99' % i: [(0, i), (1, i + 1)] for i in range(40)}
    root = parse(fc.line_chart('L', many, 't', 'v'))
    shown = [g for g in root.iter(NS + 'g') if g.get('class') == 'legend']
    more = [t for t, text in labelled(root, 'legend') if text.startswith('+')]
    assert len(more) == 1 and int(more[0].text.split()[0][1:]) == 40 - len(shown)
    assert len(series_groups(root)) == 40  # every series is still drawn and described
    assert 'scenario number 39 p99' in desc(root)


def test_thresholds_are_labelled_lines_at_their_values():
    root = parse(fc.line_chart('L', LATENCY, 't', 'ms', y_unit='ms',
                               thresholds=[(200, 'p99 limit 200 ms'), (45, 'p95 limit 45 ms')]))
    to_y = scale(ticks(root, 'y-tick'))
    groups = [g for g in root.iter(NS + 'g') if g.get('class') == 'threshold']
    assert len(groups) == 2
    for group, value in zip(groups, (200, 45)):
        line = group.find(NS + 'line')
        assert line.get('y1') == line.get('y2') and abs(float(line.get('y1')) - to_y(value)) <= 0.2
        assert group.find(NS + 'text').text == 'p%d limit %d ms' % (99 if value == 200 else 95, value)
    assert ticks(root, 'y-tick')[-1][0] >= 200  # the axis reaches the limit, far above the data
    assert 'p99 limit 200 ms at 200 ms' in desc(root) and 'p95 limit 45 ms at 45 ms' in desc(root)


def test_a_band_shades_its_window_and_an_open_one_runs_to_the_end():
    root = parse(fc.line_chart('L', LATENCY, 't', 'ms', bands=[(20, 25, 'failure window'), (40, None, 'frozen')]))
    to_x = scale(ticks(root, 'x-tick'))
    bands = [g for g in root.iter(NS + 'g') if g.get('class') == 'band']
    assert [g.find(NS + 'text').text for g in bands] == ['failure window', 'frozen']
    for g, (start, end) in zip(bands, ((20, 25), (40, 55))):
        rect = g.find(NS + 'rect')
        x, w = float(rect.get('x')), float(rect.get('width'))
        assert abs(x - to_x(start)) <= 0.2 and abs(x + w - to_x(end)) <= 0.3


def test_a_missing_value_is_a_gap_never_a_zero():
    data = {'p95': [(0, 10), (5, 12), (10, None), (15, None), (20, 11), (25, 13)]}
    root = parse(fc.line_chart('L', data, 't', 'ms'))
    to_x, to_y = scale(ticks(root, 'x-tick')), scale(ticks(root, 'y-tick'))
    (path,) = series_groups(root)[0].iter(NS + 'path')
    runs = subpaths(path.get('d'))
    assert len(runs) == 2
    assert [round((px - to_x(0)) / (to_x(5) - to_x(0)) * 5) for px, _ in runs[0]] == [0, 5]
    assert [round((px - to_x(0)) / (to_x(5) - to_x(0)) * 5) for px, _ in runs[1]] == [20, 25]
    drawn_y = [py for run in runs for _, py in run]
    assert all(abs(py - to_y(0)) > 20 for py in drawn_y)  # nothing drawn at zero
    assert '2 without a value (gaps)' in note(root) and '1 gap' in desc(root)


def test_nan_inf_and_junk_are_left_out_counted_and_break_the_line():
    data = {'a': [(0, 1), (1, NAN), (2, 2), (3, INF), (4, -INF), (5, 'slow'), (6, 3), (NAN, 4), (None, 5),
                  (7, True), 'junk', (8,), (9, 10 ** 400), (10, 1e16), (11, '4.5')]}
    root = parse(fc.line_chart('L', data, 't', 'v'))
    text = note(root)
    assert text == ('Left out: 3 NaN/inf, 2 not a number, 1 with x NaN/inf, 1 with x missing, '
                    '2 not an (x, y) pair, 2 out of range.')
    assert text in desc(root)
    # 0 | 2 | 6 | 11 ('4.5' is a number): every left-out point breaks the line as a gap would.
    (group,) = series_groups(root)
    assert len(list(group.iter(NS + 'path'))) == 0 and len(list(group.iter(NS + 'circle'))) == 4


def test_a_single_point_is_a_dot_inside_the_plot():
    root = parse(fc.line_chart('L', {'only': [(42, 3.5)]}, 't', 'v'))
    (group,) = series_groups(root)
    (dot,) = group.iter(NS + 'circle')
    to_x, to_y = scale(ticks(root, 'x-tick')), scale(ticks(root, 'y-tick'))
    assert abs(float(dot.get('cx')) - to_x(42)) <= 0.2 and abs(float(dot.get('cy')) - to_y(3.5)) <= 0.2
    assert 'only: 1 point' in desc(root)


@pytest.mark.parametrize('value', [0, 7, -3, 1e-9, 1e14])
def test_equal_values_get_a_real_axis(value):
    root = parse(fc.line_chart('L', {'flat': [(t, value) for t in range(10)]}, 't', 'v'))
    ys = ticks(root, 'y-tick')
    assert len({v for v, _ in ys}) == len(ys) >= 3 and ys[0][0] <= value <= ys[-1][0]
    assert len({p for _, p in ys}) == len(ys)


def test_negative_values_get_negative_ticks_and_zero():
    root = parse(fc.line_chart('L', {'delta': [(t, -3.3 * t) for t in range(10)], 'up': [(t, t) for t in range(10)]},
                               't', 'v'))
    values = [v for v, _ in ticks(root, 'y-tick')]
    assert values[0] <= -29.7 and 0 in values and values[-1] >= 9


def test_empty_and_all_missing_series_say_no_data():
    for series in ({}, [], None, {'a': []}, {'a': [(0, None), (1, NAN)]}, {'a': None}, 'junk'):
        root = parse(fc.line_chart('Latency', series, 't', 'ms'))
        assert [t.text for t, _ in labelled(root, 'no-data')] == ['no data']
        assert 'no data' in desc(root) and not series_groups(root)
    root = parse(fc.line_chart('Latency', {'a': [(0, None), (1, NAN)]}, 't', 'ms'))
    assert '1 without a value (gaps), 1 NaN/inf' in note(root)


def test_a_series_without_data_beside_others_is_named_as_such():
    root = parse(fc.line_chart('L', {'p50': [(0, 1), (1, 2)], 'p99': [(0, None)]}, 't', 'ms'))
    legend = [g.find(NS + 'text').text for g in root.iter(NS + 'g') if g.get('class') == 'legend']
    assert legend == ['p50', 'p99 (no data)'] and 'p99: no data.' in desc(root)


def test_log_scale_gives_decades_and_places_points_by_their_logarithm():
    data = {'p50': [(0, 1.0), (1, 1.2)], 'p99': [(0, 40.0), (1, 2500.0)]}
    root = parse(fc.line_chart('L', data, 't', 'Latency', y_unit='ms', y_scale='log'))
    ys = ticks(root, 'y-tick')
    assert [v for v, _ in ys][:1] == [1] and ys[-1][0] >= 2500
    assert all(is_125(v) for v, _ in ys)
    to_y = scale(ys, log=True)
    drawn = path_points(next(series_groups(root)[1].iter(NS + 'path')).get('d'))
    assert abs(drawn[0][1] - to_y(40)) <= 0.3 and abs(drawn[1][1] - to_y(2500)) <= 0.3
    assert 'log scale' in labelled(root, 'y-label')[0][1] and 'log scale' in desc(root)


def test_log_scale_leaves_out_what_it_cannot_show():
    root = parse(fc.line_chart('L', {'a': [(0, 1), (1, 0), (2, -5), (3, 100)]}, 't', 'ms', y_scale='log',
                               thresholds=[(0, 'zero line')]))
    assert '2 not positive (log scale)' in note(root) and '1 threshold below the log scale' in note(root)
    assert not [g for g in root.iter(NS + 'g') if g.get('class') == 'threshold']


def test_auto_scale_is_log_only_for_positive_values_spanning_orders_of_magnitude():
    def is_log(data):
        return 'log scale' in desc(parse(fc.line_chart('L', data, 't', 'ms', y_scale='auto')))
    assert is_log({'p50': [(0, 1.0)], 'p99': [(0, 250.0)]})
    assert not is_log({'p50': [(0, 10.0)], 'p99': [(0, 250.0)]})
    assert not is_log({'p50': [(0, 0.0)], 'p99': [(0, 250.0)]})


def test_seconds_spanning_hours_are_shown_in_hours():
    root = parse(fc.line_chart('Soak', {'rate': [(t, 50) for t in range(0, 8 * 3600 + 1, 600)]}, 'Time', 'Rate',
                               x_unit='s'))
    xs = ticks(root, 'x-tick')
    assert labelled(root, 'x-label')[0][1] == 'Time (h)' and xs[0][0] == 0 and xs[-1][0] == 8
    minutes = parse(fc.line_chart('Spike', {'rate': [(t, 50) for t in range(0, 601, 10)]}, 'Time', 'Rate', x_unit='s'))
    assert labelled(minutes, 'x-label')[0][1] == 'Time (min)' and ticks(minutes, 'x-tick')[-1][0] == 10


EXTREMES = [
    {'a': [(0, 1e-300), (1, 1e15), (2, -1e15)]},
    {'a': [(-1e15, 5), (1e15, 6)]},
    {'a': [(0, 1e-12), (1e-12, 2e-12)]},
    {'a': [(0, 123456789.123), (1, 123456789.124)]},
    {'a': [(t, 10 ** (t % 16)) for t in range(60)]},
]


@pytest.mark.parametrize('data', EXTREMES + [{'a': [(0, 1e-100), (1, 1e15)]}])
@pytest.mark.parametrize('y_scale', ['linear', 'log', 'auto'])
def test_every_coordinate_stays_inside_the_viewbox_for_extreme_values(data, y_scale):
    root = parse(fc.line_chart('L', data, 't', 'v', y_scale=y_scale, thresholds=[(1e14, 'high')]))
    x0, y0, x1, y1 = box(root)
    points = coordinates(root)
    assert points and all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in points)


def test_labels_of_extreme_bars_stay_inside_the_viewbox():
    root = parse(fc.bar_chart('B', {'g': {'a': 1e15, 'b': -1e15, 'c': 1e-300}}, 'v'))
    x0, y0, x1, y1 = box(root)
    assert all(x0 <= x <= x1 and y0 <= y <= y1 for x, y in coordinates(root))


def _assert_no_overlap(root):
    xs = labelled(root, 'x-tick')
    for (a, ta), (b, tb) in zip(xs, xs[1:]):
        half = (len(a.text) + len(b.text)) * 11 * TEST_EM / 2
        assert float(b.get('x')) - float(a.get('x')) >= half, (ta, tb)
    ys = sorted(float(t.get('y')) for t, _ in labelled(root, 'y-tick'))
    assert all(b - a >= 14 for a, b in zip(ys, ys[1:]))
    assert len(xs) <= 11 and len(ys) <= 11


@pytest.mark.parametrize('data', EXTREMES + [
    {'a': [(1_796_000_000 + t, t) for t in range(100)]},
    {'a': [(t * 0.001, 123456.789 * t) for t in range(1000)]}])
@pytest.mark.parametrize('width, height', [(720, 360), (300, 240)])
def test_tick_labels_never_overlap(data, width, height):
    _assert_no_overlap(parse(fc.line_chart('L', data, 't', 'v', width=width, height=height)))
    _assert_no_overlap(parse(fc.line_chart('L', data, 't', 'v', y_scale='log', width=width, height=height)))


def test_long_names_are_cut_with_their_full_text_as_tooltip():
    name = 'ramping-arrival-rate scenario against agent.tdd-expert.cmd.ping on every dgx host'
    title = 'A very long chart title ' * 10
    root = parse(fc.line_chart(title, {name: [(0, 1), (1, 2)]}, 'x', 'y', thresholds=[(1.5, name)]))
    (legend,) = [g for g in root.iter(NS + 'g') if g.get('class') == 'legend']
    shown = legend.find('.//' + NS + 'text').text
    assert shown.endswith('\u2026') and len(shown) <= fc.MAX_NAME and name.startswith(shown[:-1])
    assert legend.find('.//' + NS + 'title').text == name
    assert series_groups(root)[0].find(NS + 'title').text == name
    (heading, full), = labelled(root, 'chart-title')
    assert full == title.strip() and heading.text.endswith('\u2026')
    assert len(heading.text) * 15 * fc.CHAR_EM <= 720 - 24
    assert root.find(NS + 'title').text == title.strip()


def test_every_text_is_escaped_and_xml_safe():
    name = '<p99> & "quoted" \'single\' \x00\x07 tab\there ]]>'
    root = parse(fc.line_chart(name, {name: [(0, 1), (1, 2)]}, name, name, x_unit='<u>', y_unit='&',
                               thresholds=[(1.5, name)], bands=[(0, 1, name)]))
    expected = '<p99> & "quoted" \'single\' \ufffd\ufffd tab here ]]>'
    texts = [el.text for el in root.iter() if el.tag in (NS + 'text', NS + 'title') and el.text]
    assert expected in texts and root.find(NS + 'title').text == expected
    assert not [el for el in root.iter() if el.tag not in {NS + t for t in (
        'svg', 'title', 'desc', 'rect', 'g', 'text', 'line', 'path', 'circle')}]
    bars = parse(fc.bar_chart(name, {name: {name: 1}}, name, y_unit=name, limits=[(1, name)],
                              group_limits={name: 2}, group_limit_label=name))
    assert expected in desc(bars)


# ================================================================================ bar chart

RATES = {'10 concurrent': {'requested': 100, 'achieved': 97.3},
         'spike': {'requested': 500, 'achieved': 310},
         'soak': {'requested': 50, 'achieved': None}}


def bars_of(root):
    """{(group, bar): (rect, value)} from each bar's tooltip 'group, bar: value unit'."""
    out = {}
    for rect in root.iter(NS + 'rect'):
        if rect.get('class') == 'bar':
            label, value = rect.find(NS + 'title').text.rsplit(': ', 1)
            group, bar = label.split(', ', 1)
            out[(group, bar)] = (rect, number(value.split()[0]))
    return out


def test_bars_rise_from_zero_to_their_value_and_carry_it():
    root = parse(fc.bar_chart('Rate', RATES, 'Rate', y_unit='req/s'))
    to_y = scale(ticks(root, 'y-tick'))
    bars = bars_of(root)
    assert sorted(bars) == sorted([('10 concurrent', 'requested'), ('10 concurrent', 'achieved'),
                                   ('spike', 'requested'), ('spike', 'achieved'), ('soak', 'requested')])
    for (group, bar), (rect, value) in bars.items():
        assert value == RATES[group][bar]
        top, bottom = float(rect.get('y')), float(rect.get('y')) + float(rect.get('height'))
        assert abs(bottom - to_y(0)) <= 0.2 and abs(top - to_y(value)) <= 0.2
    values = sorted(t.text for t, _ in labelled(root, 'value'))
    assert values == sorted(['100', '97.3', '500', '310', '50'])
    assert labelled(root, 'y-label')[0][1] == 'Rate (req/s)'


def test_a_bar_without_a_value_is_marked_not_drawn_as_zero():
    groups = {'agent-kill': {'detection': 2.0, 'recovery': 8.5}, 'nats-restart': {'detection': None},
              'node-freeze': {'detection': NAN, 'recovery': 30}}
    root = parse(fc.bar_chart('Failure modes', groups, 'Seconds', y_unit='s'))
    assert [t.text for t, _ in labelled(root, 'no-value')] == ['n/a', 'n/a', 'n/a']  # None, missing, NaN
    assert ('nats-restart', 'detection') not in bars_of(root)
    assert '1 without a value (marked n/a)' in note(root) and '1 NaN/inf' in note(root)
    assert 'nats-restart: detection n/a, recovery n/a.' in desc(root)


def test_each_bar_name_keeps_its_colour_across_groups_and_in_the_legend():
    root = parse(fc.bar_chart('Rate', RATES, 'Rate'))
    fills = {}
    for (group, bar), (rect, _) in bars_of(root).items():
        fills.setdefault(bar, set()).add(rect.get('fill'))
    assert all(len(f) == 1 for f in fills.values()) and fills['requested'] != fills['achieved']
    legend = {g.find(NS + 'text').text: g.find(NS + 'rect').get('fill')
              for g in root.iter(NS + 'g') if g.get('class') == 'legend'}
    assert legend == {bar: f.pop() for bar, f in fills.items()}


def test_negative_bars_hang_below_the_baseline():
    root = parse(fc.bar_chart('Change', {'p50': {'delta': -5.0}, 'p99': {'delta': 12.0}}, 'ms'))
    to_y = scale(ticks(root, 'y-tick'))
    rect, _ = bars_of(root)[('p50', 'delta')]
    assert abs(float(rect.get('y')) - to_y(0)) <= 0.2
    assert abs(float(rect.get('y')) + float(rect.get('height')) - to_y(-5)) <= 0.2
    assert ticks(root, 'y-tick')[0][0] <= -5


def test_limits_and_group_limits_sit_at_their_values():
    root = parse(fc.bar_chart('Recovery', {'agent-kill': {'recovery': 8}, 'nats-restart': {'recovery': 45}},
                              'Seconds', y_unit='s', limits=[(60, 'SLO 60 s')],
                              group_limits={'agent-kill': 10, 'nats-restart': 30}, group_limit_label='budget'))
    to_y = scale(ticks(root, 'y-tick'))
    (line,) = [g for g in root.iter(NS + 'g') if g.get('class') == 'threshold']
    assert abs(float(line.find(NS + 'line').get('y1')) - to_y(60)) <= 0.2
    markers = [el for el in root.iter(NS + 'line') if el.get('class') == 'group-limit']
    assert [m.find(NS + 'title').text for m in markers] == ['agent-kill, budget: 10 s', 'nats-restart, budget: 30 s']
    for marker, value in zip(markers, (10, 30)):
        assert abs(float(marker.get('y1')) - to_y(value)) <= 0.2
    rect, _ = bars_of(root)[('nats-restart', 'recovery')]
    assert float(markers[1].get('x1')) <= float(rect.get('x')) <= float(markers[1].get('x2'))
    legend = [g.find('.//' + NS + 'text').text for g in root.iter(NS + 'g') if g.get('class') == 'legend']
    assert legend == ['recovery', 'budget']
    assert 'nats-restart: recovery 45 s, budget 30 s.' in desc(root)


def test_empty_bar_charts_say_no_data():
    for groups in ({}, None, {'g': {}}, {'g': {'a': None}}, [('g', {'a': NAN})]):
        root = parse(fc.bar_chart('Recovery', groups, 's'))
        assert [t.text for t, _ in labelled(root, 'no-data')] == ['no data'] and not bars_of(root)


def test_bars_too_narrow_for_their_labels_send_the_reader_to_the_description():
    groups = {'g%d' % i: {'bar %d' % j: 1234567.0 * (i + j) for j in range(9)} for i in range(12)}
    root = parse(fc.bar_chart('Many', groups, 'v'))
    assert not labelled(root, 'value') and 'Values in the description' in note(root)
    assert 'g11: bar 0 13.6M' in desc(root) and len(bars_of(root)) == 12 * 9
    fills = {(r.get('fill'), r.get('fill-opacity')) for r, _ in bars_of(root).values()}
    assert len(fills) == 9  # the eighth and ninth bar names repeat a colour at half strength


def test_long_group_names_are_cut_with_a_tooltip():
    name = 'env-corrupt-or-disk-full on every host of the fleet'
    root = parse(fc.bar_chart('B', {name: {'s': 1}, 'b': {'s': 2}, 'c': {'s': 3}, 'd': {'s': 4}, 'e': {'s': 5},
                                    'f': {'s': 6}}, 'v'))
    (text, full), = [(t, f) for t, f in labelled(root, 'x-tick') if f == name]
    assert text.text.endswith('\u2026') and name.startswith(text.text[:-1])
