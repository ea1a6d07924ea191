# -*- coding: utf-8 -*-
# The one place for NATS connection options and connecting, shared by every controller-side
# module that talks to NATS. Secrets are declared no_log here so no module can forget it.

from __future__ import annotations

import asyncio
import re
import traceback
from urllib.parse import unquote

try:
    import nats
    import nats.errors
    HAS_NATS = True
    NATS_IMPORT_ERROR = None
except ImportError:  # pragma: no cover - reported by the module with missing_required_lib
    HAS_NATS = False
    NATS_IMPORT_ERROR = traceback.format_exc()

# Merge into a module's argument_spec: NATS_ARGUMENT_SPEC | {...}.
NATS_ARGUMENT_SPEC = dict(
    # The URL may carry user:password@ or token@; protect_secrets() shows it again when it carries none.
    url=dict(type='str', required=True, no_log=True),
    user=dict(type='str', default=''),
    password=dict(type='str', default='', no_log=True),
    token=dict(type='str', default='', no_log=True),
    creds_file=dict(type='path'),
    connect_timeout=dict(type='float', default=2.0),
)

NO_RESPONDERS_STATUS = '503'


class NatsUnreachable(Exception):
    """The server could not be reached or refused us; the message names the URL."""


# Optional leading blanks and scheme of one server URL (nats://, tls://, ws://, wss://; any other
# scheme nats-py rejects, but its user info is masked all the same).
_SCHEME = r'\s*(?:[A-Za-z][A-Za-z0-9+.-]*://)?'
REDACTED = '***'


def _credential_spans(url):
    """(start, end) of the user info in url, read both ways url can be meant, so that neither leaks:
    - as a comma-separated server list: in each entry, from the scheme (if any) to the entry's last '@'.
      A host never contains '@'; a password may hold '/', ':', '@', '?', '#', blanks or %-escapes.
    - as nats-py reads it (the modules hand it url as one server): urlparse, with nats:// put before a
      scheme-less URL, ends the netloc at the first '/', '?' or '#' and its user info at the netloc's
      last '@', commas included; nats-py sends user, password or token from it without unquoting."""
    spans, start = [], 0
    for entry in url.split(','):
        at = entry.rfind('@')
        if at >= 0:
            spans.append((start + re.match(_SCHEME, entry).end(), start + at))
        start += len(entry) + 1
    netloc = re.match(_SCHEME + r'([^/?#]*)@', url)
    if netloc:
        spans.append(netloc.span(1))
    return [span for span in spans if span[1] > span[0]]


def redact_url(url):
    """nats://user:secret@host:4222 -> nats://***@host:4222, for every URL form nats-py accepts
    (scheme-less user:pw@host:port and token@host, server lists, IPv6 hosts). All user info is
    masked, since a lone name is a token. Where the two readings above disagree (a ',' in a
    password) both are masked: a host may then be hidden, never a secret."""
    merged = []
    for start, end in sorted(_credential_spans(url)):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    for start, end in reversed(merged):
        url = url[:start] + REDACTED + url[end:]
    return url


def secret_values(params):
    """Every credential value a message must not show: password, token and the user info in url
    (whole, and the password part nats-py splits off at the first ':'), each also %-decoded since
    a library may print either form. Longest first, so no fragment of a longer one survives.
    The user name alone is an identity, not a secret (and masking a name like 'nats' would maim
    every message); nats-py sends a lone name in the URL as a token, which is masked."""
    url = params.get('url') or ''
    found = {params.get('password'), params.get('token')}
    for start, end in _credential_spans(url):
        found |= {url[start:end], url[start:end].partition(':')[2]}
    found |= {unquote(value) for value in found if value}
    return sorted((value for value in found if value), key=len, reverse=True)


def redact(text, params):
    """text, e.g. an exception's message, with the configured url redacted and every secret value
    masked wherever it appears (nats-py and aiohttp errors may quote the URL or its parts)."""
    text = str(text)
    if params.get('url'):
        text = text.replace(params['url'], redact_url(params['url']))
    for value in secret_values(params):
        text = text.replace(value, REDACTED)
    return text


def protect_secrets(module):
    """Make Ansible mask the credentials inside url wherever they appear in the result, as it masks
    password and token. A url without user info is no secret: unmask it so messages name the server
    (no_log on url still keeps it out of the log of the invocation, which Ansible writes earlier)."""
    module.no_log_values.update(secret_values(module.params))
    if redact_url(module.params['url']) == module.params['url']:
        module.no_log_values.discard(module.params['url'])


def run_or_fail(module, coroutine, doing, **result):
    """asyncio.run(coroutine) for a NATS module. A server that cannot be reached, or that fails after
    connecting, ends the module with a message naming the server without its credentials ("<doing>
    through NATS at <url> failed after connecting: <why>"), result's keys beside it: caught here, not
    left to a traceback on stderr, so that its text is redacted too."""
    params = module.params
    try:
        return asyncio.run(coroutine)
    except NatsUnreachable as exc:
        module.fail_json(msg=str(exc), **result)
    except (nats.errors.Error if HAS_NATS else Exception, asyncio.TimeoutError, OSError) as exc:
        module.fail_json(msg=redact('%s through NATS at %s failed after connecting: %s' % (
            doing, redact_url(params['url']), str(exc) or type(exc).__name__), params), **result)


def check_nats_library(module):
    if not HAS_NATS:
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(msg=missing_required_lib('nats-py'), exception=NATS_IMPORT_ERROR)


async def connect(params):
    """Connect once, without reconnecting: a probe that silently reconnects hides outages."""
    errors = []

    async def _record(exc):
        errors.append(exc)

    options = dict(
        servers=[params['url']],
        connect_timeout=params['connect_timeout'],
        # nats-py retries the first connect too, and 0 attempts means forever: one try only.
        allow_reconnect=False,
        max_reconnect_attempts=1,
        reconnect_time_wait=0,
        error_cb=_record,
        name='fleetwave-controller',
    )
    if params.get('user'):
        options['user'] = params['user']
        options['password'] = params.get('password') or None
    if params.get('token'):
        options['token'] = params['token']
    if params.get('creds_file'):
        options['user_credentials'] = params['creds_file']
    try:
        return await asyncio.wait_for(nats.connect(**options), params['connect_timeout'] + 1.0)
    except Exception as exc:  # nats-py raises several unrelated types here
        reason = errors[-1] if errors else exc
        raise NatsUnreachable(redact('cannot connect to NATS at %s within %.1f s: %s' % (
            redact_url(params['url']), params['connect_timeout'], str(reason) or type(reason).__name__), params))


def is_no_responders(msg):
    return bool(msg.headers) and msg.headers.get('Status') == NO_RESPONDERS_STATUS and not msg.data
