"""Every CEL expression compiles when the manifests load: a bad one is exit 2 naming file,
object and field, before any directory is reached and with no run recorded."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.support.bad_input import Listener, example_manifests, example_secrets, ferry

from ferry.state.store import StateStore

BROKEN = "'Migrated from SRC: ' + source.sAMAccountName +"


def _refused(tmp_path: Path, listener: Listener, command: str, manifests: Path) -> str:
    state = tmp_path / "state.sqlite"
    done = ferry(command, "-f", str(manifests), "--state", str(state),
                 "--secrets-dir", str(example_secrets(tmp_path / "secrets")), cwd=tmp_path)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output
    assert listener.connections() == 0, "a directory was reached with a broken expression"
    if state.exists():
        with StateStore(str(state), read_only=True) as store:
            assert store.runs.recent() == []
    assert not (tmp_path / ".ferry").exists()
    return " ".join(done.stderr.split())  # the console wraps long lines


@pytest.mark.parametrize("command", ["run", "plan"])
def test_a_mapping_that_does_not_compile_is_named_before_anything_is_read(
        tmp_path: Path, listener: Listener, command: str) -> None:
    manifests = example_manifests(tmp_path / "manifests", listener.port)
    template = manifests / "template.yaml"
    text = template.read_text()
    assert "'Migrated from SRC: ' + source.sAMAccountName\"" in text
    template.write_text(text.replace("'Migrated from SRC: ' + source.sAMAccountName\"",
                                     f'{BROKEN}"'))
    shown = _refused(tmp_path, listener, command, manifests)
    assert "1 problem(s) in the manifests; nothing ran:" in shown
    assert (f"{manifests}/template.yaml: Template/src-to-tgt:"
            " spec.attributeMappings[0].expression: mapping 'description':") in shown
    assert "Syntax error" in shown


def test_a_pair_filter_that_does_not_compile_is_named(tmp_path: Path, listener: Listener
                                                      ) -> None:
    manifests = example_manifests(tmp_path / "manifests", listener.port)
    workflow = manifests / "workflow.yaml"
    text = workflow.read_text()
    old = "            objectTypes: [users, groups, contacts]\n"
    assert old in text
    workflow.write_text(text.replace(old, old + "            filter: \"source.department ==\"\n"))
    shown = _refused(tmp_path, listener, "run", manifests)
    assert (f"{manifests}/workflow.yaml: Workflow/ad-to-ad: spec.steps[2].stageData.pairs[0]"
            ".filter:") in shown


def test_an_unknown_variable_is_named_with_its_mapping(tmp_path: Path, listener: Listener
                                                       ) -> None:
    manifests = example_manifests(tmp_path / "manifests", listener.port)
    template = manifests / "template.yaml"
    template.write_text(template.read_text().replace(
        "has(source.employeeID) ? 'EMP-' + source.employeeID : null",
        "has(source.employeeID) ? 'EMP-' + sourc.employeeID : null"))
    shown = _refused(tmp_path, listener, "plan", manifests)
    assert ("Template/src-to-tgt: spec.attributeMappings[1].expression: mapping"
            " 'employeeType': unknown variable 'sourc'") in shown


def test_an_expression_that_costs_too_much_is_refused_before_anything_is_read(
        tmp_path: Path, listener: Listener) -> None:
    ten = "[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"
    nested = "string(a6)"
    for level in range(6, 0, -1):  # ten to the sixth values: 15 s or more for each object
        nested = f"{ten}.map(a{level}, {nested})"
    manifests = example_manifests(tmp_path / "manifests", listener.port)
    template = manifests / "template.yaml"
    template.write_text(template.read_text().replace(
        "has(source.employeeID) ? 'EMP-' + source.employeeID : null",
        f"has(source.employeeID) ? string({nested}) : null"))
    shown = _refused(tmp_path, listener, "plan", manifests)
    assert (f"{manifests}/template.yaml: Template/src-to-tgt: spec.attributeMappings[1]"
            ".expression: mapping 'employeeType': comprehensions (map, filter, all, exists,"
            " exists_one) nest 6 deep; at most 2") in shown
