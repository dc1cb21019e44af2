"""Manifests load as kubectl would take them, and bad ones get one clear error per problem."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ferry.api.errors import ManifestError
from ferry.api.loader import load_manifests
from ferry.cli import app

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "ad-to-ad"


def test_examples_load_from_a_folder_of_multi_document_files() -> None:
    manifests = load_manifests([EXAMPLES])
    assert sorted(manifests.environments) == ["src", "tgt"]
    assert list(manifests.templates) == ["src-to-tgt"]
    workflow = manifests.workflows["ad-to-ad"]
    assert [s.kind for s in workflow.spec.steps] == [
        "readFrom", "match", "stageData", "writeTo", "deleteObjects"]
    assert manifests.environments["src"].spec.active_directory is not None
    assert manifests.environments["src"].spec.active_directory.base_dn == "DC=src,DC=test"


def _broken_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "manifests"
    shutil.copytree(EXAMPLES, folder)
    env = (folder / "environments.yaml").read_text()
    env = env.replace("    port: 636\n    baseDN: DC=src",
                      "    port: six-three-six\n    baseDN: DC=src")
    env = env.replace("  connection: direct\n  activeDirectory:\n    host: 127.0.0.3",
                      "  connection: direct\n  colour: blue\n  activeDirectory:\n"
                      "    host: 127.0.0.3")
    (folder / "environments.yaml").write_text(env)
    wf = (folder / "workflow.yaml").read_text().replace("template: src-to-tgt",
                                                        "template: src-to-tgx")
    (folder / "workflow.yaml").write_text(wf)
    return folder


def test_unknown_field_wrong_type_and_dangling_reference_give_three_errors(
        tmp_path: Path) -> None:
    folder = _broken_copy(tmp_path)
    with pytest.raises(ManifestError) as caught:
        load_manifests([folder])
    problems = [str(p) for p in caught.value.problems]
    assert len(problems) == 3, problems
    wrong_type, unknown, dangling = sorted(problems, key=lambda p: ("port" not in p,
                                                                    "colour" not in p))
    assert "environments.yaml: Environment/src: spec.activeDirectory.port:" in wrong_type
    assert "valid integer" in wrong_type and "six-three-six" in wrong_type
    assert "environments.yaml: Environment/tgt: spec.colour: unknown field 'colour'" in unknown
    assert "allowed here:" in unknown and "activeDirectory" in unknown
    assert ("workflow.yaml: Workflow/ad-to-ad: spec.steps[2].stageData.template:"
            " Template 'src-to-tgx' not found (known: src-to-tgt)") in dangling


def test_cli_refuses_to_run_invalid_manifests_and_writes_nothing(tmp_path: Path) -> None:
    folder = _broken_copy(tmp_path)
    state = tmp_path / "state.sqlite"
    result = CliRunner().invoke(app, ["run", "-f", str(folder), "--state", str(state)])
    assert result.exit_code == 2
    assert "3 problem(s) in the manifests; nothing ran" in result.output
    assert not state.exists()


@pytest.mark.parametrize(("patch", "expected"), [
    ("intervalMinutes: 60", "spec.schedule.intervalMinutes: Input should be greater than or"
     " equal to 15"),
    ("threshold: 10", "spec.steps[4].deleteObjects.pairs[0].threshold: Input should be greater"
     " than or equal to 0"),
])
def test_impossible_values_are_refused(tmp_path: Path, patch: str, expected: str) -> None:
    folder = tmp_path / "m"
    shutil.copytree(EXAMPLES, folder)
    wf = folder / "workflow.yaml"
    bad = patch.replace("60", "5") if "interval" in patch else patch.replace("10", "-1")
    wf.write_text(wf.read_text().replace(patch, bad))
    with pytest.raises(ManifestError) as caught:
        load_manifests([folder])
    assert any(expected in str(p) for p in caught.value.problems), caught.value.problems


def test_environment_block_must_match_type(tmp_path: Path) -> None:
    doc = tmp_path / "env.yaml"
    doc.write_text("""apiVersion: ferry.dev/v1alpha1
kind: Environment
metadata: {name: cloud}
spec:
  type: EntraID
  activeDirectory:
    host: x
    baseDN: DC=x
    credentials: {username: a, password: {env: X}}
""")
    with pytest.raises(ManifestError) as caught:
        load_manifests([doc])
    assert "type EntraID needs the entraID block" in str(caught.value)


def test_match_before_read_and_write_without_stage_are_refused(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(EXAMPLES, folder)
    wf = folder / "workflow.yaml"
    wf.write_text(wf.read_text().replace("environments: [src, tgt]", "environments: [src]"))
    with pytest.raises(ManifestError) as caught:
        load_manifests([folder])
    text = str(caught.value)
    assert "spec.steps[1].match.target: 'tgt' is matched before any readFrom step reads it" \
        in text


def _with_steps(tmp_path: Path, before: str, after: str = "",
                extra: str = "") -> Path:
    """The example with script steps added first (before) and last (after)."""
    folder = tmp_path / "m"
    shutil.copytree(EXAMPLES, folder)
    wf = folder / "workflow.yaml"
    text = wf.read_text().replace("  steps:\n", f"  steps:\n{before}", 1) + after
    wf.write_text(text)
    if extra:
        (folder / "extra.yaml").write_text(extra)
    return folder


def test_script_steps_load_with_their_configmap_and_are_placed_around_the_phases(
        tmp_path: Path) -> None:
    from ferry.scripts.placement import ScriptPoint, placed_scripts

    folder = _with_steps(
        tmp_path, "    - name: gate\n      runScript: {command: [/bin/true]}\n",
        "    - name: notify\n      runScript:\n        command: [/bin/sh]\n"
        "        script: {configMapKeyRef: {name: scripts, key: notify.sh}}\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: scripts}\n"
        "data:\n  notify.sh: echo done\n")
    manifests = load_manifests([folder])
    assert manifests.config_maps == {"scripts": {"notify.sh": "echo done"}}
    placed = placed_scripts(manifests.workflows["ad-to-ad"].spec)
    assert [(s.index, s.name, s.point) for s in placed] == [
        (0, "gate", ScriptPoint.BEFORE_READ), (6, "notify", ScriptPoint.AFTER_WRITE)]


def test_script_steps_naming_what_is_not_there_or_inside_a_phase_are_refused(
        tmp_path: Path) -> None:
    folder = _with_steps(
        tmp_path, "",
        "    - runScript:\n        command: [/bin/sh]\n"
        "        script: {configMapKeyRef: {name: scripts, key: missing.sh}}\n"
        "    - runScript:\n        command: [/bin/sh]\n        environment: nowhere\n"
        "        script: {inline: 'true'}\n"
        "    - runScript:\n        command: [/bin/sh]\n        environment: src\n"
        "        script: {inline: 'true'}\n"
        "    - runScript: {command: [/bin/true]}\n"
        "    - deleteObjects:\n        pairs: [{source: src, target: tgt}]\n",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: scripts}\n"
        "data:\n  notify.sh: echo done\n")
    with pytest.raises(ManifestError) as caught:
        load_manifests([folder])
    text = str(caught.value)
    assert "spec.steps[5].runScript.script.configMapKeyRef.key: ConfigMap 'scripts' has no" \
        " key 'missing.sh' (keys: notify.sh)" in text
    assert "spec.steps[6].runScript.environment: Environment 'nowhere' not found" in text
    assert "spec.steps[7].runScript.environment: scripts run on the agents of an Active" \
        " Directory Environment with connection: agent; 'src' has none" in text
    assert "spec.steps[8]: a run writes every pair in one phase" in text
