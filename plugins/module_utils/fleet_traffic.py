# -*- coding: utf-8 -*-
"""Traffic over real NATS while a failure is injected (issue 10, failure modes): the engine of the
``nats_traffic`` module, and ``ledger_inputs``, which turns what it observed into the arguments of
``plugin_utils/fleet_ledger.build_ledger``. Plain Python (no AnsibleModule): unit tests call it directly.

What the traffic does
=====================
For ``duration`` seconds it sends requests at ``rate`` per second (open model: request i is due at
t0 + i/rate whatever happened before; ``fleet_probe.Schedule`` and ``fleet_probe.generate``), round
robin over the targets. Request i has the id ``r<i>`` and its own reply subject ``<inbox>.<i>``, so
every reply (and every second reply: a duplicate) is matched to it; a target with a host sends
``Agent-Target: <host>`` so only that instance answers. While the client is cut off from the server
(nats-server restarted, the network gone) a due request is not sent: it is recorded with
``sent_at: null`` (unsent, so lost), never buffered and flushed later. The client reconnects on its
own (``allow_reconnect``, attempts without end, ``RECONNECT_WAIT_S`` apart) and its subscriptions
with it. After the last request it waits ``timeout`` for the last replies, then stops listening: a
reply after that is not seen (the request counts as lost; one seen after its timeout is late).

At the same time it subscribes to ``event_subjects`` (patterns, each with its family ``legacy`` or
``unified``) and records every event copy received: its family, ``Nats-Msg-Id`` header, arrival
time, and from its JSON body ``agent``, ``host``, ``seq``, ``ts`` and ``unified``.

What counts as published (event accounting)
===========================================
The agents publish at most once and keep no outbox, so "published" is reconstructed from their own
sequence numbers; nothing is assumed:

* a **publisher** is one process of one agent instance: an event copy whose ``Nats-Msg-Id`` is
  ``<publisher>.<seq>`` with ``<seq>`` its body's integer ``seq`` (the reference agent's ids are
  ``<agent id>.<host>.<boot id>.<seq>``, seq counting that process's events from 1). Its events are
  every seq from its first to its last: **a gap is a lost event**, on every family it publishes
  (legacy; unified too when a copy says ``unified: true`` or came on a unified subject);
* where the targets' agents answer the ``status_verb`` (the reference agent's ``status``: ``id``,
  ``host``, ``boot_id``, ``last_seq``, ``unified``), asked before the first request and after the
  last reply, the first seq of a publisher is the one after its ``last_seq`` at the start, a
  process started during the run (its instance answered at the start with another boot) counts from
  seq 1, and the last seq is its ``last_seq`` at the end: events lost at the start and at the end
  are counted too. Without a status answer the accounting runs from the first to the last seq
  received (a loss before the first or after the last copy of that process cannot be seen: a
  process killed with SIGKILL takes what it had not yet sent with it, unknowably);
* the publish time of an event is its body's ``ts``; that of a lost one is interpolated between its
  neighbours' (seq-wise, the status times included), for the ledger's in/outside-window judgement;
* an event copy without such an id and seq (an agent that does not number its events, e.g. random
  ids: tests/agents/contract_agent.py) cannot be accounted for. It is still handed to the ledger as
  received, where nobody published it: **unmatched**, which fails the ledger. The observations and
  the module's summary say how many were not accountable (``event_accounting``): never a silent pass.

Observations (``OBSERVATIONS_VERSION``), what the module writes to ``dest``
===========================================================================
``{"version", "name", "started_at", "ended_at" (epoch seconds), "settings": {duration, rate,
timeout, status_verb}, "targets": [{subject, target, host}], "families": [subscribed families],
"event_subjects": [{subject, family}], "requests": {"fields": REQUEST_FIELDS, "items": [...]},
"replies": {"fields": REPLY_FIELDS, "items": [...]}, "events": {"fields": EVENT_FIELDS, "items":
[...]}, "status": {"start": [...], "end": [...]} (STATUS_FIELDS each), "counts": {...},
"connection": {...}, "items", "max_items", "overflow": null | "<what was not recorded>"}``.
Items are lists in the order of their ``fields``; times are epoch seconds (from one monotonic clock
anchored once to the wall clock). At most ``MAX_TRAFFIC_ITEMS`` requests, replies and event copies
are kept (about 100 bytes each in the file): a run whose requests and their replies would take more
than half of it is refused before anything is sent, and past the cap recording stops and
``overflow`` says so; ``ledger_inputs`` then refuses the observations, naming the cap.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import math
import re
import time

from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_limits import out_of_range
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_nats import (
    NatsUnreachable, is_no_responders, redact, redact_url)
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_probe import (
    HOST_HEADER, MSG_ID_HEADER, SETTLE_S, TARGET_HEADER, Probe, Schedule, generate, header, is_subject,
    reply_is_error)

try:
    import nats.aio.client
    HAS_NATS = True
except ImportError:  # pragma: no cover - the module reports it (fleet_nats.check_nats_library)
    HAS_NATS = False

OBSERVATIONS_VERSION = 1
FAMILIES = ('legacy', 'unified')
# Requests, replies and event copies kept in one observations file (about 100 bytes each): 20 MB at most.
MAX_TRAFFIC_ITEMS = 200_000
RECONNECT_WAIT_S = 0.25     # between reconnect attempts (nats-py adds its own jitter)
PING_INTERVAL_S = 2         # a silent (frozen) server is noticed after about 2 x this
MAX_OUTSTANDING_PINGS = 2
MAX_OUTAGES = 100           # outages listed in the record (all are counted)
MAX_ERRORS = 20             # connection errors quoted in the record (all are counted)
# The ledger's seq of an event: a process's seq plus its rank among the processes of its instance
# (in order of their first event) times this, so that a restart (seq from 1 again) is not "reordered".
BOOT_SEQ_STRIDE = 10 ** 12

REQUEST_FIELDS = ('id', 'target', 'intended_at', 'sent_at')   # target: index into targets
REPLY_FIELDS = ('request', 'responder', 'at', 'error')
EVENT_FIELDS = ('family', 'msg_id', 'at', 'agent', 'host', 'seq', 'ts', 'unified')
STATUS_FIELDS = ('subject', 'host', 'at', 'answered', 'agent', 'id', 'instance', 'boot_id', 'last_seq', 'unified')

_PATTERN_TOKEN = re.compile(r'[^\s.>]+|\*|>')


class TrafficError(ValueError):
    """Observations that cannot be turned into ledger inputs; the message names what and why."""


# ================================================================================ validation

def is_pattern(subject):
    """A subscription subject: tokens without blanks, '*' alone as a token, '>' only as the last."""
    if not isinstance(subject, str) or not subject:
        return False
    tokens = subject.split('.')
    return (all(_PATTERN_TOKEN.fullmatch(t) and ('*' not in t or t == '*') for t in tokens)
            and '>' not in tokens[:-1])


def validate(params):
    """Every problem of the module's parameters, each naming the key and what is allowed (empty: fine).
    Numbers are checked first, so that the cap is computed from valid ones only."""
    problems = []
    for key, limit in (('duration', 'window'), ('rate', 'load_rate'), ('timeout', 'timeout'),
                       ('connect_timeout', 'connect_timeout')):
        bad = out_of_range(limit, params.get(key))
        if bad:
            problems.append('%s %s' % (key, bad))
    if not problems:
        requests = Schedule(params['rate'], params['duration'], 1).total
        if 2 * requests > MAX_TRAFFIC_ITEMS // 2:
            problems.append(
                'rate x duration = %g/s x %g s = %d requests: with one reply each over %d items, half of the '
                'observations cap of %d requests, replies and event copies (fleet_traffic.MAX_TRAFFIC_ITEMS); '
                'lower rate or duration' % (params['rate'], params['duration'], requests, MAX_TRAFFIC_ITEMS // 2,
                                            MAX_TRAFFIC_ITEMS))
    targets = params.get('targets') or []
    if not targets:
        problems.append('targets (or subjects) must name at least one request subject')
    for index, target in enumerate(targets):
        if not is_subject(target.get('subject') or ''):
            problems.append('targets[%d].subject %r: must be a literal NATS subject (no wildcards, spaces or empty '
                            'tokens)' % (index, target.get('subject')))
        host = target.get('host')
        if host is not None and (not host or any(c.isspace() for c in host)):
            problems.append('targets[%d].host %r: must be non-empty without whitespace (it goes into the %s '
                            'header)' % (index, host, TARGET_HEADER))
    for index, event in enumerate(params.get('event_subjects') or []):
        if not is_pattern(event.get('subject')):
            problems.append('event_subjects[%d].subject %r: must be a NATS subject or pattern (* a whole token, > '
                            'the last)' % (index, event.get('subject')))
        if event.get('family') not in FAMILIES:
            problems.append('event_subjects[%d].family %r: must be one of %s' % (index, event.get('family'),
                                                                               ', '.join(FAMILIES)))
    verb = params.get('status_verb')
    if verb and (not is_subject(verb) or '.' in verb):
        problems.append('status_verb %r: must be one subject token (e.g. status) or empty for none' % (verb,))
    return problems


def plan_targets(targets):
    """targets with their ledger name: the given target, else <subject>@<host>, else the subject."""
    planned = []
    for target in targets:
        host = target.get('host') or None
        name = target.get('target') or ('%s@%s' % (target['subject'], host) if host else target['subject'])
        planned.append(dict(subject=target['subject'], target=name, host=host))
    return planned


def status_subject(subject, verb):
    """<prefix>.cmd.<verb> for a command subject <prefix>.cmd.<any>; None for another form."""
    head, sep, _ = subject.rpartition('.cmd.')
    return '%s.cmd.%s' % (head, verb) if sep and head else None


# ================================================================================ connection

class ConnectionLog:
    """What happened to the client's connection: outages (from, to), reconnects, errors (redacted)."""

    def __init__(self, params, now):
        self.params, self.now = params, now
        self.disconnects = self.reconnects = self.error_count = 0
        self.outages, self.errors, self.down_since = [], [], None

    async def disconnected(self):
        self.disconnects += 1
        if self.down_since is None:
            self.down_since = self.now()

    async def reconnected(self):
        self.reconnects += 1
        if self.down_since is not None and len(self.outages) < MAX_OUTAGES:
            self.outages.append([_r(self.down_since), _r(self.now())])
        self.down_since = None

    async def error(self, exc):
        self.error_count += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append(redact(str(exc) or type(exc).__name__, self.params))

    def record(self):
        outages = list(self.outages)
        if self.down_since is not None:
            outages.append([_r(self.down_since), None])  # still cut off at the end
        return dict(disconnects=self.disconnects, reconnects=self.reconnects, outages=outages,
                    disconnected_at_end=self.down_since is not None, errors=self.errors,
                    error_count=self.error_count)


async def connect_reconnecting(params, log):
    """A client that survives a server restart: unlike fleet_nats.connect (a probe must not hide an
    outage), traffic across a failure has to go on. The first connect is tried for connect_timeout
    only; NatsUnreachable (naming the server, no credentials) when it fails."""
    options = dict(
        servers=[params['url']], connect_timeout=params['connect_timeout'], name='fleetwave-traffic',
        allow_reconnect=True, max_reconnect_attempts=-1, reconnect_time_wait=RECONNECT_WAIT_S,
        ping_interval=PING_INTERVAL_S, max_outstanding_pings=MAX_OUTSTANDING_PINGS,
        error_cb=log.error, disconnected_cb=log.disconnected, reconnected_cb=log.reconnected)
    if params.get('user'):
        options.update(user=params['user'], password=params.get('password') or None)
    if params.get('token'):
        options['token'] = params['token']
    if params.get('creds_file'):
        options['user_credentials'] = params['creds_file']
    nc = nats.aio.client.Client()
    try:
        await asyncio.wait_for(nc.connect(**options), params['connect_timeout'] + 1.0)
    except Exception as exc:  # nats-py raises several unrelated types here
        await _close(nc)
        reason = log.errors[-1] if log.errors else redact(str(exc) or type(exc).__name__, params)
        raise NatsUnreachable(redact('cannot connect to NATS at %s within %.1f s: %s' % (
            redact_url(params['url']), params['connect_timeout'], reason), params))
    log.disconnects = log.error_count = 0  # the first connect's failed attempts are not outages
    log.errors.clear()
    return nc


async def _close(nc):
    try:
        if not nc.is_closed:
            await nc.close()
    except Exception:  # closing a half-open client: nothing left to save
        pass


def _r(value):
    return round(value, 6) if value is not None else None


# ================================================================================ the traffic

class Traffic:
    """One run on a connected client nc (nats-py); run() returns the observations."""

    def __init__(self, nc, params, log, clock=time.monotonic, wall=time.time):
        self.nc, self.params, self.log, self.clock, self.sleep = nc, params, log, clock, asyncio.sleep
        self.mono0, self.wall0 = clock(), wall()
        self.targets = plan_targets(params['targets'])
        extra = {str(k): str(v) for k, v in (params.get('headers') or {}).items()}
        self.headers = [dict(extra, **({TARGET_HEADER: t['host']} if t['host'] else {})) or None
                        for t in self.targets]
        payload = params.get('payload', b'')
        if not isinstance(payload, (str, bytes)):
            payload = json.dumps(payload)
        self.payload = payload.encode('utf-8') if isinstance(payload, str) else payload
        self.schedule = Schedule(params['rate'], params['duration'], 1)
        self.requests, self.replies, self.events = [], [], []
        self.answered = bytearray(self.schedule.total)
        self.waiting = 0            # sent requests without a reply yet
        self.listening = True       # replies are recorded until the grace period ends
        self.no_responders = [0] * len(self.targets)
        self.unmatched = 0
        self.items, self.overflow = 0, None
        self.controls, self.status = {}, dict(start=[], end=[])
        self.inbox = None

    def now(self):
        return self.wall0 + (self.clock() - self.mono0)

    def _room(self, what):
        if self.items >= MAX_TRAFFIC_ITEMS:
            self.overflow = self.overflow or ('%s and later items not recorded: the observations hold at most %d '
                                              'requests, replies and event copies' % (what, MAX_TRAFFIC_ITEMS))
            return False
        self.items += 1
        return True

    # -- callbacks

    async def _on_reply(self, msg):
        at = self.now()
        token = msg.subject[len(self.inbox) + 1:]
        if token[:1] == 's':
            control = self.controls.get(token)
            if control is not None and control['at'] is None and not is_no_responders(msg):
                control['at'], control['body'] = at, _json(msg.data)
            elif control is not None and is_no_responders(msg):
                control['done'] = True
            return
        if not token.isdigit() or int(token) >= len(self.requests) or not self.listening:
            self.unmatched += 1
            return
        slot = int(token)
        if is_no_responders(msg):
            self.no_responders[slot % len(self.targets)] += 1
            if not self.answered[slot]:
                self.answered[slot] = 2
                self.waiting -= 1
            return
        if not self.answered[slot]:
            self.waiting -= 1
        self.answered[slot] = 1
        if self._room('reply to r%d' % slot):
            responder = header(msg.headers, HOST_HEADER) or self.targets[slot % len(self.targets)]['target']
            self.replies.append(['r%d' % slot, responder, _r(at), reply_is_error(msg.headers, msg.data)])

    def _on_event(self, family):
        async def on_event(msg):
            at = self.now()
            if not self._room('event copy on %s' % msg.subject):
                return
            body = _json(msg.data) if msg.data[:1] == b'{' else None
            body = body if isinstance(body, dict) else {}
            seq, ts = body.get('seq'), body.get('ts')
            self.events.append([
                family, header(msg.headers, MSG_ID_HEADER), _r(at), _text(body.get('agent')), _text(body.get('host')),
                seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
                _r(ts) if _finite(ts) else None,
                body.get('unified') if isinstance(body.get('unified'), bool) else None])
        return on_event

    # -- sending

    async def _send(self, slot, intended):
        index = slot % len(self.targets)
        item = ['r%d' % slot, index, _r(self.wall0 + (intended - self.mono0)), None]
        self.requests.append(item)
        self.items += 1
        if not self.nc.is_connected:
            return  # cut off from the server: unsent (lost), not buffered for later
        try:
            await self.nc.publish(self.targets[index]['subject'], self.payload, reply='%s.%d' % (self.inbox, slot),
                                  headers=self.headers[index])
        except Exception as exc:  # the connection broke under us: this one is unsent too
            await self.log.error(exc)
            return
        item[3] = _r(self.now())
        self.waiting += 1

    async def _statuses(self, when):
        verb = self.params.get('status_verb')
        asked = []
        for target in self.targets:
            subject = status_subject(target['subject'], verb) if verb else None
            key = (subject, target['host'])
            if subject is None or key in asked:
                continue
            asked.append(key)
            cid = 's%d' % len(self.controls)
            control = self.controls[cid] = dict(when=when, subject=subject, host=target['host'], at=None, body=None,
                                                done=False)
            if self.nc.is_connected:
                try:
                    await self.nc.publish(subject, b'', reply='%s.%s' % (self.inbox, cid),
                                          headers={TARGET_HEADER: target['host']} if target['host'] else None)
                except Exception as exc:
                    await self.log.error(exc)
                    control['done'] = True
            else:
                control['done'] = True
        mine = [c for c in self.controls.values() if c['when'] == when]
        await self._wait(lambda: all(c['at'] is not None or c['done'] for c in mine),
                         self.clock() + self.params['timeout'])
        for control in mine:
            body = control['body'] if isinstance(control['body'], dict) else {}
            answered = control['at'] is not None and body.get('ok') is not False
            seq, boot = body.get('last_seq'), body.get('boot_id')
            self.status[when].append([
                control['subject'], control['host'], _r(control['at']), answered, _text(body.get('agent')),
                _text(body.get('id')), _text(body.get('host')),
                boot if isinstance(boot, (int, str)) and not isinstance(boot, bool) else None,
                seq if isinstance(seq, int) and not isinstance(seq, bool) else None,
                body.get('unified') if isinstance(body.get('unified'), bool) else None])

    # Poll done() until deadline (not returning before not_before): the probe's wait, on self.clock and self.sleep.
    _wait = Probe._wait

    # -- the run

    async def run(self):
        nc, params = self.nc, self.params
        started = self.now()
        self.inbox = nc.new_inbox()
        subs = [await nc.subscribe(self.inbox + '.*', cb=self._on_reply)]
        for event in params.get('event_subjects') or []:
            subs.append(await nc.subscribe(event['subject'], cb=self._on_event(event['family'])))
        await nc.flush(timeout=max(params['timeout'], 1.0))  # the server has our interest before t0
        await self._statuses('start')
        t0 = self.clock()
        await generate(self.schedule, self._send, t0, self.clock)
        end = self.clock()
        await self._wait(lambda: self.waiting <= 0, end + params['timeout'], not_before=end + SETTLE_S)
        self.listening = False  # a reply from now on is not seen: its request is lost
        await self._statuses('end')
        await asyncio.sleep(SETTLE_S)  # event copies in flight when the status answers left
        for sub in subs:
            try:
                await sub.unsubscribe()
            except Exception:  # cut off at the end: the subscriptions die with the connection
                pass
        return self.observations(started, self.now(), (end - t0))

    def observations(self, started, ended, seconds):
        sent = sum(1 for item in self.requests if item[3] is not None)
        answered = sum(1 for flag in self.answered if flag == 1)
        accountable = sum(1 for item in self.events if _publisher(item[1], item[5]) is not None)
        counts = dict(
            scheduled=self.schedule.total, requests=len(self.requests), sent=sent, unsent=len(self.requests) - sent,
            answered=answered, no_responders=sum(self.no_responders),
            unanswered=sent - answered - sum(1 for flag in self.answered if flag == 2),
            replies=len(self.replies), duplicate_replies=len(self.replies) - answered,
            error_replies=sum(1 for item in self.replies if item[3]), unmatched_replies=self.unmatched,
            events=len(self.events), events_accountable=accountable,
            events_unaccountable=len(self.events) - accountable,
            requests_seconds=round(seconds, 3),
            achieved_rate=round(sent / seconds, 3) if seconds > 0 else None)
        targets = [dict(t, no_responders=n) for t, n in zip(self.targets, self.no_responders)]
        return dict(
            version=OBSERVATIONS_VERSION, name=self.params.get('name'), started_at=_r(started), ended_at=_r(ended),
            settings=dict(duration=self.params['duration'], rate=self.params['rate'], timeout=self.params['timeout'],
                          status_verb=self.params.get('status_verb') or None),
            targets=targets, event_subjects=[dict(subject=e['subject'], family=e['family'])
                                             for e in self.params.get('event_subjects') or []],
            families=sorted({e['family'] for e in self.params.get('event_subjects') or []}),
            requests=dict(fields=list(REQUEST_FIELDS), items=self.requests),
            replies=dict(fields=list(REPLY_FIELDS), items=self.replies),
            events=dict(fields=list(EVENT_FIELDS), items=self.events),
            status=dict(fields=list(STATUS_FIELDS), start=self.status['start'], end=self.status['end']),
            counts=counts, event_accounting=event_accounting(counts, self.params.get('event_subjects')),
            connection=dict(self.log.record(), client_id=getattr(self.nc, 'client_id', None)),
            items=self.items, max_items=MAX_TRAFFIC_ITEMS, overflow=self.overflow)


async def run_traffic(params, connect=connect_reconnecting, clock=time.monotonic, wall=time.time):
    """Connect (reconnecting through outages), run the traffic, close; returns the observations."""
    problems = validate(params)
    if problems:
        raise ValueError('; '.join(problems))
    traffic = None
    log = ConnectionLog(params, lambda: traffic.now() if traffic else wall())
    nc = await connect(params, log)
    try:
        traffic = Traffic(nc, params, log, clock=clock, wall=wall)
        return await traffic.run()
    finally:
        await _close(nc)


def event_accounting(counts, event_subjects):
    """How the events of this run can be accounted for, in words (the record and the summary say it)."""
    if not event_subjects:
        return 'none: no event_subjects were given, so no event is accounted for'
    if not counts['events']:
        return 'none: no event was received (the ledger has nothing published to account for)'
    if not counts['events_unaccountable']:
        return 'sequence: every event copy carries its publisher and seq (Nats-Msg-Id <publisher>.<seq>)'
    return ('partial: %d of %d event copies carry no publisher sequence (Nats-Msg-Id <publisher>.<seq> with the '
            "body's seq) and cannot be accounted for: they reach the ledger as unmatched"
            % (counts['events_unaccountable'], counts['events']))


def summary(observations):
    """One line: the requests (sent, unsent, answered, no responders, duplicates), events and connection."""
    c, conn = observations['counts'], observations['connection']
    return ('%s: %d requests at %s/s (%d unsent while cut off), %d answered, %d no responders, %d unanswered, '
            '%d duplicate and %d error replies; %d event copies (%d not accountable); %d disconnects, %d reconnects%s'
            % (observations.get('name') or 'traffic', c['requests'], c['achieved_rate'], c['unsent'], c['answered'],
               c['no_responders'], c['unanswered'], c['duplicate_replies'], c['error_replies'], c['events'],
               c['events_unaccountable'], conn['disconnects'], conn['reconnects'],
               '; OVERFLOW: %s' % observations['overflow'] if observations.get('overflow') else ''))


def encode_observations(observations):
    """The observations as compact JSON bytes (what the module writes to dest, atomically); ValueError for
    a NaN or infinity, which JSON cannot carry."""
    return json.dumps(observations, separators=(',', ':'), allow_nan=False).encode('utf-8')


def _json(data):
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None


def _text(value):
    return value if isinstance(value, str) and value else None


def _finite(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


# ================================================================================ ledger inputs

def _publisher(msg_id, seq):
    """The publisher (process) of an event copy whose Nats-Msg-Id is '<publisher>.<seq>', else None."""
    if not isinstance(msg_id, str) or seq is None or isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        return None
    tail = '.%d' % seq
    return msg_id[:-len(tail)] if msg_id.endswith(tail) and len(msg_id) > len(tail) else None


def _rows(observations, section, fields):
    """The items of one section as dicts of their fields; TrafficError naming the item otherwise."""
    block = observations.get(section)
    if not isinstance(block, dict) or list(block.get('fields') or ()) != list(fields):
        raise TrafficError('%s.fields: must be %s' % (section, ', '.join(fields)))
    items = block.get('items')
    if not isinstance(items, list):
        raise TrafficError('%s.items: must be a list' % section)
    for index, item in enumerate(items):
        if not isinstance(item, list) or len(item) != len(fields):
            raise TrafficError('%s.items[%d]: must be a list of %s, got %r' % (section, index, ', '.join(fields),
                                                                               item))
        yield dict(zip(fields, item))


def _interpolate(anchors, seq):
    """The time of seq between the anchors (seq, time), sorted by seq: linear between the two around
    it, the nearest one's beyond them; None without anchors."""
    if not anchors:
        return None
    seqs = [a[0] for a in anchors]
    right = bisect.bisect_left(seqs, seq)
    if right < len(anchors) and anchors[right][0] == seq:
        return anchors[right][1]
    if right == 0:
        return anchors[0][1]
    if right == len(anchors):
        return anchors[-1][1]
    (s0, t0), (s1, t1) = anchors[right - 1], anchors[right]
    return t0 + (t1 - t0) * (seq - s0) / (s1 - s0)


def ledger_inputs(observations):
    """build_ledger's requests, replies, published and received from the observations of one run:
    ``fleet_ledger.build_ledger(mode, window, **ledger_inputs(obs), timeout=..., budget=...)``.
    Pure; TrafficError when the observations are not this version's, overflowed, or malformed."""
    if not isinstance(observations, dict) or observations.get('version') != OBSERVATIONS_VERSION:
        raise TrafficError('not nats_traffic observations of version %d' % OBSERVATIONS_VERSION)
    if observations.get('overflow'):
        raise TrafficError('the observations are incomplete (%s): the ledger cannot account for what was not '
                           'recorded; lower rate or duration (fleet_traffic.MAX_TRAFFIC_ITEMS = %d)'
                           % (observations['overflow'], MAX_TRAFFIC_ITEMS))
    targets = observations.get('targets')
    if not isinstance(targets, list) or not targets:
        raise TrafficError('targets: must be a non-empty list')
    requests = []
    for index, item in enumerate(_rows(observations, 'requests', REQUEST_FIELDS)):
        if not isinstance(item['target'], int) or not 0 <= item['target'] < len(targets):
            raise TrafficError('requests[%d].target: must index targets (0 to %d), got %r' % (
                index, len(targets) - 1, item['target']))
        target = targets[item['target']]
        requests.append(dict(id=item['id'], subject=target['subject'], target=target['target'],
                             intended_at=item['intended_at'], sent_at=item['sent_at']))
    replies = [dict(request=item['request'], responder=item['responder'], at=item['at'], error=bool(item['error']))
               for item in _rows(observations, 'replies', REPLY_FIELDS)]
    published, received = _events(observations)
    return dict(requests=requests, replies=replies, published=published, received=received)


def _events(observations):
    families = [f for f in FAMILIES if f in (observations.get('families') or ())]
    status = observations.get('status') or {}
    if status.get('fields', list(STATUS_FIELDS)) != list(STATUS_FIELDS):
        raise TrafficError('status.fields: must be %s' % ', '.join(STATUS_FIELDS))

    def statuses(when):
        rows = [dict(zip(STATUS_FIELDS, row)) for row in status.get(when) or []]
        return [row for row in rows if row['answered'] and row['id'] and row['instance'] and row['boot_id'] is not None
                and isinstance(row['last_seq'], int)]

    # The reference agent's publisher of a status answer: <id>.<host>.<boot id>.
    start = {'%s.%s.%s' % (r['id'], r['instance'], r['boot_id']): r for r in statuses('start')}
    end = {'%s.%s.%s' % (r['id'], r['instance'], r['boot_id']): r for r in statuses('end')}
    there_at_start = {(r['id'], r['instance']) for r in start.values()}

    publishers, received = {}, []
    for index, item in enumerate(_rows(observations, 'events', EVENT_FIELDS)):
        if item['family'] not in FAMILIES:
            raise TrafficError('events[%d].family: must be one of %s, got %r' % (index, ', '.join(FAMILIES),
                                                                                 item['family']))
        key = _publisher(item['msg_id'], item['seq'])
        if key is None:  # not accountable: received, published by nobody the ledger knows (unmatched)
            received.append(dict(msg_id=item['msg_id'] or 'no-msg-id-%d' % index, subject=item['family'],
                                 at=item['at']))
            continue
        if key in start and item['seq'] <= start[key]['last_seq']:
            continue  # published before the run started
        entry = publishers.setdefault(key, dict(agent=None, host=None, seqs={}, unified=False, first=item['at']))
        entry['agent'] = entry['agent'] or item['agent']
        entry['host'] = entry['host'] or item['host']
        entry['unified'] |= item['unified'] is True or item['family'] == 'unified'
        entry['first'] = min(entry['first'], item['at'])
        ts = item['ts'] if item['ts'] is not None else item['at']
        entry['seqs'][item['seq']] = min(ts, entry['seqs'].get(item['seq'], ts))
        received.append(dict(msg_id=item['msg_id'], subject=item['family'], at=item['at']))
    for key, row in end.items():  # a process that answered at the end but whose events were all lost
        if key not in publishers and (key not in start or row['last_seq'] > start[key]['last_seq']):
            publishers[key] = dict(agent=None, host=None, seqs={}, unified=False, first=row['at'])

    ranks = {}
    for key in sorted(publishers, key=lambda k: publishers[k]['first']):
        entry = publishers[key]
        row = end.get(key) or start.get(key) or {}
        entry['agent'] = entry['agent'] or row.get('agent') or key
        entry['host'] = entry['host'] or row.get('instance')
        entry['unified'] |= row.get('unified') is True
        instance = (entry['agent'], entry['host'])
        entry['rank'] = ranks[instance] = ranks.get(instance, -1) + 1

    published, total = [], 0
    for key, entry in publishers.items():
        seqs = entry['seqs']
        anchors = sorted(seqs.items())
        if key in start:
            first = start[key]['last_seq'] + 1
            anchors.insert(0, (start[key]['last_seq'], start[key]['at']))
        elif (_id_host(key) in there_at_start) or (seqs and min(seqs) == 1):
            first = 1  # started during the run (its instance answered at the start with another process)
        else:
            first = min(seqs) if seqs else 1
        last = max(seqs) if seqs else first - 1
        if key in end:
            last = max(last, end[key]['last_seq'])
            anchors.append((end[key]['last_seq'], end[key]['at']))
        anchors.sort()
        own = [f for f in families if f == 'legacy' or entry['unified']]
        total += max(0, last - first + 1) * len(own)
        if total > MAX_TRAFFIC_ITEMS:
            raise TrafficError('the events published come to over %d copies (fleet_traffic.MAX_TRAFFIC_ITEMS): '
                               'publisher %s from seq %d to %d' % (MAX_TRAFFIC_ITEMS, key, first, last))
        for seq in range(first, last + 1):
            at = seqs.get(seq)
            at = at if at is not None else _interpolate(anchors, seq)
            for family in own:
                event = dict(agent=entry['agent'], msg_id='%s.%d' % (key, seq), subject=family,
                             seq=entry['rank'] * BOOT_SEQ_STRIDE + seq)
                if entry['host']:
                    event['host'] = entry['host']
                if at is not None:
                    event['published_at'] = round(at, 6)
                published.append(event)
    return published, received


def _id_host(key):
    """(agent id, host) of a reference-agent publisher <id>.<host>.<boot id>; the id has no dot."""
    head, _, _boot = key.rpartition('.')
    agent_id, _, host = head.partition('.')
    return agent_id, host
