"""Where objects land: OU mappings and source OUs compare whole RDNs, never raw strings."""

from __future__ import annotations

import pytest
from engine_world import TGT_OU, pair, staging, user

from ferry.engine.expressions import ExpressionError, compile_template
from ferry.engine.pipeline import plan_pair
from ferry.engine.plan import OpKind
from ferry.engine.rules import AttributeMapping, OuMapping
from ferry_agent.dn import rdn_value

ROOT = "DC=src,DC=test"
ADMINS = f"OU=Admins,{ROOT}"
PRIVILEGED = "OU=Admins,DC=tgt,DC=test"
ADMINS_MAPPING = (OuMapping(ADMINS, PRIVILEGED),)


def _created(rules_options: dict[str, object], *sources_in: tuple[str, str]) -> dict[str, str]:
    """cn -> DN of the object each (cn, source OU) is created at."""
    rules = pair(staging(AttributeMapping("cn", "source.cn"), ou_mappings=ADMINS_MAPPING),
                 **rules_options)
    sources = [user(f"s{i}", cn, ou=ou) for i, (cn, ou) in enumerate(sources_in)]
    plan = plan_pair(rules, sources, [], {})
    return {rdn_value(op.dn): op.dn for op in plan.operations if op.kind is OpKind.CREATE}


@pytest.mark.parametrize("evil_ou", [
    f"OU=evil\\,OU=Admins,{ROOT}",
    f"OU=evil\\2COU=Admins,{ROOT}",
    f"OU=evil\\2cOU\\3dAdmins,{ROOT}",
])
def test_an_ou_named_evil_comma_ou_admins_is_not_mapped_into_the_admins_target(
        evil_ou: str) -> None:
    created = _created({}, ("Mallory", evil_ou), ("Alice", ADMINS),
                       ("Bob", f"OU=Ops,{ADMINS}"), ("Carol", f"OU=SubAdmins,{ROOT}"))
    assert created == {
        "Mallory": f"CN=Mallory,{TGT_OU}",     # the default: not inside OU=Admins
        "Alice": f"CN=Alice,{PRIVILEGED}",
        "Bob": f"CN=Bob,{PRIVILEGED}",
        "Carol": f"CN=Carol,{TGT_OU}",
    }


def test_mapping_ignores_case_and_spacing_of_the_source_dn() -> None:
    created = _created({}, ("Alice", "ou=ADMINS, dc=SRC ,dc=test"))
    assert created == {"Alice": f"CN=Alice,{PRIVILEGED}"}


def test_the_deepest_source_ou_wins_by_rdns_not_by_spelling_length() -> None:
    # The shallower mapping is spelled with spaces: the longer string, yet the less specific.
    mappings = (OuMapping("OU=Staff ,  DC=src ,  DC=test", "OU=Shallow,DC=tgt,DC=test"),
                OuMapping("OU=B,OU=Staff,DC=src,DC=test", "OU=Deep,DC=tgt,DC=test"))
    template = compile_template(staging(AttributeMapping("cn", "source.cn"),
                                        ou_mappings=mappings))
    assert template.target_ou("OU=B,OU=Staff,DC=src,DC=test") == "OU=Deep,DC=tgt,DC=test"
    assert template.target_ou("OU=C,OU=Staff,DC=src,DC=test") == "OU=Shallow,DC=tgt,DC=test"


def test_an_ou_named_evil_comma_ou_admins_is_outside_source_ous_admins() -> None:
    created = _created({"source_ous": (ADMINS,)}, ("Mallory", f"OU=evil\\,OU=Admins,{ROOT}"),
                       ("Alice", ADMINS))
    assert created == {"Alice": f"CN=Alice,{PRIVILEGED}"}


def test_a_source_ou_that_is_no_dn_names_the_template_and_mapping() -> None:
    bad = (OuMapping("OU=Sales;DC=src", PRIVILEGED),)
    with pytest.raises(ExpressionError, match=r"template 'corp-users', field "
                       r"'targetOU.mappings\[0\].sourceOU': .*must be escaped"):
        compile_template(staging(AttributeMapping("cn", "source.cn"), ou_mappings=bad))


def test_a_pair_source_ou_that_is_no_dn_names_the_pair() -> None:
    rules = pair(staging(AttributeMapping("cn", "source.cn")), source_ous=("Staff",))
    with pytest.raises(ExpressionError, match="pair 'src->tgt', field 'sourceOUs': 'Staff'"):
        plan_pair(rules, [user("s1", "Ann")], [], {})
