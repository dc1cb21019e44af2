"""reports/matches.py: every source object's row, from the engine's own plan."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from ferry.engine.pipeline import plan_pair
from ferry.engine.records import ObjectType, Record
from ferry.engine.rules import AttributeMapping, MatchRule, PairRules, StagingRules, TypeSwitch
from ferry.reports.matches import (
    MatchStatus,
    match_files,
    match_rows,
    matches_csv,
    summary_line,
)
from ferry.state.rows import PairMatches
from ferry.state.store import StateStore

SRC, TGT = "OU=Staff,DC=src,DC=test", "OU=Migrated,DC=tgt,DC=test"
STAGING = StagingRules("t", (AttributeMapping("cn", "source.cn"),
                             AttributeMapping("mail", "source.mail"),
                             AttributeMapping("employeeID", "source.employeeID")),
                       default_target_ou=TGT)
RULES = PairRules("wf/src->tgt", STAGING, (MatchRule("mail", "mail"),
                                           MatchRule("employeeID", "employeeID")),
                  source_filter="!has(source.department) || source.department != 'Out'")


def _user(anchor: str, cn: str, ou: str = SRC, **attributes: str) -> Record:
    return Record(anchor, ObjectType.USER, f"CN={cn},{ou}", {"cn": cn, **attributes}, {}, True)


def _rows(rules: PairRules, sources: list[Record], targets: list[Record],
          joins: dict[str, str]) -> dict[str, tuple[str, ...]]:
    plan = plan_pair(rules, sources, targets, joins)
    rows = match_rows(rules, sources, {t.anchor: t for t in targets}, joins, plan)
    return {r.anchor: (r.status.value, r.rule, r.target_dn, "; ".join(r.candidates), r.reason)
            for r in rows}


def test_each_status_with_its_rule_target_and_reason() -> None:
    sources = [
        _user("s-joined", "Jo", mail="jo@x"),
        _user("s-mail", "Ann", mail="ann@x"),
        _user("s-id", "Bob", employeeID="7"),
        _user("s-twin", "Cy", employeeID="9"),
        _user("s-new", "Dee", mail="dee@x"),
        _user("s-out", "Eve", department="Out"),
    ]
    targets = [_user("t-jo", "Jo", TGT), _user("t-ann", "Ann", TGT, mail="ann@x"),
               _user("t-bob", "Bob", TGT, employeeID="7"),
               _user("t-cy1", "Cy1", TGT, employeeID="9"), _user("t-cy2", "Cy2", TGT,
                                                                 employeeID="9")]
    rows = _rows(RULES, sources, targets, {"s-joined": "t-jo"})
    assert rows["s-joined"][:3] == ("joined", "join", f"CN=Jo,{TGT}")
    assert rows["s-mail"][:3] == ("matched", "mail -> mail", f"CN=Ann,{TGT}")
    assert rows["s-id"][:3] == ("matched", "employeeID -> employeeID", f"CN=Bob,{TGT}")
    status, rule, target, candidates, reason = rows["s-twin"]
    assert (status, rule, target) == ("conflict", "employeeID -> employeeID", "")
    assert candidates == f"CN=Cy1,{TGT}; CN=Cy2,{TGT}" and "matches 2 target objects" in reason
    assert rows["s-new"][:3] == ("wouldCreate", "", f"CN=Dee,{TGT}")
    assert rows["s-new"][4] == "no match rule found a target"
    assert rows["s-out"][0] == "outOfScope"
    assert rows["s-out"][4] == "no longer matches the source filter"


def test_unmatched_when_the_template_creates_none_and_out_of_scope_joined() -> None:
    no_create = StagingRules("t", STAGING.mappings, default_target_ou=TGT,
                             object_types={ObjectType.USER: TypeSwitch(create=False)})
    rules = PairRules("wf/src->tgt", no_create, RULES.match_rules,
                      source_filter=RULES.source_filter, delete_enabled=False)
    sources = [_user("s1", "Ann", mail="ann@x"), _user("s2", "Eve", department="Out")]
    rows = _rows(rules, sources, [_user("t-eve", "Eve", TGT)], {"s2": "t-eve"})
    assert rows["s1"][0] == "unmatched"
    assert rows["s1"][4] == "no match rule found a target; Template t does not create users"
    assert rows["s2"][:3] == ("outOfScope", "join", f"CN=Eve,{TGT}")
    assert rows["s2"][4] == "no longer matches the source filter; its target is kept"
    deleting = _rows(RULES, sources[1:], [_user("t-eve", "Eve", TGT)], {"s2": "t-eve"})
    assert deleting["s2"][4] == "no longer matches the source filter; the run deletes its target"


def test_a_staging_error_is_its_row() -> None:
    broken = StagingRules("t", (*STAGING.mappings,
                                AttributeMapping("employeeNumber", "string(int(source.badge))")),
                          default_target_ou=TGT)
    rules = PairRules("wf/src->tgt", broken, RULES.match_rules)
    rows = _rows(rules, [_user("s1", "Ann", badge="seventeen")], [], {})
    assert rows["s1"][0] == MatchStatus.ERROR.value and "'employeeNumber'" in rows["s1"][4]


def test_csv_header_and_a_conflict_line() -> None:
    sources = [_user("s1", "Ann", mail="a@x"), _user("s2", "Ann2", mail="a@x")]
    plan = plan_pair(RULES, sources, [], {})
    text = matches_csv(match_rows(RULES, sources, {}, {}, plan))
    lines = text.splitlines()
    assert lines[0] == ("sourceDN,sourceType,anchor,targetDN,targetType,status,rule,"
                        "candidates,reason")
    assert lines[1].startswith(f'"CN=Ann,{SRC}",user,s1,,,conflict,mail -> mail,'
                               f'"CN=Ann2,{SRC}",')


def test_a_create_an_interrupted_run_began_is_matched_as_such() -> None:
    source = _user("s1", "Ann", mail="ann@x")
    made = _user("t-ann", "Ann", TGT)
    plan = plan_pair(RULES, [source], [made], {}, pending_creates={"s1": made.dn})
    [row] = match_rows(RULES, [source], {made.anchor: made}, {}, plan)
    assert (row.status, row.rule, row.target_dn) == (MatchStatus.MATCHED, "pending create",
                                                     made.dn)
    assert row.reason == "a create begun by an interrupted run"


def test_a_stored_report_writes_the_same_csv_bytes_and_is_replaced_whole(
        tmp_path: Path) -> None:
    sources = [_user("s-mail", "Ann", mail="ann@x"), _user("s-twin", "Cy", employeeID="9"),
               _user("s-new", "=Dee, \"Jr\"", mail="dee@x"),
               _user("s-out", "Eve", department="Out")]
    targets = [_user("t-ann", "Ann T", TGT, mail="ann@x"),
               _user("t-cy1", "Cy 1", TGT, employeeID="9"),
               _user("t-cy2", "Cy 2", TGT, employeeID="9")]
    rows = match_rows(RULES, sources, {t.anchor: t for t in targets}, {},
                      plan_pair(RULES, sources, targets, {}))
    assert {r.status for r in rows} == {MatchStatus.MATCHED, MatchStatus.CONFLICT,
                                        MatchStatus.WOULD_CREATE, MatchStatus.OUT_OF_SCOPE}
    planned = [PairMatches("src", "tgt", rows), PairMatches("src", "other", [])]
    state = str(tmp_path / "state.sqlite")
    with StateStore(state) as store:
        assert store.match_reports.of("ns", "wf") is None
        store.match_reports.replace("ns", "wf", "m1", planned)
        store.match_reports.replace("ns", "wf2", "m7", planned[:1])
    with StateStore(state, read_only=True) as store:
        stored = store.match_reports.of("ns", "wf")
        assert store.match_reports.workflows() == ["ns/wf", "ns/wf2"]
        assert store.match_reports.of("other-ns", "wf") is None
    assert stored is not None and stored.report_id == "m1"
    assert stored.made_at.tzinfo is not None
    assert match_files(stored.pairs) == match_files(planned)
    assert [summary_line(p) for p in stored.pairs] == [
        "src -> tgt: 1 conflict, 1 matched, 1 outOfScope, 1 wouldCreate", "src -> other: none"]
    with StateStore(state) as store:   # the next report replaces the last one whole
        store.match_reports.replace("ns", "wf", "m2", [PairMatches("src", "tgt", rows[:1])])
        again = store.match_reports.of("ns", "wf")
    assert again is not None and again.report_id == "m2"
    assert [(p.target, len(p.rows)) for p in again.pairs] == [("tgt", 1)]


def test_a_store_without_match_reports_has_none(tmp_path: Path) -> None:
    older = str(tmp_path / "older.sqlite")   # made before match reports had tables
    with StateStore(older) as store, store.engine.begin() as connection:
        connection.execute(text("DROP TABLE match_report_rows"))
        connection.execute(text("DROP TABLE match_report_pairs"))
    for location in (str(tmp_path / "missing.sqlite"), older):
        with StateStore(location, read_only=True) as store:
            assert store.match_reports.of("ns", "wf") is None
            assert store.match_reports.workflows() == []
