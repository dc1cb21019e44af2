"""The state store behaves the same on its SQLite default and on PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from ferry.state.store import ResultRow, StateStore

PAIR = "wf/src->tgt"


@pytest.fixture(params=["sqlite", "postgresql"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "state" / "ferry.sqlite")
    url: str = request.getfixturevalue("postgres_url")
    # A fresh schema per test: drop what an earlier test left.
    store = StateStore(url)
    from ferry.state.schema import Base

    Base.metadata.drop_all(store.engine)
    store.close()
    return url


def test_a_create_begun_is_visible_to_the_next_process_until_confirmed(location: str) -> None:
    first = StateStore(location)
    first.begin_creates(PAIR, [("src-1", "user", "CN=A,OU=T,DC=tgt")])
    first.close()   # the run dies here
    second = StateStore(location)
    assert second.pending_creates(PAIR) == {"src-1": "CN=A,OU=T,DC=tgt"}
    assert second.joins(PAIR) == {}
    second.confirm_joins(PAIR, [("src-1", "tgt-1", "user", "CN=A,OU=T,DC=tgt")])
    assert second.pending_creates(PAIR) == {}
    assert second.joins(PAIR) == {"src-1": "tgt-1"}
    assert second.joins("other/a->b") == {}
    second.drop_joins(PAIR, ["src-1"])
    assert second.joins(PAIR) == {}


def test_watermarks_are_per_workflow_and_environment_and_resettable(location: str) -> None:
    store = StateStore(location)
    store.set_watermark("wf", "src", "usn", "100@dc")
    store.set_watermark("wf", "src", "usn", "120@dc")
    store.set_watermark("other", "src", "dirsync", "Y29va2ll")
    assert store.watermark("wf", "src") == ("usn", "120@dc")
    assert store.watermark("wf", "tgt") is None
    store.reset_watermarks("src")
    assert store.watermark("wf", "src") is None and store.watermark("other", "src") is None


def test_retries_are_replaced_each_run(location: str) -> None:
    store = StateStore(location)
    store.set_retries(PAIR, {"a": "failed", "b": "deferred"})
    store.set_retries(PAIR, {"b": "still deferred"})
    assert store.retries(PAIR) == {"b"}


def test_run_history_keeps_counts_and_object_results(location: str) -> None:
    store = StateStore(location)
    run = store.start_run("wf", "full")
    store.record_results(run, [ResultRow(PAIR, "user", "src-1", "CN=A", "create", "ok"),
                               ResultRow(PAIR, "user", "src-2", "CN=B", "create", "error",
                                         "entryAlreadyExists")])
    store.finish_run(run, "CompletedWithErrors", 4, "1 object(s) failed",
                     {"user": {"created": 1, "errors": 1}})
    (summary,) = store.runs("wf")
    assert (summary.id, summary.result, summary.exit_code) == (run, "CompletedWithErrors", 4)
    assert summary.counts == {"user": {"created": 1, "errors": 1}}
    assert [r.outcome for r in store.results(run)] == ["ok", "error"]
