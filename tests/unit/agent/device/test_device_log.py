"""The device agent's own log: kept in its state folder, rotated, and what UploadLogs sends of
it is the last MiB in whole lines."""

from __future__ import annotations

import logging
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ferry_agent.device.agent import LOG_BYTES, log_tail, log_to


@pytest.fixture
def logger(tmp_path: Path) -> Iterator[logging.Logger]:
    log = logging.getLogger("ferry_agent")
    before, level = list(log.handlers), log.level
    log.setLevel(logging.INFO)
    yield log
    for handler in log.handlers[len(before):]:
        handler.close()
    log.handlers, log.level = before, level


def test_the_upload_is_the_last_mib_in_whole_lines_across_rotations(
        tmp_path: Path, logger: logging.Logger) -> None:
    path = log_to(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    line = "é" * 200                       # two bytes a character: cuts fall mid-character
    for number in range(8000):              # about 3 MiB: rotated more than once
        logger.info("line %05d %s", number, line)
    on_disk = sum(p.stat().st_size for p in tmp_path.iterdir() if p.name.startswith(path.name))
    assert on_disk <= 2 * LOG_BYTES + 1000
    text = log_tail(path)
    assert len(text.encode("utf-8")) <= LOG_BYTES
    assert len(text.encode("utf-8")) > LOG_BYTES - 1000
    lines = text.splitlines()
    assert lines[-1].endswith(f"line 07999 {line}")
    assert all(f" {line}" in each and " INFO line " in each for each in lines)
    numbers = [int(each.split("line ")[1][:5]) for each in lines]
    assert numbers == list(range(numbers[0], 8000))


def test_a_short_log_is_sent_whole(tmp_path: Path, logger: logging.Logger) -> None:
    path = log_to(tmp_path)
    logger.info("device agent WS1 polling")
    assert log_tail(path).endswith("INFO device agent WS1 polling\n")
    assert log_tail(tmp_path / "never-written.log") == ""
