"""A script step with an image, in a cluster: a Job of its own that the sync Job's pod starts
and waits for. A Job rather than a container beside the sync one: a running pod cannot gain
a container, and a Job gives the script its own image, deadline (activeDeadlineSeconds is
the step's timeout), no retries and a log `kubectl logs` finds. Its script and context files
come in a ConfigMap the Job owns; its secret variables are secretKeyRefs the kubelet
resolves, so their values never pass through the sync Job or the API objects it writes."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from ferry.api.base import GROUP_VERSION
from ferry.controller.runs import MANAGED_BY, RUN_LABEL, WORKFLOW_LABEL, job_name
from ferry.scripts.context import ScriptContext
from ferry.scripts.placement import PlacedScript
from ferry_agent.scripts.process import TAIL_BYTES, ProcessOutcome, script_suffix

STEP_LABEL = "ferry.dev/script-step"
CONTAINER = "script"
FILES_DIR = "/ferry"            # the ConfigMap: the script and the context files
WORK_DIR = "/work"              # an emptyDir: the script's working folder and HOME
# A ConfigMap holds at most 1 MiB: the results file is cut to fit beside the script.
MAX_CONFIG_MAP_BYTES = 900 * 1024
# Past its own deadline, how long the run waits for the Job to start at all (image pulls).
START_MARGIN_SECONDS = 600.0
POLL_SECONDS = 2.0
TAIL_LINES = 200
TTL_SECONDS = 86400


@dataclass(frozen=True)
class ScriptJobs:
    """What the sync Job's pod needs to start script Jobs beside itself."""

    api: client.ApiClient
    namespace: str
    workflow: str
    workflow_uid: str
    run_id: str

    def host(self, script: PlacedScript) -> JobHost:
        return JobHost(self, script)


def script_job_name(jobs: ScriptJobs, script: PlacedScript) -> str:
    """The run's Job name, the step and a random part: a retried sync pod starts anew."""
    prefix = job_name(jobs.workflow, jobs.run_id)[:50].rstrip("-")
    return f"{prefix}-s{script.index}-{uuid.uuid4().hex[:5]}"


def script_job(jobs: ScriptJobs, name: str, script: PlacedScript, context: ScriptContext,
               has_text: bool) -> dict[str, Any]:
    """The Job of one script step, owned by the Workflow; its files are the ConfigMap of
    the same name (files_config_map), which the kubelet waits for."""
    step = script.step
    labels = {"app.kubernetes.io/name": "ferry", "app.kubernetes.io/component": "script",
              "app.kubernetes.io/managed-by": MANAGED_BY, WORKFLOW_LABEL: jobs.workflow,
              RUN_LABEL: jobs.run_id, STEP_LABEL: str(script.index)}
    command = list(step.command)
    if has_text:
        command.append(f"{FILES_DIR}/script{script_suffix(step.command)}")
    secrets = {var.name: var.value_from.secret_key_ref for var in step.env
               if var.value_from is not None and var.value_from.secret_key_ref is not None}
    env: list[dict[str, Any]] = [
        {"name": k, "value": v} for k, v in context.variables.items() if k not in secrets]
    env += [{"name": variable, "value": f"{FILES_DIR}/{name}"}
            for variable, (name, _) in context.files.items()]
    env += [{"name": "HOME", "value": WORK_DIR}]
    env += [{"name": k, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}
            for k, ref in secrets.items()]
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {
            "name": name, "namespace": jobs.namespace,
            "labels": labels,
            "ownerReferences": [{"apiVersion": GROUP_VERSION, "kind": "Workflow",
                                 "name": jobs.workflow, "uid": jobs.workflow_uid}],
        },
        "spec": {
            "backoffLimit": 0, "activeDeadlineSeconds": step.timeout_seconds,
            "ttlSecondsAfterFinished": TTL_SECONDS,
            "template": {"metadata": {"labels": labels}, "spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,   # a script gets no API access
                "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": CONTAINER, "image": step.image, "command": command, "env": env,
                    "workingDir": WORK_DIR,
                    "securityContext": {"allowPrivilegeEscalation": False,
                                        "capabilities": {"drop": ["ALL"]}},
                    "volumeMounts": [{"name": "files", "mountPath": FILES_DIR, "readOnly": True},
                                     {"name": "work", "mountPath": WORK_DIR}],
                }],
                "volumes": [{"name": "files", "configMap": {"name": name, "defaultMode": 0o555}},
                            {"name": "work", "emptyDir": {"sizeLimit": "1Gi"}}],
            }},
        },
    }


def files_config_map(job: dict[str, Any], script: PlacedScript, text: str | None,
                     context: ScriptContext) -> dict[str, Any]:
    """The ConfigMap of the Job's files, owned by the Job (it goes when the Job goes)."""
    meta = job["metadata"]
    data = {name: content.decode("utf-8") for name, content in context.files.values()}
    if text is not None:
        data[f"script{script_suffix(script.step.command)}"] = text
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
        "name": meta["name"], "namespace": meta["namespace"], "labels": meta["labels"],
        "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": meta["name"],
                             "uid": meta["uid"], "controller": True}]},
        "data": data}


def fit_results(context: ScriptContext, text: str | None) -> ScriptContext:
    """The context with its results file cut so the ConfigMap stays under its limit."""
    from ferry.scripts.context import RESULTS_VARIABLE

    name, content = context.files[RESULTS_VARIABLE]
    others = sum(len(c) for v, (_, c) in context.files.items() if v != RESULTS_VARIABLE)
    room = MAX_CONFIG_MAP_BYTES - others - len((text or "").encode("utf-8"))
    if len(content) <= room:
        return context
    document = json.loads(content)
    kept = document["results"]
    while kept and len(json.dumps({**document, "results": kept}).encode()) > room:
        kept = kept[: len(kept) // 2]
    document.update(results=kept, included=len(kept))
    files = {**context.files, RESULTS_VARIABLE: (name, json.dumps(document).encode("utf-8"))}
    return ScriptContext(context.variables, files, context.secret_names)


class JobHost:
    """Runs one image step as a Job and waits for it; `where` names the Job once made."""

    def __init__(self, jobs: ScriptJobs, script: PlacedScript,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        self._jobs, self._clock, self._sleep = jobs, clock, sleep
        self._where = f"Job from {script.step.image}"

    @property
    def where(self) -> str:
        return self._where

    def run(self, script: PlacedScript, text: str | None,
            context: ScriptContext) -> ProcessOutcome:
        batch, core = client.BatchV1Api(self._jobs.api), client.CoreV1Api(self._jobs.api)
        context = fit_results(context, text)
        started = self._clock()
        name = script_job_name(self._jobs, script)
        try:
            body = script_job(self._jobs, name, script, context, text is not None)
            created = self._jobs.api.sanitize_for_serialization(
                batch.create_namespaced_job(self._jobs.namespace, body))
            self._where = f"Job {name}"
            core.create_namespaced_config_map(
                self._jobs.namespace, files_config_map(created, script, text, context))
        except ApiException as exc:
            return ProcessOutcome(None, False, 0.0, "",
                                  f"could not start the script's Job: {exc.status} {exc.reason}")
        finished = self._wait(batch, name, script.step.timeout_seconds + START_MARGIN_SECONDS)
        duration = self._clock() - started
        if finished is None or finished == "DeadlineExceeded":
            if finished is None:   # never started, or never ended: take it away
                _delete(batch, self._jobs.namespace, name)
            return ProcessOutcome(None, True, duration, self._tail(core, name))
        exit_code = 0 if finished == "Complete" else self._exit_code(core, name)
        return ProcessOutcome(exit_code, False, duration, self._tail(core, name))

    def _wait(self, batch: client.BatchV1Api, name: str, limit: float) -> str | None:
        """Complete, the Failed condition's reason, or None past `limit` seconds."""
        deadline = self._clock() + limit
        while self._clock() < deadline:
            job = self._jobs.api.sanitize_for_serialization(
                batch.read_namespaced_job(name, self._jobs.namespace))
            for condition in (job.get("status") or {}).get("conditions") or []:
                if condition.get("status") != "True":
                    continue
                if condition.get("type") == "Complete":
                    return "Complete"
                if condition.get("type") == "Failed":
                    return str(condition.get("reason") or "Failed")
            self._sleep(POLL_SECONDS)
        return None

    def _pod(self, core: client.CoreV1Api, job: str) -> dict[str, Any] | None:
        pods = self._jobs.api.sanitize_for_serialization(core.list_namespaced_pod(
            self._jobs.namespace, label_selector=f"job-name={job}"))
        items = pods.get("items") or []
        return items[-1] if items else None

    def _exit_code(self, core: client.CoreV1Api, job: str) -> int | None:
        pod = self._pod(core, job)
        for status in ((pod or {}).get("status") or {}).get("containerStatuses") or []:
            terminated = (status.get("state") or {}).get("terminated") or {}
            if status.get("name") == CONTAINER and "exitCode" in terminated:
                return int(terminated["exitCode"])
        return None

    def _tail(self, core: client.CoreV1Api, job: str) -> str:
        pod = self._pod(core, job)
        if pod is None:
            return "(no pod: the Job never started one)"
        try:
            text = core.read_namespaced_pod_log(
                pod["metadata"]["name"], self._jobs.namespace, container=CONTAINER,
                tail_lines=TAIL_LINES)
        except ApiException as exc:
            return f"(its output could not be read: {exc.status} {exc.reason})"
        return str(text)[-TAIL_BYTES:]


def _delete(batch: client.BatchV1Api, namespace: str, name: str) -> None:
    try:
        batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
    except ApiException as exc:
        if exc.status != 404:
            raise
