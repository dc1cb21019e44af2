"""Fixtures of the device ReACL tests: a real smbd file server (no DCs needed: the SIDs are
synthetic, see sids.py)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry.lab.fileserver import FileServer, file_server
from ferry.lab.samba import free_addresses


@pytest.fixture(scope="session")
def fileserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileServer]:
    """smbd serving a folder as [data] with vfs acl_xattr, for the whole session."""
    if shutil.which("smbd") is None or shutil.which("smbcacls") is None:
        pytest.skip("smbd/smbcacls are not installed (`make deps` installs Debian's samba)")
    (ip,) = free_addresses(1)
    with file_server(Path(tmp_path_factory.mktemp("fileserver")), ip) as server:
        yield server
