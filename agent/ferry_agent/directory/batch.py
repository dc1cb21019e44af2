"""Batched writes: many objects' changes in one call, each with its own result.

A batch is the one way Ferry writes AD: the connector hands a list of Writes to its session,
directly over LDAP or as one work item an agent carries out. Writes run in order on one
connection, or spread over a pool (apply_pooled) with each object's writes still in order;
each succeeds or fails alone, so one refused object never stops the others.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import ldap3

from ..dn import DNError, dn_key
from . import write as ad_write
from .errors import DirectoryError
from .read import exists
from .subtrees import WriteSubtrees, write_targets

WRITE_KINDS = frozenset({"create", "update", "move", "delete", "members"})
MAX_WRITE_CONNECTIONS = 16   # a DC serializes its writes: more only adds sessions to it


@dataclass(frozen=True)
class Write:
    """One object's change.

    create: object_type, attributes, password, must_change_password, enabled.
    update: attributes (None or [] clears one), enabled (None: leave as is).
    move: new_dn. delete: nothing more. members: add and remove (member DNs).
    parent: an OU to create first when it does not exist (creates and moves).
    """

    kind: str
    dn: str
    object_type: str = ""
    attributes: Mapping[str, list[str] | None] = field(default_factory=dict)
    enabled: bool | None = None
    new_dn: str = ""
    add: Sequence[str] = ()
    remove: Sequence[str] = ()
    password: str | None = field(default=None, repr=False)
    must_change_password: bool = False
    parent: str = ""


@dataclass(frozen=True)
class WriteResult:
    """What became of one Write: the new object's GUID for creates, or the server's refusal."""

    guid: str = ""
    error: DirectoryError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def apply(conn: ldap3.Connection, writes: Sequence[Write], *, check_first: bool = False,
          subtrees: WriteSubtrees | None = None) -> Iterator[WriteResult]:
    """Apply writes in order, yielding one result each.

    check_first: the batch may have been applied in part before (an agent died before it
    reported), so creates, moves and deletes look at the directory before acting again.
    subtrees: where writes may go (an agent's write_subtrees); a write that would change
    anything outside is refused before it is sent. None: no such limit (direct mode).
    Errors other than a refused object (a lost connection) end the batch by raising.
    """
    for item in writes:
        refused = None if subtrees is None else subtrees.refusal(
            item.kind, write_targets(item.kind, item.dn, item.new_dn, item.parent))
        if refused is not None:
            yield WriteResult(error=refused)
            continue
        try:
            yield WriteResult(guid=_apply_one(conn, item, check_first, subtrees))
        except DirectoryError as exc:
            yield WriteResult(error=exc)
        except ValueError as exc:  # a write the library refuses to send, e.g. a bad group scope
            yield WriteResult(error=DirectoryError(item.dn, item.kind, -1, str(exc)))


def _apply_one(conn: ldap3.Connection, item: Write, check_first: bool,
               subtrees: WriteSubtrees | None) -> str:
    if item.kind not in WRITE_KINDS:
        raise ValueError(f"unknown write kind {item.kind!r}; expected {sorted(WRITE_KINDS)}")
    if item.parent and item.kind in ("create", "move"):
        ad_write.ensure_ou(conn, item.parent,
                           allowed=None if subtrees is None else subtrees.refusal)
    if item.kind == "create":
        if check_first and exists(conn, item.dn):
            return ad_write.read_guid(conn, item.dn)
        attributes = {k: list(v) for k, v in item.attributes.items() if v}
        return ad_write.create(conn, item.object_type, item.dn, attributes,
                               password=item.password,
                               must_change_password=item.must_change_password,
                               enabled=item.enabled)
    if item.kind == "update":
        ad_write.update(conn, item.dn, dict(item.attributes))
        if item.enabled is not None:
            ad_write.set_enabled(conn, item.dn, item.enabled)
    elif item.kind == "move":
        if not (check_first and not exists(conn, item.dn) and exists(conn, item.new_dn)):
            ad_write.move(conn, item.dn, item.new_dn)
    elif item.kind == "delete":
        if not (check_first and not exists(conn, item.dn)):
            ad_write.delete(conn, item.dn)
    else:  # members: adding a present value or removing an absent one is a no-op
        if item.add:
            ad_write.add_members(conn, item.dn, item.add)
        if item.remove:
            ad_write.remove_members(conn, item.dn, item.remove)
    return ""


def lanes(writes: Sequence[Write]) -> list[list[int]]:
    """The writes' indexes in lanes that may run side by side, each lane in batch order.

    One object's writes share a lane (by every DN it has in the batch: a move joins its old
    and new DN), and so does a write naming an object (a member, a manager) that another
    write of the batch creates, moves or deletes. Lanes that create an OU (a write with
    `parent`) come first, since other writes may go into that OU without saying so.
    """
    root: dict[str, str] = {}

    def find(key: str) -> str:
        while root.setdefault(key, key) != key:
            root[key] = root[root[key]]
            key = root[key]
        return key

    def join(a: str, b: str) -> None:
        root[find(b)] = find(a)

    appearing = {_key(dn) for item in writes if item.kind in ("create", "move", "delete")
                 for dn in (item.dn, item.new_dn) if dn}
    keys = []
    for item in writes:
        key = _key(item.dn)
        find(key)
        if item.new_dn:
            join(key, _key(item.new_dn))
        named = [*item.add, *item.remove,
                 *(v for values in item.attributes.values() for v in values or () if "=" in v)]
        for dn in named:
            other = _key(dn)
            if other in appearing:
                join(key, other)
        keys.append(key)
    grouped: dict[str, list[int]] = {}
    for index, key in enumerate(keys):
        grouped.setdefault(find(key), []).append(index)
    ordered = list(grouped.values())
    return ([lane for lane in ordered if any(writes[i].parent for i in lane)]
            + [lane for lane in ordered if not any(writes[i].parent for i in lane)])


def apply_pooled(connection: Callable[[int], ldap3.Connection], size: int,
                 writes: Sequence[Write], *, check_first: bool = False,
                 subtrees: WriteSubtrees | None = None) -> list[WriteResult]:
    """apply() over up to `size` connections (`connection(i)` opens or returns the i-th),
    one thread each: lanes (see lanes()) are taken in turn, those creating OUs on the first
    connection before any other starts. Results come back in the writes' order.
    A lost connection in any thread ends the batch by raising, as apply() does."""
    groups = lanes(writes)
    size = max(1, min(size, MAX_WRITE_CONNECTIONS, len(groups)))
    if size == 1:
        return list(apply(connection(0), writes, check_first=check_first, subtrees=subtrees))
    results: list[WriteResult | None] = [None] * len(writes)
    first = [lane for lane in groups if any(writes[i].parent for i in lane)]
    pending = iter(groups[len(first):])
    lock = threading.Lock()
    failures: list[BaseException] = []

    def run(lane: list[int], conn: ldap3.Connection) -> None:
        done = apply(conn, [writes[i] for i in lane], check_first=check_first,
                     subtrees=subtrees)
        for index, result in zip(lane, done, strict=True):
            results[index] = result

    def worker(number: int) -> None:
        try:
            conn = connection(number)
            while True:
                with lock:
                    lane = None if failures else next(pending, None)
                if lane is None:
                    return
                run(lane, conn)
        except BaseException as exc:  # reported by the caller's thread, which raises it
            with lock:
                failures.append(exc)

    for lane in first:
        run(lane, connection(0))
    threads = [threading.Thread(target=worker, args=(n,), name=f"ferry-write-{n}",
                                daemon=True) for n in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]
    return [result if result is not None else WriteResult() for result in results]


def _key(dn: str) -> str:
    try:
        return dn_key(dn)
    except DNError:  # the server will refuse it; it only needs a lane of its own
        return dn.lower()
