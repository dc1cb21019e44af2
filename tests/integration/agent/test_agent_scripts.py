"""A workflow's script step run by a real ferry-agent of the Samba lab's TGT, through a real
gateway: only a program its INI allows, with the run's context, and a secret variable that
crosses the gateway sealed to the agent's key."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.gateway.harness import RunningGateway, lab_directory, start_gateway

from ferry.errors import ExitCode

pytestmark = pytest.mark.lab

SECRET = "agent-side-secret-91c4"
MANIFESTS = """\
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {{name: tgt}}
spec:
  type: ActiveDirectory
  connection: agent
  activeDirectory: {{host: {ip}, baseDN: "{base}"}}
  scope: {{ous: ["{base}"], objectTypes: [users]}}
---
apiVersion: ferry.dev/v1alpha1
kind: Workflow
metadata: {{name: on-agent}}
spec:
  steps:
    - name: mailbox
      runScript:
        environment: tgt
        command: [/bin/sh]
        script:
          inline: |
            echo "agent ran step $FERRY_STEP of $FERRY_WORKFLOW run $FERRY_RUN_ID"
            [ "$MAILBOX_KEY" = "{secret}" ] && echo "secret opened on the agent"
            grep -q '"point": "beforeRead"' "$FERRY_CONTEXT_FILE" && echo "context read"
        env:
          - {{name: MAILBOX_KEY, valueFrom: {{env: FERRY_TEST_AGENT_SECRET}}}}
    - name: not allowed
      runScript:
        environment: tgt
        command: [/bin/bash]
        script: {{inline: "echo should not run"}}
        onFailure: continue
"""


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[RunningGateway]:
    running = start_gateway(tmp_path / "gateway", "127.0.0.107")
    try:
        yield running
    finally:
        running.stop()


def test_an_agent_runs_an_allowed_script_with_its_sealed_secret_and_refuses_others(
        gateway: RunningGateway, lab: Any, tmp_path: Path) -> None:
    agent = gateway.start_agent("tgt", "tgt-scripts", tmp_path / "agent",
                                lab_directory(lab.tgt, lab.root), scripts={"allow": "/bin/sh"})
    folder = tmp_path / "manifests"
    folder.mkdir()
    (folder / "all.yaml").write_text(MANIFESTS.format(ip=lab.tgt.ip, base=lab.tgt.base_dn,
                                                      secret=SECRET))
    token_file = tmp_path / "job-credential"
    token_file.write_text(gateway.credential("tgt", subject="scripts"))
    env = {**os.environ, "COLUMNS": "200", "FERRY_TEST_AGENT_SECRET": SECRET,
           "FERRY_GATEWAY_URL": gateway.url, "FERRY_GATEWAY_CA": str(gateway.ca_file),
           "FERRY_GATEWAY_TOKEN_FILE": str(token_file)}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ferry", "run", "-f", str(folder), "--state",
             str(tmp_path / "state.sqlite")], env=env, capture_output=True, text=True,
            timeout=600, check=False, cwd=tmp_path)
    finally:
        agent.terminate()
        agent.wait(timeout=15)
    output = done.stdout + done.stderr
    assert done.returncode == ExitCode.OK, output
    assert "script step 0 (mailbox): Succeeded on Agent tgt, exit code 0" in done.stdout
    assert "  | agent ran step 0 of on-agent run " in done.stdout
    assert "  | secret opened on the agent" in done.stdout
    assert "  | context read" in done.stdout
    assert "script step 1 (not allowed): Failed on Agent tgt" in done.stdout
    assert "'/bin/bash' is not in [scripts] allow of [scripts] of" in done.stdout
    assert "should not run" not in done.stdout
    # The secret crossed the gateway sealed: neither its log nor its state holds it.
    kept = b"".join(p.read_bytes() for p in (tmp_path / "gateway").rglob("*") if p.is_file())
    kept += (tmp_path / "agent" / "agent.log").read_bytes()
    assert kept and SECRET.encode() not in kept
    assert SECRET not in output
