"""`ferry trace`: find one object, read only what its trace needs, and (asked) apply it."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

import structlog

from ferry.api.environment import DirectoryType
from ferry.api.loader import Manifests
from ferry.api.status import RunResult
from ferry.connectors.base import Connector
from ferry.connectors.factory import open_connector
from ferry.engine.expressions import compile_template
from ferry.engine.plan import Count
from ferry.engine.records import AttributeValue, Record
from ferry.engine.stage import stage
from ferry.engine.trace import KeyKind, PairTrace, guid_value, key_kinds, trace_pair
from ferry.errors import FerryError
from ferry.secrets import SecretSource
from ferry.settings import RunSettings
from ferry.state.rows import ObjectResult
from ferry.state.store import StateStore
from ferry.sync.apply import PairApplier
from ferry.sync.outcome import RunOutcome
from ferry.sync.pairs import PairSettings, workflow_pairs
from ferry.sync.progress import NoProgress
from ferry.sync.reading import environment_needs
from ferry.sync.runner import read_run_secrets
from ferry_agent.dn import rdn_value

log = structlog.get_logger("ferry.trace")

TRACE_MODE = "trace"

# The attribute each kind of key is looked up by, per directory type.
_LOOKUP = {
    DirectoryType.ACTIVE_DIRECTORY: {
        KeyKind.DN: "distinguishedName", KeyKind.GUID: "objectGUID",
        KeyKind.UPN: "userPrincipalName", KeyKind.MAIL: "mail",
        KeyKind.ACCOUNT: "sAMAccountName"},
    DirectoryType.ENTRA_ID: {
        KeyKind.DN: "userPrincipalName", KeyKind.GUID: "id",
        KeyKind.UPN: "userPrincipalName", KeyKind.MAIL: "mail",
        KeyKind.ACCOUNT: "mailNickname"},
}
_ANCHOR = {DirectoryType.ACTIVE_DIRECTORY: "objectGUID", DirectoryType.ENTRA_ID: "id"}


class TraceNotFound(FerryError):
    """The object is in none of the workflow's sources, or the key names several."""


@dataclass
class TraceReport:
    workflow: str
    key: str
    found: list[tuple[str, Record]] = field(default_factory=list)   # (environment, record)
    looked: list[str] = field(default_factory=list)      # where and by what it was looked up
    pairs: list[PairTrace] = field(default_factory=list)
    # What each pair's trace read of its target, by anchor (the applier records joins by it).
    targets: dict[str, dict[str, Record]] = field(default_factory=dict)
    run_id: str = ""                                     # the run --apply recorded
    outcome: RunOutcome | None = None


def trace_object(manifests: Manifests, workflow: str, key: str, store: StateStore,
                 secrets: SecretSource, settings: RunSettings, *, apply: bool = False
                 ) -> TraceReport:
    """Trace the object `key` names through every pair of the workflow whose source holds it;
    with apply, carry out what the trace shows and record it as a run (mode trace)."""
    resource = manifests.workflows[workflow]
    pairs = workflow_pairs(manifests, resource)
    needs = environment_needs(pairs)
    resolved = read_run_secrets(manifests, workflow, secrets, test_mode=not apply)
    report = TraceReport(workflow, key)
    connectors: dict[str, Connector] = {}

    def connector(name: str) -> Connector:
        if name not in connectors:
            connectors[name] = open_connector(manifests.environments[name], resolved, settings)
        return connectors[name]

    try:
        for env in dict.fromkeys(p.source for p in pairs):
            kind_of = manifests.environments[env].spec.type
            for kind in key_kinds(key):
                attribute = _LOOKUP[kind_of][kind]
                value = guid_value(key) if kind is KeyKind.GUID else (
                    rdn_value(key) if kind is KeyKind.DN and kind_of is DirectoryType.ENTRA_ID
                    else key)
                report.looked.append(f"{env}: {attribute}={value}")
                for record in connector(env).find(attribute, [value], needs[env].object_types,
                                                  needs[env].attributes):
                    if all(r.anchor != record.anchor for _, r in report.found):
                        report.found.append((env, record))
        if not report.found:
            raise TraceNotFound(f"Workflow/{workflow}: no object {key!r} found; looked up "
                                f"{'; '.join(report.looked)} (each environment's scope)")
        if len(report.found) > 1:
            raise TraceNotFound(
                f"Workflow/{workflow}: {key!r} names {len(report.found)} objects: "
                + "; ".join(f"{env}: {r.object_type.value} {r.dn} ({r.anchor})"
                            for env, r in report.found)
                + "; give its DN or objectGUID")
        env, source = report.found[0]
        for pair in pairs:
            if pair.source == env:
                trace, read = _trace(manifests, pair, source, store, connector(env),
                                     connector(pair.target), needs[env].attributes,
                                     needs[pair.target].attributes)
                report.pairs.append(trace)
                report.targets[pair.rules.name] = read
        if apply:
            _apply(report, pairs, store, connectors, resolved)
    finally:
        for opened in connectors.values():
            opened.close()
    return report


def _trace(manifests: Manifests, pair: PairSettings, source: Record, store: StateStore,
           source_side: Connector, target: Connector, source_attributes: Collection[str],
           attributes: Collection[str]) -> tuple[PairTrace, dict[str, Record]]:
    rules = pair.rules
    target_type = manifests.environments[pair.target].spec.type
    joins = store.joins.confirmed(rules.name)
    owners = {t: s for s, t in joins.items()}
    pending = store.joins.pending(rules.name)
    found: dict[str, Record] = {}

    def read(attribute: str, values: Collection[str]) -> None:
        if values:
            for record in target.find(attribute, values, rules.object_types, attributes):
                found.setdefault(record.anchor, record)

    joined = joins.get(source.anchor)
    if joined is not None:
        read(_ANCHOR[target_type], [joined])
    if source.anchor in pending:
        dn = pending[source.anchor]
        read(_LOOKUP[target_type][KeyKind.DN],
             [dn if target_type is DirectoryType.ACTIVE_DIRECTORY else rdn_value(dn)])
    template = compile_template(rules.staging)
    if joined is None or joined not in found:
        for rule in rules.match_rules:
            if rule.guest:
                continue  # a guest form is not an equality: see the report's rules
            read(rule.target_attribute, _values(source.attributes.get(rule.source_attribute)))
        # A create with a rule value a target already has is a conflict: read those too.
        try:
            desired = stage(source, template)
            for rule in rules.match_rules:
                read(rule.target_attribute, _values(desired.get(rule.target_attribute)))
        except FerryError:
            pass  # the trace reports the staging error
    # Other source objects with one of its rule values: a shared value is a conflict. Their
    # joined targets are read too, or they would seem unjoined and claim a candidate.
    peers: dict[str, Record] = {}
    for rule in rules.match_rules:
        values = _values(source.attributes.get(rule.source_attribute))
        if values and not rule.guest:
            for peer in source_side.find(rule.source_attribute, values, rules.object_types,
                                         source_attributes):
                if peer.anchor != source.anchor:
                    peers.setdefault(peer.anchor, peer)
    read(_ANCHOR[target_type], [joins[p] for p in peers if p in joins])
    relevant = {a: t for a, t in joins.items()
                if a == source.anchor or a in peers or t in found}
    relevant.update({owners[t]: t for t in found if t in owners})
    return trace_pair(rules, template, source, found.values(), relevant,
                      pending_creates=pending, peers=peers.values()), found


def _apply(report: TraceReport, pairs: list[PairSettings], store: StateStore,
           connectors: dict[str, Connector], secrets: SecretSource) -> None:
    """What the trace shows, through the runs' own applier, recorded as a run."""
    run_id = store.runs.start(report.workflow, TRACE_MODE, RunResult.RUNNING)
    outcome = RunOutcome(run_id, report.workflow, TRACE_MODE)
    report.run_id, report.outcome = run_id, outcome
    settings = {p.rules.name: p for p in pairs}
    try:
        for trace in report.pairs:
            plan, pair = trace.plan, settings[trace.pair]
            if plan is None:
                continue
            applier = PairApplier.for_pair(
                pair, plan, run_id, connectors[pair.target], store, outcome,
                report.targets[pair.rules.name], store.joins.confirmed(pair.rules.name), secrets)
            applier.apply(NoProgress().task("trace"))
            store.runs.record(run_id, [
                ObjectResult(plan.pair, c.object_type.value, c.source_anchor, c.source_dn,
                             "match", "conflict", c.message) for c in plan.conflicts])
            for conflict in plan.conflicts:
                outcome.conflicts.append(conflict)
                outcome.count(conflict.object_type.value, Count.CONFLICTS)
            for error in plan.errors:
                outcome.staging_errors.append(error)
                outcome.count(error.object_type.value, Count.ERRORS)
    except Exception as exc:  # the run must end recorded, whatever broke
        log.exception("trace.apply_failed", workflow=report.workflow)
        outcome.fatal = f"{type(exc).__name__}: {exc}"
    store.runs.finish(run_id, outcome.result, int(outcome.exit_code), outcome.message,
                      outcome.counts_as_dict())


def _values(value: AttributeValue | None) -> list[str]:
    """An attribute's values as a list (one string, several, or none)."""
    return [value] if isinstance(value, str) else list(value or ())
