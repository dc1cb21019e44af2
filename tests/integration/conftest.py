"""Fixtures shared by the integration tests: real services, started once per session.

The lab: SRC.TEST and TGT.TEST as Samba AD DCs (LDAPS) on loopback addresses, in a temporary
folder. Tests that need it take the `lab` fixture and are marked `@pytest.mark.lab`.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ferry.lab import Lab, LabDomain
from ferry.lab.samba import DomainSpec, free_addresses
from ferry.lab.seed import SeedSummary, seed
from ferry_agent.directory import ensure_ou
from ferry_agent.directory.write import delete

# SRC gets the big seed once per session: more than 2,000 users so one group has more members
# than AD returns in one ranged read. Tests must treat OU=Corp on SRC as read-only.
SEED_USERS = 2100
SEED_GROUPS = 20
SEED_CONTACTS = 30


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that need the Kubernetes binaries run last: on a fresh machine `make test` builds
    them in the background meanwhile, and the first such test waits for that build."""
    # Whole modules move, so module-scoped fixtures are still set up once.
    late = {item.path for item in items if "kube_binaries" in getattr(item, "fixturenames", ())}
    items.sort(key=lambda item: item.path in late)


@dataclass(frozen=True)
class LabDomains:
    src: LabDomain
    tgt: LabDomain
    root: Path


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabDomains]:
    """SRC.TEST and TGT.TEST running for the whole session (normally on 127.0.0.2 and .3)."""
    if shutil.which("samba-tool") is None:
        pytest.skip("samba-tool is not installed (`make deps` installs Debian's Samba AD DC)")
    root = tmp_path_factory.mktemp("lab")
    src_ip, tgt_ip = free_addresses(2)
    specs = [DomainSpec("SRC.TEST", "SRC", src_ip), DomainSpec("TGT.TEST", "TGT", tgt_ip)]
    manager = Lab(max_runtime=4 * 3600)  # a killed session's DCs end themselves
    src, tgt = manager.up(root, specs)
    try:
        yield LabDomains(src, tgt, root)
    finally:
        manager.down(root)


@pytest.fixture(scope="session")
def seeded_src(lab: LabDomains) -> SeedSummary:
    """SRC filled once with the standard seed (see SEED_*). Read-only for tests."""
    return seed(lab.src, users=SEED_USERS, groups=SEED_GROUPS, contacts=SEED_CONTACTS, seed=7)


def _scratch_ou(domain: LabDomain, prefix: str) -> Iterator[str]:
    dn = f"OU={prefix}-{uuid.uuid4().hex[:8]},{domain.base_dn}"
    conn = domain.connect()
    ensure_ou(conn, dn)
    try:
        yield dn
    finally:
        delete(conn, dn, tree=True)
        conn.unbind()


@pytest.fixture
def tgt_ou(lab: LabDomains) -> Iterator[str]:
    """A fresh, empty OU on TGT for one test (OU=Ferry-<random>); removed afterwards."""
    yield from _scratch_ou(lab.tgt, "Ferry")


@pytest.fixture
def src_ou(lab: LabDomains) -> Iterator[str]:
    """A fresh, empty OU on SRC (outside the seeded OU=Corp) for tests that change data."""
    yield from _scratch_ou(lab.src, "Scratch")
