"""Where a report's files go: into a folder, or as one tar on a stream (`--out -`), which a
user pipes to `tar x` from `kubectl exec`."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from ferry.errors import InvalidInput

STDOUT = "-"


def check_out(out: str) -> None:
    """Refuse an --out that cannot be a folder, before anything is read or written."""
    if out == STDOUT:
        return
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise InvalidInput(f"--out {out}: is a file, not a folder; give a folder (it is made"
                           " if missing) or - for a tar on stdout")


def write_files(files: Mapping[str, str], out: str, stream: BinaryIO, *,
                folder: str = "") -> list[str]:
    """Write each file (name -> text, UTF-8) into out, or as a tar to stream (its members
    under folder/); returns where each went."""
    if out == STDOUT:
        with tarfile.open(fileobj=stream, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for name, text in files.items():
                data = text.encode("utf-8")
                info = tarfile.TarInfo(f"{folder}/{name}" if folder else name)
                info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
                tar.addfile(info, io.BytesIO(data))
        stream.flush()
        return [f"{folder}/{name}" if folder else name for name in files]
    path = Path(out)
    path.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in files.items():
        target = path / name
        target.write_text(text, encoding="utf-8", newline="")
        written.append(str(target))
    return written
