# -*- coding: utf-8 -*-
"""The reports of the production-readiness run (issue 10, phase 3), rendered from its folder.

``render_reports(run_dir, now=None, waves_dir=None)`` reads what the run recorded in
``artifacts/readiness/<run>/`` and writes, atomically through ``ArtifactStore``, into ``<run>/reports/``:

``report.html``, ``report.md``
    The master report: the executive summary with the decision, the readiness gates, the success
    metrics, the load (and stress) results per scenario with their charts, the comparison with the
    previous run (test vs reference), the failure modes with their ledgers and the recovery chart, the
    deployment timeline, the evidence index and the sign-off page.
``brief.html``, ``brief.md``
    One page for stakeholders: the decision and its constraints or reasons, the key figures, the gates
    at a glance, two charts and who signed.
``charts/<id>.svg``
    Every chart as a file, linked from the Markdown (``![...](charts/<id>.svg)``); the HTML pages carry
    the same SVG inline. Each chart's id is its ``data-chart`` (``fleet_charts.chart_ids`` lists them);
    a chart this rendering no longer draws is removed from ``charts/``.

It returns the paths written, relative to ``run_dir``. Pure Python (standard library and this
collection's plugin_utils); the charts are ``fleet_charts``'s, the gates table ``fleet_gates``'s, the
ledgers judged by ``fleet_ledger``. The pages are self-contained (inline CSS and SVG, no script, no
URL but relative links to the run's own files), every text is escaped, and the same inputs give the
same bytes: ``now`` appears only in the "Generated" line.

Inputs (each optional)
======================
``status.json`` (``fleet_status``)            areas' states and times: the deployment timeline
``load/results.json``, ``stress/results.json``  ``{"run", "scenarios": {name: fleet_load record},
                                                "previous", "comparison"}`` (``compare_with_previous``)
``failure-modes/<mode>/ledger.json``           ``fleet_ledger`` records
``gates/<gate>.json``                          ``fleet_gates`` records
``evidence/evidence-index.json``               ``fleet_attest.write_index``'s index
``certificate.json``, ``trusted-keys.json``    the DSSE envelope of phase 2 and the keys it was checked
                                               with; the statement is decoded, NOT verified here (the
                                               sign-off page says how to verify it)
``<artifacts>/checkpoints/<wave>/decision.json``  the waves' decisions, when the run folder sits in
                                               ``<artifacts>/readiness/`` (or ``waves_dir`` is given)

An input that is missing or unreadable gives a section marked "Not available: <what> (<where>)" and
no figure: a missing number is shown as ``n/a``, never as zero, and a chart bar without a value is
marked n/a by ``fleet_charts``.

Chart ids
=========
``<area>-rate`` (requested vs achieved rate per scenario), ``<area>-<scenario>-latency`` (p50/p99/max
per interval), ``<area>-<scenario>-throughput`` (sent, good replies, errors, requested per interval),
``<area>-vs-previous-p95`` and ``<area>-vs-previous-rate`` (this run vs the previous one), for
``<area>`` ``load`` and ``stress``; ``failure-modes-recovery`` (detection and recovery per mode against
its recovery budget); ``timeline-durations`` (how long each area of the run took). A scenario's part is
``fleet_charts.slugify`` of its name, made unique with ``-2``, ``-3``... when two names give one slug.
"""

from __future__ import annotations

import collections
import datetime
import html
import json
import os
import urllib.parse

from ansible_collections.fleetwave.rollout.plugins.module_utils import fleet_load
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import (fleet_attest, fleet_charts, fleet_gates,
                                                                        fleet_ledger, fleet_status)
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import (ArtifactError, ArtifactStore,
                                                                                      Layout, epoch_of, utc)

# Where the reports go, and what they read, relative to the run's folder.
REPORTS_DIR = 'reports'
CHARTS_DIR = 'charts'  # inside REPORTS_DIR
REPORT_HTML, REPORT_MD, BRIEF_HTML, BRIEF_MD = 'report.html', 'report.md', 'brief.html', 'brief.md'
RESULTS = {'load': 'load/results.json', 'stress': 'stress/results.json'}
GATES_DIR = 'gates'
EVIDENCE_DIR = Layout.READINESS_EVIDENCE
CERTIFICATE = Layout.CERTIFICATE
TRUSTED_KEYS = Layout.TRUSTED_KEYS
VERIFY_SCRIPT = 'scripts/verify-certificate'
NOT_AVAILABLE = 'Not available'
NA = 'n/a'
# Figures compared with the previous run, as fleet_load.compare_with_previous names them.
COMPARED = (('latency_p95_ms', 'p95 latency', 'ms', 'p95'), ('achieved_rate', 'achieved rate', 'req/s', 'rate'))
LATENCY_SERIES = (('p50_ms', 'p50'), ('p95_ms', 'p95'), ('p99_ms', 'p99'), ('max_ms', 'max'))
LATENCY_FIGURES = ('p50', 'p95', 'p99')


# ================================================================================ values

_number = fleet_gates._number  # a finite number from a number or numeric text, else None


def _figure(value, unit=''):
    """A figure for people: thousands separated, 4 significant digits below 1,000; n/a without one."""
    number = _number(value)
    if number is None:
        return NA
    if number == int(number) and abs(number) < 1e15:
        text = '{:,}'.format(int(number))
    elif abs(number) >= 1000:
        text = '{:,.0f}'.format(number)
    else:
        text = '{:.4g}'.format(number)
    return '%s %s' % (text, unit) if unit else text


def _get(data, *keys):
    """data[k1][k2]... or None when any level is missing or not a mapping."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _mapping(value):
    return value if isinstance(value, dict) else {}


def _list(value):
    return value if isinstance(value, list) else []


def _text(value):
    return '' if value is None else str(value)


def _moment(now):
    """The Generated line's time: utc() of now (None: the current time; an epoch, an aware datetime or a stamp)."""
    if now is None:
        return utc()
    if isinstance(now, datetime.datetime):
        return utc(now.timestamp())
    if isinstance(now, (int, float)) and not isinstance(now, bool):
        return utc(now)
    return str(now)


def _epoch(stamp):
    """The epoch of a utc() stamp or of any ISO-8601 time with its zone (fleet_load's), else None."""
    epoch = epoch_of(stamp)
    if epoch is None:
        moment = fleet_attest.parse_time(stamp)
        epoch = moment.timestamp() if moment is not None else None
    return epoch


def _seconds_between(start, end):
    a, b = _epoch(start), _epoch(end)
    return b - a if a is not None and b is not None and b >= a else None


# ================================================================================ the document model
# One list of blocks per page, rendered to HTML and to Markdown; inline parts are text or the tuples below.

Link = collections.namedtuple('Link', 'text href')
Code = collections.namedtuple('Code', 'text')
Strong = collections.namedtuple('Strong', 'text')
Mark = collections.namedtuple('Mark', 'text kind')  # an outcome: kind ok, bad, warn or none
Chart = collections.namedtuple('Chart', 'id title svg caption')

_MARK_KINDS = {'PASS': 'ok', 'GO': 'ok', 'FAIL': 'bad', 'NO-GO': 'bad', fleet_attest.GO_WITH_CONSTRAINTS: 'warn'}


def _mark(text, kind=None):
    return Mark(text, kind or _MARK_KINDS.get(text, 'none'))


def _parts(content):
    if content is None:
        return []
    if isinstance(content, (str, Link, Code, Strong, Mark)):
        return [content]
    return list(content)


class _Doc:
    def __init__(self, title):
        self.title = title
        self.blocks = []
        self.charts = []
        self.anchors = _Ids()

    def heading(self, level, text, anchor=None):
        self.blocks.append(('h', level, text, self.anchors(anchor or text, kind='anchor')))

    def para(self, *content):
        self.blocks.append(('p', [p for c in content for p in _parts(c)]))

    def items(self, rows):
        self.blocks.append(('ul', [_parts(row) for row in rows]))

    def table(self, headers, rows):
        self.blocks.append(('table', list(headers), [[_parts(cell) for cell in row] for row in rows]))

    def chart(self, chart):
        self.blocks.append(('chart', chart))
        self.charts.append(chart)

    def missing(self, what, where):
        self.blocks.append(('missing', what, where))

    def decision(self, text, kind, detail):
        self.blocks.append(('decision', text, kind, _parts(detail)))

    def figures(self, rows):
        self.blocks.append(('figures', rows))

    def pre(self, summary, text):
        self.blocks.append(('pre', summary, text))

    def only(self, markdown=None, html_text=None):
        """A block for one of the two renderings (the gates table of fleet_gates in Markdown)."""
        self.blocks.append(('only', markdown, html_text))

    def page_break(self):
        self.blocks.append(('break',))


def _href(path):
    return urllib.parse.quote(path, safe='/._-+#')


# --- HTML

def _h_inline(part):
    esc = html.escape
    if isinstance(part, Link):
        return '<a href="%s">%s</a>' % (esc(_href(part.href), quote=True), esc(part.text))
    if isinstance(part, Code):
        return '<code>%s</code>' % esc(part.text)
    if isinstance(part, Strong):
        return '<strong>%s</strong>' % esc(part.text)
    if isinstance(part, Mark):
        return '<span class="mark m-%s">%s</span>' % (esc(part.kind, quote=True), esc(part.text))
    return esc(_text(part))


def _h(parts):
    return ''.join(_h_inline(part) for part in parts)


_CSS = '''body{font-family:sans-serif;color:#1a1a1a;margin:1.5em auto;max-width:1100px;padding:0 1em;line-height:1.4}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.92em}
th,td{border:1px solid #bbb;padding:.25em .5em;text-align:left;vertical-align:top}th{background:#f2f2f2}
code,pre{font-family:monospace;font-size:.9em;background:#f6f6f6}code{padding:0 .2em;word-break:break-all}
pre{padding:.6em;overflow-x:auto;white-space:pre-wrap}
.generated{color:#555;font-size:.9em}
.mark{font-weight:bold;padding:0 .35em;border-radius:3px;color:#fff;white-space:nowrap}
.m-ok{background:#1e7b34}.m-bad{background:#b3261e}.m-warn{background:#8a5a00}.m-none{background:#6b6b6b}
.decision{border:3px solid #6b6b6b;border-radius:6px;padding:.6em 1em;margin:1em 0}
.decision .verdict{font-size:1.6em;font-weight:bold}
.d-ok{border-color:#1e7b34}.d-ok .verdict{color:#1e7b34}.d-bad{border-color:#b3261e}.d-bad .verdict{color:#b3261e}
.d-warn{border-color:#8a5a00}.d-warn .verdict{color:#8a5a00}
.missing{border-left:6px solid #b3261e;background:#fbeeee;padding:.5em .8em;margin:.8em 0}
.figures{display:flex;flex-wrap:wrap;gap:.6em;margin:.8em 0}
.figure{border:1px solid #ccc;border-radius:6px;padding:.4em .7em;min-width:12em;flex:1 1 12em}
.figure .label{color:#555;font-size:.85em}.figure .value{font-size:1.35em;font-weight:bold}
.figure .note{font-size:.8em;color:#555}.f-ok{border-left:6px solid #1e7b34}.f-bad{border-left:6px solid #b3261e}
.f-none{border-left:6px solid #999}
figure.chart{margin:1em 0;max-width:740px}figure.chart figcaption{font-size:.85em;color:#444}
nav ul{columns:2;font-size:.95em}
.page{break-before:page;page-break-before:always}
@media print{body{max-width:none}}
'''

_BRIEF_CSS = '''body{max-width:1000px;font-size:.95em}h2{margin-top:.9em}
.charts{display:flex;flex-wrap:wrap;gap:1%}.charts figure.chart{flex:1 1 48%;max-width:49%;margin:.3em 0}
@page{size:A4;margin:12mm}
'''


def render_html(doc, generated, brief=False):
    """The page of doc: self-contained (inline CSS and SVG), no script."""
    esc = html.escape
    out = ['<!DOCTYPE html>', '<html lang="en">', '<head>', '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           '<title>%s</title>' % esc(doc.title), '<style>%s%s</style>' % (_CSS, _BRIEF_CSS if brief else ''),
           '</head>', '<body>', '<h1>%s</h1>' % esc(doc.title), '<p class="generated">%s</p>' % _h(generated)]
    sections = [(text, anchor) for kind, level, text, anchor in
                (b for b in doc.blocks if b[0] == 'h') if level == 2] if not brief else []
    if sections:
        out.append('<nav><strong>Contents</strong><ul>%s</ul></nav>' % ''.join(
            '<li><a href="#%s">%s</a></li>' % (esc(anchor, quote=True), esc(text)) for text, anchor in sections))
    charts = []  # the brief's charts go side by side

    def flush():
        if charts:
            out.append('<div class="charts">%s</div>' % ''.join(charts))
            del charts[:]

    for block in doc.blocks:
        kind = block[0]
        if kind != 'chart':
            flush()
        if kind == 'h':
            _, level, text, anchor = block
            out.append('<h%d id="%s">%s</h%d>' % (level, esc(anchor, quote=True), esc(text), level))
        elif kind == 'p':
            out.append('<p>%s</p>' % _h(block[1]))
        elif kind == 'ul':
            out.append('<ul>%s</ul>' % ''.join('<li>%s</li>' % _h(row) for row in block[1]))
        elif kind == 'table':
            _, headers, rows = block
            out.append('<table><thead><tr>%s</tr></thead><tbody>%s</tbody></table>' % (
                ''.join('<th>%s</th>' % esc(h) for h in headers),
                ''.join('<tr>%s</tr>' % ''.join('<td>%s</td>' % _h(cell) for cell in row) for row in rows)))
        elif kind == 'chart':
            chart = block[1]
            element = '<figure class="chart" id="chart-%s">\n%s<figcaption>%s</figcaption></figure>' % (
                esc(chart.id, quote=True), chart.svg, _h(_parts(chart.caption)))
            if brief:
                charts.append(element)
            else:
                out.append(element)
        elif kind == 'missing':
            out.append('<div class="missing"><strong>%s:</strong> %s (<code>%s</code>)</div>' % (
                NOT_AVAILABLE, esc(block[1]), esc(block[2])))
        elif kind == 'decision':
            _, text, mark, detail = block
            out.append('<div class="decision d-%s"><div class="verdict">%s</div><div>%s</div></div>' % (
                esc(mark, quote=True), esc(text), _h(detail)))
        elif kind == 'figures':
            out.append('<div class="figures">%s</div>' % ''.join(
                '<div class="figure f-%s"><div class="label">%s</div><div class="value">%s</div>'
                '<div class="note">%s</div></div>' % (esc(status, quote=True), esc(label), esc(value), esc(note))
                for label, value, note, status in block[1]))
        elif kind == 'pre':
            out.append('<details open><summary>%s</summary><pre>%s</pre></details>' % (esc(block[1]), esc(block[2])))
        elif kind == 'only' and block[2] is not None:
            out.append(block[2])
        elif kind == 'break':
            out.append('<div class="page"></div>')
    flush()
    out += ['</body>', '</html>', '']
    return '\n'.join(out)


# --- Markdown

_md_cell = fleet_status._md_cell


def _m_inline(part):
    if isinstance(part, Link):
        return '[%s](%s)' % (_md_cell(part.text), _href(part.href))
    if isinstance(part, Code):
        return '`%s`' % ' '.join(part.text.replace('`', "'").split())
    if isinstance(part, (Strong, Mark)):
        return '**%s**' % _md_cell(part.text)
    text = _text(part)
    core = _md_cell(text)
    return '%s%s%s' % (' ' if text[:1].isspace() and core else '', core, ' ' if text[-1:].isspace() and core else '')


def _m(parts):
    return ''.join(_m_inline(part) for part in parts)


def render_markdown(doc, generated):
    """The page of doc in Markdown; its charts linked as charts/<id>.svg."""
    out = ['# %s' % _md_cell(doc.title), '', '_%s_' % _m(generated), '']
    for block in doc.blocks:
        kind = block[0]
        if kind == 'h':
            out += ['%s %s' % ('#' * block[1], _md_cell(block[2])), '']
        elif kind == 'p':
            out += [_m(block[1]), '']
        elif kind == 'ul':
            out += ['- %s' % _m(row) for row in block[1]] + ['']
        elif kind == 'table':
            _, headers, rows = block
            out.append('| %s |' % ' | '.join(_md_cell(h) for h in headers))
            out.append('|' + ' --- |' * len(headers))
            out += ['| %s |' % ' | '.join(_m(cell) or '-' for cell in row) for row in rows]
            out.append('')
        elif kind == 'chart':
            chart = block[1]
            out += ['![%s](%s/%s.svg)' % (_md_cell(chart.title), CHARTS_DIR, chart.id), '',
                    '_%s_' % _m(_parts(chart.caption)), '']
        elif kind == 'missing':
            out += ['> **%s:** %s (`%s`)' % (NOT_AVAILABLE, _md_cell(block[1]), block[2].replace('`', "'")), '']
        elif kind == 'decision':
            out += ['> **Decision: %s**' % _md_cell(block[1]), '>', '> %s' % _m(block[3]), '']
        elif kind == 'figures':
            out += ['| figure | value | note |', '| --- | --- | --- |']
            out += ['| %s | **%s** | %s |' % (_md_cell(label), _md_cell(value), _md_cell(note) or '-')
                    for label, value, note, _status in block[1]]
            out.append('')
        elif kind == 'pre':
            fence = '```'
            while fence in block[2]:
                fence += '`'
            out += ['%s:' % _md_cell(block[1]), '', fence, block[2], fence, '']
        elif kind == 'only' and block[1] is not None:
            out += [block[1].rstrip('\n'), '']
        elif kind == 'break':
            out += ['---', '']
    return '\n'.join(out).rstrip('\n') + '\n'


# ================================================================================ reading the run

class _Ids:
    """Slugs unique within a rendering: a slug given twice gets -2, -3... (chart ids, heading anchors, and
    the scenario part of a scenario's chart ids, each kind in its own namespace)."""

    def __init__(self):
        self.used = collections.defaultdict(set)

    def __call__(self, *words, **kwargs):
        size, kind = kwargs.get('size', 60), kwargs.get('kind', 'chart')
        base = fleet_charts.slugify(' '.join(str(w) for w in words))[:size].strip('-') or 'chart'
        slug, n = base, 1
        while slug in self.used[kind]:
            n += 1
            slug = fleet_charts.slugify('%s %d' % (base[:size - 4], n))
        self.used[kind].add(slug)
        return slug


class _Run:
    """Everything the reports read, each input as (data, problem): problem says why there is no data."""

    def __init__(self, run_dir, waves_dir=None):
        self.dir = os.path.abspath(run_dir)
        self.store = ArtifactStore(self.dir)
        self.reports = os.path.join(self.dir, REPORTS_DIR)
        self.status, self.status_problem = self.read(Layout.STATUS_RECORD, 'run status record')
        self.results, self.results_problem = {}, {}
        for area, rel in RESULTS.items():
            self.results[area], self.results_problem[area] = self.read(rel, '%s results' % area)
        self.gates = []
        self.gates_problems = []
        folder = self.store.path(GATES_DIR)
        for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
            if name.endswith('.json') and not name.startswith('.'):
                record, problem = self.read(os.path.join(GATES_DIR, name), 'gate record')
                if record is not None and record.get('gate'):
                    self.gates.append(record)
                else:
                    self.gates_problems.append(problem or 'gates/%s is not a gate record' % name)
        self.ledgers, self.ledger_problems = {}, {}
        folder = self.store.path(Layout.FAILURE_MODES_DIR)
        found = sorted(os.listdir(folder)) if os.path.isdir(folder) else []
        known = [m for m in fleet_ledger.FAILURE_MODES if m in found]
        for mode in known + [m for m in found if m not in known and not m.startswith('.')]:
            if os.path.isdir(os.path.join(folder, mode)):
                record, problem = self.read(os.path.join(Layout.FAILURE_MODES_DIR, mode, Layout.LEDGER), 'ledger')
                if record is not None:
                    self.ledgers[mode] = record
                elif mode in fleet_ledger.FAILURE_MODES or os.path.exists(os.path.join(folder, mode, Layout.LEDGER)):
                    self.ledger_problems[mode] = problem
        self.index, self.index_problem = self.read(self.index_path, 'evidence index')
        self.envelope, self.certificate_problem = self.read(CERTIFICATE, 'authorization certificate')
        self.statement = None
        if self.envelope is not None:
            self.statement, self.certificate_problem = _statement(self.envelope)
        self.trusted, _problem = self.read(TRUSTED_KEYS, 'trusted keys list')
        self.waves = _wave_decisions(self.dir if waves_dir is None else None, waves_dir)
        self.run = (_get(self.status, 'run') or _get(self.results['load'], 'run')
                    or os.path.basename(self.dir))

    index_path = '%s/%s' % (EVIDENCE_DIR, Layout.EVIDENCE_INDEX)

    def read(self, rel, what):
        """(the JSON object at rel, None) or (None, why not)."""
        try:
            data = self.store.read_json(rel)
        except (ArtifactError, OSError) as exc:
            return None, 'the %s at %s is not readable: %s' % (what, rel, getattr(exc, 'strerror', None) or exc)
        if data is None:
            return None, 'no %s at %s' % (what, rel)
        if not isinstance(data, dict):
            return None, 'the %s at %s is not a JSON object' % (what, rel)
        return data, None

    def link(self, rel):
        """A link from reports/ to a file of the run folder (rel: relative to the run folder)."""
        return '../' + rel.replace(os.sep, '/')

    def evidence_link(self, path):
        """Where a gate's evidence file (an absolute path, as the gate recorded it) is, from reports/."""
        if os.path.isabs(path):
            return os.path.relpath(path, self.reports).replace(os.sep, '/')
        return path

    @property
    def predicate(self):
        return _mapping(_get(self.statement, 'predicate'))

    @property
    def decision(self):
        decision = self.predicate.get('decision')
        return decision if isinstance(decision, str) else None


def _statement(envelope):
    """(the in-toto statement of a DSSE envelope, None) or (None, why not). Decoded only: not verified."""
    body = fleet_attest._b64(envelope.get('payload'))
    if body is None:
        return None, '%s has no base64 payload (not a DSSE envelope)' % CERTIFICATE
    try:
        statement = json.loads(body.decode('utf-8'))
    except (UnicodeDecodeError, ValueError):
        return None, 'the payload of %s is not JSON (not an in-toto statement)' % CERTIFICATE
    if not isinstance(statement, dict) or not isinstance(statement.get('predicate'), dict):
        return None, 'the payload of %s is not an in-toto statement with a predicate' % CERTIFICATE
    return statement, None


def _wave_decisions(run_dir, waves_dir):
    """{wave: decision record} of checkpoints/<wave>/decision.json beside the readiness folder."""
    if waves_dir is None and run_dir is not None:
        parent = os.path.dirname(run_dir)
        if os.path.basename(parent) != Layout.READINESS_DIR:
            return {}
        waves_dir = os.path.join(os.path.dirname(parent), 'checkpoints')
    if not waves_dir or not os.path.isdir(waves_dir):
        return {}
    store, found = ArtifactStore(os.path.dirname(os.path.abspath(waves_dir))), {}
    for wave in sorted(os.listdir(waves_dir)):
        rel = os.path.join(os.path.basename(os.path.abspath(waves_dir)), wave, 'decision.json')
        try:
            record = store.read_json(rel)
        except (ArtifactError, OSError):
            record = None
        if isinstance(record, dict):
            found[wave] = dict(record, _path=store.path(rel))
    return found


# ================================================================================ load and stress

def _scenarios(results, area):
    """[(name, record)] of a results document, the contract's load scenarios first."""
    found = _mapping(_get(results, 'scenarios'))
    order = list(fleet_gates.LOAD_SCENARIOS) if area == 'load' else []
    names = [n for n in order if n in found] + [n for n in found if n not in order]
    return [(name, found[name]) for name in names if isinstance(found[name], dict)]


def _requested_profile(record):
    """fleet_load's Profile of an open-model scenario's requested rate, or None."""
    config = _mapping(record.get('config'))
    try:
        if config.get('executor') == 'constant-arrival-rate':
            return fleet_load.Profile(config['rate'], [dict(duration=config['duration'], target=config['rate'])])
        if config.get('executor') == 'ramping-arrival-rate':
            return fleet_load.Profile(config.get('start_rate', 0), config['stages'])
    except (KeyError, TypeError, ValueError):
        return None
    return None


def _latency_chart(record, name, slug, area):
    series = _list(record.get('series'))
    lines = [(label, [(p.get('t'), p.get(key)) for p in series if isinstance(p, dict)])
             for key, label in LATENCY_SERIES if any(isinstance(p, dict) and key in p for p in series)]
    thresholds = [(t.get('threshold'), '%s %s %s ms%s' % (
        t.get('name'), t.get('comparator'), _figure(t.get('threshold')),
        ' (%s s windows)' % _figure(t['window_seconds']) if t.get('window_seconds') else ''))
        for t in _list(record.get('thresholds'))
        if isinstance(t, dict) and str(t.get('metric', '')).startswith('latency_')]
    title = '%s %s: latency per interval' % (area.capitalize(), name)
    svg = fleet_charts.line_chart(title, lines, 'Time since the start', 'Latency', x_unit='s', y_unit='ms',
                                  thresholds=thresholds, bands=_abort_band(record), y_scale='auto', slug=slug)
    whole = _mapping(record.get('latency_ms'))
    caption = ('Latency of the replies in each %s interval (p50, p99 and max; %s). Whole run: p50 %s, p95 %s, '
               'p99 %s, max %s; latency from the %s.' % (
                   _figure(record.get('interval_seconds'), 's'),
                   'p95 too' if any(label == 'p95' for label, _ in lines) else
                   'fleet_load keeps p95 for the whole run only',
                   _figure(whole.get('p50'), 'ms'), _figure(whole.get('p95'), 'ms'), _figure(whole.get('p99'), 'ms'),
                   _figure(whole.get('max'), 'ms'), record.get('latency_from') or NA))
    return Chart(slug, title, svg, caption)


def _abort_band(record):
    abort = _mapping(record.get('abort'))
    at = _number(abort.get('at_seconds'))
    return [(at, None, 'aborted: %s' % abort.get('threshold'))] if record.get('aborted') and at is not None else []


def _throughput_chart(record, name, slug, area):
    points = [p for p in _list(record.get('series')) if isinstance(p, dict)]
    profile = _requested_profile(record) if record.get('model') == fleet_load.OPEN else None

    def per_second(key):
        out = []
        for p in points:
            seconds, count = _number(p.get('seconds')), _number(p.get(key))
            out.append((p.get('t'), count / seconds if seconds and count is not None else None))
        return out

    lines = [('sent', per_second('sent')), ('good replies', per_second('answered')), ('errors', per_second('errors'))]
    if any(_number(p.get('dropped')) for p in points):
        lines.append(('dropped', per_second('dropped')))
    thresholds = []
    requested = _requested_series(profile, points) if profile is not None else None
    if requested is not None:
        lines.insert(0, ('requested', requested))
    elif _number(record.get('requested_rate')) is not None:
        thresholds.append((record['requested_rate'], 'requested %s/s' % _figure(record['requested_rate'])))
    title = '%s %s: throughput per interval' % (area.capitalize(), name)
    svg = fleet_charts.line_chart(title, lines, 'Time since the start', 'Rate', x_unit='s', y_unit='req/s',
                                  thresholds=thresholds, bands=_abort_band(record), slug=slug)
    if record.get('model') == fleet_load.CLOSED:
        about = 'Closed model: no requested rate, its %s VUs set the concurrency (mean %s asked, %s achieved).' % (
            _figure(record.get('max_vus')), _figure(_get(record, 'concurrency', 'requested_mean')),
            _figure(_get(record, 'concurrency', 'achieved_mean')))
    else:
        about = 'Open model: requested %s/s on average, achieved %s/s, %s dropped.' % (
            _figure(record.get('requested_rate')), _figure(record.get('achieved_rate')), _figure(record.get('dropped')))
    caption = 'Requests sent, good replies and errors per second in each interval. %s' % about
    return Chart(slug, title, svg, caption)


def _requested_series(profile, points):
    """The rate the schedule asked for in each interval (its integral over the interval / its length)."""
    requested = []
    try:
        for p in points:
            t, seconds = _number(p.get('t')), _number(p.get('seconds'))
            requested.append((t, (profile.integral(t + seconds) - profile.integral(t)) / seconds
                              if t is not None and seconds else None))
    except ArithmeticError:
        return None
    return requested


def _rate_chart(scenarios, slug, area):
    groups, closed = [], []
    for name, record in scenarios:
        if record.get('model') == fleet_load.CLOSED and record.get('requested_rate') is None:
            closed.append(name)
            groups.append((name, {'achieved': record.get('achieved_rate')}))
        else:
            groups.append((name, dict(requested=record.get('requested_rate'), achieved=record.get('achieved_rate'))))
    title = '%s: requested vs achieved rate' % area.capitalize()
    svg = fleet_charts.bar_chart(title, groups, 'Rate', y_unit='req/s', slug=slug)
    caption = 'The rate each scenario asked for (open model) against the rate it sent.'
    if closed:
        caption += ' Closed-model scenarios (%s) have no requested rate: their VUs set the concurrency, so only ' \
                   'the achieved rate is shown.' % ', '.join(closed)
    return Chart(slug, title, svg, caption)


def _scenario_row(name, record):
    latency = _mapping(record.get('latency_ms'))
    thresholds = [t for t in _list(record.get('thresholds')) if isinstance(t, dict)]
    passed = sum(1 for t in thresholds if t.get('passed') is True)
    if record.get('aborted'):
        outcome = _mark('ABORTED', 'bad')
    elif not thresholds:
        outcome = _mark('no thresholds', 'none')
    else:
        outcome = _mark('PASS' if passed == len(thresholds) else 'FAIL')
    return [name, _text(record.get('model')) or NA, _figure(record.get('requested_rate')),
            _figure(record.get('achieved_rate')), _figure(record.get('requests')),
            '%s (%s %%)' % (_figure(record.get('errors')), _figure(record.get('error_rate_pct'))),
            _figure(record.get('dropped'))] + [_figure(latency.get(p)) for p in LATENCY_FIGURES] + [
        '%d/%d' % (passed, len(thresholds)), outcome]


def _results_section(doc, run, ids, area):
    results, rel = run.results[area], RESULTS[area]
    doc.heading(2, '%s results' % area.capitalize(), anchor='%s-results' % area)
    if results is None:
        doc.missing('%s results (no %s test recorded in this run)' % (area, area), run.results_problem[area])
        return
    scenarios = _scenarios(results, area)
    if not scenarios:
        doc.missing('%s scenarios: the results hold none' % area, rel + ' scenarios')
        return
    doc.para('%d scenario(s) from ' % len(scenarios), Link(rel, run.link(rel)), '.')
    if area == 'load':
        absent = [n for n in fleet_gates.LOAD_SCENARIOS if n not in dict(scenarios)]
        if absent:
            doc.missing('load scenario(s) %s of the contract' % ', '.join(absent), rel)
    doc.chart(_rate_chart(scenarios, ids(area, 'rate'), area))
    doc.table(['scenario', 'model', 'requested /s', 'achieved /s', 'requests', 'errors', 'dropped', 'p50 ms',
               'p95 ms', 'p99 ms', 'thresholds', 'outcome'], [_scenario_row(n, r) for n, r in scenarios])
    for name, record in scenarios:
        part = ids(area, name, size=44, kind='scenario')
        doc.heading(3, '%s: %s' % (area.capitalize(), name), anchor='scenario-%s' % part)
        doc.para(_text(record.get('summary')) or '%s: no summary line in the record' % name)
        thresholds = [t for t in _list(record.get('thresholds')) if isinstance(t, dict)]
        if thresholds:
            doc.table(['threshold', 'metric', 'condition', 'measured', 'judged by', 'passed'], [
                [_text(t.get('name')), _text(t.get('metric')),
                 '%s %s' % (t.get('comparator'), _figure(t.get('threshold'))), _figure(t.get('measured')),
                 _text(t.get('judged_by')) or NA,
                 _mark('PASS' if t.get('passed') is True else 'FAIL')] for t in thresholds])
        else:
            doc.missing('thresholds of scenario %s' % name, rel)
        if not _list(record.get('series')):
            doc.missing('time series of scenario %s' % name, rel)
        doc.chart(_latency_chart(record, name, ids(part, 'latency'), area))
        doc.chart(_throughput_chart(record, name, ids(part, 'throughput'), area))
    _comparison_section(doc, run, ids, area, results, scenarios)


def _comparison_section(doc, run, ids, area, results, scenarios):
    rel = RESULTS[area]
    doc.heading(3, '%s: this run vs the previous run' % area.capitalize(), anchor='%s-vs-previous' % area)
    comparison = results.get('comparison')
    if not isinstance(comparison, dict):
        doc.missing('the comparison with a previous run', rel + ' comparison')
        return
    if comparison.get('previous') is None:
        doc.missing('test vs reference: %s' % (comparison.get('note') or 'no previous readiness run'),
                    rel + ' comparison')
        return
    about = _mapping(comparison.get('previous'))
    previous = 'previous run %s' % about['run'] if about.get('run') else 'previous run'
    found = _mapping(comparison.get('scenarios'))
    names = [n for n, _ in scenarios if n in found] + [n for n in found if n not in dict(scenarios)]
    compared = [(name, found[name]) for name in names if isinstance(found[name], dict)]
    doc.para('Against the %s' % previous, [' (', Code(results['previous']), ')'] if isinstance(
        results.get('previous'), str) else '', '. The figures are compared, not judged: a change is for the reader '
        '(and the criteria).')
    rows = []
    for name, item in compared:
        metrics = _mapping(item.get('metrics'))
        cells = [name, _text(item.get('status')) or NA,
                 NA if 'same_configuration' not in item else ('yes' if item['same_configuration'] else 'NO')]
        for key, _label, _unit, _short in COMPARED:
            figure = _mapping(metrics.get(key))
            cells.append('%s / %s (%s %%)' % (_figure(figure.get('current')), _figure(figure.get('previous')),
                                             _figure(figure.get('change_pct'))))
        cells.append('; '.join(_text(d) for d in _list(item.get('differences'))) or '-')
        rows.append(cells)
    doc.table(['scenario', 'status', 'same configuration', 'p95 ms now / before (change)',
               'achieved /s now / before (change)', 'differences'], rows)
    both = [(name, _mapping(item.get('metrics'))) for name, item in compared if item.get('status') == 'compared']
    if not both:
        doc.missing('test vs reference: no scenario ran in both runs', rel + ' comparison.scenarios')
        return
    for key, label, unit, short in COMPARED:
        slug = ids(area, 'vs previous', short)
        title = '%s: %s, this run vs the %s' % (area.capitalize(), label, previous)
        groups = [(name, {'this run': _get(m, key, 'current'), previous: _get(m, key, 'previous')})
                  for name, m in both]
        svg = fleet_charts.bar_chart(title, groups, label.capitalize(), y_unit=unit, slug=slug)
        unlike = [name for name, item in compared if item.get('same_configuration') is False]
        doc.chart(Chart(slug, title, svg, 'The %s of each scenario in this run (test) and the %s (reference).%s' % (
            label, previous, ' Not like for like: %s ran another configuration (see the differences).'
            % ', '.join(unlike) if unlike else '')))


# ================================================================================ failure modes

def _ledger_check(mode, record):
    """(verdict text, reasons, lost lines): the budget verdict as its own figures confirm it."""
    where = '%s/%s/%s' % (Layout.FAILURE_MODES_DIR, mode, Layout.LEDGER)
    problems = fleet_ledger.check_record(record, where)
    try:
        lost = fleet_ledger.lost_lines(record)
    except (KeyError, TypeError, AttributeError):
        lost = []
    return ('PASS' if not problems else 'FAIL'), problems, lost


def _failure_modes_section(doc, run, ids):
    doc.heading(2, 'Failure modes', anchor='failure-modes')
    modes = list(run.ledgers)
    if not modes and not run.ledger_problems:
        doc.missing('the data-integrity ledgers of the failure modes (%s)' % ', '.join(fleet_ledger.FAILURE_MODES),
                    'no ledger at %s/<mode>/%s' % (Layout.FAILURE_MODES_DIR, Layout.LEDGER))
        return
    for mode in fleet_ledger.FAILURE_MODES:
        if mode not in run.ledgers:
            doc.missing('the data-integrity ledger of failure mode %s' % mode, run.ledger_problems.get(mode)
                        or 'no ledger at %s/%s/%s' % (Layout.FAILURE_MODES_DIR, mode, Layout.LEDGER))
    for mode, problem in run.ledger_problems.items():
        if mode not in fleet_ledger.FAILURE_MODES:
            doc.missing('the ledger of %s' % mode, problem)
    if not modes:
        return
    doc.chart(_recovery_chart(run, ids))
    rows = []
    for mode in modes:
        record = run.ledgers[mode]
        verdict, _problems, _lost = _ledger_check(mode, record)
        requests, events = _mapping(_get(record, 'requests', 'totals')), _mapping(_get(record, 'events', 'totals'))
        budget, timings = _mapping(record.get('budget')), _mapping(record.get('timings'))
        rows.append([mode, _mark(verdict), _figure(requests.get('sent')), _figure(requests.get('answered')),
                     '%s req, %s events' % (_figure(requests.get('lost')), _figure(events.get('lost'))),
                     _figure(_get(record, 'measured', 'duplicated')), _figure(_get(record, 'measured', 'reordered')),
                     _figure(_get(record, 'measured', 'late')),
                     '%s (max %s)' % (_figure(timings.get('detection_seconds')),
                                      _figure(budget.get('max_detection_seconds'))),
                     '%s (max %s)' % (_figure(timings.get('recovery_seconds')),
                                      _figure(budget.get('max_recovery_seconds')))])
    doc.table(['mode', 'budget verdict', 'requests sent', 'answered', 'lost', 'duplicated', 'reordered', 'late',
               'detection s', 'recovery s'], rows)
    for mode in modes:
        record = run.ledgers[mode]
        rel = '%s/%s/%s' % (Layout.FAILURE_MODES_DIR, mode, Layout.LEDGER)
        verdict, problems, lost = _ledger_check(mode, record)
        window = _mapping(record.get('window'))
        doc.heading(3, 'Failure mode %s: %s' % (mode, verdict), anchor='mode-%s' % fleet_charts.slugify(mode))
        doc.para('Injected %s, detected %s, recovered %s; ledger ' % (window.get('injected_at') or NA,
                                                                      window.get('detected_at') or 'never',
                                                                      window.get('recovered_at') or 'never'),
            Link(rel, run.link(rel)), ' (recorded verdict %s).' % (record.get('verdict') or NA))
        measured, budget = _mapping(record.get('measured')), _mapping(record.get('budget'))
        doc.table(['figure', 'measured', 'budget'], [
            ['requests lost', '%s %%' % _figure(measured.get('requests_lost_pct')), 'at most %s %%'
             % _figure(budget.get('max_lost_pct'))],
            ['events lost', '%s %%' % _figure(measured.get('events_lost_pct')), 'at most %s %%'
             % _figure(budget.get('max_lost_pct'))],
            ['lost outside the failure window', _figure(measured.get('lost_outside_window')),
             'at most %s' % _figure(budget.get('max_lost_outside_window'))],
            ['duplicated', _figure(measured.get('duplicated')), 'at most %s' % _figure(budget.get('max_duplicated'))],
            ['reordered', _figure(measured.get('reordered')), 'at most %s' % _figure(budget.get('max_reordered'))],
            ['late', _figure(measured.get('late')), 'at most %s' % _figure(budget.get('max_late'))],
            ['detection', _figure(measured.get('detection_seconds'), 's'),
             'at most %s' % _figure(budget.get('max_detection_seconds'), 's')],
            ['recovery', _figure(measured.get('recovery_seconds'), 's'),
             'at most %s' % _figure(budget.get('max_recovery_seconds'), 's')]])
        if problems:
            doc.para(Strong('Why it fails its budget:'))
            doc.items(problems)
        if lost:
            doc.para(Strong('What was lost:'))
            doc.items(lost)
        elif not problems:
            doc.para('Nothing lost; every request and event copy accounted for within the budget.')


def _recovery_chart(run, ids):
    slug = ids('failure modes recovery')
    groups, budgets, detection = [], {}, []
    for mode, record in run.ledgers.items():
        timings, budget = _mapping(record.get('timings')), _mapping(record.get('budget'))
        groups.append((mode, dict(detection=timings.get('detection_seconds'),
                                  recovery=timings.get('recovery_seconds'))))
        if _number(budget.get('max_recovery_seconds')) is not None:
            budgets[mode] = budget['max_recovery_seconds']
        detection.append('%s %s' % (mode, _figure(budget.get('max_detection_seconds'), 's')))
    title = 'Detection and recovery per failure mode'
    svg = fleet_charts.bar_chart(title, groups, 'Seconds', y_unit='s', group_limits=budgets,
                                 group_limit_label='recovery budget', slug=slug)
    caption = ('Seconds from the injection to its detection and to the first good reply after the last failed '
               'request, against each mode\'s recovery budget (the marker). Detection budgets: %s. A mode never '
               'detected or never recovered is marked n/a.' % ', '.join(detection))
    return Chart(slug, title, svg, caption)


# ================================================================================ gates, figures, decision

def _gates_table(doc, run):
    if not run.gates:
        doc.missing('readiness gate records', 'no gate record in %s/' % GATES_DIR)
    for problem in run.gates_problems:
        doc.missing('a gate record', problem)
    # Markdown: fleet_gates' own table, links relative to reports/; reasons with < > & kept as text.
    safe = [dict(r, reasons=[html.escape(_text(x), quote=False) for x in _list(r.get('reasons'))],
                 evidence=_evidence_items(r)) for r in run.gates]
    markdown = fleet_gates.render_markdown(safe, base_dir=run.reports).replace('# Readiness gates',
                                                                             '### Readiness gates', 1)
    decided = fleet_gates.decide_gates(run.gates)
    by_gate = {r.get('gate'): r for r in run.gates}
    order = list(fleet_gates.GATES) + sorted(str(g) for g in by_gate if g not in fleet_gates.GATES)
    rows = []
    for gate in order:
        record = by_gate.get(gate)
        if record is None:
            rows.append('<tr><td>%s</td><td>%s</td><td>not decided: no record at %s/%s.json</td><td>none</td></tr>'
                        % (html.escape(gate), _h([_mark('FAIL')]), GATES_DIR, html.escape(gate)))
            continue
        reasons = '<br>'.join(html.escape(_text(r)) for r in _list(record.get('reasons'))) or '-'
        links = ['%s <code>%s</code>' % (_h([Link(os.path.basename(item['path']), run.evidence_link(item['path']))]),
                                         html.escape(item['sha256'][:12])) for item in _evidence_items(record)]
        rows.append('<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>' % (
            html.escape(_text(gate)), _h([_mark(_text(record.get('outcome')) or NA)]), reasons,
            '<br>'.join(links) or 'none'))
    table = ('<p>%s</p>\n<table><thead><tr><th>gate</th><th>outcome</th><th>reasons</th><th>evidence</th></tr></thead>'
             '<tbody>%s</tbody></table>' % (_h([_mark(decided['outcome']), ' ' + decided['summary']]), ''.join(rows)))
    doc.only(markdown=markdown, html_text=table)


def _evidence_items(record):
    """A gate record's evidence entries that name a file: [{path, sha256}] as text."""
    return [dict(path=_text(item['path']), sha256=_text(item.get('sha256')))
            for item in _list(record.get('evidence')) if isinstance(item, dict) and item.get('path')]


# The brief is one page: a reason longer than this (a ledger names every lost id) is cut, the master
# report has it whole.
BRIEF_REASON_CHARS = 240


def _short(text):
    if len(text) <= BRIEF_REASON_CHARS:
        return text
    return text[:BRIEF_REASON_CHARS].rsplit(' ', 1)[0] + ' ... (in full in the master report)'


def _gates_glance(doc, run):
    by_gate = {r.get('gate'): r for r in run.gates}
    rows = []
    for gate in fleet_gates.GATES:
        record = by_gate.get(gate)
        reasons = _list((record or {}).get('reasons'))
        first = (_short(_text(reasons[0])) + (' (and %d more)' % (len(reasons) - 1) if len(reasons) > 1 else '')
                 if reasons else '')
        rows.append([gate, _mark(_text(record.get('outcome')) if record else 'FAIL'),
                     first or ('-' if record else 'not decided (no record)')])
    doc.table(['gate', 'outcome', 'first reason'], rows)


def _key_figures(run):
    """[(label, value, note, status)]: status ok, bad or none (no data is never ok)."""
    figures = []
    decided = fleet_gates.decide_gates(run.gates)
    passed = len(fleet_gates.GATES) - len(decided['failed'])
    if run.gates:
        figures.append(('Readiness gates passed', '%d/%d' % (passed, len(fleet_gates.GATES)),
                        'failed: %s' % ', '.join(decided['failed']) if decided['failed'] else 'all eight pass',
                        'ok' if decided['outcome'] == fleet_gates.PASS else 'bad'))
    else:
        figures.append(('Readiness gates passed', NA, 'no gate record (%s/)' % GATES_DIR, 'none'))
    scenarios = _scenarios(run.results['load'], 'load')
    if scenarios:
        good = [n for n, r in scenarios if r.get('thresholds_passed') is True and not r.get('aborted')]
        figures.append(('Load scenarios within their thresholds', '%d/%d' % (len(good), len(scenarios)),
                        'failed: %s' % ', '.join(n for n, _ in scenarios if n not in good) if len(good) < len(scenarios)
                        else 'none aborted', 'ok' if len(good) == len(scenarios) else 'bad'))
        requests = [_number(r.get('requests')) for _, r in scenarios]
        errors = [_number(r.get('errors')) for _, r in scenarios]
        if None in requests or None in errors or not sum(requests):
            figures.append(('Load error rate', NA, 'requests or errors missing from a record', 'none'))
        else:
            figures.append(('Load error rate', '%s %%' % _figure(100.0 * sum(errors) / sum(requests)),
                            '%s errors in %s requests' % (_figure(sum(errors)), _figure(sum(requests))),
                            'ok' if _all_passed(scenarios, 'error_rate_pct') else 'bad'))
        worst = _worst(scenarios, 'p99')
        figures.append(('Worst p99 latency', _figure(worst[0], 'ms') if worst else NA,
                        ('in %s' % worst[1]) if worst else 'no latency recorded',
                        'ok' if worst and _all_passed(scenarios, 'latency_p99_ms') else 'bad' if worst else 'none'))
    else:
        figures.append(('Load scenarios', NA, 'no load results', 'none'))
    if run.ledgers:
        within = [m for m, r in run.ledgers.items() if _ledger_check(m, r)[0] == 'PASS']
        total = max(len(fleet_ledger.FAILURE_MODES), len(run.ledgers))
        figures.append(('Failure modes within budget', '%d/%d' % (len(within), total),
                        'not within: %s' % ', '.join(m for m in run.ledgers if m not in within) if len(within) <
                        len(run.ledgers) else ('%d mode(s) not run' % (total - len(run.ledgers)) if total > len(
                            run.ledgers) else 'nothing lost beyond budget'),
                        'ok' if len(within) == total else 'bad'))
        recoveries = [(_number(_get(r, 'timings', 'recovery_seconds')), m,
                       _number(_get(r, 'budget', 'max_recovery_seconds'))) for m, r in run.ledgers.items()]
        known = [item for item in recoveries if item[0] is not None]
        if known:
            seconds, mode, budget = max(known, key=lambda item: item[0])
            within = all(s is not None and b is not None and s <= b for s, _m, b in recoveries)
            figures.append(('Slowest recovery', _figure(seconds, 's'), '%s (budget %s)%s' % (
                mode, _figure(budget, 's'), '' if len(known) == len(recoveries) else
                '; not recovered: %s' % ', '.join(m for s, m, _b in recoveries if s is None)),
                'ok' if within else 'bad'))
        else:
            figures.append(('Slowest recovery', NA, 'no mode recovered', 'bad'))
    else:
        figures.append(('Failure modes', NA, 'no ledger', 'none'))
    files = _list(_get(run.index, 'files'))
    figures.append(('Evidence files indexed', _figure(len(files)) if run.index else NA,
                    '%s bytes, SHA-256 each' % _figure(sum(_number(f.get('size')) or 0 for f in files
                                                           if isinstance(f, dict))) if run.index
                    else 'no evidence index', 'ok' if files else 'none'))
    return figures


def _worst(scenarios, figure):
    values = [(_number(_get(r, 'latency_ms', figure)), n) for n, r in scenarios]
    values = [pair for pair in values if pair[0] is not None]
    return max(values) if values else None


def _all_passed(scenarios, metric):
    """Every threshold on metric passed (None when no scenario has one: no threshold is no pass)."""
    judged = [t.get('passed') is True for _, r in scenarios for t in _list(r.get('thresholds'))
              if isinstance(t, dict) and t.get('metric') == metric]
    return all(judged) if judged else None


def _success_metrics(doc, run):
    doc.heading(2, 'Success metrics', anchor='success-metrics')
    doc.para('What the readiness run measured against what it had to show. No data is never a pass.')
    scenarios = _scenarios(run.results['load'], 'load')
    rows = [[label, value, note, _mark({'ok': 'met', 'bad': 'NOT MET'}.get(status, 'no data'),
                                       {'ok': 'ok', 'bad': 'bad'}.get(status, 'none'))]
            for label, value, note, status in _key_figures(run)]
    for metric, figure, label in (('error_rate_pct', None, 'Error rate, worst scenario'),
                                  ('latency_p50_ms', 'p50', 'p50 latency, worst scenario'),
                                  ('latency_p95_ms', 'p95', 'p95 latency, worst scenario'),
                                  ('latency_p99_ms', 'p99', 'p99 latency, worst scenario')):
        if not scenarios:
            break
        if figure:
            worst = _worst(scenarios, figure)
        else:
            values = [(_number(r.get('error_rate_pct')), n) for n, r in scenarios]
            values = [pair for pair in values if pair[0] is not None]
            worst = max(values) if values else None
        limits = sorted({'%s %s' % (t.get('comparator'), _figure(t.get('threshold'))) for _, r in scenarios
                         for t in _list(r.get('thresholds')) if isinstance(t, dict) and t.get('metric') == metric
                         and not t.get('abort')})
        verdict = _all_passed(scenarios, metric)
        rows.append([label, '%s (%s)' % (_figure(worst[0], '%' if not figure else 'ms'), worst[1]) if worst else NA,
                     'thresholds: %s' % ', '.join(limits) if limits else 'no threshold on %s' % metric,
                     _mark('met' if verdict else 'NOT MET' if verdict is False else 'no data',
                           'ok' if verdict else 'bad' if verdict is False else 'none')])
    doc.table(['metric', 'measured', 'detail or target', 'met'], rows)
    predicate = run.predicate
    if run.statement is None:
        doc.missing('the success criteria and rollback triggers of the next step', run.certificate_problem)
        return
    for key, title in (('success_criteria', 'Success criteria of the next step'),
                       ('rollback_triggers', 'Rollback triggers of the next step')):
        doc.heading(3, title)
        lines = [_text(x) if not isinstance(x, (dict, list)) else json.dumps(x, sort_keys=True)
                 for x in _list(predicate.get(key))]
        if lines:
            doc.items(lines)
        else:
            doc.para('None stated in the certificate.')


_DECISION_KIND = {fleet_attest.GO: 'ok', fleet_attest.NO_GO: 'bad', fleet_attest.GO_WITH_CONSTRAINTS: 'warn'}


def _reasons(run):
    """(label, reasons) of a NO-GO: the certificate's own, else the failed gates' and the incomplete areas."""
    stated = [_text(r) for r in _list(run.predicate.get('reasons'))]
    if stated:
        return 'Reasons', stated
    by_gate = {r.get('gate'): r for r in run.gates}
    derived = ['gate %s %s: %s' % (gate, _text(_get(by_gate, gate, 'outcome')) or 'not decided',
                                   '; '.join(_text(x) for x in _list(_get(by_gate, gate, 'reasons'))) or 'no record')
               for gate in fleet_gates.decide_gates(run.gates)['failed']]
    areas = _mapping(_get(run.status, 'areas'))
    derived += ['area %s not complete (%s)' % (area, _get(areas, area, 'state'))
                for area in fleet_status.AREAS if fleet_status.PHASE_OF[area] == 1
                and _get(areas, area, 'state') not in (None, 'complete')]
    return 'Reasons (the certificate states none; from the failed gates and the incomplete areas)', derived


def _decision_block(doc, run, brief=False):
    decision = run.decision
    predicate = run.predicate
    if decision is None:
        decided = fleet_gates.decide_gates(run.gates)
        doc.decision('No decision issued', 'none', [
            'There is no authorization certificate: %s. ' % run.certificate_problem] + (
            ['The gates alone say ', _mark(decided['outcome']), ' (%s).' % decided['summary']] if run.gates
            else ['No gate has been decided either (no record in %s/).' % GATES_DIR]))
    else:
        doc.decision(decision, _DECISION_KIND.get(decision, 'none'), [
            'Signed by %s on %s; valid from %s until %s.' % (
                ', '.join(_text(a) for a in _list(predicate.get('approvers'))) or 'nobody named',
                predicate.get('issued_at') or NA, predicate.get('valid_from') or NA,
                predicate.get('valid_until') or NA),
            (' Next step: %s.' % predicate['next_step']) if predicate.get('next_step') else ''])
    constraints = [_text(c) if not isinstance(c, (dict, list)) else json.dumps(c, sort_keys=True)
                   for c in _list(predicate.get('constraints'))]
    if constraints:
        doc.para(Strong('Constraints:'))
        doc.items(constraints)
    if decision == fleet_attest.NO_GO or (
            decision is None and fleet_gates.decide_gates(run.gates)['outcome'] != fleet_gates.PASS):
        label, reasons = _reasons(run)
        if reasons:
            doc.para(Strong('%s:' % label))
            doc.items([_short(reason) for reason in reasons] if brief else reasons)


# ================================================================================ timeline, evidence, sign-off

def _timeline(run):
    """[(stamp, what parts, outcome)] in time order; entries without a time last, in the order found."""
    entries = []

    def add(stamp, what, outcome=''):
        entries.append((stamp, what, outcome))

    for wave, record in run.waves.items():
        target = os.path.relpath(record['_path'], run.reports).replace(os.sep, '/')
        add(record.get('started'), ['Wave %s started' % wave], '')
        add(record.get('decided'), ['Wave %s decided (' % wave, Link('decision', target), ')'],
            _mark(_text(record.get('outcome')) or NA))
    areas = _mapping(_get(run.status, 'areas'))
    for area in list(fleet_status.AREAS) + sorted(a for a in areas if a not in fleet_status.AREAS):
        entry = _mapping(areas.get(area))
        if entry.get('started'):
            add(entry['started'], ['Area %s started' % area], _text(entry.get('message')))
        if entry.get('finished'):
            add(entry['finished'], ['Area %s %s' % (area, entry.get('state'))],
                _text(entry.get('outcome')) or _text(entry.get('message')))
    for area in RESULTS:
        for name, record in _scenarios(run.results[area], area):
            add(record.get('started'), ['%s scenario %s started' % (area.capitalize(), name)], '')
            add(record.get('ended'), ['%s scenario %s ended' % (area.capitalize(), name)],
                'aborted' if record.get('aborted') else 'thresholds %s' % (
                    'passed' if record.get('thresholds_passed') else 'FAILED'))
    for mode, record in run.ledgers.items():
        window = _mapping(record.get('window'))
        add(window.get('injected_at'), ['Failure %s injected' % mode], '')
        add(window.get('detected_at'), ['Failure %s detected' % mode], '')
        add(window.get('recovered_at'), ['Failure %s recovered' % mode], _mark(_text(record.get('verdict')) or NA))
    if run.index:
        add(run.index.get('generated_at'), ['Evidence indexed (%d files)' % len(_list(run.index.get('files')))], '')
    predicate = run.predicate
    if run.statement is not None:
        add(predicate.get('issued_at'), ['Certificate issued'], _mark(run.decision or NA))
        add(predicate.get('valid_until'), ['Certificate expires'], '')
    order = []
    for number, (stamp, what, outcome) in enumerate(entries):
        if stamp is None:
            continue
        epoch = _epoch(stamp)
        order.append(((epoch is None, epoch or 0.0, number), utc(epoch) if epoch is not None else _text(stamp),
                      what, outcome))
    return [row[1:] for row in sorted(order, key=lambda row: row[0])]


def _timeline_section(doc, run, ids):
    doc.heading(2, 'Deployment timeline', anchor='deployment-timeline')
    if run.status is None:
        doc.missing('the areas\' start and finish times', run.status_problem)
    rows = _timeline(run)
    if not rows:
        doc.missing('any recorded time', 'status.json, the results, the ledgers, the certificate')
        return
    durations = []
    areas = _mapping(_get(run.status, 'areas'))
    for area in fleet_status.AREAS:
        seconds = _seconds_between(_get(areas, area, 'started'), _get(areas, area, 'finished'))
        if seconds is not None:
            durations.append((area, seconds))
    if durations:
        longest = max(s for _, s in durations)
        factor, unit = (3600.0, 'h') if longest >= 7200 else (60.0, 'min') if longest >= 120 else (1.0, 's')
        slug = ids('timeline durations')
        title = 'How long each area of the run took'
        svg = fleet_charts.bar_chart(title, [(a, {'duration': s / factor}) for a, s in durations], 'Duration',
                                     y_unit=unit, slug=slug)
        doc.chart(Chart(slug, title, svg, 'From each area\'s start to its finish (status.json); areas not finished '
                                          'are not drawn.'))
    doc.table(['when (UTC)', 'what', 'outcome'], [[stamp, what, outcome or '-'] for stamp, what, outcome in rows])


def _evidence_section(doc, run):
    doc.heading(2, 'Evidence index', anchor='evidence-index')
    if run.index is None:
        doc.missing('the evidence index', run.index_problem)
        return
    files = [f for f in _list(run.index.get('files')) if isinstance(f, dict)]
    doc.para('%d file(s), %s bytes, listed with their SHA-256 in ' % (
        len(files), _figure(sum(_number(f.get('size')) or 0 for f in files))),
        Link(run.index_path, run.link(run.index_path)), ' (written %s). The certificate names each of them by its '
        'digest; the index is not re-checked here.' % (run.index.get('generated_at') or NA))
    doc.table(['file', 'size (bytes)', 'SHA-256'], [
        [Link(_text(f.get('path')), run.link('%s/%s' % (EVIDENCE_DIR, f.get('path')))), _figure(f.get('size')),
         Code(_text(f.get('sha256')))] for f in files])


def _signatures(run):
    """[(keyid, whose)] of the envelope's signatures, named from trusted-keys.json when it has the key."""
    names = {}
    if run.trusted is not None:
        try:
            names = {kid: name for kid, (name, _key) in fleet_attest.trusted_keys(run.trusted).items()}
        except fleet_attest.AttestError:
            names = {}
    out = []
    for signature in _list(run.envelope.get('signatures')) if run.envelope else ():
        kid = _text(_get(signature, 'keyid')) or NA
        whose = ('the key of %s in %s' % (names[kid], TRUSTED_KEYS) if kid in names
                 else 'not in %s' % TRUSTED_KEYS if run.trusted is not None else 'no %s to name it' % TRUSTED_KEYS)
        out.append((kid, whose))
    return out


def _signed_by(approvers, signatures):
    """[(approver, keyid, whose)]: each approver with the signature trusted-keys.json names theirs, else the
    signature in the same place (sign() writes them in the approvers' order); extra signatures last."""
    rows, left = [], list(signatures)
    for number, name in enumerate(approvers):
        named = [s for s in left if s[1] == 'the key of %s in %s' % (name, TRUSTED_KEYS)]
        pick = named[0] if named else (signatures[number] if number < len(signatures) and signatures[number] in left
                                       else None)
        if pick is not None:
            left.remove(pick)
        rows.append((name, pick[0] if pick else None, pick[1] if pick else '-'))
    return rows + [('(a signature of no approver named)', kid, whose) for kid, whose in left]


def _verify_command(run):
    keys = os.path.join(run.dir, TRUSTED_KEYS) if run.trusted is not None else '<trusted keys file>'
    return '%s %s --trusted-keys %s --base-dir %s' % (VERIFY_SCRIPT, os.path.join(run.dir, CERTIFICATE), keys,
                                                       os.path.join(run.dir, EVIDENCE_DIR))


def _sign_off(doc, run, brief=False):
    if not brief:
        doc.page_break()
        doc.heading(2, 'Sign-off', anchor='sign-off')
    else:
        doc.heading(2, 'Who signed', anchor='who-signed')
    if run.statement is None:
        doc.missing('the signed authorization certificate', run.certificate_problem)
        return
    predicate = run.predicate
    signatures = _signatures(run)
    if not brief:
        doc.decision(run.decision or NA, _DECISION_KIND.get(run.decision, 'none'),
                     'Readiness run %s: the decision over the certified fleet state%s.' % (
                         run.run, ', for %s' % predicate['next_step'] if predicate.get('next_step') else ''))
    approvers = [_text(a) for a in _list(predicate.get('approvers'))]
    doc.table(['approver', 'signature key id (Ed25519: SHA-256 of the public key)', 'whose key'],
              [[name, Code(kid) if kid else 'no signature', whose] for name, kid, whose in _signed_by(approvers,
                                                                                                   signatures)])
    doc.table(['issued', 'valid from', 'valid until'], [[predicate.get('issued_at') or NA,
                                                         predicate.get('valid_from') or NA,
                                                         predicate.get('valid_until') or NA]])
    if not brief:
        trails = ['%s head %s (%s lines)' % (_get(a, 'path'), _get(a, 'anchor'), _get(a, 'lines'))
                  for a in _list(predicate.get('audit'))]
        doc.para('Subjects: %d (the evidence index and every file it lists, by SHA-256); audit trails: %s.' % (
            len(_list(run.statement.get('subject'))), '; '.join(trails) or 'none'))
        fleet_state = predicate.get('fleet_state')
        if fleet_state is not None:
            doc.pre('The certified fleet state', json.dumps(fleet_state, indent=2, sort_keys=True, default=str))
    doc.para(Strong('This report does not verify the certificate.'), ' Verify it offline, with the approvers\' '
             'public keys from a source you trust (the run wrote those it used to %s):' % TRUSTED_KEYS)
    doc.para(Code(_verify_command(run)))


# ================================================================================ the pages

def _master(run, ids):
    doc = _Doc('Readiness run %s: master report' % run.run)
    doc.heading(2, 'Executive summary', anchor='executive-summary')
    _decision_block(doc, run)
    doc.figures(_key_figures(run))
    doc.para('The one-page ', Link('stakeholder brief', BRIEF_HTML), ' holds the same decision and figures.')
    doc.heading(2, 'Readiness gates', anchor='readiness-gates')
    _gates_table(doc, run)
    _success_metrics(doc, run)
    for area in RESULTS:
        _results_section(doc, run, ids, area)
    _failure_modes_section(doc, run, ids)
    _timeline_section(doc, run, ids)
    _evidence_section(doc, run)
    _sign_off(doc, run)
    return doc


def _brief(run, master):
    doc = _Doc('Readiness run %s: stakeholder brief' % run.run)
    doc.heading(2, 'Decision', anchor='decision')
    _decision_block(doc, run, brief=True)
    doc.heading(2, 'Key figures', anchor='key-figures')
    doc.figures(_key_figures(run))
    doc.heading(2, 'Gates at a glance', anchor='gates-at-a-glance')
    _gates_glance(doc, run)
    charts = {chart.id: chart for chart in master.charts}
    shown = [charts[i] for i in ('load-rate', 'failure-modes-recovery') if i in charts]
    if shown:
        doc.heading(2, 'Load and recovery', anchor='load-and-recovery')
        for chart in shown:
            doc.chart(chart)
    else:
        doc.missing('the load and failure-mode charts', 'no load results and no ledger in this run')
    _sign_off(doc, run, brief=True)
    doc.para('Details, evidence and every chart: the ', Link('master report', REPORT_HTML), '.')
    return doc


def render_reports(run_dir, now=None, waves_dir=None):
    """Render the readiness run's reports into <run_dir>/reports/ (module docstring); returns the paths
    written, relative to run_dir. waves_dir: the checkpoints folder of the waves (default: the
    artifacts' checkpoints/ when run_dir is <artifacts>/readiness/<run>)."""
    run = _Run(run_dir, waves_dir)
    master = _master(run, _Ids())
    brief = _brief(run, master)
    generated = ['Generated %s from the run folder ' % _moment(now), Code(run.dir), '.']
    written = []

    def write(rel, text):
        run.store.write_text(rel, text)
        written.append(rel)

    charts_rel = os.path.join(REPORTS_DIR, CHARTS_DIR)
    for chart in master.charts:
        write(os.path.join(charts_rel, '%s.svg' % chart.id), chart.svg)
    write(os.path.join(REPORTS_DIR, REPORT_MD), render_markdown(master, generated))
    write(os.path.join(REPORTS_DIR, REPORT_HTML), render_html(master, generated))
    write(os.path.join(REPORTS_DIR, BRIEF_MD), render_markdown(brief, generated))
    write(os.path.join(REPORTS_DIR, BRIEF_HTML), render_html(brief, generated, brief=True))
    folder = run.store.path(charts_rel)
    kept = {os.path.basename(rel) for rel in written}
    for name in sorted(os.listdir(folder)) if os.path.isdir(folder) else ():
        if name.endswith('.svg') and name not in kept:  # a chart of an earlier rendering
            os.unlink(os.path.join(folder, name))
    return written
