"""How long-running steps report progress; the CLI draws bars, Jobs log counts."""

from __future__ import annotations

from typing import Protocol


class ProgressTask(Protocol):
    def advance(self, amount: int = 1) -> None: ...

    def finish(self) -> None: ...


class Progress(Protocol):
    def task(self, description: str, total: int | None = None) -> ProgressTask: ...


class _Silent:
    def advance(self, amount: int = 1) -> None:
        pass

    def finish(self) -> None:
        pass


class NoProgress:
    """Progress that shows nothing (tests, library use)."""

    def task(self, description: str, total: int | None = None) -> ProgressTask:
        return _Silent()
