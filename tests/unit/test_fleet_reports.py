"""plugins/plugin_utils/fleet_reports.py: the readiness run's reports (issue 10, phase 3) - the master
report and the stakeholder brief, in HTML and Markdown, with their charts - rendered from a run folder
built from the real producers: load records run by fleet_load on virtual time, ledgers by
fleet_ledger.build_ledger, gate records by fleet_gates, the status record by fleet_status, the evidence
index and the certificate by fleet_attest (signed with generated Ed25519 keys)."""

from __future__ import annotations

import base64
import copy
import datetime
import json
import os
import re
import shutil
import xml.etree.ElementTree as ElementTree

import pytest
import yaml

from ansible_collections.fleetwave.rollout.plugins.module_utils import fleet_load as fl
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_attest as fa
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_charts as fc
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_gates as fg
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_ledger
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_reports as fr
from ansible_collections.fleetwave.rollout.plugins.plugin_utils import fleet_status
from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_artifacts import ArtifactStore, file_digest, utc

from tests.unit.conftest import REPO
from tests.unit.test_fleet_charts import NS, bars_of
from tests.unit.test_fleet_ledger import T0 as LEDGER_T0, events, rid, traffic
from tests.unit.test_fleet_load import VirtualTime, production_scenarios, vt_server

pytestmark = pytest.mark.unit

UTC = datetime.timezone.utc
RUN = 'readiness-20270115T080000Z'
START = 1_800_000_000.0  # fleet_load's VirtualTime wall clock starts here: 2027-01-15T08:00:00Z
ISSUED = datetime.datetime.fromtimestamp(START + 3 * 3600, UTC)
NOW = START + 4 * 3600
CRITERIA = str(REPO / 'criteria/default.yml')
CONTRACT = REPO / 'inventory/production/group_vars/all/00-contract.yml'
HOSTILE = '<script>alert("x")</script>'
APPROVERS = {'alice': bytes([0xA1] * 32).hex(), 'bob': bytes([0xB0] * 32).hex()}
KEYS = [fa.SigningKey(name, value) for name, value in APPROVERS.items()]
LOAD_IDS = [part + kind for name in fg.LOAD_SCENARIOS
            for part, kind in (('load-%s' % name, '-latency'), ('load-%s' % name, '-throughput'))]
CHART_IDS = ['load-rate'] + LOAD_IDS + ['load-vs-previous-p95', 'load-vs-previous-rate', 'failure-modes-recovery',
                                        'timeline-durations']


# ================================================================================ a run folder

def scenarios():
    """The contract's six scenarios, compressed to 2 s each, 40 points a series."""
    short = fl.compress(production_scenarios(), 60, max_seconds=2)
    for scenario in short.values():
        seconds = fl.scenario_seconds(scenario)
        scenario['interval_seconds'] = seconds / 40
        for threshold in scenario['thresholds']:
            if 'window_seconds' in threshold:
                threshold['window_seconds'] = max(threshold['window_seconds'], seconds / 10)
    return short


def load_records(slower=0.0):
    """Real fleet_load records of the six scenarios against a fake agent on virtual time: 4-22 ms, one
    request in 97 at 50 ms more (so p99 shows), slower by `slower` s."""
    vt = VirtualTime()

    def latency(index, now):
        return 0.004 + slower + (index % 13) * 0.0015 + (0.05 if index % 97 == 0 else 0)

    return [vt.scenario(scenario, vt_server(vt, latency=latency), name=name) for name, scenario in scenarios().items()]


_RECORDS = {}


def records(slower=0.0):
    if slower not in _RECORDS:  # the six scenarios take a second on virtual time: run them once
        _RECORDS[slower] = load_records(slower)
    return copy.deepcopy(_RECORDS[slower])


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as handle:
        json.dump(data, handle, indent=2, sort_keys=True)
    return str(path)


def budgets():
    return yaml.safe_load(CONTRACT.read_text())[fleet_ledger.BUDGET_VARIABLE]


def ledger(mode, lose_outside=False):
    """A real ledger: two targets a request a second for a minute, one dual-published event a second; the
    failure from +20 s to +25 s drops two requests to dgx-1 in it (and one outside it when lose_outside)."""
    drop = [rid('tdd-expert@dgx-1', s) for s in range(20, 22)] + ([rid('tdd-expert@dgx-1', 50)] if lose_outside else [])
    window = dict(injected_at=LEDGER_T0 + 20, detected_at=LEDGER_T0 + 22, recovered_at=LEDGER_T0 + 25)
    requests, replies = traffic(drop=drop)
    published, received = events()
    return fleet_ledger.build_ledger(mode, window, requests, replies, published, received, 2.0, budgets()[mode])


def gate(run_dir, name, outcome='PASS', reasons=()):
    """A gate record of fleet_gates' shape over a small evidence file of the run."""
    path = write(os.path.join(run_dir, 'inputs', '%s.json' % name), {'gate': name, 'input': True})
    return dict(gate=name, outcome=outcome, reasons=list(reasons), measured={},
                evidence=[dict(path=path, sha256=file_digest(path)[1])])


def status(run_dir, complete=('load', 'failure-modes', 'gates', 'evidence', 'runbooks', 'authorization')):
    record = fleet_status.new_record(RUN)
    for number, area in enumerate(complete):
        fleet_status.apply(record, area, dict(state='running'), now=utc(START + 600 * number))
        fleet_status.apply(record, area, dict(state='complete', outcome='%s done' % area),
                           now=utc(START + 600 * number + 300 + 60 * number))
    fleet_status.apply(record, 'reports', dict(state='running', message='rendering'), now=utc(NOW - 60))
    write(os.path.join(run_dir, 'status.json'), record)


def certificate(run_dir, decision, reasons=None, constraints=()):
    evidence = os.path.join(run_dir, 'evidence')
    args = {} if decision == fa.NO_GO else dict(success_criteria=['error rate < 0.1 % for 24 h'],
                                                rollback_triggers=['any agent crash', 'message loss detected'])
    statement = fa.statement(evidence, decision, {'hosts': ['dgx-1', 'dgx-2', 'dgx-3'], 'unified_subjects': True},
                             sorted(APPROVERS), ISSUED + datetime.timedelta(days=7), issued_at=ISSUED,
                             next_step='the final cut-over', constraints=list(constraints), **args)
    if reasons is not None:
        statement['predicate']['reasons'] = list(reasons)
    write(os.path.join(run_dir, 'certificate.json'), fa.sign(statement, KEYS))
    write(os.path.join(run_dir, 'trusted-keys.json'), dict(keys=[k.trusted_entry() for k in KEYS], threshold=2))


def build_run(root, decision=fa.GO, hostile=False, reasons=None, failing_mode=None):
    """<root>/artifacts/readiness/<RUN>/ as a readiness run leaves it after phase 2 (stress not run yet),
    with a wave decision in <root>/artifacts/checkpoints/. Returns the run folder."""
    artifacts = os.path.join(str(root), 'artifacts')
    run_dir = os.path.join(artifacts, 'readiness', RUN)
    current, previous = records(), records(slower=0.002)
    if hostile:
        current[-1]['scenario'] = previous[-1]['scenario'] = HOSTILE
    document = fl.results_document(current, run=RUN)
    before = fl.results_document(previous, run='readiness-20270108T080000Z')
    before_path = write(os.path.join(artifacts, 'readiness', before['run'], 'load', 'results.json'), before)
    results = write(os.path.join(run_dir, 'load', 'results.json'),
                    dict(document, previous=before_path, comparison=fl.compare_with_previous(document, before)))
    store = ArtifactStore(os.path.join(run_dir, 'failure-modes'))
    for mode in fleet_ledger.FAILURE_MODES:
        fleet_ledger.write_ledger(store, '.', ledger(mode, lose_outside=mode == failing_mode))
    gates = [fg.performance_gate(results, CRITERIA), fg.support_gate(str(REPO / 'inventory/production'))]
    gates += [gate(run_dir, name) for name in ('code', 'security', 'compliance', 'docs', 'deployment')]
    gates.append(gate(run_dir, 'testing', *(('FAIL', ['no JUnit for commit 0abc <img src=x onerror=alert(1)>'])
                                            if decision != fa.GO else ())))
    for record in gates:
        write(os.path.join(run_dir, 'gates', '%s.json' % record['gate']), record)
    for area in ('gates', 'load', 'failure-modes'):
        shutil.copytree(os.path.join(run_dir, area), os.path.join(run_dir, 'evidence', area))
    fa.write_index(os.path.join(run_dir, 'evidence'), now=ISSUED - datetime.timedelta(minutes=5))
    status(run_dir)
    constraints = ['gate testing FAIL: rerun the suite on the release commit'] \
        if decision == fa.GO_WITH_CONSTRAINTS else ()
    certificate(run_dir, decision, reasons=reasons, constraints=constraints)
    write(os.path.join(artifacts, 'checkpoints', 'wave2', 'decision.json'), dict(
        wave='wave2', run_id='run-w2', outcome='GO', reasons=[], started=utc(START - 86400 * 2),
        decided=utc(START - 86400), journal='runs/run-w2/journal.jsonl'))
    return run_dir


@pytest.fixture(scope='module')
def rendered(tmp_path_factory):
    """A GO run rendered once: (run folder, written paths, report.html, report.md, brief.html, brief.md)."""
    run_dir = build_run(tmp_path_factory.mktemp('go'))
    written = fr.render_reports(run_dir, now=NOW)
    return (run_dir, written) + tuple(read(run_dir, name) for name in ('report.html', 'report.md', 'brief.html',
                                                                     'brief.md'))


def read(run_dir, name):
    with open(os.path.join(run_dir, 'reports', name), encoding='utf-8') as handle:
        return handle.read()


def section(text, anchor, end_tag='<h2 '):
    """The HTML from the heading with id anchor to the next h2."""
    start = text.index('id="%s"' % anchor)
    stop = text.find(end_tag, start + 1)
    return text[start:stop if stop > 0 else len(text)]


def svg_of(text, chart_id):
    match = re.search(r'<svg\b[^>]*data-chart="%s".*?</svg>' % re.escape(chart_id), text, re.S)
    return ElementTree.fromstring(match.group(0))


def bars(root):
    """{(group, bar): value} of a bar chart (the value as its bar's tooltip shows it: 3 significant digits)."""
    return {key: value for key, (_rect, value) in bars_of(root).items()}


# ================================================================================ what is written

def test_every_file_is_written_and_every_chart_is_in_the_report(rendered):
    run_dir, written, report, markdown, brief, brief_md = rendered
    charts = ['reports/charts/%s.svg' % chart for chart in CHART_IDS]
    assert sorted(written) == sorted(charts + ['reports/%s' % n for n in ('report.html', 'report.md', 'brief.html',
                                                                          'brief.md')])
    assert sorted(os.listdir(os.path.join(run_dir, 'reports', 'charts'))) == sorted(c.split('/')[-1] for c in charts)
    assert fc.chart_ids(report) == CHART_IDS  # each once, in the report's order
    assert fc.chart_ids(brief) == ['load-rate', 'failure-modes-recovery']
    for chart in CHART_IDS:  # the Markdown links the same charts, each file holding its chart
        assert '](charts/%s.svg)' % chart in markdown
        assert fc.chart_ids(read(run_dir, 'charts/%s.svg' % chart)) == [chart]
    assert '](charts/load-rate.svg)' in brief_md and '](charts/failure-modes-recovery.svg)' in brief_md
    for page in (report, brief):
        assert '<script' not in page.lower() and 'http://' not in page.replace('http://www.w3.org/2000/svg', '')
        assert 'https://' not in page and 'Generated %s' % utc(NOW) in page
    for anchor in ('executive-summary', 'readiness-gates', 'success-metrics', 'load-results', 'load-vs-previous',
                   'stress-results', 'failure-modes', 'deployment-timeline', 'evidence-index', 'sign-off'):
        assert 'id="%s"' % anchor in report and '<a href="#%s">' % anchor in report or anchor == 'load-vs-previous'


def test_the_charts_carry_the_records_figures(rendered):
    run_dir, _written, report = rendered[:3]
    current = {r['scenario']: r for r in records()}
    rates = bars(svg_of(report, 'load-rate'))
    for name, record in current.items():
        assert rates[(name, 'achieved')] == pytest.approx(record['achieved_rate'], rel=5e-3)
        if record['model'] == fl.CLOSED:  # no requested rate: achieved only, and said so
            assert (name, 'requested') not in rates
        else:
            assert rates[(name, 'requested')] == pytest.approx(record['requested_rate'], rel=5e-3)
    caption = section(report, 'chart-load-rate', '</figure>')
    assert 'Closed-model scenarios (10-concurrent, 50-concurrent, ramp-up) have no requested rate' in caption
    latency = svg_of(report, 'load-spike-latency')
    assert [g.find(NS + 'text').text for g in latency.iter(NS + 'g') if g.get('class') == 'legend'][:3] == [
        'p50', 'p99', 'max']
    assert 'latency_p99 &lt; 200 ms' in section(report, 'chart-load-spike-latency', '</figure>')
    throughput = svg_of(report, 'load-soak-throughput')  # open model: the requested rate over time from its config
    assert [g.find(NS + 'text').text for g in throughput.iter(NS + 'g') if g.get('class') == 'legend'][:2] == [
        'requested', 'sent']
    assert 'requested: 40 points' in throughput.find(NS + 'desc').text
    comparison = bars(svg_of(report, 'load-vs-previous-p95'))
    before = {r['scenario']: r for r in records(slower=0.002)}
    for name in current:
        assert comparison[(name, 'this run')] == pytest.approx(current[name]['latency_ms']['p95'], rel=5e-3)
        assert comparison[(name, 'previous run readiness-20270108T080000Z')] == pytest.approx(
            before[name]['latency_ms']['p95'], rel=5e-3)
    recovery = svg_of(report, 'failure-modes-recovery')
    assert {g for g, _ in bars(recovery)} == set(fleet_ledger.FAILURE_MODES)
    assert [m.find(NS + 'title').text for m in recovery.iter(NS + 'line') if m.get('class') == 'group-limit'][0] == \
        'agent-kill, recovery budget: 60 s'


def test_gates_metrics_failure_modes_timeline_and_evidence_are_reported(rendered):
    run_dir, _written, report, markdown = rendered[:4]
    gates = section(report, 'readiness-gates')
    assert gates.count('<tr><td>') == 8 and '8/8 gates PASS' in gates
    assert '<a href="../inputs/code.json">code.json</a>' in gates  # evidence linked from reports/
    assert '### Readiness gates: PASS' in markdown and '| performance | PASS |' in markdown
    metrics = section(report, 'success-metrics')
    assert 'Load scenarios within their thresholds' in metrics and '6/6' in metrics
    assert 'error rate &lt; 0.1 % for 24 h' in metrics and 'any agent crash' in metrics
    modes = section(report, 'failure-modes')
    for mode in fleet_ledger.FAILURE_MODES:
        assert '<td>%s</td><td><span class="mark m-ok">PASS</span></td><td>120</td><td>118</td>' % mode in modes
    assert 'requests to tdd-expert@dgx-1 on agent.tdd-expert.cmd.ping: 2 of 60 lost (2 in the failure window' in modes
    timeline = section(report, 'deployment-timeline')
    stamps = re.findall(r'<tr><td>(\d{4}-\d\d-\d\dT[\d:.]+Z)</td>', timeline)
    assert stamps == sorted(stamps) and len(stamps) > 20
    for what in ('Wave wave2 decided', 'Area load complete', 'Load scenario soak ended',
                 'Failure nats-restart injected', 'Evidence indexed', 'Certificate issued', 'Certificate expires'):
        assert what in timeline, what
    assert '../../../checkpoints/wave2/decision.json' in timeline
    # fleet_load's times (+00:00) in the one clock format, in their place
    assert timeline.index('Load scenario soak ended') < timeline.index('Evidence indexed') and '+00:00' not in timeline
    evidence = section(report, 'evidence-index')
    index = json.load(open(os.path.join(run_dir, 'evidence', 'evidence-index.json')))
    assert '%d file(s)' % len(index['files']) in evidence
    for entry in index['files']:
        assert '<a href="../evidence/%s">' % entry['path'] in evidence and entry['sha256'] in evidence


def test_the_sign_off_page_and_the_brief_show_the_decision_and_who_signed(rendered):
    run_dir, _written, report, markdown, brief, brief_md = rendered
    sign_off = section(report, 'sign-off')
    assert '<div class="verdict">GO</div>' in sign_off and 'for the final cut-over' in sign_off
    for key in KEYS:
        assert '<td>%s</td><td><code>%s</code></td><td>the key of %s in trusted-keys.json</td>' % (
            key.approver, key.keyid, key.approver) in sign_off
        assert key.keyid in brief and key.approver in brief and key.keyid in markdown
    assert utc((ISSUED + datetime.timedelta(days=7)).timestamp()) in sign_off
    verify = ('scripts/verify-certificate %s/certificate.json --trusted-keys %s/trusted-keys.json '
              '--base-dir %s/evidence' % ((run_dir,) * 3))
    for page in (sign_off, brief, markdown, brief_md):
        assert verify in page and 'does not verify the certificate' in page
    assert '<div class="verdict">GO</div>' in brief and 'Signed by alice, bob on %s' % utc(ISSUED.timestamp()) in brief
    assert '> **Decision: GO**' in brief_md and '| Readiness gates passed | **8/8** |' in brief_md
    glance = section(brief, 'gates-at-a-glance')
    assert all('<td>%s</td><td><span class="mark m-ok">PASS</span></td>' % g in glance for g in fg.GATES)
    assert 'Reasons' not in brief


# ================================================================================ other runs

def test_a_no_go_shows_its_reasons_in_the_summary_the_brief_and_the_sign_off(tmp_path):
    stated = ['gate testing FAIL: no JUnit for the release commit', 'area stress not complete']
    run_dir = build_run(tmp_path / 'stated', decision=fa.NO_GO, reasons=stated)
    fr.render_reports(run_dir, now=NOW)
    report, brief = read(run_dir, 'report.html'), read(run_dir, 'brief.html')
    for page in (section(report, 'executive-summary'), brief):
        assert '<div class="decision d-bad"><div class="verdict">NO-GO</div>' in page
        assert '<strong>Reasons:</strong></p>\n<ul><li>%s</li><li>%s</li></ul>' % tuple(stated) in page
    assert '<div class="verdict">NO-GO</div>' in section(report, 'sign-off')
    assert '- gate testing FAIL: no JUnit for the release commit' in read(run_dir, 'brief.md')
    # A certificate that states no reasons: the failed gates' reasons stand in, said so
    run_dir = build_run(tmp_path / 'derived', decision=fa.NO_GO, failing_mode='agent-kill')
    fr.render_reports(run_dir, now=NOW)
    brief = read(run_dir, 'brief.html')
    assert 'Reasons (the certificate states none; from the failed gates and the incomplete areas):' in brief
    assert '<li>gate testing FAIL: no JUnit for commit 0abc &lt;img src=x onerror=alert(1)&gt;</li>' in brief
    assert '<li>area stress not complete (pending)</li>' in brief
    assert '<div class="label">Failure modes within budget</div><div class="value">4/5</div>' in brief
    modes = section(read(run_dir, 'report.html'), 'failure-modes')
    assert '<td>agent-kill</td><td><span class="mark m-bad">FAIL</span></td>' in modes
    assert 'lost outside the failure window: 1 (at most 0)' in modes  # fleet_ledger.judge's reason


def test_a_go_with_constraints_names_them(tmp_path):
    run_dir = build_run(tmp_path, decision=fa.GO_WITH_CONSTRAINTS)
    fr.render_reports(run_dir, now=NOW)
    brief = read(run_dir, 'brief.html')
    assert '<div class="decision d-warn"><div class="verdict">GO with constraints</div>' in brief
    assert '<strong>Constraints:</strong></p>\n<ul><li>gate testing FAIL: rerun the suite on the release commit' \
        in brief


def test_missing_inputs_are_marked_not_available_never_zero(tmp_path):
    run_dir = str(tmp_path / 'empty')
    os.makedirs(run_dir)
    written = fr.render_reports(run_dir, now=NOW)
    assert sorted(written) == ['reports/brief.html', 'reports/brief.md', 'reports/report.html', 'reports/report.md']
    report, markdown, brief = read(run_dir, 'report.html'), read(run_dir, 'report.md'), read(run_dir, 'brief.html')
    assert fc.chart_ids(report) == [] and fc.chart_ids(brief) == []
    for where in ('no load results at load/results.json', 'no stress results at stress/results.json',
                  'no ledger at failure-modes/&lt;mode&gt;/ledger.json', 'no gate record in gates/',
                  'no evidence index at evidence/evidence-index.json',
                  'no authorization certificate at certificate.json', 'no run status record at status.json'):
        assert '<div class="missing"><strong>Not available:</strong>' in report
        assert where in report, where
    assert '> **Not available:** load results' in markdown
    figures = section(report, 'executive-summary')
    assert '<div class="value">n/a</div>' in figures and '<div class="value">0' not in figures
    assert '<div class="verdict">No decision issued</div>' in brief and 'No gate has been decided either' in brief
    assert '/8' not in brief  # no gate record: not "0/8"


def test_partial_and_broken_inputs_do_not_stop_the_reports(tmp_path):
    run_dir = build_run(tmp_path)
    os.remove(os.path.join(run_dir, 'failure-modes', 'node-freeze', 'ledger.json'))
    with open(os.path.join(run_dir, 'certificate.json'), 'w') as handle:
        handle.write('{"payload": "bm90IGpzb24=", "signatures": []}')  # base64 of 'not json'
    with open(os.path.join(run_dir, 'gates', 'docs.json'), 'w') as handle:
        handle.write('{broken')
    results = json.load(open(os.path.join(run_dir, 'load', 'results.json')))
    results['scenarios']['soak'].update(series=[], latency_ms=None, requests=None)
    results['comparison'] = fl.compare_with_previous(results, None)
    write(os.path.join(run_dir, 'load', 'results.json'), results)
    fr.render_reports(run_dir, now=NOW)
    report = read(run_dir, 'report.html')
    assert 'the data-integrity ledger of failure mode node-freeze' in report
    assert 'the payload of certificate.json is not JSON' in report
    assert '<div class="verdict">No decision issued' in report
    assert 'the gate record at gates/docs.json is not readable' in report and '<li>gate docs not decided' in report
    assert 'time series of scenario soak' in report and 'test vs reference: no previous readiness run' in report
    soak = re.search(r'<tr><td>soak</td>.*?</tr>', report).group(0)
    assert '<td>n/a</td><td>n/a</td><td>n/a</td>' in soak  # p50, p95, p99: never zero
    assert '<div class="label">Load error rate</div><div class="value">n/a</div>' in report
    assert 'load-vs-previous-p95' not in fc.chart_ids(report) and 'load-soak-latency' in fc.chart_ids(report)
    recovery = svg_of(report, 'failure-modes-recovery')
    assert {g for g, _ in bars(recovery)} == set(fleet_ledger.FAILURE_MODES) - {'node-freeze'}


def test_every_text_is_escaped(tmp_path):
    run_dir = build_run(tmp_path, decision=fa.NO_GO, hostile=True)
    fr.render_reports(run_dir, now=NOW)
    report, markdown = read(run_dir, 'report.html'), read(run_dir, 'report.md')
    assert '<script' not in report.lower() and '<img' not in report.lower()
    assert '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;' in report
    assert 'no JUnit for commit 0abc &lt;img src=x onerror=alert(1)&gt;' in report
    assert not re.search(r'(?<!\\)<(script|img)', markdown)  # each < escaped, Markdown shows it as text
    assert '\\<script\\>alert("x")\\</script\\>' in markdown
    assert 'load-script-alert-x-script-latency' in fc.chart_ids(report)
    for svg in os.listdir(os.path.join(run_dir, 'reports', 'charts')):
        ElementTree.parse(os.path.join(run_dir, 'reports', 'charts', svg))  # well-formed, the name escaped


def test_the_same_inputs_give_the_same_bytes(tmp_path, rendered):
    run_dir = rendered[0]
    copy_dir = str(tmp_path / 'readiness' / RUN)
    shutil.copytree(run_dir, copy_dir)
    shutil.rmtree(os.path.join(copy_dir, 'reports'))
    first = fr.render_reports(copy_dir, now=NOW)
    before = {rel: open(os.path.join(copy_dir, rel), 'rb').read() for rel in first}
    assert fr.render_reports(copy_dir, now=NOW) == first
    assert {rel: open(os.path.join(copy_dir, rel), 'rb').read() for rel in first} == before
    fr.render_reports(copy_dir, now=NOW + 3600)  # only the Generated line changes
    for rel in first:
        after = open(os.path.join(copy_dir, rel), 'rb').read()
        if rel.endswith('.svg'):
            assert after == before[rel]
        else:
            changed = [(a, b) for a, b in zip(before[rel].splitlines(), after.splitlines()) if a != b]
            assert [b'Generated' in a for a, _ in changed] == [True], rel
    # the charts are the same wherever the folder is (the folder's path is in the text pages only)
    for rel in first:
        if rel.endswith('.svg'):
            assert open(os.path.join(run_dir, rel), 'rb').read() == before[rel]


def test_a_chart_no_longer_drawn_is_removed_and_the_stress_results_are_reported_like_the_load(tmp_path):
    run_dir = build_run(tmp_path)
    fr.render_reports(run_dir, now=NOW)
    stress = records()[:2]
    write(os.path.join(run_dir, 'stress', 'results.json'), fl.results_document(stress, run=RUN))
    os.remove(os.path.join(run_dir, 'load', 'results.json'))
    written = fr.render_reports(run_dir, now=NOW)
    charts = sorted(os.listdir(os.path.join(run_dir, 'reports', 'charts')))
    assert charts == sorted(os.path.basename(rel) for rel in written if rel.endswith('.svg'))
    ids = fc.chart_ids(read(run_dir, 'report.html'))
    assert not [i for i in ids if i.startswith('load-')]
    assert ids[:5] == ['stress-rate', 'stress-10-concurrent-latency', 'stress-10-concurrent-throughput',
                       'stress-50-concurrent-latency', 'stress-50-concurrent-throughput']
    assert 'the comparison with a previous run' in section(read(run_dir, 'report.html'), 'stress-results')
    assert fc.chart_ids(read(run_dir, 'brief.html')) == ['failure-modes-recovery']


def test_two_scenario_names_with_one_slug_get_two_chart_ids(tmp_path):
    run_dir = str(tmp_path / 'run')
    one, other = records()[3:5]
    one['scenario'], other['scenario'] = 'spike.1', 'spike-1'
    write(os.path.join(run_dir, 'load', 'results.json'), fl.results_document([one, other], run=RUN))
    fr.render_reports(run_dir, now=NOW)
    assert fc.chart_ids(read(run_dir, 'report.html')) == [
        'load-rate', 'load-spike-1-latency', 'load-spike-1-throughput', 'load-spike-1-2-latency',
        'load-spike-1-2-throughput']


def test_the_certificate_is_decoded_not_trusted(tmp_path, rendered):
    """The sign-off page shows what the envelope says; a signature by a key not in trusted-keys.json is
    named as such (the report never says a certificate is valid: scripts/verify-certificate does)."""
    run_dir = str(tmp_path / 'readiness' / RUN)
    shutil.copytree(rendered[0], run_dir)
    envelope = json.load(open(os.path.join(run_dir, 'certificate.json')))
    assert json.loads(base64.b64decode(envelope['payload']))['predicate']['decision'] == fa.GO
    write(os.path.join(run_dir, 'trusted-keys.json'), dict(keys=[KEYS[0].trusted_entry()], threshold=1))
    fr.render_reports(run_dir, now=NOW)
    sign_off = section(read(run_dir, 'report.html'), 'sign-off')
    assert '<td>alice</td><td><code>%s</code></td><td>the key of alice in trusted-keys.json</td>' % KEYS[0].keyid \
        in sign_off
    assert '<td>bob</td><td><code>%s</code></td><td>not in trusted-keys.json</td>' % KEYS[1].keyid in sign_off
    assert 'VALID' not in sign_off and 'does not verify the certificate' in sign_off
    os.remove(os.path.join(run_dir, 'trusted-keys.json'))
    fr.render_reports(run_dir, now=NOW)
    sign_off = section(read(run_dir, 'report.html'), 'sign-off')
    assert 'no trusted-keys.json to name it' in sign_off and '--trusted-keys &lt;trusted keys file&gt;' in sign_off


def test_the_brief_cuts_a_long_reason_that_the_report_keeps_whole():
    long = 'gate deployment FAIL: failure mode nats-restart: requests lost: ' + ', '.join('r%d' % i for i in range(200))
    short = fr._short(long)
    assert len(short) < fr.BRIEF_REASON_CHARS + 40 and short.endswith('... (in full in the master report)')
    assert long.startswith(short[:-len(' ... (in full in the master report)')])
    assert fr._short('gate code FAIL: lint') == 'gate code FAIL: lint'
