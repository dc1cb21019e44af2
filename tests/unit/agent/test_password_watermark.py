"""The replication watermark: what a delta needs back, and any other string refused with the fix
(reset it), before a DC is contacted."""

from __future__ import annotations

import json

import pytest

from ferry_agent.passwords import PasswordSyncError
from ferry_agent.passwords.endpoint import DcEndpoint
from ferry_agent.passwords.replication import changes
from ferry_agent.passwords.watermark import ReplicationWatermark, decode

INVOCATION = "0c50e2ad-8623-42c7-b4e0-57082f1d7462"
OTHER_DC = "5a8f3c1e-2b4d-4e6f-8a9b-0c1d2e3f4a5b"
MARK = ReplicationWatermark("DC=src,DC=example", INVOCATION, 6077, 6077,
                            ((INVOCATION, 6077), (OTHER_DC, 12)))


def test_it_comes_back_as_it_went_out_for_the_same_domain_however_spelled() -> None:
    assert decode(MARK.encode(), "DC=src,DC=example") == MARK
    assert decode(MARK.encode(), "dc=SRC, dc=example") == MARK


def test_one_without_cursors_is_still_read() -> None:
    text = json.dumps({"v": 1, "nc": "DC=src,DC=example", "invocationId": INVOCATION,
                       "usn": [5, 5]})
    assert decode(text, "DC=src,DC=example").cursors == ()


def test_a_watermark_of_another_domain_is_refused() -> None:
    with pytest.raises(PasswordSyncError, match="is for 'DC=src,DC=example', not"
                                                " 'DC=tgt,DC=example'; reset the password"):
        decode(MARK.encode(), "DC=tgt,DC=example")


@pytest.mark.parametrize("text", [
    "", "12345", "null", '{"v": 2}',
    json.dumps({"v": 1, "nc": "DC=src,DC=example", "invocationId": "x", "usn": [1, 1]}),
    json.dumps({"v": 1, "nc": "DC=src,DC=example", "invocationId": INVOCATION, "usn": [1]}),
    json.dumps({"v": 1, "nc": "DC=src,DC=example", "invocationId": INVOCATION,
                "usn": [-1, 1]}),
    json.dumps({"v": 1, "nc": "DC=src,DC=example", "invocationId": INVOCATION, "usn": [1, 1],
                "utd": [[INVOCATION, True]]}),
])
def test_anything_else_is_refused_with_the_fix(text: str) -> None:
    with pytest.raises(PasswordSyncError, match=r"not one this agent wrote .*reset the password"
                                                " watermark"):
        decode(text, "DC=src,DC=example")


def test_changes_checks_the_watermark_before_contacting_the_dc() -> None:
    nowhere = DcEndpoint(host="127.0.0.254", user="repl@src.example", password="x",
                         base_dn="DC=src,DC=example", connect_timeout=1)  # fmt: skip
    with pytest.raises(PasswordSyncError, match="not one this agent wrote"):
        changes(nowhere, "garbage")
    read = changes(nowhere, MARK.encode())  # valid: nothing is contacted until iterated
    with pytest.raises(PasswordSyncError, match="has not ended"):
        _ = read.watermark
