"""Resolve secret values from Secrets (mounted as files), environment variables or files."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ferry.errors import InvalidInput

if TYPE_CHECKING:  # only annotations: `ferry --help` must not load the API models
    from ferry.api.base import ValueSource

# Where a pod mounts the Secrets a Job needs: <dir>/<secret name>/<key>, as Kubernetes lays
# out a Secret volume. Outside a cluster `ferry lab up` writes the same layout.
DEFAULT_SECRETS_DIR = Path("/var/run/secrets/ferry")
SECRETS_DIR_ENV = "FERRY_SECRETS_DIR"


class SecretError(InvalidInput):
    """A secret could not be resolved; the message names the field and the fix, never a value."""


class SecretsMissing(SecretError):
    """Secrets a run needs cannot be read: one line per secret, and nothing was touched."""

    def __init__(self, problems: Iterable[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


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
        folder = self.secrets_dir / ref.name
        if not folder.is_dir():
            raise SecretError(f"{where}: Secret {ref.name} not found (no folder {folder}; set"
                              f" --secrets-dir or {SECRETS_DIR_ENV})")
        path = folder / ref.key
        if not path.exists():
            raise SecretError(f"{where}: Secret {ref.name} has no key {ref.key} (no file {path})")
        return self._read(path, where, f"key {ref.key} of Secret {ref.name}")

    @staticmethod
    def _read(path: Path, where: str, label: str) -> str:
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SecretError(f"{where}: cannot read {label} ({path}):"
                              f" {exc.strerror or exc}") from None


def _key(source: ValueSource) -> tuple[str | None, ...]:
    ref = source.secret_key_ref
    return (source.env, source.file, ref.name if ref else None, ref.key if ref else None)


class ResolvedSecrets:
    """Secrets read once, before a run touches anything; it hands out only those."""

    def __init__(self, values: dict[tuple[str | None, ...], str]):
        self._values = values

    def resolve(self, source: ValueSource, where: str) -> str:
        value = self._values.get(_key(source))
        if value is None:
            raise SecretError(f"{where}: this secret was not read before the run started")
        return value


def resolve_all(secrets: SecretSource,
                needed: Iterable[tuple[ValueSource, str]]) -> ResolvedSecrets:
    """Read every (source, where) needed; raise SecretsMissing naming each that cannot be."""
    values: dict[tuple[str | None, ...], str] = {}
    problems: list[str] = []
    for source, where in needed:
        if _key(source) in values:
            continue
        try:
            values[_key(source)] = secrets.resolve(source, where)
        except SecretError as exc:
            problems.append(str(exc))
    if problems:
        raise SecretsMissing(dict.fromkeys(problems))
    return ResolvedSecrets(values)
