"""Manifests on this machine: loaded and checked before anything connects, and their Secrets."""

from __future__ import annotations

from pathlib import Path

from ferry.api.errors import ManifestError
from ferry.api.loader import Manifests, load_manifests
from ferry.cli.options import LAB_DIR
from ferry.secrets import SecretResolver
from ferry.sync.expression_check import expression_problems


def load(paths: list[Path]) -> Manifests:
    """The manifests; a ManifestError lists every problem in them."""
    manifests = load_manifests(paths)
    problems = expression_problems(manifests)  # before anything connects
    if problems:
        raise ManifestError(problems)
    return manifests


def secrets(secrets_dir: str | None, paths: list[Path]) -> SecretResolver:
    """Where the manifests' secretKeyRefs are read from."""
    # Outside a cluster the lab's secrets are the natural default.
    if secrets_dir is None and (LAB_DIR / "secrets").is_dir():
        secrets_dir = str(LAB_DIR / "secrets")
    base = paths[0] if paths and paths[0].is_dir() else (paths[0].parent if paths else Path())
    return SecretResolver.from_environment(secrets_dir, base)
