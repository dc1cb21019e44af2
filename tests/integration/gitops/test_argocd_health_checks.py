"""The Argo CD health checks shipped in gitops/argocd, run in Argo CD's Lua runtime
(tools/argocd-health: gopher-lua set up as Argo CD's util/lua does): each kind's
health_test.yaml against its testdata (objects the kube tests read from the API server), the
argocd-cm snippet equal to the health.lua files, and the runtime's own rules that a check
must live with (no string library in an argocd-cm customization)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from tests.support.gitops_health import (
    ARGOCD_CM,
    CUSTOMIZATIONS,
    GROUP,
    KINDS,
    argocd_cm_text,
    go_tool,
)


def health(script: Path, *args: str, text: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(go_tool("argocd-health")), "run", "--script", str(script),
                           *args, "-"], input=text, capture_output=True, text=True,
                          timeout=60, check=False)


def test_every_kinds_health_test_passes_with_and_without_the_standard_libraries() -> None:
    done = subprocess.run([str(go_tool("argocd-health")), "test", str(CUSTOMIZATIONS)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for kind in KINDS:
        tests = yaml.safe_load((CUSTOMIZATIONS / GROUP / kind / "health_test.yaml")
                               .read_text())["tests"]
        assert tests, kind
        for case in tests:
            ran = [line for line in lines if line.startswith(
                str(CUSTOMIZATIONS / GROUP / kind / case["inputPath"]) + " ")]
            assert [line.rsplit(": ", 1)[1] for line in ran] == ["ok", "ok"], ran
    statuses = {case["healthStatus"]["status"] for kind in KINDS for case in yaml.safe_load(
        (CUSTOMIZATIONS / GROUP / kind / "health_test.yaml").read_text())["tests"]}
    assert statuses == {"Healthy", "Progressing", "Degraded", "Suspended"}
    # Every testdata file is a case, so none goes stale unseen.
    for kind in KINDS:
        tests = yaml.safe_load((CUSTOMIZATIONS / GROUP / kind / "health_test.yaml")
                               .read_text())["tests"]
        assert sorted(f"testdata/{p.name}" for p in
                      (CUSTOMIZATIONS / GROUP / kind / "testdata").glob("*.yaml")) == \
            sorted(case["inputPath"] for case in tests)


def test_the_argocd_cm_snippet_is_the_health_lua_files() -> None:
    assert ARGOCD_CM.read_text() == argocd_cm_text(), \
        "run `python3 -m tests.support.gitops_health` to write gitops/argocd/argocd-cm.yaml"
    data = yaml.safe_load(ARGOCD_CM.read_text())["data"]
    assert sorted(data) == sorted(f"resource.customizations.health.{GROUP}_{kind}"
                                  for kind in KINDS)
    for kind in KINDS:
        assert data[f"resource.customizations.health.{GROUP}_{kind}"] == (
            CUSTOMIZATIONS / GROUP / kind / "health.lua").read_text()


def test_the_runtime_is_argo_cds_no_string_library_invalid_status_unknown(tmp_path: Path) -> None:
    obj = "apiVersion: ferry.dev/v1alpha1\nkind: Workflow\nmetadata: {name: w}\n"
    formatted = tmp_path / "format.lua"
    formatted.write_text('return {status = "Healthy", message = string.format("%d", 1)}\n')
    # An argocd-cm customization gets base, table and a safe os only: string is nil there.
    refused = health(formatted, text=obj)
    assert refused.returncode == 1 and "string" in refused.stderr
    assert '"status":"Healthy"' in health(formatted, "--open-libs", text=obj).stdout
    invalid = tmp_path / "invalid.lua"
    invalid.write_text('return {status = "Fine"}\n')
    assert '"message":"Lua returned an invalid health status","name":"w"' in \
        health(invalid, text=obj).stdout
    unsafe = tmp_path / "exit.lua"
    unsafe.write_text('os.exit(1)\nreturn {status = "Healthy"}\n')
    assert health(unsafe, text=obj).returncode == 1   # os.exit is not there
