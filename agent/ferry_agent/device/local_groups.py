"""ReACL of a Samba member workstation's local groups: the members of its BUILTIN aliases
(S-1-5-32-544 Administrators, -545 Users, ...) translated in its own SAM with
`net -s SMB_CONF groupmap listmem/addmem/delmem`, as NetLocalGroupAddMembers/DelMembers do
on Windows. Members are kept by SID, so no DC, trust or winbindd is needed.

replace adds the target before it drops the source, so a run killed in between leaves both
(as add would) and a run again finishes it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from ..errors import FerryAgentError
from ..sid import SidError, parse_sid
from .descriptor import SidMap
from .figures import ReaclFigures
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
    pairs = {str(source): str(target) for source, target in table.pairs.items()}
    for alias in aliases:
        try:
            current = members(smb_conf, alias)
        except _NetFailed as exc:
            figures.error(f"{smb_conf}: alias {alias} left as it is: {exc}")
            continue
        present = set(current)
        for member in current:
            figures.scanned += 1
            target = pairs.get(member)
            if target is None:
                _note_unmatched(member, source_domain, figures)
                continue
            figures.matched.add(member)
            try:
                changed = False
                if mode is not ReaclMode.REMOVE and target not in present:
                    _net(smb_conf, "groupmap", "addmem", alias, target)
                    present.add(target)
                    changed = True
                if mode is not ReaclMode.ADD:
                    _net(smb_conf, "groupmap", "delmem", alias, member)
                    changed = True
            except _NetFailed as exc:
                figures.error(f"{smb_conf}: alias {alias}, member {member}: {exc}")
                continue
            figures.changed += changed


def _note_unmatched(member: str, source_domain: str, figures: ReaclFigures) -> None:
    try:
        sid = parse_sid(member)
    except SidError:
        return
    if source_domain and sid.is_domain_account and sid.domain == source_domain:
        figures.unmatched.add(member)


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
