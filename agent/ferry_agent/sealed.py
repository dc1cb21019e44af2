"""Secrets sealed to the party that uses them: a password or NT hash crosses the gateway (and
any Job between two agents) only as HPKE ciphertext (RFC 9180, DHKEM P-256, HKDF-SHA256,
AES-256-GCM) to the receiving agent's own key, so nothing in between can read it.

Each secret is sealed once per recipient key (an Environment has at most a few agents, and any
of them may take the work). The associated info binds a ciphertext to the object it belongs
to: a sealed secret moved to another account does not open.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from .errors import FerryAgentError

_SUITE = hpke.Suite(hpke.KEM.P256, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_INFO = b"ferry sealed secret v1 "


class SealError(FerryAgentError):
    """A sealed secret cannot be opened here (another key, another object, or tampered)."""


@dataclass(frozen=True)
class Recipient:
    """A key secrets may be sealed to: its id (a digest of the key) and the public key."""

    key_id: str
    public_key: ec.EllipticCurvePublicKey = field(repr=False)

    @classmethod
    def from_pem(cls, pem: str | bytes) -> Recipient:
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        key = serialization.load_pem_public_key(data)
        if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
            raise SealError("a recipient key must be an EC P-256 public key")
        return cls(key_id(key), key)

    def pem(self) -> str:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def device_binding(device_name: str) -> str:
    """What a device's secrets (a staged machine password, an offline join blob, a
    provisioning package) are bound to: its computer name, so they open for no other."""
    return "ferry-device-join:" + device_name.upper()


def key_id(key: ec.EllipticCurvePublicKey) -> str:
    """The first 16 bytes of the SHA-256 of the key's DER form, hex."""
    der = key.public_bytes(serialization.Encoding.DER,
                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:32]


def seal(secret: bytes, recipients: Sequence[Recipient], bound_to: str) -> dict[str, str]:
    """key id -> base64 ciphertext of `secret` for each recipient, bound to `bound_to`
    (the object the secret belongs to, e.g. its objectGUID)."""
    if not recipients:
        raise SealError("no recipient to seal a secret to")
    info = _INFO + bound_to.encode("utf-8")
    return {r.key_id: base64.b64encode(_SUITE.encrypt(secret, r.public_key, info=info))
            .decode("ascii") for r in recipients}


def open_sealed(sealed: Mapping[str, str], key: ec.EllipticCurvePrivateKey,
                bound_to: str) -> bytes:
    """The secret sealed to `key` for `bound_to`; SealError if there is none or it fails."""
    own = key_id(key.public_key())
    blob = sealed.get(own)
    if not isinstance(blob, str):
        raise SealError(f"the secret of {bound_to} is not sealed to this agent's key ({own});"
                        " was the agent enrolled again after the run began?")
    try:
        return _SUITE.decrypt(base64.b64decode(blob, validate=True), key,
                              info=_INFO + bound_to.encode("utf-8"))
    except (InvalidTag, ValueError):
        raise SealError(f"the secret of {bound_to} does not open with this agent's key: it"
                        " was sealed for another object or altered on the way") from None


def ephemeral_key() -> ec.EllipticCurvePrivateKey:
    """A key that lives only in this process (a sync Job receiving secrets itself)."""
    return ec.generate_private_key(ec.SECP256R1())
