"""Turn a Workflow and its Template into the engine's per-pair rules."""

from __future__ import annotations

from dataclasses import dataclass, replace

from ferry.api.environment import DirectoryType, ScopeObjectType
from ferry.api.loader import Manifests
from ferry.api.template import GuestOptions, PasswordOptions, TemplateSpec
from ferry.api.workflow import Workflow
from ferry.connectors.base import SCOPE_TYPES
from ferry.engine import rules as er
from ferry.engine.records import ObjectType
from ferry.sync.mappings import default_mappings
from ferry_agent.dn import DNError, dns_domain


@dataclass(frozen=True)
class PairSettings:
    """One source -> target pair of a workflow, ready for the engine and the writer."""

    source: str
    target: str
    rules: er.PairRules
    password: PasswordOptions
    template: str
    sid_history: frozenset[ObjectType] = frozenset()   # empty: no sIDHistory for this pair
    # The source domain's DNS name and DC: whose SIDs they are, for a Windows target's
    # DsAddSidHistory (which reads the SID from the source DC itself).
    source_domain: str = ""
    source_dc: str = ""
    # AD to AD: both sides' objectSid are read, so the run keeps the pair's SID translation
    # table (state store) that a DeviceMigration's ReACL uses.
    sid_translation: bool = False


def pair_key(workflow: str, source: str, target: str) -> str:
    return f"{workflow}/{source}->{target}"


def workflow_pairs(manifests: Manifests, workflow: Workflow) -> list[PairSettings]:
    """Every stageData pair of the workflow, with its match rules and delete threshold."""
    spec = workflow.spec
    match_rules = {
        (s.match.source, s.match.target): tuple(
            er.MatchRule(r.source_attribute, r.target_attribute, r.guest)
            for r in s.match.rules)
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
        for pair in stage.pairs:
            key = (pair.source, pair.target)
            staging = staging_rules(stage.template, template.spec,
                                    manifests.environments[pair.source].spec.type,
                                    manifests.environments[pair.target].spec.type)
            rules = er.PairRules(
                name=pair_key(workflow.metadata.name, pair.source, pair.target),
                staging=staging,
                match_rules=match_rules.get(key, ()),
                object_types=frozenset(SCOPE_TYPES[t] for t in pair.object_types),
                source_ous=tuple(pair.source_ous),
                source_filter=pair.filter,
                delete_threshold=thresholds.get(key, 0),
                delete_enabled=key in thresholds,
            )
            history = template.spec.sid_history
            source_ad = manifests.environments[pair.source].spec.active_directory
            pairs.append(PairSettings(
                pair.source, pair.target, rules, template.spec.password, stage.template,
                frozenset(SCOPE_TYPES[ScopeObjectType(t.value)] for t in history.object_types)
                & rules.object_types if history.enabled else frozenset(),
                source_domain=_dns_domain(source_ad.base_dn) if source_ad else "",
                source_dc=source_ad.host if source_ad else "",
                sid_translation=source_ad is not None
                and manifests.environments[pair.target].spec.active_directory is not None))
    return pairs


def staging_rules(name: str, spec: TemplateSpec,
                  source: DirectoryType = DirectoryType.ACTIVE_DIRECTORY,
                  target: DirectoryType = DirectoryType.ACTIVE_DIRECTORY) -> er.StagingRules:
    """The engine's view of a Template for one kind of pair: built-in mappings first,
    explicit mappings override them per target attribute."""
    defaults = default_mappings(source, target) if spec.include_default_mappings else []
    if target is DirectoryType.ENTRA_ID:
        defaults = _guest_mappings(spec.guests, defaults)
    explicit = [
        er.AttributeMapping(
            m.target, m.expression, er.ApplyWhen(m.apply.value),
            frozenset(SCOPE_TYPES[t] for t in m.object_types),
            f"Template/{name}: spec.attributeMappings[{index}]")
        for index, m in enumerate(spec.attribute_mappings)
    ]
    overridden = {m.target_attribute.lower() for m in explicit}
    kept = [m for m in defaults if m.target_attribute.lower() not in overridden]
    switches = {
        ObjectType.USER: spec.object_types.users,
        ObjectType.GROUP: spec.object_types.groups,
        ObjectType.CONTACT: spec.object_types.contacts,
        ObjectType.DEVICE: spec.object_types.devices,
    }
    # Entra ID has no containers: created objects are not placed, and nothing moves.
    target_ou = spec.target_ou if target is DirectoryType.ACTIVE_DIRECTORY else None
    return er.StagingRules(
        template_name=name,
        mappings=(*kept, *explicit),
        domain_mappings=tuple(er.DomainMapping(d.source, d.target) for d in spec.domain_mappings),
        default_target_ou=target_ou.default if target_ou else "",
        ou_mappings=tuple(er.OuMapping(m.source_ou, m.target_ou)
                          for m in (target_ou.mappings if target_ou else ())),
        object_types={t: er.TypeSwitch(s.create, s.update, s.delete) for t, s in switches.items()},
        mirror_enabled=spec.mirror_account_state,
        # Entra objects are known by their UPN (users) or display name: see connectors.entra.
        rdn_attribute="cn" if target is DirectoryType.ACTIVE_DIRECTORY else "userPrincipalName",
        containers=target is DirectoryType.ACTIVE_DIRECTORY,
    )


_USERS = frozenset({ObjectType.USER})
_GUESTS_ORIGIN = "built-in guest mapping (Template spec.guests)"
_ADDRESSES = ("userprincipalname", "mail")


def _guest_mappings(guests: GuestOptions, mappings: list[er.AttributeMapping]
                    ) -> list[er.AttributeMapping]:
    """Mappings for a template that creates B2B guests or converts them to members."""
    if guests.convert_to_members:
        # userType Member and the member addresses: a matched guest becomes a member.
        return [*(_apply_always(m) if m.target_attribute.lower() in _ADDRESSES else m
                  for m in mappings),
                er.AttributeMapping("userType", "'Member'", er.ApplyWhen.ALWAYS, _USERS,
                                    _GUESTS_ORIGIN)]
    if not guests.create_unmatched_as_guests:
        return mappings
    # A guest keeps the addresses its invitation gave it, so they are set on create only.
    kept = [replace(m, apply=er.ApplyWhen.ON_CREATE)
            if m.target_attribute.lower() in _ADDRESSES else m for m in mappings]
    on_create = er.ApplyWhen.ON_CREATE
    return [*kept,
            er.AttributeMapping("userType", "'Guest'", on_create, _USERS, _GUESTS_ORIGIN),
            er.AttributeMapping("invitedUserEmailAddress", "source.mail", on_create, _USERS,
                                _GUESTS_ORIGIN),
            er.AttributeMapping("showInAddressList",
                                "'true'" if guests.show_in_address_list else "'false'",
                                on_create, _USERS, _GUESTS_ORIGIN)]


def _apply_always(mapping: er.AttributeMapping) -> er.AttributeMapping:
    return replace(mapping, apply=er.ApplyWhen.ALWAYS)


def _dns_domain(base_dn: str) -> str:
    try:
        return dns_domain(base_dn)
    except DNError:
        return ""   # a baseDN below the domain root: no DsAddSidHistory source then
