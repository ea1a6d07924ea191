#!/usr/bin/env python3
"""How long reopening an audit trail takes when its last line is long (AuditLog reads the end of
the file backwards to continue the chain). Issue 8 part 6 measured 57 s for a 100 MB last line
with the old backwards read; this prints the figure on this machine. Nothing is asserted.

    source scripts/lib.sh && use_venv && python -m bench.audit_reopen
"""

from __future__ import annotations

import os
import tempfile
import time

from ansible_collections.fleetwave.rollout.plugins.plugin_utils.fleet_audit import AuditLog


def main():
    for megabytes in (1, 10, 100):
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, 'audit.jsonl')
            with AuditLog(path) as log:
                log.append('huge', msg='x' * (megabytes * 1024 * 1024))
            started = time.perf_counter()
            with AuditLog(path) as log:
                seq = log.seq
            print('last line %4d MB: reopened in %.3f s (seq %d)' % (megabytes, time.perf_counter() - started, seq))


if __name__ == '__main__':
    main()
