"""After a pair's objects are written: source passwords onto joined target users
(Template spec.password.sync). The source side seals each password to the target side's keys
as it reads it; this step only carries ciphertext between them and never sees a password.

Which users: those with a confirmed join, never an unmatched or conflicting target. Which
passwords: those changed since the pair's replication watermark (all on the first run), plus
the users joined or created in this run and those whose set failed before (read one by one,
since their password need not have changed). The watermark moves only after the sets.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

import structlog

from ferry.api.template import PasswordSyncMode
from ferry.connectors.activedirectory import PASSWORD_WATERMARK, ActiveDirectoryConnector
from ferry.connectors.base import Connector
from ferry.engine.migration import PasswordSync
from ferry.engine.plan import Count, OpKind, PairPlan
from ferry.engine.records import ObjectType, Record
from ferry.state.rows import ObjectResult, Watermark
from ferry.state.store import StateStore
from ferry.sync.outcome import ObjectFailure, RunOutcome
from ferry.sync.pairs import PairSettings
from ferry_agent.passwords.transfer import PasswordSet, SealedPassword

log = structlog.get_logger("ferry.passwords")

OPERATION = "password"
USER = ObjectType.USER.value
BATCH = 200   # passwords per set call: one round trip through an agent


@dataclass
class PasswordStep:
    """Sets one pair's changed source passwords on their joined target users."""

    pair: PairSettings
    plan: PairPlan
    outcome: RunOutcome
    store: StateStore
    sources: Mapping[str, Record]   # the source read, by anchor
    results: list[ObjectResult] = field(default_factory=list)
    retries: dict[str, str] = field(default_factory=dict)

    @property
    def wanted(self) -> bool:
        # DCAgent pairs replicate too: users get their password before its next change.
        return self.pair.password.sync.mode in (PasswordSyncMode.REPLICATION,
                                                PasswordSyncMode.DC_AGENT)

    def preview(self, source: Connector) -> None:
        """Test mode: which users would get their password, asked without any secret."""
        if not self.wanted:
            return
        receivers = self._user_joins()
        receivers.update({s: "" for s in self.plan.new_joins})
        receivers.update({op.source_anchor: "" for op in self.plan.operations
                          if op.kind is OpKind.CREATE and op.object_type is ObjectType.USER
                          and op.source_anchor})
        reader = _ad(source)
        changed = {p.source for p in reader.read_passwords(self._watermark(), None, [])}
        due = changed | {a for a in receivers if receivers[a] == ""}
        for anchor in sorted(due & receivers.keys()):
            self._planned(anchor, receivers[anchor])
            self.outcome.count(USER, Count.PASSWORDS)

    def run(self, source: Connector, target: Connector, earlier_joins: Collection[str],
            retry: Collection[str]) -> None:
        """Read what changed, sealed to the target's keys, and set it there; `earlier_joins`
        are the pair's joins before this run wrote, `retry` its objects to process again."""
        if not self.wanted:
            return
        receivers = self._user_joins()
        if not receivers:
            return
        reader, writer = _ad(source), _ad(target)
        recipients = writer.password_recipients()
        since = self._watermark()
        read = reader.read_passwords(since, None, recipients)
        seen: set[str] = set()
        self._set(writer, receivers, read, seen)
        # Joined now or failed before: their password need not have changed, so read each.
        others = [a for a in receivers if a not in seen
                  and (a not in earlier_joins or a in retry)]
        if others and since is not None:   # a full read has read every one already
            self._set(writer, receivers, reader.read_passwords(since, others, recipients), seen)
        if read.watermark:
            self.store.watermarks.set(self.pair.rules.name, self.pair.source,
                                      Watermark(PASSWORD_WATERMARK, read.watermark))

    def _set(self, writer: ActiveDirectoryConnector, receivers: Mapping[str, str],
             sealed: Iterable[SealedPassword], seen: set[str]) -> None:
        batch: list[PasswordSet] = []
        for password in sealed:
            target = receivers.get(password.source)
            if target is None or password.source in seen:
                continue   # not a joined user of this pair: never touched
            seen.add(password.source)
            batch.append(PasswordSet(target, password))
            if len(batch) >= BATCH:
                self._write(writer, batch)
        if batch:
            self._write(writer, batch)

    def _write(self, writer: ActiveDirectoryConnector, batch: list[PasswordSet]) -> None:
        for item, error in zip(batch, writer.set_passwords(batch), strict=True):
            source = item.password.source
            record = self.sources.get(source)
            dn = record.dn if record else f"<GUID={item.target}>"
            if error is None:
                self.outcome.count(USER, Count.PASSWORDS)
                self.plan.passwords.append(PasswordSync(self.plan.pair, source, dn, item.target))
                self.results.append(ObjectResult(self.plan.pair, USER, source, dn, OPERATION,
                                                 "ok", "password synced"))
                continue
            log.warning("password.failed", pair=self.plan.pair, object=dn, error=error)
            self.outcome.count(USER, Count.ERRORS)
            self.outcome.failures.append(ObjectFailure(self.plan.pair, USER, dn, OPERATION,
                                                       error))
            self.results.append(ObjectResult(self.plan.pair, USER, source, dn, OPERATION,
                                             "error", error))
            self.retries[source] = error
        batch.clear()

    def _planned(self, anchor: str, target: str) -> None:
        record = self.sources.get(anchor)
        self.plan.passwords.append(PasswordSync(self.plan.pair, anchor,
                                                record.dn if record else "", target))

    def _watermark(self) -> Watermark | None:
        return self.store.watermarks.get(self.pair.rules.name, self.pair.source)

    def _user_joins(self) -> dict[str, str]:
        return self.store.joins.confirmed(self.pair.rules.name, USER)


def _ad(connector: Connector) -> ActiveDirectoryConnector:
    if not isinstance(connector, ActiveDirectoryConnector):  # the manifest check refuses it
        raise TypeError(f"{connector.name} is not Active Directory")
    return connector
