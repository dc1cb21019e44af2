"""Who a password may be set on, from the attributes a base search returns (the rule itself;
tests/integration/agent/test_password_replication.py holds it against a real DC)."""

from __future__ import annotations

import pytest

from ferry_agent.directory.values import sid_to_bytes
from ferry_agent.passwords.targets import _protection
from ferry_agent.sid import protected_group

DOMAIN = "S-1-5-21-1004336348-1177238915-682003330"
USER = f"{DOMAIN}-1104"


def raw(**changes: list[bytes]) -> dict[str, list[bytes]]:
    values = {"sAMAccountType": [b"805306368"], "tokenGroups": [sid_to_bytes(f"{DOMAIN}-513")]}
    values.update(changes)
    return values


def test_a_plain_user_may_get_a_password() -> None:
    assert _protection(raw(), USER) == ""
    assert _protection(raw(adminCount=[b"0"]), USER) == ""


@pytest.mark.parametrize(("attributes", "sid", "why"), [
    ({}, f"{DOMAIN}-500", "built-in account"),
    ({}, f"{DOMAIN}-502", "built-in account"),
    ({}, "", "no objectSid"),
    ({"isCriticalSystemObject": [b"TRUE"]}, USER, "critical system object"),
    ({"sAMAccountType": [b"805306369"]}, USER, "not a user account"),
    ({"tokenGroups": [sid_to_bytes(f"{DOMAIN}-512")]}, USER, "member of Domain Admins"),
    ({"tokenGroups": [sid_to_bytes("S-1-5-21-9-9-9-519")]}, USER, "Enterprise Admins"),
    ({"tokenGroups": [sid_to_bytes("S-1-5-32-551")]}, USER, "Backup Operators"),
    ({"adminCount": [b"1"]}, USER, "adminCount is set"),
])
def test_protected_accounts_are_refused(attributes: dict[str, list[bytes]], sid: str,
                                        why: str) -> None:
    assert why in _protection(raw(**attributes), sid)


def test_the_protected_groups_are_shared_with_sid_history() -> None:
    from ferry_agent.dc import sid_history

    assert protected_group(f"{DOMAIN}-512") == "Domain Admins"
    assert protected_group("s-1-5-32-544") == "Administrators"
    assert protected_group(f"{DOMAIN}-513") == ""          # Domain Users
    assert protected_group("S-1-5-32-545") == ""           # BUILTIN\Users
    assert sid_history.protected_group is protected_group
