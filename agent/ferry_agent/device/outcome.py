"""What every device action returns, and the ReACL modes and scopes it is asked for."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class ReaclMode(StrEnum):
    """As ADMT's security translation: replace the source SID, add the target beside it, or
    remove the source's entries."""

    ADD = "add"
    REPLACE = "replace"
    REMOVE = "remove"


class ReaclScope(StrEnum):
    FILES = "Files"
    REGISTRY = "Registry"
    PROFILES = "Profiles"
    LOCAL_GROUPS = "LocalGroups"


# source SID -> target SID, only for matched users and groups (never guessed)
SidTable = dict[str, str]

MAX_REPORTED_SIDS = 100


@dataclass
class ActionOutcome:
    """One action's result as the device reports it: ok, a line for the admin, and figures."""

    ok: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)
