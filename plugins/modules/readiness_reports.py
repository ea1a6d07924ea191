#!/usr/bin/python
# -*- coding: utf-8 -*-
# Documentation stub: the work is done by the action plugin of the same name, on the controller.

from __future__ import annotations

DOCUMENTATION = r'''
---
module: readiness_reports
short_description: Render a readiness run's reports from what it recorded
description:
  - Phase 3 of the production-readiness run. Renders, from the run's folder (its status record, load
    and stress results, failure-mode ledgers, gate records, evidence index and certificate), the master
    report and the one-page stakeholder brief, each as self-contained HTML and as Markdown, with SVG
    charts (C(plugins/plugin_utils/fleet_reports.py), C(render_reports)) into C(<run>/reports/).
  - An input the run does not have yet is a section marked "Not available" in the reports, never a
    failure and never a zero.
  - Runs once on the controller (an action plugin).
version_added: "1.2.0"
author: fleetwave maintainers
extends_documentation_fragment:
  - fleetwave.rollout.readiness
notes:
  - In check mode nothing is rendered.
'''

EXAMPLES = r'''
- name: Render the reports
  fleetwave.rollout.readiness_reports:
    artifacts_dir: "{{ fleet_artifacts_dir }}"
    run: "{{ readiness_run }}"
'''

RETURN = r'''
written:
  description: The files written, relative to the run's folder.
  returned: success
  type: list
  elements: str
  sample: [reports/report.html, reports/brief.html, reports/charts/load-rate.svg]
report:
  description: The master report's HTML page.
  returned: success
  type: str
  sample: /srv/fleetwave/artifacts/readiness/readiness-20261203T101500Z/reports/report.html
brief:
  description: The stakeholder brief's HTML page.
  returned: success
  type: str
  sample: /srv/fleetwave/artifacts/readiness/readiness-20261203T101500Z/reports/brief.html
'''
