"""A script step's text: inline in the Workflow, or a key of a ConfigMap (outside a cluster a
ConfigMap manifest beside the Workflow; in the sync Job's pod, the ConfigMap mounted)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ferry.api.workflow import MAX_SCRIPT_BYTES, WorkflowSpec
from ferry.scripts.placement import PlacedScript

CONFIG_MAPS_DIR_ENV = "FERRY_CONFIGMAPS_DIR"
DEFAULT_CONFIG_MAPS_DIR = "/etc/ferry/configmaps"   # <dir>/<ConfigMap>/<key>, as mounted


def config_map_keys(spec: WorkflowSpec) -> dict[str, set[str]]:
    """ConfigMap name -> keys the workflow's script steps read."""
    keys: dict[str, set[str]] = {}
    for step in spec.steps:
        source = step.run_script.script if step.run_script else None
        ref = source.config_map_key_ref if source else None
        if ref is not None:
            keys.setdefault(ref.name, set()).add(ref.key)
    return keys


@dataclass(frozen=True)
class ScriptTexts:
    """ConfigMap name -> its data, as far as this run was given them."""

    config_maps: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def text_of(self, script: PlacedScript) -> str | None:
        source = script.step.script
        if source is None:
            return None
        if source.inline is not None:
            return source.inline
        ref = source.config_map_key_ref
        assert ref is not None   # the model sets exactly one
        return self.config_maps[ref.name][ref.key]   # check_references found it


def mounted_config_maps(keys: Mapping[str, set[str]],
                        folder: str | None = None) -> dict[str, dict[str, str]]:
    """The ConfigMap keys the sync Job's pod has mounted (a missing one is left out)."""
    base = Path(folder or os.environ.get(CONFIG_MAPS_DIR_ENV, DEFAULT_CONFIG_MAPS_DIR))
    found: dict[str, dict[str, str]] = {}
    for name, wanted in keys.items():
        for key in wanted:
            path = base / name / key
            if path.is_file() and path.stat().st_size <= MAX_SCRIPT_BYTES:
                found.setdefault(name, {})[key] = path.read_text(encoding="utf-8")
    return found
