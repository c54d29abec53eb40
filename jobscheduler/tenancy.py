"""Which tenant a request acts for: the dashboard and the admin scope every query with it."""

from __future__ import annotations

import uuid

from django.http import HttpRequest
from django.utils.module_loading import import_string

from .conf import setting


def user_tenant(request: HttpRequest) -> uuid.UUID | None:
    """Default resolver: `request.user.tenant_id`."""
    value = getattr(request.user, "tenant_id", None)
    return uuid.UUID(str(value)) if value else None


def resolve_tenant(request: HttpRequest) -> uuid.UUID | None:
    return import_string(setting("TENANT_RESOLVER"))(request)
