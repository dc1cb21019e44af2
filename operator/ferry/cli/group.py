"""The group every `ferry` command belongs to: a FerryError ends the command, in this one place,
with its message on stderr and its exit code."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from ferry.cli.render import failure
from ferry.errors import FerryError


def command_group(**options: Any) -> typer.Typer:
    """A `ferry` command group: plain help, and a FerryError ends its commands (Commands)."""
    # Help is click's plain text, not rich's panels: typer's rich help loads markdown-it and
    # pygments and renders for ~0.15 s, half of what `ferry --help` may take (0.3 s).
    return typer.Typer(cls=Commands, no_args_is_help=True, rich_markup_mode=None, **options)


class Commands(TyperGroup):
    """A command group whose commands raise FerryError rather than print and exit."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except FerryError as exc:
            # The innermost group around the command catches it first: it knows the path.
            failure(_path(ctx), exc)
            raise typer.Exit(exc.exit_code) from None


def _path(ctx: Any) -> str:
    """The invoked command's path under `ferry`, e.g. "lab up"."""
    names = [ctx.invoked_subcommand or ""]
    while ctx.parent is not None:  # the root's own name is the program's
        names.insert(0, ctx.info_name or "")
        ctx = ctx.parent
    return " ".join(names)
