"""Ferry's exit codes and the one root of its errors; a leaf module anything may import.

Every error Ferry raises on purpose derives from FerryError, so a command catches one type and
ends with the error's `exit_code`. The original error travels as the cause (`raise X from exc`),
unless it was dropped on purpose (`from None`) because it could carry a secret or only noise.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import IntEnum
from typing import ClassVar


class ExitCode(IntEnum):
    """Documented exit codes of `ferry run` and `ferry sync-job`."""

    OK = 0
    FAILED = 1             # the run could not complete (connection, unexpected error)
    INVALID_INPUT = 2      # manifests or arguments are wrong; nothing ran
    DELETE_THRESHOLD = 3   # a pair would delete more than its threshold; it deleted nothing
    OBJECT_ERRORS = 4      # the run completed but some objects failed (they retry next run)

    @classmethod
    def worst(cls, codes: Iterable[ExitCode]) -> ExitCode:
        """The one code for several runs: the most severe, which is not the highest number."""
        return max(codes, key=_SEVERITY.index, default=cls.OK)


# Least to most severe: a failed run outranks bad input, which outranks a hit threshold, which
# outranks objects that will be retried.
_SEVERITY = [ExitCode.OK, ExitCode.OBJECT_ERRORS, ExitCode.DELETE_THRESHOLD,
             ExitCode.INVALID_INPUT, ExitCode.FAILED]


class FerryError(Exception):
    """An error Ferry raises on purpose: the message is for the user; `exit_code` ends a command."""

    exit_code: ClassVar[ExitCode] = ExitCode.FAILED

    @property
    def cause(self) -> BaseException | None:
        """The error this one was raised from, if it was kept."""
        return self.__cause__


class InvalidInput(FerryError):
    """Manifests, settings, files or arguments are wrong: nothing ran, the message says the fix."""

    exit_code = ExitCode.INVALID_INPUT
