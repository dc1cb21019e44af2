"""Cross-object rules: names that must exist and steps that must fit together."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ferry.api.environment import ConnectionMode, DirectoryType
from ferry.api.errors import ManifestProblem
from ferry.api.template import migration_problems, placement_problems
from ferry.api.workflow import RunScriptStep
from ferry.scripts.placement import placement_problems as script_placement_problems

if TYPE_CHECKING:
    from ferry.api.loader import Manifests


def check_references(m: Manifests) -> list[ManifestProblem]:
    """Every dangling name or inconsistent step, one problem each."""
    problems: list[ManifestProblem] = []
    for name, wf in m.workflows.items():
        label, file = f"Workflow/{name}", m.sources[f"Workflow/{name}"]

        def problem(path: str, message: str, label: str = label, file: str = file) -> None:
            problems.append(ManifestProblem(file, label, path, message))

        def env(path: str, env_name: str) -> None:
            if env_name not in m.environments and f"Environment/{env_name}" not in m.invalid:
                known = ", ".join(sorted(m.environments)) or "none loaded"
                problem(path, f"Environment {env_name!r} not found (known: {known})")

        read: set[str] = set()
        written: set[str] = set()
        staged: set[tuple[str, str]] = set()
        for i, step in enumerate(wf.spec.steps):
            base = f"spec.steps[{i}]"
            if step.read_from:
                for j, e in enumerate(step.read_from.environments):
                    env(f"{base}.readFrom.environments[{j}]", e)
                read.update(step.read_from.environments)
            if step.match:
                target_env = m.environments.get(step.match.target)
                for j, rule in enumerate(step.match.rules):
                    if rule.guest and target_env is not None \
                            and target_env.spec.type is not DirectoryType.ENTRA_ID:
                        problem(f"{base}.match.rules[{j}].guest",
                                f"guest rules match B2B guests of an Entra ID target;"
                                f" {step.match.target!r} is {target_env.spec.type.value}")
                for side in ("source", "target"):
                    e = getattr(step.match, side)
                    env(f"{base}.match.{side}", e)
                    if e not in read:
                        problem(f"{base}.match.{side}",
                                f"{e!r} is matched before any readFrom step reads it")
            if step.run_script:
                for path, message in _script_fit(m, step.run_script):
                    problem(f"{base}.runScript{path}", message)
            if step.stage_data:
                if (step.stage_data.template not in m.templates
                        and f"Template/{step.stage_data.template}" not in m.invalid):
                    known = ", ".join(sorted(m.templates)) or "none loaded"
                    problem(f"{base}.stageData.template",
                            f"Template {step.stage_data.template!r} not found (known: {known})")
                for j, pair in enumerate(step.stage_data.pairs):
                    for side in ("source", "target"):
                        e = getattr(pair, side)
                        env(f"{base}.stageData.pairs[{j}].{side}", e)
                        if e not in read:
                            problem(f"{base}.stageData.pairs[{j}].{side}",
                                    f"{e!r} is staged before any readFrom step reads it")
                    if pair.source == pair.target:
                        problem(f"{base}.stageData.pairs[{j}]",
                                "source and target must be different environments")
                    for path, message in _pair_fit(m, step.stage_data.template, pair.source,
                                                   pair.target, bool(pair.source_ous)):
                        problem(f"{base}.stageData.pairs[{j}]{path}", message)
                    staged.add((pair.source, pair.target))
            if step.write_to:
                for j, e in enumerate(step.write_to.environments):
                    env(f"{base}.writeTo.environments[{j}]", e)
                    if e not in {t for _, t in staged}:
                        problem(f"{base}.writeTo.environments[{j}]",
                                f"no stageData pair before this step targets {e!r}")
                written.update(step.write_to.environments)
            if step.delete_objects:
                for j, deleting in enumerate(step.delete_objects.pairs):
                    if (deleting.source, deleting.target) not in staged:
                        problem(f"{base}.deleteObjects.pairs[{j}]",
                                f"{deleting.source!r} -> {deleting.target!r} is not a stageData"
                                " pair of an earlier step")
        for index, message in script_placement_problems(wf.spec):
            problem(f"spec.steps[{index}]", message)
        for source, target in sorted(staged):
            if target not in written and not wf.spec.test_mode:
                problem("spec.steps", f"pair {source!r} -> {target!r} is staged but no writeTo"
                        f" step writes {target!r}; add one or set testMode: true")
    for name, dm in m.device_migrations.items():
        label, file = f"DeviceMigration/{name}", m.sources[f"DeviceMigration/{name}"]
        for side in ("source", "target"):
            e = getattr(dm.spec, side)
            if e not in m.environments and f"Environment/{e}" not in m.invalid:
                problems.append(ManifestProblem(
                    file, label, f"spec.{side}", f"Environment {e!r} not found"))
        if dm.spec.workflow not in m.workflows and f"Workflow/{dm.spec.workflow}" not in m.invalid:
            problems.append(ManifestProblem(
                file, label, "spec.workflow", f"Workflow {dm.spec.workflow!r} not found"))
    return problems


def _script_fit(m: Manifests, step: RunScriptStep) -> list[tuple[str, str]]:
    """What a script step names that is not there: (path, message)."""
    found: list[tuple[str, str]] = []
    if step.environment is not None:
        env = m.environments.get(step.environment)
        if env is None and f"Environment/{step.environment}" not in m.invalid:
            known = ", ".join(sorted(m.environments)) or "none loaded"
            found.append((".environment",
                          f"Environment {step.environment!r} not found (known: {known})"))
        elif env is not None and (env.spec.type is not DirectoryType.ACTIVE_DIRECTORY
                                  or env.spec.connection is not ConnectionMode.AGENT):
            found.append((".environment", f"scripts run on the agents of an Active Directory"
                          f" Environment with connection: agent; {step.environment!r} has"
                          " none (leave environment unset to run the script in the run itself)"))
    ref = step.script.config_map_key_ref if step.script else None
    if ref is not None and m.config_maps is not None:
        data = m.config_maps.get(ref.name)
        if data is None:
            found.append((".script.configMapKeyRef.name", f"ConfigMap {ref.name!r} not found"
                          " (outside a cluster: put its manifest beside the Workflow's)"))
        elif ref.key not in data:
            keys = ", ".join(sorted(data)) or "none"
            found.append((".script.configMapKeyRef.key",
                          f"ConfigMap {ref.name!r} has no key {ref.key!r} (keys: {keys})"))
    return found


def _pair_fit(m: Manifests, template_name: str, source: str, target: str,
              has_source_ous: bool) -> list[tuple[str, str]]:
    """What does not fit between a pair's directories and its template: (path, message)."""
    found: list[tuple[str, str]] = []
    source_env, target_env = m.environments.get(source), m.environments.get(target)
    template = m.templates.get(template_name)
    if source_env is not None and has_source_ous \
            and source_env.spec.type is not DirectoryType.ACTIVE_DIRECTORY:
        found.append((".sourceOUs", f"{source!r} is {source_env.spec.type.value}, which has no"
                      " OUs; remove sourceOUs (scope it on the Environment instead)"))
    if target_env is not None and template is not None and template.spec.target_ou is None \
            and target_env.spec.type is DirectoryType.ACTIVE_DIRECTORY:
        found.append((".target", f"{target!r} is Active Directory, but Template"
                      f" {template_name!r} has no targetOU; set spec.targetOU.default"))
    if target_env is not None and template is not None:
        found.extend((".target", message) for message in placement_problems(
            template_name, template.spec, target, target_env.spec))
    if source_env is not None and target_env is not None and template is not None:
        found.extend(migration_problems(template_name, template.spec, source, source_env.spec,
                                        target, target_env.spec))
    return found
