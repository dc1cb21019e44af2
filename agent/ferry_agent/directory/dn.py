"""Distinguished names: RFC 4514 escaping, building, splitting and comparing."""

from __future__ import annotations

from ldap3.utils.dn import escape_rdn, parse_dn

__all__ = [
    "build_dn",
    "dn_equal",
    "escape_rdn_value",
    "is_under",
    "normalize_dn",
    "parent_dn",
    "rdn_value",
    "split_dn",
    "split_rdn",
    "unescape_rdn_value",
]


def escape_rdn_value(value: str) -> str:
    """Escape an attribute value for use in an RDN (`Smith, John` -> `Smith\\, John`)."""
    return str(escape_rdn(value))


def unescape_rdn_value(value: str) -> str:
    """Undo RFC 4514 escaping, including `\\xx` hex pairs that spell UTF-8 sequences."""
    out = bytearray()
    index = 0
    while index < len(value):
        char = value[index]
        if char != "\\":
            out += char.encode("utf-8")
            index += 1
            continue
        pair = value[index + 1 : index + 3]
        if len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair):
            out.append(int(pair, 16))
            index += 3
        elif index + 1 < len(value):
            out += value[index + 1].encode("utf-8")
            index += 2
        else:
            raise ValueError(f"dangling escape at the end of {value!r}")
    return out.decode("utf-8")


def build_dn(value: str, parent: str, attribute: str = "CN") -> str:
    """`CN=<escaped value>,<parent>`."""
    rdn = f"{attribute}={escape_rdn_value(value)}"
    return f"{rdn},{parent}" if parent else rdn


def split_rdn(dn: str) -> tuple[str, str]:
    """Split a DN into its first RDN (still escaped) and the parent DN."""
    escaped = False
    for index, char in enumerate(dn):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            return dn[:index].strip(), dn[index + 1 :].strip()
    return dn.strip(), ""


def parent_dn(dn: str) -> str:
    """The DN one level up ('' for a single RDN)."""
    return split_rdn(dn)[1]


def rdn_value(dn: str) -> str:
    """The unescaped value of the first RDN (`CN=Smith\\, John,OU=x` -> `Smith, John`)."""
    rdn = split_rdn(dn)[0]
    _, _, value = rdn.partition("=")
    return unescape_rdn_value(value)


def split_dn(dn: str) -> list[tuple[str, str]]:
    """All RDNs as (attribute, unescaped value), leaf first; multi-valued RDNs are flattened."""
    return [(attr, unescape_rdn_value(value)) for attr, value, _ in parse_dn(dn)]


def normalize_dn(dn: str) -> str:
    """A canonical spelling for comparisons: lowercase types, casefolded and re-escaped values."""
    parts = []
    for attr, value, separator in parse_dn(dn):
        canonical = escape_rdn_value(unescape_rdn_value(value).casefold())
        parts.append(f"{attr.strip().lower()}={canonical}{separator}")
    return "".join(parts)


def dn_equal(left: str, right: str) -> bool:
    """Whether two DNs name the same entry (AD compares names case-insensitively)."""
    return normalize_dn(left) == normalize_dn(right)


def is_under(dn: str, base: str) -> bool:
    """Whether `dn` is `base` or below it."""
    child, ancestor = normalize_dn(dn), normalize_dn(base)
    return child == ancestor or child.endswith("," + ancestor)
