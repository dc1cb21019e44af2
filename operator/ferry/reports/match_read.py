"""Read a workflow's environments in full and plan each pair, as a test-mode run does (no
write anywhere, the state store only read), for the match report."""

from __future__ import annotations

from ferry.api.loader import Manifests
from ferry.connectors.base import Connector
from ferry.connectors.factory import connection_secrets, open_connector
from ferry.engine.pipeline import plan_pair
from ferry.reports.matches import match_rows
from ferry.secrets import ResolvedSecrets, SecretSource, resolve_all
from ferry.settings import RunSettings
from ferry.state.rows import PairMatches
from ferry.state.store import StateStore
from ferry.sync.pairs import workflow_pairs
from ferry.sync.reading import EnvironmentRead, environment_needs, read_environment


def match_secrets(manifests: Manifests, workflow: str, secrets: SecretSource) -> ResolvedSecrets:
    """The connection Secrets the report's reads need, read now (SecretsMissing names each)."""
    pairs = workflow_pairs(manifests, manifests.workflows[workflow])
    return resolve_all(secrets, [found for name in environment_needs(pairs)
                                 for found in connection_secrets(manifests.environments[name])])


def workflow_matches(manifests: Manifests, workflow: str, store: StateStore,
                     secrets: ResolvedSecrets, settings: RunSettings) -> list[PairMatches]:
    """Each stageData pair's source objects with their targets and how they matched."""
    pairs = workflow_pairs(manifests, manifests.workflows[workflow])
    needs = environment_needs(pairs)
    connectors: dict[str, Connector] = {}
    reads: dict[str, EnvironmentRead] = {}
    try:
        for name, need in needs.items():
            connector = connectors[name] = open_connector(manifests.environments[name],
                                                          secrets, settings)
            reads[name] = read_environment(connector, need, store, workflow,
                                           changed_only=False, retry_anchors=set())
    finally:
        for connector in connectors.values():
            connector.close()
    report = []
    for pair in pairs:
        name = pair.rules.name
        joins = store.joins.confirmed(name)
        sources = [r for r in reads[pair.source].result.records
                   if r.object_type in pair.rules.object_types]
        target = reads[pair.target]
        plan = plan_pair(pair.rules, sources, target.result.records, joins,
                         pending_creates=store.joins.pending(name), full=True)
        rows = match_rows(pair.rules, sources, target.by_anchor, joins, plan)
        report.append(PairMatches(pair.source, pair.target, rows))
    return report
