"""Which tenant a job or a request belongs to: the dashboard and the admin scope every query with it.

A site is single-tenant unless `JOBSCHEDULER["REQUIRE_TENANT"]` is on: a schedule call naming no tenant, and a
request whose resolver names none, both mean `DEFAULT_TENANT`. That is what makes a site without any notion of
tenants work with zero settings, while a multi-tenant site turns the setting on and gets the strict behaviour
(`TenantRequired`, and empty pages for a user linked to no tenant).
"""

from __future__ import annotations

import uuid

from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest
from django.utils.module_loading import import_string

from .conf import setting


def default_tenant() -> uuid.UUID | None:
    """The tenant of work that names none; None when the site requires tenants."""
    if setting("REQUIRE_TENANT"):
        return None
    value = setting("DEFAULT_TENANT")
    try:
        return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        raise ImproperlyConfigured(f'JOBSCHEDULER["DEFAULT_TENANT"] must be a UUID, got {value!r}') from None


def user_tenant(request: HttpRequest) -> uuid.UUID | None:
    """Default resolver: `request.user.tenant_id`."""
    value = getattr(request.user, "tenant_id", None)
    return uuid.UUID(str(value)) if value else None


def resolve_tenant(request: HttpRequest) -> uuid.UUID | None:
    """The resolver's tenant for this request, else the default tenant (None only on a strict site)."""
    tenant = import_string(setting("TENANT_RESOLVER"))(request)
    return tenant if tenant is not None else default_tenant()
