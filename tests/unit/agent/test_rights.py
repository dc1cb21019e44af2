"""The control access check on hand-built DACLs: what grants an extended right, what denies
it, what a user below an OU inherits; the parsers of binary descriptors and SDDL; and what the
port probes tell an administrator."""

from __future__ import annotations

import struct

import pytest

from ferry_agent.directory.acl import (
    CONTAINER_INHERIT,
    GENERIC_ALL,
    INHERIT_ONLY,
    INHERITED,
    OBJECT_INHERIT,
    Ace,
    AclError,
    SddlDacl,
    check_control_access,
    new_child_dacl,
    parse_dacl,
    parse_sddl_dacl,
)
from ferry_agent.directory.guid import guid_to_bytes
from ferry_agent.directory.ports import PortProbe, RpcPorts
from ferry_agent.directory.values import sid_to_bytes

DOMAIN = "S-1-5-21-1004336348-1177238915-682003330"
ROOT = "S-1-5-21-111-222-333"
ME = f"{DOMAIN}-1105"
MY_GROUP = f"{DOMAIN}-1200"
SOMEONE = f"{DOMAIN}-1300"
TOKEN = frozenset({ME, MY_GROUP, f"{DOMAIN}-513", "S-1-1-0", "S-1-5-11"})
GET_CHANGES = "1131f6aa-9c07-11d1-f79f-00c04fc2dcd2"
GET_CHANGES_ALL = "1131f6ad-9c07-11d1-f79f-00c04fc2dcd2"
RESET = "00299570-246d-11d0-a768-00aa006e0529"
USER = "bf967aba-0de6-11d0-a285-00aa003049e2"
COMPUTER = "bf967a86-0de6-11d0-a285-00aa003049e2"
CR = 0x100
FULL_CONTROL = 0xF01FF
READ_WRITE_PROPERTY = 0x30
CIIO = CONTAINER_INHERIT | INHERIT_ONLY
# What Samba 4.17's schema gives class user (defaultSecurityDescriptor), abridged.
USER_DEFAULT = (
    "D:(A;;RPWPCRCCDCLCLORCWOWDSDDTSW;;;DA)(A;;RPWPCRCCDCLCLORCWOWDSDDTSW;;;SY)"
    "(A;;RPWPCRCCDCLCLORCWOWDSDDTSW;;;AO)(A;;RPLCLORC;;;PS)"
    "(OA;;CR;ab721a53-1e2f-11d0-9819-00aa0040529b;;PS)"
    "(OA;;RPWP;77B5B886-944A-11d1-AEBD-0000F80367C1;;PS)(A;;RC;;;AU)"
    "(OA;;CR;ab721a53-1e2f-11d0-9819-00aa0040529b;;WD)"
    "(OA;;WPRP;6db69a1c-9422-11d1-aebd-0000f80367c1;;S-1-5-32-561)"
)


def allow(sid: str, mask: int = CR, right: str | None = None, *, flags: int = 0,
          child: str | None = None) -> Ace:  # fmt: skip
    return Ace(True, mask, flags, sid, right, child, object_ace=right is not None or bool(child))


def deny(sid: str, mask: int = CR, right: str | None = None, *, flags: int = 0,
         child: str | None = None) -> Ace:  # fmt: skip
    return Ace(False, mask, flags, sid, right, child, object_ace=right is not None or bool(child))


def encode(aces: list[Ace] | None) -> bytes:
    """A self-relative SECURITY_DESCRIPTOR holding only a DACL (None: no DACL at all)."""
    header_size = 20
    if aces is None:
        return struct.pack("<BBHIIII", 1, 0, 0x8000, 0, 0, 0, 0)
    body = b"".join(_encode_ace(ace) for ace in aces)
    acl = struct.pack("<BBHHH", 4, 0, 8 + len(body), len(aces), 0) + body
    return struct.pack("<BBHIIII", 1, 0, 0x8004, 0, 0, 0, header_size) + acl


def _encode_ace(ace: Ace) -> bytes:
    sid = sid_to_bytes(ace.sid)
    if not ace.object_ace:
        kind, rest = (0 if ace.allow else 1), struct.pack("<I", ace.mask) + sid
    else:
        present = (1 if ace.object_type else 0) | (2 if ace.inherited_object_type else 0)
        rest = struct.pack("<II", ace.mask, present)
        for guid in (ace.object_type, ace.inherited_object_type):
            rest += guid_to_bytes(guid) if guid else b""
        rest += sid
        kind = 5 if ace.allow else 6
    return struct.pack("<BBH", kind, ace.flags, 4 + len(rest)) + rest


def granted(aces: list[Ace] | None, right: str = GET_CHANGES) -> bool:
    return check_control_access(parse_dacl(encode(aces)), TOKEN, right).granted


# ------------------------------------------------------------------ the binary descriptor


def test_every_ace_kind_reads_back_as_built() -> None:
    aces = [
        allow(ME, CR, GET_CHANGES),
        deny(MY_GROUP, CR, RESET, flags=CIIO, child=USER),
        allow(SOMEONE, FULL_CONTROL, flags=CONTAINER_INHERIT),
        deny(ME, READ_WRITE_PROPERTY),
        allow(ME, CR, None, child=USER),  # InheritedObjectType only
    ]
    assert parse_dacl(encode(aces)) == tuple(aces)


def test_no_dacl_and_an_empty_dacl_differ() -> None:
    assert parse_dacl(encode(None)) is None
    assert parse_dacl(encode([])) == ()
    assert granted(None)  # no DACL: no policy, everything is granted
    assert not granted([])  # an empty DACL grants nothing


def test_a_truncated_descriptor_is_an_error() -> None:
    raw = encode([allow(ME, CR, GET_CHANGES)])
    with pytest.raises(AclError, match="not a security descriptor"):
        parse_dacl(raw[:-6])


def test_impacket_built_descriptors_read_the_same() -> None:
    """An independent encoder (impacket, the optional `passwords` extra) agrees."""
    ldaptypes = pytest.importorskip("impacket.ldap.ldaptypes")
    from impacket.uuid import string_to_bin

    descriptor = ldaptypes.SR_SECURITY_DESCRIPTOR()
    descriptor["Revision"], descriptor["Sbz1"], descriptor["Control"] = b"\x01", b"\x00", 0x8004
    descriptor["OwnerSid"] = descriptor["GroupSid"] = descriptor["Sacl"] = b""
    acl = ldaptypes.ACL()
    acl["AclRevision"], acl["Sbz1"], acl["Sbz2"] = 4, 0, 0
    acl.aces = []
    for kind, mask, flags, sid in ((ldaptypes.ACCESS_DENIED_OBJECT_ACE, CR, CIIO, ME),
                                   (ldaptypes.ACCESS_ALLOWED_OBJECT_ACE, CR, 0, MY_GROUP)):
        body = kind()
        body["Mask"] = ldaptypes.ACCESS_MASK()
        body["Mask"]["Mask"] = mask
        body["Flags"] = 3
        body["ObjectType"] = string_to_bin(RESET)
        body["InheritedObjectType"] = string_to_bin(USER)
        body["Sid"] = ldaptypes.LDAP_SID()
        body["Sid"].fromCanonical(sid)
        ace = ldaptypes.ACE()
        ace["AceType"], ace["AceFlags"], ace["Ace"] = kind.ACE_TYPE, flags, body
        acl.aces.append(ace)
    plain = ldaptypes.ACCESS_ALLOWED_ACE()
    plain["Mask"] = ldaptypes.ACCESS_MASK()
    plain["Mask"]["Mask"] = FULL_CONTROL
    plain["Sid"] = ldaptypes.LDAP_SID()
    plain["Sid"].fromCanonical(SOMEONE)
    ace = ldaptypes.ACE()
    ace["AceType"], ace["AceFlags"], ace["Ace"] = plain.ACE_TYPE, CONTAINER_INHERIT, plain
    acl.aces.append(ace)
    descriptor["Dacl"] = acl

    assert parse_dacl(descriptor.getData()) == (
        deny(ME, CR, RESET, flags=CIIO, child=USER),
        allow(MY_GROUP, CR, RESET, child=USER),
        allow(SOMEONE, FULL_CONTROL, flags=CONTAINER_INHERIT),
    )


# ------------------------------------------------------------------ granting the right


def test_an_object_ace_for_the_right_grants_it() -> None:
    assert granted([allow(ME, CR, GET_CHANGES)])
    assert granted([allow(MY_GROUP, CR, GET_CHANGES)])  # through a group in the token


def test_an_object_ace_for_another_right_does_not() -> None:
    assert not granted([allow(ME, CR, GET_CHANGES_ALL)])


def test_an_ace_without_an_object_type_grants_every_extended_right() -> None:
    assert granted([allow(ME, CR, None, child=USER)])  # object ACE, no ObjectType
    assert granted([allow(ME, CR)])  # plain ACE with CR
    assert granted([allow(ME, FULL_CONTROL)])
    assert granted([allow(ME, GENERIC_ALL)])


def test_an_ace_without_control_access_grants_no_extended_right() -> None:
    assert not granted([allow(ME, READ_WRITE_PROPERTY)])
    assert not granted([allow(ME, READ_WRITE_PROPERTY, GET_CHANGES)])


def test_an_ace_for_a_sid_outside_the_token_does_not_count() -> None:
    assert not granted([allow(SOMEONE, CR, GET_CHANGES)])


def test_an_inherit_only_ace_does_not_apply_to_the_object_itself() -> None:
    assert not granted([allow(ME, CR, GET_CHANGES, flags=CIIO)])
    assert granted([allow(ME, CR, GET_CHANGES, flags=CONTAINER_INHERIT)])


# ------------------------------------------------------------------ denying it


def test_a_deny_before_the_grant_wins() -> None:
    verdict = check_control_access(
        (deny(ME, CR, GET_CHANGES), allow(MY_GROUP, CR, GET_CHANGES)), TOKEN, GET_CHANGES)
    assert not verdict.granted
    assert verdict.ace == deny(ME, CR, GET_CHANGES)


def test_the_first_matching_ace_decides() -> None:
    """As the DC does it: a grant met before a deny stands (non-canonical order is the
    writer's choice; AD and Samba store deny ACEs first)."""
    verdict = check_control_access(
        (allow(MY_GROUP, CR), deny(ME, CR, GET_CHANGES)), TOKEN, GET_CHANGES)
    assert verdict.granted and verdict.ace == allow(MY_GROUP, CR)


def test_a_deny_of_another_right_does_not_block() -> None:
    assert granted([deny(ME, CR, GET_CHANGES_ALL), allow(ME, CR, GET_CHANGES)])
    assert granted([deny(ME, READ_WRITE_PROPERTY), allow(ME, CR, GET_CHANGES)])


def test_a_deny_without_an_object_type_blocks_every_extended_right() -> None:
    assert not granted([deny(MY_GROUP, CR), allow(ME, CR, GET_CHANGES)])
    assert not granted([deny(ME, CR, None, child=USER), allow(ME, FULL_CONTROL)])


def test_an_inherit_only_deny_does_not_block_the_object_itself() -> None:
    assert granted([deny(ME, CR, GET_CHANGES, flags=CIIO), allow(ME, CR, GET_CHANGES)])


# ------------------------------------------------------------------ what a new user inherits

NO_DEFAULT = SddlDacl((), False)


def reset_below(parent: list[Ace], default: SddlDacl = NO_DEFAULT) -> bool:
    dacl = new_child_dacl(parse_dacl(encode(parent)), default, USER)
    return check_control_access(dacl, TOKEN, RESET).granted


def test_a_users_only_inheritable_grant_on_the_ou_reaches_its_users() -> None:
    assert reset_below([allow(ME, CR, RESET, flags=CIIO, child=USER)])
    assert reset_below([allow(ME, CR, RESET, flags=CONTAINER_INHERIT)])  # all classes
    assert reset_below([allow(MY_GROUP, FULL_CONTROL, flags=CONTAINER_INHERIT | INHERITED)])


def test_a_grant_for_the_ou_itself_does_not_reach_its_users() -> None:
    assert not reset_below([allow(ME, CR, RESET)])
    assert not reset_below([allow(ME, FULL_CONTROL)])


def test_object_inherit_alone_passes_nothing_to_directory_objects() -> None:
    assert not reset_below([allow(ME, CR, RESET, flags=OBJECT_INHERIT | INHERIT_ONLY)])


def test_a_grant_inherited_by_another_class_does_not_reach_users() -> None:
    assert not reset_below([allow(ME, CR, RESET, flags=CIIO, child=COMPUTER)])


def test_an_inheritable_deny_on_the_ou_blocks_its_grant() -> None:
    assert not reset_below([deny(ME, CR, RESET, flags=CIIO, child=USER),
                            allow(MY_GROUP, CR, RESET, flags=CIIO, child=USER)])


def test_the_class_default_comes_before_what_the_ou_passes_down() -> None:
    """Domain Admins hold full control on every user by the user class's default, ahead of
    any deny its OU passes down; Account Operators likewise."""
    token_group = f"{DOMAIN}-512"
    default = parse_sddl_dacl(USER_DEFAULT, DOMAIN, ROOT)
    ou = [deny(token_group, CR, RESET, flags=CIIO, child=USER)]
    dacl = new_child_dacl(parse_dacl(encode(ou)), default, USER)
    assert check_control_access(dacl, {token_group}, RESET).granted
    assert check_control_access(dacl, {"S-1-5-32-548"}, RESET).granted  # Account Operators
    assert not check_control_access(dacl, TOKEN, RESET).granted  # only PS, which is not me


def test_a_protected_class_default_takes_nothing_from_the_ou() -> None:
    protected = parse_sddl_dacl("D:P(A;;RC;;;AU)", DOMAIN)
    assert protected.protected
    assert not reset_below([allow(ME, CR, RESET, flags=CIIO, child=USER)], protected)


def test_the_childs_copy_applies_to_it_and_names_the_ous_ace() -> None:
    ou_ace = allow(ME, CR, RESET, flags=CIIO, child=USER)
    (copy,) = new_child_dacl((ou_ace,), NO_DEFAULT, USER)
    assert copy.flags == CONTAINER_INHERIT | INHERITED
    assert copy.origin == ou_ace


# ------------------------------------------------------------------ SDDL


def test_sddl_aliases_resolve_in_their_domain() -> None:
    dacl = parse_sddl_dacl("O:DAG:DAD:(A;;GA;;;DA)(A;;CR;;;EA)(A;;RC;;;BA)(A;;LC;;;AU)"
                           "S:(AU;SA;WP;;;WD)", DOMAIN, ROOT)
    assert [ace.sid for ace in dacl.aces] == [
        f"{DOMAIN}-512", f"{ROOT}-519", "S-1-5-32-544", "S-1-5-11"]  # no SACL entries


def test_sddl_rights_flags_and_types_are_read() -> None:
    (ace,) = parse_sddl_dacl(f"D:AI(OD;CIIO;CRWP;{RESET.upper()};{USER};{ME})", DOMAIN).aces
    assert ace == deny(ME, CR | 0x20, RESET, flags=CIIO, child=USER)
    (ace,) = parse_sddl_dacl("D:(A;ID;0xf01ff;;;SY)", DOMAIN).aces
    assert ace == allow("S-1-5-18", FULL_CONTROL, flags=INHERITED)


def test_the_user_class_default_parses() -> None:
    default = parse_sddl_dacl(USER_DEFAULT, DOMAIN, ROOT)
    assert not default.protected
    assert default.aces[0] == allow(f"{DOMAIN}-512", FULL_CONTROL)  # RPWPCRCCDCLCLORCWOWDSDDTSW
    assert len(default.aces) == 9


def test_an_unknown_sddl_alias_is_named() -> None:
    with pytest.raises(AclError, match="unknown trustee alias 'QQ'"):
        parse_sddl_dacl("D:(A;;CR;;;QQ)", DOMAIN)
    with pytest.raises(AclError, match="unknown flag or right"):
        parse_sddl_dacl("D:(A;;XX;;;DA)", DOMAIN)


def test_an_ace_prints_as_sddl() -> None:
    assert deny(ME, CR, RESET, flags=CIIO, child=USER).sddl == f"(OD;CIIO;CR;{RESET};{USER};{ME})"
    assert allow(ME, FULL_CONTROL, flags=CONTAINER_INHERIT).sddl == f"(A;CI;0xf01ff;;;{ME})"


# ------------------------------------------------------------------ port probes


def test_port_findings_say_what_to_do() -> None:
    found = RpcPorts("dc1.corp.example", (
        PortProbe("dc1.corp.example", 135, "timeout", "5 s"),
        PortProbe("dc1.corp.example", 445, "refused"),
    ))  # fmt: skip
    assert not found.ok
    assert found.message == (
        "135 (RPC endpoint mapper) on dc1.corp.example did not answer within 5 s: a firewall"
        " drops it; allow TCP 135 from Ferry to the DC; 445 (SMB) on dc1.corp.example refused:"
        " the DC needs smbd (Samba: 's3fs' in server services; Windows: the Server service)")
    assert "does not resolve" in PortProbe("dc9", 445, "unresolved", "Name unknown").message
    both = RpcPorts("dc1", (PortProbe("dc1", 135, "open"), PortProbe("dc1", 445, "open")))
    assert both.ok and both.message == "dc1 takes connections on 135, 445 (RPC, SMB)"
