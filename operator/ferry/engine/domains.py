"""Domain mapping: rewrite the domain of UPNs, mail addresses and SMTP proxy addresses."""

from __future__ import annotations

from collections.abc import Iterable

from ferry.engine.records import AttributeValue
from ferry.engine.rules import DomainMapping

_SMTP = ("SMTP:", "smtp:")


def _other_type(local: str) -> bool:
    """True when local (an address before its '@') is typed, and not SMTP (X500:, SIP:)."""
    # Inlined where it runs per value: the call costs more than the common answers.
    return ":" in local and not local.startswith(_SMTP) \
        and local.partition(":")[0].lower() != "smtp"


class DomainMapper:
    """Rewrites `local@domain` when domain is mapped (exact domain, any case), keeping a
    `smtp:`/`SMTP:` prefix; other typed addresses and subdomains are left alone."""

    # Staging maps a handful of values per object (mail, UPN, each proxy address), so this
    # is written for speed: a suffix test first (most values tested are in a mapped domain),
    # the lower-cased compare only when an '@' is in place, and one mapping (the usual
    # case) without a loop.

    __slots__ = ("_only", "_suffixes")

    def __init__(self, mappings: Iterable[DomainMapping]) -> None:
        # ("@source.domain" lower-cased, its length, "@target.domain")
        self._suffixes = tuple(
            ("@" + m.source_domain.lower(), len(m.source_domain) + 1, "@" + m.target_domain)
            for m in mappings
        )
        self._only = self._suffixes[0] if len(self._suffixes) == 1 else None

    def __bool__(self) -> bool:
        return bool(self._suffixes)

    def map_one(self, value: str) -> str:
        for suffix, length, at_target in self._suffixes:
            if value.endswith(suffix) or (value[-length : 1 - length] == "@"
                                          and value[-length:].lower() == suffix):
                local = value[:-length]
                if ":" in local and not local.startswith(_SMTP) and _other_type(local):
                    return value
                return local + at_target
        return value

    def map(self, value: AttributeValue) -> AttributeValue:
        """map_one applied to a single value or to each value of a multi-valued attribute."""
        if type(value) is str or self._only is None:
            if type(value) is str:
                return self.map_one(value)
            return tuple([self.map_one(item) for item in value])
        suffix, length, at_target = self._only  # map_one, inlined for the values of a tuple
        mapped: list[str] = []
        for item in value:
            if item.endswith(suffix) or (item[-length : 1 - length] == "@"
                                         and item[-length:].lower() == suffix):
                local = item[:-length]
                if ":" in local and not local.startswith(_SMTP) and _other_type(local):
                    mapped.append(item)
                else:
                    mapped.append(local + at_target)
            else:
                mapped.append(item)
        return tuple(mapped)
