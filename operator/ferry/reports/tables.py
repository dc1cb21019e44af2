"""CSV text: the discovery report's object lists per type, and the guard every CSV cell of a
report goes through."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime

from ferry.reports.discovery import DiscoveryReport
from ferry.state.rows import DirectoryObject
from ferry_agent.dn import parent_dn

# A spreadsheet runs a cell starting with one of these as a formula; directory values come
# from whoever may edit the directory, so such a cell is quoted (OWASP's CSV injection fix).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def cell(value: object) -> str:
    """One CSV cell as text, a would-be formula made plain text."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A CSV file's text: the header, then one line per row (RFC 4180 quoting, CRLF)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([cell(value) for value in row] for row in rows)
    return buffer.getvalue()


def when(value: datetime | None) -> str:
    """A time as ISO 8601 in UTC, to the second ("" for none)."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if value else ""


def _enabled(value: bool | None) -> str:
    return "" if value is None else str(value).lower()


Column = tuple[str, Callable[[DirectoryObject, DiscoveryReport], object]]
_DN: Column = ("dn", lambda o, _: o.dn)
_OU: Column = ("ou", lambda o, _: parent_dn(o.dn))
_NAME: Column = ("name", lambda o, _: o.name)
_DISPLAY: Column = ("displayName", lambda o, _: o.display_name)
_MAIL: Column = ("mail", lambda o, _: o.mail)
_LAST: Column = ("lastLogon", lambda o, _: when(o.last_logon))
_LOGON: Column = ("logon", lambda o, r: r.logon(o).value)
_CREATED: Column = ("created", lambda o, _: when(o.created))
_ANCHOR: Column = ("anchor", lambda o, _: o.anchor)
COLUMNS: dict[str, tuple[Column, ...]] = {
    "user": (_DN, _OU, _NAME, ("userPrincipalName", lambda o, _: o.upn), _MAIL, _DISPLAY,
             ("enabled", lambda o, _: _enabled(o.enabled)), _LAST, _LOGON, _CREATED, _ANCHOR),
    "group": (_DN, _OU, _NAME, _MAIL, _DISPLAY, ("members", lambda o, _: o.members),
              _CREATED, _ANCHOR),
    "contact": (_DN, _OU, _NAME, _MAIL, _DISPLAY, _CREATED, _ANCHOR),
    "device": (_DN, _OU, _NAME, ("operatingSystem", lambda o, _: o.os), _LAST, _LOGON,
               _CREATED, _ANCHOR),
}
FILE_NAMES = {"user": "users.csv", "group": "groups.csv", "contact": "contacts.csv",
              "device": "devices.csv"}


def object_csvs(report: DiscoveryReport) -> dict[str, str]:
    """File name -> CSV text, for each type the environment has objects of."""
    files: dict[str, str] = {}
    for object_type, columns in COLUMNS.items():
        items = report.of_type(object_type)
        if items:
            files[FILE_NAMES[object_type]] = csv_text(
                [name for name, _ in columns],
                ([value(item, report) for _, value in columns] for item in items))
    return files
