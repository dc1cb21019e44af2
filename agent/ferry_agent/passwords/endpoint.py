"""Where a domain controller is and whom to log on to it as, for DRSUAPI and SAMR (NTLM).

Checked when built: a typo in the user or base DN is an error naming the field, before any
connection is made.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..dn import DNError, dns_domain
from .errors import PasswordSyncError

# A NetBIOS domain name: at most 15 characters, none of those Windows forbids in it.
_NETBIOS = re.compile(r"[^\\/:*?\"<>|.\s][^\\/:*?\"<>|\s]{0,14}")


@dataclass(frozen=True, kw_only=True)
class DcEndpoint:
    """A DC and an account on it. `user` is a UPN (`repl@src.example`) or `DOMAIN\\user`;
    `base_dn` is the domain's naming context (`DC=src,DC=example`). `realm` defaults to the
    base DN's DNS name and `netbios` to the DOMAIN of `DOMAIN\\user`."""

    host: str
    user: str
    password: str = field(repr=False)
    base_dn: str
    netbios: str = ""
    realm: str = ""
    connect_timeout: float = 15.0
    # A chunk of GetNCChanges can take the DC a while on a busy machine; a dead DC must
    # still end a read, so every answer has this deadline.
    receive_timeout: float = 300.0

    def __post_init__(self) -> None:
        if not self.host or not self.host.strip() or any(c.isspace() for c in self.host):
            raise PasswordSyncError(f"DC endpoint: host {self.host!r} is not a host name or"
                                    " address; give the DC's name or IP address")
        if not self.password:
            raise PasswordSyncError(f"DC endpoint {self.host}: no password for {self.user!r}")
        _split_user(self.host, self.user)
        object.__setattr__(self, "realm", self.realm or _realm_of(self.host, self.base_dn))
        if self.netbios and not _NETBIOS.fullmatch(self.netbios):
            raise PasswordSyncError(f"DC endpoint {self.host}: netbios {self.netbios!r} is not"
                                    " a NetBIOS domain name (1-15 characters, e.g. SRC)")
        if not self.netbios and "\\" in self.user:
            object.__setattr__(self, "netbios", self.user.split("\\", 1)[0].upper())

    @property
    def account(self) -> str:
        """The name NTLM logs on with: `repl@src.example` or `user` (with ntlm_domain)."""
        return _split_user(self.host, self.user)[1]

    @property
    def ntlm_domain(self) -> str:
        """The domain NTLM names: DOMAIN of `DOMAIN\\user`, empty for a UPN (it carries
        its own, and AD resolves it)."""
        return _split_user(self.host, self.user)[0]

    def describe(self) -> str:
        return f"DC {self.host} ({self.realm})"


def _split_user(host: str, user: str) -> tuple[str, str]:
    """(DOMAIN, user) of `DOMAIN\\user`, ("", upn) of a UPN; anything else is an error."""
    text = user.strip() if isinstance(user, str) else ""
    hint = "give a UPN (repl@src.example) or DOMAIN\\user"
    if not text or text != user or any(c.isspace() and c != " " for c in text):
        raise PasswordSyncError(f"DC endpoint {host}: user {user!r} is not usable; {hint}")
    if "\\" in text:
        domain, _, name = text.partition("\\")
        if not _NETBIOS.fullmatch(domain) or not name or "\\" in name:
            raise PasswordSyncError(f"DC endpoint {host}: user {user!r} is not DOMAIN\\user;"
                                    f" {hint}")
        return domain, name
    name, _, suffix = text.rpartition("@")
    if not name or "." not in suffix or suffix.startswith(".") or suffix.endswith("."):
        raise PasswordSyncError(f"DC endpoint {host}: user {user!r} is neither a UPN nor"
                                f" DOMAIN\\user; {hint}")
    return "", text


def _realm_of(host: str, base_dn: str) -> str:
    """DC=src,DC=example -> src.example; anything but DC= components is not a domain NC."""
    try:
        return dns_domain(base_dn)
    except DNError as exc:
        raise PasswordSyncError(f"DC endpoint {host}: base_dn: {exc}") from None
