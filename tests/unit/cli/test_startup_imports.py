"""`ferry --help` and `ferry-agent --help` answer at once: starting either command loads none
of the heavy libraries; each command imports what it uses when it runs."""

from __future__ import annotations

import subprocess
import sys

import pytest


def _top_level_modules_after(statement: str) -> set[str]:
    """The top-level packages a fresh interpreter has loaded after running `statement`."""
    done = subprocess.run(
        [sys.executable, "-c", f"{statement}; import sys; print('\\n'.join(sys.modules))"],
        capture_output=True, text=True, timeout=120, check=True)
    return {name.partition(".")[0] for name in done.stdout.split()}


@pytest.mark.parametrize(("statement", "heavy"), [
    ("import ferry.cli", {"sqlalchemy", "kopf", "kubernetes", "msgraph", "pydantic", "aiohttp",
                          "ldap3", "cel", "structlog"}),
    ("import ferry_agent.cli", {"ldap3", "cryptography"}),
])
def test_starting_the_command_loads_no_heavy_library(statement: str, heavy: set[str]) -> None:
    assert sorted(_top_level_modules_after(statement) & heavy) == []


def test_help_is_drawn_without_loading_a_markdown_or_syntax_highlighter() -> None:
    # typer's rich help loads markdown-it and pygments and costs half of the 0.3 s budget.
    shown = _top_level_modules_after(
        "import sys; sys.argv = ['ferry', '--help']; from ferry.cli import main\n"
        "try: main()\nexcept SystemExit: pass")
    assert sorted(shown & {"markdown_it", "pygments"}) == []
