"""A trace as plain step-by-step text (terminal, Job log) and as JSON; secrets never shown."""

from __future__ import annotations

from typing import Any

from ferry.engine.plan import Operation, OpKind
from ferry.engine.records import AttributeValue
from ferry.engine.trace import SECRET_SHOWN, PairTrace, is_secret
from ferry.sync.trace import TraceReport

_PASSWORD_SHOWN = "<set from Template password>"


def _value(name: str, value: AttributeValue | None) -> str:
    if value is None:
        return "(none)"
    if is_secret(name):
        return SECRET_SHOWN
    return value if isinstance(value, str) else "[" + ", ".join(value) + "]"


def report_lines(report: TraceReport) -> list[str]:
    """The trace, step by step, one line each."""
    env, source = report.found[0]
    lines = [f"object {report.key!r}: {source.object_type.value} {source.dn}"
             f" ({source.anchor}) in {env}",
             f"  looked up by {'; '.join(report.looked)}"]
    for trace in report.pairs:
        lines.extend(pair_lines(trace))
    if report.run_id:
        assert report.outcome is not None
        lines.append(f"applied as run {report.run_id}: {report.outcome.result.value}"
                     + (f" ({report.outcome.message})" if report.outcome.message else ""))
    return lines


def pair_lines(trace: PairTrace) -> list[str]:
    lines = [f"pair {trace.pair}"]
    lines.append("  1. scope: " + ("in scope" if trace.scope_reason is None
                                   else f"out of scope: {trace.scope_reason}"))
    lines.append("  2. join: " + (trace.join or "none stored"))
    if trace.rules:
        lines.append("  3. match rules, in order:")
        for step in trace.rules:
            lines.append(f"     {step.rule}: values {list(step.values)}: {step.note}")
            lines.extend(f"       candidate {c.dn} ({c.anchor})"
                         + (f", joined to {c.joined_to}" if c.joined_to else "")
                         for c in step.candidates)
    else:
        lines.append("  3. match rules: not needed" if trace.join or trace.scope_reason
                     else "  3. match rules: none")
    if trace.staged:
        lines.append("  4. staged target attributes:")
        empty = [s.name for s in trace.staged if s.value is None]
        for staged in trace.staged:
            if staged.value is None:
                continue
            mapped = (f" (domain mapping from {_value(staged.name, staged.domain_mapped_from)})"
                      if staged.domain_mapped_from is not None else "")
            lines.append(f"     {staged.name} = {_value(staged.name, staged.value)}"
                         f"{mapped}  <- {staged.produced_by}")
        if empty:
            lines.append(f"     no value (mapped, nothing in the source): {', '.join(empty)}")
    if trace.diff:
        lines.append("  5. diff against the target:")
        lines.extend(f"     {d.name}: {_value(d.name, d.current)} -> {_value(d.name, d.staged)}"
                     for d in trace.diff)
    elif trace.staged:
        lines.append("  5. diff against the target: none")
    for conflict in trace.conflicts:
        lines.append(f"  conflict: {conflict.message}")
        lines.extend(f"    candidate {dn}" for dn in conflict.candidates)
    for error in trace.errors:
        lines.append(f"  error: {error.message}")
    lines.append(f"  6. operation: {trace.decision}")
    lines.extend(f"     {operation_text(op)}" for op in trace.operations)
    return lines


def operation_text(op: Operation) -> str:
    if op.kind is OpKind.MOVE:
        return f"move {op.dn} -> {op.new_dn}"
    if op.kind is OpKind.REFERENCES:
        return f"references {op.attribute} of {op.dn}: add {len(op.add)}, remove {len(op.remove)}"
    text = f"{op.kind.value} {op.object_type.value} {op.dn}"
    if op.kind is OpKind.CREATE and op.object_type.value == "user":
        text += f" (password {_PASSWORD_SHOWN})"
    return text


def report_json(report: TraceReport) -> dict[str, Any]:
    """The trace for machines: the same steps, the same masking."""
    env, source = report.found[0] if report.found else ("", None)
    return {
        "workflow": report.workflow, "key": report.key, "looked": report.looked,
        "environment": env,
        "object": None if source is None else {
            "anchor": source.anchor, "dn": source.dn, "type": source.object_type.value},
        "pairs": [_pair_json(t) for t in report.pairs],
        "run": report.run_id or None,
        "result": report.outcome.result.value if report.outcome else None,
    }


def _pair_json(trace: PairTrace) -> dict[str, Any]:
    return {
        "pair": trace.pair,
        "inScope": trace.scope_reason is None, "outOfScopeReason": trace.scope_reason,
        "join": trace.join or None,
        "rules": [{"rule": s.rule, "values": list(s.values), "note": s.note,
                   "candidates": [{"anchor": c.anchor, "dn": c.dn, "joinedTo": c.joined_to}
                                  for c in s.candidates]} for s in trace.rules],
        "staged": [{"attribute": s.name, "value": _json_value(s.name, s.value),
                    "producedBy": s.produced_by,
                    "domainMappedFrom": _json_value(s.name, s.domain_mapped_from)}
                   for s in trace.staged],
        "diff": [{"attribute": d.name, "current": _json_value(d.name, d.current),
                  "staged": _json_value(d.name, d.staged)} for d in trace.diff],
        "decision": trace.decision,
        "operations": [{"kind": op.kind.value, "dn": op.dn, "newDn": op.new_dn,
                        "attributes": list(op.change_names),
                        "password": _PASSWORD_SHOWN if op.kind is OpKind.CREATE
                        and op.object_type.value == "user" else None}
                       for op in trace.operations],
        "conflicts": [{"rule": c.rule, "value": c.value, "candidates": list(c.candidates),
                       "message": c.message} for c in trace.conflicts],
        "errors": [e.message for e in trace.errors],
    }


def _json_value(name: str, value: AttributeValue | None) -> Any:
    if value is None:
        return None
    if is_secret(name):
        return SECRET_SHOWN
    return value if isinstance(value, str) else list(value)
