"""Distinguished names (RFC 4514): parse, escape, build and compare them as AD does.

Ferry's one DN implementation: the agent, the connectors and the engine all use it. Standard
library only, so the agent and the engine share it without either importing the other's
dependencies. Compare DNs by their RDN sequences (`dn_key`, `same_dn`, `is_under`), never as raw
strings: an OU literally named `evil\\,OU=Admins` is not inside `OU=Admins`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ferry_agent.errors import FerryAgentError

__all__ = [
    "AVA",
    "DN",
    "RDN",
    "DNError",
    "build_dn",
    "dn_key",
    "escape_value",
    "is_under",
    "parent_dn",
    "parse_dn",
    "rdn_value",
    "same_dn",
    "split_dn",
]


class DNError(FerryAgentError, ValueError):
    """A string that is not a distinguished name; the message says where and why."""


# Escaped with a backslash anywhere in a value (RFC 4514 section 2.4, plus '=' which AD
# escapes too); line breaks and NUL have no printable escape, so they get hex pairs.
_SPECIAL = frozenset(',+"\\<>;=')
_HEX_ESCAPED = {"\x00": "\\00", "\n": "\\0A", "\r": "\\0D"}
_NEEDS_ESCAPE = _SPECIAL | _HEX_ESCAPED.keys()
# What may follow a backslash besides a hex pair (RFC 4514 `pair`).
_ESCAPABLE = frozenset(' "#+,;<=>\\')
# Never unescaped in a value: RFC 4514 requires them escaped (';' was a separator in RFC 1779).
_FORBIDDEN = frozenset('";<>\x00')
_HEX = frozenset("0123456789abcdefABCDEF")
_TYPE = re.compile(r"[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)*")
# Hex-escaped in comparison keys, so a key holds ',', '+' and '=' only as separators.
_KEY_ESCAPED = frozenset(',+="\\<>;#\x00\n\r')
# ASN.1 string types a `#hex` value may carry, with the codec of their contents.
_BER_STRINGS = {0x04: "utf-8", 0x0C: "utf-8", 0x13: "ascii", 0x16: "ascii", 0x1E: "utf-16-be"}


@dataclass(frozen=True, slots=True)
class AVA:
    """One `type=value` of an RDN; `value` is unescaped."""

    attribute: str
    value: str

    def __str__(self) -> str:
        return f"{self.attribute}={escape_value(self.value)}"

    @property
    def key(self) -> str:
        return f"{self.attribute.upper()}={_key_value(_fold(self.value))}"


@dataclass(frozen=True, slots=True)
class RDN:
    """One RDN: usually one AVA, several for a multi-valued RDN (`CN=a+UID=b`)."""

    avas: tuple[AVA, ...]

    def __str__(self) -> str:
        return "+".join(str(ava) for ava in self.avas)

    @property
    def attribute(self) -> str:
        return self.avas[0].attribute

    @property
    def value(self) -> str:
        return self.avas[0].value

    @property
    def key(self) -> str:
        # AVAs sorted: RFC 4514 makes `a=1+b=2` and `b=2+a=1` the same RDN.
        return "+".join(sorted(ava.key for ava in self.avas))


@dataclass(frozen=True, slots=True)
class DN:
    """A parsed DN: its RDNs leaf first (`CN=x,OU=y` has rdns `CN=x`, `OU=y`); () is the root."""

    rdns: tuple[RDN, ...]

    def __str__(self) -> str:
        return ",".join(str(rdn) for rdn in self.rdns)

    @property
    def key(self) -> str:
        """The comparison key: equal for two spellings of one DN, different otherwise."""
        return ",".join(rdn.key for rdn in self.rdns)

    @property
    def rdn(self) -> RDN:
        if not self.rdns:
            raise DNError("the root DN has no RDN")
        return self.rdns[0]

    @property
    def parent(self) -> DN:
        return DN(self.rdns[1:])

    def is_under(self, base: DN) -> bool:
        """Whether this DN is `base` or lies below it, comparing whole RDNs."""
        depth = len(base.rdns)
        if depth > len(self.rdns):
            return False
        tail = self.rdns[len(self.rdns) - depth :]
        return all(a.key == b.key for a, b in zip(tail, base.rdns, strict=True))


def parse_dn(text: str) -> DN:
    """Parse an RFC 4514 DN; spaces around separators are allowed, as AD allows them."""
    rdns: list[RDN] = []
    avas: list[AVA] = []
    index, length = 0, len(text)
    if not text.strip(" "):
        return DN(())
    while True:
        index, ava = _parse_ava(text, index)
        avas.append(ava)
        if index == length:
            rdns.append(RDN(tuple(avas)))
            return DN(tuple(rdns))
        if text[index] == ",":
            rdns.append(RDN(tuple(avas)))
            avas = []
        index += 1  # past ',' or '+'


def _parse_ava(text: str, start: int) -> tuple[int, AVA]:
    """One `type=value` from `start`; returns where the next separator (or the end) is."""
    equals = text.find("=", start)
    separator = min((i for i in (text.find(",", start), text.find("+", start)) if i >= 0),
                    default=-1)
    if equals < 0 or 0 <= separator < equals:
        part = text[start:separator if separator >= 0 else None].strip(" ")
        what = f"{_shown(part)} has no '='" if part else "an RDN is empty"
        raise DNError(f"{_shown(text)}: {what} (each RDN is type=value, e.g. OU=Sales)")
    attribute = text[start:equals].strip(" ")
    if not _TYPE.fullmatch(attribute):
        raise DNError(f"{_shown(text)}: {_shown(attribute)} is not an attribute type"
                      " (such as CN, OU, DC)")
    index, length = equals + 1, len(text)
    while index < length and text[index] == " ":
        index += 1
    if index < length and text[index] == "#":
        return _parse_hex_value(text, attribute, index)
    value = bytearray()
    kept = 0  # length of value without its unescaped trailing spaces
    while index < length:
        char = text[index]
        if char in ",+":
            break
        if char == "\\":
            pair = text[index + 1 : index + 3]
            if len(pair) == 2 and pair[0] in _HEX and pair[1] in _HEX:
                value.append(int(pair, 16))
                index += 3
            elif pair[:1] and pair[0] in _ESCAPABLE:
                value += pair[0].encode()
                index += 2
            else:
                raise DNError(f"{_shown(text)}: a backslash at position {index} escapes nothing;"
                              " write \\\\ for a backslash, or \\XX for a byte in hex")
            kept = len(value)
            continue
        if char in _FORBIDDEN:
            raise DNError(f"{_shown(text)}: {char!r} at position {index} must be escaped as"
                          f" \\{char if char != chr(0) else '00'}")
        value += char.encode("utf-8", "surrogatepass")  # a lone surrogate fails decoding below
        if char != " ":
            kept = len(value)
        index += 1
    try:
        decoded = bytes(value[:kept]).decode("utf-8")
    except UnicodeDecodeError:
        raise DNError(f"{_shown(text)}: the {attribute} value is not UTF-8 (check its hex"
                      " escapes)") from None
    return index, AVA(attribute, decoded)


def _parse_hex_value(text: str, attribute: str, start: int) -> tuple[int, AVA]:
    """A `#hex` value (the BER encoding of the value); only string types are understood."""
    index, length = start + 1, len(text)
    while index < length and text[index] in _HEX:
        index += 1
    digits = text[start + 1 : index]
    end = index
    while index < length and text[index] == " ":
        index += 1
    if (index < length and text[index] not in ",+") or not digits or len(digits) % 2:
        raise DNError(f"{_shown(text)}: the {attribute} value after '#' must be hex pairs")
    ber = bytes.fromhex(digits)
    codec = _BER_STRINGS.get(ber[0])
    size, offset = (ber[1], 2) if len(ber) > 1 and ber[1] < 0x80 else (-1, 0)
    if len(ber) > 2 and ber[1] in (0x81, 0x82):
        width = ber[1] - 0x80
        size, offset = int.from_bytes(ber[2 : 2 + width], "big"), 2 + width
    if codec is None or size != len(ber) - offset:
        raise DNError(f"{_shown(text)}: {_shown(text[start:end])} is not a BER-encoded string")
    try:
        return index, AVA(attribute, ber[offset:].decode(codec))
    except UnicodeDecodeError:
        raise DNError(f"{_shown(text)}: {_shown(text[start:end])} is not a valid {codec}"
                      " string") from None


def _shown(text: str) -> str:
    """`text` quoted for an error message, cut short: a DN may come from anywhere."""
    return repr(text) if len(text) <= 200 else repr(text[:200]) + f" (+{len(text) - 200} chars)"


def dns_domain(base_dn: str) -> str:
    """A domain's naming context as its DNS name: DC=src,DC=example -> src.example; DNError
    for anything but DC= components."""
    rdns = parse_dn(base_dn).rdns
    if not rdns or any(r.attribute.upper() != "DC" or len(r.avas) != 1 for r in rdns):
        raise DNError(f"{base_dn!r} is not a domain's naming context; give DC=... only,"
                      " e.g. DC=src,DC=example")
    return ".".join(r.value.lower() for r in rdns)


def escape_value(value: str) -> str:
    """Escape one attribute value for a DN (`Smith, John` -> `Smith\\, John`)."""
    # A set test first: most names need nothing, and this runs once per staged object.
    if not value or (_NEEDS_ESCAPE.isdisjoint(value) and value[0] not in "# "
                     and value[-1] != " "):
        return value
    out: list[str] = []
    last = len(value) - 1
    for index, char in enumerate(value):
        if char in _SPECIAL or (index == 0 and char in "# ") or (index == last and char == " "):
            out.append("\\" + char)
        else:
            out.append(_HEX_ESCAPED.get(char, char))
    return "".join(out)


def build_dn(value: str, parent: str, attribute: str = "CN") -> str:
    """`CN=<escaped value>,<parent>` (just the RDN when the parent is empty)."""
    rdn = f"{attribute}={escape_value(value)}"
    return f"{rdn},{parent}" if parent else rdn


def split_dn(dn: str) -> tuple[str, str]:
    """The first RDN and the parent DN, as spelled in `dn` (a modify-DN request needs both)."""
    comma = dn.find(",")
    if comma >= 0 and "\\" in dn[:comma]:  # that comma may be escaped: find an unescaped one
        comma = _unescaped_comma(dn)
    if comma < 0:
        return _strip(dn), ""
    return _strip(dn[:comma]), _strip(dn[comma + 1 :])


def _strip(text: str) -> str:
    """Strip the spaces around an RDN or DN, keeping an escaped trailing space (`CN=a\\ `)."""
    stripped = text.strip(" ")
    if stripped.endswith("\\") and len(text.rstrip(" ")) < len(text) \
            and (len(stripped) - len(stripped.rstrip("\\"))) % 2:
        return stripped + " "
    return stripped


def _unescaped_comma(dn: str) -> int:
    escaped = False
    for index, char in enumerate(dn):
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ",":
            return index
    return -1


def parent_dn(dn: str) -> str:
    """The DN one level up, as spelled in `dn` ('' for a single RDN)."""
    comma = dn.find(",")
    if comma < 0:
        return ""
    if dn.find("\\", 0, comma) < 0:  # the usual case, once per staged object: just slice
        parent = dn[comma + 1 :]
        if parent[:1] != " " and parent[-1:] != " ":
            return parent
    return split_dn(dn)[1]


def rdn_value(dn: str) -> str:
    """The unescaped value of the first RDN (`CN=Smith\\, John,OU=x` -> `Smith, John`)."""
    rdn = split_dn(dn)[0]
    if "\\" not in rdn and "+" not in rdn and "#" not in rdn:
        return rdn.partition("=")[2].strip(" ")
    return parse_dn(rdn).rdn.value


def dn_key(dn: str) -> str:
    """A comparison key: two DNs name the same entry exactly when their keys are equal.

    In a key, ',' only separates RDNs (values are hex-escaped), so `dn` lies below `base`
    exactly when `dn_key(dn).endswith("," + dn_key(base))`. A DN without escapes, '+' or
    stray spaces takes a fast path that checks little; others are parsed (DNError if bad).
    Check a DN from a manifest with parse_dn.
    """
    comma = dn.find(",")
    if comma > 0:
        rdn = dn[:comma]
        if _is_plain(rdn):
            parent = dn[comma + 1 :]
            key = _PARENT_KEYS.get(parent)
            if key is None:
                key = _parent_key(parent)
            if key:
                return _fold(rdn) + "," + key
    elif _is_plain(dn):
        return _fold(dn)
    return parse_dn(dn).key


# Keys of parent DNs met lately. Objects share OUs, so most of a DN's key is its parent's:
# looked up, a DN costs one RDN's checks. Bounded: emptied when full.
_PARENT_KEYS: dict[str, str] = {}
_PARENT_KEYS_LIMIT = 10_000


def _parent_key(parent: str) -> str:
    key = dn_key(parent)
    if len(_PARENT_KEYS) >= _PARENT_KEYS_LIMIT:
        _PARENT_KEYS.clear()
    _PARENT_KEYS[parent] = key
    return key


def same_dn(left: str, right: str) -> bool:
    """Whether two DNs name the same entry (case, spacing and escaping aside)."""
    return left == right or dn_key(left) == dn_key(right)


def is_under(dn: str, base: str) -> bool:
    """Whether `dn` is `base` or lies below it, comparing whole RDNs (the root holds all)."""
    child, ancestor = dn_key(dn), dn_key(base)
    return not ancestor or child == ancestor or child.endswith("," + ancestor)


def _is_plain(dn: str) -> bool:
    """Whether the key of `dn` is `dn` case-folded: no escapes, '+', '#', stray spaces."""
    # Substring tests, not a regex: a regex cost ~3 µs per DN, and every object is compared.
    if not dn or dn[0] == " " or dn[-1] == " ":
        return False
    if "\\" in dn or "+" in dn or '"' in dn or "<" in dn or ">" in dn or ";" in dn \
            or "#" in dn or "\x00" in dn or "\n" in dn or "\r" in dn:
        return False
    if " ," in dn or " =" in dn or ", " in dn or "= " in dn:
        return False
    # Without escapes, one '=' per RDN means no '=' hides inside a value.
    return dn.count("=") == dn.count(",") + 1


def _fold(text: str) -> str:
    """Case-fold for comparison, equating no more than the DC does: a character becomes its
    capital only when both have the same small letter too ('k' and 'K' do; the long s and
    'S', the Kelvin sign and 'K', the dotless i and 'I' do not: the DC keeps those apart)."""
    if text.isascii():
        return text.upper()
    upper, lower = text.upper(), text.lower()
    # The usual case: one character each way, and every capital maps back to the same small.
    if len(upper) == len(text) == len(lower) and upper.lower() == lower:
        return upper
    return "".join(_fold_char(c) for c in text)


def _fold_char(char: str) -> str:
    upper = char.upper()
    return upper if len(upper) == 1 and upper.lower() == char.lower() else char


def _key_value(value: str) -> str:
    """A folded value escaped for a key: every special as a hex pair, so none is a separator."""
    if _KEY_ESCAPED.isdisjoint(value) and value[:1] != " " and value[-1:] != " ":
        return value
    out = [f"\\{ord(c):02X}" if c in _KEY_ESCAPED else c for c in value]
    if out and out[0] == " ":
        out[0] = "\\20"
    if out and out[-1] == " ":
        out[-1] = "\\20"
    return "".join(out)
