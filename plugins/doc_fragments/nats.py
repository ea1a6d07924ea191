# -*- coding: utf-8 -*-
# The NATS connection options shared by nats_probe and nats_request (the action group
# fleetwave.rollout.nats sets them once with module_defaults); their argument spec is
# plugins/module_utils/fleet_nats.py NATS_ARGUMENT_SPEC.

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  url:
    description:
      - NATS server URL, e.g. C(nats://127.0.0.1:4222); scheme C(nats://) (the default), C(tls://),
        C(ws://) or C(wss://).
      - It may carry credentials, C(user:password@host:4222) or C(token@host:4222). Never logged; messages
        show it with the credentials replaced by C(***), e.g. C(nats://***@host:4222), and the credentials,
        O(password) and O(token) are masked wherever else they would appear in the result.
    type: str
    required: true
  user:
    description: User name for user/password authentication.
    type: str
    default: ''
  password:
    description: Password for O(user). Never logged.
    type: str
    default: ''
  token:
    description: Authentication token. Never logged.
    type: str
    default: ''
  creds_file:
    description: Path of a NATS credentials (JWT + NKey seed) file on the controller.
    type: path
  connect_timeout:
    description: Seconds to wait for the connection, in (0, 60].
    type: float
    default: 2.0
"""

    # The same options for a module that talks to NATS only in some settings (fleet_lock, with the
    # jetstream state backend): url is optional there, and the module says when it is missing.
    # extends_documentation_fragment: fleetwave.rollout.nats.url_optional
    URL_OPTIONAL = DOCUMENTATION.replace("    type: str\n    required: true\n", "    type: str\n", 1)
