# -*- coding: utf-8 -*-
# The options every readiness action takes to find its run's folder (readiness_status, readiness_gate,
# readiness_evidence, readiness_authorize, readiness_reports): the artifact store and the run's id.

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  artifacts_dir:
    description: Root of the artifact store.
    type: path
    required: true
  run:
    description: The readiness run's id (its folder's name under C(readiness/)).
    type: str
    required: true
"""
