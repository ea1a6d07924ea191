"""plugins/module_utils/fleet_nats.py: credential redaction (issue 8, "Secrets shown in clear").

The finding: redact_url only handled scheme://user:pass@, so a scheme-less svc:pw@host:4222 or a
password containing '/' or a blank came back unchanged and reached failure messages, the audit trail
and rollback.json; and the option url was not no_log, so it sat in invocation.module_args.
The URL_FORMS rows marked "regression" came back unredacted from the old redact_url; the others pin
forms it already handled. Every row also checks the message-level redact(), which is new."""

from __future__ import annotations

import asyncio

import pytest
from ansible_collections.fleetwave.rollout.plugins.module_utils import fleet_nats
from ansible_collections.fleetwave.rollout.plugins.module_utils.fleet_nats import (
    NATS_ARGUMENT_SPEC, NatsUnreachable, redact, redact_url, secret_values)

from tests.unit.conftest import _argument_spec

pytestmark = pytest.mark.unit

# (what the finding or nats-py allows, url, redacted, secrets that must not survive)
URL_FORMS = [
    ("user_password", "nats://svc:s3cret@host:4222", "nats://***@host:4222", ["s3cret"]),
    ("token", "nats://t0ken-s3cret@host:4222", "nats://***@host:4222", ["t0ken-s3cret"]),
    ("scheme_less_url_password", "svc:s3cret@host:4222", "***@host:4222", ["s3cret"]),  # regression
    ("scheme_less_token", "t0ken-s3cret@host", "***@host", ["t0ken-s3cret"]),  # regression
    ("password_with_slash", "nats://svc:s3/cret@host:4222", "nats://***@host:4222", ["s3/cret", "cret"]),  # regression
    ("password_with_space", "nats://svc:s3 cret@host:4222", "nats://***@host:4222", ["s3 cret"]),  # regression
    ("password_with_at", "nats://svc:s3@cret@host:4222", "nats://***@host:4222", ["s3@cret", "s3"]),
    ("password_with_colon", "nats://svc:s3:cret@host:4222", "nats://***@host:4222", ["s3:cret"]),
    ("password_with_hash", "nats://svc:s3#cret@host:4222", "nats://***@host:4222", ["s3#cret", "cret"]),
    ("password_with_question_mark", "nats://svc:s3?cret@host:4222", "nats://***@host:4222", ["s3?cret", "cret"]),
    ("password_with_comma", "nats://svc:s3,cret@host:4222", "nats://***@host:4222", ["s3,cret", "s3"]),
    ("percent_encoded_password", "nats://svc:s3cr%2Ft@host:4222", "nats://***@host:4222", ["s3cr%2Ft", "s3cr/t"]),
    ("ipv6_host", "nats://svc:s3cret@[::1]:4222", "nats://***@[::1]:4222", ["s3cret"]),
    ("scheme_less_ipv6_host", "svc:s3cret@[fe80::1]:4222", "***@[fe80::1]:4222", ["s3cret"]),  # regression
    ("tls_scheme", "tls://svc:s3/cret@host:4443", "tls://***@host:4443", ["s3/cret"]),  # regression
    ("ws_scheme", "ws://svc:s3 cret@host:8080/nats", "ws://***@host:8080/nats", ["s3 cret"]),  # regression
    ("wss_scheme", "wss://t0ken-s3cret@host", "wss://***@host", ["t0ken-s3cret"]),
    ("server_list", "nats://a:1, svc:s3/cret@b:2,tls://t0ken-s3cret@c:3,nats://d:4",
     "nats://a:1, ***@b:2,tls://***@c:3,nats://d:4", ["s3/cret", "t0ken-s3cret"]),  # regression
]


@pytest.mark.parametrize("url, redacted, secrets", [row[1:] for row in URL_FORMS], ids=[row[0] for row in URL_FORMS])
def test_url_credentials_are_redacted(url, redacted, secrets):
    assert redact_url(url) == redacted
    # Also inside a message, and in the forms a library may print: %-decoded, or with nats-py's default port.
    params = dict(url=url)
    for text in ("cannot connect to %s: refused" % url, "bad url %r" % url, "nats://%s@host:4222" % secrets[0]):
        shown = redact(text, params)
        assert not any(secret in shown for secret in secrets), shown


@pytest.mark.parametrize("url", ["nats://127.0.0.1:4222", "127.0.0.1:4222", "host", "[::1]:4222",
                                 "nats://a:1,tls://b:2", "ws://host:8080/path?x=1#y"])
def test_urls_without_credentials_are_shown_unchanged(url):
    assert redact_url(url) == url and secret_values(dict(url=url)) == []


def test_the_reference_agent_redacts_as_the_collection_does(reference_agent_module):
    # The agent runs on hosts without the collection, so it keeps its own copy of the rule.
    for _, url, redacted, _ in URL_FORMS:
        assert reference_agent_module.redact_url(url) == redacted, url
    for url in ("nats://h1:1,svc:s3cret@h2:2", "nats://a:1,tls://b:2", "nats://@h:1", "u:xnats://y@h:1"):
        assert reference_agent_module.redact_url(url) == redact_url(url), url


def test_a_password_with_a_comma_hides_the_host_rather_than_the_secret():
    # Read as one URL (as nats-py does) the user info is 'h1:1,svc:s3cret'; read as a list it is 'svc:s3cret'.
    assert redact_url("nats://h1:1,svc:s3cret@h2:2") == "nats://***@h2:2"


def test_password_and_token_are_scrubbed_from_messages_by_value():
    params = dict(url="nats://127.0.0.1:4222", user="svc", password="pw/s3cret", token="t0ken-s3cret")
    shown = redact("auth failed for svc with pw/s3cret (pw%2Fs3cret), token t0ken-s3cret", params)
    assert shown == "auth failed for svc with *** (pw%2Fs3cret), token ***"
    assert redact("nothing secret here", dict(url="nats://h:1", password="", token="")) == "nothing secret here"


def test_nats_py_exception_quoting_the_url_is_redacted(monkeypatch):
    """nats-py (or aiohttp under ws://) may quote the URL it normalised, e.g. with :4222 added."""

    async def refuse(**options):
        raise OSError("cannot reach %s:4222 as svc/s3cret" % options["servers"][0])

    monkeypatch.setattr(fleet_nats.nats, "connect", refuse)
    params = dict(url="svc:s3cret@host", user="", password="", token="", creds_file=None, connect_timeout=0.1)
    with pytest.raises(NatsUnreachable) as exc:
        asyncio.run(fleet_nats.connect(params))
    assert str(exc.value) == "cannot connect to NATS at ***@host within 0.1 s: cannot reach ***@host:4222 as svc/***"


@pytest.mark.parametrize("module", ["nats_request", "nats_probe", "nats_load"])
def test_url_and_secrets_are_no_log(module):
    spec = _argument_spec(module)
    assert {name for name, option in spec.items() if option.get("no_log")} == {"url", "password", "token"}
    assert NATS_ARGUMENT_SPEC["url"]["no_log"]


def test_module_failure_message_carries_no_password(run_module):
    result = run_module("nats_request", dict(url="svc:s3/cret@127.0.0.1:1", subject="x", connect_timeout=0.5))
    assert result["failed"] and result["msg"].startswith("cannot connect to NATS at ***@127.0.0.1:1 within 0.5 s")
    assert "s3/cret" not in str(result)


@pytest.mark.parametrize("module, args, doing", [
    ("nats_request", dict(subject="agent.x.cmd.ping"), "request on agent.x.cmd.ping"),
    ("nats_load", dict(subject="agent.x.cmd.ping", scenario=dict(executor="constant-vus", vus=1, duration=0.2)),
     "load on agent.x.cmd.ping"),
])
@pytest.mark.parametrize("error", [OSError, asyncio.TimeoutError, fleet_nats.nats.errors.ConnectionClosedError])
def test_a_failure_after_connecting_is_named_without_credentials(run_module, monkeypatch, module, args, doing, error):
    class Connection:  # connects, then breaks at the first use, its error quoting the URL
        def new_inbox(self):
            return "_INBOX.test"

        async def request(self, *a, **k):
            raise error("lost svc:s3/cret@127.0.0.1:4222 mid-request")

        async def subscribe(self, *a, **k):
            raise error("lost svc:s3/cret@127.0.0.1:4222 mid-request")

        async def close(self):
            pass

    async def connected(params):
        return Connection()

    monkeypatch.setattr(fleet_nats, "connect", connected)
    monkeypatch.setattr("ansible_collections.fleetwave.rollout.plugins.modules.%s.connect" % module, connected,
                        raising=False)
    result = run_module(module, dict(args, url="svc:s3/cret@127.0.0.1:4222"))
    if module == "nats_load":  # the engine counts a failing request as an error; the record says so
        assert not result.get("failed") and result["record"]["errors"] == result["record"]["requests"] > 0
        assert "s3/cret" not in str(result)
        return
    # nats-py's own errors have a fixed text; the others quote the URL, redacted.
    why = "nats: connection closed" if error is fleet_nats.nats.errors.ConnectionClosedError else \
        "lost ***@127.0.0.1:4222 mid-request"
    assert result["failed"] and result["msg"] == (
        "%s through NATS at ***@127.0.0.1:4222 failed after connecting: %s" % (doing, why)), result["msg"]
    assert result["subject"] == "agent.x.cmd.ping" and "s3/cret" not in str(result)
