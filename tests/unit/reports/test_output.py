"""reports/output.py: a report's files into a folder, or as a tar on a stream."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from ferry.errors import InvalidInput
from ferry.reports.output import check_out, write_files

FILES = {"users.csv": "dn\r\nCN=Ann\r\n", "summary.html": "<p>Zoë</p>"}


def test_a_tar_on_the_stream_holds_each_file_under_the_folder() -> None:
    stream = io.BytesIO()
    written = write_files(FILES, "-", stream, folder="discovery-src")
    assert written == ["discovery-src/users.csv", "discovery-src/summary.html"]
    stream.seek(0)
    with tarfile.open(fileobj=stream) as tar:
        assert tar.getnames() == written
        member = tar.extractfile("discovery-src/summary.html")
        assert member is not None and member.read().decode() == "<p>Zoë</p>"


def test_a_folder_is_made_and_files_keep_their_line_ends(tmp_path: Path) -> None:
    out = tmp_path / "new" / "reports"
    written = write_files(FILES, str(out), io.BytesIO())
    assert written == [str(out / "users.csv"), str(out / "summary.html")]
    assert (out / "users.csv").read_bytes() == b"dn\r\nCN=Ann\r\n"


def test_a_file_as_out_is_refused_before_anything(tmp_path: Path) -> None:
    existing = tmp_path / "report.csv"
    existing.write_text("mine")
    with pytest.raises(InvalidInput, match="is a file, not a folder"):
        check_out(str(existing))
    assert existing.read_text() == "mine"
    check_out("-")
    check_out(str(tmp_path / "missing"))
