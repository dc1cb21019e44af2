"""`ferry job-credential`: the signing key and the credentials sync runs show the gateway."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ferry.cli.group import command_group
from ferry.cli.render import err
from ferry.errors import InvalidInput

app = command_group(help="Job credentials: what sync runs present to the gateway, each bound"
                    " to a few environments (the operator makes its own for every Job).")


@app.command("key")
def job_credential_key(folder: Annotated[Path, typer.Argument(
        help="Where to write job-signing.key (owner-only) and job-signing.pub.")]) -> None:
    """Make the job signing key pair: .key for the signer, .pub for `gateway --job-key`."""
    from ferry.gateway.job_auth import write_signing_key

    try:
        key_file, pub_file = write_signing_key(folder)
    except OSError as exc:
        raise InvalidInput(str(exc)) from exc
    err.print(f"signing key {key_file} (keep it secret), public key {pub_file} (--job-key)")


@app.command("create")
def job_credential_create(
    signing_key: Annotated[Path, typer.Option(
        "--signing-key", envvar="FERRY_JOB_SIGNING_KEY_FILE",
        help="The job signing key (job-signing.key).")],
    environment: Annotated[list[str], typer.Option(
        "--environment", "-e", help="An environment the holder may reach (repeat for more).")],
    ttl: Annotated[str, typer.Option(help="How long it is valid: 30m, 8h, 7d (at most 7d).")]
    = "8h",
    subject: Annotated[str | None, typer.Option(
        help="Who it is for, as the gateway logs it (default: a new random name).")] = None,
) -> None:
    """Sign a job credential for `ferry run` against a gateway (FERRY_GATEWAY_TOKEN_FILE)."""
    import secrets as random_names

    from ferry.gateway.enrollment import check_environment, parse_ttl
    from ferry.gateway.job_auth import MAX_TTL, load_signing_key, mint

    try:
        lifetime = parse_ttl(ttl)
        if lifetime > MAX_TTL:
            raise ValueError(f"--ttl {ttl}: a job credential lives at most {MAX_TTL.days} days")
        names = [check_environment(e) for e in environment]
        token = mint(load_signing_key(signing_key),
                     subject or f"cli-{random_names.token_hex(4)}", names, lifetime)
    except ValueError as exc:  # a TTL or name the gateway's parsers refused
        raise InvalidInput(str(exc)) from exc
    typer.echo(token)  # alone on stdout: ferry job-credential create ... > token-file
    err.print(f"job credential for {', '.join(sorted(set(names)))}, valid for {ttl}")

