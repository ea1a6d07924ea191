"""The env-file grammar table (tests/envfile_grammar.py) checked against the systemd on this machine.

A private `systemd --user` manager runs in a private mount namespace (so the host's /run/systemd
is not touched) and starts one oneshot unit per file with EnvironmentFile= pointing at it; the
unit stores what systemd gave it (env -0). Skipped when that cannot run here (not root, no
unshare, no systemd binary, the manager does not come up).
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest
from ansible_collections.fleetwave.rollout.plugins.module_utils.agent_env import EnvFile

from tests.envfile_grammar import READ, REFUSED, WRITABLE

pytestmark = pytest.mark.integration

PROBE = pathlib.Path(__file__).parent / "files" / "systemd_env_probe.sh"
MANAGER = "/usr/lib/systemd/systemd"
CHECKED_KEYS = ("A", "B", "C", "FOO", "ENABLE_UNIFIED_SUBJECTS")


@pytest.fixture(scope="module")
def systemd_reads(tmp_path_factory):
    """{case id: values systemd set for CHECKED_KEYS, or "refuses" when the unit did not start}."""
    if os.geteuid() != 0 or not shutil.which("unshare") or not os.access(MANAGER, os.X_OK) \
            or not shutil.which("systemctl"):
        pytest.skip("needs root, unshare and systemd to start a private systemd --user manager")
    d = tmp_path_factory.mktemp("sd")
    files = {cid: data for cid, data, *_ in READ + REFUSED}
    for i, value in enumerate(WRITABLE):
        env = EnvFile("w%d" % i)
        env.update({"A": value})
        files["written_%d" % i] = env.render().encode("utf-8")
    for cid, data in files.items():
        (d / (cid + ".env")).write_bytes(data)
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", str(PROBE), str(d)],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.skip("systemd --user could not run here (probe exit %d): %s %s"
                    % (proc.returncode, proc.stderr.strip(), (d / "manager.log").read_text(errors="replace")[-300:]))
    reads = {}
    for cid in files:
        if (d / (cid + ".rc")).read_text().strip() != "0":
            reads[cid] = "refuses"
            continue
        out = (d / (cid + ".out")).read_bytes().decode("utf-8")  # bytes: a "\r" in a value must stay
        env = dict(item.split("=", 1) for item in out.split("\0") if "=" in item)
        reads[cid] = {k: env[k] for k in CHECKED_KEYS if k in env}
    return reads


@pytest.mark.parametrize("cid, values", [(c[0], c[2]) for c in READ], ids=[c[0] for c in READ])
def test_systemd_reads_the_table_as_we_do(systemd_reads, cid, values):
    assert systemd_reads[cid] == values


@pytest.mark.parametrize("cid, systemd", [(c[0], c[3]) for c in REFUSED if c[3] is not None],
                         ids=[c[0] for c in REFUSED if c[3] is not None])
def test_systemd_refuses_or_misreads_what_we_refuse(systemd_reads, cid, systemd):
    assert systemd_reads[cid] == systemd


@pytest.mark.parametrize("i, value", list(enumerate(WRITABLE)), ids=[repr(v) for v in WRITABLE])
def test_systemd_reads_back_what_we_write(systemd_reads, i, value):
    assert systemd_reads["written_%d" % i] == {"A": value}
