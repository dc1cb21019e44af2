"""The agent's identity files: key and CSR, enrolled certificate, owner-only checks on load."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tests.support.pki import CertificateAuthority

from ferry_agent import identity
from ferry_agent.certificates import write_atomically
from ferry_agent.identity import IdentityError

POSIX_ONLY = pytest.mark.skipif(os.name != "posix", reason="mode bits are checked on POSIX only")


@pytest.fixture(scope="module")
def ca() -> CertificateAuthority:
    return CertificateAuthority.create()


def _enroll(folder: Path, ca: CertificateAuthority, name: str = "agent-1") -> identity.Identity:
    csr = identity.create_key(folder, name)
    return identity.store_certificate(folder, ca.sign_csr(csr), ca.pem)


def test_the_csr_names_the_agent_and_is_ec_p256(tmp_path: Path) -> None:
    csr = x509.load_pem_x509_csr(identity.create_key(tmp_path / "state", "dc-01.corp"))
    assert csr.is_signature_valid
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "dc-01.corp"
    key = csr.public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"


@pytest.mark.parametrize("name", ["", "-dash-first", "has space", "a" * 65, "ümlaut", "x\n"])
def test_unusable_agent_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="agent name"):
        identity.create_key(tmp_path / "state", name)
    assert not (tmp_path / "state").exists()


def test_enrolled_identity_loads_back(tmp_path: Path, ca: CertificateAuthority) -> None:
    stored = _enroll(tmp_path / "state", ca)
    loaded = identity.load_identity(tmp_path / "state")
    assert loaded == stored
    assert loaded.name == "agent-1"
    assert loaded.ca_file == tmp_path / "state" / "ca.crt"
    assert loaded.not_valid_after.tzinfo is not None
    assert [p.name for p in (tmp_path / "state").iterdir() if p.name.startswith(".")] == []


def test_without_a_ca_bundle_the_system_store_is_meant(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    folder = tmp_path / "state"
    csr = identity.create_key(folder, "agent-1")
    assert identity.store_certificate(folder, ca.sign_csr(csr), None).ca_file is None


def test_a_certificate_for_another_key_is_refused(tmp_path: Path, ca: CertificateAuthority) -> None:
    other = identity.create_key(tmp_path / "other", "agent-2")
    identity.create_key(tmp_path / "state", "agent-1")
    with pytest.raises(IdentityError, match="not for the key") as caught:
        identity.store_certificate(tmp_path / "state", ca.sign_csr(other), ca.pem)
    assert caught.value.path == tmp_path / "state" / "agent.crt"
    assert not caught.value.path.exists()


def test_enrolling_again_drops_the_old_certificate(
    tmp_path: Path, ca: CertificateAuthority
) -> None:
    folder = tmp_path / "state"
    _enroll(folder, ca)
    identity.create_key(folder, "agent-1")
    with pytest.raises(IdentityError, match="enroll") as caught:
        identity.load_identity(folder)
    assert caught.value.path == folder / "agent.crt"


def test_a_missing_folder_says_to_enroll(tmp_path: Path) -> None:
    with pytest.raises(IdentityError, match="ferry-agent enroll") as caught:
        identity.load_identity(tmp_path / "nothing-here")
    assert caught.value.path == tmp_path / "nothing-here"


def test_garbage_is_named(tmp_path: Path, ca: CertificateAuthority) -> None:
    folder = tmp_path / "state"
    _enroll(folder, ca)
    write_atomically(folder / "ca.crt", b"not a certificate")
    with pytest.raises(IdentityError, match="not PEM certificates") as caught:
        identity.load_identity(folder)
    assert caught.value.path == folder / "ca.crt"
    write_atomically(folder / "agent.key", b"-----BEGIN PRIVATE KEY-----\nAAAA\n")
    with pytest.raises(IdentityError, match="private key") as caught:
        identity.load_identity(folder)
    assert caught.value.path == folder / "agent.key"


@POSIX_ONLY
def test_an_open_folder_is_refused_not_tightened(tmp_path: Path, ca: CertificateAuthority) -> None:
    folder = tmp_path / "state"
    _enroll(folder, ca)
    os.chmod(folder, 0o755)
    with pytest.raises(IdentityError, match="chmod 700") as caught:
        identity.load_identity(folder)
    assert caught.value.path == folder
    with pytest.raises(IdentityError):
        identity.create_key(folder, "agent-1")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755


@POSIX_ONLY
@pytest.mark.parametrize("name", ["agent.crt", "ca.crt"])
def test_any_open_file_is_refused(tmp_path: Path, ca: CertificateAuthority, name: str) -> None:
    folder = tmp_path / "state"
    _enroll(folder, ca)
    os.chmod(folder / name, 0o640)
    with pytest.raises(IdentityError, match="0640") as caught:
        identity.load_identity(folder)
    assert caught.value.path == folder / name


@POSIX_ONLY
@pytest.mark.skipif(os.name == "posix" and os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_named(tmp_path: Path, ca: CertificateAuthority) -> None:
    folder = tmp_path / "state"
    _enroll(folder, ca)
    os.chmod(folder / "agent.crt", 0o000)
    with pytest.raises(IdentityError, match="cannot read") as caught:
        identity.load_identity(folder)
    assert caught.value.path == folder / "agent.crt"


@POSIX_ONLY
def test_writes_replace_whole_files_with_0600(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_bytes(b"old")
    os.chmod(target, 0o644)
    write_atomically(target, b"new")
    assert target.read_bytes() == b"new"
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


@POSIX_ONLY
def test_a_new_folder_is_0700_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0o000)
    try:
        identity.create_key(tmp_path / "a" / "state", "agent-1")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a" / "state").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "state" / "agent.key").stat().st_mode) == 0o600


@POSIX_ONLY
@pytest.mark.skipif(os.name == "posix" and os.geteuid() != 0, reason="only root can chown")
def test_a_file_owned_by_someone_else_is_refused(tmp_path: Path, ca: CertificateAuthority) -> None:
    folder = tmp_path / "state"
    _enroll(folder, ca)
    os.chown(folder / "agent.key", 54321, -1)
    with pytest.raises(IdentityError, match="owned by uid 54321") as caught:
        identity.load_identity(folder)
    assert caught.value.path == folder / "agent.key"
