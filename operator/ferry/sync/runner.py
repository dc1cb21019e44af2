"""Run one workflow: read, plan each pair with the engine, write (unless test mode), record."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from ferry.api.loader import Manifests
from ferry.api.status import RunResult
from ferry.api.template import PasswordSyncMode
from ferry.api.workflow import WorkflowSpec
from ferry.connectors.base import Connector, ReadResult, Throttled
from ferry.connectors.factory import connection_secrets, open_connector
from ferry.engine.expressions import ExpressionError
from ferry.engine.migration import sid_translations
from ferry.engine.pipeline import plan_pair
from ferry.engine.plan import Count, PairPlan
from ferry.engine.records import Record
from ferry.scripts.hosts import script_hosts, script_secrets
from ferry.scripts.placement import ScriptPoint, placed_scripts
from ferry.scripts.steps import ScriptSteps
from ferry.scripts.texts import ScriptTexts
from ferry.secrets import ResolvedSecrets, SecretSource, resolve_all
from ferry.settings import RunSettings
from ferry.state.rows import ObjectResult, PasswordRoute, Watermark
from ferry.state.store import StateStore
from ferry.sync.apply import PairApplier
from ferry.sync.migration import SidHistoryStep
from ferry.sync.new_conflicts import count_new_conflicts
from ferry.sync.outcome import (
    COUNT_OF,
    EnvironmentReadCount,
    RunOutcome,
    plan_to_json,
    write_plan,
)
from ferry.sync.pairs import PairSettings, workflow_pairs
from ferry.sync.passwords import PasswordStep
from ferry.sync.progress import NoProgress, Progress
from ferry.sync.reading import (
    EnvironmentNeeds,
    EnvironmentRead,
    environment_needs,
    read_environment,
)
from ferry.sync.target_view import (
    full_target_reason,
    read_target_view,
    target_watermark_key,
    view_joins,
)

if TYPE_CHECKING:
    from ferry.scripts.job import ScriptJobs

log = structlog.get_logger("ferry.run")



@dataclass
class RunRequest:
    workflow: str
    test_mode: bool = False          # force a plan-only run whatever the Workflow says
    full: bool = False               # ignore changedObjectsOnly for this run
    plan_path: Path | None = None    # where to save the plan as JSON
    run_id: str | None = None        # given by the operator for in-cluster runs
    script_host: str = "Local"       # where scripts without image or environment run: Pod
    script_jobs: ScriptJobs | None = None   # in a sync Job's pod: image steps' Jobs


@dataclass
class CompletedRun:
    """A run that ended: its outcome, its pairs' plans, and where the plan was saved."""

    outcome: RunOutcome
    plans: list[PairPlan] = field(default_factory=list)
    plan_path: Path | None = None


def run_workflow(
    manifests: Manifests,
    request: RunRequest,
    store: StateStore,
    secrets: SecretSource,
    settings: RunSettings,
    progress: Progress | None = None,
) -> CompletedRun:
    """Run a workflow end to end; never raises for per-object problems.

    Raises SecretsMissing, before anything is connected or recorded, when a secret the run
    needs cannot be read, and ScriptStepsRefused when a script step cannot run here: those
    are configuration errors, not failed runs.
    """
    progress = progress or NoProgress()
    workflow = manifests.workflows[request.workflow]
    spec = workflow.spec
    test_mode = request.test_mode or spec.test_mode
    changed_only = spec.changed_objects_only and not request.full
    mode = "test" if test_mode else ("changed" if changed_only else "full")
    pairs = workflow_pairs(manifests, workflow)
    needs = environment_needs(pairs)
    resolved = _read_secrets(manifests, workflow.spec, pairs, needs, secrets, test_mode)
    hosts = script_hosts(workflow, settings, request.script_host, request.script_jobs)
    # Test mode writes nothing anywhere, run history included.
    run_id = "plan" if test_mode else store.runs.start(request.workflow, mode,
                                                       RunResult.RUNNING, request.run_id)
    if not test_mode:
        # The gateway relays DC agents' password changes along these, to joined users only.
        store.joins.publish_routes(request.workflow, [
            PasswordRoute(p.rules.name, p.source, p.target) for p in pairs
            if p.password.sync.mode is PasswordSyncMode.DC_AGENT])
    # Every line of the run, the libraries' included, names its workflow and run.
    with structlog.contextvars.bound_contextvars(workflow=request.workflow, run=run_id):
        outcome = RunOutcome(run_id, request.workflow, mode)
        result = CompletedRun(outcome)
        log.info("run.started", mode=mode)
        connectors: dict[str, Connector] = {}
        scripts = ScriptSteps(placed_scripts(spec), outcome, None if test_mode else store,
                              resolved, ScriptTexts(manifests.config_maps or {}), hosts)
        try:
            if test_mode:
                scripts.plan()
            if test_mode or scripts.run_at(ScriptPoint.BEFORE_READ):
                _read_plan_write(manifests, request, store, settings, progress, pairs, needs,
                                 resolved, connectors, scripts, result, test_mode, changed_only)
        except ExpressionError as exc:
            outcome.fatal = str(exc)
        except Exception as exc:  # a run must end with a recorded outcome, whatever broke
            log.exception("run.failed")
            outcome.fatal = f"{type(exc).__name__}: {exc}"
        finally:
            for connector in connectors.values():
                if isinstance(connector, Throttled):
                    throttled, retries = connector.throttling()
                    outcome.graph_throttled += throttled
                    outcome.graph_retries += retries
                connector.close()
        if not test_mode:
            scripts.skip_rest()
        if request.plan_path is not None:
            write_plan(request.plan_path, plan_to_json(outcome, result.plans))
            result.plan_path = request.plan_path
        if not test_mode:
            count_new_conflicts(store.runs, outcome)
            store.runs.finish(run_id, outcome.result, int(outcome.exit_code), outcome.message,
                             outcome.counts_as_dict())
        log.info("run.finished", result=outcome.result,
                 **dict(outcome.totals()))
        return result


def _read_plan_write(manifests: Manifests, request: RunRequest, store: StateStore,
                     settings: RunSettings, progress: Progress, pairs: list[PairSettings],
                     needs: dict[str, EnvironmentNeeds], resolved: ResolvedSecrets,
                     connectors: dict[str, Connector], scripts: ScriptSteps,
                     result: CompletedRun, test_mode: bool, changed_only: bool) -> None:
    """Read every environment, plan every pair, then (unless test mode, and once the
    beforeWrite scripts passed) write every pair and run the afterWrite scripts."""
    outcome, run_id = result.outcome, result.outcome.run_id
    retries = {p.rules.name: store.retries.of(p.rules.name) for p in pairs}
    reads: dict[str, EnvironmentRead] = {}
    target_watermarks: dict[str, Watermark] = {}
    # Sources first: what a changed-objects-only run reads of a target follows from them.
    for env_name, need in sorted(needs.items(), key=lambda item: not item[1].as_source):
        connector = connectors[env_name] = open_connector(
            manifests.environments[env_name], resolved, settings)
        task = progress.task(f"read {env_name}")
        if need.as_source:
            retry_anchors = set().union(*(retries[p.rules.name] for p in pairs
                                          if p.source == env_name))
            reads[env_name] = read_environment(
                connector, need, store, request.workflow, changed_only=changed_only,
                retry_anchors=retry_anchors)
            reason, delta_objects = "", 0
            read_count = len(reads[env_name].result.records)
        else:
            source_reads = {n: r.result for n, r in reads.items()}
            reason = full_target_reason(store, request.workflow, env_name, need, pairs,
                                        source_reads, changed_only)
            view = read_target_view(
                connector, manifests.environments[env_name].spec.type, need, store,
                request.workflow, pairs, connectors, source_reads, needs, reason)
            reads[env_name] = EnvironmentRead(view.result)
            reason, delta_objects = view.reason, view.delta_objects
            read_count = len(view.result.records) - view.stand_ins
            if view.result.watermark is not None:
                target_watermarks[env_name] = view.result.watermark
        got = reads[env_name].result
        task.advance(len(got.records))
        task.finish()
        outcome.reads.append(EnvironmentReadCount(
            env_name, "source" if need.as_source else "target", read_count,
            got.full, reason, delta_objects))
        log.info("read.done", environment=env_name, objects=read_count,
                 full=got.full, **({"full_because": reason} if reason and got.full else {}))
    # A partial target read adds the sources whose joined targets someone else changed.
    outcome.reads = [dataclasses.replace(r, objects=len(reads[r.environment].result.records))
                     if r.role == "source" else r for r in outcome.reads]
    planned = []
    for pair in pairs:
        joins = store.joins.confirmed(pair.rules.name)
        sources = [r for r in reads[pair.source].result.records
                   if r.object_type in pair.rules.object_types]
        plan = _plan(pair, sources, reads[pair.target], store, joins,
                     reads[pair.source].result)
        _name_references(plan, connectors[pair.source])
        result.plans.append(plan)
        _report_plan(outcome, plan)
        history = SidHistoryStep(pair, plan, outcome)
        passwords = PasswordStep(pair, plan, outcome, store, reads[pair.source].by_anchor)
        if test_mode:
            history.plan_adds(sources, joins, reads[pair.target].by_anchor, test_mode=True)
            passwords.preview(connectors[pair.source])
        planned.append((pair, plan, joins, sources, history, passwords))
    if test_mode or not scripts.run_at(ScriptPoint.BEFORE_WRITE):
        return
    for pair, plan, joins, sources, history, passwords in planned:
        _apply(run_id, pair, plan, joins, connectors, store, outcome, reads[pair.target],
               resolved, progress, sources, (history, passwords), retries[pair.rules.name])
    for env_name, read in reads.items():
        wm = read.result.watermark
        if needs[env_name].as_source and wm is not None:
            store.watermarks.set(request.workflow, env_name, wm)
    # Taken before this run's writes, so the next target delta sees them once, and any
    # other change made meanwhile.
    for env_name, wm in target_watermarks.items():
        store.watermarks.set(target_watermark_key(request.workflow), env_name, wm)
    scripts.run_at(ScriptPoint.AFTER_WRITE)


def read_run_secrets(manifests: Manifests, workflow: str, secrets: SecretSource,
                     test_mode: bool = False) -> ResolvedSecrets:
    """Every secret a run of the workflow needs, read now; SecretsMissing names each that
    cannot be (callers check this before they open the state store or anything else)."""
    resource = manifests.workflows[workflow]
    pairs = workflow_pairs(manifests, resource)
    return _read_secrets(manifests, resource.spec, pairs, environment_needs(pairs), secrets,
                         test_mode or resource.spec.test_mode)


def _read_secrets(manifests: Manifests, spec: WorkflowSpec, pairs: list[PairSettings],
                  needs: dict[str, EnvironmentNeeds], secrets: SecretSource,
                  test_mode: bool) -> ResolvedSecrets:
    """Every secret the run will use, read now: the connections', and (for a run that writes)
    the templates' initial passwords and the script steps' secret variables."""
    needed = [found for name in needs
              for found in connection_secrets(manifests.environments[name])]
    if not test_mode:
        needed += [(pair.password.value, f"Template/{pair.template}: spec.password.value")
                   for pair in pairs if pair.password.value is not None]
        needed += script_secrets(placed_scripts(spec))
    return resolve_all(secrets, needed)


def _plan(pair: PairSettings, sources: list[Record], target: EnvironmentRead,
          store: StateStore, joins: dict[str, str], source: ReadResult) -> PairPlan:
    if not target.result.full:   # a partial view: only the joins of what it holds
        joins = view_joins(joins, target.result.records, (r.anchor for r in sources),
                           source.deleted)
    with _collector_paused():
        return plan_pair(
            pair.rules, sources, target.result.records, joins,
            pending_creates=store.joins.pending(pair.rules.name),
            deleted_sources=source.deleted,
            full=source.full,
        )


# Most referenced objects outside a pair's scope a run looks up by anchor to name them.
_NAMED_LIMIT = 1000


def _name_references(plan: PairPlan, source: Connector) -> None:
    """Give references to objects outside the pair's scope their source DN, for the report;
    the engine knows only the anchors of objects it was not given."""
    unnamed = list(dict.fromkeys(r.reference for r in plan.out_of_scope
                                 if not r.reference_dn))[:_NAMED_LIMIT]
    if not unnamed:
        return
    dns = {record.anchor: record.dn for record in source.read_anchors(unnamed, ())}
    plan.out_of_scope = [dataclasses.replace(r, reference_dn=dns[r.reference])
                         if not r.reference_dn and r.reference in dns else r
                         for r in plan.out_of_scope]


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Planning builds millions of long-lived, cycle-free objects; the cyclic garbage
    collector would rescan them over and over (about 30% of planning time at 1M objects)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _report_plan(outcome: RunOutcome, plan: PairPlan) -> None:
    for object_type, count in plan.unchanged.items():
        outcome.count(object_type.value, Count.UNCHANGED, count)
    for object_type, count in plan.deferred_counts.items():
        outcome.count(object_type.value, Count.DEFERRED, count)
    for reference in plan.out_of_scope:
        outcome.count(reference.object_type.value, Count.OUT_OF_SCOPE)
    outcome.out_of_scope.extend(plan.out_of_scope)
    for conflict in plan.conflicts:
        outcome.count(conflict.object_type.value, Count.CONFLICTS)
        log.warning("object.conflict", pair=plan.pair, object=conflict.source_dn,
                    message=conflict.message)
    outcome.conflicts.extend(plan.conflicts)
    for error in plan.errors:
        outcome.count(error.object_type.value, Count.ERRORS)
    outcome.staging_errors.extend(plan.errors)
    if plan.threshold_hit:
        outcome.threshold_messages.append(f"{plan.pair}: {plan.threshold_message}")
        log.warning("delete.threshold", pair=plan.pair, message=plan.threshold_message)
    if outcome.mode == "test":
        for op in plan.operations:
            if op.kind in COUNT_OF:
                outcome.count(op.object_type.value, COUNT_OF[op.kind])


def _apply(run_id: str, pair: PairSettings, plan: PairPlan, joins: dict[str, str],
           connectors: dict[str, Connector], store: StateStore, outcome: RunOutcome,
           target: EnvironmentRead, secrets: SecretSource, progress: Progress,
           sources: list[Record], then: tuple[SidHistoryStep, PasswordStep],
           retried: set[str]) -> None:
    connector = connectors[pair.target]
    applier = PairApplier.for_pair(pair, plan, run_id, connector, store, outcome,
                                   target.by_anchor, joins, secrets)
    task = progress.task(f"write {pair.target}", total=len(plan.operations))
    applier.apply(task)
    task.finish()
    # After the writes: objects created in this run are joined now and get theirs too.
    history, passwords = then
    adds = history.plan_adds(sources, applier.joins, target.by_anchor, test_mode=False)
    history.apply(adds, connector, target.by_anchor)
    if pair.sid_translation:
        table = sid_translations(sources, applier.joins, target.by_anchor)
        store.sid_translations.update(plan.pair, {
            anchor: (t.object_type.value, t.source_sid, t.target_sid)
            for anchor, t in table.items()})
    passwords.run(connectors[pair.source], connector, joins, retried)
    store.runs.record(run_id, [*history.results, *passwords.results])
    retry = dict(applier.retries)
    retry.update(history.retries)
    retry.update(passwords.retries)
    retry.update({c.source_anchor: c.message for c in plan.conflicts})
    retry.update({e.source_anchor: e.message for e in plan.errors})
    retry.update({a: "references not resolved yet" for a in plan.deferred})
    store.retries.replace(plan.pair, retry)
    store.runs.record(run_id, [
        *(ObjectResult(plan.pair, c.object_type.value, c.source_anchor, c.source_dn, "match",
                       "conflict", c.message) for c in plan.conflicts),
        *(ObjectResult(plan.pair, r.object_type.value, r.source_anchor, r.dn, "references",
                       "outOfScope", r.message) for r in plan.out_of_scope)])

