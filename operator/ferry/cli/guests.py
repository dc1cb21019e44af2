"""`ferry guests`: B2B guests in Entra ID targets."""

from __future__ import annotations

from typing import Annotated

import typer

from ferry.cli.group import command_group
from ferry.cli.options import DEFAULT_STATE, PathsOpt, SecretsOpt, StateOpt
from ferry.cli.render import out

app = command_group(help="B2B guests in Entra ID targets.")


@app.command("invite")
def guests_invite(
        paths: PathsOpt,
        environment: Annotated[str, typer.Option(
            "--environment", "-e", help="The Entra ID Environment holding the guests.")],
        where: Annotated[str | None, typer.Option(
            help="CEL selector over each guest (source.<property>), e.g."
            " \"source.mail.endsWith('@contoso.com')\". Unset: every pending guest.")]
        = None,
        state: StateOpt = DEFAULT_STATE, secrets_dir: SecretsOpt = None,
        dry_run: Annotated[bool, typer.Option(
            "--dry-run", help="List who would be invited; send nothing.")] = False) -> None:
    """Send invitations to the guests Ferry created without one (those not redeemed yet)."""
    from ferry.cli import manifests as local
    from ferry.settings import RunSettings
    from ferry.state.store import StateStore
    from ferry.sync.guests import invite_guests

    settings = RunSettings.from_environment()
    manifests = local.load(paths)
    with StateStore(state) as store:
        invited = invite_guests(manifests, environment, store, local.secrets(secrets_dir, paths),
                                settings, where, dry_run)
    verb = "would invite" if dry_run else "invited"
    for guest in invited:
        out.print(f"{verb} {guest.mail} ({guest.guest})")
    out.print(f"{len(invited)} guest(s) {verb}")

