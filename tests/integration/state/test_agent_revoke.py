"""`ferry agent revoke` by id or by a unique name, as a user sees it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.bad_input import ferry

from ferry.state.store import StateStore


def _enroll(store: StateStore, name: str) -> str:
    """Enroll an agent named `name` in corp-ad the way the gateway does; its id."""
    token_hash, agent_id = uuid.uuid4().hex, uuid.uuid4().hex
    store.agents.add_token(token_hash, "corp-ad", datetime.now(UTC) + timedelta(hours=1))
    assert store.agents.enroll(token_hash, agent_id, name, "host", "1.0") is not None
    return agent_id


def test_revoke_finds_the_agent_by_id_or_unique_name_and_says_what_it_did(tmp_path: Path
                                                                          ) -> None:
    state = tmp_path / "state.sqlite"
    with StateStore(str(state)) as store:
        first, second = _enroll(store, "dc-01"), _enroll(store, "dc-01")

    def revoke(agent: str) -> tuple[int, str]:
        done = ferry("agent", "revoke", agent, "--state", str(state), cwd=tmp_path)
        return done.returncode, (done.stdout + done.stderr).strip()

    assert revoke("dc-02") == (
        2, "no agent with id or name 'dc-02' (see `ferry agent list`)")
    code, said = revoke("dc-01")
    assert code == 2 and said.startswith("2 active agents are named 'dc-01'; give an id: ")
    assert sorted(said.rpartition(": ")[2].split(", ")) == sorted([first, second])
    assert revoke(first) == (0, f"revoked agent {first} (dc-01, environment corp-ad)")
    # One active agent left by that name: the name is unique among the active ones.
    assert revoke("dc-01") == (0, f"revoked agent {second} (dc-01, environment corp-ad)")
    assert revoke(second) == (0, f"agent {second} (dc-01) was already revoked")
    code, said = revoke("dc-01")
    assert code == 0 and said.endswith("was already revoked")
    store = StateStore(str(state))
    assert all(a.revoked for a in store.agents.enrolled("corp-ad"))
    store.close()
