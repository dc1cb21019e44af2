"""Where a replication read of password changes left off: an opaque JSON string to store.

It holds what a replica DC keeps: the USN vector the DC answered last, the DC's
invocationId, and its up-to-dateness vector (the highest USN seen of each DC that ever
originated a change). USNs only mean something on the DC that issued them; the DC compares
the invocationId sent back with its own and starts over from zero when they differ (another
DC, or one restored from backup), so a stale watermark costs a longer read, never a missed
change. The up-to-dateness vector is what keeps a delta to the attributes changed since: with
the USN vector alone, Samba also sends attributes last changed at exactly that USN.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

from ..dn import DNError, same_dn
from .errors import PasswordSyncError

VERSION = 1


@dataclass(frozen=True)
class ReplicationWatermark:
    """The naming context read, the DC's invocationId, its usnvecTo, and its up-to-dateness
    cursors ((invocationId, USN) each, in the DC's order: it binary-searches them)."""

    naming_context: str
    invocation_id: str
    high_obj_update: int
    high_prop_update: int
    cursors: tuple[tuple[str, int], ...] = ()

    def encode(self) -> str:
        return json.dumps({
            "v": VERSION, "nc": self.naming_context, "invocationId": self.invocation_id,
            "usn": [self.high_obj_update, self.high_prop_update],
            "utd": [list(cursor) for cursor in self.cursors],
        }, separators=(",", ":"))


def decode(text: str, naming_context: str) -> ReplicationWatermark:
    """The watermark `changes()` returned earlier, checked against the domain to be read; an
    unreadable one, or one of another domain, is an error saying to reset it."""
    fix = "reset the password watermark so the next read is a full one"
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("v") != VERSION:
            raise ValueError(f"version {data.get('v') if isinstance(data, dict) else '?'}")
        usn = data["usn"]
        if not (isinstance(usn, list) and len(usn) == 2):
            raise ValueError("usn is not two numbers")
        usn = [_usn(n) for n in usn]
        cursors = tuple((str(uuid.UUID(str(dsa))), _usn(seen))
                        for dsa, seen in data.get("utd") or [])
        mark = ReplicationWatermark(str(data["nc"]), str(uuid.UUID(str(data["invocationId"]))),
                                    usn[0], usn[1], cursors)
    except (ValueError, TypeError, KeyError) as exc:
        raise PasswordSyncError(f"password watermark is not one this agent wrote ({exc}); {fix}"
                                ) from None
    try:
        same = same_dn(mark.naming_context, naming_context)
    except DNError:
        same = False
    if not same:
        raise PasswordSyncError(f"password watermark is for {mark.naming_context!r}, not"
                                f" {naming_context!r}; {fix}")
    return mark


def _usn(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{value!r} is not a USN")
    return value
