"""Builders for small source/target worlds and a fake target directory that applies plans."""

from __future__ import annotations

from ferry.engine.plan import OpKind, PairPlan
from ferry.engine.records import AttributeValue, ObjectType, Record
from ferry.engine.rules import (
    AttributeMapping,
    DomainMapping,
    MatchRule,
    PairRules,
    StagingRules,
)

SRC_OU = "OU=Staff,DC=src,DC=test"
TGT_OU = "OU=Migrated,DC=tgt,DC=test"


def user(anchor: str, cn: str, *, ou: str = SRC_OU, enabled: bool | None = True,
         manager: str | None = None, **attributes: AttributeValue) -> Record:
    attrs: dict[str, AttributeValue] = {"cn": cn, **attributes}
    refs = {"manager": (manager,)} if manager else {}
    return Record(anchor, ObjectType.USER, f"CN={cn},{ou}", attrs, refs, enabled)


def group(anchor: str, cn: str, *members: str, ou: str = SRC_OU,
          **attributes: AttributeValue) -> Record:
    refs = {"member": tuple(members)} if members else {}
    return Record(anchor, ObjectType.GROUP, f"CN={cn},{ou}", {"cn": cn, **attributes}, refs)


def target_user(anchor: str, cn: str, *, ou: str = TGT_OU, enabled: bool | None = True,
                **attributes: AttributeValue) -> Record:
    return Record(anchor, ObjectType.USER, f"CN={cn},{ou}", {"cn": cn, **attributes}, {}, enabled)


def staging(*mappings: AttributeMapping, **options: object) -> StagingRules:
    defaults = (
        AttributeMapping("cn", "source.cn"),
        AttributeMapping("mail", "source.mail"),
        AttributeMapping("employeeID", "source.employeeID"),
        AttributeMapping("displayName", "source.givenName + ' ' + source.sn"),
    )
    settings: dict[str, object] = {"default_target_ou": TGT_OU}
    settings.update(options)
    return StagingRules("corp-users", mappings or defaults, **settings)  # type: ignore[arg-type]


def pair(staging_rules: StagingRules | None = None, *rules: MatchRule,
         **options: object) -> PairRules:
    match_rules = rules or (MatchRule("mail", "mail"),)
    return PairRules("src->tgt", staging_rules or staging(), match_rules,
                     **options)  # type: ignore[arg-type]


CONTOSO = (DomainMapping("contoso.com", "fabrikam.com"),)


class FakeTarget:
    """A target directory plus join store that applies plans the way a connector would."""

    def __init__(self, records: list[Record] | None = None) -> None:
        self.objects: dict[str, Record] = {r.anchor: r for r in records or []}
        self.joins: dict[str, str] = {}
        self._next = 0

    @property
    def records(self) -> list[Record]:
        return list(self.objects.values())

    def by_dn(self, dn: str) -> Record:
        return next(r for r in self.objects.values() if r.dn.lower() == dn.lower())

    def apply(self, plan: PairPlan) -> None:
        self.joins.update(plan.new_joins)
        for source_anchor in plan.dropped_joins:
            self.joins.pop(source_anchor, None)
        for op in plan.operations:
            if op.kind is OpKind.CREATE:
                self._next += 1
                anchor = f"t{self._next}"
                attrs = {k: v for k, v in op.changes.items() if v is not None}
                self.objects[anchor] = Record(anchor, op.object_type, op.dn, attrs, {}, op.enabled)
                assert op.source_anchor is not None
                self.joins[op.source_anchor] = anchor
            elif op.kind is OpKind.UPDATE:
                assert op.target_anchor is not None
                record = self.objects[op.target_anchor]
                for name, value in op.changes.items():
                    if value is None:
                        record.attributes.pop(name, None)
                    else:
                        record.attributes[name] = value
                if op.enabled is not None:
                    record.enabled = op.enabled
            elif op.kind is OpKind.MOVE:
                assert op.target_anchor is not None and op.new_dn is not None
                self.objects[op.target_anchor].dn = op.new_dn
            elif op.kind is OpKind.DELETE:
                assert op.target_anchor is not None
                del self.objects[op.target_anchor]
                self.joins = {s: t for s, t in self.joins.items() if t != op.target_anchor}
            elif op.kind is OpKind.REFERENCES:
                assert op.source_anchor is not None and op.attribute is not None
                anchor = op.target_anchor or self.joins[op.source_anchor]
                record = self.objects[anchor]
                refs = [t for t in record.references.get(op.attribute, ()) if t not in op.remove]
                for source_anchor in op.add:
                    resolved = self.joins[source_anchor]
                    if op.attribute == "manager":
                        refs = [resolved]
                    elif resolved not in refs:
                        refs.append(resolved)
                record.references = {**record.references, op.attribute: tuple(refs)}
