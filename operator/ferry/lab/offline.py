"""Changes made to a lab DC's database while its Samba is stopped.

Run as a script by Samba's own Python (the interpreter samba-tool uses, which has the `samba`
bindings); Ferry never imports it. Secrets arrive on stdin, never as arguments.

    offline.py set-admin-password <smb.conf>   < password
    offline.py extend-schema <smb.conf>
    offline.py add-spns <smb.conf>
    offline.py add-ldif <smb.conf>             < LDIF (objects to add, one transaction)
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

# This folder holds Ferry's samba.py, which must not shadow Samba's `samba` package.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

# Exchange attributes migrations map (contacts' targetAddress, everyone's mailNickname) that
# Samba's base schema lacks: (cn, lDAPDisplayName, attributeID, rangeUpper), Unicode strings.
EXCHANGE_ATTRIBUTES = (
    ("ms-Exch-Target-Address", "targetAddress", "1.2.840.113556.1.2.352", 1123),
    ("ms-Exch-Mail-Nickname", "mailNickname", "1.2.840.113556.1.2.447", 64),
)

# SPNs a DC's dnsupdate service would add through samba_spnupdate (there is no DNS backend, so
# it never runs): Samba's own list (ldap/, GC/, HOST/, the DRS one) plus cifs/ for SMB.
EXTRA_SPNS = ("cifs/${HOSTNAME}", "cifs/${NETBIOSNAME}")


def _samdb(conf: str, schema_updates: bool = False) -> Any:
    from samba.auth import system_session
    from samba.param import LoadParm
    from samba.samdb import SamDB

    lp = LoadParm()
    lp.load(conf)
    if schema_updates:
        lp.set("dsdb:schema update allowed", "true")
    return SamDB(url=lp.samdb_url(), session_info=system_session(), lp=lp)


def set_admin_password(conf: str) -> None:
    password = sys.stdin.readline().rstrip("\n")
    samdb = _samdb(conf)
    samdb.setpassword(
        "(sAMAccountName=Administrator)",
        password,
        force_change_at_next_login=False,
        username="Administrator",
    )


def extend_schema(conf: str) -> None:
    samdb = _samdb(conf, schema_updates=True)
    schema = samdb.get_schema_basedn().get_linearized()
    for cn, name, oid, upper in EXCHANGE_ATTRIBUTES:
        if samdb.search(schema, expression=f"(lDAPDisplayName={name})", attrs=["cn"]):
            continue
        samdb.add_ldif(
            f"dn: CN={cn},{schema}\n"
            "objectClass: top\nobjectClass: attributeSchema\n"
            f"cn: {cn}\nattributeID: {oid}\nlDAPDisplayName: {name}\nadminDisplayName: {cn}\n"
            "attributeSyntax: 2.5.5.12\noMSyntax: 64\nisSingleValued: TRUE\n"
            f"rangeLower: 1\nrangeUpper: {upper}\nsearchFlags: 1\n"
        )
        samdb.modify_ldif(
            f"dn: CN=Mail-Recipient,{schema}\nchangetype: modify\n"
            f"add: mayContain\nmayContain: {name}\n"
        )
    samdb.modify_ldif("dn:\nchangetype: modify\nadd: schemaUpdateNow\nschemaUpdateNow: 1\n")


def add_spns(conf: str) -> None:
    """Kerberos clients (kinit for a service, SMB, LDAP GSSAPI) then find the DC by name."""
    from samba.param import LoadParm

    lp = LoadParm()
    lp.load(conf)
    with open(lp.private_path("spn_update_list"), "a", encoding="utf-8") as handle:
        handle.write("".join(f"{spn}\n" for spn in EXTRA_SPNS))
    subprocess.run(["samba_spnupdate", "-s", conf], check=True)


def add_ldif(conf: str) -> None:
    """Bulk seeding: ~1,000x faster than LDAP adds, which Samba serializes at ~28 ms each."""
    samdb = _samdb(conf)
    text = sys.stdin.read()
    samdb.transaction_start()
    try:
        for chunk in text.split("\n\n"):
            if chunk.strip():
                samdb.add_ldif(chunk + "\n", controls=["relax:0"])
    except BaseException:
        samdb.transaction_cancel()
        raise
    samdb.transaction_commit()


if __name__ == "__main__":
    commands = {
        "set-admin-password": set_admin_password,
        "extend-schema": extend_schema,
        "add-spns": add_spns,
        "add-ldif": add_ldif,
    }
    if len(sys.argv) != 3 or sys.argv[1] not in commands:
        sys.exit(f"usage: {sys.argv[0]} {{{'|'.join(commands)}}} <smb.conf>")
    commands[sys.argv[1]](sys.argv[2])
