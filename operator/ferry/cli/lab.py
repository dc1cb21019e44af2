"""`ferry lab`: the local two-domain Samba AD lab."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ferry.cli import render
from ferry.cli.group import command_group
from ferry.cli.options import LAB_DIR
from ferry.cli.render import err, out
from ferry.errors import ExitCode

app = command_group(help="The local two-domain Samba AD lab.")

LabDirOpt = Annotated[Path, typer.Option("--dir", envvar="FERRY_LAB_DIR",
                      help="Lab folder (DCs, logs, secrets).")]


@app.command("up")
def lab_up(lab_dir: LabDirOpt = LAB_DIR) -> None:
    """Start SRC.TEST (127.0.0.2) and TGT.TEST (127.0.0.3): Samba AD DCs (LDAPS, Kerberos, SMB)."""
    from ferry.lab.samba import Lab

    render.lab_domains(Lab(log=lambda m: err.print(m)).up(lab_dir), lab_dir)


@app.command("seed")
def lab_seed(lab_dir: LabDirOpt = LAB_DIR,
             users: Annotated[int, typer.Option(help="Users to create.")] = 1000,
             groups: Annotated[int, typer.Option(help="Groups to create.")] = 50,
             contacts: Annotated[int, typer.Option(help="Contacts to create.")] = 100,
             seed_number: Annotated[int, typer.Option("--seed", help="Random seed.")] = 1,
             realm: Annotated[str, typer.Option(help="Domain to fill.")] = "SRC.TEST") -> None:
    """Fill a lab domain (SRC by default) with realistic users, groups and contacts."""
    from ferry.lab.samba import Lab
    from ferry.lab.seed import seed

    domain = next((d for d in Lab().domains(lab_dir) if d.realm == realm.upper()), None)
    if domain is None:
        err.print(f"no lab domain {realm} in {lab_dir}; run `ferry lab up` first")
        raise typer.Exit(ExitCode.INVALID_INPUT)
    summary = seed(domain, users=users, groups=groups, contacts=contacts, seed=seed_number,
                   replace=True)
    out.print(f"seeded {realm}: {summary.users} users, {summary.groups} groups,"
              f" {summary.contacts} contacts under {summary.corp_dn}"
              f" in {summary.seconds:.1f} s")


@app.command("down")
def lab_down(lab_dir: LabDirOpt = LAB_DIR) -> None:
    """Stop the lab's DCs and remove the lab folder."""
    from ferry.lab.samba import Lab

    Lab().down(lab_dir)
    out.print(f"lab in {lab_dir} is down")


@app.command("status")
def lab_status(lab_dir: LabDirOpt = LAB_DIR) -> None:
    """Show each lab domain and whether it answers."""
    from ferry.lab.samba import Lab

    render.lab_status(Lab().status(lab_dir))
