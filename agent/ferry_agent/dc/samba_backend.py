"""Adds SIDs to one object's sIDHistory in a Samba DC's own database (sam.ldb).

Run as a script by Samba's Python (`python3 -I samba_backend.py`, the interpreter samba-tool
uses, which has the `samba` bindings) on the DC itself, as root; the agent never imports it,
and it imports nothing of the agent (-I keeps even its own folder off sys.path). Samba allows
these writes only to a local system session: its LDAP server refuses every sIDHistory change.

It opens the database once, then takes targets one after another, each in its own
transaction held across a short exchange of JSON lines on stdin/stdout, so what the agent
decided on is what gets written; it ends at the end of stdin.

    in : {"smbConf": PATH}             out: {"ok": true}
    then per target:
    in : {"target": {"dn": DN} | {"guid": GUID} | {"sam": NAME}, "sids": [SID, ...]}
    out: {"ok": true, "facts": {...}}  or  {"ok": false, "error": {"kind", "message"}}
    in : {"add": [SID, ...]}           ([]: write nothing, no answer, transaction cancelled)
    out: {"ok": true, "sidHistory": [SID, ...]}  (the value after the commit) or an error

facts: dn, objectSid, domainSid, objectClass, sidHistory, groupSids (every group the object
is in, nested and primary group included), critical (isCriticalSystemObject), adminCount,
holders ({SID: DN} of other objects holding one of the SIDs as objectSid or in sIDHistory).
"""

from __future__ import annotations

import json
import sys
from typing import Any

MAX_GROUPS = 10_000  # nesting walked at most this far: a cycle or a huge tree ends here


class Refused(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _receive() -> dict[str, Any]:
    line = sys.stdin.readline()
    if not line:
        raise Refused("protocol", "the agent closed the exchange")
    value = json.loads(line)
    if not isinstance(value, dict):
        raise Refused("protocol", "expected a JSON object")
    return value


def _open(conf: str) -> Any:
    from samba.auth import system_session
    from samba.param import LoadParm
    from samba.samdb import SamDB

    lp = LoadParm()
    lp.load(conf)
    return SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)


def _sid(samdb: Any, raw: bytes) -> str:
    return str(samdb.schema_format_value("objectSid", raw).decode("ascii"))


def _find(samdb: Any, target: dict[str, Any]) -> Any:
    import ldb

    principals = "(|(objectClass=user)(objectClass=group))"
    attrs = ["objectSid", "objectClass", "sIDHistory", "memberOf", "primaryGroupID",
             "isCriticalSystemObject", "adminCount"]
    if "dn" in target or "guid" in target:
        # ldb takes the <GUID=...> form as a base, like AD's LDAP server.
        name = str(target["dn"]) if "dn" in target else f"<GUID={target['guid']}>"
        try:
            found = samdb.search(name, ldb.SCOPE_BASE, principals, attrs)
        except ldb.LdbError as exc:
            if exc.args[0] == ldb.ERR_NO_SUCH_OBJECT:
                found = []
            else:
                raise
    else:
        name = str(target["sam"])
        expression = f"(&{principals}(sAMAccountName={ldb.binary_encode(name)}))"
        found = samdb.search(samdb.domain_dn(), ldb.SCOPE_SUBTREE, expression, attrs)
    if len(found) == 0:
        raise Refused("notFound", f"no user or group {name!r} in {samdb.domain_dn()}")
    if len(found) > 1:
        raise Refused("ambiguous", f"{len(found)} objects match {name!r}")
    return found[0]


def _group_sids(samdb: Any, entry: Any) -> list[str]:
    """Every group the object is a member of, nested memberships and the primary group too."""
    import ldb

    domain_sid = samdb.get_domain_sid()
    todo = [str(dn) for dn in entry.get("memberOf", [])]
    if entry.get("primaryGroupID"):
        primary = samdb.search(
            samdb.domain_dn(), ldb.SCOPE_SUBTREE,
            f"(objectSid={domain_sid}-{int(str(entry['primaryGroupID'][0]))})", ["objectSid"])
        todo += [str(found.dn) for found in primary]
    seen: dict[str, str] = {}
    while todo and len(seen) < MAX_GROUPS:
        dn = todo.pop()
        if dn.lower() in seen:
            continue
        group = samdb.search(dn, ldb.SCOPE_BASE, attrs=["objectSid", "memberOf"])[0]
        seen[dn.lower()] = _sid(samdb, group["objectSid"][0]) if "objectSid" in group else ""
        todo += [str(parent) for parent in group.get("memberOf", [])]
    return sorted(sid for sid in seen.values() if sid)


def _holders(samdb: Any, dn: Any, sids: list[str]) -> dict[str, str]:
    import ldb

    held: dict[str, str] = {}
    for sid in sids:
        for found in samdb.search(samdb.domain_dn(), ldb.SCOPE_SUBTREE,
                                  f"(|(objectSid={sid})(sIDHistory={sid}))", ["objectSid"]):
            if found.dn != dn:
                held[sid] = str(found.dn)
    return held


def _facts(samdb: Any, entry: Any, sids: list[str]) -> dict[str, Any]:
    def flag(name: str) -> str:
        return str(entry[name][0]) if name in entry else ""

    return {
        "dn": str(entry.dn),
        "objectSid": _sid(samdb, entry["objectSid"][0]),
        "domainSid": str(samdb.get_domain_sid()),
        "objectClass": [str(value) for value in entry["objectClass"]],
        "sidHistory": [_sid(samdb, raw) for raw in entry.get("sIDHistory", [])],
        "groupSids": _group_sids(samdb, entry),
        "critical": flag("isCriticalSystemObject").upper() == "TRUE",
        "adminCount": int(flag("adminCount") or 0),
        "holders": _holders(samdb, entry.dn, sids),
    }


def _add(samdb: Any, dn: Any, sids: list[str]) -> list[str]:
    import ldb
    from samba.dcerpc import security
    from samba.ndr import ndr_pack

    message = ldb.Message(dn)
    message["sIDHistory"] = ldb.MessageElement(
        [ndr_pack(security.dom_sid(sid)) for sid in sids], ldb.FLAG_MOD_ADD, "sIDHistory")
    samdb.modify(message)
    after = samdb.search(dn, ldb.SCOPE_BASE, attrs=["sIDHistory"])[0]
    return [_sid(samdb, raw) for raw in after.get("sIDHistory", [])]


def _one(samdb: Any, request: dict[str, Any]) -> None:
    """One target in its own transaction: facts out, a decision in, the outcome out."""
    sids = [str(sid) for sid in request["sids"]]
    samdb.transaction_start()
    done = False
    try:
        entry = _find(samdb, request["target"])
        _send({"ok": True, "facts": _facts(samdb, entry, sids)})
        add = [str(sid) for sid in _receive().get("add", [])]
        if add:
            history = _add(samdb, entry.dn, add)
            samdb.transaction_commit()
            done = True
            _send({"ok": True, "sidHistory": history})
    finally:
        if not done:
            samdb.transaction_cancel()


def main() -> None:
    import ldb

    try:
        samdb = _open(str(_receive()["smbConf"]))
        _send({"ok": True})
    except (Refused, ldb.LdbError) as exc:
        _send({"ok": False, "error": {"kind": "open", "message": str(exc)}})
        return
    while True:
        line = sys.stdin.readline()
        if not line:
            return  # the agent is done (or gone): every transaction has ended
        try:
            _one(samdb, json.loads(line))
        except Refused as exc:
            _send({"ok": False, "error": {"kind": exc.kind, "message": str(exc)}})
        except ldb.LdbError as exc:
            code, text = (*exc.args, "", "")[:2]
            _send({"ok": False,
                   "error": {"kind": "ldb", "message": f"{text} (ldb error {code})"}})


if __name__ == "__main__":
    main()
