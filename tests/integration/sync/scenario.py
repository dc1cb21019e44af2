"""A sync scenario: its own SRC/TGT lab, manifests from examples/ad-to-ad, and the ferry CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ldap3

from ferry.lab.samba import LabDomain
from ferry.lab.seed import SeedSummary

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "ad-to-ad"
# Created users get this initial password so the test can prove it was set by binding.
INITIAL_PASSWORD = "Ferry-Initial-Pw-7319!x"
PASSWORD_ENV = "FERRY_TEST_INITIAL_PASSWORD"


@dataclass
class Scenario:
    src: LabDomain
    tgt: LabDomain
    seeded: SeedSummary
    folder: Path
    secrets_dir: Path
    outputs: list[str] = field(default_factory=list)   # every stdout+stderr the CLI printed

    @property
    def manifests(self) -> Path:
        return self.folder / "manifests"

    @property
    def state(self) -> Path:
        return self.folder / "state.sqlite"

    def ferry(self, *args: str, manifests: Path | None = None, state: Path | None = None,
              secrets_dir: Path | None = None, wait: bool = True) -> Any:
        """Run the ferry CLI as a user would; returns the CompletedProcess (or Popen)."""
        command = [sys.executable, "-m", "ferry", *args]
        if args and args[0] in ("run", "plan"):
            command += ["-f", str(manifests or self.manifests), "-v"]
        if args and args[0] in ("run", "plan", "runs"):
            command += ["--state", str(state or self.state)]
        env = {**os.environ, "FERRY_SECRETS_DIR": str(secrets_dir or self.secrets_dir),
               PASSWORD_ENV: INITIAL_PASSWORD, "COLUMNS": "200"}
        if not wait:
            # To a file, not a pipe: nobody reads a pipe while the run goes on, and a full pipe
            # would stall it.
            log = open(self.folder / f"background-{len(self.outputs)}.log", "w")  # noqa: SIM115
            return subprocess.Popen(command, env=env, cwd=self.folder, stdout=log,
                                    stderr=subprocess.STDOUT, text=True)
        done = subprocess.run(command, env=env, cwd=self.folder, capture_output=True, text=True,
                              timeout=600, check=False)
        self.outputs.append(done.stdout + done.stderr)
        return done

    def run_json(self, *args: str, **kwargs: Any) -> tuple[subprocess.CompletedProcess[str],
                                                          dict[str, Any]]:
        """`ferry run|plan ... --out FILE`; returns the process and the plan document."""
        out = self.folder / f"plan-{len(self.outputs)}.json"
        done = self.ferry(*args, "--out", str(out), **kwargs)
        assert out.exists(), done.stdout + done.stderr
        return done, json.loads(out.read_text())


def write_manifests(folder: Path, src: LabDomain, tgt: LabDomain, *, target_ou: str,
                    changed_only: bool = True, threshold: int = 10) -> Path:
    """examples/ad-to-ad pointed at this lab, with a known initial password for created users."""
    shutil.copytree(EXAMPLES, folder, dirs_exist_ok=True)
    env = (folder / "environments.yaml").read_text()
    env = env.replace("host: 127.0.0.2", f"host: {src.ip}").replace(
        "host: 127.0.0.3", f"host: {tgt.ip}")
    env = env.replace("OU=Migrated,DC=tgt,DC=test", target_ou)
    (folder / "environments.yaml").write_text(env)
    template = (folder / "template.yaml").read_text()
    template = template.replace("OU=Migrated,DC=tgt,DC=test", target_ou)
    template = template.replace(
        "    mustChangeAtNextLogon: true",
        f"    value: {{env: {PASSWORD_ENV}}}\n    mustChangeAtNextLogon: false")
    (folder / "template.yaml").write_text(template)
    workflow = (folder / "workflow.yaml").read_text()
    workflow = workflow.replace("changedObjectsOnly: false",
                                f"changedObjectsOnly: {str(changed_only).lower()}")
    workflow = workflow.replace("threshold: 10", f"threshold: {threshold}")
    (folder / "workflow.yaml").write_text(workflow)
    return folder


def snapshot(domain: LabDomain, base: str) -> dict[str, dict[str, list[str]]]:
    """Every object below base with all its attributes (USNs included): DN -> attributes."""
    conn = domain.connect()
    try:
        entries = conn.extend.standard.paged_search(
            base, "(objectClass=*)", attributes=["*", "uSNChanged", "objectGUID"],
            paged_size=1000, generator=False)
        return {e["dn"].lower(): {k: sorted(map(str, v if isinstance(v, list) else [v]))
                                  for k, v in e["attributes"].items()}
                for e in entries if e.get("type") == "searchResEntry"}
    finally:
        conn.unbind()


def objects(domain: LabDomain, base: str, ldap_filter: str,
            attributes: list[str] | None = None) -> list[dict[str, Any]]:
    """Entries below base matching the filter (missing base: none)."""
    conn = domain.connect()
    try:
        conn.search(base, "(objectClass=*)", ldap3.BASE, attributes=["1.1"])
        if conn.result["result"] != 0:
            return []
        entries = conn.extend.standard.paged_search(
            base, ldap_filter, attributes=attributes or ["*", "objectGUID"], paged_size=1000,
            generator=False)
        return [dict(_flatten(e["attributes"]), dn=e["dn"]) for e in entries
                if e.get("type") == "searchResEntry"]
    finally:
        conn.unbind()


MULTI_VALUED = frozenset({"member", "memberOf", "proxyAddresses", "objectClass"})


def _flatten(attributes: Any) -> dict[str, Any]:
    """Single values as scalars, known multi-valued attributes as lists (without a schema,
    ldap3 returns every attribute as a list)."""
    return {k: (v[0] if isinstance(v, list) and len(v) == 1 and k not in MULTI_VALUED else v)
            for k, v in attributes.items()}


USERS = "(&(objectCategory=person)(objectClass=user))"
GROUPS = "(objectClass=group)"
CONTACTS = "(objectClass=contact)"
