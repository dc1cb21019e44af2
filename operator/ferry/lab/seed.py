"""Deterministic, realistic test data for a lab domain (normally SRC).

    OU=Corp
      OU=Sales, OU=Engineering, OU=Finance, OU=HR   users (some disabled, some with managers)
      OU=Groups                                     groups of every scope and kind, nested
      OU=Contacts                                   mail contacts

The same seed number gives the same data. Special cases tests look for are always there:
names that need DN escaping, non-ASCII names, two users sharing one mail address, and a group
holding every seeded user (more than 2,000 members when 2,001+ users are seeded).
Everything goes over one LDAPS connection, one add per object and one modify per chunk of
group members.
"""

from __future__ import annotations

import random
import time
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import ldap3

from ferry.lab.samba import LabDomain, LabError
from ferry_agent.directory.errors import DirectoryError, result_error
from ferry_agent.directory.read import naming_context
from ferry_agent.directory.write import (
    add_members,
    delete,
    ensure_ou,
    group_type,
)
from ferry_agent.dn import build_dn, parse_dn

DEPARTMENTS = ("Sales", "Engineering", "Finance", "HR")
FIRST_NAMES = (
    "James",
    "Mary",
    "Robert",
    "Patricia",
    "John",
    "Jennifer",
    "Michael",
    "Linda",
    "David",
    "Elizabeth",
    "William",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Charles",
    "Karen",
    "Aisha",
    "Wei",
    "Priya",
    "Mateo",
    "Sofia",
    "Kenji",
    "Olga",
    "Fatima",
    "Lars",
    "Ingrid",
    "Noah",
    "Emma",
    "Liam",
    "Chloé",
    "René",
    "Søren",
    "Björn",
    "Anaïs",
)
LAST_NAMES = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Garcia",
    "Miller",
    "Davis",
    "Rodriguez",
    "Martinez",
    "Hernandez",
    "Lopez",
    "Gonzalez",
    "Wilson",
    "Anderson",
    "Thomas",
    "Taylor",
    "Moore",
    "Jackson",
    "Martin",
    "Lee",
    "Perez",
    "Thompson",
    "White",
    "Harris",
    "Clark",
    "Nakamura",
    "Kowalski",
    "Novák",
    "Øberg",
    "Nguyen",
    "Patel",
    "Schröder",
    "O'Brien",
)
TITLES = {
    "Sales": ("Account Executive", "Sales Manager", "Sales Engineer", "Inside Sales Rep"),
    "Engineering": ("Software Engineer", "Senior Engineer", "Engineering Manager", "SRE"),
    "Finance": ("Accountant", "Controller", "Financial Analyst", "Payroll Specialist"),
    "HR": ("HR Generalist", "Recruiter", "HR Manager", "People Partner"),
}
COMPANIES = ("Contoso", "Fabrikam", "Northwind", "Tailspin", "Woodgrove", "Litware")

# (label, givenName, sn, cn): names that need RDN escaping or are not ASCII.
SPECIAL_USERS = (
    ("comma", "John", "Smith", "Smith, John"),
    ("plus", "A", "B", "A+B"),
    ("hash", "Hash", "Tag", "#Hash"),
    ("quoted", "Quoted", "Name", '"Quoted"'),
    ("zoe", "Zoë", "Ångström", "Zoë Ångström"),
    ("jose", "José", "Müller", "José Müller"),
    ("lukasz", "Łukasz", "Żółć", "Łukasz Żółć"),
    ("shared_mail_1", "Chris", "Taylor", "Chris Taylor"),
    ("shared_mail_2", "Christopher", "Taylor", "Christopher Taylor"),
)
SHARED_MAIL_LOCAL = "chris.taylor"
BIG_GROUP = "All Staff"
DEPARTMENTS_GROUP = "All Departments"
_GROUP_KINDS = (
    ("global", True),
    ("universal", True),
    ("domainLocal", True),
    ("global", False),
    ("universal", False),
    ("domainLocal", False),
)
_FOLD = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "ß": "ss", "æ": "ae", "Æ": "AE"})


@dataclass
class SeedSummary:
    """What was created, and where tests find the special cases."""

    base_dn: str
    corp_dn: str
    dns_domain: str
    users: int = 0
    groups: int = 0
    contacts: int = 0
    ous: list[str] = field(default_factory=list)
    user_dns: list[str] = field(default_factory=list)
    group_dns: list[str] = field(default_factory=list)
    contact_dns: list[str] = field(default_factory=list)
    special: dict[str, str] = field(default_factory=dict)  # label -> user DN (SPECIAL_USERS)
    disabled: list[str] = field(default_factory=list)
    with_manager: int = 0
    shared_mail: str = ""
    big_group_dn: str = ""
    big_group_members: int = 0
    nested: tuple[str, str] = ("", "")  # (outer group DN, inner group DN)
    seconds: float = 0.0


def ascii_fold(text: str) -> str:
    """`Zoë Łukasz` -> `Zoe Lukasz`: for account names and mail local parts."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return (
        "".join(c for c in decomposed if not unicodedata.combining(c))
        .encode("ascii", "ignore")
        .decode("ascii")
    )


def _local_part(given: str, surname: str) -> str:
    raw = ascii_fold(f"{given}.{surname}").lower()
    return "".join(c for c in raw if c.isalnum() or c in ".-") or "user"


def seed(
    target: LabDomain | ldap3.Connection,
    *,
    users: int = 1000,
    groups: int = 50,
    contacts: int = 100,
    seed: int = 1,
    replace: bool = False,
) -> SeedSummary:
    """Fill a domain with `users`, `groups` and `contacts` under OU=Corp.

    An existing OU=Corp is an error unless `replace` is set (then it is deleted first).
    """
    if users < len(SPECIAL_USERS):
        raise LabError(f"seed at least {len(SPECIAL_USERS)} users (the special cases)")
    started = time.monotonic()
    conn = target.connect() if isinstance(target, LabDomain) else target
    try:
        summary = _seed(conn, users, groups, contacts, random.Random(seed), replace)
    finally:
        if isinstance(target, LabDomain):
            conn.unbind()
    summary.seconds = time.monotonic() - started
    return summary


def _seed(
    conn: ldap3.Connection,
    n_users: int,
    n_groups: int,
    n_contacts: int,
    rng: random.Random,
    replace: bool,
) -> SeedSummary:
    base = naming_context(conn)
    dns_domain = ".".join(rdn.value for rdn in parse_dn(base).rdns).lower()
    corp = f"OU=Corp,{base}"
    conn.search(corp, "(objectClass=*)", ldap3.BASE, attributes=["1.1"])
    if conn.result["result"] == 0:
        if not replace:
            raise LabError(f"{corp} already exists: the domain is seeded (use replace to redo)")
        delete(conn, corp, tree=True)
    summary = SeedSummary(base_dn=base, corp_dn=corp, dns_domain=dns_domain)
    for ou in (*DEPARTMENTS, "Groups", "Contacts"):
        summary.ous.extend(ensure_ou(conn, f"OU={ou},{corp}"))

    used_cn: set[str] = set()
    used_sam: set[str] = set()
    used_mail: set[str] = set()
    by_department: dict[str, list[str]] = {d: [] for d in DEPARTMENTS}

    def unique(value: str, used: set[str], limit: int | None = None, sep: str = "") -> str:
        candidate, number = value[:limit] if limit else value, 1
        while candidate.lower() in used:
            number += 1
            suffix = f"{sep}{number}"
            stem = value[: limit - len(suffix)] if limit else value
            candidate = f"{stem}{suffix}"
        used.add(candidate.lower())
        return candidate

    people: list[tuple[str, str, str, str]] = [
        (label, g, s, cn) for label, g, s, cn in SPECIAL_USERS
    ]
    while len(people) < n_users:
        given, surname = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        people.append(("", given, surname, f"{given} {surname}"))

    for index, (label, given, surname, cn_wanted) in enumerate(people):
        department = DEPARTMENTS[index % len(DEPARTMENTS)]
        cn = unique(cn_wanted, used_cn, sep=" ")
        dn = build_dn(cn, f"OU={department},{corp}")
        sam = unique(
            ascii_fold(f"{given[:1]}{surname}").lower().replace("'", "") or "u", used_sam, 20
        )
        if label.startswith("shared_mail"):
            local = SHARED_MAIL_LOCAL
        else:
            local = unique(_local_part(given, surname), used_mail)
        mail = f"{local}@{dns_domain}"
        attrs: dict[str, Any] = {
            "objectClass": ["top", "person", "organizationalPerson", "user"],
            "sAMAccountName": sam,
            "userPrincipalName": f"{sam}@{dns_domain}",
            "givenName": given,
            "sn": surname,
            "displayName": cn
            if label in ("comma", "plus", "hash", "quoted")
            else f"{given} {surname}",
            "mail": mail,
            "proxyAddresses": [f"SMTP:{mail}", f"smtp:{sam}@mail.{dns_domain}"],
            "mailNickname": sam,
            "employeeID": f"E{100000 + index}",
            "department": department,
            "title": rng.choice(TITLES[department]),
            "company": "Ferry Lab Corp",
            "telephoneNumber": f"+1 555 {rng.randrange(100, 999)} {rng.randrange(1000, 9999)}",
        }
        disabled = index >= len(SPECIAL_USERS) and index % 25 == 7
        attrs["userAccountControl"] = str(0x202 if disabled else 0x200)
        colleagues = by_department[department]
        if colleagues and index % 5 == 2:
            attrs["manager"] = colleagues[rng.randrange(min(len(colleagues), 10))]
            summary.with_manager += 1
        _add(conn, dn, attrs)
        colleagues.append(dn)
        summary.user_dns.append(dn)
        if label:
            summary.special[label] = dn
        if disabled:
            summary.disabled.append(dn)
    summary.users = len(summary.user_dns)
    summary.shared_mail = f"{SHARED_MAIL_LOCAL}@{dns_domain}"

    for index in range(n_contacts):
        given, surname = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        company = rng.choice(COMPANIES)
        cn = unique(f"{given} {surname} ({company})", used_cn, sep=" ")
        dn = build_dn(cn, f"OU=Contacts,{corp}")
        address = f"{_local_part(given, surname)}.{index}@{company.lower()}.example"
        _add(
            conn,
            dn,
            {
                "objectClass": ["top", "person", "organizationalPerson", "contact"],
                "givenName": given,
                "sn": surname,
                "displayName": f"{given} {surname} ({company})",
                "mail": address,
                "targetAddress": f"SMTP:{address}",
                "mailNickname": _local_part(given, surname),
                "proxyAddresses": [f"SMTP:{address}"],
                "company": company,
            },
        )
        summary.contact_dns.append(dn)
    summary.contacts = len(summary.contact_dns)

    _seed_groups(conn, summary, n_groups, by_department, rng)
    return summary


def _seed_groups(
    conn: ldap3.Connection,
    summary: SeedSummary,
    n_groups: int,
    by_department: dict[str, list[str]],
    rng: random.Random,
) -> None:
    parent = f"OU=Groups,{summary.corp_dn}"
    plan: list[tuple[str, str, bool, list[str], str]] = [
        (BIG_GROUP, "universal", True, list(summary.user_dns), "Every seeded user"),
    ]
    department_groups = [f"{d} Team" for d in DEPARTMENTS]
    for department, name in zip(DEPARTMENTS, department_groups, strict=True):
        plan.append((name, "global", True, by_department[department], f"{department} department"))
    plan.append((DEPARTMENTS_GROUP, "universal", True, [], "Nests the department groups"))
    number = 1
    while len(plan) < n_groups:
        scope, security = _GROUP_KINDS[number % len(_GROUP_KINDS)]
        size = rng.randrange(5, 41)
        members = rng.sample(summary.user_dns, min(size, len(summary.user_dns)))
        if not security and summary.contact_dns:
            members += rng.sample(summary.contact_dns, min(3, len(summary.contact_dns)))
        kind = "Security" if security else "Distribution"
        plan.append((f"Project {number:03d}", scope, security, members, f"{scope} {kind}"))
        number += 1
    dns: dict[str, str] = {}
    for name, scope, security, members, description in plan[:n_groups]:
        dn = build_dn(name, parent)
        sam = name.replace(" ", "-")
        attrs: dict[str, Any] = {
            "objectClass": ["top", "group"],
            "sAMAccountName": sam,
            "groupType": str(group_type(scope, security)),
            "description": description,
        }
        if not security:
            attrs["mail"] = f"{sam.lower()}@{summary.dns_domain}"
        _add(conn, dn, attrs)
        if members:
            _members(conn, dn, members)
        dns[name] = dn
        summary.group_dns.append(dn)
    summary.groups = len(summary.group_dns)
    if BIG_GROUP in dns:
        summary.big_group_dn = dns[BIG_GROUP]
        summary.big_group_members = len(summary.user_dns)
    if DEPARTMENTS_GROUP in dns:
        inner = [dns[g] for g in department_groups if g in dns]
        _members(conn, dns[DEPARTMENTS_GROUP], inner)
        if inner:
            summary.nested = (dns[DEPARTMENTS_GROUP], inner[0])


def _add(conn: ldap3.Connection, dn: str, attributes: dict[str, Any]) -> None:
    conn.add(dn, attributes=attributes)
    if conn.result["result"] != 0:
        raise LabError(f"seeding failed: {result_error(conn.result, dn, 'create')}")


def _members(conn: ldap3.Connection, group_dn: str, members: list[str]) -> None:
    try:
        add_members(conn, group_dn, members, chunk=1000)
    except DirectoryError as exc:
        raise LabError(f"seeding failed: {exc}") from None


def bulk_ldif(
    root_dn: str,
    dns_domain: str,
    users: int,
    groups: int = 0,
    largest: int = 10_000,
    department_ous: dict[str, str | None] | None = None,
) -> str:
    """LDIF of `users` plain users (and `groups` groups) for offline.py's add-ldif (bulk seeding).

    User i is the same person on every side (sAMAccountName bulk<i>, mail bulk<i>@bulk.example,
    which no domain mapping rewrites), so a source and a target seeded alike match by mail.
    Users sit in OU=<department> under `root_dn` (or in the OU `department_ous` names for it,
    None for `root_dn` itself); groups in OU=Groups, group g holding users g*step.. up to
    `largest` of them (the first holds the first `largest` users).
    """
    ous: dict[str, str | None] = dict(department_ous) if department_ous is not None else {
        d: f"OU={d},{root_dn}" for d in DEPARTMENTS}
    parts = [f"dn: {root_dn}\nobjectClass: organizationalUnit\n\n"]
    parts += [f"dn: {dn}\nobjectClass: organizationalUnit\n\n"
              for dn in sorted({dn for dn in ous.values() if dn})]
    dns: list[str] = []
    for i in range(users):
        department = DEPARTMENTS[i % len(DEPARTMENTS)]
        given, surname = FIRST_NAMES[i % len(FIRST_NAMES)], LAST_NAMES[i % len(LAST_NAMES)]
        given, surname = ascii_fold(given), ascii_fold(surname)
        cn = f"{given} {surname} {i}"
        dn = f"CN={cn},{ous.get(department) or root_dn}"
        dns.append(dn)
        parts.append(
            f"dn: {dn}\nobjectClass: user\nsAMAccountName: bulk{i}\n"
            f"userPrincipalName: bulk{i}@{dns_domain}\nmail: bulk{i}@bulk.example\n"
            f"givenName: {given}\nsn: {surname}\ndisplayName: {cn}\n"
            f"department: {department}\nuserAccountControl: 512\n\n"
        )
    if groups:
        groups_ou = f"OU=Groups,{root_dn}"
        parts.append(f"dn: {groups_ou}\nobjectClass: organizationalUnit\n\n")
        step = max(1, users // groups)
        for g in range(groups):
            members = dns[g * step:g * step + largest]
            lines = "".join(f"member: {dn}\n" for dn in members)
            parts.append(f"dn: CN=Bulk Group {g},{groups_ou}\nobjectClass: group\n"
                         f"sAMAccountName: bulkgroup{g}\n{lines}\n")
    return "".join(parts)
