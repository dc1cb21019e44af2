"""A Template may only place objects where the target Environment reads them back."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ferry.api.errors import ManifestError
from ferry.api.loader import load_manifests
from ferry.cli import app

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "ad-to-ad"
SCOPE = "OU=Migrated,DC=tgt,DC=test"  # the target's spec.scope.ous in the example
SALES = "OU=Sales,OU=Migrated,DC=tgt,DC=test"  # the example's first mapping's targetOU


def _copy(tmp_path: Path, old: str, new: str) -> Path:
    folder = tmp_path / "manifests"
    shutil.copytree(EXAMPLES, folder)
    template = folder / "template.yaml"
    text = template.read_text()
    assert old in text
    template.write_text(text.replace(old, new, 1))
    return folder


def _problems(folder: Path) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifests([folder])
    return [str(p) for p in caught.value.problems]


def test_default_target_ou_outside_the_target_scope_is_refused(tmp_path: Path) -> None:
    folder = _copy(tmp_path, f"default: {SCOPE}", "default: OU=Elsewhere,DC=tgt,DC=test")
    [problem] = _problems(folder)
    assert "workflow.yaml: Workflow/ad-to-ad: spec.steps[2].stageData.pairs[0].target:" in problem
    assert ("Template 'src-to-tgt' spec.targetOU.default 'OU=Elsewhere,DC=tgt,DC=test' is"
            " outside the scope of Environment 'tgt'") in problem
    assert f"spec.scope.ous: {SCOPE}" in problem


def test_mapping_whose_ou_only_looks_inside_the_scope_is_refused(tmp_path: Path) -> None:
    # One RDN whose value is "evil,OU=Migrated", directly below DC=tgt: outside the scope,
    # though its text ends with the scope's DN.
    evil = r"OU=evil\,OU=Migrated,DC=tgt,DC=test"
    folder = _copy(tmp_path, f"targetOU: {SALES}", f"targetOU: '{evil}'")
    [problem] = _problems(folder)
    assert "Template 'src-to-tgt' spec.targetOU.mappings[0].targetOU" in problem
    assert evil.replace("\\", "\\\\") in problem and "Environment 'tgt'" in problem


def test_target_ou_spelled_differently_inside_the_scope_loads(tmp_path: Path) -> None:
    folder = _copy(tmp_path, f"targetOU: {SALES}",
                   "targetOU: ou=Sales , OU=migrated,dc=TGT,DC=test")
    assert list(load_manifests([folder]).templates) == ["src-to-tgt"]


def test_a_target_ou_that_is_no_dn_is_refused_with_the_reason(tmp_path: Path) -> None:
    folder = _copy(tmp_path, f"targetOU: {SALES}", "targetOU: Sales")
    [problem] = _problems(folder)
    # Refused as the manifests load (a DN field), naming the Template, the field and why.
    assert "Template/src-to-tgt: spec.targetOU.mappings[0].targetOU: not a distinguished" \
        " name" in problem and "'='" in problem


@pytest.mark.parametrize("command", ["plan", "run"])
def test_plan_and_run_exit_2_before_any_connection(tmp_path: Path, command: str) -> None:
    folder = _copy(tmp_path, f"default: {SCOPE}", "default: OU=Elsewhere,DC=tgt,DC=test")
    # Nothing listens on port 1: a connection attempt would fail the run with exit 1.
    environments = folder / "environments.yaml"
    environments.write_text(environments.read_text().replace("port: 636", "port: 1"))
    state = tmp_path / "state.sqlite"
    result = CliRunner().invoke(app, [command, "-f", str(folder), "--state", str(state)])
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert "1 problem(s) in the manifests; nothing ran" in output
    assert "spec.targetOU.default" in output and "Environment 'tgt'" in output
    assert not state.exists()
