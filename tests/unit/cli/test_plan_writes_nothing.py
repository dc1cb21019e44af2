"""Test mode writes nothing anywhere: no state file, folder or sidecar, no plan file unless
asked for; an existing state is only read, and no state reads as empty."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.support.bad_input import (
    Listener,
    example_manifests,
    example_secrets,
    ferry,
    files_under,
)

from ferry.state.rows import Join
from ferry.state.store import StateStore

PAIR = "ad-to-ad/src->tgt"


def _state_with_a_join(path: Path) -> None:
    with StateStore(str(path)) as store:
        store.joins.confirm(PAIR, [Join("src-1", "tgt-1", "user",
                                        "CN=a,OU=Migrated,DC=tgt,DC=test")])


def test_plan_without_state_creates_no_file_or_folder(tmp_path: Path, listener: Listener
                                                      ) -> None:
    work = tmp_path / "work"
    example_manifests(work / "manifests", listener.port)
    example_secrets(work / "secrets")
    before = files_under(work)
    # The directories are unreachable: the plan fails, after opening the state and reading.
    done = ferry("plan", "-f", "manifests", "--secrets-dir", "secrets", cwd=work)
    assert done.returncode == 1, done.stdout + done.stderr
    assert listener.connections() >= 1  # it did go as far as the directories
    assert files_under(work) == before
    assert sorted(p.name for p in work.iterdir()) == ["manifests", "secrets"]


def test_plan_reads_an_existing_state_and_changes_nothing(tmp_path: Path, listener: Listener
                                                          ) -> None:
    work = tmp_path / "work"
    example_manifests(work / "manifests", listener.port)
    example_secrets(work / "secrets")
    _state_with_a_join(work / "state" / "state.sqlite")
    before = files_under(work)
    done = ferry("plan", "-f", "manifests", "--secrets-dir", "secrets",
                 "--state", "state/state.sqlite", cwd=work)
    assert done.returncode == 1, done.stdout + done.stderr
    assert files_under(work) == before  # no -wal or -shm sidecar, the file as it was


def test_a_test_mode_workflow_under_run_writes_nothing(tmp_path: Path, listener: Listener
                                                       ) -> None:
    work = tmp_path / "work"
    manifests = example_manifests(work / "manifests", listener.port)
    workflow = manifests / "workflow.yaml"
    workflow.write_text(workflow.read_text().replace(
        "  changedObjectsOnly: false\n", "  changedObjectsOnly: false\n  testMode: true\n"))
    example_secrets(work / "secrets")
    before = files_under(work)
    done = ferry("run", "-f", "manifests", "--secrets-dir", "secrets", cwd=work)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "plan (test mode, nothing written)" in done.stdout
    assert files_under(work) == before
    assert sorted(p.name for p in work.iterdir()) == ["manifests", "secrets"]


def test_a_read_only_store_without_state_reads_as_empty_and_creates_nothing(
        tmp_path: Path) -> None:
    location = tmp_path / "no" / "such" / "state.sqlite"
    with StateStore(str(location), read_only=True) as store:
        assert store.joins.confirmed(PAIR) == {}
        assert store.retries.of(PAIR) == set()
        assert store.watermarks.get("ad-to-ad", "src") is None
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_store_reads_joins_without_touching_the_file(tmp_path: Path) -> None:
    location = tmp_path / "state.sqlite"
    _state_with_a_join(location)
    before = files_under(tmp_path)
    store = StateStore(str(location), read_only=True)
    assert store.joins.confirmed(PAIR) == {"src-1": "tgt-1"}
    store.close()
    assert files_under(tmp_path) == before


def test_a_read_only_store_sees_changes_still_in_the_write_ahead_log(tmp_path: Path) -> None:
    # A run that is writing (or was killed) keeps its latest changes in state.sqlite-wal.
    location = tmp_path / "state.sqlite"
    _state_with_a_join(location)
    writer = sqlite3.connect(location)
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute("UPDATE joins SET target_anchor = 'tgt-2'")
    writer.commit()
    try:
        assert (tmp_path / "state.sqlite-wal").exists()
        with StateStore(str(location), read_only=True) as store:
            assert store.joins.confirmed(PAIR) == {"src-1": "tgt-2"}
    finally:
        writer.close()
