"""Turn a Workflow and its Template into the engine's per-pair rules."""

from __future__ import annotations

from dataclasses import dataclass

from ferry.api.environment import ScopeObjectType
from ferry.api.loader import Manifests
from ferry.api.template import PasswordOptions, TemplateSpec
from ferry.api.workflow import Workflow
from ferry.engine import rules as er
from ferry.engine.records import ObjectType

OBJECT_TYPE = {
    ScopeObjectType.USERS: ObjectType.USER,
    ScopeObjectType.GROUPS: ObjectType.GROUP,
    ScopeObjectType.CONTACTS: ObjectType.CONTACT,
    ScopeObjectType.DEVICES: ObjectType.DEVICE,
}

_U, _G, _C = ObjectType.USER, ObjectType.GROUP, ObjectType.CONTACT
_ON_CREATE = er.ApplyWhen.ON_CREATE

# Ferry's built-in mappings: the attributes an AD-to-AD migration carries by default.
# Account names are set once: a matched target object keeps the names it already has.
DEFAULT_MAPPINGS: tuple[tuple[str, frozenset[ObjectType], er.ApplyWhen], ...] = (
    ("cn", frozenset({_U, _G, _C}), er.ApplyWhen.ALWAYS),
    ("sAMAccountName", frozenset({_U, _G}), _ON_CREATE),
    ("userPrincipalName", frozenset({_U}), _ON_CREATE),
    ("groupType", frozenset({_G}), _ON_CREATE),
    *((attr, frozenset({_U, _C}), er.ApplyWhen.ALWAYS) for attr in (
        "givenName", "sn", "initials", "company", "department", "title",
        "telephoneNumber", "mobile", "physicalDeliveryOfficeName", "streetAddress", "l", "st",
        "postalCode", "co",
    )),
    *((attr, frozenset({_U}), er.ApplyWhen.ALWAYS) for attr in ("employeeID", "employeeNumber")),
    ("targetAddress", frozenset({_C}), er.ApplyWhen.ALWAYS),
    *((attr, frozenset({_U, _G, _C}), er.ApplyWhen.ALWAYS) for attr in (
        "displayName", "description", "mail", "proxyAddresses", "info",
    )),
)


@dataclass(frozen=True)
class PairSettings:
    """One source -> target pair of a workflow, ready for the engine and the writer."""

    source: str
    target: str
    rules: er.PairRules
    password: PasswordOptions
    template: str


def pair_key(workflow: str, source: str, target: str) -> str:
    return f"{workflow}/{source}->{target}"


def workflow_pairs(manifests: Manifests, workflow: Workflow) -> list[PairSettings]:
    """Every stageData pair of the workflow, with its match rules and delete threshold."""
    spec = workflow.spec
    match_rules = {
        (s.match.source, s.match.target): tuple(
            er.MatchRule(r.source_attribute, r.target_attribute) for r in s.match.rules)
        for _, s in spec.steps_of("match") if s.match
    }
    thresholds = {
        (p.source, p.target): p.threshold
        for _, s in spec.steps_of("deleteObjects") if s.delete_objects
        for p in s.delete_objects.pairs
    }
    pairs: list[PairSettings] = []
    for _, step in spec.steps_of("stageData"):
        stage = step.stage_data
        assert stage is not None
        template = manifests.templates[stage.template]
        staging = staging_rules(stage.template, template.spec)
        for pair in stage.pairs:
            key = (pair.source, pair.target)
            rules = er.PairRules(
                name=pair_key(workflow.metadata.name, pair.source, pair.target),
                staging=staging,
                match_rules=match_rules.get(key, ()),
                object_types=frozenset(OBJECT_TYPE[t] for t in pair.object_types),
                source_ous=tuple(pair.source_ous),
                source_filter=pair.filter,
                delete_threshold=thresholds.get(key, 0),
                delete_enabled=key in thresholds,
            )
            pairs.append(PairSettings(pair.source, pair.target, rules, template.spec.password,
                                      stage.template))
    return pairs


def staging_rules(name: str, spec: TemplateSpec) -> er.StagingRules:
    """The engine's view of a Template: defaults first, explicit mappings override them."""
    mappings: dict[tuple[str, frozenset[ObjectType]], er.AttributeMapping] = {}
    if spec.include_default_mappings:
        for attr, types, apply in DEFAULT_MAPPINGS:
            mappings[(attr, types)] = er.AttributeMapping(attr, f"source.{attr}", apply, types)
    explicit = [
        er.AttributeMapping(
            m.target, m.expression, er.ApplyWhen(m.apply.value),
            frozenset(OBJECT_TYPE[t] for t in m.object_types))
        for m in spec.attribute_mappings
    ]
    overridden = {m.target_attribute.lower() for m in explicit}
    kept = [m for (attr, _), m in mappings.items() if attr.lower() not in overridden]
    switches = {
        ObjectType.USER: spec.object_types.users,
        ObjectType.GROUP: spec.object_types.groups,
        ObjectType.CONTACT: spec.object_types.contacts,
        ObjectType.DEVICE: spec.object_types.devices,
    }
    return er.StagingRules(
        template_name=name,
        mappings=(*kept, *explicit),
        domain_mappings=tuple(er.DomainMapping(d.source, d.target) for d in spec.domain_mappings),
        default_target_ou=spec.target_ou.default,
        ou_mappings=tuple(er.OuMapping(m.source_ou, m.target_ou) for m in spec.target_ou.mappings),
        object_types={t: er.TypeSwitch(s.create, s.update, s.delete) for t, s in switches.items()},
        mirror_enabled=spec.mirror_account_state,
    )
