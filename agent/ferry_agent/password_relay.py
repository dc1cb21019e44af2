"""On a source DC (DCAgent password sync): each password change, sealed to the target agents
of every pair that wants it, goes to the gateway, which sets it on the joined target user.

A change is acknowledged to the watcher only once each pair has it set, or has no joined
user for it, or refused it for good (a protected account, the target's password policy); a
change that could not be delivered (gateway or target unreachable) is sent again, and the
next waits, so changes reach the target in order and none is lost.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any, Protocol

from .sealed import Recipient, seal
from .transport import GatewayClient, GatewayUnavailable, backoff

if TYPE_CHECKING:
    from .dc.password_changes import PasswordChange

log = logging.getLogger("ferry_agent.passwords")

RELAY_TIMEOUT = 150.0        # above the gateway's wait for the target (RELAY_SECONDS)
DONE = frozenset({"set", "notJoined", "refused"})


class ChangeSource(Protocol):
    """What the sender reads changes from: PasswordWatcher (Samba), FilterSession (Windows)."""

    def next_change(self, timeout: float | None = None) -> PasswordChange | None: ...
    def acknowledge(self) -> None: ...


class PasswordSender:
    """Takes changes from the watcher and delivers each before taking the next."""

    def __init__(self, client: GatewayClient, changes: ChangeSource, stop: threading.Event):
        self.client = client
        self.changes = changes
        self.stop = stop

    def run(self) -> None:
        """Until `stop`: the watcher acknowledges a change when the next is asked for, so
        one not delivered by then comes again when the agent runs next."""
        while not self.stop.is_set():
            change = self.changes.next_change(timeout=1.0)
            if change is not None and self._deliver(change):
                self.changes.acknowledge()   # delivered: never sent again, even after a stop

    def _deliver(self, change: PasswordChange) -> bool:
        """Send until every pair is done with it; False if stopped before."""
        delays = backoff(base=1.0, cap=30.0)
        while not self.stop.is_set():
            try:
                results = self._send(change)
            except GatewayUnavailable as exc:
                results = [{"pair": "*", "outcome": "failed", "message": str(exc)}]
            pending = [r for r in results if r.get("outcome") not in DONE]
            for result in results:
                level = logging.INFO if result.get("outcome") in DONE else logging.WARNING
                log.log(level, "password change of %s: %s %s %s", change.sam,
                        result.get("pair"), result.get("outcome"), result.get("message", ""))
            if not pending:
                return True
            self.stop.wait(next(delays))
        return False

    def _send(self, change: PasswordChange) -> list[dict[str, Any]]:
        # Asked per change: a pair published since, or a target agent enrolled again, counts.
        routes = self._routes()
        if not routes:
            return []   # no pair wants this domain's passwords
        secret = change.password.encode("utf-8")
        sealed = {r["pair"]: seal(secret, [Recipient.from_pem(k) for k in r["keys"]],
                                  change.guid)
                  for r in routes if r.get("keys")}
        unsealed = [{"pair": r["pair"], "outcome": "failed",
                     "message": f"no agent of {r.get('target')} has a key"}
                    for r in routes if not r.get("keys")]
        if not sealed:
            return unsealed
        status, body = self.client.post("/v1/agent/password",
                                        {"v": 1, "source": change.guid, "sealed": sealed},
                                        timeout=RELAY_TIMEOUT)
        if status != 200 or not body:
            raise GatewayUnavailable(f"the gateway answered {status} to a password change")
        return [*body.get("results", []), *unsealed]

    def _routes(self) -> list[dict[str, Any]]:
        status, body = self.client.post("/v1/agent/password-routes", {"v": 1})
        if status != 200 or body is None:
            raise GatewayUnavailable(f"the gateway answered {status} to password-routes")
        return [r for r in body.get("routes", []) if isinstance(r, dict)]
