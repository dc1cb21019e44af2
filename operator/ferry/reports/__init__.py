"""Reports a migration engineer hands on: discovery (CSV per type and a one-page summary),
matches per pair and a run's per-object results, as CSV; built from the state store and the
engine's own answers, written to a folder or as a tar to stdout."""
