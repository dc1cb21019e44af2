"""Entra ID environments, guest templates and the built-in mappings of each kind of pair."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ferry.api.errors import ManifestError
from ferry.api.loader import load_manifests
from ferry.engine.records import ObjectType
from ferry.engine.rules import ApplyWhen
from ferry.sync.pairs import workflow_pairs

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def _mappings(folder: Path) -> dict[str, tuple[str, ApplyWhen]]:
    """Target attribute -> (expression, apply) of the first pair's user mappings."""
    manifests = load_manifests([folder])
    [workflow] = manifests.workflows.values()
    [settings] = workflow_pairs(manifests, workflow)
    return {m.target_attribute: (m.expression, m.apply)
            for m in settings.rules.staging.mappings
            if not m.object_types or ObjectType.USER in m.object_types}


def test_ad_to_entra_maps_ad_attributes_to_graph_properties_and_places_nothing() -> None:
    manifests = load_manifests([EXAMPLES / "ad-to-entra"])
    fabrikam = manifests.environments["fabrikam"].spec
    assert fabrikam.entra_id is not None and fabrikam.entra_id.credentials.client_secret
    mappings = _mappings(EXAMPLES / "ad-to-entra")
    assert mappings["surname"] == ("source.sn", ApplyWhen.ALWAYS)
    assert mappings["jobTitle"] == ("source.title", ApplyWhen.ALWAYS)
    assert mappings["city"] == ("source.l", ApplyWhen.ALWAYS)
    assert mappings["userPrincipalName"] == ("source.userPrincipalName", ApplyWhen.ON_CREATE)
    assert mappings["mailNickname"][1] is ApplyWhen.ON_CREATE
    assert "source.sAMAccountName" in mappings["mailNickname"][0]
    assert mappings["usageLocation"] == ("'US'", ApplyWhen.ON_CREATE)
    for ad_only in ("cn", "sn", "sAMAccountName", "proxyAddresses", "userType"):
        assert ad_only not in mappings
    [settings] = workflow_pairs(manifests, manifests.workflows["ad-to-entra"])
    assert settings.rules.staging.default_target_ou == ""


def test_guest_template_creates_guests_and_a_conversion_makes_members(tmp_path: Path) -> None:
    mappings = _mappings(EXAMPLES / "tenant-to-tenant")
    assert mappings["userType"] == ("'Guest'", ApplyWhen.ON_CREATE)
    assert mappings["invitedUserEmailAddress"] == ("source.mail", ApplyWhen.ON_CREATE)
    assert mappings["mail"][1] is ApplyWhen.ON_CREATE  # a guest keeps its B2B addresses
    assert mappings["surname"] == ("source.surname", ApplyWhen.ALWAYS)

    folder = tmp_path / "t2t"
    shutil.copytree(EXAMPLES / "tenant-to-tenant", folder)
    template = folder / "template.yaml"
    template.write_text(template.read_text().replace("convertToMembers: false",
                                                     "convertToMembers: true"))
    converting = _mappings(folder)
    assert converting["userType"] == ("'Member'", ApplyWhen.ALWAYS)
    assert converting["userPrincipalName"][1] is ApplyWhen.ALWAYS
    assert converting["mail"][1] is ApplyWhen.ALWAYS
    assert "invitedUserEmailAddress" not in converting


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("      clientSecret:\n", "      workloadIdentity: {}\n      clientSecret:\n",
     "set exactly one of clientSecret, certificate or workloadIdentity"),
    ("  type: EntraID\n", "  type: EntraID\n  connection: agent\n",
     "use connection direct"),
])
def test_bad_entra_environments_are_refused(tmp_path: Path, old: str, new: str,
                                            expected: str) -> None:
    folder = tmp_path / "m"
    shutil.copytree(EXAMPLES / "ad-to-entra", folder)
    envs = folder / "environments.yaml"
    assert old in envs.read_text()
    envs.write_text(envs.read_text().replace(old, new))
    with pytest.raises(ManifestError) as caught:
        load_manifests([folder])
    assert expected in str(caught.value)


def test_scopes_belong_to_their_directory_type(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(EXAMPLES / "ad-to-entra", folder)
    envs = folder / "environments.yaml"
    text = envs.read_text().replace("  scope:\n    objectTypes: [users, groups]\n",
                                    "  scope:\n    ous: [\"OU=Cloud,DC=x\"]\n")
    text = text.replace('    ous: ["OU=Corp,DC=src,DC=test"]\n',
                        '    ous: ["OU=Corp,DC=src,DC=test"]\n    groups: [abc]\n')
    envs.write_text(text)
    with pytest.raises(ManifestError) as caught:
        load_manifests([folder])
    problems = [str(p) for p in caught.value.problems]
    assert any("Environment/fabrikam" in p and "scope.ous is for Active Directory" in p
               for p in problems), problems
    assert any("Environment/src" in p and "scope.groups" in p and "are for Entra ID" in p
               for p in problems), problems


def test_pairs_must_fit_their_directories(tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(EXAMPLES / "ad-to-entra", folder)
    workflow = folder / "workflow.yaml"
    text = workflow.read_text().replace(
        "          - {sourceAttribute: employeeID, targetAttribute: employeeId}\n",
        "          - {sourceAttribute: employeeID, targetAttribute: employeeId}\n"
        "          - {sourceAttribute: mail, guest: true}\n")
    workflow.write_text(text.replace("match:\n        source: src\n        target: fabrikam",
                                     "match:\n        source: fabrikam\n        target: src"))
    with pytest.raises(ManifestError) as caught:
        load_manifests([folder])
    assert "spec.steps[1].match.rules[2].guest: guest rules match B2B guests of an Entra ID" \
        " target; 'src' is ActiveDirectory" in str(caught.value)

    ad_target = tmp_path / "reverse"
    shutil.copytree(EXAMPLES / "ad-to-entra", ad_target)
    workflow = ad_target / "workflow.yaml"
    workflow.write_text(workflow.read_text().replace(
        "{source: src, target: fabrikam, objectTypes: [users, groups]}",
        "{source: fabrikam, target: src, objectTypes: [users, groups]}").replace(
        "environments: [fabrikam]\n", "environments: [src]\n").replace(
        "{source: src, target: fabrikam, threshold: 10}",
        "{source: fabrikam, target: src, threshold: 10}"))
    with pytest.raises(ManifestError) as caught:
        load_manifests([ad_target])
    assert "'src' is Active Directory, but Template 'src-to-fabrikam' has no targetOU" \
        in str(caught.value)
