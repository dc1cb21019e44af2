"""The objects discovery reports (state table directory_objects), on SQLite and PostgreSQL:
a full read replaces them, a delta changes and removes only its own."""

from __future__ import annotations

from datetime import UTC, datetime

from ferry.state.rows import DirectoryObject
from ferry.state.store import StateStore

LOGON = datetime(2026, 11, 30, 8, 15, tzinfo=UTC)


def _user(anchor: str, *, enabled: bool = True) -> DirectoryObject:
    return DirectoryObject(anchor, "user", f"CN={anchor},OU=Staff,DC=src,DC=test", anchor,
                           upn=f"{anchor}@src.test", mail=f"{anchor}@src.test",
                           enabled=enabled, last_logon=LOGON, created=LOGON)


def test_full_reads_replace_and_deltas_update_per_environment(location: str) -> None:
    with StateStore(location) as store:
        parts = store.directory_objects
        parts.update("src", [_user("ann"), _user("bob"), DirectoryObject(
            "g1", "group", "CN=G,DC=src,DC=test", "G", members=2)], replace=True,
            namespace="team-a")
        parts.update("other", [_user("zed")], replace=True)
        parts.update("src", [_user("bob", enabled=False)], ["ann"], namespace="team-a")
    with StateStore(location, read_only=True) as store:
        found = store.directory_objects.of("src")
        assert found is not None and found.namespace == "team-a"
        assert [(o.anchor, o.enabled, o.members) for o in found.objects] == [
            ("g1", None, 2), ("bob", False, None)]
        assert found.objects[1].last_logon == LOGON and found.objects[1].upn == "bob@src.test"
        assert found.read_at is not None and found.read_at.tzinfo is not None
        assert store.directory_objects.environments() == ["other", "src"]
        assert store.directory_objects.of("nowhere") is None
    with StateStore(location) as store:
        store.directory_objects.update("src", [_user("cy")], replace=True, namespace="team-a")
        found = store.directory_objects.of("src")
        assert found is not None and [o.anchor for o in found.objects] == ["cy"]
        other = store.directory_objects.of("other")
        assert other is not None and [o.anchor for o in other.objects] == ["zed"]
