# -*- coding: utf-8 -*-
# The one place for NATS connection options and connecting, shared by every controller-side
# module that talks to NATS. Secrets are declared no_log here so no module can forget it.

from __future__ import annotations

import asyncio
import re
import traceback

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
    url=dict(type='str', required=True),
    user=dict(type='str', default=''),
    password=dict(type='str', default='', no_log=True),
    token=dict(type='str', default='', no_log=True),
    creds_file=dict(type='path'),
    connect_timeout=dict(type='float', default=2.0),
)

NO_RESPONDERS_STATUS = '503'


class NatsUnreachable(Exception):
    """The server could not be reached or refused us; the message names the URL."""


def redact_url(url):
    """nats://user:secret@host:4222 -> nats://***@host:4222: all user info is masked, since
    nats://<token>@host carries a token and a password may itself contain '@'."""
    return re.sub(r'(?<=://)[^/\s]*@', '***@', url)


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
        raise NatsUnreachable('cannot connect to NATS at %s within %.1f s: %s' % (
            redact_url(params['url']), params['connect_timeout'], str(reason) or type(reason).__name__))


def is_no_responders(msg):
    return bool(msg.headers) and msg.headers.get('Status') == NO_RESPONDERS_STATUS and not msg.data
