"""Which properties each directory resource has, which Graph returns by default, and how a
stored record becomes a JSON object.

Records are stored sparse (only the properties that were set); `shape` fills the rest with
null or [] as Graph does. Property names are Graph v1.0's, case-sensitive.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .errors import GraphError

Record = dict[str, Any]

# Collection-valued properties default to [] instead of null.
COLLECTIONS = frozenset({
    "businessPhones", "proxyAddresses", "otherMails", "identities", "imAddresses",
    "groupTypes", "assignedLicenses", "assignedPlans", "provisionedPlans", "alternativeSecurityIds",
    "physicalIds", "systemLabels", "extensionAttributes",
})


@dataclass(frozen=True)
class Resource:
    name: str  # the type name in messages: 'User'
    entity_set: str  # the collection in @odata.context: 'users'
    odata_type: str  # '#microsoft.graph.user'
    properties: frozenset[str]
    default_select: tuple[str, ...] | None  # None: every stored property
    write_only: frozenset[str] = frozenset()

    def shape(self, record: Record, select: Sequence[str] | None) -> Record:
        """The JSON object for `record` with `select` (or the default set)."""
        names: Iterable[str]
        if select:
            names = select
        elif self.default_select is not None:
            names = self.default_select
        else:
            names = [n for n in record if n not in self.write_only]
        out: Record = {}
        for name in names:
            if name in self.write_only:
                continue
            value = record.get(name)
            if value is None and name in COLLECTIONS:
                value = []
            out[name] = value
        if "id" not in out:
            out["id"] = record["id"]
        return out

    def check_select(self, select: Sequence[str] | None) -> None:
        for name in select or ():
            if name not in self.properties and not name.startswith("extension_"):
                raise GraphError(
                    400,
                    "BadRequest",
                    f"Could not find a property named '{name}' on type "
                    f"'microsoft.graph.{self.odata_type.rsplit('.', 1)[-1]}'.",
                )

    def check_writable(self, body: Record, read_only: frozenset[str]) -> None:
        for name in body:
            if name.endswith("@odata.bind") or name.startswith("extension_"):
                continue
            if name in read_only:
                raise GraphError(
                    400, "Request_BadRequest", f"Property '{name}' is read-only and cannot be set."
                )
            if name not in self.properties:
                raise GraphError(400, "Request_BadRequest", f"Invalid property '{name}'.")


USER = Resource(
    name="User",
    entity_set="users",
    odata_type="#microsoft.graph.user",
    properties=frozenset({
        "id", "accountEnabled", "ageGroup", "businessPhones", "city", "companyName", "country",
        "createdDateTime", "creationType", "deletedDateTime", "department", "displayName",
        "employeeHireDate", "employeeId", "employeeLeaveDateTime", "employeeType",
        "externalUserState", "externalUserStateChangeDateTime", "faxNumber", "givenName",
        "identities", "imAddresses", "jobTitle", "mail", "mailNickname", "mobilePhone",
        "officeLocation", "onPremisesDistinguishedName", "onPremisesDomainName",
        "onPremisesExtensionAttributes", "onPremisesImmutableId", "onPremisesLastSyncDateTime",
        "onPremisesSamAccountName", "onPremisesSecurityIdentifier", "onPremisesSyncEnabled",
        "onPremisesUserPrincipalName", "otherMails", "passwordPolicies", "passwordProfile",
        "postalCode", "preferredDataLocation", "preferredLanguage", "proxyAddresses",
        "securityIdentifier", "showInAddressList", "state", "streetAddress", "surname",
        "usageLocation", "userPrincipalName", "userType",
    }),
    default_select=(
        "businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
        "officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id",
    ),
    write_only=frozenset({"passwordProfile"}),
)
USER_READ_ONLY = frozenset({
    "id", "createdDateTime", "creationType", "deletedDateTime", "externalUserStateChangeDateTime",
    "onPremisesDistinguishedName", "onPremisesDomainName", "onPremisesLastSyncDateTime",
    "onPremisesSamAccountName", "onPremisesSecurityIdentifier", "onPremisesSyncEnabled",
    "onPremisesUserPrincipalName", "proxyAddresses", "securityIdentifier", "externalUserState",
})

GROUP = Resource(
    name="Group",
    entity_set="groups",
    odata_type="#microsoft.graph.group",
    properties=frozenset({
        "id", "classification", "createdDateTime", "deletedDateTime", "description",
        "displayName", "expirationDateTime", "groupTypes", "isAssignableToRole", "mail",
        "mailEnabled", "mailNickname", "membershipRule", "membershipRuleProcessingState",
        "onPremisesDomainName", "onPremisesLastSyncDateTime", "onPremisesSamAccountName",
        "onPremisesSecurityIdentifier", "onPremisesSyncEnabled", "preferredDataLocation",
        "preferredLanguage", "proxyAddresses", "renewedDateTime", "securityEnabled",
        "securityIdentifier", "theme", "visibility",
    }),
    default_select=None,
)
GROUP_READ_ONLY = frozenset({
    "id", "createdDateTime", "deletedDateTime", "mail", "onPremisesDomainName",
    "onPremisesLastSyncDateTime", "onPremisesSamAccountName", "onPremisesSecurityIdentifier",
    "onPremisesSyncEnabled", "proxyAddresses", "renewedDateTime", "securityIdentifier",
    "expirationDateTime",
})

CONTACT = Resource(
    name="OrgContact",
    entity_set="contacts",
    odata_type="#microsoft.graph.orgContact",
    properties=frozenset({
        "id", "addresses", "companyName", "deletedDateTime", "department", "displayName",
        "givenName", "jobTitle", "mail", "mailNickname", "onPremisesLastSyncDateTime",
        "onPremisesSyncEnabled", "phones", "proxyAddresses", "surname",
    }),
    default_select=None,
)

DEVICE = Resource(
    name="Device",
    entity_set="devices",
    odata_type="#microsoft.graph.device",
    properties=frozenset({
        "id", "accountEnabled", "alternativeSecurityIds", "approximateLastSignInDateTime",
        "complianceExpirationDateTime", "createdDateTime", "deletedDateTime", "deviceId",
        "deviceMetadata", "deviceVersion", "displayName", "isCompliant", "isManaged",
        "manufacturer", "model", "onPremisesLastSyncDateTime", "onPremisesSyncEnabled",
        "operatingSystem", "operatingSystemVersion", "physicalIds", "profileType",
        "registrationDateTime", "systemLabels", "trustType",
    }),
    default_select=None,
)

ADMINISTRATIVE_UNIT = Resource(
    name="AdministrativeUnit",
    entity_set="administrativeUnits",
    odata_type="#microsoft.graph.administrativeUnit",
    properties=frozenset({
        "id", "deletedDateTime", "description", "displayName", "isMemberManagementRestricted",
        "membershipRule", "membershipRuleProcessingState", "membershipType", "visibility",
    }),
    default_select=None,
)

BY_KIND: dict[str, Resource] = {
    "user": USER,
    "group": GROUP,
    "contact": CONTACT,
    "device": DEVICE,
    "administrativeUnit": ADMINISTRATIVE_UNIT,
}


def directory_object(kind: str, record: Record, select: Sequence[str] | None = None) -> Record:
    """A member of a collection of mixed types (members, deleted items): typed and shaped."""
    resource = BY_KIND[kind]
    shaped = resource.shape(record, select)
    return {"@odata.type": resource.odata_type, **shaped}


def new_id() -> str:
    return str(uuid.uuid4())


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
