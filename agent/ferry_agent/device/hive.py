"""Registry and profile ReACL on a Linux device's hive files (a Windows disk or image the
device serves, or the lab's): key security of SOFTWARE and of each profile's NTUSER.DAT,
and ProfileList\\<source SID> remapped to the target SID.

Key security is translated here (hive_security.py, standard library); ProfileList is edited
with hivex, which exists for the distribution's Python only, so hive_backend.py runs under
it (backend_process.py, as dc/local_samba.py's backend does for Samba).
Every change is made on a copy of the hive, which hivex must read through before it takes
the hive's place (one rename): a hive is never left half-written or unreadable.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PureWindowsPath
from typing import Any

from ..backend_process import BackendProcess
from ..errors import FerryAgentError
from ..sid import SidError, parse_sid
from .descriptor import SidMap
from .figures import ReaclFigures
from .hive_security import HiveError, translate_hive
from .outcome import ReaclMode

BACKEND = Path(__file__).with_name("hive_backend.py")
DEFAULT_PYTHON = "/usr/bin/python3"
DEFAULT_TIMEOUT = 120.0
NTUSER = "NTUSER.DAT"
BACKUP = ".bak"


class HiveToolError(FerryAgentError):
    """hivex could not do what was asked; the message names the hive."""

    def __init__(self, kind: str, message: str):
        self.kind = kind
        super().__init__(message)


class HiveBackend(BackendProcess):
    """One run of hive_backend.py; use it as a context manager so it always ends."""

    def __init__(self, python: str = DEFAULT_PYTHON, timeout: float = DEFAULT_TIMEOUT):
        try:
            super().__init__(python, BACKEND, timeout)
        except OSError as exc:
            raise HiveToolError("backend", f"cannot run {python!r} for hivex: {exc}; install"
                                " python3-hivex (Debian) or name the Python that has it"
                                ) from None

    def refused(self, kind: str, message: str) -> HiveToolError:
        return HiveToolError(kind, message)

    def ended(self, code: int | None, stderr: str) -> HiveToolError:
        if "No module named 'hivex'" in stderr:
            return HiveToolError("backend", "the hive backend's Python has no hivex: install"
                                 " python3-hivex (Debian) or set hive_python")
        return HiveToolError("backend", f"the hive backend ended (exit {code})"
                             + (f": {stderr}" if stderr else ""))


@dataclass(frozen=True)
class Profile:
    """A ProfileList entry: the key (a SID, or <SID>.bak) and its ProfileImagePath."""

    key: str
    image_path: str

    @property
    def folder_name(self) -> str:
        return PureWindowsPath(self.image_path).name


def reacl_key_security(backend: HiveBackend, hive: Path, table: SidMap, mode: ReaclMode,
                       source_domain: str, figures: ReaclFigures) -> None:
    """Translate the security of every key of `hive`; figures count keys."""
    seen = ReaclFigures()
    try:
        new = translate_hive(hive.read_bytes(), table, mode, source_domain, str(hive), seen)
    except (OSError, HiveError) as exc:
        figures.error(f"{hive}: key security left as it is: {exc}")
        return
    if new is not None:
        with _edited_copy(hive, figures) as copy:
            if copy is not None:
                copy.write_bytes(new)
            if copy is None or not _check_and_replace(backend, copy, hive, figures):
                seen.changed = 0
    figures.add(seen)


def list_profiles(backend: HiveBackend, software: Path) -> list[Profile]:
    answer = backend.call({"op": "profiles", "hive": str(software)})
    return [Profile(str(p["key"]), str(p["imagePath"])) for p in answer["profiles"]]


def remap_profiles(backend: HiveBackend, software: Path, table: SidMap, mode: ReaclMode,
                   source_domain: str, figures: ReaclFigures) -> list[Profile]:
    """ProfileList\\<source> -> <target> for each profile whose SID the table maps. Returns
    the profiles of the table's users, remapped now or by an earlier run (whose NTUSER.DAT
    a run killed part-way may not have translated yet). Profiles of the source domain the
    table lacks are reported unmatched."""
    try:
        found = list_profiles(backend, software)
    except HiveToolError as exc:
        figures.error(f"{software}: profiles left as they are: {exc}")
        return []
    pairs = {str(source): target for source, target in table.pairs.items()}
    targets = {str(target) for target in table.pairs.values()}
    moves, mine = [], []
    for profile in found:
        try:
            sid = parse_sid(profile.key.removesuffix(BACKUP))
        except SidError:
            continue                          # not a profile entry
        target = pairs.get(str(sid))
        if str(sid) in targets or target is not None:
            mine.append(profile)
        if profile.key.endswith(BACKUP):
            continue
        figures.scanned += 1
        if target is None:
            if source_domain and sid.is_domain_account and sid.domain == source_domain:
                figures.unmatched.add(str(sid))
            continue
        figures.matched.add(str(sid))
        moves.append({"source": profile.key, "target": str(target), "mode": str(mode),
                      "sid": target.to_bytes().hex()})
    if moves:
        _edit(backend, software, {"op": "remap", "moves": moves}, figures)
    return mine


def restore_profiles(backend: HiveBackend, software: Path, table: SidMap,
                     figures: ReaclFigures) -> None:
    """Rollback of a replace: ProfileList\\<source>.bak back as <source>, <target> dropped."""
    pairs = [{"source": str(source), "target": str(target)}
             for source, target in table.pairs.items()]
    if pairs:
        _edit(backend, software, {"op": "restore", "pairs": pairs}, figures)


def ntuser_path(profiles_root: Path, profile: Profile) -> Path:
    """profiles_root/<last part of ProfileImagePath>/NTUSER.DAT (any case on disk)."""
    folder = profiles_root / profile.folder_name
    with contextlib.suppress(OSError):
        for entry in folder.iterdir():
            if entry.name.upper() == NTUSER:
                return entry
    return folder / NTUSER


def _edit(backend: HiveBackend, hive: Path, request: dict[str, Any],
          figures: ReaclFigures) -> None:
    with _edited_copy(hive, figures) as copy:
        if copy is None:
            return
        try:
            answer = backend.call({**request, "hive": str(copy)})
        except HiveToolError as exc:
            figures.error(f"{hive}: profiles left as they are: {exc}")
            return
        results = answer["results"]
        for result in results:
            if result["error"]:
                figures.error(f"{hive}: ProfileList\\{result['source']}: {result['error']}")
        changed = sum(1 for result in results if result["changed"])
        if changed and _check_and_replace(backend, copy, hive, figures):
            figures.changed += changed


@contextlib.contextmanager
def _edited_copy(hive: Path, figures: ReaclFigures) -> Iterator[Path | None]:
    """A copy of `hive` beside it (same owner and mode), removed unless it replaced it."""
    copy = hive.with_name(f".{hive.name}.ferry-{os.getpid()}")
    try:
        shutil.copy2(hive, copy)
        status = hive.stat()
        os.chown(copy, status.st_uid, status.st_gid)
    except OSError as exc:
        figures.error(f"{hive}: cannot make a working copy beside it: {exc}")
        copy.unlink(missing_ok=True)
        yield None
        return
    try:
        yield copy
    finally:
        copy.unlink(missing_ok=True)


def _check_and_replace(backend: HiveBackend, copy: Path, hive: Path,
                       figures: ReaclFigures) -> bool:
    try:
        backend.call({"op": "check", "hive": str(copy)})
    except HiveToolError as exc:
        figures.error(f"{hive}: left as it was: the rewritten hive does not read back: {exc}")
        return False
    with open(copy, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(copy, hive)
    directory = os.open(hive.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return True

