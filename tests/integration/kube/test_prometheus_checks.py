"""Prometheus' own checker on what Ferry ships: `promtool check metrics` on a real gateway's
scrape and on the operator's collector, `promtool check rules` and `promtool test rules` on
the chart's PrometheusRule as Helm renders it (tools/promtool, built like the other tools)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from tests.integration.gateway.harness import free_port, start_gateway
from tests.support.kube_api import Binaries
from tests.support.metrics import scrape
from tests.unit.controller.test_workflow_decision import workflow

from ferry.controller.cache import ObjectCache
from ferry.controller.metrics import StatusCollector

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "ferry"
BUILD = ROOT / "tools" / "promtool" / "build.sh"
TOOLS_BIN = ROOT / ".cache" / "tools" / "bin"
RULES_TEST = Path(__file__).parent / "prometheus" / "rules_test.yaml"
BUILD_SECONDS = 1800.0
HOST = "127.0.0.111"


@pytest.fixture(scope="session")
def promtool() -> Path:
    """tools/promtool, built (or found up to date) by its build.sh, which `make test` starts
    in the background; this waits for that build under its lock."""
    if shutil.which("go") is None and not (TOOLS_BIN / "promtool").exists():
        pytest.skip("Go is not installed to build tools/promtool")
    TOOLS_BIN.mkdir(parents=True, exist_ok=True)
    log = TOOLS_BIN / "promtool.build.log"
    with open(log, "wb") as out:
        done = subprocess.run([str(BUILD)], stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, timeout=BUILD_SECONDS, check=False)
    if done.returncode != 0:
        pytest.fail(f"tools/promtool/build.sh failed; {log}:\n{log.read_text()[-3000:]}",
                    pytrace=False)
    return TOOLS_BIN / "promtool"


def _check_metrics(promtool: Path, text: str) -> None:
    done = subprocess.run([str(promtool), "check", "metrics"], input=text, capture_output=True,
                          text=True, timeout=120, check=False)
    # Exit 0 and no lint findings (promtool prints them and exits 3 otherwise).
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_the_gateways_scrape_passes_promtool(promtool: Path, tmp_path: Path) -> None:
    port = free_port(HOST)
    gateway = start_gateway(tmp_path / "gateway", HOST, "--metrics-listen", f"{HOST}:{port}")
    try:
        gateway.fake_agent("src", "agent-1", tmp_path)
        gateway.job().submit("src", "exists", {"dn": "CN=x"})
        text = scrape(f"http://{HOST}:{port}/metrics").text
    finally:
        gateway.stop()
    assert "ferry_gateway_work_items{" in text
    _check_metrics(promtool, text)


def test_the_operators_metrics_pass_promtool(promtool: Path) -> None:
    cache = ObjectCache()
    cache.put("Workflow", workflow(schedule={"intervalMinutes": 60}, status={
        "totals": {"runs": {"Succeeded": 2, "Failed": 1}, "durationSeconds": 300.0,
                   "lastSuccessTime": "2026-11-21T10:00:00Z", "graphThrottled": 2,
                   "types": {"user": {"created": 4}, "group": {"updated": 1}}},
        "nextRunTime": "2026-11-21T11:00:00Z",
        "lastRun": {"id": "x", "result": "Failed", "startTime": "2026-11-21T10:30:00Z",
                    "completionTime": "2026-11-21T10:30:42Z"}}))
    cache.put("Environment", {"metadata": {"namespace": "ferry", "name": "src"},
                              "spec": {"connection": "agent"},
                              "status": {"objectCounts": {"users": 3}, "agents": [{"name": "a"}],
                                         "lastDiscovery": "2026-11-21T10:00:00Z"}})
    cache.put("DeviceMigration", {"metadata": {"namespace": "ferry", "name": "m"}, "status": {
        "devices": [{"name": "ws1", "wave": "w1", "phase": "Done"}],
        "waves": [{"name": "w1", "total": 1, "done": 1}]}})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StatusCollector(cache))
    _check_metrics(promtool, generate_latest(registry).decode())


def test_the_charts_alerts_pass_promtool_and_fire_when_they_should(
        promtool: Path, kube_binaries: Binaries, tmp_path: Path) -> None:
    if kube_binaries.helm is None:
        pytest.skip("helm could not be built")
    rendered = subprocess.run(
        [str(kube_binaries.helm), "template", "ferry", str(CHART), "--namespace", "ferry",
         "--set", "metrics.prometheusRule.enabled=true", "--show-only",
         "templates/metrics.yaml"], capture_output=True, text=True, timeout=120, check=True)
    [rule] = [d for d in yaml.safe_load_all(rendered.stdout)
              if d and d["kind"] == "PrometheusRule"]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    shutil.copy(RULES_TEST, tmp_path / "rules_test.yaml")
    checked = subprocess.run([str(promtool), "check", "rules", "rules.yaml"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=120, check=False)
    assert checked.returncode == 0 and "SUCCESS: 4 rules found" in checked.stdout, \
        checked.stdout + checked.stderr
    tested = subprocess.run([str(promtool), "test", "rules", "rules_test.yaml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, check=False)
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr
