"""One local group's members translated by the SID table, whatever keeps the group (Samba's
`net groupmap` on Linux, NetLocalGroup* on Windows): add puts the target beside the source,
replace adds the target and then drops the source, remove drops the source. A run killed
between the two steps of a replace leaves both (as add would), and a run again finishes it."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..errors import FerryAgentError
from ..sid import Sid
from .descriptor import SidMap
from .figures import ReaclFigures
from .outcome import ReaclMode


def translate_members(group: str, current: Sequence[Sid], table: SidMap, mode: ReaclMode,
                      source_domain: str, figures: ReaclFigures, *,
                      add: Callable[[Sid], None], remove: Callable[[Sid], None]) -> None:
    """Each member the table maps is translated (a change if it added or removed one);
    members of the source domain the table lacks are unmatched. A failed add or remove (an
    agent error) is reported under `group`, and the other members go on."""
    present = set(current)
    for member in current:
        figures.scanned += 1
        target = table.pairs.get(member)
        if target is None:
            if source_domain and member.is_domain_account and member.domain == source_domain:
                figures.unmatched.add(str(member))
            continue
        figures.matched.add(str(member))
        changed = False
        try:
            if mode is not ReaclMode.REMOVE and target not in present:
                add(target)
                present.add(target)
                changed = True
            if mode is not ReaclMode.ADD:
                remove(member)
                changed = True
        except FerryAgentError as exc:
            figures.error(f"{group}: member {member}: {exc}")
            continue
        figures.changed += changed
