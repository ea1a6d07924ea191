# -*- coding: utf-8 -*-
"""Where the production-readiness run (issue 10, point 4 "Status") stands, for a person watching it.

One status record per readiness run, ``status.json`` in the run's folder (``artifacts/readiness/<run>/``,
``Layout.readiness_run``), with two pages rendered from it beside it: ``status.html`` (self-contained,
refreshes itself until the run is complete) and ``status.md`` (a table). ``update`` reads the record,
changes one area and rewrites the record and both pages under a lock (``<run>/status.json.lock``,
``fcntl.flock``), each file written atomically through ``ArtifactStore``: two processes updating at
once lose nothing, and a killed writer leaves the previous file whole (at worst a stale hidden temp
file). Completion markers (``Layout.area_marker``, ``Layout.phase_marker``, and ``complete`` at the
top for the run) are written when the record first says so and never removed nor rewritten.
Pure Python, standard library and this collection only.

Record (``format``: ``fleetwave.readiness-status/1``)
====================================================
``run`` (the folder's name), ``revision`` (one more per update), ``updated`` (utc()), ``state`` and
``complete`` of the run, ``phases`` (list: ``phase``, ``name``, ``areas``, ``state``, ``complete``,
``areas_complete``), and ``areas``, keyed by area name, each::

    {"phase": 1, "state": "pending|running|complete|failed", "started": utc | None,
     "finished": utc | None, "progress": 0..1 | None, "done": int | None, "total": int | None,
     "message": "one line", "outcome": str | None, "updated": utc | None,
     "links": {"folder": "load/", <name>: <relative path>, ...}}

A phase or the run is ``complete`` when all its areas are, ``failed`` when one has failed (a failed
area may be run again), ``running`` once one has started, else ``pending``.
"""

from __future__ import annotations

import html
import math
import os
import posixpath
import re
import urllib.parse

from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import ArtifactStore, Layout, utc

FORMAT = 'fleetwave.readiness-status/1'
# The phases of the readiness run (issue 10), in order, with their areas in order.
PHASES = (
    (1, 'readiness', ('rollback-rehearsal', 'load', 'stress', 'failure-modes', 'runbooks', 'gates', 'evidence')),
    (2, 'authorization', ('authorization',)),
    (3, 'reports', ('reports',)),
)
AREAS = tuple(area for _n, _name, areas in PHASES for area in areas)
PHASE_OF = {area: number for number, _name, areas in PHASES for area in areas}
STATES = ('pending', 'running', 'complete', 'failed')
# The states an area may go to from each state: complete is final; a failed area may be run again.
TRANSITIONS = {
    'pending': ('pending', 'running', 'complete', 'failed'),
    'running': ('running', 'complete', 'failed'),
    'failed': ('failed', 'running'),
    'complete': ('complete',),
}
CHANGES = ('state', 'progress', 'done', 'total', 'message', 'outcome', 'links')
MESSAGE_MAX = 200
REFRESH_SECONDS = 5
# Text first (readable without colour, and by a screen reader), colour second.
STATE_LABELS = {'pending': 'PENDING', 'running': 'RUNNING', 'complete': 'COMPLETE \u2713', 'failed': 'FAILED \u2717'}
STATE_COLOURS = {'pending': '#6b6b6b', 'running': '#1f5fbf', 'complete': '#1e7b34', 'failed': '#b3261e'}


def _where(run_dir, area):
    return 'fleet_status (%s, area %r)' % (run_dir, area)


def _check_area(where, area):
    if area not in PHASE_OF:
        raise ValueError('%s: area %r is not an area of the readiness run (allowed: %s)' % (where, area, ', '.join(AREAS)))


def _new_area(area):
    return {'phase': PHASE_OF[area], 'state': 'pending', 'started': None, 'finished': None, 'progress': None,
            'done': None, 'total': None, 'message': '', 'outcome': None, 'updated': None,
            'links': {'folder': area + '/'}}


def new_record(run):
    """The record of a readiness run nothing has started yet."""
    return derive({'format': FORMAT, 'run': run, 'revision': 0, 'updated': None,
                   'areas': {area: _new_area(area) for area in AREAS}})


def _group_state(states):
    if all(state == 'complete' for state in states):
        return 'complete'
    if 'failed' in states:
        return 'failed'
    if any(state != 'pending' for state in states):
        return 'running'
    return 'pending'


def derive(record):
    """record with the phases' and the run's state and completion recomputed from its areas."""
    phases = []
    for number, name, areas in PHASES:
        states = [record['areas'][area]['state'] for area in areas]
        state = _group_state(states)
        phases.append({'phase': number, 'name': name, 'areas': list(areas), 'state': state,
                       'complete': state == 'complete', 'areas_complete': states.count('complete')})
    record['phases'] = phases
    record['state'] = _group_state([phase['state'] for phase in phases])
    record['complete'] = record['state'] == 'complete'
    return record


def _one_line(where, var, value):
    if not isinstance(value, str):
        raise ValueError('%s: %s must be a string, not %r' % (where, var, value))
    line = ' '.join(value.split())
    return line if len(line) <= MESSAGE_MAX else line[:MESSAGE_MAX - 1] + '\u2026'


def _count(where, var, value):
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError('%s: %s must be a whole number >= 0, not %r' % (where, var, value))
    return value


def _fraction(where, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= 1:
        raise ValueError('%s: progress must be a finite number from 0 to 1 (a fraction), not %r' % (where, value))
    return float(value)


def _link(where, name, path):
    """A relative path inside the run's folder: no scheme, no absolute path, no '..'."""
    if not isinstance(name, str) or not name.strip() or not isinstance(path, str) or not path:
        raise ValueError('%s: links: %r: %r must be a name and a relative path' % (where, name, path))
    parts = urllib.parse.urlsplit(path)
    if parts.scheme or parts.netloc or path.startswith(('/', '\\')) or '..' in posixpath.normpath(path).split('/') \
            or '\\' in path:
        raise ValueError('%s: links: %r: %r is not a relative path inside the run folder (allowed: e.g. '
                         '"load/results.json", no scheme, no leading /, no ..)' % (where, name, path))
    return path


def apply(record, area, changes, where='fleet_status', now=None):
    """Apply changes (see CHANGES) to area of record, in place; ValueError naming what is refused."""
    _check_area(where, area)
    unknown = sorted(set(changes) - set(CHANGES))
    if unknown:
        raise ValueError('%s: unknown change(s) %s (allowed: %s)' % (where, ', '.join(unknown), ', '.join(CHANGES)))
    entry = record['areas'][area]
    stamp = now or utc()
    if 'state' in changes:
        state = changes['state']
        if state not in STATES:
            raise ValueError('%s: state %r is not a state (allowed: %s)' % (where, state, ', '.join(STATES)))
        if state not in TRANSITIONS[entry['state']]:
            raise ValueError('%s: state cannot go from %s to %s (allowed from %s: %s)' % (
                where, entry['state'], state, entry['state'], ', '.join(TRANSITIONS[entry['state']])))
        if state == 'running' and entry['state'] != 'running':
            entry['started'] = entry['started'] or stamp
            entry['finished'] = None
        if state in ('complete', 'failed') and entry['state'] != state:
            entry['started'] = entry['started'] or stamp
            entry['finished'] = stamp
        entry['state'] = state
    done = _count(where, 'done', changes['done']) if changes.get('done') is not None else entry['done']
    total = _count(where, 'total', changes['total']) if changes.get('total') is not None else entry['total']
    if done is not None and total is not None and done > total:
        raise ValueError('%s: done (%d) is more than total (%d)' % (where, done, total))
    entry['done'], entry['total'] = done, total
    if changes.get('progress') is not None:
        entry['progress'] = _fraction(where, changes['progress'])
    elif ('done' in changes or 'total' in changes) and done is not None and total:
        entry['progress'] = done / total
    if entry['state'] == 'complete':
        entry['progress'] = 1.0
    if 'message' in changes:
        entry['message'] = _one_line(where, 'message', changes['message'])
    if 'outcome' in changes:
        entry['outcome'] = None if changes['outcome'] is None else _one_line(where, 'outcome', changes['outcome'])
    if 'links' in changes:
        links = changes['links']
        if not isinstance(links, dict):
            raise ValueError('%s: links must be a mapping of name to relative path, not %r' % (where, links))
        entry['links'] = dict(entry['links'], **{name: _link(where, name, path) for name, path in links.items()})
    entry['updated'] = stamp
    record['updated'] = stamp
    record['revision'] = record.get('revision', 0) + 1
    return derive(record)


def _markers(record):
    """The markers (relative paths) the record calls for, with what each holds."""
    wanted = []
    for area in AREAS:
        entry = record['areas'][area]
        if entry['state'] == 'complete':
            wanted.append((Layout.area_marker(area), {'area': area, 'outcome': entry['outcome'],
                                                      'finished': entry['finished']}))
    for phase in record['phases']:
        if phase['complete']:
            wanted.append((Layout.phase_marker(phase['phase']), {'phase': phase['phase'], 'name': phase['name'],
                                                                 'finished': record['updated']}))
    if record['complete']:
        wanted.append((Layout.COMPLETE_MARKER, {'run': record['run'], 'finished': record['updated']}))
    return wanted


def read(run_dir):
    """The run's status record (a new one when there is none yet)."""
    record = ArtifactStore(run_dir).read_json(Layout.STATUS_RECORD)
    if record is None:
        return new_record(os.path.basename(os.path.normpath(run_dir)))
    if not isinstance(record, dict) or record.get('format') != FORMAT or set(record.get('areas', ())) != set(AREAS):
        raise ValueError('%s: not a readiness status record of format %s' % (
            os.path.join(run_dir, Layout.STATUS_RECORD), FORMAT))
    return record


def update(run_dir, area, **changes):
    """Change one area of the run's status (state, progress, done, total, message, outcome, links),
    rewrite the record, the markers it calls for and both pages; returns the record."""
    where = _where(run_dir, area)
    _check_area(where, area)
    store = ArtifactStore(run_dir)
    with store.locked(Layout.STATUS_RECORD):
        record = apply(read(run_dir), area, changes, where)
        store.write_json(Layout.STATUS_RECORD, record)
        for relpath, content in _markers(record):
            if not os.path.exists(store.path(relpath)):
                store.write_json(relpath, content)
        store.write_text(Layout.STATUS_HTML, render_html(record))
        store.write_text(Layout.STATUS_MARKDOWN, render_markdown(record))
    return record


def check(run_dir, area, **changes):
    """The record update() would write, without writing anything (check mode); ValueError as update."""
    return apply(read(run_dir), area, changes, _where(run_dir, area))


def mark_complete(run_dir, area, outcome):
    """The area is complete with outcome: its `complete` marker, and the phase's and the run's once
    every area of them is complete. Never removes a marker."""
    return update(run_dir, area, state='complete', outcome=outcome)


def _progress_text(entry):
    parts = []
    if entry['done'] is not None:
        parts.append('%d/%s' % (entry['done'], entry['total'] if entry['total'] is not None else '?'))
    if entry['progress'] is not None:
        parts.append('%d%%' % round(entry['progress'] * 100))
    return ' '.join(parts) or '\u2013'


def _time_text(entry):
    return '%s \u2192 %s' % (entry['started'] or '\u2013', entry['finished'] or '\u2013')


_STYLE = '''body{font-family:sans-serif;margin:1.5em;color:#1a1a1a}
table{border-collapse:collapse;margin-bottom:1.5em}th,td{border:1px solid #bbb;padding:.3em .6em;text-align:left}
.state{font-weight:bold;color:#fff;padding:.1em .4em;border-radius:3px;white-space:nowrap}
''' + ''.join('.s-%s{background:%s}' % (state, colour) for state, colour in STATE_COLOURS.items())


def _state_html(state):
    return '<span class="state s-%s">%s</span>' % (html.escape(state), html.escape(STATE_LABELS.get(state, state)))


def render_html(record, refresh=REFRESH_SECONDS):
    """A self-contained page (no script, no external URL); it reloads itself every `refresh` seconds
    while the run is not complete, and no longer once it is."""
    esc = html.escape
    head = ['<!DOCTYPE html>', '<html lang="en">', '<head>', '<meta charset="utf-8">']
    if not record['complete']:
        head.append('<meta http-equiv="refresh" content="%d">' % int(refresh))
    head += ['<title>Readiness run %s: %s</title>' % (esc(record['run']), esc(record['state'])),
             '<style>%s</style>' % _STYLE, '</head>', '<body>']
    body = ['<h1>Readiness run %s %s</h1>' % (esc(record['run']), _state_html(record['state'])),
            '<p>Updated %s, revision %d. %s</p>' % (
                esc(record['updated'] or 'never'), record['revision'],
                'The run is complete; this page no longer refreshes.' if record['complete']
                else 'This page refreshes every %d s.' % int(refresh)),
            '<h2>Phases</h2>', '<table>', '<tr><th>Phase</th><th>State</th><th>Areas complete</th></tr>']
    for phase in record['phases']:
        body.append('<tr><td>%d. %s</td><td>%s</td><td>%d/%d</td></tr>' % (
            phase['phase'], esc(phase['name']), _state_html(phase['state']), phase['areas_complete'],
            len(phase['areas'])))
    body += ['</table>', '<h2>Areas</h2>', '<table>',
             '<tr><th>Phase</th><th>Area</th><th>State</th><th>Progress</th><th>Message</th><th>Outcome</th>'
             '<th>Started \u2192 finished</th><th>Links</th></tr>']
    for area in AREAS:
        entry = record['areas'][area]
        links = ' '.join('<a href="%s">%s</a>' % (esc(path, quote=True), esc(name))
                         for name, path in sorted(entry['links'].items()))
        progress = esc(_progress_text(entry))
        if entry['progress'] is not None:
            progress = '<progress max="1" value="%.3f">%s</progress> %s' % (entry['progress'], progress, progress)
        body.append('<tr><td>%d</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>'
                    % (entry['phase'], esc(area), _state_html(entry['state']), progress, esc(entry['message']),
                       esc(entry['outcome'] or '\u2013'), esc(_time_text(entry)), links))
    body += ['</table>', '</body>', '</html>', '']
    return '\n'.join(head + body)


def _md_cell(text):
    """Text safe in a Markdown table cell: no newline, '|' and markup characters escaped."""
    return re.sub(r'([\\|`*_\[\]<>#])', r'\\\1', ' '.join(str(text).split()))


def render_markdown(record):
    """The same status as a Markdown table per phase and per area."""
    lines = ['# Readiness run %s: %s' % (_md_cell(record['run']), STATE_LABELS[record['state']]), '',
             'Updated %s, revision %d.' % (_md_cell(record['updated'] or 'never'), record['revision']), '',
             '| Phase | State | Areas complete |', '| --- | --- | --- |']
    for phase in record['phases']:
        lines.append('| %d. %s | %s | %d/%d |' % (phase['phase'], _md_cell(phase['name']), STATE_LABELS[phase['state']],
                                                 phase['areas_complete'], len(phase['areas'])))
    lines += ['', '| Phase | Area | State | Progress | Message | Outcome | Started \u2192 finished | Links |',
              '| --- | --- | --- | --- | --- | --- | --- | --- |']
    for area in AREAS:
        entry = record['areas'][area]
        links = ' '.join('[%s](%s)' % (_md_cell(name), urllib.parse.quote(path, safe='/._-+'))
                         for name, path in sorted(entry['links'].items()))
        lines.append('| %d | %s | %s | %s | %s | %s | %s | %s |' % (
            entry['phase'], _md_cell(area), STATE_LABELS[entry['state']], _md_cell(_progress_text(entry)),
            _md_cell(entry['message']), _md_cell(entry['outcome'] or '\u2013'), _md_cell(_time_text(entry)), links))
    return '\n'.join(lines) + '\n'
