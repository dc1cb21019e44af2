"""A trace's report as status keeps it: whole when small, cut to 32 KiB saying so."""

from __future__ import annotations

import json
from typing import Any

from ferry.controller.trace_report import REPORT_LIMIT, bounded_report
from ferry.sync.trace_text import json_lines


def report(members: int) -> dict[str, Any]:
    dns = [f"CN=Member {i:05},OU=Staff,DC=tgt,DC=test" for i in range(members)]
    return {
        "workflow": "wf", "key": "staff", "looked": ["src: sAMAccountName=staff"],
        "environment": "src",
        "object": {"anchor": "a1", "dn": "CN=Staff,OU=Groups,DC=src,DC=test", "type": "group"},
        "pairs": [{
            "pair": "wf/src->tgt", "inScope": True, "outOfScopeReason": None,
            "join": "joined to t1", "rules": [],
            "staged": [{"attribute": "member", "value": dns, "producedBy": "built-in",
                        "domainMappedFrom": None}],
            "diff": [{"attribute": "member", "current": dns[:10], "staged": dns}],
            "decision": "update", "conflicts": [], "errors": [],
            "operations": [{"kind": "update", "objectType": "group",
                            "dn": "CN=Staff,OU=Groups,DC=tgt,DC=test", "newDn": None,
                            "attributes": ["member"], "attribute": None, "add": 0,
                            "remove": 0, "password": None}]}],
        "run": None, "result": None, "message": None,
    }


def test_a_small_report_is_kept_whole() -> None:
    small = report(3)
    assert json.loads(bounded_report(small)) == small


def test_a_large_report_is_cut_to_fit_and_says_so() -> None:
    large = report(5000)
    text = bounded_report(large)
    assert len(text.encode()) <= REPORT_LIMIT < len(json.dumps(large))
    kept = json.loads(text)
    assert kept["truncated"].startswith("cut to fit the Workflow's status (32 KiB): lists to")
    assert kept["pairs"][0]["decision"] == "update"
    assert kept["object"] == large["object"]
    lines = json_lines(kept)
    assert "  6. operation: update" in lines
    assert lines[-1].startswith("(report cut to fit the Workflow's status (32 KiB)")
