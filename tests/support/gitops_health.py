"""What GitOps tools make of Ferry's objects, computed by their own code: kstatus (cli-utils,
tools/kstatus) and Argo CD's Lua health runtime (tools/argocd-health) with the argocd-cm
snippet users copy. Also keeps the health checks' testdata equal to objects the kube tests
read from the API server (`FERRY_WRITE_TESTDATA=1` rewrites them from a run).

`python3 -m tests.support.gitops_health` writes gitops/argocd/argocd-cm.yaml from the
health.lua files."""

from __future__ import annotations

import difflib
import json
import os
import re
import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = ROOT / "tools" / "build-go-tool.sh"
TOOLS_BIN = ROOT / ".cache" / "tools" / "bin"
ARGOCD = ROOT / "gitops" / "argocd"
CUSTOMIZATIONS = ARGOCD / "resource_customizations"
ARGOCD_CM = ARGOCD / "argocd-cm.yaml"
GROUP = "ferry.dev"
KINDS = ("Workflow", "Environment", "Template", "DeviceMigration")
WRITE_ENV = "FERRY_WRITE_TESTDATA"
BUILD_TIMEOUT = 1800.0
# Fixed stand-ins for what differs from run to run, so a captured object is comparable.
TIME = "2026-12-01T02:00:00Z"
DURATION = 1.5
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


@cache
def go_tool(name: str) -> Path:
    """tools/<name>, built (or found up to date) by tools/build-go-tool.sh, which `make test`
    starts in the background; this waits for that build under its lock."""
    if shutil.which("go") is None and not (TOOLS_BIN / name).exists():
        pytest.skip(f"Go is not installed to build tools/{name}")
    log = TOOLS_BIN / f"{name}.build.log"
    TOOLS_BIN.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        done = subprocess.run([str(BUILD_SCRIPT), name], stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=BUILD_TIMEOUT, check=False)
    if done.returncode != 0:
        pytest.fail(f"tools/build-go-tool.sh {name} failed; {log}:\n{log.read_text()[-3000:]}",
                    pytrace=False)
    return TOOLS_BIN / name


def _run(command: list[str], objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    done = subprocess.run(command, input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                     "items": objects}),
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{command[0]}: {done.stderr}"
    return [json.loads(line) for line in done.stdout.splitlines()]


def kstatus(*objects: dict[str, Any]) -> list[dict[str, Any]]:
    """kstatus' computed status per object: {"status": "Current"|"InProgress"|"Failed"|...,
    "message", "conditions"}."""
    return _run([str(go_tool("kstatus"))], list(objects))


def argocd_health(*objects: dict[str, Any]) -> list[dict[str, Any]]:
    """Argo CD's health per object ({"status", "message"}), by the argocd-cm snippet."""
    return _run([str(go_tool("argocd-health")), "run", "--config", str(ARGOCD_CM), "-"],
                list(objects))


def argocd_cm_text() -> str:
    """The argocd-cm snippet: each kind's health.lua as Argo CD's split key."""
    lines = ["# Argo CD health checks for Ferry's kinds: merge these keys into your argocd-cm",
             "# (README \"GitOps health\"). Generated from resource_customizations/ferry.dev/*/",
             "# health.lua by `python3 -m tests.support.gitops_health`; a test keeps them equal.",
             "apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: argocd-cm",
             "  namespace: argocd", "  labels:", "    app.kubernetes.io/part-of: argocd",
             "data:"]
    for kind in KINDS:
        lines.append(f"  resource.customizations.health.{GROUP}_{kind}: |")
        lines += [f"    {line}" if line else "" for line in
                  (CUSTOMIZATIONS / GROUP / kind / "health.lua").read_text().splitlines()]
    return "\n".join(lines) + "\n"


def capture(obj: dict[str, Any], case: str, volatile: dict[str, str]) -> dict[str, Any]:
    """The object as the health checks' testdata keeps it, volatile parts replaced.

    Managed fields and the last-applied annotation are dropped; timestamps, durations and
    `volatile` strings (uids, run ids, namespace, lab addresses: value -> stand-in) replaced;
    conditions sorted by type. Compared with testdata/<case>.yaml of its kind (written
    instead under FERRY_WRITE_TESTDATA=1)."""
    meta = dict(obj["metadata"])
    for key in ("managedFields", "resourceVersion", "uid", "creationTimestamp"):
        meta.pop(key, None)
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if k != "kubectl.kubernetes.io/last-applied-configuration"}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    text = json.dumps({**obj, "metadata": meta}, sort_keys=True)
    for value, stand_in in sorted(volatile.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(value, stand_in)
    # Durations are the only non-integer numbers in these objects.
    normal: dict[str, Any] = json.loads(_TIMESTAMP.sub(TIME, text),
                                        parse_float=lambda _: DURATION)
    # The conditions' order is the order they were first set in, which the path there took
    # decides; no check reads it (Reconciling and Stalled are never both True).
    status = normal.get("status") or {}
    if status.get("conditions"):
        status["conditions"] = sorted(status["conditions"], key=lambda c: c["type"])
    path = CUSTOMIZATIONS / GROUP / obj["kind"] / "testdata" / f"{case}.yaml"
    if os.environ.get(WRITE_ENV):
        path.write_text(yaml.safe_dump(normal, sort_keys=False, width=100))
    assert path.exists(), f"{path} missing: run this test with {WRITE_ENV}=1"
    kept = yaml.safe_load(path.read_text())
    if kept != normal:
        diff = difflib.unified_diff(path.read_text().splitlines(),
                                    yaml.safe_dump(normal, sort_keys=False, width=100)
                                    .splitlines(), str(path), "the API server's", lineterm="")
        pytest.fail(f"{path} is not the object the API server has now; rerun with"
                    f" {WRITE_ENV}=1 and review the diff:\n" + "\n".join(diff), pytrace=False)
    return normal


if __name__ == "__main__":
    ARGOCD_CM.write_text(argocd_cm_text())
    print(f"wrote {ARGOCD_CM.relative_to(ROOT)}")
