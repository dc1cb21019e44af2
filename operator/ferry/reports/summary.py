"""The discovery report's one-page summary: HTML with inline SVG charts, one file that
opens in any browser; every value from the directory is escaped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

from ferry.reports.chart import bar_chart
from ferry.reports.discovery import TYPES, DiscoveryReport
from ferry.reports.tables import FILE_NAMES, when

OU_ROWS = 50     # the summary's OU table; every object's OU is in the CSV files
_PLURAL = {"user": "users", "group": "groups", "contact": "contacts", "device": "devices"}
_STYLE = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}"
          "table{border-collapse:collapse;margin-bottom:1.5em}"
          "td,th{border:1px solid #bbb;padding:2px 8px;text-align:left}"
          "td.n,th.n{text-align:right}")


def summary_html(report: DiscoveryReport) -> str:
    """The page: objects by type, account states, mail-enabled, OUs, largest groups."""
    title = f"Discovery report: Environment {report.environment}"
    body = [f"<h1>{escape(title)}</h1>",
            f"<p>Last discovery read: {escape(when(report.read_at))}. Report made:"
            f" {escape(when(report.generated_at))}. Stale: no logon for more than"
            f" {report.stale_days} days (lastLogonTimestamp, which AD updates up to 14 days"
            " late).</p>",
            "<h2>Objects by type</h2>",
            bar_chart("Objects by type", [(_PLURAL.get(t, t), n)
                                          for t, n in report.by_type.items()]),
            f"<p>{sum(report.by_type.values())} objects in all.</p>"]
    days = report.stale_days
    logons = {"recent": f"within {days} days", "stale": f"over {days} days (stale)",
              "never": "never logged on"}
    for kind, states in report.accounts.items():
        body.append(f"<h2>{_PLURAL[kind].capitalize()} by state</h2>")
        # Two charts: every account is counted once in each.
        for title, labels in ((f"{_PLURAL[kind].capitalize()}: account", {
                "enabled": "enabled", "disabled": "disabled"}),
                (f"{_PLURAL[kind].capitalize()}: last logon", logons)):
            bars = [(label, states[state]) for state, label in labels.items()
                    if state in states]
            if bars:
                body.append(bar_chart(title, bars))
    if not report.logons_known:
        body.append("<p>This directory does not report logon times here: no account is"
                    " counted stale or never logged on.</p>")
    body += ["<h2>Mail-enabled objects</h2>",
             _table(["type", "with mail", "of"],
                    [(_PLURAL[t], report.mail_enabled.get(t, 0), report.by_type[t])
                     for t in TYPES if t in report.by_type and t != "device"], numeric=(1, 2))]
    ous = list(report.by_ou.items())
    types = [t for t in report.by_type]
    body += [f"<h2>Objects by OU ({len(ous)} OUs)</h2>",
             _table(["OU", *(_PLURAL.get(t, t) for t in types), "total"],
                    [(ou or "(top)", *(counts[t] for t in types), sum(counts.values()))
                     for ou, counts in ous[:OU_ROWS]],
                    numeric=tuple(range(1, len(types) + 2)))]
    if len(ous) > OU_ROWS:
        body.append(f"<p>{len(ous) - OU_ROWS} more OUs: see the ou column of the CSV"
                    " files.</p>")
    if report.largest_groups:
        body += [f"<h2>Largest groups (top {len(report.largest_groups)})</h2>",
                 _table(["group", "members"],
                        [(g.dn, g.members or 0) for g in report.largest_groups], numeric=(1,))]
    files = [FILE_NAMES[t] for t in TYPES if t in report.by_type]
    body += ["<h2>Files</h2>",
             "<ul>" + "".join(f"<li>{escape(f)}: every {escape(f.removesuffix('s.csv'))},"
                              " one per line</li>" for f in files) + "</ul>"]
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _table(header: Sequence[str], rows: Iterable[Sequence[object]],
           numeric: Sequence[int] = ()) -> str:
    def cells(tag: str, values: Sequence[object]) -> str:
        return "".join(f'<{tag}{" class=n" if i in numeric else ""}>{escape(str(v))}</{tag}>'
                       for i, v in enumerate(values))
    return ("<table><tr>" + cells("th", header) + "</tr>"
            + "".join("<tr>" + cells("td", row) + "</tr>" for row in rows) + "</table>")
