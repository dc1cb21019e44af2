"""Staging: what the desired target object looks like for a source object."""

from __future__ import annotations

import pytest
from engine_world import CONTOSO, TGT_OU, staging, user

from ferry.engine.expressions import compile_template
from ferry.engine.records import ObjectType, Record
from ferry.engine.rules import AttributeMapping, DomainMapping, OuMapping, TypeSwitch
from ferry.engine.stage import stage

M = AttributeMapping


def test_mappings_copy_and_compute_attributes() -> None:
    template = compile_template(staging(
        M("cn", "source.cn"),
        M("displayName", "source.givenName + ' ' + source.sn"),
        M("department", "source['department']"),
        M("description", "objectType + ' from ' + dn"),
        M("proxyAddresses", "source.proxyAddresses"),
        M("mailNickname", "source.mail.split('@')[0].lowerAscii()"),
    ))
    source = user("s1", "Ann Lee", givenName="Ann", sn="Lee", department="Sales",
                  mail="Ann.Lee@src.test", proxyAddresses=("SMTP:ann@src.test",))
    desired = stage(source, template, "t9")
    assert desired.anchor == "t9"
    assert desired.attributes == {
        "cn": "Ann Lee",
        "displayName": "Ann Lee",
        "department": "Sales",
        "description": f"user from {source.dn}",
        "proxyAddresses": ("SMTP:ann@src.test",),
        "mailNickname": "ann.lee",
    }


def test_missing_attribute_gives_no_value() -> None:
    template = compile_template(staging(M("cn", "source.cn"), M("mail", "source.mail"),
                                        M("displayName", "source.givenName + ' ' + source.sn")))
    desired = stage(user("s1", "Ann", givenName="Ann"), template)
    assert "mail" not in desired.attributes
    assert "displayName" not in desired.attributes


def test_non_string_results_become_strings() -> None:
    template = compile_template(staging(
        M("cn", "source.cn"),
        M("extensionAttribute1", "size(source.cn) > 2"),
        M("extensionAttribute2", "size(source.cn)"),
        M("otherMailbox", "[source.cn, 'x@y.test']"),
        M("extensionAttribute3", "''"),
    ))
    desired = stage(user("s1", "Ann"), template)
    assert desired.attributes["extensionAttribute1"] == "true"
    assert desired.attributes["extensionAttribute2"] == "3"
    assert desired.attributes["otherMailbox"] == ("Ann", "x@y.test")
    assert "extensionAttribute3" not in desired.attributes


def test_mappings_apply_only_to_their_object_types() -> None:
    template = compile_template(staging(
        M("cn", "source.cn"),
        M("title", "'user-only'", object_types=frozenset({ObjectType.USER})),
    ))
    group = Record("g1", ObjectType.GROUP, "CN=G,OU=Staff,DC=src,DC=test", {"cn": "G"})
    assert "title" in stage(user("s1", "Ann"), template).attributes
    assert "title" not in stage(group, template).attributes


def test_domain_mapping_rewrites_upn_mail_and_proxy_addresses() -> None:
    template = compile_template(staging(
        M("cn", "source.cn"),
        M("userPrincipalName", "source.userPrincipalName"),
        M("mail", "source.mail"),
        M("proxyAddresses", "source.proxyAddresses"),
        domain_mappings=CONTOSO,
    ))
    source = user(
        "s1", "Ann",
        userPrincipalName="ann@Contoso.COM",
        mail="ann.lee@sales.contoso.com",  # a subdomain is not implied
        proxyAddresses=("SMTP:ann@contoso.com", "smtp:al@CONTOSO.com",
                        "smtp:ann@other.test", "SIP:ann@contoso.com", "X500:/o=Contoso/cn=ann"),
    )
    attributes = stage(source, template).attributes
    assert attributes["userPrincipalName"] == "ann@fabrikam.com"
    assert attributes["mail"] == "ann.lee@sales.contoso.com"
    assert attributes["proxyAddresses"] == (
        "SMTP:ann@fabrikam.com", "smtp:al@fabrikam.com", "smtp:ann@other.test",
        "SIP:ann@contoso.com", "X500:/o=Contoso/cn=ann",
    )


def test_domain_mapping_touches_only_listed_attributes() -> None:
    template = compile_template(staging(
        M("cn", "source.cn"), M("mail", "source.mail"), M("info", "source.mail"),
        domain_mappings=(DomainMapping("contoso.com", "fabrikam.com"),),
        domain_mapped_attributes=("mail",),
    ))
    attributes = stage(user("s1", "Ann", mail="ann@contoso.com"), template).attributes
    assert attributes == {"cn": "Ann", "mail": "ann@fabrikam.com", "info": "ann@contoso.com"}


def test_longest_matching_ou_mapping_wins_else_default() -> None:
    template = compile_template(staging(
        M("cn", "source.cn"),
        ou_mappings=(
            OuMapping("OU=Staff,DC=src,DC=test", "OU=People,DC=tgt,DC=test"),
            OuMapping("OU=Sales,OU=Staff,DC=src,DC=test", "OU=Sales,DC=tgt,DC=test"),
        ),
    ))
    sales = user("s1", "Ann", ou="OU=EMEA,OU=Sales,OU=Staff,DC=src,DC=test")
    staff = user("s2", "Bob", ou="ou=staff,dc=SRC,dc=test")
    elsewhere = user("s3", "Carl", ou="OU=Other,DC=src,DC=test")
    assert stage(sales, template).dn == "CN=Ann,OU=Sales,DC=tgt,DC=test"
    assert stage(staff, template).dn == "CN=Bob,OU=People,DC=tgt,DC=test"
    assert stage(elsewhere, template).dn == f"CN=Carl,{TGT_OU}"


@pytest.mark.parametrize(("cn", "rdn"), [
    ("Smith, John", "CN=Smith\\, John"),
    ("a+b", "CN=a\\+b"),
    ("#hash", "CN=\\#hash"),
    ('"quoted"', 'CN=\\"quoted\\"'),
    ("Zoë Ærøskøbing-Ñúñez", "CN=Zoë Ærøskøbing-Ñúñez"),
    (" padded ", "CN=\\ padded\\ "),
    ("x<y>;z=1\\", "CN=x\\<y\\>\\;z\\=1\\\\"),
])
def test_target_dn_escapes_the_rdn_value(cn: str, rdn: str) -> None:
    template = compile_template(staging(M("cn", "source.displayName")))
    source = user("s1", "whatever", displayName=cn)
    assert stage(source, template).dn == f"{rdn},{TGT_OU}"


def test_rdn_falls_back_to_the_source_rdn_value() -> None:
    template = compile_template(staging(M("mail", "source.mail")))
    source = Record("s1", ObjectType.USER, "CN=Smith\\, John,OU=Staff,DC=src,DC=test",
                    {"mail": "js@src.test"}, enabled=True)
    assert stage(source, template).dn == f"CN=Smith\\, John,{TGT_OU}"


def test_enabled_is_mirrored_for_users_only_when_asked() -> None:
    mirrored = compile_template(staging(M("cn", "source.cn")))
    not_mirrored = compile_template(staging(M("cn", "source.cn"), mirror_enabled=False))
    disabled = user("s1", "Ann", enabled=False)
    group = Record("g1", ObjectType.GROUP, "CN=G,OU=Staff,DC=src,DC=test", {"cn": "G"},
                   enabled=True)
    assert stage(disabled, mirrored).enabled is False
    assert stage(disabled, not_mirrored).enabled is None
    assert stage(group, mirrored).enabled is None


def test_references_stay_source_anchors() -> None:
    template = compile_template(staging(M("cn", "source.cn"),
                                        object_types={ObjectType.USER: TypeSwitch()}))
    desired = stage(user("s1", "Ann", manager="s-boss"), template)
    assert desired.references == {"manager": ("s-boss",)}
