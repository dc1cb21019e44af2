"""ReACL of a Samba member workstation's local groups: the members of its BUILTIN aliases
(S-1-5-32-544 Administrators, -545 Users, ...) translated in its own SAM with
`net -s SMB_CONF groupmap listmem/addmem/delmem`, as NetLocalGroupAddMembers/DelMembers do
on Windows (group_members.py decides, for both). Members are kept by SID, so no DC, trust or
winbindd is needed.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from functools import partial
from pathlib import Path

from ..errors import FerryAgentError
from ..sid import Sid, SidError, parse_sid
from .descriptor import SidMap
from .figures import ReaclFigures
from .group_members import translate_members
from .outcome import ReaclMode

BUILTIN_PREFIX = "S-1-5-32-"
_MAPPING = re.compile(r"^.* \((S-1-[0-9-]+)\) -> ", re.MULTILINE)
TIMEOUT = 60.0


class _NetFailed(FerryAgentError):
    """`net groupmap` failed; its message says how."""


def builtin_aliases(smb_conf: Path) -> list[str]:
    """The SIDs of the BUILTIN aliases the workstation's group mapping holds."""
    listed = _net(smb_conf, "groupmap", "list")
    return [sid for sid in _MAPPING.findall(listed) if sid.startswith(BUILTIN_PREFIX)]


def members(smb_conf: Path, alias: str) -> list[str]:
    return [line.strip() for line in _net(smb_conf, "groupmap", "listmem", alias).splitlines()
            if line.strip()]


def reacl_local_groups(smb_conf: Path, table: SidMap, mode: ReaclMode, source_domain: str,
                       figures: ReaclFigures) -> None:
    """Translate the members of every BUILTIN alias; figures count memberships."""
    try:
        aliases = builtin_aliases(smb_conf)
    except _NetFailed as exc:
        figures.error(f"{smb_conf}: local groups left as they are: {exc}")
        return
    for alias in aliases:
        try:
            current = _sids(members(smb_conf, alias))
        except _NetFailed as exc:
            figures.error(f"{smb_conf}: alias {alias} left as it is: {exc}")
            continue
        translate_members(f"{smb_conf}: alias {alias}", current, table, mode, source_domain,
                          figures, add=partial(_member, smb_conf, "addmem", alias),
                          remove=partial(_member, smb_conf, "delmem", alias))


def _sids(members: list[str]) -> list[Sid]:
    found = []
    for member in members:
        with contextlib.suppress(SidError):      # not an account's SID: nothing to translate
            found.append(parse_sid(member))
    return found


def _member(smb_conf: Path, change: str, alias: str, member: Sid) -> None:
    _net(smb_conf, "groupmap", change, alias, str(member))


def _net(smb_conf: Path, *args: str) -> str:
    try:
        done = subprocess.run(["net", "-s", str(smb_conf), *args], capture_output=True,
                              text=True, check=False, timeout=TIMEOUT,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _NetFailed(f"net {' '.join(args)}: {exc}") from None
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise _NetFailed(f"net {' '.join(args)} failed (exit {done.returncode}):"
                         f" {message[-1] if message else 'no message'}")
    return done.stdout
