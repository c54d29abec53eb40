"""URLs of the dashboard; a site mounts them with `path("msp/jobs/", include("jobscheduler.dashboard.urls"))`."""

from django.urls import path

from . import views

app_name = "jobscheduler"

urlpatterns = [
    path("", views.OverviewView.as_view(), name="overview"),
    path("history/", views.JobListView.as_view(), name="job-list"),
    path("history/bulk/", views.BulkActionView.as_view(), name="job-bulk"),
    path("<uuid:job_id>/", views.JobDetailView.as_view(), name="job-detail"),
    path("<uuid:job_id>/cancel/", views.CancelJobView.as_view(), name="job-cancel"),
    path("<uuid:job_id>/retry/", views.RetryJobView.as_view(), name="job-retry"),
    path("schedules/", views.SchedulesView.as_view(), name="schedules"),
    path(
        "schedules/<uuid:schedule_id>/<slug:action>/",
        views.ScheduleActionView.as_view(),
        name="schedule-action",
    ),
    path("workers/", views.WorkersView.as_view(), name="workers"),
    path("health/", views.HealthView.as_view(), name="health"),
    path("audit/", views.AuditView.as_view(), name="audit"),
    path("workflows/<uuid:workflow_id>/", views.WorkflowDetailView.as_view(), name="workflow-detail"),
]
