"""Unit tests of the reference agent's pure parts: configuration, subjects, drop pattern,
message ids, event headers (on a fake connection) and request parsing. No network, no
subprocesses, no sleeps."""

from __future__ import annotations

import asyncio
import json
import math
from fractions import Fraction

import pytest

pytestmark = pytest.mark.unit

AGENT_ID = "01936f88-d2a9-7000-8000-000000000008"
BASE_ENV = {
    "AGENT_NAME": "network-expert",
    "AGENT_ID": AGENT_ID,
    "CAPABILITY_CLUSTER": "infrastructure",
    "NATS_URL": "nats://127.0.0.1:4222",
    "ENABLE_UNIFIED_SUBJECTS": "false",
    "AGENT_HOST": "dgx-1",
}


@pytest.fixture
def ra(reference_agent_module):
    return reference_agent_module


def config(ra, **changes):
    """Config.from_env on BASE_ENV with changes; a None value removes the variable."""
    env = {**BASE_ENV, **changes}
    return ra.Config.from_env({key: value for key, value in env.items() if value is not None})


def config_error(ra, **changes) -> str:
    with pytest.raises(ra.ConfigError) as caught:
        config(ra, **changes)
    return str(caught.value)


# ---------------------------------------------------------------- configuration


def test_minimal_env_gives_documented_defaults(ra, monkeypatch):
    monkeypatch.setattr(ra.socket, "gethostname", lambda: "dgx-9")
    cfg = config(ra, AGENT_HOST=None)
    assert cfg.host == "dgx-9"
    assert cfg.heartbeat_interval == 5.0
    assert cfg.legacy_prefix == "agent.network-expert"
    assert cfg.unified_prefix == f"agents.infrastructure.{AGENT_ID}"
    assert cfg.unified is False
    assert cfg.nats_urls == ("nats://127.0.0.1:4222",)
    assert (cfg.drop_unified_rate, cfg.reply_delay_ms, cfg.crash_after_s, cfg.refuse_start) == (0, 0, 0, False)
    assert cfg.faults == {}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("true", True), ("TRUE", True), ("1", True), ("yes", True), (" Yes ", True)]
    + [("false", False), ("False", False), ("0", False), ("no", False), ("NO", False)],
)
def test_flag_accepts_boolean_words(ra, raw, expected):
    assert config(ra, ENABLE_UNIFIED_SUBJECTS=raw).unified is expected


def test_flag_off_subscribes_legacy_only(ra):
    assert config(ra).subscriptions == ["agent.network-expert.cmd.>"]


def test_flag_on_subscribes_both_subjects(ra):
    assert config(ra, ENABLE_UNIFIED_SUBJECTS="true").subscriptions == [
        "agent.network-expert.cmd.>",
        f"agents.infrastructure.{AGENT_ID}.cmd.>",
    ]


def test_custom_prefix_patterns_are_expanded(ra):
    cfg = config(
        ra,
        ENABLE_UNIFIED_SUBJECTS="true",
        LEGACY_SUBJECT_PREFIX="legacy.{cluster}.{name}",
        UNIFIED_SUBJECT_PREFIX="ref.{id}",
    )
    assert cfg.subscriptions == ["legacy.infrastructure.network-expert.cmd.>", f"ref.{AGENT_ID}.cmd.>"]


def test_numbers_and_fault_knobs_are_parsed(ra):
    cfg = config(
        ra,
        HEARTBEAT_INTERVAL="0.2",
        FAULT_DROP_UNIFIED_RATE="0.03",
        FAULT_REPLY_DELAY_MS="150",
        FAULT_CRASH_AFTER_S="1.5",
        FAULT_REFUSE_START="yes",
    )
    assert cfg.heartbeat_interval == 0.2
    assert cfg.drop_unified_rate == Fraction(3, 100)  # exact, not 0.0299999...
    assert cfg.refuse_start is True
    assert cfg.faults == {"drop_unified_rate": 0.03, "reply_delay_ms": 150.0, "crash_after_s": 1.5}


def test_several_servers_and_bare_host_port(ra):
    cfg = config(ra, NATS_URL="nats://10.0.0.1:4222, 127.0.0.1:4223")
    assert cfg.nats_urls == ("nats://10.0.0.1:4222", "nats://127.0.0.1:4223")


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"AGENT_NAME": None}, "AGENT_NAME is not set (required)"),
        ({"AGENT_ID": None}, "AGENT_ID is not set"),
        ({"CAPABILITY_CLUSTER": None}, "CAPABILITY_CLUSTER is not set"),
        ({"NATS_URL": None}, "NATS_URL is not set"),
        ({"ENABLE_UNIFIED_SUBJECTS": None}, "ENABLE_UNIFIED_SUBJECTS is not set"),
        ({"AGENT_NAME": "  "}, "AGENT_NAME is empty"),
        ({"AGENT_HOST": ""}, "AGENT_HOST is empty"),
        ({"ENABLE_UNIFIED_SUBJECTS": "maybe"}, "ENABLE_UNIFIED_SUBJECTS='maybe' is not a boolean (use true/false)"),
        ({"AGENT_NAME": "network.expert"}, "AGENT_NAME='network.expert' is not a valid subject token"),
        ({"AGENT_ID": "01936f88 d2a9"}, "AGENT_ID='01936f88 d2a9' is not a valid subject token"),
        ({"CAPABILITY_CLUSTER": "infra*"}, "CAPABILITY_CLUSTER='infra*' is not a valid subject token"),
        ({"AGENT_HOST": "dgx 1"}, "AGENT_HOST='dgx 1' contains whitespace"),
        ({"HEARTBEAT_INTERVAL": "abc"}, "HEARTBEAT_INTERVAL='abc' is not a number"),
        ({"HEARTBEAT_INTERVAL": "0"}, "HEARTBEAT_INTERVAL='0' must be > 0"),
        ({"HEARTBEAT_INTERVAL": "nan"}, "HEARTBEAT_INTERVAL='nan' is not a finite number"),
        ({"FAULT_DROP_UNIFIED_RATE": "1.5"}, "FAULT_DROP_UNIFIED_RATE='1.5' is outside 0..1"),
        ({"FAULT_DROP_UNIFIED_RATE": "-0.1"}, "FAULT_DROP_UNIFIED_RATE='-0.1' is outside 0..1"),
        ({"FAULT_DROP_UNIFIED_RATE": "3%"}, "FAULT_DROP_UNIFIED_RATE='3%' is not a number"),
        ({"FAULT_REPLY_DELAY_MS": "-5"}, "FAULT_REPLY_DELAY_MS='-5' must be >= 0"),
        ({"FAULT_CRASH_AFTER_S": "soon"}, "FAULT_CRASH_AFTER_S='soon' is not a number"),
        ({"FAULT_REFUSE_START": "perhaps"}, "FAULT_REFUSE_START='perhaps' is not a boolean"),
        ({"LEGACY_SUBJECT_PREFIX": "agent.{nom}"}, "LEGACY_SUBJECT_PREFIX='agent.{nom}' uses unknown field 'nom'"),
        ({"UNIFIED_SUBJECT_PREFIX": "agents.{}"}, "UNIFIED_SUBJECT_PREFIX='agents.{}' uses unknown field '{}'"),
        ({"UNIFIED_SUBJECT_PREFIX": "agents.{id"}, "UNIFIED_SUBJECT_PREFIX='agents.{id' is not a valid pattern"),
        ({"LEGACY_SUBJECT_PREFIX": "agent..{name}"}, "LEGACY_SUBJECT_PREFIX='agent..{name}' expands to"),
        ({"LEGACY_SUBJECT_PREFIX": "agent.>"}, "LEGACY_SUBJECT_PREFIX='agent.>' expands to"),
        (
            {"UNIFIED_SUBJECT_PREFIX": "agent.{name}"},
            "UNIFIED_SUBJECT_PREFIX expands to 'agent.network-expert', the same",
        ),
        ({"NATS_URL": "http://127.0.0.1:4222"}, "NATS_URL='http://127.0.0.1:4222' has unsupported scheme 'http'"),
        ({"NATS_URL": "nats://127.0.0.1:port"}, "NATS_URL='nats://127.0.0.1:port' is not a valid URL"),
        ({"NATS_URL": "nats://a:1,,nats://b:2"}, "NATS_URL='nats://a:1,,nats://b:2' has an empty entry"),
        ({"NATS_USER": "fleet"}, "NATS_PASSWORD is not set"),
        ({"NATS_PASSWORD": "s3cret"}, "NATS_USER is not set"),
        ({"NATS_CREDS": "/nonexistent/agent.creds"}, "NATS_CREDS='/nonexistent/agent.creds' is not a readable file"),
        ({"EMIT_RATE": "0"}, "EMIT_RATE='0' must be > 0"),
        ({"EMIT_RATE": "inf"}, "EMIT_RATE='inf' is not a finite number"),
        ({"EMIT_BURST": "0"}, "EMIT_BURST='0' must be between 1 and 10000"),
        ({"EMIT_BURST": "20000"}, "EMIT_BURST='20000' must be between 1 and 10000"),
        ({"EMIT_BURST": "1.5"}, "EMIT_BURST='1.5' is not a whole number"),
        ({"MAX_INFLIGHT_REQUESTS": "0"}, "MAX_INFLIGHT_REQUESTS='0' must be between 1"),
    ],
)
def test_invalid_config_names_the_variable_and_problem(ra, changes, expected):
    assert config_error(ra, **changes).startswith(expected)


def test_secrets_never_appear_in_errors_or_repr(ra):
    message = config_error(ra, NATS_USER="fleet", NATS_PASSWORD="pw-123", NATS_TOKEN="tok-456")
    assert "exclusive" in message
    assert "pw-123" not in message and "tok-456" not in message
    url_message = config_error(ra, NATS_URL="nats://fleet:pw-123@127.0.0.1:bad")
    assert "pw-123" not in url_message and "***@" in url_message
    cfg = config(ra, NATS_USER="fleet", NATS_PASSWORD="pw-123")
    assert "pw-123" not in repr(cfg)
    assert "tok-456" not in repr(config(ra, NATS_TOKEN="tok-456"))


def test_empty_credentials_mean_unused(ra):
    cfg = config(ra, NATS_USER="", NATS_PASSWORD="", NATS_TOKEN="", NATS_CREDS="")
    assert (cfg.user, cfg.password, cfg.token, cfg.creds) == (None, None, None, None)


def test_redact_url_hides_user_info(ra):
    assert ra.redact_url("nats://u:p@h:1,tls://t@h2:2,nats://h3:3") == "nats://***@h:1,tls://***@h2:2,nats://h3:3"


@pytest.mark.parametrize("url, secret", [
    ("fleet:pw-123@127.0.0.1:bad", "pw-123"),  # scheme-less
    ("nats://fleet:pw/123@127.0.0.1:bad", "pw/123"),  # '/' in the password
    ("nats://fleet:pw 123@127.0.0.1:4222,,nats://h:2", "pw 123"),  # a blank, and an empty entry
    ("nats://fleet:p@ss-123@127.0.0.1:bad", "ss-123"),  # '@' in the password
], ids=["scheme_less_url_password", "password_with_slash", "password_with_space", "password_with_at"])
def test_url_password_is_redacted_in_config_errors(ra, url, secret):
    message = config_error(ra, NATS_URL=url)
    assert "NATS_URL" in message and "***@127.0.0.1" in message and secret not in message, message


def test_main_prints_one_line_and_exits_78_on_bad_config(ra, capsys):
    assert ra.main({**BASE_ENV, "ENABLE_UNIFIED_SUBJECTS": "maybe"}) == ra.EX_CONFIG == 78
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "reference-agent: config error: ENABLE_UNIFIED_SUBJECTS='maybe' is not a boolean (use true/false)\n"
    )


def test_main_refuses_to_start_with_78(ra, capsys):
    assert ra.main({**BASE_ENV, "FAULT_REFUSE_START": "true"}) == 78
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "FAULT_REFUSE_START" in err


# ---------------------------------------------------------------- subjects and ids


def test_subject_builders(ra):
    assert ra.command_subject("agent.network-expert") == "agent.network-expert.cmd.>"
    assert ra.event_subject(f"agents.infrastructure.{AGENT_ID}", "heartbeat") == (
        f"agents.infrastructure.{AGENT_ID}.evt.heartbeat"
    )
    assert ra.verb_of("agent.network-expert.cmd.status") == "status"


@pytest.mark.parametrize(
    ("subject", "valid"),
    [("agent.x", True), ("a", True), ("a..b", False), (".a", False), ("a.*", False), ("a.>", False), ("a b", False)],
)
def test_subject_validation(ra, subject, valid):
    assert ra.is_valid_subject(subject) is valid


def test_message_id_format(ra):
    assert ra.message_id(AGENT_ID, "dgx-2", 1732400000123, 42) == f"{AGENT_ID}.dgx-2.1732400000123.42"


def test_header_lookup_is_case_insensitive(ra):
    assert ra.header({"agent-target": "dgx-2"}, "Agent-Target") == "dgx-2"
    assert ra.header(None, "Agent-Target") is None
    assert ra.header({"Other": "x"}, "Agent-Target") is None


# ---------------------------------------------------------------- drop pattern


@pytest.mark.parametrize("rate", ["0", "0.03", "0.1", "0.25", "1/3", "0.5", "0.999", "1"])
def test_drop_pattern_drops_round_rate_times_n_after_every_event(ra, rate):
    exact = Fraction(rate)
    pattern = ra.DropPattern(exact)
    dropped = 0
    for n in range(1, 2001):
        dropped += pattern.should_drop()
        assert dropped == math.floor(n * exact + Fraction(1, 2)), f"after {n} events"


def test_drop_rate_three_percent_drops_exactly_three_in_any_hundred(ra):
    pattern = ra.DropPattern(Fraction("0.03"))
    drops = [pattern.should_drop() for _ in range(1000)]
    assert sum(drops) == 30
    assert {sum(drops[start : start + 100]) for start in range(901)} == {3}


def test_drop_pattern_is_deterministic(ra):
    first, second = ra.DropPattern(Fraction("0.07")), ra.DropPattern(Fraction("0.07"))
    assert [first.should_drop() for _ in range(500)] == [second.should_drop() for _ in range(500)]


# ---------------------------------------------------------------- event headers


class RecordingNats:
    """Just enough of a nats-py client for Agent._publish_event: records what it publishes."""

    def __init__(self):
        self.published = []

    async def publish(self, subject, payload=b"", headers=None):
        self.published.append((subject, payload, dict(headers or {})))


def test_both_copies_of_an_event_name_the_instance_and_share_the_message_id(ra):
    agent = ra.Agent(config(ra, ENABLE_UNIFIED_SUBJECTS="true", AGENT_HOST="dgx-2"))
    agent.nc = RecordingNats()
    seq = asyncio.run(agent._publish_event("probe"))
    (legacy_subject, payload, legacy), (unified_subject, twin_payload, unified) = agent.nc.published
    assert legacy_subject == "agent.network-expert.evt.probe"
    assert unified_subject == f"agents.infrastructure.{AGENT_ID}.evt.probe"
    msg_id = ra.message_id(AGENT_ID, "dgx-2", agent.boot_id, seq)
    assert legacy == unified == {"Nats-Msg-Id": msg_id, "Agent-Host": "dgx-2"}
    assert payload == twin_payload and json.loads(payload)["host"] == "dgx-2"


def test_flag_off_event_names_the_instance_too(ra):
    agent = ra.Agent(config(ra, AGENT_HOST="dgx-3"))
    agent.nc = RecordingNats()
    asyncio.run(agent._publish_event("heartbeat"))
    [(subject, _, headers)] = agent.nc.published
    assert subject == "agent.network-expert.evt.heartbeat" and headers["Agent-Host"] == "dgx-3"


# ---------------------------------------------------------------- requests and stats


def test_emit_request_defaults(ra):
    assert ra.parse_emit_request(b"") == (1, "probe")
    assert ra.parse_emit_request(b'{"count": 5, "type": "tick"}') == (5, "tick")
    # Not clipped any more: the agent refuses it whole, naming EMIT_BURST (see the amplification tests).
    assert ra.parse_emit_request(b'{"count": 50000}') == (50000, "probe")
    assert ra.parse_emit_request(b'{"count": 0}') == (0, "probe")


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'{"count": -1}',
        b'{"count": "5"}',
        b'{"count": true}',
        b'{"type": "a.b"}',
        b'{"type": 7}',
    ],
)
def test_emit_request_rejects_bad_bodies(ra, body):
    with pytest.raises(ra.RequestError) as caught:
        ra.parse_emit_request(body)
    assert caught.value.code == "bad-request"


def test_latency_summary(ra):
    assert ra.latency_summary([]) == {"count": 0, "mean": None, "p50": None, "p99": None, "max": None}
    summary = ra.latency_summary(float(ms) for ms in range(1, 101))
    assert summary == {"count": 100, "mean": 50.5, "p50": 50.0, "p99": 99.0, "max": 100.0}


# ---------------------------------------------------------------- issue 8: the reference agent amplifies


def test_reference_agent_amplifies_load_limits_have_sane_defaults(ra):
    cfg = config(ra)
    assert (cfg.emit_rate, cfg.emit_burst, cfg.max_inflight) == (1000.0, 2000, 256)
    # What the inventories' probes ask of one instance per window (wave_probe_emit_events 100/200)
    # must pass with a wide margin, several windows back to back included.
    assert cfg.emit_burst >= 5 * 200
    cfg = config(ra, EMIT_RATE="50.5", EMIT_BURST="10000", MAX_INFLIGHT_REQUESTS="4")
    assert (cfg.emit_rate, cfg.emit_burst, cfg.max_inflight) == (50.5, 10000, 4)


def test_reference_agent_amplifies_token_bucket_grants_all_or_nothing(ra):
    now = [100.0]
    bucket = ra.TokenBucket(rate=10, burst=50, clock=lambda: now[0])
    assert bucket.take(50) and not bucket.take(1)  # a full bucket, then empty
    now[0] += 2.0  # 20 tokens back
    assert not bucket.take(21) and bucket.take(20) and not bucket.take(1)
    now[0] += 3600  # refill stops at the burst
    assert bucket.available() == 50 and not bucket.take(51)


def test_reference_agent_amplifies_emit_is_refused_whole_naming_the_limit(ra):
    agent = ra.Agent(config(ra, EMIT_RATE="0.001", EMIT_BURST="300"))
    agent.nc = RecordingNats()
    with pytest.raises(ra.RequestError) as above:
        agent._admit_emit(10_000)
    assert above.value.code == "rate-limited"
    assert "above the limit of 300 events per request" in str(above.value) and "EMIT_BURST=300" in str(above.value)
    agent._admit_emit(200)
    with pytest.raises(ra.RequestError) as drained:
        agent._admit_emit(200)
    assert "refused: 100 left" in str(drained.value) and "EMIT_RATE=0.001 events/s" in str(drained.value)
    assert agent.requests["rate_limited"] == 2
    assert agent.nc.published == []


def test_reference_agent_amplifies_emit_yields_between_batches_and_keeps_seqs_contiguous(ra):
    agent = ra.Agent(config(ra))
    agent.nc = RecordingNats()

    async def scenario():
        beats = 0

        async def heartbeats():
            nonlocal beats
            while True:
                await agent._publish_event("heartbeat")
                beats += 1
                await asyncio.sleep(0)

        beating = asyncio.create_task(heartbeats())
        await asyncio.sleep(0)
        result = await agent.emit("probe", 1000)
        beating.cancel()
        return result, beats

    (first, last), beats = asyncio.run(scenario())
    assert last - first == 999
    # 1000 events in batches of EMIT_BATCH: the other task ran between every two batches.
    assert beats >= 1000 // ra.EMIT_BATCH - 1
    probes = [json.loads(p)["seq"] for s, p, _ in agent.nc.published if s.endswith(".probe")]
    assert probes == list(range(first, last + 1))
