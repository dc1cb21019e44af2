"""Matching: find the target object each unjoined source object corresponds to, or none."""

# Existing joins win over rules. A source whose create was interrupted (a pending create)
# joins the target object at the DN it was being created at. Otherwise the ordered match
# rules are tried: the first rule with exactly one target candidate decides. Ambiguity is
# never guessed: a rule value shared by several sources, several candidates, a target claimed
# twice or a target already joined to another source all make a Conflict, and nothing is
# written for that source.

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ferry.engine.diff import StoredTarget
from ferry.engine.plan import Conflict, StagingError
from ferry.engine.records import AttributeValue, ObjectType, Record
from ferry.engine.rules import PairRules
from ferry.engine.stage import Staged
from ferry_agent.dn import dn_key

# A target rule-value table entry: one target anchor, or several (an ambiguous value).
_TargetEntry = str | list[str]


def _fold(value: str) -> str:
    """value lower-cased, reusing the object when it already is (saves memory in indexes)."""
    lower = value.lower()
    return value if lower == value else lower


def _lower_values(record: Record, attribute: str) -> tuple[str, ...]:
    """The distinct non-empty values of attribute, lower-cased."""
    return _folded(record.attributes.get(attribute))


def _folded(raw: AttributeValue | None) -> tuple[str, ...]:
    """The distinct non-empty values of one attribute value, lower-cased."""
    if raw is None:
        return ()
    if type(raw) is str:
        return (_fold(raw),) if raw else ()
    return tuple(dict.fromkeys(_fold(value) for value in raw if value))


def _fold_value(value: AttributeValue | None) -> AttributeValue | None:
    """value with every string lower-cased (see _fold); empty items are kept."""
    if value is None or type(value) is str:
        return value if not value else _fold(value)
    return tuple([_fold(item) for item in value])


def _lower(value: str | tuple[str, ...]) -> tuple[str, ...]:
    return (value.lower(),) if type(value) is str else tuple(item.lower() for item in value)


_EXT = "#ext#"


def guest_target_keys(value: AttributeValue | None) -> tuple[str, ...]:
    """The guest forms in a target value, lower-cased: `local_domain#ext#` of each
    `local_domain#EXT#@tenant`; values that are not guest addresses give none."""
    keys = []
    for item in _folded(value):
        head, at, _ = item.rpartition("@")
        if at and head.endswith(_EXT):
            keys.append(head)
    return tuple(keys)


def guest_source_keys(values: tuple[str, ...], domains: frozenset[str]) -> tuple[str, ...]:
    """The guest forms of lower-cased source addresses whose domain is in `domains`."""
    keys = []
    for value in values:
        local, at, domain = value.rpartition("@")
        if at and local and domain in domains:
            keys.append(f"{local}_{domain}{_EXT}")
    return tuple(keys)


class TargetIndex:
    """All target objects by anchor (as StoredTarget, fingerprinting `compared` attributes),
    and by lower-cased value of each match rule's attribute."""

    __slots__ = ("_names", "_pending", "_tables", "by_anchor", "vanished")

    def __init__(self, rules: PairRules, targets: Iterable[Record], joins: Mapping[str, str],
                 pending_creates: Mapping[str, str],
                 compared: Mapping[ObjectType, tuple[str, ...]]) -> None:
        self.by_anchor: dict[str, StoredTarget] = {}
        attributes = tuple(rule.target_attribute for rule in rules.match_rules)
        guest_rules = (tuple(rule.guest for rule in rules.match_rules)
                       if any(rule.guest for rule in rules.match_rules) else ())
        self._names = {object_type: compared.get(object_type, ()) for object_type in ObjectType}
        self._tables: list[dict[ObjectType, dict[str, _TargetEntry]]] = [
            {object_type: {} for object_type in ObjectType} for _ in attributes
        ]
        pending_keys = {dn_key(dn) for dn in pending_creates.values()}
        self._pending: dict[str, str] = {}
        types = rules.object_types
        by_anchor, tables, names = self.by_anchor, self._tables, self._names
        # Joined targets not read yet: anchor -> (anchor, source anchor). A joined target's
        # anchor comes twice, from the join store and from the read: the join store's string
        # is kept and the read's let go (~100 bytes per joined object). What is left once
        # all are read are the joined targets that are gone.
        unread = {target: (target, source) for source, target in joins.items()}
        for target in targets:
            anchor, owner = unread.pop(target.anchor, None) or (target.anchor, None)
            object_type = target.object_type
            get = target.attributes.get
            rule_values = tuple([_fold_value(value) for value in map(get, attributes)])
            if guest_rules:
                rule_values = tuple([guest_target_keys(v) if guest else v
                                     for v, guest in zip(rule_values, guest_rules, strict=True)])
            by_anchor[anchor] = StoredTarget(anchor, target, names[object_type], rule_values,
                                             owner)
            if object_type not in types:
                continue
            for index, value in enumerate(rule_values):
                if not value:
                    continue
                table = tables[index][object_type]
                if type(value) is str:
                    if table.setdefault(value, anchor) is not anchor:
                        _add(table, value, anchor)
                else:
                    for item in value:
                        if item:
                            _add(table, item, anchor)
            if pending_keys:
                key = dn_key(target.dn)
                if key in pending_keys:
                    self._pending[key] = anchor
        # Targets the join store names that the read did not return (deleted, or out of scope).
        self.vanished = set(unread)

    def owner(self, anchor: str) -> str | None:
        """The source anchor the target object `anchor` is joined to (join store), if any."""
        stored = self.by_anchor.get(anchor)
        return None if stored is None else stored.owner

    def clear_match_tables(self) -> None:
        """Drop the rule-value tables once matching is over (they are most of the index)."""
        for tables in self._tables:
            tables.clear()
        self._pending.clear()

    def dn(self, anchor: str) -> str:
        return self.by_anchor[anchor].dn

    def candidates(self, rule_index: int, object_type: ObjectType,
                   values: tuple[str, ...]) -> list[str]:
        """Distinct anchors of target objects of object_type having any of the values."""
        table = self._tables[rule_index][object_type]
        found: list[str] = []
        for value in values:
            entry = table.get(value)
            if entry is None:
                continue
            if type(entry) is str:
                if entry not in found:
                    found.append(entry)
            else:
                found.extend(anchor for anchor in entry if anchor not in found)
        return found

    def pending_target(self, dn: str) -> str | None:
        """Anchor of the target object at the DN an interrupted create used, if it got there."""
        return self._pending.get(dn_key(dn))


def _add(table: dict[str, _TargetEntry], key: str, anchor: str) -> None:
    existing = table.get(key)
    if existing is None:
        table[key] = anchor
    elif isinstance(existing, str):
        if existing != anchor:
            table[key] = [existing, anchor]
    elif anchor not in existing:
        existing.append(anchor)


class Candidate:
    """The match outcome for one unjoined source object (`target` anchor, None: create);
    final once Matcher.resolve() ran. The caller keeps its staged results on it meanwhile."""

    __slots__ = ("conflict", "error", "keys", "object_type", "operation_count", "pending",
                 "references", "rule", "source_anchor", "source_dn", "target", "value")
    # The caller keeps candidates' operations in one list, in candidate order, and each
    # candidate only how many are its own: a small int costs nothing, while a list (or
    # positions) per candidate would cost 60-110 bytes at a million candidates.

    def __init__(self, source: Record) -> None:
        self.source_anchor = source.anchor
        self.source_dn = source.dn
        self.object_type = source.object_type
        self.target: str | None = None
        self.rule = ""
        self.value = ""
        self.pending = False
        self.conflict: Conflict | None = None
        # Rule index, lower-cased value, rule index, value, ...: what the decision rested on
        # (flat, as a million small pairs would cost more memory than the values).
        self.keys: tuple[int | str, ...] = ()
        self.operation_count = 0
        # The staged references (aligned_references), None when it has none.
        self.references: tuple[tuple[str, ...], ...] | None = None
        self.error: StagingError | None = None


class _Shared(list[Candidate | str]):
    """Several sources claiming one rule value (Candidates, or DNs of joined sources)."""

    __slots__ = ()


_Claimant = Candidate | str
_ValueEntry = Candidate | str | _Shared


def _claim_value(table: dict[str, _ValueEntry], value: str, claimant: _Claimant) -> None:
    """Note that claimant has value (one rule, one object type)."""
    existing = table.get(value)
    if existing is None:
        table[value] = claimant
    elif isinstance(existing, _Shared):
        existing.append(claimant)
    else:
        table[value] = _Shared((existing, claimant))


def _dn_of(claimant: _Claimant) -> str:
    return claimant if isinstance(claimant, str) else claimant.source_dn


class Matcher:
    """Matches source objects one at a time; resolve() then settles cross-object conflicts."""

    __slots__ = ("_claims", "_guest_domains", "_index", "_labels", "_pair", "_rules",
                 "_sources", "_values", "candidates")

    def __init__(self, rules: PairRules, index: TargetIndex) -> None:
        self._pair = rules.name
        self._rules = rules.match_rules
        self._sources = tuple(rule.source_attribute for rule in self._rules)
        self._labels = tuple(
            f"{r.source_attribute} -> {r.target_attribute}{' (guest)' if r.guest else ''}"
            for r in self._rules)
        # Guest rules only match addresses in a domain the template maps.
        self._guest_domains = frozenset(m.source_domain.lower()
                                        for m in rules.staging.domain_mappings)
        self._index = index
        # Per rule and type: lower-cased source value -> who claims it.
        self._values: list[dict[ObjectType, dict[str, _ValueEntry]]] = [
            {object_type: {} for object_type in ObjectType} for _ in self._rules
        ]
        # target anchor -> the candidate(s) that matched it.
        self._claims: dict[str, Candidate | list[Candidate]] = {}
        self.candidates: list[Candidate] = []

    def _register(self, rule_index: int, object_type: ObjectType, value: str,
                  claimant: _Claimant) -> None:
        _claim_value(self._values[rule_index][object_type], value, claimant)

    def note_joined(self, source: Record, target: StoredTarget, desired: Staged | None) -> None:
        """Remember a joined source's rule values that could collide with an unjoined source's."""
        # Not needed when its target carries the value (an unjoined source with that value
        # finds the joined target: a conflict), nor when the desired value is already on the
        # target (a create with the same value is caught by check_create).
        for index, rule in enumerate(self._rules):
            raw = source.attributes.get(rule.source_attribute)
            if not raw:
                continue
            have = target.rule_values[index]  # lower-cased
            if rule.guest:
                for value in guest_source_keys(_folded(raw), self._guest_domains):
                    if value not in (have or ()):
                        self._register(index, source.object_type, value, source.dn)
                continue
            if type(raw) is str and type(have) is str and (raw == have or raw.lower() == have):
                continue
            if desired is not None and have:
                want = desired.get(rule.target_attribute)
                if want is not None and (want == have or set(_lower(want)) == set(_lower(have))):
                    continue
            have_lower = set(_lower(have)) if have else set()
            for value in _lower_values(source, rule.source_attribute):
                if value not in have_lower:
                    self._register(index, source.object_type, value, source.dn)

    def _conflict(self, candidate: Candidate, rule: str, value: str,
                  competing: Iterable[str], message: str) -> None:
        candidate.conflict = Conflict(
            pair=self._pair, source_anchor=candidate.source_anchor, source_dn=candidate.source_dn,
            object_type=candidate.object_type, rule=rule, value=value,
            candidates=tuple(competing), message=f"{candidate.source_dn}: {message}",
        )

    def _claim(self, target_anchor: str, candidate: Candidate) -> None:
        existing = self._claims.get(target_anchor)
        if existing is None:
            self._claims[target_anchor] = candidate
        elif isinstance(existing, list):
            existing.append(candidate)
        else:
            self._claims[target_anchor] = [existing, candidate]

    def match(self, source: Record, pending_dn: str | None = None) -> Candidate:
        """Decide what an unjoined source object corresponds to (conflicts settle in resolve)."""
        candidate = Candidate(source)
        self.candidates.append(candidate)
        object_type = source.object_type
        get = source.attributes.get
        per_rule = [_folded(get(attribute)) for attribute in self._sources]
        for index, rule in enumerate(self._rules):
            if rule.guest:
                per_rule[index] = guest_source_keys(per_rule[index], self._guest_domains)
        for tables, values in zip(self._values, per_rule, strict=True):
            table = tables[object_type]
            for value in values:
                if table.setdefault(value, candidate) is not candidate:
                    _claim_value(table, value, candidate)
        index_ = self._index
        if pending_dn is not None:
            target = index_.pending_target(pending_dn)
            if target is not None:
                owner = index_.owner(target)
                if owner is not None and owner != source.anchor:
                    target_dn = index_.dn(target)
                    self._conflict(
                        candidate, "pending create", pending_dn, (target_dn,),
                        f"pending create: the object created at {target_dn} is already joined "
                        f"to source object {owner}; nothing is written until that is resolved",
                    )
                else:
                    candidate.target, candidate.pending = target, True
                    candidate.rule, candidate.value = "pending create", pending_dn
                    self._claim(target, candidate)
                return candidate
            # The interrupted create never reached the target: match and create as usual.
        keys: list[int | str] = []
        for index, values in enumerate(per_rule):
            if not values:
                continue  # no value for this rule: the next rule decides
            for value in values:
                keys.append(index)
                keys.append(value)
            hits = index_.candidates(index, object_type, values)
            if not hits:
                continue
            label, shown = self._labels[index], ", ".join(values)
            if len(hits) > 1:
                dns = [index_.dn(anchor) for anchor in hits]
                self._conflict(
                    candidate, label, shown, dns,
                    f"{label}: value {shown!r} matches {len(hits)} target objects "
                    f"({'; '.join(dns)}); nothing is written until exactly one matches",
                )
                break
            target = hits[0]
            owner = index_.owner(target)
            if owner is not None:
                target_dn = index_.dn(target)
                self._conflict(
                    candidate, label, shown, (target_dn,),
                    f"{label}: value {shown!r} matches {target_dn}, which is already joined to "
                    f"source object {owner}; nothing is written until the values differ",
                )
                break
            candidate.target, candidate.rule, candidate.value = target, label, shown
            self._claim(target, candidate)
            break
        candidate.keys = tuple(keys)
        return candidate

    def check_create(self, candidate: Candidate, desired: Staged) -> None:
        """Make a planned create a conflict when its staged rule values are already on a target."""
        # Creating it would make a second target object with that value (typically one joined
        # to another source whose value was rewritten, e.g. by a domain mapping).
        for index, rule in enumerate(self._rules):
            if rule.guest:
                continue  # a create makes a member, or a guest its match would have found
            values = _folded(desired.get(rule.target_attribute))
            if not values:
                continue
            hits = self._index.candidates(index, candidate.object_type, values)
            if hits:
                dns = [self._index.dn(anchor) for anchor in hits]
                label, shown = self._labels[index], ", ".join(values)
                self._conflict(
                    candidate, label, shown, dns,
                    f"{label}: creating it would give {rule.target_attribute} value {shown!r}, "
                    f"which {'; '.join(dns)} already has; nothing is written until they differ",
                )
                return

    def clear_tables(self) -> None:
        """Drop the per-value and per-target claim tables once resolve() has run."""
        for tables in self._values:
            tables.clear()
        self._claims.clear()

    def resolve(self) -> None:
        """Mark every candidate caught in a cross-object ambiguity with its Conflict."""
        for candidate in self.candidates:
            if candidate.conflict is not None:
                continue
            keys = candidate.keys
            for position in range(0, len(keys), 2):
                index, value = keys[position], keys[position + 1]
                assert isinstance(index, int) and isinstance(value, str)
                entry = self._values[index][candidate.object_type][value]
                if type(entry) is not _Shared:
                    continue
                dns = [_dn_of(claimant) for claimant in entry]
                label = self._labels[index]
                self._conflict(
                    candidate, label, value,
                    [_dn_of(c) for c in entry if c is not candidate],
                    f"{label}: value {value!r} is shared by {len(entry)} source objects "
                    f"({'; '.join(dns)}); nothing is written for them until it is unique",
                )
                break
        for target_anchor, claim in self._claims.items():
            if not isinstance(claim, list):
                continue
            pending = [c for c in claim if c.pending]
            # An interrupted create of ours owns its object; only rule matches compete.
            losers = [c for c in claim if not c.pending] if len(pending) == 1 else claim
            target_dn = self._index.dn(target_anchor)
            dns = [c.source_dn for c in claim]
            for loser in losers:
                if loser.conflict is None:
                    self._conflict(
                        loser, loser.rule, loser.value,
                        [dn for dn in dns if dn != loser.source_dn],
                        f"{loser.rule}: value {loser.value!r} matches {target_dn}, which "
                        f"{len(claim)} source objects claim ({'; '.join(dns)}); nothing is "
                        "written until one match remains",
                    )
