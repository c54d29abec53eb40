"""What the runner, the workflow and the activities hand each other: plain dataclasses, no Django, no I/O.

The workflow imports this module, and recorded workflow histories hold these shapes, so a field is only ever
added with a default (old histories must still replay).

Annotations are real types, not strings (no `from __future__ import annotations`): the SDK resolves a
dataclass's type hints for every payload it decodes, several per job, and evaluating string annotations made
each decode about three times slower.
"""

from dataclasses import dataclass, field
from datetime import timedelta
from enum import StrEnum
from typing import Any

from temporalio.common import RetryPolicy as TemporalRetryPolicy

WORKFLOW_NAME = "GenericJobWorkflow"
#: The orchestrating workflow of a `Workflow`: each step a GenericJobWorkflow child.
GRAPH_WORKFLOW_NAME = "JobWorkflowGraph"
SIGNAL_CANCEL_WORKFLOW = "cancelWorkflow"
SIGNAL_CANCEL = "cancelJob"
SIGNAL_PROGRESS = "updateProgress"
QUERY_STATE = "getJobState"

ACTIVITY_CREATE = "jobscheduler.create_scheduled_job"
#: The handler attempt of workflows started before PATCH_RECORD_ON_ITS_OWN (Temporal retried it, and every
#: record write had to succeed inside it).
ACTIVITY_RUN = "jobscheduler.run_job"
ACTIVITY_FINALIZE = "jobscheduler.finalize_job"
ACTIVITY_STEP_QUEUED = "jobscheduler.workflow_step_queued"
#: One handler attempt, tried once; the workflow decides retries and records what the attempt could not.
ACTIVITY_ATTEMPT = "jobscheduler.run_attempt"
#: Bookkeeping: write to the record what an attempt could not (or what the workflow itself learnt).
ACTIVITY_RECORD = "jobscheduler.record"

#: The workflow version in which bookkeeping retries on its own (see GenericJobWorkflow.run): histories without
#: this marker replay the first version.
PATCH_RECORD_ON_ITS_OWN = "record-retries-on-its-own"
#: `JobInput.version` of every start since the version is chosen by the input: the current GenericJobWorkflow,
#: without asking `workflow.patched` (whose marker costs every run two more history events and a visibility
#: write on the server). Inputs of older starts say 1; their histories carry the patch marker, or not.
CURRENT_VERSION = 2

#: A run's key in the workflow memo while the record is behind what the workflow knows (the database is away).
MEMO_RECORD_BEHIND = "recordBehind"
#: The ApplicationError type of an attempt that did not start because its start could not be recorded.
RECORD_UNAVAILABLE = "RecordUnavailable"

#: Bookkeeping is retried until the database answers: first after 0.5 s, the wait doubling up to
#: RECORD_RETRY_MAX_INTERVAL, never giving up. Once the database is back, the record catches up within that.
RECORD_RETRY_MAX_INTERVAL = timedelta(seconds=5)
BOOKKEEPING_RETRY = TemporalRetryPolicy(
    initial_interval=timedelta(milliseconds=500),
    backoff_coefficient=2.0,
    maximum_interval=RECORD_RETRY_MAX_INTERVAL,
    maximum_attempts=0,
)
#: An attempt activity runs once: its retries are the workflow's, so only the handler's failures count.
ATTEMPT_RETRY = TemporalRetryPolicy(maximum_attempts=1)


class WriteKind(StrEnum):
    """What a handler wrote while its attempt ran (`current_job().step()` or `.progress()`)."""

    STEP = "step"
    PROGRESS = "progress"


class WorkflowStep(StrEnum):
    """The `step` of the `getJobState` query (the seed's names)."""

    INITIALIZING = "initializing"
    EXECUTING = "executing"
    CANCELLING = "cancelling"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: Added to a handler's `timeout_ms` to make Temporal's start_to_close_timeout. The activity enforces
#: `timeout_ms` itself so it can record the timeout; Temporal's timeout is the backstop for a stuck worker.
TIMEOUT_GRACE_MS = 5_000

#: How long bookkeeping activities (create the record, finalize it) may take per attempt.
BOOKKEEPING_TIMEOUT = timedelta(seconds=30)


@dataclass
class RetrySpec:
    """A handler's RetryPolicy as it travels in workflow history (kept separate from the registry's class so
    changing that class never breaks replay)."""

    max_attempts: int = 3
    backoff_coefficient: float = 2.0
    initial_interval_ms: int = 1000
    max_interval_ms: int = 60000
    non_retryable_errors: list[str] = field(default_factory=list)

    def to_temporal(self) -> TemporalRetryPolicy:
        """The exact Temporal equivalent (Temporal needs a positive initial interval, so 0 ms becomes 1 ms)."""
        return TemporalRetryPolicy(
            maximum_attempts=self.max_attempts,
            backoff_coefficient=self.backoff_coefficient,
            initial_interval=timedelta(milliseconds=max(self.initial_interval_ms, 1)),
            maximum_interval=timedelta(milliseconds=max(self.max_interval_ms, self.initial_interval_ms, 1)),
            non_retryable_error_types=list(self.non_retryable_errors),
        )

    def delay_ms(self, attempt: int) -> float:
        """Temporal's wait after a failed `attempt` (1-based): initial * coefficient^(attempt-1), capped."""
        interval = max(self.initial_interval_ms, 1) * self.backoff_coefficient ** (attempt - 1)
        return min(interval, max(self.max_interval_ms, self.initial_interval_ms, 1))


@dataclass
class JobInput:
    """The workflow's argument. `job_id` is None when a Temporal Schedule started the workflow: the workflow
    then creates the run's own `jobs` row from `data`/`metadata` first."""

    job_name: str
    tenant: str
    job_id: str | None = None
    user_id: str | None = None
    data: dict[str, Any] | None = None
    metadata: dict[str, Any] | None = None
    schedule_id: str | None = None
    retry: RetrySpec = field(default_factory=RetrySpec)
    timeout_ms: int = 300_000
    heartbeat_timeout_ms: int = 10_000
    #: The job's queue, recorded with a run a Schedule starts (None in histories older than queues).
    queue: str | None = None
    #: The workflow version the starter chose (CURRENT_VERSION); 1 in inputs older than this field, whose run
    #: is decided by the PATCH_RECORD_ON_ITS_OWN marker.
    version: int = 1

    def start_to_close(self) -> timedelta:
        return timedelta(milliseconds=self.timeout_ms + TIMEOUT_GRACE_MS)

    def attempt_input(self, job_id: str, attempt: int = 0) -> "AttemptInput":
        """The input of an attempt activity of this job (`attempt` 0: the first version's, numbered by Temporal)."""
        return AttemptInput(
            job_id=job_id,
            tenant=self.tenant,
            job_name=self.job_name,
            retry=self.retry,
            timeout_ms=self.timeout_ms,
            heartbeat_timeout_ms=self.heartbeat_timeout_ms,
            attempt=attempt,
        )


@dataclass
class CreateInput:
    """Create the `jobs` row of one run of a schedule."""

    job_id: str
    tenant: str
    job_name: str
    user_id: str | None
    data: dict[str, Any]
    metadata: dict[str, Any] | None
    schedule_id: str | None
    max_attempts: int
    scheduled_at: str
    queue: str | None = None
    timeout_ms: int | None = None


@dataclass
class AttemptInput:
    """Run one attempt of the handler. `attempt` is the workflow's count (1-based); 0 in the first version,
    where Temporal's own attempt number counted."""

    job_id: str
    tenant: str
    job_name: str
    retry: RetrySpec
    timeout_ms: int
    heartbeat_timeout_ms: int
    attempt: int = 0


@dataclass
class AttemptReport:
    """How an attempt ended, told to the workflow whatever became of its record writes.

    `outcome` is an `Outcome` value, or None when the record had already ended before the attempt began
    (cancelled meanwhile): nothing ran. `recorded` is False when the end is not in the record yet; `writes` are
    the handler's steps and progress the record has not got yet, in order (see activities.RecordBuffer). Times
    are ISO 8601 text, as they travel in workflow history.
    """

    outcome: str | None
    result: Any = None
    error: str | None = None
    error_type: str | None = None
    traceback: str | None = None
    next_at: str | None = None
    ended_at: str | None = None
    recorded: bool = True
    writes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class RecordInput:
    """Bookkeeping the workflow asks for, in one transaction: first `writes` (an attempt's steps and progress, or
    a progress signal), then the cancel request `cancel` ({"reason", "cancelledBy"}), then `end`, the attempt's
    end (AttemptReport fields). A cancel with no end cancels a job no attempt runs. `behind_since` is when the
    record first missed something, so it can say how late it caught up."""

    job_id: str
    tenant: str
    attempt: int = 0
    writes: list[dict[str, Any]] = field(default_factory=list)
    cancel: dict[str, Any] | None = None
    end: dict[str, Any] | None = None
    behind_since: str | None = None


@dataclass
class FinalizeInput:
    """Record how a job ended when no attempt could record it (lost worker, cancelled before it ran)."""

    job_id: str
    tenant: str
    outcome: str
    error: str | None = None
    error_type: str | None = None
    #: A workflow step cancelled because of a dependency: that dependency's job id.
    cause: str | None = None


@dataclass
class GraphStep:
    """One step of a workflow: its job (record already written) and the job ids it waits for."""

    job: JobInput
    depends_on: list[str] = field(default_factory=list)
    run_after_failure: bool = False


@dataclass
class GraphInput:
    """The orchestrating workflow's argument. `settled` holds the outcomes of dependencies outside this run (a
    run resuming a workflow after a retry waits only for its own steps), `names` every dependency's job name."""

    workflow_id: str
    name: str
    tenant: str
    steps: list[GraphStep]
    settled: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)


@dataclass
class StepQueuedInput:
    """A step's child workflow started: its record goes from pending to queued with the child's ids."""

    tenant: str
    job_id: str
    external_id: str
    run_id: str | None
