"""The options several commands share, and their defaults."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from ferry.secrets import SECRETS_DIR_ENV

DEFAULT_STATE = ".ferry/state.sqlite"
LAB_DIR = Path(os.environ.get("FERRY_LAB_DIR", ".lab"))

PathsOpt = Annotated[list[Path], typer.Option("-f", "--filename",
                     help="Manifest file or folder (repeatable), as for kubectl apply -f.")]
WorkflowOpt = Annotated[str | None, typer.Option("--workflow", "-w",
                        help="Run only this Workflow (default: all in the manifests).")]
StateOpt = Annotated[str, typer.Option("--state", envvar="FERRY_STATE",
                     help="State store: a SQLite file path or a SQLAlchemy URL (PostgreSQL).")]
SecretsOpt = Annotated[str | None, typer.Option("--secrets-dir", envvar=SECRETS_DIR_ENV,
                       help="Folder laid out as <secret>/<key> resolving secretKeyRef values.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log every step.")]
PlanOutOpt = Annotated[Path | None, typer.Option("--out", help="Plan JSON file.")]
