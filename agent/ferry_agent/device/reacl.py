"""ReACL on a Linux device: the one entry point its backend calls, over the configured scopes
(Files: NT ACLs of file trees; Registry: key security of the SOFTWARE hive; Profiles:
ProfileList remapped, each profile's NTUSER.DAT and folder translated; LocalGroups: BUILTIN
alias members), and its undo for a rollback.

What the agent is told to work on is checked before anything is touched. Source SIDs the
table lacks are reported (at most MAX_REPORTED_SIDS), never guessed, and do not fail the
action; an object that could not be translated does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FerryAgentError
from ..sid import SidError, parse_sid
from .descriptor import DescriptorError, SidMap
from .figures import MAX_REPORTED_ERRORS, ReaclFigures
from .files import reacl_files
from .hive import (
    DEFAULT_PYTHON,
    HiveBackend,
    HiveToolError,
    Profile,
    list_profiles,
    ntuser_path,
    reacl_key_security,
    remap_profiles,
    restore_profiles,
)
from .local_groups import reacl_local_groups
from .outcome import MAX_REPORTED_SIDS, ActionOutcome, ReaclMode, ReaclScope, SidTable


@dataclass(frozen=True)
class ReaclTargets:
    """What a device's ReACL works on ([linux] in the agent's INI)."""

    file_roots: tuple[Path, ...]
    software_hive: Path | None
    profiles_root: Path | None
    smb_conf: Path | None
    hive_python: str = DEFAULT_PYTHON


class _Refused(FerryAgentError):
    """Bad input: nothing was touched."""


@dataclass
class _Run:
    targets: ReaclTargets
    table: SidMap
    mode: ReaclMode
    source_domain: str
    # undo of a replace: ProfileList's .bak put back for this (forward) table, not remapped
    restore: SidMap | None = None
    figures: dict[str, ReaclFigures] = field(default_factory=dict)
    extra: dict[str, dict[str, Any]] = field(default_factory=dict)


def reacl(targets: ReaclTargets, table: SidTable, source_domain: str, mode: ReaclMode,
          scopes: Sequence[ReaclScope]) -> ActionOutcome:
    """Translate source SIDs to target SIDs in `mode` over `scopes`."""
    try:
        mode, wanted, sid_map = _checked(targets, table, mode, scopes)
        domain = _domain(source_domain)
    except _Refused as exc:
        return ActionOutcome(False, str(exc), {"errors": [str(exc)]})
    return _execute(_Run(targets, sid_map, mode, domain), wanted, f"ReACL ({mode})")


def undo_reacl(targets: ReaclTargets, table: SidTable, source_domain: str, mode: ReaclMode,
               scopes: Sequence[ReaclScope]) -> ActionOutcome:
    """Undo a ReACL made in `mode` with `table`: a replace is translated back (ProfileList's
    .bak restored), a remove gets the source entries added back beside the target ones; add
    kept the source SIDs, so there is nothing to undo."""
    try:
        mode, wanted, sid_map = _checked(targets, table, mode, scopes)
        _domain(source_domain)
        if mode is ReaclMode.ADD:
            return ActionOutcome(True, "ReACL was in add mode: the source SIDs were kept,"
                                 " nothing to undo", {"mode": str(mode), "undone": False})
        back = sid_map.inverted()
    except (_Refused, DescriptorError) as exc:
        return ActionOutcome(False, str(exc), {"errors": [str(exc)]})
    domains = {target.domain for target in sid_map.pairs.values()} - {""}
    target_domain = domains.pop() if len(domains) == 1 else ""
    if mode is ReaclMode.REPLACE:
        run = _Run(targets, back, ReaclMode.REPLACE, target_domain, restore=sid_map)
    else:
        run = _Run(targets, back, ReaclMode.ADD, target_domain)
    return _execute(run, wanted, f"ReACL undo ({mode})")


def _checked(targets: ReaclTargets, table: SidTable, mode: ReaclMode | str,
             scopes: Sequence[ReaclScope | str]) -> tuple[ReaclMode, list[ReaclScope], SidMap]:
    try:
        mode = ReaclMode(mode)
    except ValueError:
        raise _Refused(f"ReACL mode {mode!r}: expected one of"
                       f" {', '.join(m.value for m in ReaclMode)}") from None
    wanted: list[ReaclScope] = []
    for scope in scopes:
        try:
            wanted.append(ReaclScope(scope))
        except ValueError:
            raise _Refused(f"ReACL scope {scope!r}: expected one of"
                           f" {', '.join(s.value for s in ReaclScope)}") from None
    if not wanted:
        raise _Refused("ReACL names no scope: list Files, Registry, Profiles or LocalGroups")
    try:
        sid_map = SidMap(table)
    except DescriptorError as exc:
        raise _Refused(str(exc)) from None
    for scope in wanted:
        _check_scope(targets, scope)
    return mode, wanted, sid_map


def _check_scope(targets: ReaclTargets, scope: ReaclScope) -> None:
    def fix(option: str, problem: str) -> _Refused:
        return _Refused(f"ReACL {scope}: [linux] {option} {problem}; set it in the device"
                        " agent's INI")

    if scope is ReaclScope.FILES:
        if not targets.file_roots:
            raise fix("file_roots", "is empty")
        for root in targets.file_roots:
            if not root.exists():
                raise fix("file_roots", f"names {root}, which does not exist")
    if scope in (ReaclScope.REGISTRY, ReaclScope.PROFILES):
        if targets.software_hive is None:
            raise fix("software_hive", "is not set")
        if not targets.software_hive.is_file():
            raise fix("software_hive", f"names {targets.software_hive}, which is no file")
    if scope is ReaclScope.PROFILES:
        if targets.profiles_root is None:
            raise fix("profiles_root", "is not set")
        if not targets.profiles_root.is_dir():
            raise fix("profiles_root", f"names {targets.profiles_root}, which is no folder")
    if scope is ReaclScope.LOCAL_GROUPS:
        if targets.smb_conf is None:
            raise fix("smb_conf", "is not set")
        if not targets.smb_conf.is_file():
            raise fix("smb_conf", f"names {targets.smb_conf}, which is no file")


def _domain(text: str) -> str:
    try:
        sid = parse_sid(text)
    except SidError as exc:
        raise _Refused(f"ReACL source domain: {exc}") from None
    subs = sid.sub_authorities
    if sid.authority != 5 or len(subs) != 4 or subs[0] != 21:
        raise _Refused(f"ReACL source domain {text!r} is no domain SID (expected"
                       " S-1-5-21-X-Y-Z, the SID of the source domain itself)")
    return str(sid)


def _execute(run: _Run, scopes: Sequence[ReaclScope], title: str) -> ActionOutcome:
    if ReaclScope.FILES in scopes:
        run.figures["files"] = reacl_files(run.targets.file_roots, run.table, run.mode,
                                           run.source_domain)
    needs_hives = ReaclScope.REGISTRY in scopes or ReaclScope.PROFILES in scopes
    if needs_hives:
        try:
            with HiveBackend(run.targets.hive_python) as backend:
                if ReaclScope.REGISTRY in scopes:
                    _registry(run, backend)
                if ReaclScope.PROFILES in scopes:
                    _profiles(run, backend)
        except HiveToolError as exc:       # the backend could not start, or ended
            name = "profiles" if ReaclScope.PROFILES in scopes else "registry"
            run.figures.setdefault(name, ReaclFigures()).error(str(exc))
    if ReaclScope.LOCAL_GROUPS in scopes and run.targets.smb_conf is not None:
        groups = run.figures["localGroups"] = ReaclFigures()
        reacl_local_groups(run.targets.smb_conf, run.table, run.mode, run.source_domain, groups)
    return _outcome(run, title)


def _registry(run: _Run, backend: HiveBackend) -> None:
    figures = run.figures["registry"] = ReaclFigures()
    assert run.targets.software_hive is not None  # checked in _check_scope
    reacl_key_security(backend, run.targets.software_hive, run.table, run.mode,
                       run.source_domain, figures)


def _profiles(run: _Run, backend: HiveBackend) -> None:
    software, root = run.targets.software_hive, run.targets.profiles_root
    assert software is not None and root is not None  # checked in _check_scope
    entries = run.figures["profiles"] = ReaclFigures()
    if run.restore is not None:
        restore_profiles(backend, software, run.restore, entries)
        sources = {str(source) for source in run.restore.pairs}
        mine = [p for p in list_profiles(backend, software) if p.key in sources]
    else:
        mine = remap_profiles(backend, software, run.table, run.mode, run.source_domain,
                              entries)
    ntuser, folders = ReaclFigures(), ReaclFigures()
    done: set[Path] = set()
    for profile in mine:
        hive = ntuser_path(root, profile)
        if hive in done:
            continue
        done.add(hive)
        _profile_folder(run, backend, profile, hive, ntuser, folders)
    run.extra["profiles"] = {"ntuser": _summary(ntuser), "folders": _summary(folders)}
    for part in (ntuser, folders):
        entries.matched |= part.matched
        entries.unmatched |= part.unmatched
        for message in part.errors:
            entries.error(message)
        entries.error_count += part.error_count - len(part.errors)


def _profile_folder(run: _Run, backend: HiveBackend, profile: Profile, hive: Path,
                    ntuser: ReaclFigures, folders: ReaclFigures) -> None:
    if hive.is_file():
        reacl_key_security(backend, hive, run.table, run.mode, run.source_domain, ntuser)
    else:
        ntuser.error(f"ProfileList\\{profile.key} ({profile.image_path}): no {hive.name} at"
                     f" {hive}; check [linux] profiles_root")
    if hive.parent.is_dir():
        reacl_files([hive.parent], run.table, run.mode, run.source_domain, folders)


def _summary(figures: ReaclFigures) -> dict[str, int]:
    return {"scanned": figures.scanned, "changed": figures.changed,
            "errors": figures.error_count}


def _outcome(run: _Run, title: str) -> ActionOutcome:
    details: dict[str, Any] = {"mode": str(run.mode)}
    unmatched: set[str] = set()
    errors: list[str] = []
    failed = 0
    parts = []
    for name, figures in run.figures.items():
        entry = figures.details()
        entry.pop("unmatched")
        entry.update(run.extra.get(name, {}))
        details[name] = entry
        unmatched |= figures.unmatched
        errors += figures.errors
        failed += figures.error_count
        parts.append(f"{name} {figures.changed} of {figures.scanned} changed")
    details["unmatched"] = sorted(unmatched)[:MAX_REPORTED_SIDS]
    details["unmatchedCount"] = len(unmatched)
    details["errors"] = errors[:MAX_REPORTED_ERRORS]
    message = f"{title}: " + "; ".join(parts)
    if unmatched:
        message += (f"; {len(unmatched)} source SID(s) not in the SID table were left as they"
                    " are (see unmatched)")
    if failed:
        message += f"; {failed} object(s) could not be translated (see errors)"
    return ActionOutcome(failed == 0, message, details)
