"""The cel evaluator without its command-line tool, which a run never uses."""

# common-expression-language 0.10's `cel/__init__.py` runs `from . import cli`, and cel.cli
# imports prompt_toolkit, pygments and rich for its REPL: about 90 ms of CPU on every
# `ferry run`. A placeholder stands in for cel.cli while the package loads and is dropped
# after, so a later `import cel.cli` still loads the real one.

from __future__ import annotations

import importlib
import sys
import types

_CLI = "cel.cli"


def _load_without_cli() -> None:
    if "cel" in sys.modules:
        return
    sys.modules[_CLI] = types.ModuleType(_CLI)
    try:
        importlib.import_module("cel")
    finally:
        del sys.modules[_CLI]


_load_without_cli()

import cel  # noqa: E402
from cel import stdlib  # noqa: E402

__all__ = ["cel", "stdlib"]
