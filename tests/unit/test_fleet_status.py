"""plugins/plugin_utils/fleet_status.py: the readiness run's status record changes area by area with
the allowed transitions only, its markers appear exactly when an area, a phase or the run completes
and are never removed, the HTML page refreshes itself until the run is complete and escapes
everything, and two processes updating at once or a killed writer lose or corrupt nothing."""

from __future__ import annotations

import html.parser
import json
import multiprocessing
import os
import re
import signal

import pytest
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_status
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import Layout

pytestmark = pytest.mark.unit

PHASE1 = ('rollback-rehearsal', 'load', 'stress', 'failure-modes', 'runbooks', 'gates', 'evidence')


@pytest.fixture
def run_dir(tmp_path):
    return str(tmp_path / 'artifacts' / Layout.readiness_run('r1'))


def record_of(run_dir):
    with open(os.path.join(run_dir, 'status.json'), encoding='utf-8') as handle:
        return json.load(handle)


def markers(run_dir):
    found = set()
    for folder, _dirs, names in os.walk(run_dir):
        found.update(os.path.relpath(os.path.join(folder, n), run_dir) for n in names if n.startswith('complete'))
    return found


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text, self.refresh = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == 'meta' and (attrs.get('http-equiv') or '').lower() == 'refresh':
            self.refresh.append(attrs.get('content'))

    def handle_data(self, data):
        self.text.append(data)


def parse(text):
    page = Page()
    page.feed(text)
    page.close()
    return page


def page_of(run_dir):
    with open(os.path.join(run_dir, 'status.html'), encoding='utf-8') as handle:
        return parse(handle.read())


# --- record and transitions ----------------------------------------------------------------------

def test_layout_places_the_run_folder_and_markers():
    assert Layout.readiness_run('r1') == os.path.join('readiness', 'r1')
    assert Layout.area_marker('load') == os.path.join('load', 'complete')
    assert Layout.phase_marker(2) == 'complete-phase-2'
    with pytest.raises(Exception, match='readiness run'):
        Layout.readiness_run('../x')


def test_first_update_creates_record_and_pages_with_every_area_pending(run_dir):
    record = fleet_status.update(run_dir, 'load', state='running', message='warming up')
    assert record_of(run_dir) == record
    assert record['format'] == fleet_status.FORMAT and record['run'] == 'r1' and record['revision'] == 1
    assert list(record['areas']) == list(PHASE1) + ['authorization', 'reports']
    load = record['areas']['load']
    assert load['state'] == 'running' and load['started'] and load['finished'] is None
    assert load['message'] == 'warming up' and load['links'] == {'folder': 'load/'}
    assert all(record['areas'][a]['state'] == 'pending' for a in PHASE1 if a != 'load')
    assert [p['state'] for p in record['phases']] == ['running', 'pending', 'pending']
    assert record['state'] == 'running' and record['complete'] is False
    assert os.path.isfile(os.path.join(run_dir, 'status.md'))


def test_progress_from_counter_and_fraction_and_one_line_message(run_dir):
    fleet_status.update(run_dir, 'stress', state='running', done=3, total=12, message='step\n3  of 12')
    entry = record_of(run_dir)['areas']['stress']
    assert (entry['done'], entry['total'], entry['progress']) == (3, 12, 0.25)
    assert entry['message'] == 'step 3 of 12'
    fleet_status.update(run_dir, 'stress', progress=0.5)
    assert record_of(run_dir)['areas']['stress']['progress'] == 0.5
    fleet_status.update(run_dir, 'stress', done=6)
    assert record_of(run_dir)['areas']['stress']['progress'] == 0.5
    record = fleet_status.mark_complete(run_dir, 'stress', 'pass')
    entry = record['areas']['stress']
    assert entry['state'] == 'complete' and entry['outcome'] == 'pass' and entry['progress'] == 1.0
    assert entry['finished'] >= entry['started']


def test_failed_area_may_run_again_and_keeps_its_start(run_dir):
    first = fleet_status.update(run_dir, 'gates', state='running')['areas']['gates']['started']
    record = fleet_status.update(run_dir, 'gates', state='failed', outcome='NO-GO')
    assert record['areas']['gates']['finished'] and record['phases'][0]['state'] == 'failed'
    assert record['state'] == 'failed'
    record = fleet_status.update(run_dir, 'gates', state='running')
    assert record['areas']['gates']['started'] == first and record['areas']['gates']['finished'] is None


@pytest.mark.parametrize('area, changes, expected', [
    ('nope', {'state': 'running'}, r"area 'nope' is not an area.*allowed: rollback-rehearsal, load, stress, failure-modes"),
    ('load', {'state': 'done'}, r"area 'load'.*state 'done' is not a state \(allowed: pending, running, complete, failed\)"),
    ('load', {'colour': 'red'}, r"unknown change\(s\) colour \(allowed: state, progress"),
    ('load', {'progress': float('nan')}, r"area 'load'.*progress must be a finite number from 0 to 1.*nan"),
    ('load', {'progress': float('inf')}, r"progress must be a finite number.*inf"),
    ('load', {'progress': 1.5}, r"progress must be .* from 0 to 1"),
    ('load', {'progress': True}, r"progress must be"),
    ('load', {'done': -1}, r"done must be a whole number >= 0"),
    ('load', {'done': 5, 'total': 4}, r"done \(5\) is more than total \(4\)"),
    ('load', {'links': {'x': 'https://example.com/'}}, r"links: 'x'.*not a relative path"),
    ('load', {'links': {'x': '/etc/passwd'}}, r"not a relative path"),
    ('load', {'links': {'x': 'load/../../secret'}}, r"not a relative path"),
    ('load', {'message': 3}, r"message must be a string"),
])
def test_bad_input_is_refused_naming_what_where_and_allowed(run_dir, area, changes, expected):
    with pytest.raises(ValueError, match=expected):
        fleet_status.update(run_dir, area, **changes)
    assert not os.path.exists(os.path.join(run_dir, 'status.json'))


def test_complete_area_cannot_go_back(run_dir):
    fleet_status.mark_complete(run_dir, 'load', 'pass')
    for state in ('running', 'pending', 'failed'):
        with pytest.raises(ValueError, match=r"area 'load'.*cannot go from complete to %s \(allowed from complete: "
                                             r"complete\)" % state):
            fleet_status.update(run_dir, 'load', state=state)
    fleet_status.update(run_dir, 'stress', state='running')
    with pytest.raises(ValueError, match='cannot go from running to pending'):
        fleet_status.update(run_dir, 'stress', state='pending')
    assert record_of(run_dir)['areas']['load']['state'] == 'complete'


# --- markers -------------------------------------------------------------------------------------

def test_markers_appear_exactly_when_areas_phases_and_run_complete(run_dir):
    fleet_status.update(run_dir, 'load', state='running')
    assert markers(run_dir) == set()
    fleet_status.update(run_dir, 'load', state='failed')
    assert markers(run_dir) == set()
    fleet_status.update(run_dir, 'load', state='running')
    fleet_status.mark_complete(run_dir, 'load', 'pass')
    assert markers(run_dir) == {'load/complete'}
    with open(os.path.join(run_dir, 'load', 'complete'), encoding='utf-8') as handle:
        assert json.load(handle)['outcome'] == 'pass'
    for area in PHASE1:
        if area not in ('load', 'runbooks'):
            fleet_status.mark_complete(run_dir, area, 'pass')
    assert 'complete-phase-1' not in markers(run_dir)
    fleet_status.update(run_dir, 'authorization', state='running')
    fleet_status.mark_complete(run_dir, 'runbooks', 'pass')
    expected = {'%s/complete' % a for a in PHASE1} | {'complete-phase-1'}
    assert markers(run_dir) == expected
    record = fleet_status.mark_complete(run_dir, 'authorization', 'signed')
    expected |= {'authorization/complete', 'complete-phase-2'}
    assert markers(run_dir) == expected and not record['complete']
    assert record['phases'][0]['complete'] and record['phases'][1]['complete'] and not record['phases'][2]['complete']
    record = fleet_status.mark_complete(run_dir, 'reports', 'rendered')
    assert markers(run_dir) == expected | {'reports/complete', 'complete-phase-3', 'complete'}
    assert record['complete'] and record['state'] == 'complete'


def test_marker_is_never_removed_nor_rewritten(run_dir):
    fleet_status.mark_complete(run_dir, 'load', 'pass')
    marker = os.path.join(run_dir, 'load', 'complete')
    with open(marker, encoding='utf-8') as handle:
        before = handle.read()
    fleet_status.mark_complete(run_dir, 'load', 'pass again')
    fleet_status.update(run_dir, 'load', message='still here')
    with pytest.raises(ValueError):
        fleet_status.update(run_dir, 'load', state='running')
    with open(marker, encoding='utf-8') as handle:
        assert handle.read() == before


# --- pages ---------------------------------------------------------------------------------------

def test_html_refreshes_until_the_run_is_complete_then_stops(run_dir):
    fleet_status.update(run_dir, 'load', state='running')
    assert page_of(run_dir).refresh == [str(fleet_status.REFRESH_SECONDS)]
    for area in fleet_status.AREAS[:-1]:
        fleet_status.mark_complete(run_dir, area, 'pass')
    assert page_of(run_dir).refresh == ['5']
    fleet_status.mark_complete(run_dir, 'reports', 'pass')
    page = page_of(run_dir)
    assert page.refresh == []
    assert 'no longer refreshes' in ''.join(page.text)


def test_html_is_self_contained_and_states_are_text_not_only_colour(run_dir):
    fleet_status.update(run_dir, 'load', state='running', done=1, total=4, links={'results': 'load/results.json'})
    fleet_status.update(run_dir, 'stress', state='failed')
    fleet_status.mark_complete(run_dir, 'gates', 'GO')
    with open(os.path.join(run_dir, 'status.html'), encoding='utf-8') as handle:
        text = handle.read()
    page = parse(text)
    assert not any(tag == 'script' for tag, _a in page.tags)
    assert 'http://' not in text and 'https://' not in text and '//' not in text.replace('<!DOCTYPE', '')
    hrefs = [a['href'] for tag, a in page.tags if tag == 'a']
    assert 'load/results.json' in hrefs and 'load/' in hrefs
    words = ''.join(page.text)
    for label in ('RUNNING', 'FAILED', 'COMPLETE', 'PENDING', '1/4 25%'):
        assert label in words
    classes = {a.get('class') for tag, a in page.tags if tag == 'span'}
    assert {'state s-running', 'state s-failed', 'state s-complete', 'state s-pending'} <= classes


def test_everything_is_escaped_in_html_and_markdown(run_dir):
    evil = '<script>alert(1)</script> | *x* "q" & [l](javascript:x)'
    fleet_status.update(run_dir, 'load', state='running', message=evil, outcome=evil,
                        links={'<b>': 'load/a"b<c>.json'})
    with open(os.path.join(run_dir, 'status.html'), encoding='utf-8') as handle:
        text = handle.read()
    page = parse(text)
    assert '<script>' not in text and not any(tag in ('script', 'b') for tag, _a in page.tags)
    assert evil in ''.join(page.text)
    assert 'load/a"b<c>.json' in [a['href'] for tag, a in page.tags if tag == 'a']
    with open(os.path.join(run_dir, 'status.md'), encoding='utf-8') as handle:
        md = handle.read()
    row = [line for line in md.splitlines() if line.startswith('| 1 | load |')][0]
    assert len(re.split(r'(?<!\\)\|', row)) == 10  # 8 cells: the message's and outcome's '|' are escaped
    assert '<script>' not in md and '\\<script\\>' in md


def test_markdown_is_a_table_of_phases_and_areas(run_dir):
    record = fleet_status.update(run_dir, 'evidence', state='running', progress=0.4, message='hashing')
    md = fleet_status.render_markdown(record)
    assert md.startswith('# Readiness run r1: RUNNING')
    assert '| 1. readiness | RUNNING | 0/7 |' in md
    assert '| 1 | evidence | RUNNING | 40% | hashing | \u2013 |' in md
    assert '| 3 | reports | PENDING |' in md


# --- concurrency and killed writers --------------------------------------------------------------

UPDATES = 30


def _hammer(run_dir, area):
    for i in range(1, UPDATES + 1):
        fleet_status.update(run_dir, area, state='running', done=i, total=UPDATES, message='%s %d' % (area, i))


def test_two_processes_updating_at_once_lose_nothing(run_dir):
    ctx = multiprocessing.get_context('fork')
    workers = [ctx.Process(target=_hammer, args=(run_dir, area)) for area in ('load', 'stress')]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    record = record_of(run_dir)
    assert record['revision'] == 2 * UPDATES
    for area in ('load', 'stress'):
        assert record['areas'][area]['done'] == UPDATES
        assert record['areas'][area]['message'] == '%s %d' % (area, UPDATES)
    assert parse(open(os.path.join(run_dir, 'status.html'), encoding='utf-8').read()).refresh == ['5']


def _killed_mid_write(run_dir, ready):
    def hang(*_args, **_kwargs):
        ready.set()
        signal.pause()
    os.replace = hang  # this child process only: the temp file is written, never renamed
    fleet_status.update(run_dir, 'load', state='complete', outcome='never lands')


def test_killed_writer_leaves_the_previous_record_whole_and_does_not_block(run_dir):
    fleet_status.update(run_dir, 'load', state='running', message='before')
    before = record_of(run_dir)
    ctx = multiprocessing.get_context('fork')
    ready = ctx.Event()
    writer = ctx.Process(target=_killed_mid_write, args=(run_dir, ready))
    writer.start()
    assert ready.wait(30)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join(30)
    stale = [n for n in os.listdir(run_dir) if n.startswith('.status.json.')]
    assert stale, 'the killed writer should have left its temp file'
    assert record_of(run_dir) == before
    assert not os.path.exists(os.path.join(run_dir, 'load', 'complete'))
    record = fleet_status.update(run_dir, 'load', message='after')  # the lock died with the writer
    assert record['revision'] == before['revision'] + 1 and record['areas']['load']['state'] == 'running'
    assert record_of(run_dir) == record


def test_stale_temp_file_and_garbage_beside_the_record_are_ignored(run_dir):
    fleet_status.update(run_dir, 'load', state='running')
    with open(os.path.join(run_dir, '.status.json.abc123'), 'w', encoding='utf-8') as handle:
        handle.write('{"format": "fleetwave.readi')
    record = fleet_status.mark_complete(run_dir, 'load', 'pass')
    assert record_of(run_dir) == record and record['revision'] == 2


def test_a_record_of_another_format_is_refused_by_name(run_dir):
    os.makedirs(run_dir)
    with open(os.path.join(run_dir, 'status.json'), 'w', encoding='utf-8') as handle:
        json.dump({'format': 'something-else'}, handle)
    with pytest.raises(ValueError, match=r'status\.json: not a readiness status record'):
        fleet_status.update(run_dir, 'load', state='running')
