"""A manifest cannot make the loader work or grow without bound: aliases that expand without
end, recursive aliases, deep nesting, huge files and folders are refused naming the file, and
every value quoted in a message is short."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ferry.api.errors import MAX_QUOTED, ManifestError
from ferry.api.loader import load_manifests
from ferry.api.safe_yaml import MAX_FILE_BYTES, MAX_TOTAL_BYTES, MAX_VALUES

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "ad-to-ad"

# Nine levels of nine aliases each: 9**10 values (3.5 billion) once expanded.
LAUGHS = "\n".join([
    "apiVersion: ferry.dev/v1alpha1",
    "kind: Template",
    "metadata: {name: lol}",
    "spec:",
    "  a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]",
    *(f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)),
    "  attributeMappings: *a9",
]) + "\n"

# What `ferry plan` reports, with the peak memory of its process (kB), measured by a parent of
# its own so no other child of this test run counts.
_MEASURED = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=600)
print(json.dumps({"code": done.returncode, "stderr": done.stderr,
                  "max_rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def _plan_measured(folder: Path, *args: str) -> dict[str, object]:
    command = [sys.executable, "-c", _MEASURED, sys.executable, "-m", "ferry", "plan", *args]
    done = subprocess.run(command, capture_output=True, text=True, cwd=folder, timeout=900,
                          env={**os.environ, "COLUMNS": "200"}, check=True)
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _problems(*paths: Path) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifests(list(paths))
    return [str(p) for p in caught.value.problems]


def test_billion_laughs_is_refused_at_once_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "laughs.yaml").write_text(LAUGHS)
    result = _plan_measured(tmp_path, "-f", "laughs.yaml")
    stderr = str(result["stderr"])
    assert result["code"] == 2, stderr
    assert "Traceback" not in stderr
    shown = " ".join(stderr.split())
    assert ("laughs.yaml: -: cannot read YAML: more than 100000 values in one document,"
            " counting each alias as the values it repeats (at line 10, column 17)") in shown
    # Interpreter and imports take about 80 MB; expanding the aliases took 727 MB and more.
    assert int(str(result["max_rss_kb"])) < 300 * 1024, result["max_rss_kb"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["laughs.yaml"]


def test_an_alias_inside_the_value_it_names_is_refused(tmp_path: Path) -> None:
    (tmp_path / "loop.yaml").write_text(
        "apiVersion: ferry.dev/v1alpha1\nkind: Template\nmetadata: {name: loop}\n"
        "spec: &spec {attributeMappings: [*spec]}\n")
    [problem] = _problems(tmp_path / "loop.yaml")
    assert problem == (f"{tmp_path}/loop.yaml: -: cannot read YAML: alias *spec at line 4,"
                       " column 34 is inside the value it refers to; write the value out")


def test_nesting_beyond_the_bound_is_refused(tmp_path: Path) -> None:
    (tmp_path / "deep.yaml").write_text("spec: " + "[" * 200 + "]" * 200 + "\n")
    [problem] = _problems(tmp_path / "deep.yaml")
    assert "deep.yaml: -: cannot read YAML: values nested deeper than 64 levels" in problem


def test_aliases_within_the_bound_still_load(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(EXAMPLES, folder)
    template = folder / "template.yaml"
    text = template.read_text().replace("  objectTypes:\n    users: {create: true",
                                        "  objectTypes:\n    users: &all {create: true")
    text = text.replace("    groups: {create: true, update: true, delete: true}",
                        "    groups: *all")
    template.write_text(text)
    loaded = load_manifests([folder]).templates["src-to-tgt"].spec.object_types
    assert loaded.groups == loaded.users


def test_a_file_over_the_size_bound_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text("# " + "x" * MAX_FILE_BYTES + "\n")
    [problem] = _problems(big)
    assert problem == f"{big}: -: larger than 1 MiB; split it (a Kubernetes object is at most" \
                      " 1.5 MiB)"


def test_a_folder_over_the_total_bound_is_refused_unread(tmp_path: Path) -> None:
    folder = tmp_path / "many"
    folder.mkdir()
    filler = "# " + "x" * (MAX_FILE_BYTES - 16) + "\n"
    count = MAX_TOTAL_BYTES // len(filler) + 1
    for i in range(count):
        (folder / f"{i:03}.yaml").write_text(filler)
    [problem] = _problems(folder)
    assert problem == (f"{folder}/{count - 1:03}.yaml: -: the manifests add up to more than"
                       " 16 MiB with this file; load fewer at a time")


def test_values_quoted_in_messages_are_short(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(EXAMPLES, folder)
    env = folder / "environments.yaml"
    env.write_text(env.read_text().replace("port: 636", f"port: p{'6' * 200_000}", 1))
    (folder / "odd.yaml").write_text(json.dumps({
        "apiVersion": "ferry.dev/v1alpha1", "kind": ["Template"] * 50_000,
        "metadata": {"name": "x" * 100_000}}))
    problems = _problems(folder)
    assert len(problems) == 2, problems
    port = next(p for p in problems if "spec.activeDirectory.port" in p)
    assert "Environment/src: spec.activeDirectory.port: Input should be a valid integer" in port
    kind = next(p for p in problems if "odd.yaml" in p)
    assert "unknown kind ['Template', 'Template', 'Template', 'Template', ...]" in kind
    for problem in problems:
        assert len(problem) < len(str(folder)) + 4 * MAX_QUOTED + 200, problem


def test_the_bounds_leave_room_for_real_manifests() -> None:
    # A Template with a thousand mappings is about five thousand values.
    assert MAX_VALUES >= 20 * 5_000
