"""`ferry run` over several workflows exits with the most severe of their codes, which is not
the highest number: a failed run (1) outranks everything, object errors (4) only ok (0)."""

from __future__ import annotations

import pytest

from ferry.errors import ExitCode


@pytest.mark.parametrize(("codes", "worst"), [
    ([], ExitCode.OK),
    ([ExitCode.OK, ExitCode.OK], ExitCode.OK),
    ([ExitCode.OBJECT_ERRORS, ExitCode.OK], ExitCode.OBJECT_ERRORS),
    ([ExitCode.OBJECT_ERRORS, ExitCode.DELETE_THRESHOLD], ExitCode.DELETE_THRESHOLD),
    ([ExitCode.DELETE_THRESHOLD, ExitCode.INVALID_INPUT, ExitCode.OBJECT_ERRORS],
     ExitCode.INVALID_INPUT),
    ([ExitCode.OBJECT_ERRORS, ExitCode.FAILED, ExitCode.INVALID_INPUT], ExitCode.FAILED),
])
def test_several_runs_end_with_the_most_severe_code(codes: list[ExitCode],
                                                    worst: ExitCode) -> None:
    assert ExitCode.worst(codes) is worst
