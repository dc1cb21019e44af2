"""An OU's name cannot steer objects into a privileged OU, through the `ferry` CLI against real
Samba. Whoever may create an OU can name it `evil,OU=Kernel Admins` (Samba spells the DN
`OU=evil\\,OU\\3DKernel Admins,...`) or `\u212aernel Admins` (a Kelvin sign, not a K: the
DC keeps it apart from `Kernel Admins`). Both sit next to OU=Kernel Admins, not inside it, and
are not it: neither an OU mapping nor an Environment scoped to it (full or delta read) takes
their objects."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import ldap3
import pytest

from ferry.lab.seed import SeedSummary
from ferry_agent.directory.write import create
from ferry_agent.dn import build_dn, parent_dn, same_dn

from .scenario import USERS, Scenario, objects, write_manifests

pytestmark = pytest.mark.lab

ADMINS = "Kernel Admins"
# OU names anyone allowed to create OUs could choose, to look like OU=Kernel Admins.
EVIL = f"evil,OU={ADMINS}"
LOOK_ALIKE = "\u212aernel Admins"   # KELVIN SIGN + "ernel Admins"


def _scenario(lab: Any, folder: Path, *, source_scope: str, tgt_ou: str, default_ou: str,
              mappings: dict[str, str], changed_only: bool) -> Scenario:
    """examples/ad-to-ad reading `source_scope`, placing objects by `mappings` and `default_ou`."""
    manifests = write_manifests(folder / "manifests", lab.src, lab.tgt, target_ou=tgt_ou,
                                changed_only=changed_only)
    env = manifests / "environments.yaml"
    env.write_text(env.read_text().replace("OU=Corp,DC=src,DC=test", source_scope))
    listed = "".join(f"      - sourceOU: '{source}'\n        targetOU: '{target}'\n"
                     for source, target in mappings.items())
    target_ou = (f"  targetOU:\n    default: '{default_ou}'\n"
                 + (f"    mappings:\n{listed}" if listed else ""))
    template = manifests / "template.yaml"
    text, replaced = re.subn(r"  targetOU:\n(?:    .*\n)+", target_ou, template.read_text())
    assert replaced == 1
    template.write_text(text)
    seeded = SeedSummary(lab.src.base_dn, source_scope, lab.src.dns_domain)
    return Scenario(lab.src, lab.tgt, seeded, folder, lab.root / "secrets")


def _user(conn: Any, name: str, container: str) -> str:
    sam = f"{name.lower()}{uuid.uuid4().hex[:6]}"
    dn = build_dn(name, container)
    create(conn, "user", dn, {"sAMAccountName": [sam], "givenName": [name], "sn": ["User"],
                              "mail": [f"{sam}@src.test"],
                              "userPrincipalName": [f"{sam}@src.test"]},
           password="Src-Pw-1234!ab", enabled=True)
    return dn


def _ou(conn: Any, name: str, container: str) -> str:
    """A new OU `name` directly under `container`; its DN as the DC spells it."""
    conn.add(build_dn(name, container, attribute="OU"), "organizationalUnit")
    assert conn.result["result"] == 0, conn.result   # the DC takes it as a name of its own
    conn.search(container, "(objectClass=organizationalUnit)", ldap3.LEVEL, attributes=["ou"])
    [entry] = [e for e in conn.response if e.get("type") == "searchResEntry"
               and e["attributes"]["ou"] in (name, [name])]
    assert same_dn(parent_dn(entry["dn"]), container)   # one RDN, directly under container
    return str(entry["dn"])


def _placed(lab: Any, base: str) -> dict[str, str]:
    """givenName -> DN of the users below base on TGT."""
    return {u["givenName"]: u["dn"] for u in objects(lab.tgt, base, USERS, ["givenName"])}


def test_ous_named_like_the_admins_ou_are_not_mapped_to_the_admins_target_ou(
        lab: Any, src_ou: str, tgt_ou: str, tmp_path: Path) -> None:
    conn = lab.src.connect()
    admins = _ou(conn, ADMINS, src_ou)
    privileged = f"OU=Admins,{tgt_ou}"
    _user(conn, "Alice", admins)
    _user(conn, "Mallory", _ou(conn, EVIL, src_ou))
    _user(conn, "Kevin", _ou(conn, LOOK_ALIKE, src_ou))
    conn.unbind()
    scenario = _scenario(lab, tmp_path, source_scope=src_ou, tgt_ou=tgt_ou, default_ou=tgt_ou,
                         mappings={admins: privileged}, changed_only=False)
    done = scenario.ferry("run")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    placed = _placed(lab, tgt_ou)
    assert set(placed) == {"Alice", "Mallory", "Kevin"}, placed
    assert same_dn(placed["Alice"], build_dn("Alice", privileged))
    # The others get the template's default OU; only Alice is in the privileged one.
    assert same_dn(placed["Mallory"], build_dn("Mallory", tgt_ou)), placed
    assert same_dn(placed["Kevin"], build_dn("Kevin", tgt_ou)), placed
    assert set(_placed(lab, privileged)) == {"Alice"}


def test_ous_named_like_the_admins_ou_are_outside_a_scope_of_it_on_delta_runs(
        lab: Any, src_ou: str, tgt_ou: str, tmp_path: Path) -> None:
    # The source Environment reads only OU=Kernel Admins, and all it reads goes to the
    # privileged target OU. A delta read looks at the whole domain's changes and keeps those
    # below the scope: not those of the look-alike OUs.
    conn = lab.src.connect()
    admins = _ou(conn, ADMINS, src_ou)
    privileged = f"OU=Admins,{tgt_ou}"
    _user(conn, "Alice", admins)
    scenario = _scenario(lab, tmp_path, source_scope=admins, tgt_ou=tgt_ou,
                         default_ou=privileged, mappings={}, changed_only=True)
    first = scenario.ferry("run")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert set(_placed(lab, privileged)) == {"Alice"}

    _user(conn, "Mallory", _ou(conn, EVIL, src_ou))
    _user(conn, "Kevin", _ou(conn, LOOK_ALIKE, src_ou))
    _user(conn, "Bob", admins)
    conn.unbind()
    second = scenario.ferry("run")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "(changed)" in second.stdout   # a delta run
    assert set(_placed(lab, tgt_ou)) == {"Alice", "Bob"}   # Bob: the delta read did run
