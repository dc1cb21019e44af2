"""Guest matching: source addresses against B2B guest UPNs of an Entra ID target."""

from __future__ import annotations

from engine_world import CONTOSO, pair, staging, user

from ferry.engine.match import guest_source_keys, guest_target_keys
from ferry.engine.pipeline import plan_pair
from ferry.engine.plan import OpKind
from ferry.engine.records import ObjectType, Record
from ferry.engine.rules import AttributeMapping, MatchRule

GUEST_RULE = MatchRule("userPrincipalName", "userPrincipalName", guest=True)
MAPPINGS = (AttributeMapping("displayName", "source.cn"),
            AttributeMapping("userPrincipalName", "source.userPrincipalName"))


def entra_user(anchor: str, upn: str, user_type: str = "Guest") -> Record:
    return Record(anchor, ObjectType.USER, f"CN={upn}", {
        "userPrincipalName": upn, "userType": user_type, "displayName": upn}, {}, True)


def test_guest_forms_of_addresses() -> None:
    assert guest_target_keys("Ann.Lee_Contoso.com#EXT#@fabrikam.onmicrosoft.com") == \
        ("ann.lee_contoso.com#ext#",)
    assert guest_target_keys("ann.lee@fabrikam.com") == ()
    domains = frozenset({"contoso.com"})
    assert guest_source_keys(("ann.lee@contoso.com", "bo@other.com"), domains) == \
        ("ann.lee_contoso.com#ext#",)


def test_a_source_user_matches_its_guest_through_the_domain_mapping() -> None:
    ann = user("s1", "Ann Lee", userPrincipalName="Ann.Lee@contoso.com")
    guest = entra_user("g1", "ann.lee_contoso.com#EXT#@fabrikam.onmicrosoft.com")
    member = entra_user("m1", "ann.lee@fabrikam.com", "Member")  # not a guest form
    rules = pair(staging(*MAPPINGS, domain_mappings=CONTOSO), GUEST_RULE)
    plan = plan_pair(rules, [ann], [guest, member], {})
    assert plan.new_joins == {"s1": "g1"}
    assert plan.count(OpKind.CREATE) == 0


def test_without_a_domain_mapping_guests_are_not_matched() -> None:
    ann = user("s1", "Ann Lee", userPrincipalName="ann.lee@contoso.com")
    guest = entra_user("g1", "ann.lee_contoso.com#EXT#@fabrikam.onmicrosoft.com")
    plan = plan_pair(pair(staging(*MAPPINGS), GUEST_RULE), [ann], [guest], {})
    assert plan.new_joins == {}
    assert plan.count(OpKind.CREATE) == 1


def test_two_guests_of_one_address_are_a_conflict() -> None:
    ann = user("s1", "Ann Lee", userPrincipalName="ann.lee@contoso.com")
    guests = [entra_user("g1", "ann.lee_contoso.com#EXT#@fabrikam.onmicrosoft.com"),
              entra_user("g2", "Ann.Lee_contoso.com#EXT#@fabrikam.com")]
    rules = pair(staging(*MAPPINGS, domain_mappings=CONTOSO), GUEST_RULE)
    plan = plan_pair(rules, [ann], guests, {})
    [conflict] = plan.conflicts
    assert "(guest)" in conflict.rule and plan.operations == []
