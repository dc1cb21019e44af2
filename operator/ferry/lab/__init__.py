"""The local two-domain Samba AD lab behind `ferry lab up|seed|down` and the integration tests."""

from ferry.lab.samba import (
    DEFAULT_DOMAINS,
    DomainSpec,
    DomainStatus,
    Lab,
    LabDomain,
    LabError,
)

__all__ = ["DEFAULT_DOMAINS", "DomainSpec", "DomainStatus", "Lab", "LabDomain", "LabError"]
