"""The DC endpoint of password sync: the two user forms, the realm from the base DN, and bad
input refused by name before any connection."""

from __future__ import annotations

import pytest

from ferry_agent.passwords import DcEndpoint, PasswordSyncError


def endpoint(**changes: str) -> DcEndpoint:
    values = {"host": "dc1.src.example", "user": "repl@src.example", "password": "s3cret!",
              "base_dn": "DC=src,DC=example", **changes}
    return DcEndpoint(**values)


def test_a_upn_logs_on_as_itself_with_no_domain() -> None:
    found = endpoint()
    assert (found.account, found.ntlm_domain, found.realm) == ("repl@src.example", "",
                                                               "src.example")


def test_domain_backslash_user_gives_the_netbios_name() -> None:
    found = endpoint(user="SRC\\repl")
    assert (found.account, found.ntlm_domain, found.netbios) == ("repl", "SRC", "SRC")
    assert endpoint(user="SRC\\repl", netbios="OTHER").netbios == "OTHER"
    assert endpoint(realm="corp.example").realm == "corp.example"


def test_the_password_is_never_shown() -> None:
    assert "s3cret" not in repr(endpoint())


@pytest.mark.parametrize(("field", "value", "named"), [
    ("user", "repl", "neither a UPN nor DOMAIN\\user"),
    ("user", "SRC\\", "is not DOMAIN\\user"),
    ("user", " repl@src.example", "is not usable"),
    ("user", "repl@example", "neither a UPN"),
    ("base_dn", "OU=Corp,DC=src,DC=example", "is not a domain's naming context"),
    ("base_dn", "DC=src,,DC=example", "base_dn"),
    ("host", "", "is not a host name"),
    ("password", "", "no password"),
    ("netbios", "A-NAME-FAR-TOO-LONG", "is not a NetBIOS domain name"),
])
def test_bad_input_names_the_field(field: str, value: str, named: str) -> None:
    with pytest.raises(PasswordSyncError, match="DC endpoint") as caught:
        endpoint(**{field: value})
    assert named in str(caught.value)
    assert "s3cret" not in str(caught.value)
