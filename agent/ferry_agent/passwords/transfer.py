"""Passwords from one domain to another, sealed all the way: the source side reads NT hashes
and seals each to the receiving side's keys where it is read; the receiving side opens each
only to set it on its target user. Whatever carries them in between (the gateway, a sync Job)
holds ciphertext bound to the source object (ferry_agent.sealed).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..sealed import Recipient, SealError, open_sealed, seal
from .endpoint import DcEndpoint

if TYPE_CHECKING:
    import ldap3
    from cryptography.hazmat.primitives.asymmetric import ec

    from ..directory.subtrees import WriteSubtrees
    from . import replication

NT_HASH = "ntHash"        # 16 bytes, set over SAMR (replication mode)
CLEARTEXT = "cleartext"   # UTF-8, set as unicodePwd over LDAPS (DC agent mode): the target
KINDS = (NT_HASH, CLEARTEXT)  # computes every key (NT, AES) itself


@dataclass(frozen=True)
class SealedPassword:
    """One source user's password, sealed to the receivers' keys (`sealed` is empty when only
    the fact of a change was asked for, as in test mode)."""

    source: str                      # the source user's objectGUID
    kind: str = NT_HASH
    sealed: dict[str, str] = field(default_factory=dict, repr=False)  # key id -> ciphertext


@dataclass(frozen=True)
class PasswordSet:
    """A sealed password and the joined target user (objectGUID) it goes to."""

    target: str
    password: SealedPassword


class SealedReads:
    """The sealed passwords of one read, streamed; `watermark` once iterated to the end."""

    def __init__(self, endpoint: DcEndpoint, watermark: str | None, guids: Sequence[str] | None,
                 recipients: Sequence[Recipient]):
        self.endpoint, self.since, self.guids = endpoint, watermark, guids
        self.recipients = list(recipients)
        self.watermark: str | None = None

    def __iter__(self) -> Iterator[SealedPassword]:
        from . import replication

        if self.guids is not None:   # named accounts: the watermark stays where it was
            yield from self._sealed(replication.hashes_of(self.endpoint, self.guids))
            self.watermark = self.since
            return
        with replication.changes(self.endpoint, self.since) as read:
            yield from self._sealed(read)
            self.watermark = read.watermark

    def _sealed(self, hashes: Iterable[replication.NtHash]) -> Iterator[SealedPassword]:
        for found in hashes:
            sealed = seal(found.nt_hash, self.recipients, found.guid) if self.recipients else {}
            yield SealedPassword(found.guid, NT_HASH, sealed)


def read_sealed(endpoint: DcEndpoint, watermark: str | None, guids: Sequence[str] | None,
                recipients: Sequence[Recipient]) -> SealedReads:
    """Changes since `watermark` (all when None), or the accounts `guids` names; with no
    recipients only which accounts, never a secret."""
    return SealedReads(endpoint, watermark, guids, recipients)


def set_sealed(conn: ldap3.Connection, endpoint: DcEndpoint, items: Sequence[PasswordSet],
               key: ec.EllipticCurvePrivateKey, subtrees: WriteSubtrees | None
               ) -> list[str | None]:
    """Set each password on its target; one outcome each (None: set, else why not). Protected
    accounts and targets outside the write subtrees are refused before anything is opened."""
    from . import samr, targets

    outcomes: list[str | None] = [None] * len(items)
    found = targets.resolve(conn, [item.target for item in items], subtrees)
    settable: list[tuple[int, str, bytes]] = []
    for index, item in enumerate(items):
        target = found[index]
        if target.refusal:
            outcomes[index] = target.refusal
            continue
        if item.password.kind not in KINDS:
            outcomes[index] = f"{target.dn}: unknown password kind {item.password.kind!r}"
            continue
        try:
            secret = open_sealed(item.password.sealed, key, item.password.source)
        except SealError as exc:   # this one fails, the others go on
            outcomes[index] = f"{target.dn}: {exc}"
            continue
        if item.password.kind == CLEARTEXT:
            outcomes[index] = _set_cleartext(conn, target.dn, secret)
            continue
        settable.append((index, target.sid, secret))
    if settable:
        results = samr.set_nt_hashes(endpoint, [(sid, secret) for _, sid, secret in settable])
        for (index, _, _), result in zip(settable, results, strict=True):
            outcomes[index] = result
        settable.clear()   # the hashes live no longer than the write takes
    return outcomes


def _set_cleartext(conn: ldap3.Connection, dn: str, secret: bytes) -> str | None:
    """An administrator's reset of unicodePwd (LDAPS only), so the target computes all its
    keys; None when set, else the server's refusal (never the password)."""
    from ldap3 import MODIFY_REPLACE

    try:
        password = secret.decode("utf-8")
    except UnicodeDecodeError:
        return f"{dn}: the password sent is not UTF-8"
    if not conn.server.ssl:
        return f"{dn}: a password can only be set over LDAPS"
    value = f'"{password}"'.encode("utf-16-le")
    if conn.modify(dn, {"unicodePwd": [(MODIFY_REPLACE, [value])]}):
        return None
    result = conn.result or {}
    return (f"{dn}: the DC refused the password ({result.get('description', '')}:"
            f" {str(result.get('message', '')).strip()})")
