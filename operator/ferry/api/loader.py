"""Load ferry.dev manifests from files and folders, exactly as `kubectl apply -f` takes them."""

from __future__ import annotations

import types
import typing
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from ferry.api.base import API_GROUP, GROUP_VERSION, Resource
from ferry.api.devicemigration import DeviceMigration
from ferry.api.environment import Environment
from ferry.api.errors import ManifestError, ManifestProblem, format_path, quoted
from ferry.api.references import check_references
from ferry.api.safe_yaml import MAX_FILE_BYTES, MAX_TOTAL_BYTES, load_documents
from ferry.api.template import Template
from ferry.api.workflow import Workflow

KINDS: dict[str, type[Resource]] = {
    "Environment": Environment,
    "Template": Template,
    "Workflow": Workflow,
    "DeviceMigration": DeviceMigration,
}
MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class Manifests:
    """Every ferry.dev object found, by kind and name, with the file each came from."""

    environments: dict[str, Environment] = field(default_factory=dict)
    templates: dict[str, Template] = field(default_factory=dict)
    workflows: dict[str, Workflow] = field(default_factory=dict)
    device_migrations: dict[str, DeviceMigration] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # "Kind/name" -> file
    # Objects present but invalid: their own errors are reported; references to them are not.
    invalid: set[str] = field(default_factory=set)
    # ConfigMap name -> data, for script steps; None where ConfigMaps are not known (the
    # operator's view of a namespace: the sync Job's pod mounts them).
    config_maps: dict[str, dict[str, str]] | None = None

    def add(self, obj: Resource) -> None:
        tables: dict[str, dict[str, Any]] = {
            "Environment": self.environments,
            "Template": self.templates,
            "Workflow": self.workflows,
            "DeviceMigration": self.device_migrations,
        }
        table = tables[obj.kind]
        table[obj.metadata.name] = obj


def load_manifests(paths: Sequence[str | Path]) -> Manifests:
    """Load and validate every manifest under paths; raise ManifestError listing all problems."""
    problems: list[ManifestProblem] = []
    manifests = Manifests(config_maps={})
    for file in _manifest_files(paths, problems):
        for index, document in enumerate(_documents(file, problems)):
            if _config_map(str(file), index, document, manifests, problems):
                continue
            obj = _parse(str(file), index, document, problems)
            if obj is None:
                manifests.invalid.add(_label(document))
                continue
            key = f"{obj.kind}/{obj.metadata.name}"
            if key in manifests.sources:
                problems.append(ManifestProblem(
                    str(file), key, "metadata.name",
                    f"duplicate: {key} is also defined in {manifests.sources[key]}; rename one",
                ))
                continue
            manifests.sources[key] = str(file)
            manifests.add(obj)
    problems.extend(check_references(manifests))
    if problems:
        raise ManifestError(problems)
    return manifests


def _config_map(file: str, index: int, document: Any, manifests: Manifests,
                problems: list[ManifestProblem]) -> bool:
    """Keep a v1 ConfigMap's data (script steps read their scripts from it); False when the
    document is something else."""
    if not isinstance(document, dict) or document.get("apiVersion") != "v1" \
            or document.get("kind") != "ConfigMap":
        return False
    name = (document.get("metadata") or {}).get("name")
    data = document.get("data") or {}
    label = f"ConfigMap/{_text(name)}" if name else f"document {index + 1}"
    if not isinstance(name, str) or not name:
        problems.append(ManifestProblem(file, label, "metadata.name", "a ConfigMap needs a name"))
    elif not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        problems.append(ManifestProblem(file, label, "data", "expected keys with text values"))
    elif f"ConfigMap/{name}" in manifests.sources:
        problems.append(ManifestProblem(
            file, label, "metadata.name", f"duplicate: {label} is also defined in"
            f" {manifests.sources[f'ConfigMap/{name}']}; rename one"))
    else:
        assert manifests.config_maps is not None
        manifests.config_maps[name] = {str(k): v for k, v in data.items()}
        manifests.sources[f"ConfigMap/{name}"] = file
    return True


def _label(document: Any) -> str:
    if not isinstance(document, dict) or not isinstance(document.get("metadata"), dict):
        return ""
    return f"{_text(document.get('kind'))}/{_text(document['metadata'].get('name'))}"


def _manifest_files(paths: Sequence[str | Path], problems: list[ManifestProblem]) -> list[Path]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*")
                                if p.suffix in MANIFEST_SUFFIXES and p.is_file()))
        elif path.is_file():
            files.append(path)
        else:
            problems.append(ManifestProblem(str(path), "-", "", "no such file or folder"))
    total = 0
    for file in files:
        total += file.stat().st_size
        if total > MAX_TOTAL_BYTES:
            problems.append(ManifestProblem(
                str(file), "-", "", f"the manifests add up to more than {_mib(MAX_TOTAL_BYTES)}"
                " with this file; load fewer at a time"))
            return []  # nothing will run: reading the rest would only cost time
    return files


def _documents(file: Path, problems: list[ManifestProblem]) -> Iterable[Any]:
    try:
        with file.open("rb") as stream:
            data = stream.read(MAX_FILE_BYTES + 1)  # a file may grow after stat()
        if len(data) > MAX_FILE_BYTES:
            problems.append(ManifestProblem(
                str(file), "-", "", f"larger than {_mib(MAX_FILE_BYTES)}; split it (a"
                " Kubernetes object is at most 1.5 MiB)"))
            return []
        return load_documents(data.decode("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        problems.append(ManifestProblem(str(file), "-", "", f"cannot read YAML: {exc}"))
        return []


def _mib(size: int) -> str:
    return f"{size // (1024 * 1024)} MiB"


def _text(value: Any) -> str:
    """A kind or name as it goes into a label: the text itself when short, else bounded."""
    return value if isinstance(value, str) and len(value) <= 253 else quoted(value)


def _parse(
    file: str, index: int, document: Any, problems: list[ManifestProblem]
) -> Resource | None:
    where = f"document {index + 1}"
    if not isinstance(document, dict):
        problems.append(ManifestProblem(
            file, where, "", "expected a mapping with apiVersion and kind"))
        return None
    raw_version = document.get("apiVersion", "")
    api_version = raw_version if isinstance(raw_version, str) else ""
    kind = document.get("kind")
    name = (document.get("metadata") or {}).get("name") if isinstance(
        document.get("metadata"), dict) else None
    obj_label = f"{_text(kind)}/{_text(name)}" if kind and name else where
    if api_version.split("/")[0] != API_GROUP:
        return None  # Secrets, Namespaces and the like travel with manifests; not ours.
    if api_version != GROUP_VERSION:
        problems.append(ManifestProblem(
            file, obj_label, "apiVersion",
            f"expected {GROUP_VERSION!r}, got {quoted(raw_version)}"))
        return None
    model = KINDS.get(kind) if isinstance(kind, str) else None
    if model is None:
        problems.append(ManifestProblem(
            file, obj_label, "kind",
            f"unknown kind {quoted(kind)}; expected one of {', '.join(KINDS)}"))
        return None
    try:
        return model.model_validate(document)
    except ValidationError as exc:
        for error in exc.errors():
            problems.append(ManifestProblem(
                file, obj_label, format_path(error["loc"]), _explain(model, error)))
        return None


def _explain(model: type[BaseModel], error: Any) -> str:
    kind, loc, value = error["type"], error["loc"], error.get("input")
    if kind == "extra_forbidden":
        allowed = _fields_at(model, loc[:-1])
        hint = f"; allowed here: {', '.join(allowed)}" if allowed else ""
        return f"unknown field {quoted(loc[-1])}{hint}"
    if kind == "missing":
        return "required field is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind.endswith("_type") or kind.endswith("_parsing") or kind == "enum":
        return f"{message} (got {quoted(value)})"
    return message


def _fields_at(model: type[BaseModel], loc: Sequence[str | int]) -> list[str]:
    """The field names (as written in YAML) of the model found by following loc from model."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        match = next(
            (f for n, f in current.model_fields.items() if (f.alias or n) == part), None)
        if match is None:
            return []
        current = _model_in(match.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []


def _model_in(annotation: Any) -> Any:
    """Unwrap Optional[...] and list[...] down to a model class, if there is one."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    origin = typing.get_origin(annotation)
    if origin in (list, typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None
