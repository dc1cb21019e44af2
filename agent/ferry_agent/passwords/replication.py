"""NT hashes read from a source DC the way a DC replicates them: DRSUAPI IDL_DRSGetNCChanges.

Over ncacn_ip_tcp (the endpoint mapper on 135 names the port), sealed (PKT_PRIVACY), NTLM:
no SMB is needed on the source. The account needs "Replicating Directory Changes" and
"Replicating Directory Changes All" on the domain root. Three things Samba needs that
impacket's own DCSync does not do: no PrefixTableDest (Samba rejects impacket's table, which
has no schemaInfo entry) so ATTIDs go in the standard prefix numbering; uuidInvocIdSrc zero
or the DC's invocationId (anything else restarts the read from zero); and Kerberos is not
used (impacket's tickets fail against Samba), NTLM is.

Only user accounts come back (not computers, trusts or built-in accounts below RID 1000:
Ferry never migrates those, so their hashes are never shipped anywhere), and only when their
NT hash came back. impacket is imported inside the functions that use it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..directory.guid import guid_from_bytes, normalize_guid
from ..directory.values import sid_from_bytes
from .endpoint import DcEndpoint
from .errors import PasswordSyncError
from .rpc import (
    ACCESS_DENIED_CODES,
    CallEnded,
    LogonRefused,
    RpcFault,
    Unreachable,
    call,
    logon_refused,
    tcp_binding,
)
from .watermark import ReplicationWatermark, decode

GET_CHANGES = "Replicating Directory Changes"          # DS-Replication-Get-Changes
GET_CHANGES_ALL = "Replicating Directory Changes All"  # DS-Replication-Get-Changes-All
# Objects per GetNCChanges answer. impacket parses the answer's object list recursively,
# two to three frames an object: 200 stay well inside Python's default recursion limit
# (so nothing here raises it for the whole process), and the answers come as fast.
CHUNK_OBJECTS = 200
SAM_NORMAL_USER_ACCOUNT = 0x30000000
FIRST_ASSIGNED_RID = 1000
DRSUAPI_INTERFACE = "e3514235-4b06-11d1-ab04-00c04fc2dcd2"
# The attributes asked for, by OID: what an answer's ATTIDs are matched against.
SAM_ACCOUNT_NAME = "1.2.840.113556.1.4.221"
SAM_ACCOUNT_TYPE = "1.2.840.113556.1.4.302"
UNICODE_PWD = "1.2.840.113556.1.4.90"
# MS-DRSR 5.16.4: the prefixes every DC's table starts with, at these indexes.
_STANDARD_PREFIXES = {"2.5.4": 0x0000, "1.2.840.113556.1.2": 0x0008,
                      "1.2.840.113556.1.4": 0x0009}
# DRS_EXTENSIONS a client needs for V8 requests and V6 answers with strongly encrypted secrets.
_EXT_GETCHGREQ_V6 = 0x00000040
_EXT_GETCHGREPLY_V6 = 0x04000000
_EXT_GETCHGREQ_V8 = 0x01000000
_EXT_STRONG_ENCRYPTION = 0x00008000
_DRS_INIT_SYNC = 0x00000020
_DRS_WRIT_REP = 0x00000010
_EXOP_REPL_OBJ = 6
_EXOP_ERR_SUCCESS = 1
# What an EXOP_REPL_OBJ of a GUID the DC does not have gets: Samba answers DRA_GENERIC
# (it finds no DN for the GUID), Windows DRA_BAD_DN or OBJ_NOT_FOUND.
_NO_SUCH_OBJECT_CODES = frozenset({0x20F7, 0x20EF, 0x2030})


@dataclass(frozen=True)
class NtHash:
    """One user account's NT hash (16 bytes), with the anchors to find its joined target."""

    guid: str   # objectGUID, lowercase canonical
    sid: str    # objectSid, S-1-5-21-...
    sam: str    # sAMAccountName, for messages
    nt_hash: bytes = field(repr=False)


def standard_attid(oid: str) -> int:
    """The ATTRTYP of `oid` in the standard prefix numbering (MS-DRSR 5.16.4)."""
    head, _, last = oid.rpartition(".")
    if head not in _STANDARD_PREFIXES:
        raise ValueError(f"{oid} is not under a standard prefix")
    value = int(last)
    low = value % 16384 + (32768 if value >= 16384 else 0)
    return (_STANDARD_PREFIXES[head] << 16) | low


class PasswordChanges:
    """The NT hashes of one read, streamed: iterate once (a chunk of CHUNK_OBJECTS objects
    at a time is in memory, whatever the domain's size); `watermark` is set when the
    iteration has ended. Use as a context manager to close the connection early."""

    def __init__(self, endpoint: DcEndpoint, since: ReplicationWatermark | None):
        self.endpoint = endpoint
        self.since = since
        self._watermark: str | None = None
        self._started = False
        self._stream: Iterator[NtHash] | None = None

    @property
    def watermark(self) -> str:
        """The watermark to give the next `changes()` call (only once the read is complete)."""
        if self._watermark is None:
            raise PasswordSyncError(f"{self.endpoint.describe()}: the password read has not"
                                    " ended; iterate it to the end before taking its watermark")
        return self._watermark

    def __iter__(self) -> Iterator[NtHash]:
        if self._started:
            raise PasswordSyncError("a password read can be iterated once; call changes() again")
        self._started = True
        self._stream = self._read()
        return self._stream

    def close(self) -> None:
        """End the read early (closes the connection); the watermark stays unset."""
        if isinstance(self._stream, Generator):
            self._stream.close()

    def __enter__(self) -> PasswordChanges:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _read(self) -> Iterator[NtHash]:
        with _DrsSession.open(self.endpoint) as session:
            since = self.since
            usn = (since.high_obj_update, since.high_prop_update) if since else (0, 0)
            invocation = since.invocation_id if since else ""
            cursors = since.cursors if since else ()
            while True:
                answer = session.get_nc_changes(usn, invocation, cursors)
                for record in answer.records:
                    found = session.complete(record)
                    if found is not None:
                        yield found
                usn, invocation = answer.usn_to, answer.invocation_id
                if not answer.more:
                    break
        mark = ReplicationWatermark(self.endpoint.base_dn, invocation, *usn,
                                    answer.cursors or cursors)
        self._watermark = mark.encode()


def changes(endpoint: DcEndpoint, watermark: str | None = None) -> PasswordChanges:
    """The NT hashes of every user account of the domain (watermark None), or of those whose
    password changed since `watermark`; a change of anything else yields nothing. The
    watermark is checked here, before the DC is contacted."""
    since = decode(watermark, endpoint.base_dn) if watermark is not None else None
    return PasswordChanges(endpoint, since)


def hashes_of(endpoint: DcEndpoint, guids: Iterable[str]) -> Iterator[NtHash]:
    """The NT hash of each user account named by objectGUID, one EXOP_REPL_OBJ each (for
    accounts just joined, whose password did not change since the watermark). GUIDs of no
    object, of no user account or of one without an NT hash yield nothing."""
    wanted = [_checked_guid(guid) for guid in guids]
    if not wanted:
        return
    with _DrsSession.open(endpoint) as session:
        for guid in wanted:
            record = session.replicate_object(guid)
            if record is not None and record.is_user and record.nt_hash:
                yield record.hash()


@dataclass(frozen=True)
class ReplicationProbe:
    """What `ferry check` shows: `state` is ok, missing-rights, logon-refused, unreachable or
    error (anything else the DC answered); `message` says what to fix."""

    state: str
    message: str

    @property
    def ok(self) -> bool:
        return self.state == "ok"


def probe_replication(endpoint: DcEndpoint) -> ReplicationProbe:
    """Whether `endpoint.user` may read password hashes from this DC: one EXOP_REPL_OBJ of
    the domain root (it has no secrets) asking for the password attributes."""
    try:
        with _DrsSession.open(endpoint) as session:
            missing = session.missing_rights()
    except Unreachable as exc:
        return ReplicationProbe("unreachable", str(exc))
    except LogonRefused as exc:
        return ReplicationProbe("logon-refused", str(exc))
    except PasswordSyncError as exc:
        return ReplicationProbe("error", str(exc))
    if missing:
        return ReplicationProbe("missing-rights", _rights_message(endpoint, missing))
    return ReplicationProbe("ok", f"{endpoint.describe()}: {endpoint.user} may replicate"
                                  f" password hashes of {endpoint.base_dn}")


def _rights_message(endpoint: DcEndpoint, missing: list[str]) -> str:
    """What to grant: both rights are needed, `missing` names the one the DC refused."""
    both = "grant both" if GET_CHANGES in missing else "grant it"
    return (f'{endpoint.describe()}: {endpoint.user} lacks "{missing[0]}" on'
            f' {endpoint.base_dn} (reading password hashes needs "{GET_CHANGES}" and'
            f' "{GET_CHANGES_ALL}"); {both} to {endpoint.user} on the domain root (Active'
            " Directory Users and Computers: the domain's Properties > Security, or"
            " `dsacls` / `samba-tool dsacl set`)")


def _checked_guid(guid: str) -> str:
    try:
        return normalize_guid(guid)
    except (ValueError, AttributeError, TypeError):
        raise PasswordSyncError(f"hashes_of: {guid!r} is not an objectGUID (expected a UUID"
                                " like 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0)") from None


# --------------------------------------------------------------------------- the DRS session


@dataclass
class _Record:
    """One object of an answer: what came back of the attributes asked for."""

    guid: str
    sid: str
    dn: str
    sam: str | None
    account_type: int | None
    nt_hash: bytes | None = field(repr=False)

    @property
    def rid(self) -> int:
        return int(self.sid.rsplit("-", 1)[1]) if self.sid else 0

    @property
    def is_user(self) -> bool:
        return self.account_type == SAM_NORMAL_USER_ACCOUNT and self.rid >= FIRST_ASSIGNED_RID

    def hash(self) -> NtHash:
        assert self.nt_hash is not None
        return NtHash(self.guid, self.sid, self.sam or "", self.nt_hash)


@dataclass
class _Answer:
    records: list[_Record]
    usn_to: tuple[int, int]
    invocation_id: str
    more: bool
    cursors: tuple[tuple[str, int], ...]


class _NoSuchObject(RpcFault):
    """An object read by GUID that the DC does not have."""


class _DrsSession:
    """One sealed DRSUAPI connection with a DRSBind handle for the NC read and another for
    per-object reads: Samba keeps a chunked read's state per handle, so an object read in
    between must not use the read's handle."""

    def __init__(self, endpoint: DcEndpoint, dce: Any):
        self.endpoint = endpoint
        self.dce = dce
        self.nc_handle = self._bind()
        self.object_handle: Any = None
        self.dsa_guid = self._dsa_guid()

    @classmethod
    @contextlib.contextmanager
    def open(cls, endpoint: DcEndpoint) -> Iterator[_DrsSession]:
        from impacket.dcerpc.v5 import drsuapi, transport
        from impacket.dcerpc.v5.rpcrt import RPC_C_AUTHN_LEVEL_PKT_PRIVACY, DCERPCException

        from .rpc import unreachable

        binding = tcp_binding(endpoint, drsuapi.MSRPC_UUID_DRSUAPI, "DRSUAPI")
        rpc = transport.DCERPCTransportFactory(binding)
        rpc.set_connect_timeout(endpoint.connect_timeout)
        rpc.set_credentials(endpoint.account, endpoint.password, endpoint.ntlm_domain, "", "")
        dce = rpc.get_dce_rpc()
        dce.set_auth_level(RPC_C_AUTHN_LEVEL_PKT_PRIVACY)
        try:
            dce.connect()
        except (DCERPCException, OSError) as exc:
            raise unreachable(endpoint, rpc.get_dport(), "DRSUAPI", exc) from None
        try:
            rpc.get_socket().settimeout(endpoint.receive_timeout)
            try:
                dce.bind(drsuapi.MSRPC_UUID_DRSUAPI)
                session = cls(endpoint, dce)
            except CallEnded as exc:
                if exc.logon_failed:  # the first call after bind (DRSBind) carries the logon
                    raise logon_refused(endpoint) from None
                raise
            except DCERPCException as exc:
                raise PasswordSyncError(f"{endpoint.describe()}: DRSUAPI bind failed: {exc}"
                                        ) from None
            yield session
        finally:
            with contextlib.suppress(Exception):
                dce.disconnect()

    # -- requests

    def _bind(self) -> Any:
        from impacket.dcerpc.v5 import drsuapi

        request = drsuapi.DRSBind()
        request["puuidClientDsa"] = drsuapi.NTDSAPI_CLIENT_GUID
        ext = drsuapi.DRS_EXTENSIONS_INT()
        ext["cb"] = len(ext)
        ext["dwFlags"] = (_EXT_GETCHGREQ_V6 | _EXT_GETCHGREPLY_V6 | _EXT_GETCHGREQ_V8
                          | _EXT_STRONG_ENCRYPTION)
        ext["SiteObjGuid"] = drsuapi.NULLGUID
        ext["Pid"] = 0
        ext["dwReplEpoch"] = 0
        ext["dwFlagsExt"] = 0
        ext["ConfigObjGUID"] = drsuapi.NULLGUID
        ext["dwExtCaps"] = 0xFFFFFFFF
        request["pextClient"]["cb"] = len(ext)
        request["pextClient"]["rgb"] = list(ext.getData())
        answer = call(self.dce, request, f"{self.endpoint.describe()}: DRSBind")
        epoch = self._server_epoch(answer)
        if epoch:  # the forest was restructured: the DC answers only binds of its epoch
            ext["dwReplEpoch"] = epoch
            request["pextClient"]["rgb"] = list(ext.getData())
            answer = call(self.dce, request, f"{self.endpoint.describe()}: DRSBind")
        return answer["phDrs"]

    @staticmethod
    def _server_epoch(answer: Any) -> int:
        from impacket.dcerpc.v5 import drsuapi

        ext = drsuapi.DRS_EXTENSIONS_INT()
        raw = b"".join(answer["ppextServer"]["rgb"])
        ext.fromString(raw + b"\x00" * max(0, len(ext) - answer["ppextServer"]["cb"]))
        return int(ext["dwReplEpoch"])

    def _dsa_guid(self) -> Any:
        """The DC's NTDS Settings objectGUID, sent as the destination DSA (as a DC would)."""
        from impacket.dcerpc.v5 import drsuapi

        request = drsuapi.DRSDomainControllerInfo()
        request["hDrs"] = self.nc_handle
        request["dwInVersion"] = 1
        request["pmsgIn"]["tag"] = 1
        request["pmsgIn"]["V1"]["Domain"] = self.endpoint.realm + "\x00"
        request["pmsgIn"]["V1"]["InfoLevel"] = 2
        answer = call(self.dce, request, f"{self.endpoint.describe()}: DomainControllerInfo")
        items = answer["pmsgOut"]["V2"]["rItems"]
        if not items:
            raise PasswordSyncError(f"{self.endpoint.describe()}: the DC lists no domain"
                                    f" controller of {self.endpoint.realm}; check base_dn")
        return items[0]["NtdsDsaObjectGuid"]

    def get_nc_changes(self, usn: tuple[int, int], invocation: str,
                       cursors: tuple[tuple[str, int], ...]) -> _Answer:
        """One chunk of the domain NC's changes after `usn` and the up-to-dateness `cursors`
        (all of it from (0, 0) and none)."""
        flags = _DRS_WRIT_REP | (0 if usn != (0, 0) else _DRS_INIT_SYNC)
        request = self._request(self._dsname(dn=self.endpoint.base_dn), 0, usn, invocation,
                                CHUNK_OBJECTS, flags, (SAM_ACCOUNT_NAME, SAM_ACCOUNT_TYPE,
                                                       UNICODE_PWD), self.nc_handle, cursors)
        reply = self._answer(request, 0, "read the domain's password changes")
        return _Answer(
            records=self._records(reply),
            usn_to=(int(reply["usnvecTo"]["usnHighObjUpdate"]),
                    int(reply["usnvecTo"]["usnHighPropUpdate"])),
            invocation_id=str(uuid.UUID(bytes_le=bytes(reply["uuidInvocIdSrc"]))),
            more=bool(reply["fMoreData"]),
            cursors=self._cursors(reply),
        )

    @staticmethod
    def _vector(cursors: tuple[tuple[str, int], ...]) -> Any:
        from impacket.dcerpc.v5 import drsuapi

        vector = drsuapi.UPTODATE_VECTOR_V1_EXT()
        vector["dwVersion"] = 1
        vector["dwReserved1"] = 0
        vector["cNumCursors"] = len(cursors)
        vector["dwReserved2"] = 0
        for dsa, seen in cursors:
            cursor = drsuapi.UPTODATE_CURSOR_V1()
            cursor["uuidDsa"] = uuid.UUID(dsa).bytes_le
            cursor["usnHighPropUpdate"] = seen
            vector["rgCursors"].append(cursor)
        return vector

    @staticmethod
    def _cursors(reply: Any) -> tuple[tuple[str, int], ...]:
        """The DC's up-to-dateness vector (sent with the last chunk only)."""
        vector = reply["pUpToDateVecSrc"]
        if not hasattr(vector, "fields"):
            return ()
        return tuple((str(uuid.UUID(bytes_le=bytes(c["uuidDsa"]))), int(c["usnHighPropUpdate"]))
                     for c in vector["rgCursors"])

    def replicate_object(self, guid: str,
                         attributes: tuple[str, ...] = (SAM_ACCOUNT_NAME, SAM_ACCOUNT_TYPE,
                                                        UNICODE_PWD)) -> _Record | None:
        """One object by objectGUID, every attribute asked for (EXOP_REPL_OBJ); None when
        the DC has no such object."""
        if self.object_handle is None:
            self.object_handle = self._bind()
        request = self._request(self._dsname(guid=guid), _EXOP_REPL_OBJ, (0, 0), "", 1,
                                _DRS_WRIT_REP, attributes, self.object_handle)
        try:
            reply = self._answer(request, _EXOP_REPL_OBJ, f"read object {guid}")
        except _NoSuchObject:
            return None
        records = self._records(reply)
        return records[0] if records else None

    def complete(self, record: _Record) -> NtHash | None:
        """The record's NtHash if it is a user account's and its NT hash came back. A delta
        carries only the changed attributes, so for a changed password the account's name
        and type are read once more (by object, on the other handle)."""
        if not record.nt_hash or (record.sid and record.rid < FIRST_ASSIGNED_RID):
            return None  # is_user refuses built-in accounts too; this spares the read below
        if record.account_type is None or record.sam is None:
            found = self.replicate_object(record.guid, (SAM_ACCOUNT_NAME, SAM_ACCOUNT_TYPE))
            if found is None:
                return None  # deleted since the chunk was read
            record.sam, record.account_type = found.sam, found.account_type
        return record.hash() if record.is_user else None

    def missing_rights(self) -> list[str]:
        """The replication right the account lacks on the domain root ([] if none): password
        attributes need both rights, any other attribute "Replicating Directory Changes"."""
        if self._may_read(UNICODE_PWD):
            return []
        return [GET_CHANGES_ALL] if self._may_read(SAM_ACCOUNT_NAME) else [GET_CHANGES]

    def _may_read(self, oid: str) -> bool:
        request = self._request(self._dsname(dn=self.endpoint.base_dn), _EXOP_REPL_OBJ, (0, 0),
                                "", 1, _DRS_WRIT_REP, (oid,), self.nc_handle)
        try:
            call(self.dce, request, f"{self.endpoint.describe()}: read the domain root")
        except RpcFault as exc:
            if exc.code not in ACCESS_DENIED_CODES:
                raise
            return False
        return True

    def _answer(self, request: Any, exop: int, what: str) -> Any:
        """The V6 answer to a GetNCChanges; access denied becomes the rights it lacks."""
        try:
            answer = call(self.dce, request, f"{self.endpoint.describe()}: {what}")
        except RpcFault as exc:
            if exc.code in ACCESS_DENIED_CODES:
                missing = self.missing_rights() or [GET_CHANGES_ALL]
                raise RpcFault(_rights_message(self.endpoint, missing), exc.code) from None
            if exop and exc.code in _NO_SUCH_OBJECT_CODES:
                raise _NoSuchObject(str(exc), exc.code) from None
            raise
        version = int(answer["pdwOutVersion"])
        if version != 6:
            raise PasswordSyncError(f"{self.endpoint.describe()}: {what}: the DC answered"
                                    f" GetNCChanges version {version}; only 6 is understood")
        reply = answer["pmsgOut"]["V6"]
        if exop and int(reply["ulExtendedRet"]) != _EXOP_ERR_SUCCESS:
            raise PasswordSyncError(f"{self.endpoint.describe()}: {what}: the DC answered"
                                    f" extended operation error {int(reply['ulExtendedRet'])}")
        return reply

    def _request(self, nc: Any, exop: int, usn: tuple[int, int], invocation: str,
                 objects: int, flags: int, attributes: tuple[str, ...], handle: Any,
                 cursors: tuple[tuple[str, int], ...] = ()) -> Any:
        from impacket.dcerpc.v5 import drsuapi
        from impacket.dcerpc.v5.dtypes import NULL

        request = drsuapi.DRSGetNCChanges()
        request["hDrs"] = handle
        request["dwInVersion"] = 8
        request["pmsgIn"]["tag"] = 8
        body = request["pmsgIn"]["V8"]
        body["uuidDsaObjDest"] = self.dsa_guid
        body["uuidInvocIdSrc"] = (uuid.UUID(invocation).bytes_le if invocation
                                  else drsuapi.NULLGUID)
        body["pNC"] = nc
        body["usnvecFrom"]["usnHighObjUpdate"] = usn[0]
        body["usnvecFrom"]["usnReserved"] = 0
        body["usnvecFrom"]["usnHighPropUpdate"] = usn[1]
        # Set once: impacket drops a struct assigned to a pointer field already set to NULL.
        body["pUpToDateVecDest"] = self._vector(cursors) if cursors else NULL
        body["ulFlags"] = flags
        body["cMaxObjects"] = objects
        body["cMaxBytes"] = 0
        body["ulExtendedOp"] = exop
        wanted = drsuapi.PARTIAL_ATTR_VECTOR_V1_EXT()
        wanted["dwVersion"] = 1
        wanted["cAttrs"] = len(attributes)
        for oid in sorted(attributes, key=standard_attid):  # the DC binary-searches them
            attid = drsuapi.ATTRTYP()
            attid["Data"] = standard_attid(oid)
            wanted["rgPartialAttr"].append(attid)
        body["pPartialAttrSet"] = wanted
        body["pPartialAttrSetEx1"] = NULL
        body["PrefixTableDest"]["PrefixCount"] = 0  # see the module docstring
        body["PrefixTableDest"]["pPrefixEntry"] = []
        return request

    @staticmethod
    def _dsname(dn: str = "", guid: str = "") -> Any:
        from impacket.dcerpc.v5 import drsuapi

        name = drsuapi.DSNAME()
        name["SidLen"] = 0
        name["Guid"] = uuid.UUID(guid).bytes_le if guid else drsuapi.NULLGUID
        name["Sid"] = ""
        name["NameLen"] = len(dn)
        name["StringName"] = dn + "\x00"
        name["structLen"] = len(name.getData())
        return name

    # -- answers

    def _records(self, reply: Any) -> list[_Record]:
        from impacket.dcerpc.v5 import drsuapi

        prefixes = reply["PrefixTableSrc"]["pPrefixEntry"]
        names: dict[int, str | None] = {}
        records: list[_Record] = []
        item = reply["pObjects"]
        for _ in range(int(reply["cNumObjects"])):
            if not hasattr(item, "fields"):
                break
            entry = item["Entinf"]
            records.append(self._record(entry, prefixes, names, drsuapi))
            item = item["pNextEntInf"]
        return records

    def _record(self, entry: Any, prefixes: Any, names: dict[int, str | None],
                drsuapi: Any) -> _Record:
        name = entry["pName"]
        sid_len = int(name["SidLen"])
        sid = sid_from_bytes(bytes(name["Sid"])[:sid_len]) if sid_len else ""
        record = _Record(guid=guid_from_bytes(bytes(name["Guid"])), sid=sid,
                         dn=str(name["StringName"]).rstrip("\x00"), sam=None,
                         account_type=None, nt_hash=None)
        for attribute in entry["AttrBlock"]["pAttr"]:
            attid = int(attribute["attrTyp"])
            if attid not in names:
                names[attid] = drsuapi.OidFromAttid(prefixes, attid)
            values = attribute["AttrVal"]
            if not int(values["valCount"]):
                continue
            raw = b"".join(values["pAVal"][0]["pVal"])
            oid = names[attid]
            if oid == SAM_ACCOUNT_NAME:
                record.sam = raw.decode("utf-16-le")
            elif oid == SAM_ACCOUNT_TYPE:
                record.account_type = int.from_bytes(raw[:4], "little")
            elif oid == UNICODE_PWD and record.sid:
                record.nt_hash = self._nt_hash(raw, record, drsuapi)
        return record

    def _nt_hash(self, raw: bytes, record: _Record, drsuapi: Any) -> bytes:
        """unicodePwd as replicated: encrypted with the session key (MD5 + RC4), inside it
        the hash DES-encrypted with keys from the RID (MS-DRSR 4.1.10.6.11 / MS-SAMR)."""
        try:
            plain = drsuapi.DecryptAttributeValue(self.dce, raw)
            value = bytes(drsuapi.removeDESLayer(plain[:16], record.rid))
        except Exception:  # the value must not reach any message: say whose it was
            raise PasswordSyncError(f"{self.endpoint.describe()}: the NT hash of {record.dn}"
                                    " did not decrypt with this session's key") from None
        if len(value) != 16:
            raise PasswordSyncError(f"{self.endpoint.describe()}: the NT hash of {record.dn}"
                                    " is not 16 bytes")
        return value
