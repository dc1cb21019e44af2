"""DsAddSidHistoryW by contract (it runs only on a Windows DC's agent): the calls ntdsapi.dll
gets, in order and with which arguments, and how their answers are read."""

from __future__ import annotations

import ctypes
from typing import Any

import pytest

from ferry_agent.dc.windows import (
    ERROR_ACCESS_DENIED,
    ERROR_DS_SRC_SID_EXISTS_IN_FOREST,
    DsAddSidHistoryFailed,
    DsAddSidHistoryRequest,
    SourceCredential,
    call_ds_add_sid_history,
)


class Ntdsapi:
    """Records each call and answers from `answers` (0 by default), as the DLL would."""

    def __init__(self, **answers: int):
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.answers = answers

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any) -> int:
            self.calls.append((name, args))
            if name == "DsBindWithCredW":
                ctypes.cast(args[3], ctypes.POINTER(ctypes.c_void_p)).contents.value = 0x1234
            if name == "DsMakePasswordCredentialsW":
                ctypes.cast(args[3], ctypes.POINTER(ctypes.c_void_p)).contents.value = 0x5678
            return self.answers.get(name, 0)
        return call


REQUEST = DsAddSidHistoryRequest("src.example", "alice", "pdc.src.example", "tgt.example",
                                 "alice", "dc1.tgt.example")


def test_bind_add_unbind_with_the_callers_identity() -> None:
    dll = Ntdsapi()
    assert call_ds_add_sid_history(REQUEST, None, dll) is True
    names = [name for name, _ in dll.calls]
    assert names == ["DsBindWithCredW", "DsAddSidHistoryW", "DsUnBindW"]
    _, add = dll.calls[1]
    assert add[1:] == (0, "src.example", "alice", "pdc.src.example", None, "tgt.example",
                       "alice")
    assert dll.calls[0][1][:3] == ("dc1.tgt.example", "tgt.example", None)


def test_a_source_credential_is_made_used_and_freed() -> None:
    request = DsAddSidHistoryRequest(
        "src.example", "alice", "pdc.src.example", "tgt.example", "alice", "dc1.tgt.example",
        SourceCredential("migrator", "SRC", "secret/src-admin"))
    dll = Ntdsapi()
    assert call_ds_add_sid_history(request, "Pw!", dll) is True
    names = [name for name, _ in dll.calls]
    assert names == ["DsBindWithCredW", "DsMakePasswordCredentialsW", "DsAddSidHistoryW",
                     "DsFreePasswordCredentials", "DsUnBindW"]
    assert dll.calls[1][1][:3] == ("migrator", "SRC", "Pw!")
    assert dll.calls[2][1][5] is not None   # the credential handle, not the password


def test_a_sid_already_in_the_forest_is_a_repeat_not_an_error() -> None:
    dll = Ntdsapi(DsAddSidHistoryW=ERROR_DS_SRC_SID_EXISTS_IN_FOREST)
    assert call_ds_add_sid_history(REQUEST, None, dll) is False
    assert dll.calls[-1][0] == "DsUnBindW"


def test_access_denied_names_the_right_and_still_unbinds() -> None:
    dll = Ntdsapi(DsAddSidHistoryW=ERROR_ACCESS_DENIED)
    with pytest.raises(DsAddSidHistoryFailed, match="Migrate SID History") as caught:
        call_ds_add_sid_history(REQUEST, None, dll)
    assert caught.value.code == ERROR_ACCESS_DENIED
    assert dll.calls[-1][0] == "DsUnBindW"


def test_a_failed_bind_makes_no_other_call() -> None:
    dll = Ntdsapi(DsBindWithCredW=1722)   # RPC_S_SERVER_UNAVAILABLE
    with pytest.raises(DsAddSidHistoryFailed, match="DsBindWithCredW: Win32 error 1722"):
        call_ds_add_sid_history(REQUEST, None, dll)
    assert [name for name, _ in dll.calls] == ["DsBindWithCredW"]
