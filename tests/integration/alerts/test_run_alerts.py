"""`ferry run -f` sends a Workflow's alerts once each run has finished, against the Samba lab:
new conflicts, a hit delete threshold, the run that recovered; an unchanged run and a plan
send nothing, and a delivery that fails is a warning on stderr, not the run's exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.support.alert_receivers import SmtpServer, WebhookServer, smtp_server, webhook_server

from ferry_agent.directory.write import create, delete
from ferry_agent.dn import build_dn

pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parents[3]
KEY = "whsec-local-run"


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[tuple[SmtpServer, WebhookServer]]:
    with smtp_server(tmp_path / "smtp") as smtp, webhook_server(tmp_path / "hook") as hooks:
        yield smtp, hooks


def manifests(folder: Path, lab: Any, src_ou: str, tgt_ou: str, smtp: SmtpServer,
              hooks: WebhookServer, threshold: int) -> Path:
    text = "\n---\n".join(p.read_text() for p in sorted((ROOT / "examples" / "ad-to-ad")
                                                         .glob("*.yaml")))
    text = (text.replace("host: 127.0.0.2", f"host: {lab.src.ip}")
            .replace("host: 127.0.0.3", f"host: {lab.tgt.ip}")
            .replace("OU=Corp,DC=src,DC=test", src_ou)
            .replace("OU=Migrated,DC=tgt,DC=test", tgt_ou))
    docs = [d for d in yaml.safe_load_all(text) if d]
    (folder / "smtp-password").write_text(smtp.password)
    for doc in docs:
        if doc["kind"] == "Workflow":
            doc["spec"]["steps"][-1]["deleteObjects"]["pairs"][0]["threshold"] = threshold
            doc["spec"]["alerts"] = [
                {"name": "oncall", "email": {
                    "to": ["oncall@example.test"], "from": "ferry@example.test",
                    "smtp": {"host": smtp.host, "port": smtp.port, "username": smtp.user,
                             "password": {"file": "smtp-password"},
                             "caFile": str(smtp.ca_file)}}},
                {"name": "chatops", "webhook": {"url": hooks.url,
                                                "signingKey": {"env": "ALERT_KEY"}}}]
    (folder / "manifests.yaml").write_text(yaml.safe_dump_all(docs))
    return folder


def ferry(lab: Any, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FERRY_SECRETS_DIR": str(lab.root / "secrets"), "ALERT_KEY": KEY,
           "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "ferry", *args, "-f", str(folder),
                           "--state", str(folder / "state.sqlite")], env=env, cwd=folder,
                          capture_output=True, text=True, timeout=600, check=False)


def outcomes(smtp: SmtpServer, hooks: WebhookServer) -> tuple[list[str], list[str]]:
    mails = [str(m["X-Ferry-Delivery"]).split(".")[1] for m in smtp.messages()]
    posts = [json.loads(r["body"])["outcome"] for r in hooks.requests()]
    return mails, posts


def test_ferry_run_alerts_new_conflicts_threshold_and_recovery(
        lab: Any, src_ou: str, tgt_ou: str, receivers: tuple[SmtpServer, WebhookServer],
        tmp_path: Path) -> None:
    smtp, hooks = receivers
    folder = tmp_path / "work"
    folder.mkdir()
    conn = lab.src.connect()
    users = []
    for name, mail in (("Ann Dup", "dup"), ("Bea Dup", "dup"), ("Cal One", "cal"),
                       ("Dan Two", "dan"), ("Eve Three", "eve")):
        sam = f"{name.split()[0].lower()}{uuid.uuid4().hex[:6]}"
        dn = build_dn(name, src_ou)
        create(conn, "user", dn, {"sAMAccountName": [sam], "mail": [f"{mail}@src.test"],
                                  "userPrincipalName": [f"{sam}@src.test"]})
        users.append(dn)
    manifests(folder, lab, src_ou, tgt_ou, smtp, hooks, threshold=1)

    # 1: Ann and Bea share a mail: two conflicts, new ones; the run itself succeeds.
    first = ferry(lab, folder, "run")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "alert oncall sent (NewConflicts)" in first.stdout
    assert outcomes(smtp, hooks) == (["NewConflicts"], ["NewConflicts"])
    [mail] = smtp.messages()
    assert mail["Subject"].strip().startswith("[Ferry] Workflow ad-to-ad has new conflicts (run ")
    assert "newConflicts: 2" in mail.get_content()

    # 2: the same conflicts are not new; a success after a success says nothing either.
    again = ferry(lab, folder, "run")
    assert again.returncode == 0, again.stdout + again.stderr
    # A plan sends nothing, whatever it finds.
    assert ferry(lab, folder, "plan").returncode == 0
    assert outcomes(smtp, hooks) == (["NewConflicts"], ["NewConflicts"])

    # 3: two joined users leave SRC; the threshold (1) holds both deletes back.
    for dn in users[2:4]:
        delete(conn, dn)
    held = ferry(lab, folder, "run")
    assert held.returncode == 3, held.stdout + held.stderr
    assert outcomes(smtp, hooks) == (["NewConflicts", "ThresholdHit"],
                                     ["NewConflicts", "ThresholdHit"])
    [_, threshold_hook] = hooks.requests()
    assert "threshold" in json.loads(threshold_hook["body"])["message"]

    # 4: the threshold raised, the run succeeds: Recovered. The webhook is down this time:
    # a warning on stderr, and the run's exit code is still the run's.
    manifests(folder, lab, src_ou, tgt_ou, smtp, hooks, threshold=10)
    hooks.answer_with(503)
    recovered = ferry(lab, folder, "run")
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert "alert chatops (Recovered) not sent" in recovered.stderr
    assert "503" in recovered.stderr
    mails, posts = outcomes(smtp, hooks)
    assert mails == ["NewConflicts", "ThresholdHit", "Recovered"]
    assert posts == ["NewConflicts", "ThresholdHit", "Recovered"]  # received, answered 503
    conn.unbind()
    for done in (first, again, held, recovered):
        assert smtp.password not in done.stdout + done.stderr
        assert KEY not in done.stdout + done.stderr


def test_a_missing_alert_secret_stops_the_run_before_any_directory(
        lab: Any, src_ou: str, tgt_ou: str, receivers: tuple[SmtpServer, WebhookServer],
        tmp_path: Path) -> None:
    smtp, hooks = receivers
    folder = tmp_path / "work"
    folder.mkdir()
    manifests(folder, lab, src_ou, tgt_ou, smtp, hooks, threshold=10)
    (folder / "smtp-password").unlink()
    done = ferry(lab, folder, "run")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Workflow/ad-to-ad: spec.alerts[0].email.smtp.password" in done.stderr
    assert not (folder / "state.sqlite").exists()
