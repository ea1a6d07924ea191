"""No secret in anything a run shows or writes (issue 8): the test fleet installed, taken through
wave 2 and rolled back with NATS credentials in the agents' URL (nats://user:password@host, the
password %-escaped) and in the controller's scheme-less URL (user:password@host:port), then wave 2
started against unreachable servers with a token URL and with the password option; a search of
every output (--diff included), runner event, artifact and audit line finds none of them, nor the
evidence key. The test fleet's nats-server has no authorization and accepts any credentials: what
is tested is where the values travel, not the server's check of them."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import ROOT

from .conftest import ARTIFACTS, HOSTS, QUICK_WAVE2, podman_exec, run_playbook

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(900)]

AGENT_PW = "AgentUrlPw-1%2Fx"        # as written in the URL ('/' %-escaped)
CONTROLLER_PW = "CtlSchemeless-2"
TOKEN = "Tok3nUnreachable-3"
OPTION_PW = "OptPassword-4"
EVIDENCE_KEY = yaml.safe_load((ROOT / "inventory/sandbox/group_vars/all/50-sandbox.yml").read_text())["fleet_evidence_key"]
SECRETS = (AGENT_PW, "AgentUrlPw-1/x", CONTROLLER_PW, TOKEN, OPTION_PW, EVIDENCE_KEY)

CREDENTIALED = {"fleet_nats_url": "nats://agent:%s@127.0.0.1:24222" % AGENT_PW,
                "fleet_nats_controller_url": "ctl:%s@127.0.0.1:24222" % CONTROLLER_PW}
UNREACHABLE = [{"fleet_nats_controller_url": "tls://%s@127.0.0.1:1" % TOKEN},
               {"fleet_nats_controller_url": "nats://127.0.0.1:1", "fleet_nats_user": "ctl",
                "fleet_nats_password": OPTION_PW}]


def shown(run) -> str:
    """All a user or AWX sees of a run: its output and every runner event."""
    return run.stdout + "\n" + "\n".join(json.dumps(e, default=str) for e in run.events)


def leaks(text: str) -> list[str]:
    return [s for s in SECRETS if s in text]


def test_no_secret_in_outputs_diffs_artifacts_or_audit(sandbox, wave1_go, tmp_path):
    runs = {}
    try:
        runs["site"] = run_playbook(tmp_path / "site", "site.yml", "--diff", extravars=CREDENTIALED)
        assert runs["site"].rc == 0, runs["site"].stdout[-3000:]
        # Not vacuous: the agents really run with the credentialed URL, and are connected.
        assert AGENT_PW in podman_exec(HOSTS[0], "cat", "/etc/agents/network-expert.env")

        runs["wave2"] = run_playbook(tmp_path / "wave2", "wave2.yml", "--diff",
                                     extravars=dict(QUICK_WAVE2, **CREDENTIALED))
        assert runs["wave2"].rc == 0, runs["wave2"].stdout[-3000:]
        assert json.loads((ARTIFACTS / "checkpoints/wave2/decision.json").read_text())["outcome"] == "GO"

        runs["rollback"] = run_playbook(tmp_path / "rollback", "rollback.yml", "--diff",
                                        extravars=dict(CREDENTIALED, rollback_wave="wave2"))
        assert runs["rollback"].rc == 0, runs["rollback"].stdout[-3000:]

        for n, unreachable in enumerate(UNREACHABLE):
            run = runs["unreachable-%d" % n] = run_playbook(tmp_path / ("unreachable-%d" % n), "wave2.yml",
                                                            extravars=dict(QUICK_WAVE2, **unreachable))
            # Stopped in pre-flight by the connection, naming the server without its credentials.
            assert run.rc != 0, run.stdout[-3000:]
            assert any("cannot connect to NATS at" in m and "127.0.0.1:1" in m for m in run.failed_messages()), (
                run.failed_messages())
    except BaseException:
        # The test fleet as the other tests expect it: legacy-only (a run above may have stopped with
        # agents flipped; when all went well, the rollback above has left them legacy-only, proven,
        # and the unreachable runs stopped in pre-flight) ...
        assert run_playbook(tmp_path / "restore", "rollback.yml", extravars={"rollback_wave": "wave2"}).rc == 0
        raise
    finally:
        # ... and agents on the plain URL: agent_service's part of site.yml (env files, units,
        # restarts, the check that every agent answers); the reference agent's files are as they were.
        assert run_playbook(tmp_path / "reinstall", "site.yml", "--tags", "agent_service").rc == 0

    for name, run in runs.items():
        assert not leaks(shown(run)), (name, leaks(shown(run)))
    # Everything written on the controller: the test fleet's artifacts (checkpoints, journals,
    # reports, rollback records, audit trails and anchors) and ansible-runner's folders, but for
    # its env/ folders: the extra vars this test gave it (the input, as AWX keeps a job's).
    written = [p for root in (ARTIFACTS, tmp_path) for p in root.rglob("*") if p.is_file()
               and not any(d.name == "env" and d.parent.name.startswith("runner-") for d in p.parents)]
    assert any(p.suffix == ".jsonl" and p.parent.name == "audit" for p in written), "no audit trail written"
    found = {str(p): leaks(p.read_bytes().decode("utf-8", "replace")) for p in written}
    assert not {p: s for p, s in found.items() if s}, {p: s for p, s in found.items() if s}
