"""Domain mapping: rewrite the domain of UPNs, mail addresses and SMTP proxy addresses."""

from __future__ import annotations

from collections.abc import Iterable

from ferry.engine.records import AttributeValue
from ferry.engine.rules import DomainMapping

_SMTP = ("SMTP:", "smtp:")


class DomainMapper:
    """Rewrites `local@domain` when domain is mapped (exact domain, any case), keeping a
    `smtp:`/`SMTP:` prefix; other typed addresses and subdomains are left alone."""

    __slots__ = ("_suffixes",)

    def __init__(self, mappings: Iterable[DomainMapping]) -> None:
        # ("@source.domain" lower-cased, its length, "@target.domain"): a suffix test is the
        # cheapest check, and most values tested are addresses in a mapped domain.
        self._suffixes = tuple(
            ("@" + m.source_domain.lower(), len(m.source_domain) + 1, "@" + m.target_domain)
            for m in mappings
        )

    def __bool__(self) -> bool:
        return bool(self._suffixes)

    def map_one(self, value: str) -> str:
        for suffix, length, at_target in self._suffixes:
            # Exact case first; the lower-cased comparison only when an '@' is in place.
            if value.endswith(suffix) or (value[-length : 1 - length] == "@"
                                          and value[-length:].lower() == suffix):
                local = value[:-length]
                if ":" in local and not local.startswith(_SMTP) \
                        and local.partition(":")[0].lower() != "smtp":
                    return value  # another address type (X500:, SIP:, ...)
                return local + at_target
        return value

    def map(self, value: AttributeValue) -> AttributeValue:
        """map_one applied to a single value or to each value of a multi-valued attribute."""
        if type(value) is str:
            return self.map_one(value)
        map_one = self.map_one
        return tuple([map_one(item) for item in value])
