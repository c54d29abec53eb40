"""Which tenant a dashboard request sees, and the permission names the pages and actions check.

Every dashboard query is filtered by the tenant returned here. Ordinary users always get the tenant their
`JOBSCHEDULER["TENANT_RESOLVER"]` names (on a single-tenant site, the default tenant); a superuser may look at any tenant by passing `?tenant=<uuid>`, which is
remembered in the session so links and form posts stay on that tenant.
"""

from __future__ import annotations

import uuid

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db import connection
from django.http import HttpRequest

from ..ids import parse_uuid
from ..tenancy import default_tenant, resolve_tenant

VIEW_PERMISSION = "jobscheduler.view_job"
CANCEL_PERMISSION = "jobscheduler.cancel_job"
RETRY_PERMISSION = "jobscheduler.retry_job"
SCHEDULE_PERMISSION = "jobscheduler.change_schedule"

SESSION_KEY = "jobscheduler_tenant"


def dashboard_tenant(request: HttpRequest) -> uuid.UUID | None:
    """The tenant whose jobs this request may see; None means "nothing" (the pages then show no jobs)."""
    if request.user.is_superuser:
        picked = parse_uuid(request.GET.get("tenant")) if request.GET.get("tenant") else None
        if picked is not None:
            request.session[SESSION_KEY] = str(picked)
            return picked
        remembered = parse_uuid(request.session.get(SESSION_KEY))
        if remembered is not None:
            return remembered
    return resolve_tenant(request)


def known_tenants(limit: int = 50) -> list[uuid.UUID]:
    """Distinct tenants that have jobs, for the superuser's picker.

    A recursive skip scan over the (tenant, created_at) index: one index probe per tenant instead of reading
    every row, so it stays instant on tables with millions of jobs.
    """
    sql = """
        WITH RECURSIVE t(tenant) AS (
            (SELECT tenant FROM jobs ORDER BY tenant LIMIT 1)
            UNION ALL
            SELECT (SELECT j.tenant FROM jobs j WHERE j.tenant > t.tenant ORDER BY j.tenant LIMIT 1)
            FROM t WHERE t.tenant IS NOT NULL
        )
        SELECT tenant FROM t WHERE tenant IS NOT NULL LIMIT %s
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [row[0] for row in cursor.fetchall()]


def tenant_labels(tenants: list[uuid.UUID]) -> dict[uuid.UUID, str]:
    """Readable names for tenant ids: "Default tenant" for the default one, and names through the user model's
    `tenant` foreign key when it has one (as the example site does).

    Other tenants of sites without such a key get the bare ids; the dashboard never depends on a tenant model.
    """
    default = default_tenant()
    labels = {default: "Default tenant"} if default in tenants else {}
    try:
        field = get_user_model()._meta.get_field("tenant")
    except FieldDoesNotExist:
        return labels
    model = getattr(field, "related_model", None)
    if model is None or not tenants:
        return labels
    labels.update((obj.pk, str(obj)) for obj in model._default_manager.filter(pk__in=tenants))
    return labels
