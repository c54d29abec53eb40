"""The keys the library keeps in `jobs.metadata`, beside the caller's own.

The seed's columns are kept as declared, so a job's timing, attempts, progress and payload live in its metadata:
`data` (the payload), `attempts`, `maxAttempts`, `startedAt` (first attempt), `lastStartedAt`, `completedAt`
(final state), `progress`, `progressMessage`, `error`, `errorType`, `nextAttemptAt`, `scheduleId`,
`singletonKey`, `priority`, `queue`, `uniqueKey`, `debounced`, `workerId`, `cancelReason`, `cancelledBy`,
`timeoutMs`, `recordLagSeconds`, `fallbackReason` (a job Temporal could not be reached to start, run on pgboss
instead), `traceparent` and `tracestate` (the enqueuing trace context, when OpenTelemetry is configured); a
workflow's steps also carry `workflowId`, `workflowName`, `workflowStep` (its position, from 1), `dependsOn` (job
ids), `runAfterFailure` and, when a dependency's failure cancelled them, `cancelledByJob` (its job id). Runs the
library schedules itself also carry `scheduleKey`, `tick`, `retryOf` or `triggeredManually`.

The record (tracking) writes them, validation refuses them from callers, the dashboard hides them from the
"caller's metadata" view: all three import them from here.
"""

from __future__ import annotations

#: Written only by the library; a caller's metadata may not use these names.
RESERVED_METADATA_KEYS = frozenset(
    {
        "data",
        "attempts",
        "maxAttempts",
        "startedAt",
        "lastStartedAt",
        "completedAt",
        "progress",
        "progressMessage",
        "error",
        "errorType",
        "nextAttemptAt",
        "scheduleId",
        "singletonKey",
        "priority",
        "queue",
        "uniqueKey",
        "debounced",
        "workerId",
        "cancelReason",
        "cancelledBy",
        "timeoutMs",
        "recordLagSeconds",
        "fallbackReason",
        # The enqueue's trace context (telemetry/tracing.py), continued by each attempt's span.
        "traceparent",
        "tracestate",
        "workflowId",
        "workflowName",
        "workflowStep",
        "dependsOn",
        "runAfterFailure",
        "cancelledByJob",
    }
)

#: Reserved keys the library itself writes through the public schedule calls (see validation.system_metadata).
SYSTEM_METADATA_KEYS = frozenset({"scheduleKey", "tick", "retryOf", "triggeredManually"})

#: Never stored: the key of `get_job_status(...).metadata` that says a live job's record is behind its backend
#: (Temporal, while the database did not take the job's latest end).
RECORD_BEHIND = "recordBehind"
