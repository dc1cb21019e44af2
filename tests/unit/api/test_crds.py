"""The CRDs in crds/ are generated from ferry.api and teach the user every field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ferry.api.crd import KINDS, crd_file_name, render

ROOT = Path(__file__).resolve().parents[3]
# The chart carries its own copy: Helm installs CRDs only from the chart's crds/ folder.
CRD_DIRS = (ROOT / "crds", ROOT / "charts" / "ferry" / "crds")


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
@pytest.mark.parametrize("directory", CRD_DIRS, ids=lambda d: d.relative_to(ROOT).as_posix())
def test_crd_file_is_current(kind: Any, directory: Path) -> None:
    path = directory / crd_file_name(kind)
    assert path.exists(), f"{path} missing: run `make crds`"
    assert path.read_text(encoding="utf-8") == render(kind), f"{path} is stale: run `make crds`"


def _schema(kind: Any) -> dict[str, Any]:
    crd = yaml.safe_load(render(kind))
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _fields(node: dict[str, Any], path: str) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for name, sub in node.get("properties", {}).items():
        found.append((f"{path}.{name}", sub))
        found.extend(_fields(sub, f"{path}.{name}"))
    if "items" in node:
        found.extend(_fields(node["items"], f"{path}[]"))
    if isinstance(node.get("additionalProperties"), dict):
        found.extend(_fields(node["additionalProperties"], f"{path}{{}}"))
    return found


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_every_field_is_described_and_typed(kind: Any) -> None:
    fields = _fields(_schema(kind), kind.__name__)
    undescribed = [p for p, f in fields if not f.get("description") and not p.endswith(".metadata")]
    untyped = [p for p, f in fields if "type" not in f
               and not f.get("x-kubernetes-preserve-unknown-fields")]
    assert not undescribed, f"fields without a description: {undescribed}"
    assert not untyped, f"fields without a type (not structural): {untyped}"
    assert len(fields) > 10


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.__name__)
def test_printer_columns_point_at_real_fields(kind: Any) -> None:
    schema = _schema(kind)
    for column in kind.crd.columns:
        path = column.json_path.split("[?")[0].strip(".").split(".")
        if path[0] == "metadata":
            continue
        node = schema
        for part in path:
            assert part in node.get("properties", {}), f"{column.name}: {column.json_path}"
            node = node["properties"][part]
            if node.get("type") == "array":
                node = node["items"]


def test_crds_carry_names_categories_and_status() -> None:
    plurals = set()
    for kind in KINDS:
        crd = yaml.safe_load(render(kind))
        spec = crd["spec"]
        assert spec["scope"] == "Namespaced"
        assert spec["names"]["categories"] == ["ferry"]
        assert spec["names"]["shortNames"]
        assert spec["versions"][0]["subresources"] == {"status": {}}
        plurals.add(spec["names"]["plural"])
    assert plurals == {"environments", "templates", "workflows", "devicemigrations"}


def test_cross_field_rules_are_in_the_schema() -> None:
    from ferry.api.workflow import Workflow

    spec = _schema(Workflow)["properties"]["spec"]
    messages = " | ".join(r["message"] for r in spec["x-kubernetes-validations"])
    assert "match step needs an earlier readFrom" in messages
    assert "writeTo may only write" in messages
    assert spec["properties"]["schedule"]["properties"]["intervalMinutes"]["minimum"] == 15
    threshold = spec["properties"]["steps"]["items"]["properties"]["deleteObjects"]
    assert threshold["properties"]["pairs"]["items"]["properties"]["threshold"]["minimum"] == 0
