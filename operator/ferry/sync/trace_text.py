"""A trace as plain step-by-step text (terminal, Job log) and as JSON; secrets never shown."""

from __future__ import annotations

from typing import Any

from ferry.engine.plan import OpKind
from ferry.engine.records import AttributeValue
from ferry.engine.trace import SECRET_SHOWN, PairTrace, is_secret
from ferry.sync.trace import TraceReport

_PASSWORD_SHOWN = "<set from Template password>"


def report_lines(report: TraceReport) -> list[str]:
    """The trace, step by step, one line each."""
    return json_lines(report_json(report))


def json_lines(data: dict[str, Any]) -> list[str]:
    """The lines of a trace from its JSON (report_json; in a cluster, status.lastTrace), so
    both print the same."""
    source = data.get("object") or {}
    lines = [f"object {data.get('key')!r}: {source.get('type')} {source.get('dn')}"
             f" ({source.get('anchor')}) in {data.get('environment')}",
             f"  looked up by {'; '.join(data.get('looked') or [])}"]
    for trace in data.get("pairs") or []:
        lines.extend(pair_lines(trace))
    if data.get("run"):
        message = data.get("message")
        lines.append(f"applied as run {data['run']}: {data.get('result')}"
                     + (f" ({message})" if message else ""))
    if data.get("truncated"):
        lines.append(f"(report {data['truncated']})")
    return lines


def pair_lines(trace: dict[str, Any]) -> list[str]:
    """One pair's steps, from its JSON (already masked)."""
    lines = [f"pair {trace.get('pair')}"]
    reason = trace.get("outOfScopeReason")
    lines.append("  1. scope: " + ("in scope" if trace.get("inScope")
                                   else f"out of scope: {reason}"))
    lines.append("  2. join: " + (trace.get("join") or "none stored"))
    rules, staged = trace.get("rules") or [], trace.get("staged") or []
    if rules:
        lines.append("  3. match rules, in order:")
        for step in rules:
            lines.append(f"     {step['rule']}: values {list(step['values'])}: {step['note']}")
            lines.extend(f"       candidate {c['dn']} ({c['anchor']})"
                         + (f", joined to {c['joinedTo']}" if c.get("joinedTo") else "")
                         for c in step.get("candidates") or [])
    else:
        lines.append("  3. match rules: not needed" if trace.get("join") or reason
                     else "  3. match rules: none")
    if staged:
        lines.append("  4. staged target attributes:")
        empty = [s["attribute"] for s in staged if s.get("value") is None]
        for entry in staged:
            if entry.get("value") is None:
                continue
            mapped = (f" (domain mapping from {_shown(entry['domainMappedFrom'])})"
                      if entry.get("domainMappedFrom") is not None else "")
            lines.append(f"     {entry['attribute']} = {_shown(entry['value'])}"
                         f"{mapped}  <- {entry.get('producedBy')}")
        if empty:
            lines.append(f"     no value (mapped, nothing in the source): {', '.join(empty)}")
    diff = trace.get("diff") or []
    if diff:
        lines.append("  5. diff against the target:")
        lines.extend(f"     {d['attribute']}: {_shown(d.get('current'))} ->"
                     f" {_shown(d.get('staged'))}" for d in diff)
    elif staged:
        lines.append("  5. diff against the target: none")
    for conflict in trace.get("conflicts") or []:
        lines.append(f"  conflict: {conflict['message']}")
        lines.extend(f"    candidate {dn}" for dn in conflict.get("candidates") or [])
    for error in trace.get("errors") or []:
        lines.append(f"  error: {error}")
    lines.append(f"  6. operation: {trace.get('decision')}")
    lines.extend(f"     {_operation_line(op)}" for op in trace.get("operations") or [])
    return lines


def _shown(value: Any) -> str:
    """A JSON value (masked by report_json) as the text shows it."""
    if value is None:
        return "(none)"
    return value if isinstance(value, str) else "[" + ", ".join(value) + "]"


def _operation_line(op: dict[str, Any]) -> str:
    if op["kind"] == OpKind.MOVE.value:
        return f"move {op['dn']} -> {op.get('newDn')}"
    if op["kind"] == OpKind.REFERENCES.value:
        return (f"references {op.get('attribute')} of {op['dn']}: add {op.get('add', 0)},"
                f" remove {op.get('remove', 0)}")
    text = f"{op['kind']} {op.get('objectType')} {op['dn']}"
    if op.get("password"):
        text += f" (password {op['password']})"
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
        "message": (report.outcome.message or None) if report.outcome else None,
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
        "operations": [{"kind": op.kind.value, "objectType": op.object_type.value,
                        "dn": op.dn, "newDn": op.new_dn,
                        "attributes": list(op.change_names),
                        "attribute": op.attribute, "add": len(op.add),
                        "remove": len(op.remove),
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
