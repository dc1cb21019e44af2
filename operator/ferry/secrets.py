"""Resolve secret values from Secrets (mounted as files), environment variables or files."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ferry.api.base import ValueSource

# Where a pod mounts the Secrets a Job needs: <dir>/<secret name>/<key>, as Kubernetes lays
# out a Secret volume. Outside a cluster `ferry lab up` writes the same layout.
DEFAULT_SECRETS_DIR = Path("/var/run/secrets/ferry")
SECRETS_DIR_ENV = "FERRY_SECRETS_DIR"


class SecretError(Exception):
    """A secret could not be resolved; the message names the field and the fix, never a value."""


class SecretSource(Protocol):
    """Anything that turns a ValueSource into its value (files here, the API in the operator)."""

    def resolve(self, source: ValueSource, where: str) -> str: ...


@dataclass(frozen=True)
class SecretResolver:
    secrets_dir: Path = DEFAULT_SECRETS_DIR
    base_dir: Path = Path(".")      # relative `file:` paths are relative to the manifest folder

    @classmethod
    def from_environment(cls, secrets_dir: str | None = None,
                         base_dir: Path = Path(".")) -> SecretResolver:
        chosen = secrets_dir or os.environ.get(SECRETS_DIR_ENV) or str(DEFAULT_SECRETS_DIR)
        return cls(Path(chosen), base_dir)

    def resolve(self, source: ValueSource, where: str) -> str:
        """The secret's value; `where` names the object and field for error messages."""
        if source.env is not None:
            value = os.environ.get(source.env)
            if value is None:
                raise SecretError(f"{where}: environment variable {source.env} is not set;"
                                  " export it or use secretKeyRef/file")
            return value
        if source.file is not None:
            path = Path(source.file)
            if not path.is_absolute():
                path = self.base_dir / path
            return self._read(path, where, f"file {path}")
        ref = source.secret_key_ref
        assert ref is not None  # the model guarantees exactly one source
        path = self.secrets_dir / ref.name / ref.key
        return self._read(path, where, f"Secret {ref.name} key {ref.key} (looked for {path};"
                          f" set --secrets-dir or {SECRETS_DIR_ENV})")

    @staticmethod
    def _read(path: Path, where: str, label: str) -> str:
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SecretError(f"{where}: cannot read {label}: {exc.strerror}") from None
