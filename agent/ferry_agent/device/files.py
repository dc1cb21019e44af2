"""ReACL of the Windows ACLs of file trees Samba serves (vfs_acl_xattr: xattr security.NTACL).

Each object's new descriptor goes in one setxattr, so an agent killed part-way leaves every
file with its old ACL or its new one, never half of one; a run again finds the done ones
unchanged (replace) or already holding the target copies (add). Symbolic links are neither
followed nor touched: Samba keeps no ACL on them, and following one could leave the tree.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from .descriptor import DescriptorError, SidMap, translate
from .figures import ReaclFigures
from .ntacl import XATTR_NAME, parse_ntacl
from .outcome import ReaclMode

_NO_ACL = {errno.ENODATA, errno.ENOTSUP}


def reacl_files(roots: Sequence[Path], table: SidMap, mode: ReaclMode, source_domain: str,
                figures: ReaclFigures | None = None) -> ReaclFigures:
    """Translate the NT ACL of every object under `roots` (roots included)."""
    figures = figures if figures is not None else ReaclFigures()
    for root in roots:
        for path in walk(root, figures):
            _one(path, table, mode, source_domain, figures)
    return figures


def walk(root: Path, figures: ReaclFigures) -> Iterator[str]:
    """`root` and everything below it but symbolic links, directories before their content;
    a folder that cannot be listed is an error, and the walk goes on."""
    if os.path.islink(root):
        return
    yield str(root)
    folders = [str(root)] if os.path.isdir(root) else []
    while folders:
        folder = folders.pop()
        try:
            with os.scandir(folder) as entries:
                found = list(entries)
        except OSError as exc:
            figures.error(f"{folder}: cannot list it: {exc.strerror}")
            continue
        for entry in found:
            if entry.is_symlink():
                continue
            yield entry.path
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry.path)


def _one(path: str, table: SidMap, mode: ReaclMode, source_domain: str,
         figures: ReaclFigures) -> None:
    figures.scanned += 1
    try:
        blob = os.getxattr(path, XATTR_NAME, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in _NO_ACL:
            figures.without_acl += 1
        else:
            figures.error(f"{path}: cannot read {XATTR_NAME}: {exc.strerror}")
        return
    try:
        ntacl = parse_ntacl(blob)
        result = translate(ntacl.descriptor, table, mode, source_domain)
        figures.matched |= result.matched
        figures.unmatched |= result.unmatched
        if not result.changes:
            return
        new = ntacl.with_descriptor(result.descriptor).to_bytes()
    except DescriptorError as exc:
        figures.error(f"{path}: {XATTR_NAME} left as it is: {exc}")
        return
    try:
        # XATTR_REPLACE: a file whose ACL went away meanwhile does not get one from us.
        os.setxattr(path, XATTR_NAME, new, os.XATTR_REPLACE, follow_symlinks=False)
    except OSError as exc:
        figures.error(f"{path}: cannot write {XATTR_NAME}: {exc.strerror}")
        return
    figures.changed += 1
