"""Views an operator's monitoring calls: health (JSON, 200 or 503) and Prometheus metrics.

They answer without a login, as a load balancer or a scraper calls them: they report counts, queue names and
worker ids, never a job's data or a tenant's id (unless METRICS_TENANT_LABEL is on). A site mounts them where
only its infrastructure reaches them, e.g. `path("ops/jobs/", include("jobscheduler.monitoring.urls"))`.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import View

from ..exceptions import MetricsUnavailable
from .health import site_health


class HealthView(View):
    def get(self, request: HttpRequest) -> JsonResponse:
        report = site_health()
        return JsonResponse(report.as_dict(), status=200 if report.healthy else 503)


class MetricsView(View):
    """The database-derived gauges in Prometheus's text format (needs the `metrics` extra)."""

    def get(self, request: HttpRequest) -> HttpResponse:
        try:
            from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

            from .prometheus import registry
        except ImportError as exc:
            raise MetricsUnavailable() from exc
        return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
