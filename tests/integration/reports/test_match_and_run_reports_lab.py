"""`ferry report matches` and `ferry runs --run ID --csv` against the session's Samba lab:
the CSV lines a migration engineer reads, and that a match report writes nothing."""

from __future__ import annotations

import csv
import io
import re
import tarfile
from pathlib import Path

import pytest
from tests.integration.conftest import LabDomains
from tests.integration.reports.lab_reports import Ferry, add_user, environment
from tests.integration.sync.scenario import snapshot

pytestmark = pytest.mark.lab

REST = """\
apiVersion: ferry.dev/v1alpha1
kind: Template
metadata: {{name: report-t}}
spec:
  domainMappings: [{{source: src.test, target: tgt.test}}]
  targetOU: {{default: "{tgt_ou}"}}
  password: {{mustChangeAtNextLogon: false}}
---
apiVersion: ferry.dev/v1alpha1
kind: Workflow
metadata: {{name: report-wf}}
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
        template: report-t
        pairs:
          - source: src
            target: tgt
            objectTypes: [users]
            filter: "!has(source.department) || source.department != 'Excluded'"
    - name: write
      writeTo: {{environments: [tgt]}}
"""


@pytest.fixture
def ferry(lab: LabDomains, src_ou: str, tgt_ou: str, tmp_path: Path) -> Ferry:
    ferry = Ferry(tmp_path, lab.root / "secrets")
    ferry.manifests.mkdir()
    (ferry.manifests / "environments.yaml").write_text(
        environment("src", lab.src, src_ou, "users") + "---\n"
        + environment("tgt", lab.tgt, tgt_ou, "users"))
    (ferry.manifests / "rest.yaml").write_text(REST.format(tgt_ou=tgt_ou))
    return ferry


def _rows(text: str, key: str) -> dict[str, dict[str, str]]:
    return {row[key].lower(): row for row in csv.DictReader(io.StringIO(text))}


def test_run_csv_and_match_report_of_every_status(
        ferry: Ferry, lab: LabDomains, src_ou: str, tgt_ou: str) -> None:
    ann = add_user(lab.src, src_ou, "rm-ann", mail="rm-ann@src.test")
    run = ferry.ok("run", "-f", str(ferry.manifests), "-w", "report-wf")
    found = re.search(r"run (\S+) \(full\)", run)
    assert found, run
    run_id = found.group(1)
    # The run's per-object results, as CSV.
    results = list(csv.DictReader(io.StringIO(ferry.ok("runs", "--run", run_id, "--csv"))))
    assert [(r["pair"], r["type"], r["dn"].lower(), r["operation"], r["result"])
            for r in results] == [("report-wf/src->tgt", "user", f"cn=rm-ann,{tgt_ou}".lower(),
                                   "create", "ok")]
    assert results[0]["anchor"] and list(results[0]) == [
        "pair", "type", "anchor", "dn", "operation", "result", "message"]
    unknown = ferry("runs", "--run", "no-such-run", "--csv")
    assert unknown.returncode == 2 and "no such run" in unknown.stderr

    bob = add_user(lab.src, src_ou, "rm-bob", employeeID="9301")
    bob_t = add_user(lab.tgt, tgt_ou, "rm-bob-t", employeeID="9301")
    cy = add_user(lab.src, src_ou, "rm-cy", employeeID="9302")
    twins = sorted(add_user(lab.tgt, tgt_ou, n, employeeID="9302")
                   for n in ("rm-cy1", "rm-cy2"))
    dee = add_user(lab.src, src_ou, "rm-dee")
    eve = add_user(lab.src, src_ou, "rm-eve", department="Excluded")
    before, runs_before = snapshot(lab.tgt, tgt_ou), ferry.ok("runs")

    out = ferry.folder / "matches"
    printed = ferry.ok("report", "matches", "-f", str(ferry.manifests), "-w", "report-wf",
                       "--out", str(out))
    assert ("src -> tgt: 1 conflict, 1 joined, 1 matched, 1 outOfScope, 1 wouldCreate;"
            f" wrote {out / 'src-to-tgt.csv'}") in printed
    rows = _rows((out / "src-to-tgt.csv").read_text(), "sourceDN")
    assert set(rows) == {dn.lower() for dn in (ann, bob, cy, dee, eve)}
    joined, matched = rows[ann.lower()], rows[bob.lower()]
    assert (joined["status"], joined["rule"], joined["targetDN"].lower(), joined["targetType"]) \
        == ("joined", "join", f"cn=rm-ann,{tgt_ou}".lower(), "user")
    assert (matched["status"], matched["rule"], matched["targetDN"].lower()) == (
        "matched", "employeeID -> employeeID", bob_t.lower())
    conflict = rows[cy.lower()]
    assert (conflict["status"], conflict["rule"], conflict["targetDN"]) == (
        "conflict", "employeeID -> employeeID", "")
    assert sorted(conflict["candidates"].lower().split("; ")) == [t.lower() for t in twins]
    assert "matches 2 target objects" in conflict["reason"]
    assert (rows[dee.lower()]["status"], rows[dee.lower()]["targetDN"].lower()) == (
        "wouldCreate", f"cn=rm-dee,{tgt_ou}".lower())
    assert (rows[eve.lower()]["status"], rows[eve.lower()]["reason"]) == (
        "outOfScope", "no longer matches the source filter")
    assert all(r["sourceType"] == "user" and r["anchor"] for r in rows.values())
    # Nothing was written: not the target, not the state store's runs or joins.
    assert snapshot(lab.tgt, tgt_ou) == before and ferry.ok("runs") == runs_before

    # As a tar on stdout, for kubectl exec.
    done = ferry("report", "matches", "-f", str(ferry.manifests), "-w", "report-wf",
                 "--out", "-", binary=True)
    assert done.returncode == 0, done.stderr
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        assert tar.getnames() == ["matches-report-wf/src-to-tgt.csv"]
        member = tar.extractfile("matches-report-wf/src-to-tgt.csv")
        assert member is not None and len(_rows(member.read().decode(), "sourceDN")) == 5
    missing = ferry("report", "matches", "-f", str(ferry.manifests), "-w", "nope", "--out", "-")
    assert missing.returncode == 2 and "no Workflow named 'nope'" in missing.stderr
    # A Secret that cannot be read is named before any directory is read or file written.
    ferry.secrets = ferry.folder / "no-secrets"
    ferry.secrets.mkdir()
    refused = ferry("report", "matches", "-f", str(ferry.manifests), "-w", "report-wf",
                    "--out", str(ferry.folder / "refused"))
    assert refused.returncode == 2 and refused.stdout == ""
    assert "Environment/src: spec.activeDirectory.credentials.password" in " ".join(
        refused.stderr.split())
    assert not (ferry.folder / "refused").exists()
