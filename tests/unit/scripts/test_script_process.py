"""A script step's process: a clean environment, its context files, a deadline that ends what
it started, and only the end of its output kept."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ferry_agent.scripts.allowed import AllowedPrograms, ScriptRefused
from ferry_agent.scripts.process import TAIL_BYTES, ScriptProcess, run_script_process


def test_the_script_reads_its_variables_and_files_and_not_the_parents_environment(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERRY_STATE_URL", "postgresql://ferry:secret@db/ferry")
    done = run_script_process(ScriptProcess(
        ["/bin/sh"], 'echo "run=$FERRY_RUN_ID state=${FERRY_STATE_URL:-unset}"\n'
        'cat "$FERRY_CONTEXT_FILE"; echo; pwd; exit 3\n',
        {"FERRY_RUN_ID": "r1"}, {"FERRY_CONTEXT_FILE": ("ferry-context.json", b'{"a": 1}')},
        timeout=60))
    lines = done.tail.splitlines()
    assert lines[0] == "run=r1 state=unset"
    assert lines[1] == '{"a": 1}'
    assert Path(lines[2]).name.startswith("ferry-script-")
    assert not Path(lines[2]).exists()   # its folder goes with it
    assert (done.exit_code, done.timed_out, done.succeeded) == (3, False, False)


def test_a_script_past_its_timeout_is_stopped_with_what_it_started() -> None:
    marker = Path(f"/tmp/ferry-test-child-{os.getpid()}")
    done = run_script_process(ScriptProcess(
        ["/bin/sh"], f"(sleep 300; touch {marker}) &\necho started\nsleep 300\n", timeout=1))
    assert done.timed_out and done.exit_code is None and not done.succeeded
    assert done.tail == "started\n"
    assert not marker.exists()


def test_only_the_end_of_a_long_output_is_kept() -> None:
    done = run_script_process(ScriptProcess(
        ["/bin/sh"], "i=0; while [ $i -lt 20000 ]; do echo line-$i; i=$((i+1)); done\n",
        timeout=120))
    assert done.succeeded
    assert len(done.tail.encode()) <= TAIL_BYTES
    assert done.tail.endswith("line-19999\n")


def test_a_program_that_does_not_exist_is_a_failure_naming_it() -> None:
    done = run_script_process(ScriptProcess(["/no/such/pwsh", "-File"], "Write-Host hi"))
    assert not done.succeeded and done.exit_code is None
    assert "cannot start '/no/such/pwsh'" in done.error


def test_an_agent_runs_only_the_programs_its_ini_allows() -> None:
    allowed = AllowedPrograms.parse("/usr/bin/pwsh, /bin/sh", "[scripts] of ad.ini")
    allowed.check(["/bin/sh", "-e"])
    with pytest.raises(ScriptRefused, match=r"'/bin/bash' is not in \[scripts\] allow of"
                       r" \[scripts\] of ad.ini \(allowed: /bin/sh, /usr/bin/pwsh\)"):
        allowed.check(["/bin/bash"])
    with pytest.raises(ScriptRefused, match=r"this agent runs no scripts: add \[scripts\]"
                       r" allow = /bin/sh"):
        AllowedPrograms.parse(None, "ad.ini").check(["/bin/sh"])
