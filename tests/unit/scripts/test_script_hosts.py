"""Where script steps run, refused before a run starts when they cannot run there; an image
step's Job carries its results cut to what a ConfigMap holds."""

from __future__ import annotations

import json

import pytest

from ferry.api.workflow import Workflow
from ferry.scripts.context import RESULTS_VARIABLE, ScriptContext
from ferry.scripts.hosts import ScriptStepsRefused, script_hosts
from ferry.scripts.job import MAX_CONFIG_MAP_BYTES, fit_results
from ferry.settings import RunSettings


def _workflow(*steps: dict[str, object]) -> Workflow:
    return Workflow.model_validate({
        "apiVersion": "ferry.dev/v1alpha1", "kind": "Workflow", "metadata": {"name": "wf"},
        "spec": {"steps": [{"runScript": s} for s in steps]}})


def test_image_and_agent_steps_that_cannot_run_here_are_refused_naming_the_field() -> None:
    workflow = _workflow(
        {"command": ["/bin/true"]},
        {"command": ["/bin/sh"], "image": "alpine:3"},
        {"command": ["/bin/sh"], "environment": "corp", "script": {"inline": "true"}})
    with pytest.raises(ScriptStepsRefused) as caught:
        script_hosts(workflow, RunSettings(), "Local")
    text = str(caught.value)
    assert "Workflow/wf: spec.steps[1].runScript.image: outside a cluster Ferry runs scripts" \
        " as local processes and cannot start an image" in text
    assert "Workflow/wf: spec.steps[2].runScript.environment: runs on an agent of 'corp', but" \
        " no gateway is configured; set FERRY_GATEWAY_URL" in text
    assert "steps[0]" not in text


def test_a_local_step_runs_on_the_named_host() -> None:
    hosts = script_hosts(_workflow({"command": ["/bin/true"]}), RunSettings(), "Pod")
    from ferry.scripts.placement import placed_scripts

    [script] = placed_scripts(_workflow({"command": ["/bin/true"]}).spec)
    assert hosts(script).where == "Pod"


def test_results_are_cut_to_fit_a_config_map_and_say_how_many_are_in() -> None:
    rows = [{"pair": "wf/src->tgt", "targetDn": f"CN=user {i:06d},OU=People,DC=tgt,DC=test",
             "operation": "create", "outcome": "ok"} for i in range(20_000)]
    document = {"total": 20_000, "included": 20_000, "results": rows}
    context = ScriptContext({}, {RESULTS_VARIABLE: ("ferry-results.json",
                                                    json.dumps(document).encode())})
    fitted = fit_results(context, "echo hi")
    name, content = fitted.files[RESULTS_VARIABLE]
    kept = json.loads(content)
    assert name == "ferry-results.json" and len(content) <= MAX_CONFIG_MAP_BYTES
    assert kept["total"] == 20_000 and 0 < kept["included"] == len(kept["results"]) < 20_000
    assert kept["results"][0] == rows[0]
    small = ScriptContext({}, {RESULTS_VARIABLE: ("ferry-results.json", b'{"results": []}')})
    assert fit_results(small, None) is small
