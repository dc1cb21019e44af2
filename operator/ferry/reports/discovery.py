"""What the discovery report counts, from the objects discovery recorded: pure."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from ferry.state.directory_objects import DiscoveredEnvironment
from ferry.state.rows import DirectoryObject
from ferry_agent.dn import parent_dn

TYPES = ("user", "group", "contact", "device")   # in the order the report shows them
LARGEST_GROUPS = 10


class Logon(StrEnum):
    """How recently an account logged on, by lastLogonTimestamp."""

    NEVER = "never"
    STALE = "stale"
    RECENT = "recent"
    UNKNOWN = ""         # the directory does not say (Entra without signInActivity)


def logon(item: DirectoryObject, now: datetime, stale_days: int, *,
          known: bool = True) -> Logon:
    """never / stale (older than stale_days) / recent; UNKNOWN where no logon time is kept."""
    if item.last_logon is None:
        return Logon.NEVER if known else Logon.UNKNOWN
    return Logon.STALE if now - item.last_logon > timedelta(days=stale_days) else Logon.RECENT


@dataclass(frozen=True)
class DiscoveryReport:
    """One environment's discovery, counted: the one-page summary's content."""

    environment: str
    read_at: datetime | None
    generated_at: datetime
    stale_days: int
    objects: list[DirectoryObject]
    by_type: dict[str, int]
    by_ou: dict[str, Counter[str]]           # OU -> type -> count
    accounts: dict[str, Counter[str]]        # user | device -> state -> count
    mail_enabled: dict[str, int]             # type -> objects with mail
    largest_groups: list[DirectoryObject]
    logons_known: bool                       # False: no object has a logon time

    def of_type(self, object_type: str) -> list[DirectoryObject]:
        return [o for o in self.objects if o.object_type == object_type]

    def logon(self, item: DirectoryObject) -> Logon:
        return logon(item, self.generated_at, self.stale_days, known=self.logons_known)


def discovery_report(found: DiscoveredEnvironment, now: datetime,
                     stale_days: int) -> DiscoveryReport:
    """Counts by type, OU and account state, mail-enabled objects and the largest groups."""
    objects = found.objects
    # AD records carry whenCreated and, once an account logged on, lastLogonTimestamp; Graph's,
    # as discovery reads them, carry neither: there no logon time is not "never logged on".
    known = any(o.created is not None or o.last_logon is not None for o in objects)
    by_type = Counter(o.object_type for o in objects)
    by_ou: dict[str, Counter[str]] = {}
    for item in objects:
        by_ou.setdefault(parent_dn(item.dn), Counter())[item.object_type] += 1
    accounts: dict[str, Counter[str]] = {}
    for item in objects:
        if item.object_type not in ("user", "device"):
            continue
        states = accounts.setdefault(item.object_type, Counter())
        if item.enabled is not None:
            states["enabled" if item.enabled else "disabled"] += 1
        state = logon(item, now, stale_days, known=known)
        if state is not Logon.UNKNOWN:
            states[state.value] += 1
    mail = Counter(o.object_type for o in objects if o.mail)
    groups = sorted((o for o in objects if o.object_type == "group"),
                    key=lambda g: (-(g.members or 0), g.dn.lower()))
    return DiscoveryReport(
        environment=found.environment, read_at=found.read_at, generated_at=now,
        stale_days=stale_days, objects=objects,
        by_type={t: by_type[t] for t in (*TYPES, *sorted(set(by_type) - set(TYPES)))
                 if by_type[t]},
        by_ou=dict(sorted(by_ou.items(), key=lambda kv: (-sum(kv[1].values()), kv[0].lower()))),
        accounts=accounts, mail_enabled={t: mail[t] for t in TYPES if mail[t]},
        largest_groups=groups[:LARGEST_GROUPS], logons_known=known)
