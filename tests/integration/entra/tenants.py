"""Manifests that point Ferry's Entra ID environments at emulator tenants."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.graph_emulator.fixture import GraphEmulator

from ferry.state.store import StateStore

ROOT = Path(__file__).resolve().parents[3]
WRITE_ROLES = ("User.ReadWrite.All", "Group.ReadWrite.All", "GroupMember.ReadWrite.All",
               "User.Invite.All")


@dataclass(frozen=True)
class Tenant:
    emulator: GraphEmulator
    tenant_id: str
    domain: str          # a verified domain, e.g. abc123.test
    initial_domain: str
    client_id: str
    secret_file: Path

    def environment(self, name: str, *, object_types: str = "[users, groups]",
                    extra: str = "", client_id: str = "", credentials: str = "") -> str:
        """An Environment document for this tenant, signing in with the client secret
        unless `credentials` (the YAML under credentials:, indented 6) says otherwise."""
        graph_root = self.emulator.graph_url.removesuffix("/v1.0")
        credentials = credentials or f"      clientSecret:\n        file: {self.secret_file}\n"
        return (f"apiVersion: ferry.dev/v1alpha1\nkind: Environment\nmetadata:\n"
                f"  name: {name}\nspec:\n  type: EntraID\n  entraID:\n"
                f"    tenantId: {self.tenant_id}\n    clientId: {client_id or self.client_id}\n"
                f"    credentials:\n{credentials}"
                f"    authorityHost: {self.emulator.authority_host}\n"
                f"    graphEndpoint: {graph_root}\n"
                f"    tls:\n      ca:\n        file: {self.emulator.ca_file}\n{extra}"
                f"  scope:\n    objectTypes: {object_types}\n")


def new_tenant(emulator: GraphEmulator, folder: Path, roles: tuple[str, ...] = WRITE_ROLES
               ) -> Tenant:
    short = uuid.uuid4().hex[:8]
    made = emulator.admin.create_tenant(initial_domain=f"t{short}.onmicrosoft.com",
                                        verified_domains=[f"{short}.test"])
    secret = f"secret-{uuid.uuid4().hex}"
    app = emulator.admin.register_app(made["id"], secrets=[secret], roles=roles)
    secret_file = folder / f"{short}.secret"
    secret_file.write_text(secret)
    secret_file.chmod(0o600)
    return Tenant(emulator, made["id"], f"{short}.test", made["initialDomain"],
                  app["clientId"], secret_file)


def ferry(folder: Path, *args: str, secrets_dir: Path | None = None
          ) -> subprocess.CompletedProcess[str]:
    """The ferry CLI on the manifests in folder/manifests with folder/state.sqlite."""
    env = {**os.environ, "COLUMNS": "200"}
    if secrets_dir is not None:
        env["FERRY_SECRETS_DIR"] = str(secrets_dir)
    command = [sys.executable, "-m", "ferry", *args]
    if args[0] in ("run", "plan", "check", "guests"):
        command += ["-f", str(folder / "manifests")]
    if args[0] in ("run", "plan", "guests"):
        command += ["--state", str(folder / "state.sqlite")]
    if args[0] in ("run", "plan"):
        command += ["-v"]
    return subprocess.run(command, env=env, cwd=folder, capture_output=True, text=True,
                          timeout=900, check=False)


def totals(folder: Path) -> list[dict[str, int]]:
    """Created/updated/deleted/errors of each recorded run, newest first."""
    with StateStore(str(folder / "state.sqlite")) as store:
        return [{k: sum(c.get(k, 0) for c in run.counts.values())
                 for k in ("created", "updated", "deleted", "errors")}
                for run in store.runs.recent(None, 10)]


def copy_example(name: str, folder: Path) -> Path:
    target = folder / "manifests"
    shutil.copytree(ROOT / "examples" / name, target)
    return target


def by_upn(users: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {u["userPrincipalName"].lower(): u for u in users}


def member_sync(folder: Path, source: Tenant, target: Tenant, *, target_extra: str = "",
                delete_threshold: int | None = None) -> Path:
    """Manifests syncing the users of tenant `source` (environment a) into `target` (b) as
    members, matched by mail, with a domain mapping; folder/manifests."""
    manifests = folder / "manifests"
    manifests.mkdir()
    (manifests / "environments.yaml").write_text(
        source.environment("a", object_types="[users]") + "---\n"
        + target.environment("b", object_types="[users]", extra=target_extra))
    delete = ("" if delete_threshold is None else
              "    - {name: delete, deleteObjects: {pairs: [{source: a, target: b,"
              f" threshold: {delete_threshold}}}]}}}}\n")
    (manifests / "sync.yaml").write_text(f"""apiVersion: ferry.dev/v1alpha1
kind: Template
metadata: {{name: members}}
spec:
  domainMappings: [{{source: {source.domain}, target: {target.domain}}}]
---
apiVersion: ferry.dev/v1alpha1
kind: Workflow
metadata: {{name: a-to-b}}
spec:
  steps:
    - {{name: read, readFrom: {{environments: [a, b]}}}}
    - {{name: match, match: {{source: a, target: b, rules: [{{sourceAttribute: mail,
        targetAttribute: mail}}]}}}}
    - {{name: stage, stageData: {{template: members, pairs: [{{source: a, target: b,
        objectTypes: [users]}}]}}}}
    - {{name: write, writeTo: {{environments: [b]}}}}
{delete}""")
    return manifests
