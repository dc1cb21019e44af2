"""Password changes from DC agents to the target's agents (DCAgent mode).

The gateway only routes ciphertext: a DC agent seals each new password to the keys of the
target agents of every pair that wants it; the gateway checks that the user is joined in
that pair and hands the sealed password to the target's agents as set_passwords work, then
answers the outcome. A change for a user nobody joined is dropped here, before any target is
asked. Nothing is kept: a change the target did not take is sent again by the DC agent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ferry.gateway.queue import WorkQueue, outcome
from ferry.state.rows import PasswordRoute
from ferry.state.store import StateStore
from ferry_agent.passwords.transfer import CLEARTEXT
from ferry_agent.protocol import PasswordChange

# set; notJoined: nothing to do; refused: the target would not take it (a protected account,
# its password policy), sending it again would not help; failed: send it again later.
SET, NOT_JOINED, REFUSED, FAILED = "set", "notJoined", "refused", "failed"
RELAY_OWNER = "gateway:password-relay"
RELAY_SECONDS = 120.0   # how long a DC agent's call waits for the target to set it


@dataclass(frozen=True)
class Relayed:
    pair: str
    outcome: str     # set | notJoined | refused | failed
    message: str = ""

    def encode(self) -> dict[str, str]:
        return {"pair": self.pair, "outcome": self.outcome, "message": self.message}


def routes_with_keys(store: StateStore, environment: str) -> list[dict[str, Any]]:
    """The pairs that want this environment's password changes, with the keys of each
    pair's target agents (what the DC agent seals to)."""
    found = []
    for route in store.joins.routes(environment):
        keys = sorted(store.agents.public_keys(route.target).values())
        found.append({"pair": route.pair, "target": route.target, "keys": keys})
    return found


async def relay(store: StateStore, queue: WorkQueue, environment: str, change: PasswordChange,
                has_agents: Callable[[str], Any]) -> list[Relayed]:
    """Hand the change to each wanting pair's target agents, for joined users only."""
    routes: list[PasswordRoute] = await asyncio.to_thread(store.joins.routes, environment)
    results = []
    for route in routes:
        sealed = change.sealed.get(route.pair)
        if not isinstance(sealed, Mapping) or not sealed:
            results.append(Relayed(route.pair, FAILED, "not sealed for this pair's target"
                                   " agents; ask password-routes again"))
            continue
        target = await asyncio.to_thread(store.joins.target_of, route.pair, change.source)
        if target is None:
            results.append(Relayed(route.pair, NOT_JOINED))
            continue
        if not await has_agents(route.target):
            results.append(Relayed(route.pair, FAILED,
                                   f"no agent is enrolled for environment {route.target}"))
            continue
        item = {"target": target, "source": change.source, "kind": CLEARTEXT,
                "sealed": dict(sealed)}
        work_id = queue.submit(route.target, "set_passwords", {"items": [item]},
                               owner=RELAY_OWNER)
        results.append(await _outcome(queue, route.pair, work_id))
    return results


async def _outcome(queue: WorkQueue, pair: str, work_id: str) -> Relayed:
    """Wait for the one item's outcome, as a sync Job would collect it."""
    done = await outcome(queue, work_id, RELAY_SECONDS)
    if not done.finished:
        return Relayed(pair, FAILED, f"the target's agents did not answer within"
                                     f" {RELAY_SECONDS:.0f} s")
    if done.error:
        return Relayed(pair, FAILED, done.error)
    outcomes = [o for page in done.values for o in page or ()]
    error = outcomes[0].get("error") if outcomes and isinstance(outcomes[0], dict) \
        else "no outcome"
    return Relayed(pair, REFUSED, str(error)) if error else Relayed(pair, SET)
