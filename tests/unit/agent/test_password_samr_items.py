"""set_nt_hashes checks every item before the DC: a bad SID, a built-in account or a hash of the
wrong size gets its own outcome, and if no item is left no connection is made."""

from __future__ import annotations

from ferry_agent.passwords import DcEndpoint
from ferry_agent.passwords.samr import set_nt_hashes

NOWHERE = DcEndpoint(host="127.0.0.254", user="TGT\\pwset", password="x",  # nothing listens
                     base_dn="DC=tgt,DC=example", connect_timeout=1)
HASH = bytes(16)


def test_items_that_cannot_be_sent_fail_alone_without_a_connection() -> None:
    outcomes = set_nt_hashes(NOWHERE, [
        ("S-1-5-21-1-2-3-500", HASH),
        ("S-1-5-32-544", HASH),
        ("not a sid", HASH),
        ("S-1-5-21-1-2-3-1104", b"short"),
    ])
    assert outcomes[0] is not None and "built-in account (RID 500" in outcomes[0]
    assert outcomes[1] is not None and "not a domain account's SID" in outcomes[1]
    assert outcomes[2] is not None and "not a SID" in outcomes[2]
    assert outcomes[3] is not None and "an NT hash is 16 bytes" in outcomes[3]
    assert all("S-1-5-21-1-2-3-1104" in o for o in outcomes[3:] if o)


def test_no_items_no_connection() -> None:
    assert set_nt_hashes(NOWHERE, []) == []


def test_the_only_transport_is_smb() -> None:
    import inspect

    from ferry_agent.passwords import samr

    # Over TCP the DC answers success and stores garbage (no transport session key).
    assert "ncacn_ip_tcp" not in inspect.getsource(samr).replace("ncacn_ip_tcp has none", "")
    assert list(inspect.signature(set_nt_hashes).parameters) == ["endpoint", "items"]
