"""Every CEL expression of the manifests compiled as they load: one that does not compile (or
costs too much) stops everything before a directory is reached, naming file, object and field."""

from __future__ import annotations

from collections.abc import Iterable

from ferry.api.environment import DirectoryType
from ferry.api.errors import ManifestProblem
from ferry.api.loader import Manifests
from ferry.api.template import TemplateSpec
from ferry.engine.expressions import (
    CompiledExpression,
    ExpressionError,
    compile_filter,
    compile_template,
)
from ferry.sync.pairs import pair_key, staging_rules

_AD = DirectoryType.ACTIVE_DIRECTORY
Kinds = tuple[DirectoryType, DirectoryType]


def template_problems(name: str, spec: TemplateSpec,
                      kinds: Iterable[Kinds] = ((_AD, _AD),)) -> list[tuple[str, str]]:
    """(field path, message) for each expression of the Template that cannot run, then for
    the mappings as a whole in each (source, target) kind of pair it serves."""
    found: list[tuple[str, str]] = []
    for index, mapping in enumerate(spec.attribute_mappings):
        try:
            CompiledExpression(mapping.expression, owner=name, field=mapping.target)
        except ExpressionError as exc:
            found.append((f"spec.attributeMappings[{index}].expression",
                          f"mapping {mapping.target!r}: {exc.cel_message}"))
    if found:
        return found
    for source, target in dict.fromkeys(kinds):
        try:
            compile_template(staging_rules(name, spec, source, target))
        except ExpressionError as exc:
            return [("spec.attributeMappings", f"mapping {exc.mapping!r}: {exc.cel_message}")]
    return []


def expression_problems(manifests: Manifests) -> list[ManifestProblem]:
    """Every expression in the manifests that cannot run, one problem each."""
    problems: list[ManifestProblem] = []
    kinds: dict[str, list[Kinds]] = {}
    for name, workflow in manifests.workflows.items():
        label = f"Workflow/{name}"
        for i, step in workflow.spec.steps_of("stageData"):
            stage = step.stage_data
            assert stage is not None
            for j, pair in enumerate(stage.pairs):
                source = manifests.environments.get(pair.source)
                target = manifests.environments.get(pair.target)
                if source is not None and target is not None:
                    kinds.setdefault(stage.template, []).append(
                        (source.spec.type, target.spec.type))
                if pair.filter is None:
                    continue
                try:
                    compile_filter(pair.filter, pair=pair_key(name, pair.source, pair.target))
                except ExpressionError as exc:
                    problems.append(ManifestProblem(
                        manifests.sources[label], label,
                        f"spec.steps[{i}].stageData.pairs[{j}].filter", exc.cel_message))
    for name, template in manifests.templates.items():
        label = f"Template/{name}"
        for path, message in template_problems(name, template.spec,
                                               kinds.get(name) or [(_AD, _AD)]):
            problems.append(ManifestProblem(manifests.sources[label], label, path, message))
    return problems
