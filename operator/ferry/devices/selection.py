"""Which devices a DeviceMigration takes, and the wave each belongs to."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ferry.api.devicemigration import DeviceSelection, LabelSelector, SelectorOperator, Wave
from ferry.state.rows import DeviceAgentInfo, DiscoveredDevice
from ferry_agent.dn import is_under

OS_LABEL = "ferry.dev/os"


@dataclass(frozen=True)
class SelectedDevice:
    name: str                          # upper case
    wave: str
    agent: DeviceAgentInfo | None      # None: selected, but no device agent enrolled yet


def labels_of(agent: DeviceAgentInfo) -> dict[str, str]:
    """The labels a selector sees: the agent's own, plus ferry.dev/os."""
    return {**agent.labels, OS_LABEL: agent.os}


def matches(selector: LabelSelector, labels: Mapping[str, str]) -> bool:
    """metav1.LabelSelector semantics: every matchLabels pair and every requirement holds."""
    if any(labels.get(k) != v for k, v in selector.match_labels.items()):
        return False
    for need in selector.match_expressions:
        present = need.key in labels
        if need.operator is SelectorOperator.IN and labels.get(need.key) not in need.values:
            return False
        if need.operator is SelectorOperator.NOT_IN and present \
                and labels[need.key] in need.values:
            return False
        if need.operator is SelectorOperator.EXISTS and not present:
            return False
        if need.operator is SelectorOperator.DOES_NOT_EXIST and present:
            return False
    return True


def _selected(selection: DeviceSelection, agents: Mapping[str, DeviceAgentInfo],
              discovered: Sequence[DiscoveredDevice]) -> list[str]:
    names = [n.upper() for n in selection.names]
    if selection.selector is not None:
        names += [name for name, agent in agents.items()
                  if matches(selection.selector, labels_of(agent))]
    for ou in selection.ous:
        names += [d.name.upper() for d in discovered if is_under(d.dn, ou)]
    return names


def select(waves: Sequence[Wave], agents: Sequence[DeviceAgentInfo],
           discovered: Sequence[DiscoveredDevice]) -> tuple[list[SelectedDevice], list[str]]:
    """Devices in wave order (each in the first wave that selects it), and the names of
    enrolled device agents no wave selects."""
    active = {a.name.upper(): a for a in agents if not a.revoked}
    taken: dict[str, SelectedDevice] = {}
    for wave in waves:
        for name in _selected(wave.selection, active, discovered):
            if name not in taken:
                taken[name] = SelectedDevice(name, wave.name, active.get(name))
    unselected = sorted(set(active) - set(taken))
    return list(taken.values()), unselected
