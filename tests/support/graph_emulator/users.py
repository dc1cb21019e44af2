"""/users: list, get (by id or userPrincipalName), create, update, delete (to deleted items).

Create follows https://learn.microsoft.com/graph/api/user-post-users: accountEnabled,
displayName, mailNickname, passwordProfile and userPrincipalName are required; the UPN's
domain must be one of the tenant's verified domains; the password must meet Entra's complexity
rule (8 to 256 characters, three of: lower case, upper case, digits, symbols).
"""

from __future__ import annotations

import re

from . import permissions as perm
from .errors import GraphError, bad_request, forbidden, invalid_value, required
from .graph import Call, Reply, Route, collection, entity
from .model import USER, USER_READ_ONLY, Record, new_id
from .odata import split_select
from .state import Tenant

REQUIRED = ("accountEnabled", "displayName", "mailNickname", "passwordProfile",
            "userPrincipalName")
_NICKNAME_BAD = re.compile(r"[@()\\\[\]\";:<>,\s]")
_UPN_LOCAL = re.compile(r"^[A-Za-z0-9'._~!#$%&*+/=?^`{|}-]+$")


def list_users(call: Call) -> Reply:
    perm.require(call.roles, perm.READ_USERS)
    users = call.directory.users
    return collection(call, USER, lambda: (("user", r) for r in users.values()), "users")


def get_user(call: Call, key: str) -> Reply:
    perm.require(call.roles, perm.READ_USERS)
    record = call.directory.get("user", key)
    select = split_select(call.params.get("$select"))
    USER.check_select(select)
    return entity(call, USER, record, "users/$entity", select=select)


def create_user(call: Call) -> Reply:
    perm.require(call.roles, perm.CREATE_USERS)
    body = call.json_body()
    USER.check_writable(body, USER_READ_ONLY)
    for name in REQUIRED:
        if body.get(name) is None:
            raise required(name, "User")
    record: Record = {k: v for k, v in body.items() if not k.endswith("@odata.bind")}
    record["id"] = new_id()
    record.setdefault("userType", "Member")
    _validate(call.tenant, record, body)
    call.directory.check_unique(record)
    call.directory.add("user", record)
    return entity(call, USER, record, "users/$entity", status=201)


def update_user(call: Call, key: str) -> Reply:
    body = call.json_body()
    _require_update(call.roles, body)
    directory = call.directory
    record = directory.get("user", key)
    USER.check_writable(body, USER_READ_ONLY)
    merged = {**record, **body}
    _validate(call.tenant, merged, body)
    directory.update("user", record["id"], body)
    return Reply(204)


def delete_user(call: Call, key: str) -> Reply:
    perm.require(call.roles, perm.DELETE_USERS)
    record = call.directory.get("user", key)
    call.directory.soft_delete("user", record["id"])
    return Reply(204)


def _require_update(roles: frozenset[str], body: Record) -> None:
    if "passwordProfile" in body:
        perm.require(roles, perm.UPDATE_PASSWORDS)
    if roles & {"User.ReadWrite.All", "Directory.ReadWrite.All"}:
        return
    if set(body) <= {"accountEnabled"} and "User.EnableDisableAccount.All" in roles:
        return
    if set(body) <= {"identities"} and "User.ManageIdentities.All" in roles:
        return
    raise forbidden()


def _validate(tenant: Tenant, record: Record, changes: Record) -> None:
    """Checks on the properties being set (`changes`), in the context of the whole record."""
    if "displayName" in changes and not changes["displayName"]:
        raise invalid_value("displayName", "User")
    if "accountEnabled" in changes and not isinstance(changes["accountEnabled"], bool):
        raise invalid_value("accountEnabled", "User")
    if "mailNickname" in changes:
        nickname = changes["mailNickname"]
        if not isinstance(nickname, str) or not nickname or len(nickname) > 64 or \
                _NICKNAME_BAD.search(nickname):
            raise invalid_value("mailNickname", "User")
    if "userType" in changes and changes["userType"] not in ("Member", "Guest"):
        raise invalid_value("userType", "User")
    if "userPrincipalName" in changes:
        _check_upn(tenant, changes["userPrincipalName"])
    if "passwordProfile" in changes:
        profile = changes["passwordProfile"]
        if not isinstance(profile, dict) or not isinstance(profile.get("password"), str):
            raise invalid_value("passwordProfile", "User")
        check_password(profile["password"])


def _check_upn(tenant: Tenant, upn: object) -> None:
    if not isinstance(upn, str) or upn.count("@") != 1:
        raise invalid_value("userPrincipalName", "User")
    local, domain = upn.split("@")
    if not local or len(local) > 113 or not _UPN_LOCAL.match(local) or local.startswith(".") \
            or local.endswith("."):
        raise invalid_value("userPrincipalName", "User")
    if not tenant.owns_domain(domain):
        message = ("The domain portion of the userPrincipalName property is invalid. You must "
                   "use one of the verified domain names in your organization.")
        raise GraphError(400, "Request_BadRequest", message, details=[
            {"code": "InvalidValue", "message": message, "target": "userPrincipalName"},
        ])


def check_password(password: str) -> None:
    classes = sum((
        any(c.islower() for c in password),
        any(c.isupper() for c in password),
        any(c.isdigit() for c in password),
        any(not c.isalnum() for c in password),
    ))
    if not 8 <= len(password) <= 256 or classes < 3:
        raise bad_request(
            "The specified password does not comply with password complexity requirements. "
            "Please provide a different password."
        )


ROUTES = [
    Route("GET", ("users",), list_users),
    Route("POST", ("users",), create_user),
    Route("GET", ("users", "{}"), get_user),
    Route("PATCH", ("users", "{}"), update_user),
    Route("DELETE", ("users", "{}"), delete_user),
]
