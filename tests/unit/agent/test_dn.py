"""Distinguished names: parsing, escaping, comparison and "is this DN under that one"."""

from __future__ import annotations

import pytest

from ferry_agent.dn import (
    DNError,
    build_dn,
    dn_key,
    escape_value,
    is_under,
    parent_dn,
    parse_dn,
    rdn_value,
    same_dn,
    split_dn,
)

ROOT = "DC=src,DC=test"
ADMINS = f"OU=Admins,{ROOT}"
# An OU whose *name* is `evil,OU=Admins`, created directly under the domain root.
EVIL_OU = f"OU=evil\\,OU=Admins,{ROOT}"


@pytest.mark.parametrize("spelling", [
    EVIL_OU,
    f"OU=evil\\2COU=Admins,{ROOT}",            # the comma as a hex escape
    f"OU=evil\\2cOU\\3dAdmins,{ROOT}",         # lower-case hex, '=' escaped too
    "ou=EVIL\\,ou=admins , dc=SRC,dc=test",   # case and spaces
])
def test_an_ou_named_with_an_escaped_comma_is_not_inside_the_ou_it_spells(spelling: str) -> None:
    member = f"CN=Mallory,{spelling}"
    assert not is_under(member, ADMINS)
    assert not is_under(spelling, ADMINS)
    assert is_under(member, ROOT) and is_under(member, spelling)
    assert same_dn(parent_dn(member), EVIL_OU)
    assert parse_dn(spelling).rdns[0].value.lower() == "evil,ou=admins"
    assert not parse_dn(member).is_under(parse_dn(ADMINS))


def test_is_under_compares_whole_rdns() -> None:
    assert is_under(f"CN=Ann,{ADMINS}", ADMINS)
    assert is_under(ADMINS, ADMINS)
    assert not is_under(f"CN=Ann,OU=SubAdmins,{ROOT}", ADMINS)   # a suffix of a name
    assert not is_under(f"CN=Ann,OU=x{ADMINS}", ADMINS)
    assert not is_under(ROOT, ADMINS)
    assert is_under(f"CN=Ann,{ADMINS}", "")                      # the root holds everything
    assert is_under("cn=ann, ou = admins ,DC=SRC, DC=Test", ADMINS)


@pytest.mark.parametrize(("left", "right"), [
    ("CN=Smith\\, John,OU=Staff,DC=x", "cn=smith\\2c john,ou=STAFF,dc=X"),
    ("CN=Smith\\, John,OU=Staff,DC=x", "CN = Smith\\, John , OU=Staff ,DC=x"),
    ("CN=Zoë,DC=x", "CN=Zo\\C3\\AB,DC=x"),                      # a UTF-8 hex escape
    ("CN=ZOË,DC=x", "cn=zoë,dc=x"),                              # non-ASCII case
    ("CN=\u03b1\u03c2,DC=x", "CN=\u0391\u03a3,DC=x"),             # final sigma, as Samba
    ("CN=a\\=b,DC=x", "CN=a=b,DC=x"),                            # '=' needs no escape
    ("CN=Hi,DC=x", "CN=#0C024869,DC=x"),                         # a BER UTF8String
    ("CN=Ann+employeeNumber=7,DC=x", "employeeNumber=7+cn=ann,DC=x"),   # AVAs in any order
    ("CN=\\ padded\\ ,DC=x", "CN=\\20padded\\20,DC=x"),
])
def test_spellings_of_one_dn_are_the_same_dn(left: str, right: str) -> None:
    assert same_dn(left, right) and dn_key(left) == dn_key(right)


@pytest.mark.parametrize("dn", [
    "CN=Ann Lee,OU=Staff,DC=src,DC=test", "cn=Zoë Ångström,ou=ÆØÅ,dc=x", "DC=x", "CN=a=b,DC=x",
    "CN=O'Brien (Sales),OU=R&D,DC=x", "CN=a\tb,DC=x",
    "CN=\u212aeep \u017fales,DC=x", "CN=\u03b1\u03c3 \u03b1\u03c2,OU=\u03a3,DC=x",
    "CN=\u0130stanbul,DC=x",
])
def test_the_fast_path_gives_the_parsed_key(dn: str) -> None:
    assert dn_key(dn) == parse_dn(dn).key


@pytest.mark.parametrize(("left", "right"), [
    ("CN=Ann+employeeNumber=7,DC=x", "CN=Ann,DC=x"),             # multi-valued vs single
    ("CN=Ann+employeeNumber=7,DC=x", "CN=Ann\\+employeeNumber=7,DC=x"),
    ("CN=a\\,b,DC=x", "CN=a,CN=b,DC=x"),
    ("CN=\\ padded,DC=x", "CN=padded,DC=x"),                     # an escaped space counts
    # Look-alikes the DC keeps apart (Samba answers entryAlreadyExists for none of them).
    ("CN=Straße,DC=x", "CN=STRASSE,DC=x"),                       # no case expansions
    ("CN=\u212aeep,DC=x", "CN=Keep,DC=x"),                       # the Kelvin sign is not K
    ("CN=\u017fales,DC=x", "CN=Sales,DC=x"),                     # nor is the long s an S
    ("CN=\u0131nfo,DC=x", "CN=Info,DC=x"),                       # dotless i
    ("CN=Angstr\u00f6m \u212b,DC=x", "CN=Angstr\u00f6m \u00c5,DC=x"),  # Angstrom sign
    ("CN=\uff21dmins,DC=x", "CN=Admins,DC=x"),                   # full-width A
])
def test_different_dns_are_not_the_same(left: str, right: str) -> None:
    assert not same_dn(left, right) and dn_key(left) != dn_key(right)


@pytest.mark.parametrize("value", [
    "Smith, John", "a+b", "#hash", '"quoted"', " padded ", "x<y>;z=1\\", "line\nbreak",
    "nul\x00", "Zoë Ærøskøbing", "evil,OU=Admins", "plain", "a\\,b", "#", " ",
])
def test_escaping_round_trips(value: str) -> None:
    dn = build_dn(value, ADMINS)
    assert rdn_value(dn) == value
    parsed = parse_dn(dn)
    assert parsed.rdn.value == value and parsed.rdn.attribute == "CN"
    assert same_dn(str(parsed.parent), ADMINS)
    assert same_dn(str(parsed), dn) and parse_dn(str(parsed)) == parsed
    assert is_under(dn, ADMINS) and not is_under(dn, f"CN={escape_value(value)},{ROOT}")


def test_escape_value_escapes_specials_and_edges() -> None:
    assert escape_value("Smith, John") == "Smith\\, John"
    assert escape_value("#1 ") == "\\#1\\ "
    assert escape_value("a\nb\x00") == "a\\0Ab\\00"
    assert escape_value("mid # and space") == "mid # and space"


def test_split_keeps_the_spelling_and_honours_escapes() -> None:
    assert split_dn("CN=Smith\\, John,OU=Staff, DC=x") == ("CN=Smith\\, John", "OU=Staff, DC=x")
    assert split_dn("CN=trailing\\ ,DC=x") == ("CN=trailing\\ ", "DC=x")
    assert split_dn("CN=Alone") == ("CN=Alone", "")
    assert parent_dn("CN=a\\\\,OU=b,DC=x") == "OU=b,DC=x"   # an escaped backslash, then a comma
    assert rdn_value("CN=Smith\\2C John,DC=x") == "Smith, John"


def test_parsed_dn_gives_rdns_leaf_first() -> None:
    parsed = parse_dn("CN=Ann+UID=ann,OU=Staff,DC=x")
    assert [str(r) for r in parsed.rdns] == ["CN=Ann+UID=ann", "OU=Staff", "DC=x"]
    assert [(a.attribute, a.value) for a in parsed.rdn.avas] == [("CN", "Ann"), ("UID", "ann")]
    assert str(parsed.parent) == "OU=Staff,DC=x"
    assert parse_dn("").rdns == () and parse_dn("  ").key == ""


@pytest.mark.parametrize(("text", "says"), [
    ("OU=Sales,,DC=x", "an RDN is empty"),
    ("OU=Sales,", "an RDN is empty"),
    ("Sales,DC=x", "'Sales' has no '='"),
    ("O U=Sales", "not an attribute type"),
    ("CN=a;b,DC=x", "must be escaped"),
    ('CN="a",DC=x', "must be escaped"),
    ("CN=a\\", "escapes nothing"),
    ("CN=a\\q,DC=x", "escapes nothing"),
    ("CN=\\C3,DC=x", "not UTF-8"),
    ("CN=a\ud800\\,,DC=x", "not UTF-8"),
    ("CN=#0C02,DC=x", "not a BER-encoded string"),
    ("CN=#30024869,DC=x", "not a BER-encoded string"),            # a SEQUENCE, not a string
    ("CN=#abc,DC=x", "hex pairs"),
])
def test_bad_dns_are_refused_saying_why(text: str, says: str) -> None:
    with pytest.raises(DNError, match=says):
        parse_dn(text)


def test_an_error_quotes_a_long_dn_cut_short() -> None:
    with pytest.raises(DNError) as caught:
        parse_dn("CN=" + "x" * 100_000 + ";")
    assert len(str(caught.value)) < 600 and "chars)" in str(caught.value)
