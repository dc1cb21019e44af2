"""Manifest problems, each naming the file, the object, the field path and what is expected."""

from __future__ import annotations

import reprlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ferry.errors import InvalidInput

# Values quoted in messages come from the manifests: any size, any depth, shared by aliases.
_REPR = reprlib.Repr()  # Python 3.11 sets its limits as attributes only
_REPR.maxlevel = 3
_REPR.maxtuple = _REPR.maxlist = _REPR.maxdict = _REPR.maxset = _REPR.maxfrozenset = 4
_REPR.maxstring, _REPR.maxlong, _REPR.maxother = 60, 40, 60
MAX_QUOTED = 120


@dataclass(frozen=True)
class ManifestProblem:
    file: str
    obj: str          # "Kind/name", or "document N" when the object cannot be named
    path: str         # e.g. "spec.steps[1].match.rules[0].sourceAttribute"
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.obj}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ManifestError(InvalidInput):
    """One or more problems found while loading manifests; nothing may run."""

    def __init__(self, problems: Sequence[ManifestProblem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def format_path(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def quoted(value: Any) -> str:
    """repr(value) for an error message, at most MAX_QUOTED characters whatever the value."""
    text = _REPR.repr(value)
    return text if len(text) <= MAX_QUOTED else text[: MAX_QUOTED - 3] + "..."
