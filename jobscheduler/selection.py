"""A selection of jobs by what the history filters on: the one definition the dashboard's filter form, bulk
retry and cancel, and the command line share, so "every job matching this filter" means the same everywhere.

A selection never widens a tenant's view: it only narrows `Job.objects.for_tenant(tenant)`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.db.models.fields.json import KT
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .exceptions import InvalidSelection
from .ids import parse_uuid
from .models import FINAL_STATUSES, LIVE_STATUSES, Job, JobStatus
from .queues import DEFAULT_QUEUE, check_queue_name
from .states import RunnerType

STATUS_GROUPS: dict[str, tuple[str, ...]] = {
    "live": tuple(str(s) for s in LIVE_STATUSES),
    "finished": tuple(str(s) for s in FINAL_STATUSES),
    # `active` is a seed value some rows may carry: shown, filtered and counted as processing
    str(JobStatus.PROCESSING): (str(JobStatus.PROCESSING), str(JobStatus.ACTIVE)),
}

_TIMES = ("created_after", "created_before", "finished_after", "finished_before")


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSelection:
    """Jobs of one tenant matching every criterion given (None: any)."""

    #: A `job_status` value, or a group: "live" (pending, queued, processing) or "finished".
    status: str | None = None
    type: str | None = None
    queue: str | None = None
    runner: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    #: Finished (completed, failed or cancelled) within the range.
    finished_after: datetime | None = None
    finished_before: datetime | None = None
    #: An exact job id or external id (a Temporal workflow id, the queue id).
    search: str | None = None
    #: The steps of one workflow.
    workflow: uuid.UUID | None = None
    #: Payload containment, `key=value` pairs separated by spaces (`customerId=42 region=eu`; `a.b=1` for nested
    #: keys): jobs whose data has every pair. A number also matches the same digits stored as a string.
    payload: str | None = None

    def __post_init__(self) -> None:
        statuses = {str(s) for s in JobStatus} | set(STATUS_GROUPS)
        if self.status is not None and self.status not in statuses:
            raise InvalidSelection(
                f"status must be one of {', '.join(sorted(statuses))}, got {self.status!r}"
            )
        if self.runner is not None and self.runner not in {str(r) for r in RunnerType}:
            raise InvalidSelection(
                f"runner must be one of {', '.join(str(r) for r in RunnerType)}, got {self.runner!r}"
            )
        if self.queue is not None:
            check_queue_name(self.queue)
        for name in _TIMES:
            value = getattr(self, name)
            if value is not None and (not isinstance(value, datetime) or timezone.is_naive(value)):
                raise InvalidSelection(f"{name} must be a timezone-aware datetime, got {value!r}")
        if self.payload is not None:
            payload_pairs(self.payload)
        if self.workflow is not None and parse_uuid(self.workflow) is None:
            raise InvalidSelection(f"workflow must be a workflow id, got {self.workflow!r}")

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> JobSelection:
        """From text (query parameters, command-line options): empty values mean "any"; times are ISO 8601,
        naive ones in the current time zone."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise InvalidSelection(f"Unknown selection criteria: {', '.join(unknown)}")
        values: dict[str, Any] = {}
        for name, raw in params.items():
            if raw in (None, ""):
                continue
            if name in _TIMES and isinstance(raw, str):
                parsed = parse_datetime(raw.strip())
                if parsed is None:
                    raise InvalidSelection(f"{name} must be an ISO 8601 date and time, got {raw!r}")
                raw = timezone.make_aware(parsed) if timezone.is_naive(parsed) else parsed
            values[name] = raw.strip() if isinstance(raw, str) else raw
        return cls(**values)

    def apply(self, queryset: QuerySet[Job]) -> QuerySet[Job]:
        if self.status is not None:
            queryset = queryset.filter(status__in=STATUS_GROUPS.get(self.status, (self.status,)))
        if self.type is not None:
            queryset = queryset.filter(type=self.type)
        if self.queue is not None:
            # As text (->>), the expression of the index on named queues (migration 0011).
            queryset = queryset.alias(queue_name=KT("metadata__queue"))
            in_queue = Q(queue_name=self.queue)
            if self.queue == DEFAULT_QUEUE:  # jobs recorded before queues existed ran in the default queue
                in_queue |= Q(queue_name__isnull=True)
            queryset = queryset.filter(in_queue)
        if self.runner is not None:
            queryset = queryset.filter(runner_type=self.runner)
        if self.created_after is not None:
            queryset = queryset.filter(created_at__gte=self.created_after)
        if self.created_before is not None:
            queryset = queryset.filter(created_at__lt=self.created_before)
        # A job's finish time is written to `updated_at` and `completedAt` together when it reaches a final state.
        if self.finished_after is not None:
            queryset = queryset.filter(status__in=FINAL_STATUSES, updated_at__gte=self.finished_after)
        if self.finished_before is not None:
            queryset = queryset.filter(status__in=FINAL_STATUSES, updated_at__lt=self.finished_before)
        if self.workflow is not None:
            queryset = queryset.in_workflow(parse_uuid(self.workflow))  # the partial index on workflowId
        if self.payload is not None:
            for path, values in payload_pairs(self.payload):
                match = Q()
                for value in values:
                    match |= Q(metadata__data__contains=_nest(path, value))
                queryset = queryset.filter(match)
        if self.search is not None:
            job_id = parse_uuid(self.search)
            match = Q(external_id=self.search)
            if job_id is not None:
                match |= Q(job_id=job_id)
            queryset = queryset.filter(match)
        return queryset

    def jobs(self, tenant: uuid.UUID) -> QuerySet[Job]:
        return self.apply(Job.objects.for_tenant(tenant))

    def as_dict(self) -> dict[str, Any]:
        """The criteria given, as JSON (the audit log's `filter`)."""
        return {
            name: value.isoformat()
            if isinstance(value, datetime)
            else str(value)
            if isinstance(value, uuid.UUID)
            else value
            for name, value in asdict(self).items()
            if value is not None
        }


def payload_pairs(text: str) -> list[tuple[list[str], list[Any]]]:
    """`customerId=42 region=eu` -> [(["customerId"], [42, "42"]), (["region"], ["eu"])]: each key's path and
    the values it may hold (a JSON number, true, false or null as such, a number also as its digits)."""
    pairs = []
    for token in text.split():
        key, sep, raw = token.partition("=")
        path = key.split(".")
        if not sep or not all(path) or not raw:
            raise InvalidSelection(
                f"payload must be key=value pairs separated by spaces, like customerId=42, got {text!r}"
            )
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        if isinstance(value, bool | int | float) or value is None:
            values = [value, raw] if not isinstance(value, bool) and value is not None else [value]
        else:
            values = [value if isinstance(value, str) else raw]
        pairs.append((path, values))
    if not pairs:
        raise InvalidSelection(
            f"payload must be key=value pairs separated by spaces, like customerId=42, got {text!r}"
        )
    return pairs


def _nest(path: list[str], value: Any) -> dict[str, Any]:
    nested: Any = value
    for key in reversed(path):
        nested = {key: nested}
    return nested
