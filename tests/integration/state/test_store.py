"""The state store behaves the same on its SQLite default and on PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from ferry.state.rows import Join, ObjectResult, PendingCreate, Revocation, Watermark
from ferry.state.store import StateStore

PAIR = "wf/src->tgt"


def test_a_create_begun_is_visible_to_the_next_process_until_confirmed(location: str) -> None:
    first = StateStore(location)
    first.joins.begin_creates(PAIR, [PendingCreate("src-1", "user", "CN=A,OU=T,DC=tgt")])
    first.close()   # the run dies here
    second = StateStore(location)
    assert second.joins.pending(PAIR) == {"src-1": "CN=A,OU=T,DC=tgt"}
    assert second.joins.confirmed(PAIR) == {}
    second.joins.confirm(PAIR, [Join("src-1", "tgt-1", "user", "CN=A,OU=T,DC=tgt")])
    assert second.joins.pending(PAIR) == {}
    assert second.joins.confirmed(PAIR) == {"src-1": "tgt-1"}
    assert second.joins.confirmed("other/a->b") == {}
    second.joins.drop(PAIR, ["src-1"])
    assert second.joins.confirmed(PAIR) == {}


def test_watermarks_are_per_workflow_and_environment_and_resettable(location: str) -> None:
    store = StateStore(location)
    store.watermarks.set("wf", "src", Watermark("usn", "100@dc"))
    store.watermarks.set("wf", "src", Watermark("usn", "120@dc"))
    store.watermarks.set("other", "src", Watermark("dirsync", "Y29va2ll"))
    assert store.watermarks.get("wf", "src") == Watermark("usn", "120@dc")
    assert store.watermarks.get("wf", "tgt") is None
    store.watermarks.reset("src")
    assert store.watermarks.get("wf", "src") is None
    assert store.watermarks.get("other", "src") is None


def test_retries_are_replaced_each_run(location: str) -> None:
    store = StateStore(location)
    store.retries.replace(PAIR, {"a": "failed", "b": "deferred"})
    store.retries.replace(PAIR, {"b": "still deferred"})
    assert store.retries.of(PAIR) == {"b"}


def test_run_history_keeps_counts_and_object_results(location: str) -> None:
    store = StateStore(location)
    run = store.runs.start("wf", "full", "Running")
    store.runs.record(run, [ObjectResult(PAIR, "user", "src-1", "CN=A", "create", "ok"),
                            ObjectResult(PAIR, "user", "src-2", "CN=B", "create", "error",
                                         "entryAlreadyExists")])
    store.runs.finish(run, "CompletedWithErrors", 4, "1 object(s) failed",
                      {"user": {"created": 1, "errors": 1}})
    (summary,) = store.runs.recent("wf")
    assert (summary.id, summary.result, summary.exit_code) == (run, "CompletedWithErrors", 4)
    assert summary.counts == {"user": {"created": 1, "errors": 1}}
    assert [r.outcome for r in store.runs.results(run)] == ["ok", "error"]


def test_an_agent_is_revoked_by_id_or_by_a_name_only_one_active_agent_has(location: str
                                                                          ) -> None:
    store = StateStore(location)
    expires = datetime.now(UTC) + timedelta(hours=1)
    for token, agent_id in (("t1", "id-1"), ("t2", "id-2")):
        store.agents.add_token(token, "corp-ad", expires)
        assert store.agents.enroll(token, agent_id, "dc-01", "host", "1.0") is not None
    assert store.agents.revoke("dc-02") == Revocation(None)
    ambiguous = store.agents.revoke("dc-01")
    assert not ambiguous.revoked and [a.id for a in ambiguous.same_name] == ["id-1", "id-2"]
    assert store.agents.any_active("corp-ad")
    assert store.agents.revoke("id-1").revoked
    second = store.agents.revoke("dc-01")   # the one active agent of that name
    assert second.revoked and second.agent is not None and second.agent.id == "id-2"
    again = store.agents.revoke("id-2")
    assert again.already_revoked and not again.revoked
    assert not store.agents.any_active("corp-ad")
    assert [a.revoked for a in store.agents.enrolled("corp-ad")] == [True, True]
