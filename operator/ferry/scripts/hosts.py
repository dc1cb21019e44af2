"""Where a script step runs: a local process (outside a cluster, or in the sync Job's pod),
or an agent of an Environment through the gateway. Each answers a ProcessOutcome."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from ferry.api.base import ValueSource
from ferry.api.workflow import Workflow
from ferry.connectors.agent_session import RemoteDirectory
from ferry.errors import FerryError, InvalidInput
from ferry.scripts.context import ScriptContext
from ferry.scripts.placement import PlacedScript, placed_scripts
from ferry.settings import GATEWAY_CA_ENV, GATEWAY_TOKEN_FILE_ENV, GATEWAY_URL_ENV, RunSettings
from ferry_agent.errors import FerryAgentError
from ferry_agent.scripts.process import ProcessOutcome, ScriptProcess, run_script_process
from ferry_agent.sealed import seal

if TYPE_CHECKING:
    from ferry.scripts.job import ScriptJobs

# How long past a script's own timeout the run waits for an agent's answer (queueing,
# the gateway's long-polls, the agent's own kill grace).
AGENT_MARGIN_SECONDS = 120.0


class ScriptHost(Protocol):
    @property
    def where(self) -> str: ...

    def run(self, script: PlacedScript, text: str | None,
            context: ScriptContext) -> ProcessOutcome: ...


class LocalHost:
    """This process's machine: `ferry run -f` (Local) or the sync Job's container (Pod)."""

    def __init__(self, where: str = "Local"):
        self._where = where

    @property
    def where(self) -> str:
        return self._where

    def run(self, script: PlacedScript, text: str | None,
            context: ScriptContext) -> ProcessOutcome:
        return run_script_process(ScriptProcess(
            script.step.command, text, context.variables, context.files,
            float(script.step.timeout_seconds)))


class AgentHost:
    """An agent of an Environment; secret variables travel sealed to the agents' keys."""

    def __init__(self, directory: RemoteDirectory, binding: str):
        self._directory = directory
        self._binding = binding    # what the sealed variables open for: this run's step

    @property
    def where(self) -> str:
        return f"Agent {self._directory.environment}"

    def run(self, script: PlacedScript, text: str | None,
            context: ScriptContext) -> ProcessOutcome:
        plain = {k: v for k, v in context.variables.items() if k not in context.secret_names}
        secret = {k: v for k, v in context.variables.items() if k in context.secret_names}
        try:
            recipients = self._directory.recipients() if secret else []
            answer = self._directory.run_script({
                "command": list(script.step.command), "script": text, "env": plain,
                "sealedEnv": {k: seal(v.encode("utf-8"), recipients, self._binding)
                              for k, v in secret.items()},
                "binding": self._binding,
                "files": {var: [name, base64.b64encode(content).decode("ascii")]
                          for var, (name, content) in context.files.items()},
                "timeout": script.step.timeout_seconds,
            }, script.step.timeout_seconds + AGENT_MARGIN_SECONDS)
        except (FerryError, FerryAgentError, RuntimeError) as exc:
            # The gateway or agent could not run it (agent errors arrive as RuntimeError).
            return ProcessOutcome(None, False, 0.0, "", str(exc))
        exit_code = answer.get("exitCode")
        return ProcessOutcome(
            exit_code if isinstance(exit_code, int) else None, bool(answer.get("timedOut")),
            float(answer.get("duration") or 0.0), str(answer.get("tail") or ""),
            str(answer.get("error") or ""))


class ScriptStepsRefused(InvalidInput):
    """A script step cannot run where this run runs; the message names the step and the fix."""


def secret_env_problems(script: PlacedScript) -> list[str]:
    """A Job's variables come from Secrets or values: env or file sources are refused."""
    return [f"{script.label}.env[{var.name}].valueFrom: a script run in a Job of its own"
            " (image) takes secrets from secretKeyRef only; move the value into a Secret"
            for var in script.step.env if var.value_from is not None
            and var.value_from.secret_key_ref is None]


def script_secrets(scripts: list[PlacedScript]) -> list[tuple[ValueSource, str]]:
    """The secret variables this run reads for its steps, with the field each comes from
    (not those of image steps: their Job's kubelet reads them from the Secret)."""
    return [(var.value_from, f"{s.label}.env[{var.name}].valueFrom")
            for s in scripts if s.step.image is None
            for var in s.step.env if var.value_from is not None]


def script_hosts(workflow: Workflow, settings: RunSettings, local_where: str,
                 jobs: ScriptJobs | None = None) -> Callable[[PlacedScript], ScriptHost]:
    """Where each of the workflow's script steps runs (image steps: Jobs, where `jobs` can
    start them); ScriptStepsRefused, before the run starts, for one that cannot run here."""
    name = workflow.metadata.name
    scripts = placed_scripts(workflow.spec)
    problems: list[str] = []
    hosts: dict[int, ScriptHost] = {}
    for script in scripts:
        step = script.step
        if step.environment is not None:
            if settings.gateway is None:
                problems.append(f"Workflow/{name}: {script.label}.environment: runs on an agent"
                                f" of {step.environment!r}, but no gateway is configured; set"
                                f" {GATEWAY_URL_ENV}, {GATEWAY_CA_ENV} and"
                                f" {GATEWAY_TOKEN_FILE_ENV}")
                continue
            hosts[script.index] = AgentHost(RemoteDirectory(settings.gateway, step.environment),
                                            f"ferry-script:{name}/{script.index}")
        elif step.image is not None and jobs is not None:
            problems += [f"Workflow/{name}: {p}" for p in secret_env_problems(script)]
            hosts[script.index] = jobs.host(script)
        elif step.image is not None:
            problems.append(f"Workflow/{name}: {script.label}.image: outside a cluster Ferry"
                            " runs scripts as local processes and cannot start an image;"
                            " remove image to run the command here, or run the Workflow in a"
                            " cluster")
        else:
            hosts[script.index] = LocalHost(local_where)
    if problems:
        raise ScriptStepsRefused("; ".join(problems))
    return lambda script: hosts[script.index]
