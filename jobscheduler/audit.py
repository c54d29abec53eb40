"""The operator audit log: every action an operator takes on jobs and schedules, from the dashboard, the admin
or the command line, is written here by the code that takes it (`dashboard.actions`), so no entry point can
skip it.

An entry says who (`Actor`), when (the database clock), what, on what and on how many; it is tenant-scoped
like the jobs it acted on. It is written after the action, with what the action actually did (how many were
cancelled, which new jobs a retry made), never before.
"""

from __future__ import annotations

import getpass
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Q, QuerySet
from django.http import HttpRequest

from .models import AuditAction, AuditEntry, AuditSource


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who acted, and from where."""

    source: AuditSource
    name: str
    user_id: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest, source: AuditSource) -> Actor:
        user = request.user
        return cls(source=source, name=user.get_username(), user_id=str(user.pk or ""))

    @classmethod
    def command_line(cls) -> Actor:
        """The login name of whoever runs `manage.py`: a shell has no Django user."""
        try:
            name = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry for the uid (containers)
            name = "unknown"
        return cls(source=AuditSource.CLI, name=name)


def record(
    actor: Actor,
    action: AuditAction,
    *,
    tenant: uuid.UUID | None,
    target: str,
    count: int,
    job_id: uuid.UUID | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    return AuditEntry.objects.create(
        tenant=tenant,
        actor=actor.name[:255],
        actor_id=actor.user_id[:64],
        source=actor.source,
        action=action,
        target=target[:255],
        job_id=job_id,
        count=count,
        detail=detail or {},
    )


def for_tenant(tenant: uuid.UUID | None) -> QuerySet[AuditEntry]:
    """The tenant's entries, newest first (none for a viewer without a tenant)."""
    if tenant is None:
        return AuditEntry.objects.none()
    return AuditEntry.objects.filter(tenant=tenant).order_by("-at")


def for_job(tenant: uuid.UUID | None, job_id: uuid.UUID) -> QuerySet[AuditEntry]:
    """Entries about one job: its own actions and the bulk actions that included it."""
    return for_tenant(tenant).filter(Q(job_id=job_id) | Q(detail__jobIds__contains=[str(job_id)]))


def job_ids(ids: Iterable[Any]) -> list[str]:
    return [str(i) for i in ids]
