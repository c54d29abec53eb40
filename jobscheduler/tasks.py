"""A `django.tasks` backend (DEP 14): `@task` functions run as jobs of the configured runner.

    TASKS = {"default": {"BACKEND": "jobscheduler.tasks.JobSchedulerBackend"}}

`task.enqueue(...)` schedules a job named by the task's module path (its `jobs` row, type = that path, is on
the dashboard like any other), with `{"args": [...], "kwargs": {...}}` as its data. The worker of either backend
finds the task again by that path: the registry asks `resolve_task` about names nobody registered, and only a
real `Task` whose backend is one of ours becomes runnable, so a job row can never make the worker call an
arbitrary function. `get_result(id)` reads the record back into a `TaskResult`.

Django 6 ships the task API as `django.tasks`; Django 5.2 gets it from the `django-tasks` backport. The same
backend serves both (only the backport is tested here: Django 6 needs Python 3.12).
"""

from __future__ import annotations

import asyncio
import builtins
import traceback
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from inspect import iscoroutinefunction
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

try:  # Django 6
    from django.tasks import exceptions as _task_exceptions
    from django.tasks import task_backends
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import Task, TaskContext, TaskError, TaskResult, TaskResultStatus
    from django.tasks.signals import task_enqueued, task_finished, task_started
    from django.utils.json import normalize_json
except ImportError:  # Django 5.2 and the django-tasks backport
    from django_tasks import exceptions as _task_exceptions
    from django_tasks import task_backends
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import Task, TaskContext, TaskError, TaskResult, TaskResultStatus
    from django_tasks.signals import task_enqueued, task_finished, task_started
    from django_tasks.utils import normalize_json

from .conf import setting
from .context import current_job
from .exceptions import (
    AttemptLost,
    InvalidJobData,
    InvalidRetryPolicy,
    JobCancelled,
    JobTimeout,
    NotARunnableTask,
    TenantRequired,
)
from .ids import parse_uuid
from .models import FINAL_STATUSES, Job, JobDetail, JobStatus
from .registry import HandlerSpec, JobHandlerRegistry, RetryPolicy
from .runners.factory import JobRunnerFactory

InvalidTask = getattr(_task_exceptions, "InvalidTask", None) or _task_exceptions.InvalidTaskError
TaskResultDoesNotExist = _task_exceptions.TaskResultDoesNotExist

#: Keys of a backend's OPTIONS.
OPTION_KEYS = frozenset({"TENANT_ID", "RETRY", "TIMEOUT_MS"})

#: The step a failed task attempt writes beside `execution_failed`: the record keeps an error's class name,
#: the task API wants its full dotted path.
EXCEPTION_STEP = "task_exception"

_STATUS = {
    JobStatus.PENDING: TaskResultStatus.READY,
    JobStatus.QUEUED: TaskResultStatus.READY,
    JobStatus.PROCESSING: TaskResultStatus.RUNNING,
    JobStatus.ACTIVE: TaskResultStatus.RUNNING,
    JobStatus.COMPLETED: TaskResultStatus.SUCCESSFUL,
    JobStatus.FAILED: TaskResultStatus.FAILED,
    JobStatus.CANCELLED: TaskResultStatus.FAILED,
}


class JobSchedulerBackend(BaseTaskBackend):
    """Django's task API on django-jobscheduler: enqueue through the configured runner, results from the record.

    OPTIONS: `TENANT_ID` (the tenant of every task; else the runner's rule for calls without one), `RETRY`
    (a RetryPolicy, or a dict of its fields) and `TIMEOUT_MS` (per attempt); the last two default to the
    JOBSCHEDULER settings `DEFAULT_RETRY` and `DEFAULT_TIMEOUT_MS`.
    """

    supports_defer = True
    """`run_after` becomes a delayed job (pgboss: the queue row's run time; Temporal: a start delay)."""

    supports_async_task = True
    """`async def` tasks run on an event loop of the worker's attempt."""

    supports_get_result = True
    """Results are read from the `jobs` / `job_details` record, from any process."""

    supports_priority = True
    """A task's priority is its job's priority (pgboss claims higher first; Temporal records it)."""

    def __init__(self, alias: str, params: dict) -> None:
        super().__init__(alias, params)
        unknown = set(self.options) - OPTION_KEYS
        if unknown:
            raise ImproperlyConfigured(
                f"Unknown OPTIONS of task backend {alias!r}: {', '.join(sorted(unknown))} "
                f"(expected {', '.join(sorted(OPTION_KEYS))})"
            )
        self.tenant_id = self._tenant_option()
        self._retry = self._retry_option()
        self._timeout_ms = self._timeout_option()

    def _tenant_option(self) -> uuid.UUID | None:
        value = self.options.get("TENANT_ID")
        if value is None:
            return None
        tenant = parse_uuid(value)
        if tenant is None:
            raise ImproperlyConfigured(
                f"OPTIONS['TENANT_ID'] of task backend {self.alias!r} must be a UUID, got {value!r}"
            )
        return tenant

    def _retry_option(self) -> RetryPolicy | None:
        value = self.options.get("RETRY")
        if value is None or isinstance(value, RetryPolicy):
            return value
        if not isinstance(value, dict):
            raise ImproperlyConfigured(
                f"OPTIONS['RETRY'] of task backend {self.alias!r} must be a RetryPolicy or a dict of its "
                f"fields, got {type(value).__name__}"
            )
        try:
            return RetryPolicy(**value)
        except (TypeError, InvalidRetryPolicy) as exc:
            raise ImproperlyConfigured(f"OPTIONS['RETRY'] of task backend {self.alias!r}: {exc}") from None

    def _timeout_option(self) -> int | None:
        value = self.options.get("TIMEOUT_MS")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
            raise ImproperlyConfigured(
                f"OPTIONS['TIMEOUT_MS'] of task backend {self.alias!r} must be a positive integer, got {value!r}"
            )
        return value

    # -- what the task API checks -------------------------------------------------------------------------------

    def validate_task(self, task: Task) -> None:
        super().validate_task(task)
        if task.func.__module__ == "__main__":
            raise InvalidTask(
                "Task function must be importable by the worker: it is defined in __main__, move it to a module."
            )

    # -- enqueue -----------------------------------------------------------------------------------------------

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        call = self._call(task, args, kwargs)
        runner = JobRunnerFactory.get_instance()
        try:
            if task.run_after is None:
                scheduled = runner.schedule_job(task.module_path, call.data, **call.options)
            else:
                scheduled = runner.schedule_job_at(
                    task.module_path, call.data, task.run_after, **call.options
                )
        except TenantRequired:
            raise self._tenant_required() from None
        result = self._enqueued(task, scheduled.job_id, call)
        # "Enqueued" means the job exists: inside transaction.atomic() that is at commit (never, on rollback).
        transaction.on_commit(lambda: task_enqueued.send(type(self), task_result=result))
        return result

    async def aenqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        call = self._call(task, args, kwargs)
        runner = JobRunnerFactory.get_instance()
        try:
            if task.run_after is None:
                scheduled = await runner.aschedule_job(task.module_path, call.data, **call.options)
            else:
                scheduled = await runner.aschedule_job_at(
                    task.module_path, call.data, task.run_after, **call.options
                )
        except TenantRequired:
            raise self._tenant_required() from None
        result = self._enqueued(task, scheduled.job_id, call)
        await task_enqueued.asend(type(self), task_result=result)
        return result

    def _call(self, task: Task, args: Any, kwargs: Any) -> _TaskCall:
        try:
            data = {"args": normalize_json(list(args)), "kwargs": normalize_json(dict(kwargs))}
        except (TypeError, ValueError) as exc:
            raise InvalidJobData(
                f"Arguments of task {task.module_path} must be JSON-serialisable: {exc}"
            ) from None
        metadata: dict[str, Any] = {"task": {"backend": self.alias}}
        if task.run_after is not None:
            metadata["task"]["runAfter"] = task.run_after.isoformat()
        options = {
            "tenant_id": self.tenant_id,
            "priority": task.priority,
            "queue": task.queue_name,  # the task's queue is the job's (jobs.metadata.queue)
            "metadata": metadata,
        }
        return _TaskCall(data=data, options=options)

    def _enqueued(self, task: Task, job_id: str, call: _TaskCall) -> TaskResult:
        return TaskResult(
            task=task,
            id=job_id,
            status=TaskResultStatus.READY,
            enqueued_at=timezone.now(),
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=call.data["args"],
            kwargs=call.data["kwargs"],
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )

    def _tenant_required(self) -> TenantRequired:
        return TenantRequired(
            f"A tenant is required for tasks on this site: set TASKS[{self.alias!r}]['OPTIONS']['TENANT_ID']"
        )

    # -- results -----------------------------------------------------------------------------------------------

    def get_result(self, result_id: str) -> TaskResult:
        """The task's result as the record has it now; TaskResultDoesNotExist for an id this backend never
        enqueued (or one of another tenant than TENANT_ID)."""
        job_id = parse_uuid(result_id)
        jobs = Job.objects.filter(job_id=job_id, metadata__task__backend=self.alias)
        if self.tenant_id is not None:
            jobs = jobs.filter(tenant=self.tenant_id)
        job = jobs.first() if job_id is not None else None
        if job is None:
            raise TaskResultDoesNotExist(f"No result of task backend {self.alias!r} with id {result_id!r}")
        return result_from_record(job)

    # -- how the worker runs a task ----------------------------------------------------------------------------

    def handler_spec(self, task: Task) -> HandlerSpec:
        """The spec the worker runs `task` with: our retries and timeout, the task API around the call."""
        return HandlerSpec(
            name=task.module_path,
            handler=_async_handler(task) if iscoroutinefunction(task.func) else _sync_handler(task),
            retry=self._retry or setting("DEFAULT_RETRY") or RetryPolicy(),
            timeout_ms=self._timeout_ms or setting("DEFAULT_TIMEOUT_MS"),
            is_async=iscoroutinefunction(task.func),
        )


@dataclass(frozen=True, slots=True)
class _TaskCall:
    """A task call as a job: its data and the options of the schedule call."""

    data: dict[str, Any]
    options: dict[str, Any]


# -- the record as a TaskResult ---------------------------------------------------------------------------------


def result_from_record(job: Job) -> TaskResult:
    """A `TaskResult` of the task job `job`: status, times, arguments, one error per failed attempt, one worker
    id per attempt started, and the return value of a successful run."""
    meta = job.meta
    details = list(
        JobDetail.objects.filter(tenant=job.tenant, job_id=job.job_id)
        .order_by("processed_at", "detail_id")
        .values_list("step_name", "result")
    )
    data = meta.get("data") if isinstance(meta.get("data"), dict) else {}
    finished = job.status in FINAL_STATUSES
    result = TaskResult(
        task=_task_of(job),
        id=str(job.job_id),
        status=_STATUS[job.status],
        enqueued_at=job.created_at,
        started_at=_time(meta.get("startedAt")),
        finished_at=_time(meta.get("completedAt")) if finished else None,
        last_attempted_at=_time(meta.get("lastStartedAt")),
        args=data.get("args") or [],
        kwargs=data.get("kwargs") or {},
        backend=(meta.get("task") or {}).get("backend", ""),
        errors=_errors(details, job),
        worker_ids=_worker_ids(details),
    )
    if job.status == JobStatus.COMPLETED:
        completed = [r for name, r in details if name == "execution_completed" and isinstance(r, dict)]
        object.__setattr__(result, "_return_value", completed[-1].get("result") if completed else None)
    return result


def _task_of(job: Job) -> Task:
    """The task object of a task job, with the priority, queue and backend it was enqueued with."""
    declared = import_string(job.type)
    if not isinstance(declared, Task):
        raise TaskResultDoesNotExist(f"Job {job.job_id} is of type {job.type}, which is not a task")
    meta = job.meta
    changes: dict[str, Any] = {"priority": int(meta.get("priority") or 0)}
    if meta.get("queue"):
        changes["queue_name"] = meta["queue"]
    task_meta = meta.get("task") or {}
    if task_meta.get("backend"):
        changes["backend"] = task_meta["backend"]
    if task_meta.get("runAfter"):
        changes["run_after"] = _time(task_meta["runAfter"])
    try:
        return declared.using(**changes)
    except InvalidTask:  # the task's declaration changed since (queue gone from QUEUES, ...): as declared
        return declared


def _worker_ids(details: list[tuple[str, Any]]) -> list[str]:
    """One id per attempt, in order; an attempt given back at shutdown and started again keeps its number."""
    by_attempt: dict[int, str] = {}
    for name, result in details:
        if (
            name == "execution_started"
            and isinstance(result, dict)
            and isinstance(result.get("attempt"), int)
        ):
            by_attempt[result["attempt"]] = str(result.get("workerId") or "")
    return [by_attempt[n] for n in sorted(by_attempt)]


def _errors(details: list[tuple[str, Any]], job: Job) -> list[TaskError]:
    paths = {
        r.get("attempt"): r.get("exceptionClassPath")
        for name, r in details
        if name == EXCEPTION_STEP and isinstance(r, dict)
    }
    errors = []
    for name, result in details:
        if name != "execution_failed" or not isinstance(result, dict):
            continue
        error_type = str(result.get("errorType") or "Exception")
        path = paths.get(result.get("attempt")) or exception_path_of(error_type)
        errors.append(
            TaskError(
                exception_class_path=path,
                traceback=result.get("traceback") or f"{path}: {result.get('error') or error_type}",
            )
        )
    if job.status == JobStatus.CANCELLED:
        path = f"{JobCancelled.__module__}.{JobCancelled.__qualname__}"
        reason = job.meta.get("cancelReason") or "Cancelled"
        errors.append(
            TaskError(exception_class_path=path, traceback=f"{path}: the job was cancelled ({reason})")
        )
    return errors


def exception_path_of(error_type: str) -> str:
    """The dotted path of an error the record names by class name only (written by the engine, not a task)."""
    from . import exceptions

    if isinstance(getattr(exceptions, error_type, None), type):
        return f"{exceptions.__name__}.{error_type}"
    builtin = getattr(builtins, error_type, None)
    if isinstance(builtin, type) and issubclass(builtin, BaseException):
        return f"builtins.{error_type}"
    return f"{AttemptLost.__module__}.{AttemptLost.__qualname__}"


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


# -- the worker's side: a task path becomes a handler ---------------------------------------------------------


def resolve_task(name: str) -> HandlerSpec | None:
    """The registry's resolver: a module path naming a Task of one of our backends becomes a spec.

    None when `name` is not the path of a Task (the job then fails with "No handler registered for job: ...");
    NotARunnableTask, saying why, for a task this backend cannot run or a module that fails to import."""
    if "." not in name:
        return None
    try:
        target = import_string(name)
    except ImportError:
        return None
    except Exception as exc:  # the module raised while importing: the job fails, the worker carries on
        raise NotARunnableTask(name, f"importing it failed ({type(exc).__name__}: {exc})") from exc
    if not isinstance(target, Task):
        return None  # only tasks run by module path: anything else stays "No handler registered for job"
    try:
        backend = task_backends[target.backend]
    except Exception as exc:
        raise NotARunnableTask(name, f"its task backend {target.backend!r} is unavailable ({exc})") from exc
    if not isinstance(backend, JobSchedulerBackend):
        raise NotARunnableTask(
            name,
            f"its task backend {target.backend!r} is {type(backend).__module__}.{type(backend).__qualname__}, "
            "not jobscheduler.tasks.JobSchedulerBackend",
        )
    return backend.handler_spec(target)


JobHandlerRegistry.add_resolver(resolve_task)


class _TaskAttempt:
    """One attempt of a task as the task API sees it: its TaskResult (read from the record, so the attempt
    number and the earlier attempts' errors are right), the signals, and the call's arguments."""

    def __init__(self, task: Task, job_id: str) -> None:
        job = Job.objects.get(job_id=job_id)
        self.task = task
        self.job = current_job()
        self.max_attempts = int(job.meta.get("maxAttempts") or 1)
        self.result = result_from_record(job)
        self.sender = type(task.get_backend())
        args, kwargs = self.result.args, self.result.kwargs
        if not isinstance(args, list) or not isinstance(kwargs, dict):
            raise InvalidJobData("A task job's data must hold 'args' (a list) and 'kwargs' (an object)")
        self.args = [TaskContext(task_result=self.result), *args] if task.takes_context else list(args)
        self.kwargs = kwargs

    def started(self) -> None:
        task_started.send(self.sender, task_result=self.result)

    def succeeded(self, value: Any) -> Any:
        """The attempt returned: the result is SUCCESSFUL (unless the value is not JSON, which fails it)."""
        normal = normalize_json(value)
        self._set(status=TaskResultStatus.SUCCESSFUL, finished_at=timezone.now(), _return_value=normal)
        return normal

    def failed(self, exc: BaseException) -> bool:
        """The attempt raised: note the error's class path; True when this was the last attempt."""
        if isinstance(exc, asyncio.CancelledError):  # the worker cancelled an async attempt at its timeout
            exc = JobTimeout()
        # A timeout also flags the attempt cancelled (to stop the handler early); it is still a failure.
        cancelled = isinstance(exc, JobCancelled) or (
            self.job.is_cancelled and not isinstance(exc, JobTimeout)
        )
        if not cancelled:
            path = f"{type(exc).__module__}.{type(exc).__qualname__}"
            self.job.step(
                EXCEPTION_STEP, JobStatus.FAILED, {"attempt": self.job.attempt, "exceptionClassPath": path}
            )
            self.result.errors.append(TaskError(exception_class_path=path, traceback=_traceback(exc)))
        policy = self.task.get_backend().handler_spec(self.task).retry
        final = cancelled or not (policy.is_retryable(exc) and self.job.attempt < self.max_attempts)
        if final:
            self._set(status=TaskResultStatus.FAILED, finished_at=timezone.now())
        return final

    def finished(self) -> None:
        task_finished.send(self.sender, task_result=self.result)

    def _set(self, **fields: Any) -> None:
        for name, value in fields.items():
            object.__setattr__(self.result, name, value)


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc))


def _sync_handler(task: Task) -> Callable[[str, dict[str, Any]], Any]:
    def run_task(job_id: str, data: dict[str, Any]) -> Any:
        attempt = _TaskAttempt(task, job_id)
        attempt.started()
        try:
            value = attempt.succeeded(task.func(*attempt.args, **attempt.kwargs))
        except BaseException as exc:
            if attempt.failed(exc):
                attempt.finished()
            raise
        attempt.finished()
        return value

    return run_task


def _async_handler(task: Task) -> Callable[[str, dict[str, Any]], Coroutine[Any, Any, Any]]:
    """A handler the worker awaits. The record is read, and `task_started` sent, when the worker calls it (in
    its own thread, before the event loop runs); the `task_finished` receivers run in a thread of their own, so
    synchronous receivers may use the ORM."""

    def run_task(job_id: str, data: dict[str, Any]) -> Coroutine[Any, Any, Any]:
        attempt = _TaskAttempt(task, job_id)
        attempt.started()

        async def attempt_task() -> Any:
            try:
                value = attempt.succeeded(await task.func(*attempt.args, **attempt.kwargs))
            except BaseException as exc:
                if attempt.failed(exc):
                    await asyncio.to_thread(_closing_connections, attempt.finished)
                raise
            await asyncio.to_thread(_closing_connections, attempt.finished)
            return value

        return attempt_task()

    return run_task


def _closing_connections(fn: Callable[[], None]) -> None:
    """Run `fn` in a pool thread, closing the database connections it opened there (no request would)."""
    try:
        fn()
    finally:
        connections.close_all()
