"""Everything the emulator process holds: tenants (each with its directory, app registrations,
counters and write quotas) and the token-signing key. One event loop owns it: no locks."""

from __future__ import annotations

import math
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from .directory import Directory
from .odata import Cursors

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_AUDIENCES = ("https://graph.microsoft.com", GRAPH_APP_ID)
TOKEN_EXCHANGE_AUDIENCE = "api://AzureADTokenExchange"


@dataclass
class FederatedCredential:
    name: str
    issuer: str
    subject: str
    audiences: list[str]
    keys: list[PublicKeyTypes]  # the keys the external issuer signs with


@dataclass
class AppCertificate:
    sha1: str  # base64url of the DER's SHA-1 (the `x5t` header)
    sha256: str  # base64url of the DER's SHA-256 (the `x5t#S256` header)
    public_key: PublicKeyTypes


@dataclass
class WriteQuota:
    """At most `limit` writes in any `window` seconds (Microsoft documents 3,000 per 150 s for
    identity writes per app and tenant)."""

    limit: int
    window: float
    accepted: deque[float] = field(default_factory=deque)

    def retry_after(self, now: float) -> int | None:
        """Seconds until a write would be accepted, or None when one is accepted now (and
        counted)."""
        while self.accepted and self.accepted[0] <= now - self.window:
            self.accepted.popleft()
        if len(self.accepted) < self.limit:
            self.accepted.append(now)
            return None
        return max(1, math.ceil(self.accepted[0] + self.window - now))


@dataclass
class App:
    client_id: str
    display_name: str
    service_principal_id: str
    secrets: list[str] = field(default_factory=list)
    certificates: list[AppCertificate] = field(default_factory=list)
    federated: list[FederatedCredential] = field(default_factory=list)
    roles: set[str] = field(default_factory=set)
    quota: WriteQuota | None = None


@dataclass
class Invitation:
    id: str
    email: str
    user_id: str
    send_message: bool
    redirect_url: str
    user_type: str


@dataclass
class Tenant:
    id: str
    display_name: str
    initial_domain: str
    verified_domains: list[str]
    directory: Directory
    apps: dict[str, App] = field(default_factory=dict)
    invitations: list[Invitation] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)
    writes: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=100_000))
    cursors: Cursors = field(default_factory=Cursors)
    delta_states: OrderedDict[str, DeltaState] = field(default_factory=OrderedDict)
    delta_pages: OrderedDict[str, DeltaPages] = field(default_factory=OrderedDict)
    token_lifetime: int = 3599

    def owns_domain(self, domain: str) -> bool:
        return domain.lower() in self.verified_domains


@dataclass
class DeltaState:
    kind: str  # 'user' or 'group'
    watermark: int
    select: list[str] | None
    generation: int
    top: int  # page size: like $select, fixed by the round's first request


@dataclass
class DeltaEntry:
    object_id: str
    removed: str | None = None  # '@removed' reason, or None for a present object
    # Groups: None lists every member (first round), else (member id, added) changes.
    member_changes: list[tuple[str, bool]] | None = None


@dataclass
class DeltaPages:
    """A delta round being paged: what the closing deltaLink will remember, what is left."""

    next_state: DeltaState
    entries: list[DeltaEntry]
    position: int


@dataclass
class EmulatorState:
    signing_key: rsa.RSAPrivateKey
    key_id: str
    tenants: dict[str, Tenant] = field(default_factory=dict)
    by_domain: dict[str, str] = field(default_factory=dict)  # verified domain -> tenant id

    def tenant(self, key: str) -> Tenant | None:
        """A tenant by id or by any verified domain name."""
        found = self.tenants.get(key.lower())
        if found is None:
            tenant_id = self.by_domain.get(key.lower())
            found = self.tenants.get(tenant_id) if tenant_id else None
        return found

    def add_tenant(self, tenant: Tenant) -> None:
        self.tenants[tenant.id] = tenant
        for domain in tenant.verified_domains:
            self.by_domain[domain] = tenant.id
