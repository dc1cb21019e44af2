"""Manifests and objects for tests on the session's Samba lab: an Environment of one scratch
OU, and users added to it."""

from __future__ import annotations

from ferry.lab.samba import LabDomain

ENVIRONMENTS = """\
apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {{name: {name}}}
spec:
  type: ActiveDirectory
  connection: direct
  activeDirectory:
    host: {ip}
    port: 636
    baseDN: {base}
    tls: {{ca: {{secretKeyRef: {{name: {name}-ad, key: ca.pem}}}}}}
    credentials:
      username: Administrator@{realm}
      password: {{secretKeyRef: {{name: {name}-ad, key: password}}}}
  scope:
    ous: ["{ou}"]
    objectTypes: [users]
"""


def add_user(domain: LabDomain, ou: str, sam: str, **attributes: str) -> str:
    """A plain (disabled, password-less) user CN=sam in ou; its DN."""
    dn = f"CN={sam},{ou}"
    conn = domain.connect()
    try:
        assert conn.add(dn, ["top", "person", "organizationalPerson", "user"],
                        {"sAMAccountName": sam, **attributes}), conn.result
    finally:
        conn.unbind()
    return dn


def environment_manifest(name: str, domain: LabDomain, ou: str) -> str:
    """An Environment of users in ou of a lab domain, reached directly."""
    return ENVIRONMENTS.format(name=name, ip=domain.ip, base=domain.base_dn,
                               realm=domain.base_dn.replace("DC=", "").replace(",", ".").lower(),
                               ou=ou)
