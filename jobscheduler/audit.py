"""The audit log of operator actions: who did what, when, to how many jobs (`jobscheduler_audit`).

Bulk retries and cancels record one entry each, with the selection they applied to; queue changes (pause,
resume, limits, reset) record one entry each, with the queue and its new settings. Entries are only ever
added.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

#: The actor of actions taken by code that names none.
SYSTEM_ACTOR = "system"


class AuditAction(StrEnum):
    BULK_RETRY = "bulk_retry"
    BULK_CANCEL = "bulk_cancel"
    PAUSE_QUEUE = "pause_queue"
    RESUME_QUEUE = "resume_queue"
    SET_QUEUE_LIMITS = "set_queue_limits"
    RESET_QUEUE = "reset_queue"


def record(
    action: AuditAction,
    *,
    actor: str | None,
    tenant: uuid.UUID | None = None,
    filter: dict[str, Any] | None = None,
    count: int = 0,
) -> None:
    """Add one entry (on Django's connection: inside the caller's transaction, if any)."""
    from .models import AuditEntry

    AuditEntry.objects.create(
        actor=(actor or SYSTEM_ACTOR)[:255], action=action, tenant=tenant, filter=filter or {}, count=count
    )
