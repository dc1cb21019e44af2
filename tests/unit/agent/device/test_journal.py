"""The device agent's journal survives a SIGKILL: a finished action is known finished (and is
re-reported, not run again), a started one runs again with its attempt counted up."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ferry_agent.device.journal import JOURNAL_FILE, ActionKey, Journal, JournalError
from ferry_agent.device.outcome import ActionOutcome

REACL = ActionKey("it/wave-1", 3, "1-ReACL")
JOIN = ActionKey("it/wave-1", 3, "2-DomainJoin")

# The journal written by a process that is then SIGKILLed, before it could exit cleanly.
CHILD = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from ferry_agent.device.journal import ActionKey, Journal
    from ferry_agent.device.outcome import ActionOutcome

    journal = Journal.open(Path(sys.argv[1]))
    reacl = ActionKey("it/wave-1", 3, "1-ReACL")
    join = ActionKey("it/wave-1", 3, "2-DomainJoin")
    journal.start(reacl)
    journal.finish(reacl, ActionOutcome(True, "12 files changed",
                                        {"files": {"scanned": 40, "changed": 12}}))
    journal.start(join)
    os.kill(os.getpid(), signal.SIGKILL)
""")


def _killed_writer(folder: Path) -> None:
    agent = Path(__file__).resolve().parents[4] / "agent"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(agent),
                                                        os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", CHILD, str(folder)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == -signal.SIGKILL, done.stderr


def test_after_a_sigkill_the_finished_action_is_kept_and_the_started_one_runs_again(
        tmp_path: Path) -> None:
    _killed_writer(tmp_path)
    journal = Journal.open(tmp_path)
    finished = journal.get(REACL)
    assert finished is not None and finished.finished and not finished.sent
    assert finished.outcome == ActionOutcome(True, "12 files changed",
                                             {"files": {"scanned": 40, "changed": 12}})
    assert finished.finished_at.endswith("Z")
    assert [e.key for e in journal.unsent("it/wave-1")] == [REACL]   # re-reported, not re-run
    started = journal.get(JOIN)
    assert started is not None and not started.finished and started.attempt == 1
    again = journal.start(JOIN)
    assert again.attempt == 2
    # and the second start is on disk as well
    assert Journal.open(tmp_path).get(JOIN) == again


def test_a_result_once_acknowledged_is_not_sent_again(tmp_path: Path) -> None:
    _killed_writer(tmp_path)
    Journal.open(tmp_path).mark_sent(REACL)
    journal = Journal.open(tmp_path)
    assert journal.unsent("it/wave-1") == []
    entry = journal.get(REACL)
    assert entry is not None and entry.sent and entry.finished


def test_a_line_cut_short_by_a_power_cut_is_dropped_and_appending_goes_on(
        tmp_path: Path) -> None:
    _killed_writer(tmp_path)
    path = tmp_path / JOURNAL_FILE
    whole = path.read_bytes()
    record = json.dumps({"migration": "it/wave-1", "generation": 3, "action": "2-DomainJoin",
                         "event": "finished", "ok": True, "message": "joined"})
    path.write_bytes(whole + record[:30].encode())
    journal = Journal.open(tmp_path)
    joined = journal.get(JOIN)
    assert joined is not None and not joined.finished    # the torn finish never happened
    assert path.read_bytes() == whole
    journal.finish(JOIN, ActionOutcome(True, "joined tgt.example"))
    reopened = Journal.open(tmp_path).get(JOIN)
    assert reopened is not None and reopened.outcome == ActionOutcome(True, "joined tgt.example")


def test_the_journal_file_is_owner_only(tmp_path: Path) -> None:
    _killed_writer(tmp_path)
    assert stat.S_IMODE((tmp_path / JOURNAL_FILE).stat().st_mode) == 0o600


def test_a_damaged_line_in_the_middle_names_the_file_line_and_fix(tmp_path: Path) -> None:
    _killed_writer(tmp_path)
    path = tmp_path / JOURNAL_FILE
    lines = path.read_bytes().split(b"\n")
    path.write_bytes(b"\n".join([lines[0], b"{not json", *lines[1:]]))
    with pytest.raises(JournalError) as caught:
        Journal.open(tmp_path)
    assert str(path) in str(caught.value) and "line 2" in str(caught.value)
    assert "move the file aside" in str(caught.value)


def test_a_long_journal_is_compacted_on_opening_and_keeps_what_matters(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ferry_agent.device import journal as module

    monkeypatch.setattr(module, "COMPACT_BYTES", 2000)
    journal = Journal.open(tmp_path)
    for generation in range(1, 40):
        key = ActionKey("it/wave-1", generation, "1-ReACL")
        for _ in range(3):   # killed twice part-way
            journal.start(key)
        journal.finish(key, ActionOutcome(False, "disk full"))
        journal.mark_sent(key)
    journal.start(JOIN)
    before = (tmp_path / JOURNAL_FILE).stat().st_size
    reopened = Journal.open(tmp_path)
    assert (tmp_path / JOURNAL_FILE).stat().st_size < before * 0.7
    assert reopened.entries() == journal.entries()
    assert Journal.open(tmp_path).entries() == journal.entries()
    last = Journal.open(tmp_path).get(ActionKey("it/wave-1", 39, "1-ReACL"))
    assert last is not None and last.attempt == 3 and last.sent
