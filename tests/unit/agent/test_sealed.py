"""Secrets sealed to a key open only with that key, for the object they were sealed for."""

from __future__ import annotations

import base64

import pytest

from ferry_agent.sealed import Recipient, SealError, ephemeral_key, key_id, open_sealed, seal

GUID = "0030c805-32fe-4e04-877e-c694349c5687"


def _recipient(key) -> Recipient:  # type: ignore[no-untyped-def]
    return Recipient.from_pem(Recipient(key_id(key.public_key()), key.public_key()).pem())


def test_each_recipient_opens_its_own_copy() -> None:
    keys = [ephemeral_key(), ephemeral_key()]
    sealed = seal(b"\x01" * 16, [_recipient(k) for k in keys], GUID)
    assert set(sealed) == {key_id(k.public_key()) for k in keys}
    assert all(open_sealed(sealed, k, GUID) == b"\x01" * 16 for k in keys)
    assert b"\x01" * 16 not in b"".join(base64.b64decode(v) for v in sealed.values())


def test_another_key_cannot_open_it() -> None:
    sealed = seal(b"secret", [_recipient(ephemeral_key())], GUID)
    with pytest.raises(SealError, match="not sealed to this agent's key"):
        open_sealed(sealed, ephemeral_key(), GUID)


def test_a_secret_moved_to_another_object_does_not_open() -> None:
    key = ephemeral_key()
    sealed = seal(b"secret", [_recipient(key)], GUID)
    with pytest.raises(SealError, match="sealed for another object or altered"):
        open_sealed(sealed, key, "11111111-2222-3333-4444-555555555555")


def test_an_altered_ciphertext_does_not_open() -> None:
    key = ephemeral_key()
    sealed = seal(b"secret", [_recipient(key)], GUID)
    (kid, blob), = sealed.items()
    raw = bytearray(base64.b64decode(blob))
    raw[-1] ^= 1
    with pytest.raises(SealError):
        open_sealed({kid: base64.b64encode(bytes(raw)).decode()}, key, GUID)


def test_no_recipient_is_an_error_not_a_plaintext() -> None:
    with pytest.raises(SealError, match="no recipient"):
        seal(b"secret", [], GUID)


def test_only_p256_keys_are_recipients() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    other = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(SealError, match="P-256"):
        Recipient.from_pem(other)
