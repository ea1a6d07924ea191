# -*- coding: utf-8 -*-
# The measurement core of the nats_probe module: an open-loop request generator, reply matching,
# HDR latency histograms, event pairing by Nats-Msg-Id (attributed to an instance by Agent-Host) and
# the per target / per instance / per agent / total aggregates. Plain Python (no AnsibleModule), so
# unit tests and bench/probe.py call it directly.
#
# Open loop: request i of a target is due at t0 + i/R whatever happened to the requests before it,
# and its latency counts from that INTENDED time whenever the request left late by more than the
# timer's own wake-up error (TIMER_TOLERANCE_S). A stalled agent (or a stalled probe) therefore
# shows up as latency instead of silently lowering the send rate - the coordinated-omission trap of
# closed-loop "send, wait, send" probes - while the asyncio timer waking a millisecond late is not
# counted as the agent's latency (wrk2 and HdrHistogram's corrected recording make the same cut).
#
# Events asked for with emit_events are asked before the first request and confirmed (or given up
# on after the grace period) before the requests start: the agents' publishing burst, and this
# process taking in every copy of it, do not land in the request latencies.

from __future__ import annotations

import asyncio
import collections
import datetime
import json
import math
import re
import time
import traceback

try:
    from hdrh.histogram import HdrHistogram
    HAS_HDRH = True
    HDRH_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported by the module with missing_required_lib
    HdrHistogram = None
    HAS_HDRH = False
    HDRH_IMPORT_ERROR = traceback.format_exc()

from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_limits import (
    MAX_PROBE_LOAD, out_of_range)
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_nats import connect as nats_connect, is_no_responders

# HDR histogram range and precision: microseconds, 1 us .. 60 s, 3 significant digits.
LOWEST_US = 1
HIGHEST_US = 60_000_000
SIGNIFICANT_DIGITS = 3
PERCENTILES = (50, 90, 99)  # those of latency_summary, unless asked for others

MAX_SAMPLES = 1000          # raw latencies kept per target, for rank tests
SETTLE_S = 0.25             # after the window, wait at least this long for late event copies
# A request that left at most this late is timed from when it left: lateness this small is the event
# loop's timer waking up late (about 1 ms measured on 2 cores), not a stall. Later than that, it is
# timed from its intended time less this tolerance, so a stall of the probe still counts in full.
TIMER_TOLERANCE_S = 0.005
POLL_S = 0.01

EVENT_TYPE = 'probe'
VIAS = ('legacy', 'unified')
TARGET_HEADER = 'Agent-Target'
ERROR_HEADER = 'Agent-Error'
MSG_ID_HEADER = 'Nats-Msg-Id'
HOST_HEADER = 'Agent-Host'

_TOKEN_RE = re.compile(r'[^\s.*>]+')


# ------------------------------------------------------------------------------ small helpers

def ratio(numerator, denominator, digits=6):
    """numerator / denominator, or None when there is no data: no data is never 0 or 1."""
    if not denominator:
        return None
    return round(numerator / denominator, digits)


def is_subject(subject):
    """A literal NATS subject: dot-separated tokens, no wildcards or whitespace."""
    return bool(subject) and all(_TOKEN_RE.fullmatch(token) for token in subject.split('.'))


def reply_is_error(headers, data):
    """An agent's error reply: an Agent-Error header, or a JSON body with ok: false."""
    if headers and any(key.lower() == ERROR_HEADER.lower() for key in headers):
        return True
    if data[:1] == b'{':
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            return False
        return isinstance(body, dict) and body.get('ok') is False
    return False


def downsample(values, limit=MAX_SAMPLES, digits=3):
    """At most `limit` values that keep the distribution: evenly spaced order statistics.

    Returned sorted (rank tests need no order); all values when there are no more than `limit`.
    """
    ordered = sorted(values)
    n = len(ordered)
    if n > limit:
        ordered = [ordered[min(n - 1, int((i + 0.5) * n / limit))] for i in range(limit)]
    return [round(v, digits) for v in ordered]


def _utc(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat(timespec='milliseconds')


# ------------------------------------------------------------------------------ validation

def _twice(values):
    """The values given more than once, sorted; one pass over a Counter (a host list can be long)."""
    return sorted(v for v, n in collections.Counter(values).items() if n > 1)


def validate(params):
    """The first problem with the probe parameters, as a message naming the limit, or None.

    Numbers are checked against their range (fleet_limits.LIMITS) first and the load against its
    cap before any list is walked, so nonsense is refused at once whatever its size.
    """
    for name in ('rate', 'window', 'timeout', 'connect_timeout', 'emit_events'):
        bad = out_of_range(name, params[name])
        if bad:
            return '%s %s' % (name, bad)
    rate, window, emit = params['rate'], params['window'], params['emit_events']
    agents, hosts, verbs = params['agents'], params['hosts'], params['verbs']
    if not agents:
        return 'agents is empty: name at least one agent to probe'
    if not hosts:
        return 'hosts is empty: name at least one instance host (the Agent-Target of its requests)'
    if not verbs:
        return 'verbs is empty: name at least one verb, e.g. ping'
    # What the probe holds in memory: every request of the window and every event asked for.
    n_targets = len(agents) * len(hosts) * len(VIAS) * len(verbs)
    requests = Schedule(rate, window, n_targets).total
    events = emit * len(agents) * len(hosts)
    if requests + events > MAX_PROBE_LOAD:
        return ('rate x window x targets + emit_events x agents x hosts = %g x %g s x %d + %d x %d x %d = %d '
                'requests and events, over the limit of %d per probe; lower rate, window or emit_events'
                % (rate, window, n_targets, emit, len(agents), len(hosts), requests + events, MAX_PROBE_LOAD))
    names = [a.get('name') for a in agents]
    twice = _twice(names)
    if twice:
        return 'agents names a type twice: %s' % ', '.join(map(str, twice))
    for agent in agents:
        if not agent.get('name'):
            return 'every agent needs a name'
        for via in VIAS:
            if not is_subject(agent.get(via) or ''):
                return 'agent %s: %s prefix %r is not a literal NATS subject (no wildcards, spaces or empty tokens)' % (
                    agent['name'], via, agent.get(via))
        if agent['legacy'] == agent['unified']:
            return 'agent %s: legacy and unified prefixes are both %r; they must differ' % (
                agent['name'], agent['legacy'])
    bad = [h for h in hosts if not h or any(c.isspace() for c in h)]
    if bad:
        return 'hosts %r: a host must be non-empty without whitespace (it goes into the Agent-Target header)' % (bad,)
    twice = _twice(hosts)
    if twice:
        return 'hosts names a host twice: %s' % ', '.join(twice)
    if not all(_TOKEN_RE.fullmatch(v or '') for v in verbs):
        return 'verbs %r: each verb must be one subject token, e.g. ping' % (verbs,)
    return None


# ------------------------------------------------------------------------------ targets and schedule

def plan_targets(agents, hosts, verbs):
    """One target per agent x host x via x verb; `expected` is false for the unified subject of an
    agent whose flag is off (probed to prove nobody answers there, left out of the aggregates)."""
    targets = []
    for index, agent in enumerate(agents):
        for host in hosts:
            for via in VIAS:
                for verb in verbs:
                    targets.append(dict(
                        agent=agent['name'], agent_index=index, host=host, via=via, verb=verb,
                        subject='%s.cmd.%s' % (agent[via], verb),
                        expected=via == 'legacy' or bool(agent.get('unified_enabled'))))
    return targets


class Schedule:
    """Intended send times of the open-loop generator.

    n_targets targets each at `rate` per second for `window` seconds, interleaved round robin, so
    the combined stream is evenly spaced at rate x n_targets: slot j goes to target j % n_targets
    at t0 + j / (rate x n_targets), i.e. request i of target k at t0 + i/rate + k/(rate x n_targets).
    """

    def __init__(self, rate, window, n_targets):
        self.rate = float(rate)
        self.window = float(window)
        self.n_targets = int(n_targets)
        self.per_target = max(1, int(math.floor(self.rate * self.window + 1e-9)))
        self.total = self.per_target * self.n_targets
        self.total_rate = self.rate * self.n_targets

    def offset(self, slot):
        """Seconds from t0 to the intended send time of `slot`."""
        return slot / self.total_rate

    def target_of(self, slot):
        return slot % self.n_targets

    def due(self, elapsed):
        """How many slots are due `elapsed` seconds after t0 (intended time <= elapsed)."""
        if elapsed < 0:
            return 0
        return min(self.total, int(math.floor(elapsed * self.total_rate + 1e-9)) + 1)


async def generate(schedule, send, t0, clock=time.monotonic, sleep=asyncio.sleep, on_lag=None):
    """Send each slot at t0 + schedule.offset(slot), never waiting for replies.

    After a stall (a slow publish, a busy event loop) the overdue slots go out at once with their
    original intended times, so the rate holds and the stall shows up as latency; nothing is sent
    after the window ends (t0 + window), and the call returns at the end of the window.
    send(slot, intended) is awaited; on_lag(seconds) receives each send's lateness.
    Returns the number of slots sent.
    """
    end = t0 + schedule.window
    slot = 0
    while slot < schedule.total:
        now = clock()
        if now >= end:
            return slot
        due = schedule.due(now - t0)
        while slot < due:
            now = clock()
            if now >= end:
                return slot
            intended = t0 + schedule.offset(slot)
            await send(slot, intended)
            if on_lag is not None:
                on_lag(now - intended)
            slot += 1
        if slot < schedule.total:
            await sleep(max(0.0, t0 + schedule.offset(slot) - clock()))
    await sleep(max(0.0, end - clock()))  # the window (and event collection) lasts the full W
    return slot


# ------------------------------------------------------------------------------ latency

def _histogram(significant_digits=SIGNIFICANT_DIGITS):
    return HdrHistogram(LOWEST_US, HIGHEST_US, significant_digits)


class Latency:
    """Latencies of one target (or a merge of several): an HDR histogram in microseconds for the
    percentiles, exact count/sum/max, and the raw samples in milliseconds.

    A long load run keeps no raw samples (keep_samples=False: samples_ms is None), and its per-interval
    histograms take 2 significant digits (~20 KB each instead of ~140 KB); only histograms of the same
    precision merge quickly.
    """

    def __init__(self, significant_digits=SIGNIFICANT_DIGITS, keep_samples=True):
        self.hist = _histogram(significant_digits)
        self.count = 0
        self.sum_s = 0.0
        self.max_s = 0.0
        self.samples_ms = [] if keep_samples else None

    def record(self, seconds):
        seconds = max(0.0, seconds)
        self.hist.record_value(min(HIGHEST_US, max(LOWEST_US, int(round(seconds * 1e6)))))
        self.count += 1
        self.sum_s += seconds
        self.max_s = max(self.max_s, seconds)
        if self.samples_ms is not None:
            self.samples_ms.append(seconds * 1000.0)

    def merge(self, other):
        if other.count:
            self.hist.add(other.hist)
            self.count += other.count
            self.sum_s += other.sum_s
            self.max_s = max(self.max_s, other.max_s)
            if self.samples_ms is not None:
                self.samples_ms.extend(other.samples_ms or ())
        return self

    def percentiles_ms(self, percentiles):
        """{percentile: ms} (HDR precision), found in one pass over the histogram; None without data."""
        if not self.count:
            return {p: None for p in percentiles}
        values = self.hist.get_percentile_to_value_dict(list(percentiles))
        return {p: round(values[p] / 1000.0, 3) for p in percentiles}

    def percentile_ms(self, percentile):
        return self.percentiles_ms((percentile,))[percentile]

    def summary(self, percentiles=PERCENTILES):
        return latency_summary(self, percentiles)


def latency_summary(latency, percentiles=PERCENTILES):
    """{p50, p90, p99, max, mean, count} in ms (the p<N> keys those of percentiles: the load run adds
    p95); every value null (count 0) without data."""
    values = latency.percentiles_ms(percentiles)
    figures = {'p%g' % p: values[p] for p in percentiles}
    if not latency.count:
        return dict(figures, max=None, mean=None, count=0)
    return dict(figures, max=round(latency.max_s * 1000.0, 3), mean=round(latency.sum_s / latency.count * 1000.0, 3),
                count=latency.count)


# ------------------------------------------------------------------------------ counters

class TargetStats:
    """What happened to the requests of one target."""

    def __init__(self, target):
        self.target = target
        self.scheduled = 0
        self.sent = 0
        self.replies = 0        # agent replies, ok or error
        self.errors = 0
        self.no_responders = 0
        self.timeouts = 0
        self.duplicates = 0     # further replies to a request already answered (two responders)
        self.latency = Latency()

    @property
    def replies_ok(self):
        return self.replies - self.errors

    def add_reply(self, latency_s, error):
        self.replies += 1
        if error:
            self.errors += 1
        self.latency.record(latency_s)


def counts(stats_list):
    """Summed counters with delivery and error_rate (null when nothing was sent)."""
    sent = sum(s.sent for s in stats_list)
    replies = sum(s.replies for s in stats_list)
    errors = sum(s.errors for s in stats_list)
    timeouts = sum(s.timeouts for s in stats_list)
    no_responders = sum(s.no_responders for s in stats_list)
    return dict(sent=sent, replies=replies, replies_ok=replies - errors, errors=errors, timeouts=timeouts,
                no_responders=no_responders, duplicates=sum(s.duplicates for s in stats_list), delivery=ratio(replies - errors, sent),
                error_rate=ratio(errors + timeouts + no_responders, sent))


def target_result(stats, max_samples=MAX_SAMPLES):
    t = stats.target
    result = dict(agent=t['agent'], host=t['host'], via=t['via'], verb=t['verb'], subject=t['subject'],
                  expected=t['expected'], scheduled=stats.scheduled)
    result.update(counts([stats]))
    result['latency_ms'] = stats.latency.summary()
    result['samples_ms'] = downsample(stats.latency.samples_ms, max_samples)
    return result


# ------------------------------------------------------------------------------ events

ANY_HOST = object()  # EventLedger.summary(host=ANY_HOST): events of every host, attributed or not


def header(headers, name):
    """Case-insensitive header lookup; None when absent or empty."""
    if not headers:
        return None
    value = headers.get(name)
    if value is None:
        wanted = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == wanted), None)
    return value or None


class EventLedger:
    """Event copies seen per agent, paired by their Nats-Msg-Id header, each attributed to the
    instance named by its Agent-Host header (None when no copy carried one).

    An event belongs to the window when its first copy arrived inside it; its other copy may come
    later (until collection stops), so a copy in flight at the end of the window is not a miss.
    """

    def __init__(self):
        # agent_index -> {msg_id: [first_seen, legacy_seen, unified_seen, host, gap]}; gap: seconds
        # from the first copy to the other, as this subscriber saw them
        self._events = {}
        self._anonymous = 0

    def add(self, agent_index, via, msg_id, now, host=None):
        if not msg_id:  # cannot be paired: counted on its own
            self._anonymous += 1
            msg_id = '\0anonymous-%d' % self._anonymous
        events = self._events.setdefault(agent_index, {})
        entry = events.get(msg_id)
        if entry is None:
            entry = events[msg_id] = [now, False, False, None, None]
        slot = 1 if via == 'legacy' else 2
        if not entry[slot] and entry[3 - slot]:
            entry[4] = now - entry[0]  # the second copy's first arrival
        entry[slot] = True
        if host and entry[3] is None:
            entry[3] = host

    def _window(self, agent_index, start, end):
        for first, on_legacy, on_unified, host, _ in self._events.get(agent_index, {}).values():
            if start <= first <= end:
                yield on_legacy, on_unified, host

    def copy_gaps(self, agent_index, start, end):
        """Seconds between an event's two copies, for each event of the window seen on both subjects:
        the dual publish as any subscriber sees it, needing nothing from the agent."""
        return [entry[4] for entry in self._events.get(agent_index, {}).values()
                if start <= entry[0] <= end and entry[4] is not None]

    def summary(self, agent_index, start, end, host=ANY_HOST):
        """{legacy, unified, paired}: events of the window seen on each subject, and on both;
        only those attributed to `host` unless host is ANY_HOST (None: the unattributed ones)."""
        legacy = unified = paired = 0
        for on_legacy, on_unified, event_host in self._window(agent_index, start, end):
            if host is not ANY_HOST and event_host != host:
                continue
            legacy += on_legacy
            unified += on_unified
            paired += on_legacy and on_unified
        return dict(legacy=legacy, unified=unified, paired=paired)

    def by_host(self, agent_index, start, end):
        """{host: {legacy, unified, paired}} of the window in one pass; None keys the unattributed events."""
        found = {}
        for on_legacy, on_unified, host in self._window(agent_index, start, end):
            events = found.setdefault(host, dict(legacy=0, unified=0, paired=0))
            events['legacy'] += on_legacy
            events['unified'] += on_unified
            events['paired'] += on_legacy and on_unified
        return found


def dual_publish_success(events, unified_enabled):
    """Events seen on both subjects / events seen on legacy; null when the flag is off or no data."""
    if not unified_enabled:
        return None
    return ratio(events['paired'], events['legacy'])


def unified_share(events, replies_unified, replies_all):
    """Unified agent messages (event copies + replies on unified) / all agent messages."""
    return ratio(events['unified'] + replies_unified, events['legacy'] + events['unified'] + replies_all)


def publish_time(instances):
    """Worst instance's publish_time_ms (p50/p99/max as the agents report them), count summed."""
    reported = [i['publish_time_ms'] for i in instances
                if isinstance(i.get('publish_time_ms'), dict) and i['publish_time_ms'].get('count')]
    if not reported:
        return dict(p50=None, p99=None, max=None, count=0)

    def worst(key):
        values = [r[key] for r in reported if isinstance(r.get(key), (int, float))]
        return max(values) if values else None

    return dict(p50=worst('p50'), p99=worst('p99'), max=worst('max'), count=sum(r['count'] for r in reported))


# ------------------------------------------------------------------------------ the probe

class Probe:
    """One probe run on an open NATS connection `nc` (nats-py client)."""

    def __init__(self, nc, params, clock=time.monotonic, sleep=asyncio.sleep, wall=time.time):
        self.nc = nc
        self.params = params
        self.clock = clock
        self.sleep = sleep
        self.wall = wall
        self.agents = params['agents']
        self.hosts = params['hosts']
        self.targets = plan_targets(self.agents, self.hosts, params['verbs'])
        self.stats = [TargetStats(t) for t in self.targets]
        self.schedule = Schedule(params['rate'], params['window'], len(self.targets))
        for stats in self.stats:
            stats.scheduled = self.schedule.per_target
        self.pending = {}       # slot -> the time its latency counts from (see _send)
        self.controls = {}      # 'c<n>' -> control request record
        self.ledger = EventLedger()
        self.lag = Latency()
        self.unmatched = 0      # replies to no request of this probe (or after its grace period)
        self.answered = bytearray(self.schedule.total)  # 1 once a slot's first reply is in
        self.inbox = None
        self._headers = [{TARGET_HEADER: t['host']} for t in self.targets]

    # -- NATS callbacks -------------------------------------------------------------------

    async def _on_reply(self, msg):
        now = self.clock()
        token = msg.subject[len(self.inbox) + 1:]
        if token[:1] == 'c':
            control = self.controls.get(token)
            if control is None or control['done']:
                self.unmatched += 1
                return
            control['done'] = True
            if is_no_responders(msg):
                control['no_responders'] = True
                return
            try:
                control['reply'] = json.loads(msg.data)
            except (ValueError, UnicodeDecodeError):
                control['reply'] = None
            control['error'] = reply_is_error(msg.headers, msg.data)
            return
        try:
            slot = int(token)
            intended = self.pending.pop(slot)
        except (KeyError, ValueError):
            if token.isdigit() and int(token) < len(self.answered) and self.answered[int(token)]:
                self.stats[self.schedule.target_of(int(token))].duplicates += 1
            else:
                self.unmatched += 1  # no such request, or a reply after the grace period
            return
        self.answered[slot] = 1
        stats = self.stats[self.schedule.target_of(slot)]
        if is_no_responders(msg):
            stats.no_responders += 1
        else:
            stats.add_reply(now - intended, reply_is_error(msg.headers, msg.data))

    def _on_event(self, agent_index, via):
        ledger, clock = self.ledger, self.clock

        async def on_event(msg):
            headers = msg.headers or {}
            ledger.add(agent_index, via, headers.get(MSG_ID_HEADER), clock(), header(headers, HOST_HEADER))

        return on_event

    # -- sending ---------------------------------------------------------------------------

    async def _send(self, slot, intended):
        target = self.schedule.target_of(slot)
        # Timed from when it leaves, unless it leaves later than the timer's own error: then from
        # the intended time (less that error), so a stall stays visible.
        self.pending[slot] = min(self.clock(), intended + TIMER_TOLERANCE_S)
        self.stats[target].sent += 1
        await self.nc.publish(self.targets[target]['subject'], b'', reply='%s.%d' % (self.inbox, slot),
                              headers=self._headers[target])

    async def _control(self, kind, agent_index, host, payload=b''):
        cid = 'c%d' % len(self.controls)
        self.controls[cid] = dict(kind=kind, agent_index=agent_index, host=host, done=False, reply=None,
                                  error=False, no_responders=False)
        subject = '%s.cmd.%s' % (self.agents[agent_index]['legacy'], kind)
        await self.nc.publish(subject, payload, reply='%s.%s' % (self.inbox, cid), headers={TARGET_HEADER: host})

    def _controls_of(self, kind):
        return [c for c in self.controls.values() if c['kind'] == kind]

    async def _wait(self, done, deadline, not_before=None):
        while self.clock() < deadline:
            if done() and (not_before is None or self.clock() >= not_before):
                return True
            await self.sleep(POLL_S)
        return done()

    # -- the run ---------------------------------------------------------------------------

    async def run(self):
        nc, params = self.nc, self.params
        grace = float(params['timeout'])
        self.inbox = nc.new_inbox()
        subs = [await nc.subscribe(self.inbox + '.*', cb=self._on_reply)]
        for index, agent in enumerate(self.agents):
            for via in VIAS:
                subs.append(await nc.subscribe('%s.evt.>' % agent[via], cb=self._on_event(index, via)))
        await nc.flush(timeout=max(grace, 1.0))  # the server has our interest before t0

        wall0, events_from = self.wall(), self.clock()
        if params['emit_events']:
            body = json.dumps(dict(count=params['emit_events'], type=EVENT_TYPE)).encode()
            for index in range(len(self.agents)):
                for host in self.hosts:
                    await self._control('emit', index, host, body)
            await nc.flush(timeout=grace)
            await self._wait(lambda: all(c['done'] for c in self.controls.values()), events_from + grace)
        t0 = self.clock()
        sent = await generate(self.schedule, self._send, t0, self.clock, self.sleep, on_lag=self.lag.record)
        window_end = self.clock()
        seconds = window_end - t0
        wall_end = wall0 + (window_end - events_from)

        # Grace: every request answered and every emit confirmed, and a short settle for event
        # copies in flight, or the grace period, whichever comes first.
        await self._wait(lambda: not self.pending and all(c['done'] for c in self.controls.values()),
                         window_end + grace, not_before=window_end + min(SETTLE_S, grace))
        for slot in self.pending:
            self.stats[self.schedule.target_of(slot)].timeouts += 1
        self.pending.clear()
        for sub in subs[1:]:
            await sub.unsubscribe()  # events after this are outside the window

        for index in range(len(self.agents)):
            for host in self.hosts:
                await self._control('status', index, host)
        await nc.flush(timeout=grace)
        status_deadline = self.clock() + grace
        await self._wait(lambda: all(c['done'] for c in self._controls_of('status')), status_deadline)

        result = self.results(events_from, window_end)
        result['window'] = dict(started=_utc(wall0), ended=_utc(wall_end), seconds=round(window_end - events_from, 3),
                                requests_seconds=round(seconds, 3))
        result['achieved_rate'] = round(sent / seconds, 3) if seconds > 0 else None
        result['requested_rate'] = round(self.schedule.total_rate, 3)
        lag = self.lag.summary()
        result['send_lag_ms'] = dict(p50=lag['p50'], p99=lag['p99'], max=lag['max'])
        result['connection'] = dict(client_id=getattr(nc, 'client_id', None),
                                    published=nc.stats['out_msgs'], received=nc.stats['in_msgs'])
        return result

    # -- results -----------------------------------------------------------------------------

    def _instances(self, agent_index):
        instances = []
        for host in self.hosts:
            status = next((c for c in self._controls_of('status')
                           if c['agent_index'] == agent_index and c['host'] == host), None)
            emit = next((c for c in self._controls_of('emit')
                         if c['agent_index'] == agent_index and c['host'] == host), None)
            body = status['reply'] if status and isinstance(status['reply'], dict) and not status['error'] else None
            emitted = None
            if emit is not None and isinstance(emit['reply'], dict) and not emit['error']:
                emitted = emit['reply'].get('emitted')
            instances.append(dict(
                host=host, answered=body is not None, emitted=emitted,
                unified=body.get('unified') if body else None,
                pid=body.get('pid') if body else None,
                uptime_s=body.get('uptime_s') if body else None,
                counters=body.get('counters') if body else None,
                faults=body.get('faults') if body else None,
                publish_time_ms=body.get('publish_time_ms') if body else None))
        return instances

    def _instance_figures(self, agent_index, host, events):
        """The request, event and share figures of one instance (agent x host).

        events: that host's {legacy, unified, paired} of the window, or None when none of the
        agent's events carried an Agent-Host header (then nothing event-based is attributable).
        """
        unified_enabled = self.agents[agent_index].get('unified_enabled')
        own = [s for s in self.stats if s.target['agent_index'] == agent_index and s.target['host'] == host]
        expected = [s for s in own if s.target['expected']]
        latency = Latency()
        for s in expected:
            latency.merge(s.latency)
        figures = counts(expected)
        figures.update(latency_ms=latency.summary(), samples_ms=downsample(latency.samples_ms))
        if events is None:
            figures.update(events=None, dual_publish_success=None, unified_share=None)
        else:
            replies_unified = sum(s.replies for s in own if s.target['via'] == 'unified')
            replies_all = sum(s.replies for s in own)
            figures.update(events=events, dual_publish_success=dual_publish_success(events, unified_enabled),
                           unified_share=unified_share(events, replies_unified, replies_all))
        return figures

    def results(self, start, end):
        targets = [target_result(s) for s in self.stats]
        agents = []
        expected_all, events_all = [], dict(legacy=0, unified=0, paired=0)
        dual = dict(legacy=0, paired=0)
        share = dict(unified=0, all=0)
        for index, agent in enumerate(self.agents):
            own = [s for s in self.stats if s.target['agent_index'] == index]
            expected = [s for s in own if s.target['expected']]
            expected_all.extend(expected)
            latency = Latency()
            for s in expected:
                latency.merge(s.latency)
            replies_unified = sum(s.replies for s in own if s.target['via'] == 'unified')
            replies_all = sum(s.replies for s in own)
            events = self.ledger.summary(index, start, end)
            by_host = self.ledger.by_host(index, start, end)
            attributable = any(host is not None for host in by_host)
            instances = self._instances(index)
            for instance in instances:
                host_events = by_host.get(instance['host'], dict(legacy=0, unified=0, paired=0))
                instance.update(self._instance_figures(index, instance['host'],
                                                       host_events if attributable else None))
            emitted = [i['emitted'] for i in instances if i['emitted'] is not None]
            gaps = Latency()
            for gap in self.ledger.copy_gaps(index, start, end):
                gaps.record(gap)
            gap_summary = gaps.summary()
            entry = dict(name=agent['name'], unified_enabled=bool(agent.get('unified_enabled')))
            entry.update(counts(expected))
            entry.update(
                latency_ms=latency.summary(),
                unified_replies=replies_unified,
                events=dict(events, emitted=sum(emitted) if emitted else None),
                dual_publish_success=dual_publish_success(events, agent.get('unified_enabled')),
                unified_share=unified_share(events, replies_unified, replies_all),
                publish_time_ms=publish_time(instances),
                copy_gap_ms=dict(p50=gap_summary['p50'], p99=gap_summary['p99'], max=gap_summary['max'],
                                 count=gap_summary['count']),
                instances=instances)
            agents.append(entry)
            for key in events_all:
                events_all[key] += events[key]
            if agent.get('unified_enabled'):
                dual['legacy'] += events['legacy']
                dual['paired'] += events['paired']
            share['unified'] += events['unified'] + replies_unified
            share['all'] += events['legacy'] + events['unified'] + replies_all
        latency = Latency()
        for s in expected_all:
            latency.merge(s.latency)
        totals = dict(targets=len(expected_all))
        totals.update(counts(expected_all))
        totals.update(latency_ms=latency.summary(), events=events_all,
                      dual_publish_success=ratio(dual['paired'], dual['legacy']),
                      unified_share=ratio(share['unified'], share['all']),
                      unmatched_replies=self.unmatched)
        return dict(targets=targets, agents=agents, totals=totals)


async def run_probe(params, connect=nats_connect, clock=time.monotonic, sleep=asyncio.sleep):
    """Connect with fleet_nats.connect(params) (or `connect`), probe, close; returns the results.

    params: the NATS connection options of fleet_nats.NATS_ARGUMENT_SPEC plus agents, hosts, rate,
    window, timeout, emit_events and verbs (see the nats_probe module). Raises ValueError for
    nonsense parameters, fleet_nats.NatsUnreachable when the server cannot be reached.
    """
    problem = validate(params)
    if problem:
        raise ValueError(problem)
    nc = await connect(params)
    try:
        return await Probe(nc, params, clock=clock, sleep=sleep).run()
    finally:
        if not nc.is_closed:
            await nc.close()
