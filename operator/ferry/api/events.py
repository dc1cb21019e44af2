"""Event types and reasons Ferry posts about its objects (a condition's transition is posted
with the condition's own reason, ferry.api.conditions.Reason)."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


class EventReason(StrEnum):
    RUN_STARTED = "RunStarted"
    RUN_SKIPPED = "RunSkipped"
    RUN_SUCCEEDED = "RunSucceeded"
    RUN_COMPLETED_WITH_ERRORS = "RunCompletedWithErrors"
    RUN_FAILED = "RunFailed"
    DELETE_THRESHOLD_HIT = "DeleteThresholdHit"
    MATCH_CONFLICTS = "MatchConflicts"
    TRACE_STARTED = "TraceStarted"
    TRACE_FINISHED = "TraceFinished"
    TRACE_REFUSED = "TraceRefused"
    MATCH_REPORT_STARTED = "MatchReportStarted"
    MATCH_REPORT_FINISHED = "MatchReportFinished"
    MATCH_REPORT_REFUSED = "MatchReportRefused"
    ALERT_SENT = "AlertSent"
    ALERT_FAILED = "AlertFailed"
    INVALID_INPUT = "InvalidInput"
    DISCOVERY_STARTED = "DiscoveryStarted"
    DISCOVERED = "Discovered"
    DISCOVERY_FAILED = "DiscoveryFailed"
    DEVICE_MIGRATED = "DeviceMigrated"
    DEVICE_FAILED = "DeviceFailed"
    DEVICE_ROLLED_BACK = "DeviceRolledBack"
    DEVICE_RETRIED = "DeviceRetried"
    ROLLBACK_REFUSED = "RollbackRefused"
    WAVE_COMPLETED = "WaveCompleted"
    MIGRATION_COMPLETED = "MigrationCompleted"
