"""reports/discovery.py, tables.py, summary.py and sync/discovered_objects.py: what the
discovery report counts and the CSV lines and page a user reads."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

from ferry.engine.records import ObjectType, Record
from ferry.reports.chart import bar_chart
from ferry.reports.discovery import Logon, discovery_report
from ferry.reports.summary import summary_html
from ferry.reports.tables import cell, object_csvs
from ferry.state.directory_objects import DiscoveredEnvironment
from ferry.state.rows import DirectoryObject
from ferry.sync.discovered_objects import directory_object, filetime, timestamp

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
STAFF, SALES = "OU=Staff,DC=src,DC=test", "OU=Sales,DC=src,DC=test"
CREATED = NOW - timedelta(days=400)


def _user(name: str, ou: str = STAFF, *, enabled: bool = True, days: int | None = 1,
          mail: str = "") -> DirectoryObject:
    last = NOW - timedelta(days=days) if days is not None else None
    return DirectoryObject(f"a-{name}", "user", f"CN={name},{ou}", name, name.title(),
                           f"{name}@src.test", mail, enabled, last, CREATED)


def _group(name: str, members: int, mail: str = "") -> DirectoryObject:
    return DirectoryObject(f"g-{name}", "group", f"CN={name},{STAFF}", name, mail=mail,
                           members=members, created=CREATED)


ENV = DiscoveredEnvironment("src", "", NOW - timedelta(hours=1), [
    _user("ann", mail="ann@src.test"), _user("bob", enabled=False, days=200),
    _user("cy", days=None), _user("dee", SALES, days=91), _user("eve", SALES, days=89),
    _group("all", 5, mail="all@src.test"), _group("few", 2), _group("none", 0),
    DirectoryObject("c-1", "contact", f"CN=Ext,{SALES}", "Ext", mail="ext@other.test"),
])


def test_counts_by_type_ou_state_mail_and_largest_groups() -> None:
    report = discovery_report(ENV, NOW, 90)
    assert report.by_type == {"user": 5, "group": 3, "contact": 1}
    assert report.accounts["user"] == {"enabled": 4, "disabled": 1, "recent": 2, "stale": 2,
                                       "never": 1}
    assert report.mail_enabled == {"user": 1, "group": 1, "contact": 1}
    assert [g.name for g in report.largest_groups] == ["all", "few", "none"]
    assert list(report.by_ou) == [STAFF, SALES]
    assert report.by_ou[SALES] == {"user": 2, "contact": 1}
    # --stale-days moves the line: 100 days makes dee recent, bob still stale.
    assert discovery_report(ENV, NOW, 100).accounts["user"]["stale"] == 1


def test_csv_files_hold_every_object_with_its_fields() -> None:
    files = object_csvs(discovery_report(ENV, NOW, 90))
    assert sorted(files) == ["contacts.csv", "groups.csv", "users.csv"]
    users = list(csv.DictReader(io.StringIO(files["users.csv"])))
    assert [u["name"] for u in users] == ["ann", "bob", "cy", "dee", "eve"]
    bob = users[1]
    assert bob == {"dn": f"CN=bob,{STAFF}", "ou": STAFF, "name": "bob",
                   "userPrincipalName": "bob@src.test", "mail": "", "displayName": "Bob",
                   "enabled": "false", "lastLogon": "2026-05-16T12:00:00Z", "logon": "stale",
                   "created": "2025-10-28T12:00:00Z", "anchor": "a-bob"}
    assert users[2]["logon"] == "never" and users[2]["lastLogon"] == ""
    groups = list(csv.DictReader(io.StringIO(files["groups.csv"])))
    assert [(g["name"], g["members"]) for g in groups] == [("all", "5"), ("few", "2"),
                                                           ("none", "0")]


def test_a_would_be_formula_is_plain_text() -> None:
    assert cell("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert cell("@SUM(A1)") == "'@SUM(A1)" and cell("CN=a,DC=b") == "CN=a,DC=b"
    assert cell(None) == "" and cell(3) == "3"


def test_entra_objects_have_no_logon_state() -> None:
    entra = DiscoveredEnvironment("tenant", "", NOW, [
        DirectoryObject("u1", "user", "CN=ann@t.test", "Ann", upn="ann@t.test", enabled=True)])
    report = discovery_report(entra, NOW, 90)
    assert report.accounts["user"] == {"enabled": 1}
    assert report.logon(report.objects[0]) is Logon.UNKNOWN
    assert "does not report logon times" in summary_html(report)


def test_summary_page_counts_and_escapes_directory_values() -> None:
    hostile = DiscoveredEnvironment("src", "", NOW, [
        *ENV.objects, _group("<script>alert(1)</script>", 9)])
    page = summary_html(discovery_report(hostile, NOW, 90))
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Discovery report: Environment src" in page
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in page
    assert "<td>OU=Staff,DC=src,DC=test</td><td class=n>3</td><td class=n>4</td>" in page
    assert "never logged on" in page and "groups.csv" in page
    # Each account once per chart: enabled or disabled, and when it last logged on.
    assert ">Users: account</text>" in page and ">Users: last logon</text>" in page
    assert ">over 90 days (stale)</text>" in page and ">within 90 days</text>" in page


def test_bars_scale_to_the_largest_value() -> None:
    svg = bar_chart("t", [("a", 10), ("b", 5), ("c", 0)])
    assert svg.count("<rect") == 3
    assert 'width="320"' in svg and 'width="160"' in svg and 'width="0"' in svg


def test_report_fields_of_an_ad_record() -> None:
    group = Record("g1", ObjectType.GROUP, "CN=G,OU=Staff,DC=src,DC=test",
                   {"sAMAccountName": "G", "mail": "g@src.test",
                    "whenCreated": "20261202183500.0Z"}, {"member": ("u1", "u2")})
    item = directory_object(group)
    assert (item.name, item.mail, item.members) == ("G", "g@src.test", 2)
    assert item.created == datetime(2026, 12, 2, 18, 35, tzinfo=UTC)
    device = Record("d1", ObjectType.DEVICE, "CN=WS1,DC=src,DC=test",
                    {"sAMAccountName": "WS1$", "lastLogonTimestamp": "134090000000000000"})
    assert directory_object(device).name == "WS1"
    # The Unix epoch is FILETIME 116444736000000000; a day is 864,000,000,000 ticks.
    assert filetime("116444736000000000") == datetime(1970, 1, 1, tzinfo=UTC)
    assert filetime("116445600000000000") == datetime(1970, 1, 2, tzinfo=UTC)
    assert filetime("0") is None and filetime("9223372036854775807") is None
    assert filetime("") is None
    assert timestamp("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
