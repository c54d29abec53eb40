"""Probe and scrape URLs; a site mounts them with `path("ops/jobs/", include("jobscheduler.monitoring.urls"))`."""

from django.urls import path

from . import views

app_name = "jobscheduler-monitoring"

urlpatterns = [
    path("health/", views.HealthView.as_view(), name="health"),
    path("metrics/", views.MetricsView.as_view(), name="metrics"),
]
