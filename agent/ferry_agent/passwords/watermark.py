"""Where a replication read of password changes left off: an opaque JSON string to store.

It holds the USN vector the DC answered last and the DC's invocationId. USNs only mean
something on the DC that issued them; the DC compares the invocationId sent back with its
own and starts over from zero when they differ (another DC, or one restored from backup),
so a stale watermark costs a full read, never a missed change.
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
    """The naming context read, the DC's invocationId, and its usnvecTo."""

    naming_context: str
    invocation_id: str
    high_obj_update: int
    high_prop_update: int

    def encode(self) -> str:
        return json.dumps({
            "v": VERSION, "nc": self.naming_context, "invocationId": self.invocation_id,
            "usn": [self.high_obj_update, self.high_prop_update],
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
        if not (isinstance(usn, list) and len(usn) == 2
                and all(isinstance(n, int) and n >= 0 for n in usn)):
            raise ValueError("usn is not two numbers")
        mark = ReplicationWatermark(str(data["nc"]), str(uuid.UUID(str(data["invocationId"]))),
                                    usn[0], usn[1])
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
