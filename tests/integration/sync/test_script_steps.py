"""runScript steps in `ferry plan` and `ferry run -f` against the session's Samba lab: a gate
before the reads that keeps a run from touching anything, a ConfigMap script after the writes
that reads the run's counts and results, a timeout that does not fail the run, and what
`ferry runs --run` shows of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tests.integration.conftest import LabDomains
from tests.integration.sync.lab_manifests import add_user, environment_manifest

from ferry.errors import ExitCode

pytestmark = pytest.mark.lab

TOKEN = "tok-5f2e9c1a-not-for-logs"
REST = """\
apiVersion: ferry.dev/v1alpha1
kind: Template
metadata: {{name: scripts-t}}
spec:
  domainMappings: [{{source: src.test, target: tgt.test}}]
  targetOU: {{default: "{tgt_ou}"}}
  password: {{mustChangeAtNextLogon: false}}
---
apiVersion: v1
kind: ConfigMap
metadata: {{name: hooks}}
data:
  after.sh: |
    echo "$FERRY_COUNTS" > "{out}/counts.json"
    cp "$FERRY_RESULTS_FILE" "{out}/results.json"
    cp "$FERRY_CONTEXT_FILE" "{out}/context.json"
    echo "after-write of run $FERRY_RUN_ID ($FERRY_RUN_MODE) step $FERRY_STEP"
---
apiVersion: ferry.dev/v1alpha1
kind: Workflow
metadata: {{name: scripts-wf}}
spec:
  steps:
    - name: gate
      runScript:
        command: [/bin/sh]
        script:
          inline: |
            touch "{out}/gate-ran"
            [ "$API_TOKEN" = "{token}" ] && echo "token arrived"
            echo "inherited: ${{FERRY_TEST_SCRIPT_TOKEN:-nothing}}"
            [ -f "{out}/open" ] && exit 0
            echo "gate closed: change window not open"
            exit 4
        env:
          - {{name: API_TOKEN, valueFrom: {{env: FERRY_TEST_SCRIPT_TOKEN}}}}
    - readFrom: {{environments: [src, tgt]}}
    - stageData:
        template: scripts-t
        pairs: [{{source: src, target: tgt, objectTypes: [users]}}]
    - writeTo: {{environments: [tgt]}}
    - name: after
      runScript:
        command: [/bin/sh]
        script: {{configMapKeyRef: {{name: hooks, key: after.sh}}}}
    - name: slow
      runScript:
        command: [/bin/sh, -c, "echo waiting; sleep 300"]
        timeoutSeconds: 1
        onFailure: continue
"""


def _ferry(folder: Path, secrets: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ferry", *args, "--state", str(folder / "state.sqlite")]
    if args[0] in ("run", "plan"):
        command += ["-f", str(folder / "manifests")]
    env = {**os.environ, "FERRY_SECRETS_DIR": str(secrets), "COLUMNS": "200",
           "FERRY_TEST_SCRIPT_TOKEN": TOKEN}
    return subprocess.run(command, env=env, cwd=folder, capture_output=True, text=True,
                          timeout=600, check=False)


def _run_id(output: str) -> str:
    return next(word for line in output.splitlines() if "Workflow scripts-wf: run " in line
                for word in [line.split(" run ", 1)[1].split()[0]])


def test_script_steps_gate_a_run_read_its_results_and_show_in_its_history(
        lab: LabDomains, src_ou: str, tgt_ou: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "environments.yaml").write_text(
        environment_manifest("src", lab.src, src_ou) + "---\n"
        + environment_manifest("tgt", lab.tgt, tgt_ou))
    (manifests / "rest.yaml").write_text(REST.format(tgt_ou=tgt_ou, out=out, token=TOKEN))
    add_user(lab.src, src_ou, "sc-ann", mail="sc-ann@src.test")
    secrets = lab.root / "secrets"

    # Test mode lists each step where it would run, and runs none.
    plan = _ferry(tmp_path, secrets, "plan")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    for line in ("script step 0 (gate): Planned on Local",
                 "script step 4 (after): Planned on Local",
                 "script step 5 (slow): Planned on Local"):
        assert line in plan.stdout, plan.stdout
    assert not (out / "gate-ran").exists()

    # The gate fails the run before anything is read: nothing written, later steps skipped.
    closed = _ferry(tmp_path, secrets, "run")
    assert closed.returncode == ExitCode.FAILED, closed.stdout + closed.stderr
    assert "spec.steps[0].runScript (gate) failed with exit code 4" in closed.stdout
    assert "script step 0 (gate): Failed on Local, exit code 4" in closed.stdout
    assert "  | token arrived" in closed.stdout
    assert "  | inherited: nothing" in closed.stdout   # only what the step declares
    assert "  | gate closed: change window not open" in closed.stdout
    assert "script step 4 (after): Skipped" in closed.stdout
    assert _tgt_users(lab, tgt_ou) == []
    first = _run_id(closed.stdout)

    # Open: the run writes, the after-write script reads what it did, the slow one times out
    # without failing the run (onFailure: continue).
    (out / "open").touch()
    done = _ferry(tmp_path, secrets, "run")
    assert done.returncode == ExitCode.OK, done.stdout + done.stderr
    assert _tgt_users(lab, tgt_ou) == ["sc-ann"]
    second = _run_id(done.stdout)
    assert json.loads((out / "counts.json").read_text()) == {"created": 1}
    results = json.loads((out / "results.json").read_text())
    assert results["total"] == 1
    assert results["results"][0]["operation"] == "create"
    assert results["results"][0]["outcome"] == "ok"
    assert results["results"][0]["targetDn"].lower() == f"cn=sc-ann,{tgt_ou}".lower()
    context = json.loads((out / "context.json").read_text())
    assert (context["workflow"], context["run"], context["point"]) == \
        ("scripts-wf", second, "afterWrite")
    assert "script step 5 (slow): TimedOut on Local" in done.stdout

    # The history keeps each step of each run, with the end of its output.
    shown = _ferry(tmp_path, secrets, "runs", "--run", second)
    assert shown.returncode == 0, shown.stderr
    assert "script step 0 (gate): Succeeded on Local, exit code 0" in shown.stdout
    assert f"  | after-write of run {second} (full) step 4" in shown.stdout
    assert "script step 5 (slow): TimedOut on Local" in shown.stdout
    assert "  | waiting" in shown.stdout
    earlier = _ferry(tmp_path, secrets, "runs", "--run", first)
    assert "script step 0 (gate): Failed on Local, exit code 4" in earlier.stdout
    assert "script step 5 (slow): Skipped on Local" in earlier.stdout
    # The secret variable went to the script's environment, nowhere else.
    state = b"".join(p.read_bytes() for p in tmp_path.glob("state.sqlite*"))
    assert TOKEN.encode() not in state
    plans = b"".join(p.read_bytes() for p in (tmp_path / ".ferry").rglob("*.json"))
    assert plans and TOKEN.encode() not in plans
    assert TOKEN not in closed.stdout + closed.stderr + done.stdout + done.stderr


def _tgt_users(lab: LabDomains, tgt_ou: str) -> list[str]:
    conn = lab.tgt.connect()
    try:
        conn.search(tgt_ou, "(objectClass=user)", attributes=["sAMAccountName"])
        return sorted(str(e.sAMAccountName) for e in conn.entries)
    finally:
        conn.unbind()
