"""Edits registry hive files with hivex, for the device agent's ReACL of profiles.

Run as a script by the distribution's Python (`/usr/bin/python3 -I hive_backend.py`; Debian's
python3-hivex exists for it only); the agent never imports it, and it imports nothing of the
agent. It edits the file it is named, which the agent made as a copy of the hive and puts in
the hive's place only once this answered and a check read it through. JSON lines on
stdin/stdout, one answer per request, until stdin ends:

    {"op": "profiles", "hive": PATH}
        -> {"ok": true, "profiles": [{"key": NAME, "imagePath": TEXT}]}  (ProfileList)
    {"op": "remap", "hive": PATH, "moves": [{"source": SID, "target": SID, "sid": HEX,
     "mode": "add" | "replace" | "remove"}]}
        -> {"ok": true, "results": [{"source": SID, "changed": BOOL, "error": TEXT}]}
    {"op": "restore", "hive": PATH, "pairs": [{"source": SID, "target": SID}]}
        -> {"ok": true, "results": [...as remap]}
    {"op": "check", "hive": PATH}    -> {"ok": true, "keys": N, "values": N}
    any failure                     -> {"ok": false, "error": {"kind", "message"}}

remap: add copies ProfileList\\<source> to <target> (its Sid value the target's); replace
also keeps the source as <source>.bak (what Windows admins restore from) and drops it;
remove drops the source once the target exists. restore puts <source>.bak back as
<source> and drops <target>. Each op commits once, so a hive holds all of it or none.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

PROFILE_LIST = ("Microsoft", "Windows NT", "CurrentVersion", "ProfileList")
PROFILE_LIST_PATH = "\\".join(PROFILE_LIST)
BACKUP = ".bak"


class Refused(Exception):
    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


def _send(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _open(path: str, write: bool) -> Any:
    try:
        import hivex
    except ImportError:
        raise Refused("hivex", f"{sys.executable} has no hivex: install python3-hivex"
                      " (Debian) or name the Python that has it (hive_python)") from None
    try:
        return hivex.Hivex(path, write=write)
    except Exception as exc:  # hivex raises RuntimeError with errno text
        raise Refused("open", f"hivex cannot open {path}: {exc}") from None


def _profile_list(hive: Any, path: str) -> Any:
    node = hive.root()
    for part in PROFILE_LIST:
        node = hive.node_get_child(node, part)
        if not node:
            raise Refused("noProfileList", f"{path} has no {PROFILE_LIST_PATH} key:"
                          " name the SOFTWARE hive (Windows\\System32\\config\\SOFTWARE)")
    return node


def _text(hive: Any, node: Any, name: str) -> str:
    value = hive.node_get_value(node, name) if node else 0
    if not value:
        return ""
    _, data = hive.value_value(value)
    return bytes(data).decode("utf-16-le", "replace").rstrip("\0")


def _values(hive: Any, node: Any) -> list[dict[str, Any]]:
    values = []
    for value in hive.node_values(node):
        kind, data = hive.value_value(value)
        values.append({"key": hive.value_key(value), "t": kind, "value": data})
    return values


def _copy(hive: Any, source: Any, parent: Any, name: str, sid: bytes | None) -> None:
    """`source` (values and subkeys) as `parent`\\`name`; the Sid value set to `sid`."""
    values = _values(hive, source)
    if sid is not None:
        values = [dict(v, value=sid) if v["key"].lower() == "sid" else v for v in values]
    node = hive.node_add_child(parent, name)
    hive.node_set_values(node, values)
    for child in hive.node_children(source):
        _copy(hive, child, node, hive.node_name(child), None)


def profiles(request: dict[str, Any]) -> dict[str, Any]:
    hive = _open(request["hive"], write=False)
    plist = _profile_list(hive, request["hive"])
    found = [{"key": hive.node_name(child), "imagePath": _text(hive, child, "ProfileImagePath")}
             for child in hive.node_children(plist)]
    return {"ok": True, "profiles": found}


def remap(request: dict[str, Any]) -> dict[str, Any]:
    return _edit(request, request["moves"], _remap_one)


def restore(request: dict[str, Any]) -> dict[str, Any]:
    return _edit(request, request["pairs"], _restore_one)


def _edit(request: dict[str, Any], items: list[dict[str, Any]],
          one: Callable[[Any, Any, dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    """`one` on each item's ProfileList entries; the hive committed if one changed."""
    hive = _open(request["hive"], write=True)
    plist = _profile_list(hive, request["hive"])
    results = [one(hive, plist, item) for item in items]
    if any(result["changed"] for result in results):
        hive.commit(None)
    return {"ok": True, "results": results}


def _remap_one(hive: Any, plist: Any, move: dict[str, Any]) -> dict[str, Any]:
    source, target, mode = move["source"], move["target"], move["mode"]
    old = hive.node_get_child(plist, source)
    new = hive.node_get_child(plist, target)
    result = {"source": source, "changed": False, "error": ""}
    if mode == "remove":
        if old and not new:
            result["error"] = (f"no profile entry for {target}: the only entry of"
                               f" {source} is not removed (run add or replace first)")
        elif old:
            hive.node_delete_child(old)
            result["changed"] = True
    elif old:
        if not new:
            _copy(hive, old, plist, target, bytes.fromhex(move["sid"]))
            result["changed"] = True
        if mode == "replace":
            if not hive.node_get_child(plist, source + BACKUP):
                _copy(hive, old, plist, source + BACKUP, None)
            hive.node_delete_child(hive.node_get_child(plist, source))
            result["changed"] = True
    return result


def _restore_one(hive: Any, plist: Any, pair: dict[str, Any]) -> dict[str, Any]:
    source, target = pair["source"], pair["target"]
    result = {"source": source, "changed": False, "error": ""}
    backup = hive.node_get_child(plist, source + BACKUP)
    if backup:
        if not hive.node_get_child(plist, source):
            _copy(hive, backup, plist, source, None)
        hive.node_delete_child(hive.node_get_child(plist, source + BACKUP))
        new = hive.node_get_child(plist, target)
        if new:
            hive.node_delete_child(new)
        result["changed"] = True
    return result


def check(request: dict[str, Any]) -> dict[str, Any]:
    """Read every key and value of the hive: one hivex cannot read is refused."""
    hive = _open(request["hive"], write=False)
    keys = values = 0
    todo = [hive.root()]
    while todo:
        node = todo.pop()
        keys += 1
        hive.node_name(node)
        for value in hive.node_values(node):
            hive.value_value(value)
            values += 1
        todo.extend(hive.node_children(node))
    return {"ok": True, "keys": keys, "values": values}


OPERATIONS = {"profiles": profiles, "remap": remap, "restore": restore, "check": check}


def main() -> None:
    for line in sys.stdin:
        try:
            request = json.loads(line)
            operation = OPERATIONS.get(request.get("op"))
            if operation is None:
                raise Refused("protocol", f"unknown op {request.get('op')!r}")
            _send(operation(request))
        except Refused as exc:
            _send({"ok": False, "error": {"kind": exc.kind, "message": str(exc)}})
        except Exception as exc:  # hivex's errors are RuntimeError/OSError with its text
            _send({"ok": False, "error": {"kind": type(exc).__name__, "message": str(exc)}})


if __name__ == "__main__":
    main()
