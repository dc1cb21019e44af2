"""Which programs an agent may run script steps with: its INI's [scripts] allow list."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import FerryAgentError

SECTION = "scripts"
SETTING = "allow"


class ScriptRefused(FerryAgentError):
    """The agent does not run this command; the text says what its INI would need."""


@dataclass(frozen=True)
class AllowedPrograms:
    """Programs named exactly as a step's command[0] may give them (a path or a name).

    Only the program is checked: the script itself comes from the manifest or a ConfigMap,
    never from a path on this host, and is always the command's last argument."""

    programs: frozenset[str]
    where: str = ""

    @classmethod
    def parse(cls, value: str | None, where: str) -> AllowedPrograms:
        programs = frozenset(p.strip() for p in (value or "").replace("\n", ",").split(",")
                             if p.strip())
        return cls(programs, where)

    def check(self, command: Sequence[str]) -> None:
        if not command:
            raise ScriptRefused("the script step has no command")
        if not self.programs:
            raise ScriptRefused(f"this agent runs no scripts: add [{SECTION}] {SETTING} ="
                                f" {command[0]} to {self.where or 'its INI'}")
        if command[0] not in self.programs:
            allowed = ", ".join(sorted(self.programs))
            raise ScriptRefused(f"{command[0]!r} is not in [{SECTION}] {SETTING} of"
                                f" {self.where or 'its INI'} (allowed: {allowed})")
