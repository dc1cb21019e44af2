"""The type of every DN field in the manifests, checked as they load (RFC 4514 syntax)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator

from ferry_agent.dn import DNError, parse_dn


def _checked(value: str) -> str:
    try:
        parsed = parse_dn(value)
    except DNError as exc:
        raise ValueError(f"not a distinguished name: {exc}") from None
    if not parsed.rdns:
        raise ValueError("a distinguished name is needed here, e.g. OU=Sales,DC=corp,DC=example")
    return value


# Kept as written (messages and writes quote the user's spelling); compared by ferry_agent.dn.
DistinguishedName = Annotated[str, AfterValidator(_checked)]
