"""POST /invitations: B2B guests (https://learn.microsoft.com/graph/api/invitation-post).

The invited user is created at once with `userType` Guest (or Member when asked),
`externalUserState` PendingAcceptance, `creationType` Invitation, `mail` the invited address and
the UPN Entra gives external users: `alice@fabrikam.com` becomes
`alice_fabrikam.com#EXT#@{initial domain}`. Whether Microsoft would have e-mailed the invitation
(`sendInvitationMessage`) is recorded on the tenant for tests to assert.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from . import permissions as perm
from .errors import bad_request, required
from .graph import Call, Reply, Route
from .model import Record, new_id, now_iso
from .state import Invitation

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def invite(call: Call) -> Reply:
    perm.require(call.roles, perm.INVITE_USERS)
    body = call.json_body()
    email = body.get("invitedUserEmailAddress")
    redirect = body.get("inviteRedirectUrl")
    if not email:
        raise required("invitedUserEmailAddress", "Invitation")
    if not redirect:
        raise required("inviteRedirectUrl", "Invitation")
    if not isinstance(email, str) or not _EMAIL.match(email):
        raise bad_request(f"The specified email address '{email}' is invalid.")
    user_type = body.get("invitedUserType") or "Guest"
    if user_type not in ("Guest", "Member"):
        raise bad_request(f"Invalid value specified for property 'invitedUserType': "
                          f"'{user_type}'.")
    send = bool(body.get("sendInvitationMessage", False))
    tenant, directory = call.tenant, call.directory
    local, domain = email.rsplit("@", 1)
    if tenant.owns_domain(domain):
        raise bad_request("The invited user's email address is in a domain verified in this "
                          "organization; invite external users only.")
    existing = _existing(call, email)
    if existing is not None and existing.get("userType") != "Guest":
        raise bad_request("The invited user already exists in the directory as a member.")
    if existing is None:
        upn = f"{local}_{domain}#EXT#@{directory.initial_domain}"
        record: Record = {
            "id": new_id(),
            "accountEnabled": True,
            "displayName": body.get("invitedUserDisplayName") or local,
            "mail": email,
            "mailNickname": f"{local}_{domain}#EXT#",
            "otherMails": [email],
            "proxyAddresses": [f"SMTP:{email}"],
            "userPrincipalName": upn,
            "userType": user_type,
            "creationType": "Invitation",
            "externalUserState": "PendingAcceptance",
            "externalUserStateChangeDateTime": now_iso(),
        }
        directory.check_unique(record)
        directory.add("user", record)
        existing = record
    invitation = Invitation(new_id(), email, existing["id"], send, redirect, user_type)
    tenant.invitations.append(invitation)
    return Reply(201, _response(call, invitation, body, existing))


def _existing(call: Call, email: str) -> Record | None:
    directory = call.directory
    owner = directory.smtp.get(email.lower())
    if owner and directory.kind_of.get(owner) == "user":
        return directory.users[owner]
    return None


def _response(call: Call, invitation: Invitation, body: dict[str, Any], user: Record
              ) -> dict[str, Any]:
    ticket = quote(new_id(), safe="")
    redeem = (
        "https://login.microsoftonline.com/redeem?rd=https%3a%2f%2finvitations.microsoft.com"
        f"%2fredeem%2f%3ftenant%3d{call.tenant.id}%26user%3d{invitation.id}%26ticket%3d"
        f"{ticket}%26ver%3d2.0"
    )
    info = body.get("invitedUserMessageInfo") or {}
    return {
        "@odata.context": call.context("invitations/$entity"),
        "id": invitation.id,
        "inviteRedeemUrl": redeem,
        "invitedUserDisplayName": body.get("invitedUserDisplayName"),
        "invitedUserType": invitation.user_type,
        "invitedUserEmailAddress": invitation.email,
        "sendInvitationMessage": invitation.send_message,
        "resetRedemption": bool(body.get("resetRedemption", False)),
        "inviteRedirectUrl": invitation.redirect_url,
        "status": "PendingAcceptance",
        "invitedUserMessageInfo": {
            "messageLanguage": info.get("messageLanguage"),
            "customizedMessageBody": info.get("customizedMessageBody"),
            "ccRecipients": info.get("ccRecipients") or [
                {"emailAddress": {"name": None, "address": None}}],
        },
        "invitedUser": {"id": user["id"]},
    }


ROUTES = [Route("POST", ("invitations",), invite)]
