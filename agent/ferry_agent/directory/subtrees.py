"""The subtrees an agent may write (`write_subtrees` in its INI file): every write outside them
is refused per object, whatever the job asked for. Reads are not restricted here."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..dn import DNError, is_under, parse_dn
from .errors import DirectoryError

SETTING = "write_subtrees"
INSUFFICIENT_ACCESS = 50  # LDAP insufficientAccessRights: what AD answers a refused write
_SEPARATOR = re.compile(r"(?<!\\)[;\n]")  # between DNs: an unescaped ';' or a new line


def within(dn: str, base: str) -> bool:
    """Whether `dn` is `base` or below it, RDN by RDN (an escaped `\\,` in a value never
    reads as a separator); a DN that does not parse is inside nothing."""
    try:
        return is_under(dn, base)
    except DNError:
        return False


@dataclass(frozen=True)
class WriteSubtrees:
    """Where writes may go; none at all (a read-only agent) when the setting is not given."""

    bases: tuple[str, ...]
    where: str  # the file and section the setting comes from, for messages

    @classmethod
    def parse(cls, text: str | None, where: str) -> WriteSubtrees:
        """DNs separated by ';' or new lines; a DN that does not parse names the setting."""
        bases = tuple(p.strip() for p in _SEPARATOR.split(text or "") if p.strip())
        for base in bases:
            try:
                parse_dn(base)
            except DNError as exc:
                raise ValueError(f"{where}: {SETTING}: {exc}; separate DNs with ';'") from None
        return cls(bases, where)

    def allows(self, dn: str) -> bool:
        return any(within(dn, base) for base in self.bases)

    def refusal(self, operation: str, dns: Iterable[str]) -> DirectoryError | None:
        """The error for the first of `dns` outside every subtree, or None if all are inside."""
        for dn in dns:
            if dn and not self.allows(dn):
                return DirectoryError(dn, operation, INSUFFICIENT_ACCESS, self._why(),
                                      "insufficientAccessRights")
        return None

    def _why(self) -> str:
        if not self.bases:
            return (f"this agent is read-only: {SETTING} is not set in {self.where}; name the"
                    " subtrees it may write there, e.g. OU=Corp,DC=example,DC=com")
        return f"outside this agent's {SETTING} ({'; '.join(self.bases)}) set in {self.where}"


def write_targets(kind: str, dn: str, new_dn: str, parent: str) -> Sequence[str]:
    """Every DN a write of `kind` changes: the object, a move's destination, an OU made first."""
    targets = [dn]
    if kind == "move":
        targets.append(new_dn)
    if parent and kind in ("create", "move"):
        targets.append(parent)
    return targets
