"""Unique jobs beyond the singleton: uniqueness across chosen states for a period, throttle and debounce.

A schedule call names one policy with `unique=`; its `key` is per tenant (like `singleton_key`) and is kept in
the job's record (`jobs.metadata.uniqueKey`, indexed where present). The check and the write happen under an
advisory lock on (tenant, key) held until the caller's transaction ends, so two calls with one key, however
concurrent, act one after the other, and a call inside `transaction.atomic()` sees no job that may still roll
back. The policies read the record, so they mean the same on both backends (Debounce is pgboss only: a started
Temporal workflow's input cannot be changed).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection

from .exceptions import InvalidJobData
from .models import JobStatus

ALL_STATES = tuple(str(s) for s in JobStatus)
LIVE_STATES = (
    str(JobStatus.PENDING),
    str(JobStatus.QUEUED),
    str(JobStatus.PROCESSING),
    str(JobStatus.ACTIVE),
)


@dataclass(frozen=True, slots=True)
class Unique:
    """At most one job with `key` in any of `states` among the jobs created within `period` (None: any age).
    A call that would add a second returns the existing job's id instead, and writes nothing."""

    key: str
    states: tuple[str, ...] = LIVE_STATES
    period: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Throttle:
    """At most one job with `key` per `period`: a call within `period` of the creation of the last job with the
    key (whatever became of it) returns that job's id instead."""

    key: str
    period: timedelta


@dataclass(frozen=True, slots=True)
class Debounce:
    """One job per burst of calls: while a job with `key` waits (not started), a call replaces its data with the
    call's and moves its run time to `window` from now, and returns its id; otherwise the call adds a job that
    runs `window` from now. `max_wait`: the run time never moves later than this after that job was created."""

    key: str
    window: timedelta
    max_wait: timedelta | None = None


Policy = Unique | Throttle | Debounce


def check_policy(policy: Any) -> Policy | None:
    """The policy itself, checked, or InvalidJobData saying what is wrong."""
    if policy is None:
        return None
    if not isinstance(policy, Unique | Throttle | Debounce):
        raise InvalidJobData(f"unique must be a Unique, Throttle or Debounce policy, got {policy!r}")
    if not isinstance(policy.key, str) or not policy.key or len(policy.key) > 255:
        raise InvalidJobData(
            f"The key of a {type(policy).__name__} policy must be a non-empty string of at most 255 characters, "
            f"got {policy.key!r}"
        )
    spans = {
        Unique: ("period",),
        Throttle: ("period",),
        Debounce: ("window", "max_wait"),
    }[type(policy)]
    for name in spans:
        value = getattr(policy, name)
        optional = (type(policy) is Unique and name == "period") or name == "max_wait"
        if value is None and optional:
            continue
        if not isinstance(value, timedelta) or value.total_seconds() <= 0:
            raise InvalidJobData(
                f"The {name} of a {type(policy).__name__} policy must be a positive timedelta, got {value!r}"
            )
    if isinstance(policy, Unique):
        bad = [s for s in policy.states if s not in ALL_STATES] if isinstance(policy.states, tuple) else None
        if bad is None or bad or not policy.states:
            raise InvalidJobData(
                f"The states of a Unique policy must be a non-empty tuple of {', '.join(ALL_STATES)}, "
                f"got {policy.states!r}"
            )
    return policy


def lock(tenant: uuid.UUID, key: str) -> None:
    """Wait for, and hold until the transaction ends, the lock of (tenant, key)."""
    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"jobscheduler:{tenant}:{key}"])


def find_existing(tenant: uuid.UUID, policy: Unique | Throttle) -> uuid.UUID | None:
    """The newest job with the policy's key that makes a new one redundant, or None."""
    states = policy.states if isinstance(policy, Unique) else ALL_STATES
    with connection.cursor() as cur:
        cur.execute(
            """SELECT job_id FROM jobs
               WHERE tenant = %(tenant)s AND metadata ? 'uniqueKey' AND metadata ->> 'uniqueKey' = %(key)s
                 AND status = ANY(%(states)s::job_status[])
                 AND (%(period)s::interval IS NULL OR created_at >= now() - %(period)s::interval)
               ORDER BY created_at DESC LIMIT 1""",
            {"tenant": tenant, "key": policy.key, "states": list(states), "period": policy.period},
        )
        row = cur.fetchone()
    return row[0] if row else None
