"""CustomResourceDefinitions generated from the models: the models are the single source.

    python -m ferry.api.crd crds/ charts/ferry/crds/      (what `make crds` runs)

Pydantic's JSON Schema is turned into a structural OpenAPI v3 schema the API server accepts:
references inlined, optional fields unwrapped from anyOf-null, titles dropped, free-form maps
marked to keep unknown fields, descriptions on one line. CEL rules declared on the models
(ferry.api.base.validations) travel along as x-kubernetes-validations.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

from ferry.api.base import API_GROUP, API_VERSION, Resource
from ferry.api.devicemigration import DeviceMigration
from ferry.api.environment import Environment
from ferry.api.template import Template
from ferry.api.workflow import Workflow

KINDS: tuple[type[Resource], ...] = (Environment, Template, Workflow, DeviceMigration)
CATEGORY = "ferry"
_DROPPED_KEYS = frozenset({"title", "$defs", "discriminator"})
_CONDITION_LIST = {"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]}

Schema = dict[str, Any]


def crd_file_name(kind: type[Resource]) -> str:
    return f"{API_GROUP}_{kind.crd.plural}.yaml"


def build_crd(kind: type[Resource]) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind, as a plain dict ready for YAML."""
    names = kind.crd
    kind_name = kind.model_fields["kind"].annotation.__args__[0]  # type: ignore[union-attr]
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{names.plural}.{API_GROUP}"},
        "spec": {
            "group": API_GROUP,
            "names": {
                "kind": kind_name,
                "listKind": f"{kind_name}List",
                "plural": names.plural,
                "singular": kind_name.lower(),
                "shortNames": list(names.short_names),
                "categories": [CATEGORY],
            },
            "scope": "Namespaced",
            "versions": [{
                "name": API_VERSION,
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "additionalPrinterColumns": [_column(c) for c in names.columns],
                "schema": {"openAPIV3Schema": openapi_schema(kind)},
            }],
        },
    }


def openapi_schema(kind: type[Resource]) -> Schema:
    """The structural schema of a kind: apiVersion, kind, metadata, spec and status."""
    source = kind.model_json_schema(by_alias=True, mode="validation")
    defs = source.get("$defs", {})
    properties = source["properties"]
    return {
        "type": "object",
        "description": _one_line(kind.__doc__ or ""),
        "required": ["spec"],
        "properties": {
            "apiVersion": {
                "type": "string",
                "description": "Versioned schema of this object: ferry.dev/v1alpha1.",
            },
            "kind": {"type": "string", "description": "Kind of this object."},
            # The API server owns metadata's schema; a CRD may only say it is an object.
            "metadata": {"type": "object"},
            "spec": _structural(properties["spec"], defs),
            "status": _structural(properties["status"], defs),
        },
    }


def _structural(node: Schema, defs: dict[str, Schema]) -> Schema:
    node = _resolve(node, defs)
    out: Schema = {}
    for key, value in node.items():
        if key in _DROPPED_KEYS or (key == "default" and value is None):
            continue
        if key == "description":
            out[key] = _one_line(value)
        elif key == "properties":
            out[key] = {name: _structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = _structural(value, defs)
        elif key == "additionalProperties":
            if isinstance(value, dict) and value:
                out[key] = _structural(value, defs)
            elif value is not False and node.get("type") == "object" and "properties" not in node:
                out["x-kubernetes-preserve-unknown-fields"] = True
        elif key == "const":
            out["enum"] = [value]
        elif key == "format" and value not in ("date-time", "int64", "int32", "byte"):
            continue
        else:
            out[key] = value
    free_form = "properties" not in out and "additionalProperties" not in out
    if out.get("type") == "object" and free_form:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if "type" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["x-kubernetes-preserve-unknown-fields"] = True  # pydantic's Any
    if out.get("type") == "array" and _is_condition(out.get("items", {})):
        out.update(_CONDITION_LIST)
    return _ordered(out)


_FIRST = ("type", "description")
_LAST = ("required", "properties", "additionalProperties", "items", "x-kubernetes-validations")


def _ordered(node: Schema) -> Schema:
    """Type and description first, nested schemas last: the file reads like `kubectl explain`."""
    middle = sorted(k for k in node if k not in _FIRST and k not in _LAST)
    return {k: node[k] for k in (*_FIRST, *middle, *_LAST) if k in node}


def _resolve(node: Schema, defs: dict[str, Schema]) -> Schema:
    """Inline $ref and unwrap optional (anyOf with null); the use site's keys win."""
    while True:
        if "$ref" in node:
            target = defs[node["$ref"].rsplit("/", 1)[-1]]
            rest = {k: v for k, v in node.items() if k != "$ref"}
            node = {**target, **rest}
            continue
        variants = node.get("anyOf")
        if variants is not None:
            real = [v for v in variants if v.get("type") != "null"]
            if len(real) != 1:
                raise ValueError(f"a CRD field must have one type, not {variants}")
            rest = {k: v for k, v in node.items() if k != "anyOf"}
            node = {**real[0], **rest}
            continue
        return node


def _is_condition(items: Schema) -> bool:
    props = items.get("properties", {})
    return {"type", "status", "reason", "lastTransitionTime"} <= props.keys()


def _column(column: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": column.name, "type": column.type, "jsonPath": column.json_path}
    if column.description:
        out["description"] = column.description
    if column.priority:
        out["priority"] = column.priority
    return out


def _one_line(text: str) -> str:
    return " ".join(text.split())


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # shared sub-schemas are written out in full, never as &anchors


def render(kind: type[Resource]) -> str:
    header = "# Generated by `make crds` from ferry.api; do not edit.\n"
    return header + yaml.dump(build_crd(kind), Dumper=_Dumper, sort_keys=False, width=100)


def write_crds(directory: Path) -> list[Path]:
    """Write one YAML file per kind into directory; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in KINDS:
        path = directory / crd_file_name(kind)
        path.write_text(render(kind), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m ferry.api.crd DIRECTORY...", file=sys.stderr)
        return 2
    for directory in argv:
        for path in write_crds(Path(directory)):
            print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
