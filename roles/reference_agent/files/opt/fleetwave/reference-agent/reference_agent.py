#!/usr/bin/env python3
"""fleetwave reference agent: the stand-in workload for the progressive rollout.

One process is one agent instance (systemd ``agent@<name>.service``), configured only
through environment variables (the ``/etc/agents/<name>.env`` file):

* required: AGENT_NAME, AGENT_ID, CAPABILITY_CLUSTER, NATS_URL, ENABLE_UNIFIED_SUBJECTS;
* optional: AGENT_HOST, HEARTBEAT_INTERVAL, LEGACY_SUBJECT_PREFIX (``agent.{name}``),
  UNIFIED_SUBJECT_PREFIX (``agents.{cluster}.{id}``), NATS_USER/NATS_PASSWORD,
  NATS_TOKEN, NATS_CREDS;
* load limits: EMIT_RATE (events per second one instance may emit, default 1000), EMIT_BURST
  (the bucket: the most events one ``emit`` may ask for, default 2000, at most 10000),
  MAX_INFLIGHT_REQUESTS (requests handled at once, default 256);
* fault knobs (off by default): FAULT_DROP_UNIFIED_RATE, FAULT_REPLY_DELAY_MS,
  FAULT_CRASH_AFTER_S, FAULT_REFUSE_START.

Subjects: commands arrive on ``<legacy>.cmd.<verb>`` and, with the flag on, also on
``<unified>.cmd.<verb>`` (dual subscription, no queue group: every instance of an agent
type sees every request; the ``Agent-Target`` header narrows a request to one host).
Every event is published on ``<legacy>.evt.<type>`` and, with the flag on, also on
``<unified>.evt.<type>`` (dual publishing); both copies carry the same headers
(``Nats-Msg-Id``, unique per event, and ``Agent-Host: <host>``, naming the instance, as
replies do) and the same JSON payload. Verbs: ping, status, emit, fail.

Load bounds (one request reaches every instance of an agent type, so nothing a request
asks for may be unbounded): ``emit`` draws its count from a token bucket refilled at
EMIT_RATE events/s up to EMIT_BURST. A count above EMIT_BURST, or above the tokens left,
is refused whole (ok=false, ``Agent-Error: rate-limited``, the message names the limit),
never clipped, so an emit either publishes exactly what it confirms or nothing. While
MAX_INFLIGHT_REQUESTS requests are being handled, a further one is answered at once
with ``Agent-Error: busy`` instead of being queued. An emit publishes in batches and
yields between them, so heartbeats keep their interval during the largest emit.

Exit codes: 0 after SIGTERM/SIGINT and a drained connection, 78 (EX_CONFIG) for a bad
configuration (the unit sets RestartPreventExitStatus=78), 70 for a simulated crash.

Only the standard library and nats-py are used, so the agent runs on Debian's python3
with nats-py imported from a zipped wheel on PYTHONPATH.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import math
import os
import re
import signal
import socket
import string
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Callable, Iterable, Mapping, Optional
from urllib.parse import urlsplit

try:
    import nats
    from nats import errors as nats_errors
except ImportError as exc:  # reported by main() as a deployment (config) error
    nats = None
    nats_errors = None
    _NATS_IMPORT_ERROR: Optional[ImportError] = exc
else:
    _NATS_IMPORT_ERROR = None

PROG = "reference-agent"
EX_OK = 0
EX_SOFTWARE = 70  # simulated crash (FAULT_CRASH_AFTER_S)
EX_CONFIG = 78  # bad configuration: systemd must not restart-loop on it

DEFAULT_LEGACY_PREFIX = "agent.{name}"
DEFAULT_UNIFIED_PREFIX = "agents.{cluster}.{id}"
DEFAULT_HEARTBEAT_INTERVAL = 5.0
PATTERN_FIELDS = ("name", "id", "cluster")

MAX_EMIT = 10_000  # the highest EMIT_BURST, so one emit never asks more (fleet_probe checks it too)
DEFAULT_EMIT_RATE = 1000.0  # events/s per instance; the probe asks 100-200 per window
DEFAULT_EMIT_BURST = 2000
DEFAULT_MAX_INFLIGHT = 256
EMIT_BATCH = 50  # events published between two yields to the event loop
PUBLISH_TIME_WINDOW = 1_000
RECONNECT_WAIT_S = 2  # nats-py waits this long between attempts on one server
SHUTDOWN_BUDGET_S = 4.0  # SIGTERM -> exit well inside systemd's stop timeout

TRUE_WORDS = frozenset({"true", "1", "yes"})
FALSE_WORDS = frozenset({"false", "0", "no"})

# A subject token: no separators, wildcards or whitespace.
_TOKEN_RE = re.compile(r"[^\s.*>]+")

log = logging.getLogger(PROG)


# --------------------------------------------------------------------------- config


class ConfigError(Exception):
    """An invalid setting; str() is the one line printed before exiting 78."""

    _NO_VALUE = object()

    def __init__(self, var: str, problem: str, value: Any = _NO_VALUE) -> None:
        shown = var if value is self._NO_VALUE else f"{var}={value!r}"
        super().__init__(f"{shown} {problem}")
        self.var = var


def _require(env: Mapping[str, str], var: str) -> str:
    raw = env.get(var)
    if raw is None:
        raise ConfigError(var, "is not set (required)")
    return _non_empty(var, raw)


def _non_empty(var: str, raw: str) -> str:
    value = raw.strip()
    if not value:
        raise ConfigError(var, "is empty")
    return value


def parse_bool(var: str, raw: str) -> bool:
    word = _non_empty(var, raw).lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ConfigError(var, "is not a boolean (use true/false)", raw)


def parse_number(var: str, raw: str, *, minimum: float = 0.0, allow_minimum: bool = True) -> float:
    """A finite float >= minimum (> minimum when allow_minimum is false)."""
    value = _non_empty(var, raw)
    try:
        number = float(value)
    except ValueError:
        raise ConfigError(var, "is not a number", raw) from None
    if not math.isfinite(number):
        raise ConfigError(var, "is not a finite number", raw)
    if number < minimum or (number == minimum and not allow_minimum):
        relation = ">=" if allow_minimum else ">"
        raise ConfigError(var, f"must be {relation} {minimum:g}", raw)
    return number


def parse_count(var: str, raw: str, *, maximum: int) -> int:
    """A whole number in 1..maximum."""
    value = _non_empty(var, raw)
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(var, "is not a whole number", raw) from None
    if not 1 <= number <= maximum:
        raise ConfigError(var, f"must be between 1 and {maximum}", raw)
    return number


def parse_rate(var: str, raw: str) -> Fraction:
    """A fraction in 0..1, kept exact so the drop pattern has an exact period."""
    value = _non_empty(var, raw)
    try:
        rate = Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(var, "is not a number (use a fraction 0..1, e.g. 0.03)", raw) from None
    if not 0 <= rate <= 1:
        raise ConfigError(var, "is outside 0..1", raw)
    return rate


def parse_token(var: str, raw: str) -> str:
    """A value that becomes one subject token (agent name, id, cluster)."""
    value = _non_empty(var, raw)
    if not _TOKEN_RE.fullmatch(value):
        raise ConfigError(var, "is not a valid subject token (no dots, spaces or wildcards)", raw)
    return value


def parse_host(var: str, raw: str) -> str:
    """The host name; it goes into headers and message ids, so no whitespace."""
    value = _non_empty(var, raw)
    if any(ch.isspace() for ch in value) or not value.isprintable():
        raise ConfigError(var, "contains whitespace or control characters", raw)
    return value


def is_valid_subject(subject: str) -> bool:
    """True for a literal (wildcard-free) NATS subject."""
    return all(_TOKEN_RE.fullmatch(token) for token in subject.split("."))


def build_prefix(var: str, pattern: str, fields: Mapping[str, str]) -> str:
    """Expand a subject-prefix pattern such as ``agents.{cluster}.{id}``."""
    pattern = _non_empty(var, pattern)
    # Check the placeholders first, so a typo is named instead of a bare KeyError.
    try:
        parsed = list(string.Formatter().parse(pattern))
    except ValueError as exc:
        raise ConfigError(var, f"is not a valid pattern ({exc})", pattern) from None
    allowed = ", ".join("{" + name + "}" for name in PATTERN_FIELDS)
    for _literal, field_name, _spec, _conv in parsed:
        if field_name is not None and field_name not in PATTERN_FIELDS:
            shown = field_name or "{}"
            raise ConfigError(var, f"uses unknown field {shown!r} (use {allowed})", pattern)
    try:
        prefix = pattern.format(**fields)
    except (ValueError, KeyError, IndexError, AttributeError) as exc:
        raise ConfigError(var, f"is not a valid pattern ({exc})", pattern) from None
    if not is_valid_subject(prefix):
        raise ConfigError(
            var, f"expands to {prefix!r}, not a valid subject (empty tokens, spaces or wildcards)", pattern
        )
    return prefix


def parse_nats_urls(var: str, raw: str) -> tuple[str, ...]:
    """Comma-separated server URLs; a bare host:port means nats://host:port."""
    urls = []
    for item in _non_empty(var, raw).split(","):
        url = item.strip()
        if not url:
            raise ConfigError(var, "has an empty entry", redact_url(raw))
        if "://" not in url:
            url = f"nats://{url}"
        problem = None
        try:
            parts = urlsplit(url)
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            problem = f"is not a valid URL ({exc})"
        else:
            if parts.scheme not in ("nats", "tls", "ws", "wss"):
                problem = f"has unsupported scheme {parts.scheme!r} (use nats://host:port)"
            elif not parts.hostname:
                problem = "has no host (use nats://host:port)"
        if problem:
            raise ConfigError(var, problem, redact_url(raw))
        urls.append(url)
    return tuple(urls)


# Optional leading blanks and scheme of one server URL.
_URL_SCHEME = r"\s*(?:[A-Za-z][A-Za-z0-9+.-]*://)?"


def redact_url(url: str) -> str:
    """Hide user info (user:password@, token@, scheme or not) in server URLs before they are logged.

    The rule of the collection's fleet_nats.redact_url, which this file cannot import on the hosts
    (tests/unit/test_fleet_nats.py checks that the two agree): user info runs from the scheme to the
    last '@' of each comma-separated entry (a password may hold '/', ' ', '@', '#', '?'), and, read as
    one URL as nats-py would, to the last '@' before the first '/', '?' or '#' (a ',' in a password).
    Both readings are masked, so at worst a host is hidden, never a secret."""
    spans, start = [], 0
    for entry in url.split(","):
        if "@" in entry:
            spans.append((start + re.match(_URL_SCHEME, entry).end(), start + entry.rfind("@")))
        start += len(entry) + 1
    whole = re.match(_URL_SCHEME + r"([^/?#]*)@", url)
    if whole:
        spans.append(whole.span(1))
    merged: list[list[int]] = []
    for begin, end in sorted(span for span in spans if span[1] > span[0]):
        if merged and begin <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([begin, end])
    for begin, end in reversed(merged):
        url = url[:begin] + "***" + url[end:]
    return url


@dataclass(frozen=True)
class Config:
    name: str
    id: str
    cluster: str
    host: str
    nats_urls: tuple[str, ...]
    unified: bool
    legacy_prefix: str  # expanded, e.g. agent.network-expert
    unified_prefix: str  # expanded, e.g. agents.infrastructure.<id>
    heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL
    user: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    token: Optional[str] = field(default=None, repr=False)
    creds: Optional[str] = None
    drop_unified_rate: Fraction = Fraction(0)
    reply_delay_ms: float = 0.0
    crash_after_s: float = 0.0
    refuse_start: bool = False
    emit_rate: float = DEFAULT_EMIT_RATE
    emit_burst: int = DEFAULT_EMIT_BURST
    max_inflight: int = DEFAULT_MAX_INFLIGHT

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Config":
        """Validate the whole environment; raise ConfigError on the first problem."""
        name = parse_token("AGENT_NAME", _require(env, "AGENT_NAME"))
        agent_id = parse_token("AGENT_ID", _require(env, "AGENT_ID"))
        cluster = parse_token("CAPABILITY_CLUSTER", _require(env, "CAPABILITY_CLUSTER"))
        nats_urls = parse_nats_urls("NATS_URL", _require(env, "NATS_URL"))
        unified = parse_bool("ENABLE_UNIFIED_SUBJECTS", _require(env, "ENABLE_UNIFIED_SUBJECTS"))

        def optional(var: str, parse: Callable[[str, str], Any], default: Any) -> Any:
            raw = env.get(var)
            return default if raw is None else parse(var, raw)

        host = optional("AGENT_HOST", parse_host, None) or socket.gethostname()
        interval = optional(
            "HEARTBEAT_INTERVAL",
            lambda v, r: parse_number(v, r, allow_minimum=False),
            DEFAULT_HEARTBEAT_INTERVAL,
        )
        fields = {"name": name, "id": agent_id, "cluster": cluster}
        legacy_prefix = build_prefix(
            "LEGACY_SUBJECT_PREFIX", env.get("LEGACY_SUBJECT_PREFIX", DEFAULT_LEGACY_PREFIX), fields
        )
        unified_prefix = build_prefix(
            "UNIFIED_SUBJECT_PREFIX", env.get("UNIFIED_SUBJECT_PREFIX", DEFAULT_UNIFIED_PREFIX), fields
        )
        if legacy_prefix == unified_prefix:
            raise ConfigError(
                "UNIFIED_SUBJECT_PREFIX",
                f"expands to {unified_prefix!r}, the same as LEGACY_SUBJECT_PREFIX (they must differ)",
            )

        # Empty credentials mean "not used": env templates often render absent secrets as "".
        user = (env.get("NATS_USER") or "").strip() or None
        password = env.get("NATS_PASSWORD") or None
        token = env.get("NATS_TOKEN") or None
        creds = (env.get("NATS_CREDS") or "").strip() or None
        if bool(user) != bool(password):
            missing = "NATS_PASSWORD" if user else "NATS_USER"
            raise ConfigError(missing, "is not set (NATS_USER and NATS_PASSWORD go together)")
        if sum(map(bool, (user, token, creds))) > 1:
            raise ConfigError("NATS_USER/NATS_TOKEN/NATS_CREDS", "are exclusive (set only one)")
        if creds is not None:
            if not os.access(creds, os.R_OK):
                raise ConfigError("NATS_CREDS", "is not a readable file", creds)
            # nats-py signs with the optional nkeys package; fail now, not at connect.
            if importlib.util.find_spec("nkeys") is None:
                raise ConfigError("NATS_CREDS", "needs the nkeys package, which is not importable", creds)

        return cls(
            name=name,
            id=agent_id,
            cluster=cluster,
            host=host,
            nats_urls=nats_urls,
            unified=unified,
            heartbeat_interval=interval,
            legacy_prefix=legacy_prefix,
            unified_prefix=unified_prefix,
            user=user,
            password=password,
            token=token,
            creds=creds,
            drop_unified_rate=optional("FAULT_DROP_UNIFIED_RATE", parse_rate, Fraction(0)),
            reply_delay_ms=optional("FAULT_REPLY_DELAY_MS", parse_number, 0.0),
            crash_after_s=optional("FAULT_CRASH_AFTER_S", parse_number, 0.0),
            refuse_start=optional("FAULT_REFUSE_START", parse_bool, False),
            emit_rate=optional(
                "EMIT_RATE", lambda v, r: parse_number(v, r, allow_minimum=False), DEFAULT_EMIT_RATE
            ),
            emit_burst=optional("EMIT_BURST", lambda v, r: parse_count(v, r, maximum=MAX_EMIT), DEFAULT_EMIT_BURST),
            max_inflight=optional(
                "MAX_INFLIGHT_REQUESTS", lambda v, r: parse_count(v, r, maximum=100_000), DEFAULT_MAX_INFLIGHT
            ),
        )

    @property
    def subscriptions(self) -> list[str]:
        """Command subjects: legacy always, unified as well when the flag is on."""
        subjects = [command_subject(self.legacy_prefix)]
        if self.unified:
            subjects.append(command_subject(self.unified_prefix))
        return subjects

    @property
    def faults(self) -> dict[str, Any]:
        """The fault knobs that are switched on (reported by ``status``)."""
        active: dict[str, Any] = {}
        if self.drop_unified_rate:
            active["drop_unified_rate"] = float(self.drop_unified_rate)
        if self.reply_delay_ms:
            active["reply_delay_ms"] = self.reply_delay_ms
        if self.crash_after_s:
            active["crash_after_s"] = self.crash_after_s
        return active


# ---------------------------------------------------------------- pure helpers


def command_subject(prefix: str) -> str:
    return f"{prefix}.cmd.>"


def event_subject(prefix: str, event_type: str) -> str:
    return f"{prefix}.evt.{event_type}"


def message_id(agent_id: str, host: str, boot_id: int, seq: int) -> str:
    """The Nats-Msg-Id shared by the legacy and unified copies of one event."""
    return f"{agent_id}.{host}.{boot_id}.{seq}"


def verb_of(subject: str) -> str:
    return subject.rsplit(".", 1)[-1]


def header(headers: Optional[Mapping[str, str]], name: str) -> Optional[str]:
    """Case-insensitive header lookup (nats-py keeps header names as sent)."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


class DropPattern:
    """Deterministic choice of which unified copies to drop (error diffusion).

    After n events, round(n * rate) of them have been dropped (rounding half up), so
    0.03 drops exactly 3 of every 100 consecutive events. Exact fractions keep float
    error out, and the state resets every denominator events so it never grows.
    """

    def __init__(self, rate: Fraction) -> None:
        self.rate = Fraction(rate)
        self._period = self.rate.denominator
        self._seen = 0
        self._dropped = 0

    def should_drop(self) -> bool:
        self._seen += 1
        due = math.floor(self._seen * self.rate + Fraction(1, 2))
        drop = due > self._dropped
        if drop:
            self._dropped += 1
        if self._seen == self._period:  # n * rate is whole here: the pattern repeats
            self._seen = self._dropped = 0
        return drop


class TokenBucket:
    """Up to burst tokens, refilled at rate per second; a draw takes all it asks or nothing."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._at = clock()

    def available(self) -> float:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return self._tokens

    def take(self, count: int) -> bool:
        if count > self.available():
            return False
        self._tokens -= count
        return True


def latency_summary(samples_ms: Iterable[float]) -> dict[str, Any]:
    """count/mean/p50/p99/max (nearest-rank percentiles) in milliseconds."""
    ordered = sorted(samples_ms)
    if not ordered:
        return {"count": 0, "mean": None, "p50": None, "p99": None, "max": None}

    def rank(p: float) -> float:
        return ordered[max(0, math.ceil(p * len(ordered)) - 1)]

    return {
        "count": len(ordered),
        "mean": round(sum(ordered) / len(ordered), 4),
        "p50": round(rank(0.50), 4),
        "p99": round(rank(0.99), 4),
        "max": round(ordered[-1], 4),
    }


class RequestError(Exception):
    """A request answered with ok=false and an Agent-Error header."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def parse_emit_request(data: bytes) -> tuple[int, str]:
    """(count, type) from an ``emit`` body; an empty body means one ``probe`` event."""
    body: Any = {}
    if data.strip():
        try:
            body = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise RequestError("bad-request", "emit body is not JSON") from None
    if not isinstance(body, dict):
        raise RequestError("bad-request", "emit body must be a JSON object")
    count = body.get("count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise RequestError("bad-request", "emit count must be a non-negative integer")
    event_type = body.get("type", "probe")
    if not isinstance(event_type, str) or not _TOKEN_RE.fullmatch(event_type):
        raise RequestError("bad-request", "emit type must be one subject token")
    return count, event_type


# ------------------------------------------------------------------------ agent


class Agent:
    """One running instance: NATS connection, command handlers, event publisher."""

    def __init__(self, config: Config) -> None:
        self.cfg = config
        self.pid = os.getpid()
        self.boot_id = int(time.time() * 1000)  # unique per process start
        self.started = time.monotonic()
        self.nc: Any = None
        self._subs: list[Any] = []
        self._seq = 0
        self._emit_bucket = TokenBucket(config.emit_rate, config.emit_burst)
        self._drop = DropPattern(config.drop_unified_rate)
        self._publish_ms: deque[float] = deque(maxlen=PUBLISH_TIME_WINDOW)
        self._inflight: set[asyncio.Task] = set()
        self._connected_once = False
        self._stopping = False
        self._connect_failures = 0
        self.requests = {"legacy": 0, "unified": 0, "errors": 0, "busy": 0, "rate_limited": 0}
        self.events = {"legacy": 0, "unified": 0, "unified_dropped": 0, "failed": 0}

    # -- lifecycle ------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum, stop)
        if self.cfg.crash_after_s:
            loop.call_later(self.cfg.crash_after_s, self._crash)

        connecting = asyncio.create_task(self._connect())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({connecting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not connecting.done():
            connecting.cancel()
            await asyncio.gather(connecting, return_exceptions=True)
            log.info("stopped before connecting to NATS; exiting")
            return EX_OK
        connecting.result()

        for subject, via in zip(self.cfg.subscriptions, ("legacy", "unified")):
            self._subs.append(await self.nc.subscribe(subject, cb=self._on_request(via)))
        await self.nc.flush()  # the server has the interest before we say we are up
        log.info(
            "started name=%s id=%s cluster=%s host=%s unified=%s pid=%d subscribed=%s events=%s",
            self.cfg.name,
            self.cfg.id,
            self.cfg.cluster,
            self.cfg.host,
            str(self.cfg.unified).lower(),
            self.pid,
            ",".join(self.cfg.subscriptions),
            ",".join(event_subject(p, "<type>") for p in self._event_prefixes()),
        )

        heartbeat = asyncio.create_task(self._heartbeat_loop())
        await stopping
        heartbeat.cancel()
        await asyncio.gather(heartbeat, return_exceptions=True)
        await self._shutdown()
        return EX_OK

    def _on_signal(self, signum: int, stop: asyncio.Event) -> None:
        log.info("received %s: shutting down", signal.Signals(signum).name)
        self._stopping = True
        stop.set()

    def _crash(self) -> None:
        # Abrupt on purpose: no drain, no unsubscribe, as if the process had died.
        log.critical("FAULT_CRASH_AFTER_S=%g elapsed: crashing (exit %d)", self.cfg.crash_after_s, EX_SOFTWARE)
        logging.shutdown()
        os._exit(EX_SOFTWARE)

    async def _connect(self) -> None:
        """Connect, retrying forever; nats-py then reconnects forever on its own."""
        options: dict[str, Any] = {
            "name": f"{self.cfg.name}@{self.cfg.host}",
            "allow_reconnect": True,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": RECONNECT_WAIT_S,
            "connect_timeout": 2,
            "drain_timeout": 2,
            "ping_interval": 10,
            "error_cb": self._on_error,
            "disconnected_cb": self._on_disconnected,
            "reconnected_cb": self._on_reconnected,
            "closed_cb": self._on_closed,
        }
        if self.cfg.user:
            options.update(user=self.cfg.user, password=self.cfg.password)
        if self.cfg.token:
            options["token"] = self.cfg.token
        if self.cfg.creds:
            options["user_credentials"] = self.cfg.creds
        log.info("connecting to %s", redact_url(",".join(self.cfg.nats_urls)))
        # With max_reconnect_attempts=-1, nats-py's own first-connect loop retries each
        # server every RECONNECT_WAIT_S and reports each failure through error_cb.
        self.nc = await nats.connect(list(self.cfg.nats_urls), **options)
        self._connected_once = True
        log.info("connected to %s", self._server())

    async def _shutdown(self) -> None:
        """Stop taking requests, let in-flight replies go out, then drain."""
        nc = self.nc
        deadline = time.monotonic() + SHUTDOWN_BUDGET_S

        def left() -> float:
            return max(0.1, deadline - time.monotonic())

        if not nc.is_connected:
            log.info("not connected: closing without drain")
            await nc.close()
            return
        log.info(
            "draining NATS connection (%d subscriptions, %d requests in flight)", len(self._subs), len(self._inflight)
        )
        try:
            # Draining the subscriptions first stops new requests while the delayed
            # replies (FAULT_REPLY_DELAY_MS) still have a connection to go out on.
            await asyncio.wait_for(asyncio.gather(*(sub.drain() for sub in self._subs)), left())
            if self._inflight:
                await asyncio.wait(set(self._inflight), timeout=left())
            await asyncio.wait_for(nc.drain(), left())
            log.info("drained; exiting")
        except (asyncio.TimeoutError, nats_errors.Error) as exc:
            log.warning("drain incomplete (%s); closing", type(exc).__name__)
            await nc.close()

    # -- connection callbacks ----------------------------------------------------

    def _server(self) -> str:
        url = self.nc.connected_url if self.nc else None
        return f"{url.hostname}:{url.port}" if url else "?"

    async def _on_error(self, exc: Exception) -> None:
        if not self._connected_once:
            self._connect_failures += 1
            log.warning(
                "cannot connect to NATS (attempt %d): %s; retrying in %d s",
                self._connect_failures,
                _describe(exc),
                RECONNECT_WAIT_S,
            )
        else:
            log.warning("NATS error: %s", _describe(exc))

    async def _on_disconnected(self) -> None:
        if self._connected_once and not self._stopping:  # our own close is no news
            log.warning("disconnected from NATS")

    async def _on_reconnected(self) -> None:
        log.info("reconnected to %s", self._server())

    async def _on_closed(self) -> None:
        log.info("NATS connection closed")

    # -- commands ------------------------------------------------------------------

    def _on_request(self, via: str) -> Callable[[Any], Any]:
        async def on_msg(msg: Any) -> None:
            target = header(msg.headers, "Agent-Target")
            if target is not None and target.strip() != self.cfg.host:
                return  # addressed to another instance of this agent type
            if len(self._inflight) >= self.cfg.max_inflight:
                # Answer at once instead of queueing: a flood must not become unbounded tasks.
                self.requests[via] += 1
                self.requests["errors"] += 1
                self.requests["busy"] += 1
                error = f"busy: {len(self._inflight)} requests in flight (MAX_INFLIGHT_REQUESTS={self.cfg.max_inflight})"
                await self._reply(msg, {"ok": False, "verb": verb_of(msg.subject), "error": error}, "busy")
                return
            # nats-py runs one subscription's callbacks one after another, so each
            # request gets its own task: a reply delay must not serialise requests.
            task = asyncio.create_task(self._handle(msg, via))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

        return on_msg

    async def _handle(self, msg: Any, via: str) -> None:
        self.requests[via] += 1
        verb = verb_of(msg.subject)
        error = None
        try:
            body = await self._dispatch(verb, msg, via)
        except RequestError as exc:
            self.requests["errors"] += 1
            body, error = {"ok": False, "verb": verb, "error": str(exc)}, exc.code
        except Exception as exc:  # a bug must cost one request, not the agent
            log.exception("request %s failed", msg.subject)
            self.requests["errors"] += 1
            body, error = {"ok": False, "verb": verb, "error": f"internal error: {type(exc).__name__}"}, "internal"
        if self.cfg.reply_delay_ms:
            await asyncio.sleep(self.cfg.reply_delay_ms / 1000)
        await self._reply(msg, body, error)

    async def _reply(self, msg: Any, body: dict[str, Any], error: Optional[str] = None) -> None:
        if not msg.reply:
            return
        headers = {"Agent-Host": self.cfg.host}
        if error:
            headers["Agent-Error"] = error
        try:
            await self.nc.publish(msg.reply, json.dumps(body).encode(), headers=headers)
        except nats_errors.Error as exc:
            log.warning("cannot reply to %s: %s", msg.subject, _describe(exc))

    async def _dispatch(self, verb: str, msg: Any, via: str) -> dict[str, Any]:
        if verb == "ping":
            return self._identity(verb, msg.subject, via)
        if verb == "status":
            return self._status(msg.subject, via)
        if verb == "emit":
            count, event_type = parse_emit_request(msg.data)
            self._admit_emit(count)
            try:
                first, last = await self.emit(event_type, count)
            except nats_errors.Error as exc:
                raise RequestError("publish-failed", f"emit stopped: {_describe(exc)}") from None
            return {"ok": True, "verb": verb, "emitted": count, "first_seq": first, "last_seq": last}
        if verb == "fail":
            raise RequestError("requested", "requested failure")
        raise RequestError("unknown-verb", f"unknown verb {verb!r}")

    def _admit_emit(self, count: int) -> None:
        """Take count tokens or refuse the whole emit, naming the limit."""
        limit = f"EMIT_RATE={self.cfg.emit_rate:g} events/s, EMIT_BURST={self.cfg.emit_burst}"
        if count > self.cfg.emit_burst:
            problem = f"emit count {count} is above the limit of {self.cfg.emit_burst} events per request"
        elif not self._emit_bucket.take(count):
            left = int(self._emit_bucket.available())
            problem = f"emit of {count} events refused: {left} left under the rate limit, retry later"
        else:
            return
        self.requests["rate_limited"] += 1
        raise RequestError("rate-limited", f"{problem} ({limit})")

    def _identity(self, verb: str, subject: str, via: str) -> dict[str, Any]:
        return {
            "ok": True,
            "verb": verb,
            "agent": self.cfg.name,
            "id": self.cfg.id,
            "cluster": self.cfg.cluster,
            "host": self.cfg.host,
            "pid": self.pid,
            "unified": self.cfg.unified,
            "subject": subject,
            "via": via,
            "ts": time.time(),
        }

    def _status(self, subject: str, via: str) -> dict[str, Any]:
        return {
            **self._identity("status", subject, via),
            "subscriptions": self.cfg.subscriptions,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "boot_id": self.boot_id,
            "last_seq": self._seq,
            "counters": {"requests": dict(self.requests), "events": dict(self.events)},
            "publish_time_ms": latency_summary(self._publish_ms),
            "faults": self.cfg.faults,
            "limits": {
                "emit_rate": self.cfg.emit_rate,
                "emit_burst": self.cfg.emit_burst,
                "max_inflight": self.cfg.max_inflight,
            },
        }

    # -- events ----------------------------------------------------------------------

    def _event_prefixes(self) -> list[str]:
        if self.cfg.unified:
            return [self.cfg.legacy_prefix, self.cfg.unified_prefix]
        return [self.cfg.legacy_prefix]

    async def emit(self, event_type: str, count: int) -> tuple[Optional[int], Optional[int]]:
        """Publish count events in batches; returns (first_seq, last_seq)."""
        if not count:
            return None, None
        # Reserve the whole range up front: the emit's seqs stay contiguous although
        # heartbeats and other emits publish between its batches.
        first = self._seq + 1
        self._seq += count
        for done, seq in enumerate(range(first, first + count), start=1):
            await self._publish_event(event_type, seq)
            if done % EMIT_BATCH == 0:
                await asyncio.sleep(0)  # publish() rarely yields: let heartbeats run
        return first, first + count - 1

    async def _publish_event(self, event_type: str, seq: Optional[int] = None) -> int:
        if seq is None:
            self._seq += 1
            seq = self._seq
        msg_id = message_id(self.cfg.id, self.cfg.host, self.boot_id, seq)
        payload = json.dumps(
            {
                "agent": self.cfg.name,
                "id": self.cfg.id,
                "cluster": self.cfg.cluster,
                "host": self.cfg.host,
                "type": event_type,
                "seq": seq,
                "msg_id": msg_id,
                "ts": time.time(),
                "unified": self.cfg.unified,
            }
        ).encode()
        headers = {"Nats-Msg-Id": msg_id, "Agent-Host": self.cfg.host}
        started = time.perf_counter()
        try:
            await self.nc.publish(event_subject(self.cfg.legacy_prefix, event_type), payload, headers=headers)
            self.events["legacy"] += 1
            if self.cfg.unified:
                if self._drop.should_drop():
                    self.events["unified_dropped"] += 1
                else:
                    await self.nc.publish(event_subject(self.cfg.unified_prefix, event_type), payload, headers=headers)
                    self.events["unified"] += 1
        except nats_errors.Error:
            self.events["failed"] += 1
            raise
        self._publish_ms.append((time.perf_counter() - started) * 1000)
        return seq

    async def _heartbeat_loop(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            try:
                await self._publish_event("heartbeat")
            except nats_errors.Error as exc:
                log.warning("heartbeat not published: %s", _describe(exc))
            # Fixed-rate schedule; beats missed while blocked are skipped, not bursted.
            due = max(due + self.cfg.heartbeat_interval, loop.time())
            await asyncio.sleep(due - loop.time())


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# ------------------------------------------------------------------------- main


def configure_logging() -> None:
    # journald adds timestamps and the unit name; keep lines plain and unbuffered.
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO, handlers=[handler], force=True)


def main(env: Optional[Mapping[str, str]] = None) -> int:
    def config_error(message: str) -> int:
        print(f"{PROG}: config error: {message}", file=sys.stderr, flush=True)
        return EX_CONFIG

    try:
        config = Config.from_env(os.environ if env is None else env)
    except ConfigError as exc:
        return config_error(str(exc))
    if config.refuse_start:
        return config_error("FAULT_REFUSE_START is true: refusing to start (fault injection)")
    if _NATS_IMPORT_ERROR is not None:
        return config_error(f"cannot import nats-py ({_NATS_IMPORT_ERROR}); put its wheel on PYTHONPATH")

    configure_logging()
    try:
        return asyncio.run(Agent(config).run())
    except KeyboardInterrupt:  # a signal that arrived before the handlers were installed
        return EX_OK


if __name__ == "__main__":
    sys.exit(main())
