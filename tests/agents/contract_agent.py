#!/usr/bin/env python3
"""A fleet agent written from shared/contract.md alone: a test double for "agents we did not write".

This program was written from the "The fleet" and "Subjects" sections of the contract only, without
looking at the project's reference agent, and on purpose has none of its extensions: no
`Agent-Target` header (ignored: every instance of the queue group may answer), no `Agent-Host`
header or host field (it neither reads nor sends a host name), no `emit` or `status` verb (every
verb gets the same small answer). Tests and acceptance runs install it in place of the reference
agent to show that the playbooks measure every criterion from the subjects, the hosts and the NATS
server's own monitoring, as they must for a real fleet.

Configuration, from the environment (systemd reads it from /etc/agents/<name>.env):

  AGENT_NAME, AGENT_ID, CAPABILITY_CLUSTER   the identity (subject tokens: no dots, spaces, * or >)
  NATS_URL                                   the server(s), comma-separated
  ENABLE_UNIFIED_SUBJECTS                    true or false (the flag the waves flip)
  LEGACY_SUBJECT_PREFIX                      default agent.{name}
  UNIFIED_SUBJECT_PREFIX                     default agents.{cluster}.{id}
  NATS_USER, NATS_PASSWORD                   optional credentials (the role writes them when set)
  HEARTBEAT_INTERVAL_S                       seconds between heartbeat events, default 1.0
  FAULT_DROP_UNIFIED_PCT                     percent of unified event copies not published, default 0:
                                             deterministic, exactly that share of every 100 copies
  FAULT_REPLY_DELAY_MS                       milliseconds before each reply, default 0

Any other key (AGENT_HOST, the reference agent's knobs...) is ignored. A missing or invalid setting
exits 78 (EX_CONFIG) with a message on stderr.

Subjects: commands `<prefix>.cmd.<verb>`, events `<prefix>.evt.<type>`. Flag off: commands are
taken on the legacy prefix only and events published there only. Flag on: commands on both
prefixes (dual subscription) and every event published on both (dual publishing), both copies
carrying the same `Nats-Msg-Id` header, a fresh id per event.

Commands are subscribed in the queue group named after the agent (AGENT_NAME), as a typical
production agent does: with the fleet's three instances (one per host), a request gets exactly one
answer, from one of them, on either subject. The answer is `{"ok": true, "agent": <name>,
"verb": <verb>}` with no headers. Events: `heartbeat` every HEARTBEAT_INTERVAL_S, body
`{"agent", "id", "type", "seq", "ts"}`; `seq` counts this process's events from 1.

Runs forever, reconnecting to NATS forever; SIGTERM (or SIGINT) drains the connection and exits 0.
Pure standard library plus nats-py (`import nats`), Python 3.9+.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
import signal
import sys
import time
import uuid
from typing import Dict, List, Mapping, Optional

EX_CONFIG = 78
# A subject token: no separators, wildcards or whitespace (NATS subjects are split on dots).
_TOKEN = re.compile(r"^[^\s.*>]+$")
_FLAG_VALUES = {"true": True, "false": False}


class ConfigError(Exception):
    """A setting the agent cannot run with."""


class Config:
    def __init__(self, env: Mapping[str, str]) -> None:
        self.name = self._token(env, "AGENT_NAME")
        self.id = self._token(env, "AGENT_ID")
        self.cluster = self._token(env, "CAPABILITY_CLUSTER")
        self.url = self._required(env, "NATS_URL")
        self.servers = [part.strip() for part in self.url.split(",") if part.strip()]
        flag = self._required(env, "ENABLE_UNIFIED_SUBJECTS").strip().lower()
        if flag not in _FLAG_VALUES:
            raise ConfigError(f"ENABLE_UNIFIED_SUBJECTS must be true or false, got {flag!r}")
        self.unified = _FLAG_VALUES[flag]
        self.legacy_prefix = self._prefix(env, "LEGACY_SUBJECT_PREFIX", "agent.{name}")
        self.unified_prefix = self._prefix(env, "UNIFIED_SUBJECT_PREFIX", "agents.{cluster}.{id}")
        if self.unified and self.legacy_prefix == self.unified_prefix:
            raise ConfigError(
                f"LEGACY_SUBJECT_PREFIX and UNIFIED_SUBJECT_PREFIX both give {self.legacy_prefix!r}: "
                "dual subscription needs two different subjects"
            )
        self.user = env.get("NATS_USER") or None
        self.password = env.get("NATS_PASSWORD") or None
        self.heartbeat_interval = self._number(env, "HEARTBEAT_INTERVAL_S", 1.0, 0.001, 3600.0, "seconds")
        self.drop_unified_pct = self._number(env, "FAULT_DROP_UNIFIED_PCT", 0.0, 0.0, 100.0, "percent")
        self.reply_delay = self._number(env, "FAULT_REPLY_DELAY_MS", 0.0, 0.0, 600000.0, "milliseconds") / 1000.0

    @property
    def prefixes(self) -> List[str]:
        """Where commands are taken and events published: legacy first, unified when the flag is on."""
        return [self.legacy_prefix, self.unified_prefix] if self.unified else [self.legacy_prefix]

    @staticmethod
    def _required(env: Mapping[str, str], key: str) -> str:
        value = env.get(key, "")
        if not value.strip():
            raise ConfigError(f"{key} is missing or empty")
        return value

    def _token(self, env: Mapping[str, str], key: str) -> str:
        value = self._required(env, key)
        if not _TOKEN.match(value):
            raise ConfigError(f"{key} must be one subject token (no dots, spaces, * or >), got {value!r}")
        return value

    def _prefix(self, env: Mapping[str, str], key: str, default: str) -> str:
        pattern = env.get(key) or default
        try:
            prefix = pattern.format(name=self.name, id=self.id, cluster=self.cluster)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"{key} {pattern!r} is not a pattern of {{name}}, {{id}}, {{cluster}}: {exc}") from None
        if not all(_TOKEN.match(token) for token in prefix.split(".")):
            raise ConfigError(f"{key} {pattern!r} gives {prefix!r}, which is not a subject without wildcards")
        return prefix

    @staticmethod
    def _number(env: Mapping[str, str], key: str, default: float, low: float, high: float, unit: str) -> float:
        raw = env.get(key, "").strip()
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and low <= value <= high):
            raise ConfigError(f"{key} must be a number in [{low:g}, {high:g}] {unit}, got {raw!r}")
        return value


class UnifiedDropper:
    """Which unified copies FAULT_DROP_UNIFIED_PCT drops: copy n (from 1) is dropped when
    floor(n * pct / 100) steps up, so any 100 consecutive copies lose exactly pct of them
    (for a whole pct), spread evenly, the same way on every run."""

    def __init__(self, pct: float) -> None:
        self.pct = pct
        self.copies = 0

    def drop_next(self) -> bool:
        self.copies += 1
        return math.floor(self.copies * self.pct / 100.0) > math.floor((self.copies - 1) * self.pct / 100.0)


class Agent:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.nc = None
        self.stopping: Optional[asyncio.Event] = None  # made in run(): Python 3.9 binds it to a loop
        self.seq = 0
        self.dropper = UnifiedDropper(config.drop_unified_pct)
        self._replies: set = set()

    def log(self, text: str) -> None:
        print(f"contract-agent {self.config.name}: {text}", flush=True)

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> int:
        import nats

        self.stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)

        config = self.config
        options = dict(
            servers=config.servers,
            name=f"contract-agent {config.name}",
            allow_reconnect=True,
            max_reconnect_attempts=-1,  # forever, the first connection included
            reconnect_time_wait=1,
            connect_timeout=2,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        if config.user:
            options.update(user=config.user, password=config.password or "")

        connecting = asyncio.ensure_future(nats.connect(**options))
        stop_wait = asyncio.ensure_future(self.stopping.wait())
        await asyncio.wait({connecting, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if not connecting.done():  # stopped before NATS was ever reached
            connecting.cancel()
            self.log("stopped before connecting to NATS")
            return 0
        stop_wait.cancel()
        self.nc = connecting.result()

        for prefix in config.prefixes:
            await self.nc.subscribe(f"{prefix}.cmd.>", queue=config.name, cb=self._on_command)
        await self.nc.flush()
        self.log(
            "started, flag {flag}; commands on {cmds} (queue group {queue}); events on {evts}".format(
                flag="on (dual subscription and publishing)" if config.unified else "off (legacy only)",
                cmds=", ".join(f"{p}.cmd.>" for p in config.prefixes),
                queue=config.name,
                evts=", ".join(f"{p}.evt.<type>" for p in config.prefixes),
            )
        )

        heartbeat = asyncio.ensure_future(self._heartbeat())
        await self.stopping.wait()
        self.log("SIGTERM: draining")
        heartbeat.cancel()
        try:
            await heartbeat
        except asyncio.CancelledError:
            pass
        if self._replies:
            await asyncio.wait(set(self._replies), timeout=5)
        try:
            await asyncio.wait_for(self.nc.drain(), timeout=10)
        except Exception as exc:  # reconnecting, already closed, or too slow: close regardless
            self.log(f"drain did not complete ({type(exc).__name__}); closing")
            if not self.nc.is_closed:
                await self.nc.close()
        self.log("stopped")
        return 0

    async def _on_error(self, exc: Exception) -> None:
        self.log(f"NATS error: {type(exc).__name__}: {exc}")

    async def _on_disconnected(self) -> None:
        if self.stopping is not None and not self.stopping.is_set():
            self.log("disconnected from NATS; reconnecting")

    async def _on_reconnected(self) -> None:
        self.log(f"reconnected to {self.nc.connected_url.geturl() if self.nc and self.nc.connected_url else 'NATS'}")

    # ------------------------------------------------------------ commands

    async def _on_command(self, msg) -> None:
        # One task per request, so a reply delay delays each request, not the queue behind it.
        task = asyncio.ensure_future(self._reply(msg))
        self._replies.add(task)
        task.add_done_callback(self._replies.discard)

    async def _reply(self, msg) -> None:
        if not msg.reply:
            return
        verb = msg.subject.split(".cmd.", 1)[-1]
        for prefix in self.config.prefixes:
            if msg.subject.startswith(prefix + ".cmd."):
                verb = msg.subject[len(prefix) + 5:]
                break
        if self.config.reply_delay:
            await asyncio.sleep(self.config.reply_delay)
        body = json.dumps({"ok": True, "agent": self.config.name, "verb": verb}).encode()
        try:
            # A plain publish: Msg.respond() would echo the request's headers back.
            await self.nc.publish(msg.reply, body)
        except Exception as exc:
            self.log(f"reply to {msg.subject} not sent: {type(exc).__name__}: {exc}")

    # ------------------------------------------------------------ events

    async def publish_event(self, event_type: str, fields: Optional[Dict[str, object]] = None) -> None:
        self.seq += 1
        body = {"agent": self.config.name, "id": self.config.id, "type": event_type, "seq": self.seq, "ts": time.time()}
        body.update(fields or {})
        data = json.dumps(body).encode()
        headers = {"Nats-Msg-Id": uuid.uuid4().hex}
        await self.nc.publish(f"{self.config.legacy_prefix}.evt.{event_type}", data, headers=headers)
        if self.config.unified and not self.dropper.drop_next():
            await self.nc.publish(f"{self.config.unified_prefix}.evt.{event_type}", data, headers=headers)

    async def _heartbeat(self) -> None:
        interval = self.config.heartbeat_interval
        next_at = time.monotonic()
        while True:
            try:
                await self.publish_event("heartbeat")
            except Exception as exc:  # disconnected with a full buffer: skip this beat
                self.log(f"heartbeat not published: {type(exc).__name__}: {exc}")
            next_at += interval
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (a stall): carry on from now rather than bursting
                next_at, delay = time.monotonic(), 0
            await asyncio.sleep(delay)


def main() -> int:
    try:
        config = Config(os.environ)
    except ConfigError as exc:
        print(f"contract-agent: configuration error: {exc}", file=sys.stderr, flush=True)
        return EX_CONFIG
    try:
        import nats  # noqa: F401
    except ImportError as exc:
        print(f"contract-agent: nats-py is not importable ({exc}); put its wheel on PYTHONPATH", file=sys.stderr)
        return EX_CONFIG
    return asyncio.run(Agent(config).run())


if __name__ == "__main__":
    sys.exit(main())
