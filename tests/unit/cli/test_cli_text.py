"""Text from outside (errors, file names, values) is shown as it is, never read as rich markup.

Each case runs the real `ferry` command; the texts hold `[/x]` and `[bold]`, which rich would
either reject (MarkupError: a closing tag with nothing open) or swallow as a style.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from tests.support.bad_input import ferry

OUTSIDE = "[/usr/share/samba/setup/ad-schema/*.ldf] [bold]x[/x]"


def shown(done: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in done.stderr, done.stderr
    assert "MarkupError" not in done.stderr, done.stderr
    return " ".join((done.stdout + done.stderr).split())  # rich wraps long lines


def test_lab_up_shows_a_failing_tool_message_as_it_is(tmp_path: Path) -> None:
    # A system tool whose error text holds brackets, as samba-tool's does when Debian's
    # samba-ad-provision is missing: `ip addr add` is the lab's first system change.
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "ip").write_text(f"#!/bin/sh\necho 'RTNETLINK answers: {OUTSIDE}' >&2\nexit 2\n")
    (tools / "ip").chmod(0o755)
    for tool in ("samba", "samba-tool"):  # present, never reached
        (tools / tool).write_text("#!/bin/sh\nexit 1\n")
        (tools / tool).chmod(0o755)
    done = ferry("lab", "up", "--dir", str(tmp_path / "lab"), cwd=tmp_path,
                 env={"PATH": f"{tools}:{os.environ['PATH']}"})
    assert done.returncode == 1
    assert f"lab: cannot add 127.0.0.2 to lo: RTNETLINK answers: {OUTSIDE}" in shown(done)


def test_a_lab_folder_name_with_brackets_is_shown_as_it_is(tmp_path: Path) -> None:
    folder = tmp_path / "[bold]lab[/x]"
    done = ferry("lab", "seed", "--dir", str(folder), cwd=tmp_path)
    assert done.returncode != 0
    assert f"no lab domain SRC.TEST in {folder}" in shown(done)


@pytest.mark.parametrize("name", ["m[/x]", "[bold]m"])
def test_manifest_problems_show_file_names_and_values_as_they_are(tmp_path: Path,
                                                                   name: str) -> None:
    folder = tmp_path / name
    folder.mkdir(parents=True)
    (folder / "env.yaml").write_text(
        "apiVersion: ferry.dev/v1alpha1\nkind: Environment\n"
        f"metadata: {{name: '{OUTSIDE}'}}\nspec: {{type: '[bold]AD[/x]'}}\n")
    done = ferry("plan", "-f", str(folder), cwd=tmp_path)
    assert done.returncode == 2
    text = shown(done)
    assert "2 problem(s) in the manifests; nothing ran:" in text
    assert f"{folder / 'env.yaml'}: Environment/{OUTSIDE}: metadata.name" in text
    assert "(got '[bold]AD[/x]')" in text


def test_a_missing_manifest_path_with_brackets_is_shown_as_it_is(tmp_path: Path) -> None:
    missing = tmp_path / "[/x]" / "[bold]none.yaml"
    done = ferry("plan", "-f", str(missing), cwd=tmp_path)
    assert done.returncode == 2
    assert f"{missing}: -: no such file or folder" in shown(done)
