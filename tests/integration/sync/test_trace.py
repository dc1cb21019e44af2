"""`ferry trace` against the session's Samba lab: what a user sees for one object."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.integration.conftest import LabDomains
from tests.integration.sync.lab_manifests import add_user, environment_manifest

pytestmark = pytest.mark.lab

REST = """\
apiVersion: ferry.dev/v1alpha1
kind: Template
metadata: {{name: trace-t}}
spec:
  attributeMappings:
    - target: description
      expression: "'Traced ' + source.sAMAccountName"
      objectTypes: [users]
  domainMappings: [{{source: src.test, target: tgt.test}}]
  targetOU: {{default: "{tgt_ou}"}}
  password: {{mustChangeAtNextLogon: false}}
---
apiVersion: ferry.dev/v1alpha1
kind: Workflow
metadata: {{name: trace-wf}}
spec:
  steps:
    - name: read
      readFrom: {{environments: [src, tgt]}}
    - name: match
      match:
        source: src
        target: tgt
        rules:
          - {{sourceAttribute: mail, targetAttribute: mail}}
          - {{sourceAttribute: employeeID, targetAttribute: employeeID}}
    - name: stage
      stageData:
        template: trace-t
        pairs:
          - source: src
            target: tgt
            objectTypes: [users]
            filter: "!has(source.department) || source.department != 'Excluded'"
    - name: write
      writeTo: {{environments: [tgt]}}
"""


class Ferry:
    def __init__(self, folder: Path, secrets: Path) -> None:
        self.folder, self.secrets = folder, secrets

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "ferry", *args, "--state",
                   str(self.folder / "state.sqlite")]
        if args[0] == "trace":
            command += ["-f", str(self.folder / "manifests"), "-w", "trace-wf"]
        env = {**os.environ, "FERRY_SECRETS_DIR": str(self.secrets), "COLUMNS": "200"}
        return subprocess.run(command, env=env, cwd=self.folder, capture_output=True,
                              text=True, timeout=300, check=False)

    def trace(self, key: str, *more: str) -> tuple[subprocess.CompletedProcess[str],
                                                  dict[str, Any]]:
        done = self("trace", key, "--json", *more)
        assert done.returncode == 0, done.stdout + done.stderr
        return done, json.loads(done.stdout)


@pytest.fixture
def ferry(lab: LabDomains, src_ou: str, tgt_ou: str, tmp_path: Path) -> Ferry:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "environments.yaml").write_text(
        environment_manifest("src", lab.src, src_ou) + "---\n"
        + environment_manifest("tgt", lab.tgt, tgt_ou))
    (manifests / "rest.yaml").write_text(REST.format(tgt_ou=tgt_ou))
    return Ferry(tmp_path, lab.root / "secrets")


def test_trace_create_apply_update_and_nothing_to_do(
        ferry: Ferry, lab: LabDomains, src_ou: str, tgt_ou: str) -> None:
    ann = add_user(lab.src, src_ou, "tr-ann", mail="tr-ann@src.test",
                    userPrincipalName="tr-ann@src.test", title="Clerk")
    # By UPN: in scope, no candidates, staged with provenance, a create.
    _, found = ferry.trace("tr-ann@src.test")
    pair = found["pairs"][0]
    assert found["object"]["dn"].lower() == ann.lower()
    assert pair["inScope"] and pair["decision"] == "create"
    assert [r["note"] for r in pair["rules"]] == ["no candidate: the next rule decides",
                                                  "no value: the next rule decides"]
    staged = {s["attribute"]: s for s in pair["staged"]}
    assert staged["mail"]["value"] == "tr-ann@tgt.test"
    assert staged["mail"]["domainMappedFrom"] == "tr-ann@src.test"
    assert staged["description"]["producedBy"].startswith(
        "Template/trace-t: spec.attributeMappings[0]")
    assert staged["title"]["producedBy"].startswith("built-in mapping: source.title")
    assert pair["operations"][0]["password"] == "<set from Template password>"
    # The text says the same, step by step.
    text = ferry("trace", "tr-ann@src.test")
    assert text.returncode == 0, text.stderr
    assert "1. scope: in scope" in text.stdout and "6. operation: create" in text.stdout

    # --apply creates it, records a run of mode trace; a re-trace (by GUID) has nothing to do.
    done, applied = ferry.trace("tr-ann", "--apply")
    assert applied["result"] == "Succeeded", done.stdout
    runs = ferry("runs")
    row = next(line for line in runs.stdout.splitlines() if applied["run"] in line)
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells[1:3] == ["trace-wf", "trace"] and cells[5] == "1", row   # mode, created
    guid = applied["object"]["anchor"]
    _, again = ferry.trace(guid)
    assert again["pairs"][0]["join"].startswith("joined to")
    assert again["pairs"][0]["decision"] == "nothing to do: in sync"

    # A change in the source: joined, the diff shows it (by DN this time).
    conn = lab.src.connect()
    assert conn.modify(ann, {"title": [("MODIFY_REPLACE", ["Manager"])]}), conn.result
    conn.unbind()
    _, changed = ferry.trace(ann)
    assert changed["pairs"][0]["decision"] == "update"
    assert {"attribute": "title", "current": "Clerk", "staged": "Manager"} \
        in changed["pairs"][0]["diff"]


def test_trace_out_of_scope_ambiguous_and_not_found(
        ferry: Ferry, lab: LabDomains, src_ou: str, tgt_ou: str) -> None:
    add_user(lab.src, src_ou, "tr-carl", department="Excluded")
    _, outside = ferry.trace("tr-carl")
    assert outside["pairs"][0]["outOfScopeReason"] == "no longer matches the source filter"
    assert outside["pairs"][0]["operations"] == []

    add_user(lab.src, src_ou, "tr-bob", employeeID="9202")
    twins = {add_user(lab.tgt, tgt_ou, name, employeeID="9202").lower()
             for name in ("tr-bob1", "tr-bob2")}
    _, ambiguous = ferry.trace("tr-bob")
    pair = ambiguous["pairs"][0]
    assert pair["rules"][1]["note"] == "2 candidates: ambiguous, nothing is written"
    assert {c["dn"].lower() for c in pair["rules"][1]["candidates"]} == twins
    assert pair["decision"] == "conflict: nothing is written" and pair["operations"] == []
    # --apply of a conflict writes nothing and records the conflict in the run.
    _, applied = ferry.trace("tr-bob", "--apply")
    row = next(line for line in ferry("runs").stdout.splitlines() if applied["run"] in line)
    cells = [cell.strip() for cell in row.strip("│ ").split("│")]
    assert cells[5] == "0" and cells[9] == "1", row   # created, conflicts

    # A mail two source users share: neither is written, the trace says who shares it.
    add_user(lab.src, src_ou, "tr-dee", mail="tr-shared@src.test")
    other = add_user(lab.src, src_ou, "tr-dee2", mail="tr-shared@src.test")
    _, shared = ferry.trace("tr-dee")
    conflict = shared["pairs"][0]["conflicts"][0]
    assert conflict["rule"] == "mail -> mail" and conflict["candidates"] == [other]
    assert "shared by 2 source objects" in conflict["message"]

    missing = ferry("trace", "nobody-here")
    assert missing.returncode == 1
    assert "no object 'nobody-here' found; looked up src: sAMAccountName=nobody-here" \
        in missing.stderr + missing.stdout
