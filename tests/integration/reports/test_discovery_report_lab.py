"""`ferry discover` and `ferry report discovery` against the session's Samba lab: the files
a migration engineer hands on, as they read them."""

from __future__ import annotations

import csv
import io
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from tests.integration.conftest import LabDomains
from tests.integration.reports.lab_reports import (
    Ferry,
    add,
    add_user,
    environment,
    filetime,
    modify,
)

pytestmark = pytest.mark.lab


@pytest.fixture
def ferry(lab: LabDomains, src_ou: str, tmp_path: Path) -> Ferry:
    ferry = Ferry(tmp_path, lab.root / "secrets")
    ferry.manifests.mkdir()
    (ferry.manifests / "src.yaml").write_text(environment("src", lab.src, src_ou,
                                                          "users, groups, devices"))
    return ferry


def _csv(text: str) -> dict[str, dict[str, str]]:
    return {row["name"]: row for row in csv.DictReader(io.StringIO(text))}


def test_discovery_report_counts_states_groups_and_a_delta_disabling(
        ferry: Ferry, lab: LabDomains, src_ou: str) -> None:
    now = datetime.now(UTC)
    sales = add(lab.src, f"OU=Sales,{src_ou}", ["top", "organizationalUnit"])
    ann = add_user(lab.src, src_ou, "rp-ann", mail="rp-ann@src.test",
                   userPrincipalName="rp-ann@src.test", displayName="Ann Report")
    bob = add_user(lab.src, src_ou, "rp-bob", enabled=False)
    cy = add_user(lab.src, sales, "rp-cy")
    dee = add_user(lab.src, sales, "rp-dee")
    # lastLogonTimestamp as the DC would keep it: ann logged on yesterday, cy 200 days ago.
    modify(lab.src, ann, lastLogonTimestamp=filetime(now - timedelta(days=1)))
    modify(lab.src, cy, lastLogonTimestamp=filetime(now - timedelta(days=200)))
    add(lab.src, f"CN=rp-staff,{src_ou}", ["top", "group"], sAMAccountName="rp-staff",
        mail="rp-staff@src.test", member=[ann, bob, cy])
    add(lab.src, f"CN=rp-empty,{src_ou}", ["top", "group"], sAMAccountName="rp-empty")
    add(lab.src, f"CN=RP-WS1,{sales}", ["top", "person", "organizationalPerson", "user",
                                        "computer"], sAMAccountName="RP-WS1$",
        userAccountControl="4096", operatingSystem="Windows 11 Enterprise",
        lastLogonTimestamp=filetime(now - timedelta(days=120)))

    done = ferry.ok("discover", "-f", str(ferry.manifests))
    assert "Environment/src: full discovery: 7 objects (1 devices, 2 groups, 4 users)" in done
    out = ferry.folder / "report"
    printed = ferry.ok("report", "discovery", "src", "--out", str(out))
    assert f"wrote {out / 'users.csv'}" in printed and f"wrote {out / 'summary.html'}" in printed
    assert sorted(p.name for p in out.iterdir()) == ["devices.csv", "groups.csv", "summary.html",
                                                     "users.csv"]

    users = _csv((out / "users.csv").read_text())
    assert set(users) == {"rp-ann", "rp-bob", "rp-cy", "rp-dee"}
    assert users["rp-ann"]["dn"].lower() == ann.lower()
    assert users["rp-ann"]["ou"].lower() == src_ou.lower()
    assert (users["rp-ann"]["userPrincipalName"], users["rp-ann"]["mail"],
            users["rp-ann"]["displayName"]) == ("rp-ann@src.test", "rp-ann@src.test",
                                                "Ann Report")
    assert [users[n]["enabled"] for n in ("rp-ann", "rp-bob", "rp-cy")] == [
        "true", "false", "true"]
    assert [users[n]["logon"] for n in ("rp-ann", "rp-bob", "rp-cy", "rp-dee")] == [
        "recent", "never", "stale", "never"]
    assert users["rp-ann"]["lastLogon"].startswith((now - timedelta(days=1)).strftime("%Y-%m-%d"))
    assert users["rp-ann"]["created"][:4] == str(now.year) and users["rp-ann"]["anchor"]
    groups = _csv((out / "groups.csv").read_text())
    assert (groups["rp-staff"]["members"], groups["rp-staff"]["mail"]) == ("3", "rp-staff@src.test")
    assert groups["rp-empty"]["members"] == "0"

    [device] = csv.DictReader(io.StringIO((out / "devices.csv").read_text()))
    assert (device["name"], device["operatingSystem"], device["logon"], device["ou"].lower()) \
        == ("RP-WS1", "Windows 11 Enterprise", "stale", sales.lower())
    page = (out / "summary.html").read_text()
    assert "Discovery report: Environment src" in page
    assert "<text x=\"174\" y=\"37\" text-anchor=\"end\">users</text>" in page
    assert ">disabled</text>" in page and ">never logged on</text>" in page
    assert (f"<tr><td>{sales}</td><td class=n>2</td><td class=n>0</td><td class=n>1</td>"
            "<td class=n>3</td>") in page
    assert "<tr><td>user</td>" not in page and "<tr><td>users</td><td class=n>1</td>" in page

    # Disabling dee reaches the report through the next discovery, a delta.
    modify(lab.src, dee, userAccountControl=str(0x222))
    assert "delta discovery: 7 objects" in ferry.ok("discover", "-f", str(ferry.manifests))
    ferry.ok("report", "discovery", "src", "--out", str(out))
    assert _csv((out / "users.csv").read_text())["rp-dee"]["enabled"] == "false"
    # --stale-days 300 makes cy's 200 days recent.
    ferry.ok("report", "discovery", "src", "--out", str(out), "--stale-days", "300")
    assert _csv((out / "users.csv").read_text())["rp-cy"]["logon"] == "recent"


def test_the_report_as_a_tar_on_stdout(ferry: Ferry, lab: LabDomains, src_ou: str) -> None:
    add_user(lab.src, src_ou, "rp-tar", mail="=cmd|' /C calc'!A0")
    ferry.ok("discover", "-f", str(ferry.manifests))
    done = ferry("report", "discovery", "src", "--out", "-", binary=True)
    assert done.returncode == 0, done.stderr
    with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
        assert sorted(tar.getnames()) == ["discovery-src/summary.html",
                                          "discovery-src/users.csv"]
        users = tar.extractfile("discovery-src/users.csv")
        assert users is not None
        row = _csv(users.read().decode())["rp-tar"]
    assert row["mail"] == "'=cmd|' /C calc'!A0"     # a spreadsheet shows it, never runs it
    assert b"wrote a tar of discovery-src/users.csv" in done.stderr


def test_bad_input_is_refused_naming_the_fix(ferry: Ferry, tmp_path: Path) -> None:
    missing = ferry("report", "discovery", "nowhere", "--out", str(tmp_path / "r"))
    said = " ".join(missing.stderr.split())
    assert missing.returncode == 2 and "holds no discovery of Environment 'nowhere'" in said
    assert "run `ferry discover -f DIR -e nowhere`" in said
    assert not (tmp_path / "r").exists() and not ferry.state.exists()
    afile = tmp_path / "taken"
    afile.write_text("x")
    refused = ferry("report", "discovery", "src", "--out", str(afile))
    assert refused.returncode == 2 and "is a file, not a folder" in refused.stderr
    unknown = ferry("discover", "-f", str(ferry.manifests), "-e", "nope")
    assert unknown.returncode == 2 and "no Environment 'nope' in the manifests" in unknown.stderr
    # A Secret that cannot be read is named before the state store or a directory is opened.
    ferry.secrets = tmp_path / "no-secrets"
    ferry.secrets.mkdir()
    done = ferry("discover", "-f", str(ferry.manifests))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "Environment/src: spec.activeDirectory.credentials.password" in " ".join(
        done.stderr.split())
    assert not ferry.state.exists()


def test_an_environment_of_a_namespace_is_reported_as_namespace_and_name(
        ferry: Ferry, lab: LabDomains, src_ou: str) -> None:
    # As a discovery Job records an in-cluster Environment: under its name, with its namespace.
    manifest = ferry.manifests / "src.yaml"
    manifest.write_text(manifest.read_text().replace("metadata: {name: src}",
                                                     "metadata: {name: src, namespace: team-a}"))
    add_user(lab.src, src_ou, "rp-ns")
    ferry.ok("discover", "-f", str(ferry.manifests))
    for given in ("team-a/src", "src"):
        done = ferry("report", "discovery", given, "--out", "-", binary=True)
        assert done.returncode == 0, done.stderr
        with tarfile.open(fileobj=io.BytesIO(done.stdout)) as tar:
            assert "discovery-src/users.csv" in tar.getnames()
    other = ferry("report", "discovery", "team-b/src", "--out", "-")
    assert other.returncode == 2 and other.stdout == ""
    assert "is of namespace team-a; give team-a/src" in " ".join(other.stderr.split())
