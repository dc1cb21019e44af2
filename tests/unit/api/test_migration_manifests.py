"""Password sync and SID history are refused when the manifests load where they cannot work,
naming the Template field and the fix, before any directory is touched."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ferry.api.errors import ManifestError
from ferry.api.loader import load_manifests

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "ad-to-ad"
MUST_CHANGE = "    mustChangeAtNextLogon: true\n"


def _manifests(tmp_path: Path, password: str = MUST_CHANGE, extra: str = "",
               connection: str = "direct") -> Path:
    folder = tmp_path / "manifests"
    shutil.copytree(EXAMPLES, folder)
    template = folder / "template.yaml"
    text = template.read_text()
    assert MUST_CHANGE in text
    template.write_text(text.replace(MUST_CHANGE, password).rstrip("\n") + "\n" + extra)
    environments = folder / "environments.yaml"
    environments.write_text(environments.read_text().replace(
        "connection: direct", f"connection: {connection}"))
    return folder


def _problems(folder: Path) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifests([folder])
    return [str(p) for p in caught.value.problems]


def test_password_sync_with_must_change_is_refused(tmp_path: Path) -> None:
    folder = _manifests(tmp_path, MUST_CHANGE + "    sync: {mode: Replication}\n")
    [problem] = _problems(folder)
    assert "template.yaml" in problem and "mustChangeAtNextLogon" in problem
    assert "remove mustChangeAtNextLogon or set it to false" in problem


def test_password_sync_needs_no_must_change_and_loads(tmp_path: Path) -> None:
    folder = _manifests(tmp_path, "    sync: {mode: Replication}\n")
    template = load_manifests([folder]).templates["src-to-tgt"].spec
    assert template.password.synced and not template.password.must_change


def test_sid_history_over_a_direct_connection_is_refused(tmp_path: Path) -> None:
    folder = _manifests(tmp_path, extra="  sidHistory:\n    enabled: true\n")
    [problem] = _problems(folder)
    assert "Workflow/ad-to-ad: spec.steps[2].stageData.pairs[0]" in problem
    assert "spec.sidHistory.enabled" in problem and "connection: agent" in problem


def test_sid_history_through_agents_loads(tmp_path: Path) -> None:
    folder = _manifests(tmp_path, extra="  sidHistory:\n    enabled: true\n",
                        connection="agent")
    loaded = load_manifests([folder])
    assert loaded.templates["src-to-tgt"].spec.sid_history.enabled


def test_dc_agent_mode_needs_agents_on_both_sides(tmp_path: Path) -> None:
    folder = _manifests(tmp_path, "    sync: {mode: DCAgent}\n")
    problems = _problems(folder)
    assert len(problems) == 2
    assert all("spec.password.sync.mode DCAgent" in p and "connection: agent" in p
               for p in problems)
