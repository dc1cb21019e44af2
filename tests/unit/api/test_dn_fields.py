"""Every DN in the manifests is checked as they load: a bad one names file, object and field."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ferry.api.errors import ManifestError
from ferry.api.loader import load_manifests

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "ad-to-ad"


def _problems(tmp_path: Path, file: str, old: str, new: str) -> list[str]:
    folder = tmp_path / "manifests"
    shutil.copytree(EXAMPLES, folder)
    path = folder / file
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))
    with pytest.raises(ManifestError) as caught:
        load_manifests([folder])
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(("file", "old", "new", "where", "why"), [
    ("template.yaml", "sourceOU: OU=Sales,OU=Corp,DC=src,DC=test", "sourceOU: 'OU=Sales;Corp'",
     "template.yaml: Template/src-to-tgt: spec.targetOU.mappings[0].sourceOU", "';'"),
    ("template.yaml", "default: OU=Migrated,DC=tgt,DC=test", "default: Migrated",
     "template.yaml: Template/src-to-tgt: spec.targetOU.default", "'Migrated' has no '='"),
    ("environments.yaml", 'ous: ["OU=Corp,DC=src,DC=test"]', 'ous: ["OU=Corp,,DC=src"]',
     "environments.yaml: Environment/src: spec.scope.ous[0]", "an RDN is empty"),
    ("environments.yaml", "baseDN: DC=src,DC=test", "baseDN: 'DC=src\\'",
     "environments.yaml: Environment/src: spec.activeDirectory.baseDN", "escapes nothing"),
    ("workflow.yaml", "objectTypes: [users, groups, contacts]\n",
     "objectTypes: [users, groups, contacts]\n            sourceOUs: ['OU=x,DC=src,DC=#zz']\n",
     "workflow.yaml: Workflow/ad-to-ad: spec.steps[2].stageData.pairs[0].sourceOUs[0]",
     "hex pairs"),
])
def test_a_dn_that_does_not_parse_is_refused_naming_the_field(
        tmp_path: Path, file: str, old: str, new: str, where: str, why: str) -> None:
    [problem] = _problems(tmp_path, file, old, new)
    assert where in problem and "not a distinguished name" in problem and why in problem
