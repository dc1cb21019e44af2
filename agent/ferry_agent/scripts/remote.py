"""A script step sent to this agent as a work item: check its program against the INI, open
its sealed variables with the agent's key, run it, answer how it went."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from ..protocol import ProtocolError, as_strings
from ..sealed import open_sealed
from .allowed import AllowedPrograms, ScriptRefused
from .process import ScriptProcess, run_script_process

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

MAX_TIMEOUT = 86400


def run_remote_script(arguments: dict[str, Any], allowed: AllowedPrograms | None,
                      key: ec.EllipticCurvePrivateKey | None) -> dict[str, Any]:
    """Run the work item's script step; ScriptRefused when this agent does not run it."""
    command = as_strings(arguments.get("command") or [], "command")
    (allowed or AllowedPrograms(frozenset())).check(command)
    script = arguments.get("script")
    if script is not None and not isinstance(script, str):
        raise ProtocolError("script: expected text")
    env = _strings(arguments.get("env") or {}, "env")
    sealed = arguments.get("sealedEnv") or {}
    if not isinstance(sealed, dict):
        raise ProtocolError("sealedEnv: expected a mapping")
    if sealed:
        if key is None:
            raise ScriptRefused("this agent has no key to open the script's secret variables")
        binding = str(arguments.get("binding") or "")
        for name, blob in sealed.items():
            env[str(name)] = open_sealed(blob, key, binding).decode("utf-8")
    files = {}
    for variable, pair in (arguments.get("files") or {}).items():
        if not isinstance(pair, list) or len(pair) != 2:
            raise ProtocolError(f"files.{variable}: expected [file name, base64]")
        files[str(variable)] = (str(pair[0]), base64.b64decode(str(pair[1]), validate=True))
    timeout = arguments.get("timeout")
    if not isinstance(timeout, int | float) or not 0 < timeout <= MAX_TIMEOUT:
        raise ProtocolError(f"timeout: expected seconds between 1 and {MAX_TIMEOUT}")
    outcome = run_script_process(ScriptProcess(command, script, env, files, float(timeout)))
    return {"exitCode": outcome.exit_code, "timedOut": outcome.timed_out,
            "duration": outcome.duration, "tail": outcome.tail, "error": outcome.error}


def _strings(value: object, name: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise ProtocolError(f"{name}: expected a mapping of text")
    return {str(k): v for k, v in value.items()}
