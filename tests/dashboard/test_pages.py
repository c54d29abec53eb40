"""Every dashboard page renders the viewer's tenant, with the numbers, filters and sorting it promises."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from jobscheduler.dashboard import metrics
from jobscheduler.ids import new_id
from jobscheduler.models import Job, JobStatus, Schedule, Worker
from jobscheduler.runners.factory import JobRunnerFactory
from tests.dashboard.conftest import finished_job, login
from tests.factories import JobFactory

pytestmark = pytest.mark.django_db

HISTORY = reverse("jobscheduler:job-list")


def history_ids(response) -> list[str]:
    return [str(bound.record.job_id) for bound in response.context["table"].page.object_list]


def test_overview_counts_rates_and_runner(operator_client, acme, globex):
    finished_job(acme)
    finished_job(acme)
    finished_job(acme, JobStatus.FAILED)
    JobFactory(tenant=acme.tenant, status=JobStatus.PROCESSING, runner_type="temporal")
    JobFactory(tenant=acme.tenant, status=JobStatus.CANCELLED)
    finished_job(globex, JobStatus.FAILED)  # another tenant: never counted

    response = operator_client.get(reverse("jobscheduler:overview"))

    assert response.status_code == 200
    data = response.context["overview"]
    assert data.counts == {
        "processing": 1,
        "queued": 0,
        "pending": 0,
        "completed": 2,
        "failed": 1,
        "cancelled": 1,
    }
    assert data.success_rate == pytest.approx(200 / 3)
    assert data.failed_24h == 1
    runners = {r.runner_type: r for r in data.runners}
    assert runners["temporal"].live == 1
    assert runners["pgboss"].completed == 2
    assert sum(b.completed for b in data.chart("hour")) == 2
    assert sum(b.failed for b in data.chart("hour")) == 1
    body = response.content.decode()
    assert f'href="{HISTORY}?status=failed"' in body
    assert 'data-live="' in body
    state = response.context["runner"]
    assert (state.configured, state.active, state.healthy, state.fallback_active) == (
        "pgboss",
        "pgboss",
        True,
        False,
    )


def test_overview_day_range_has_24_hourly_buckets(operator_client, acme):
    finished_job(acme)
    response = operator_client.get(reverse("jobscheduler:overview"), {"range": "day"})
    chart = response.context["overview"].chart("day")
    assert len(chart) == 24
    assert response.context["chart_range"] == "day"
    assert chart[1].start - chart[0].start == timedelta(hours=1)
    assert sum(b.completed for b in chart) == 1


def test_overview_counts_old_jobs_too(operator_client, acme):
    """Old finished jobs come from the cached archive part, old live jobs from the live part; both count."""
    old_done = finished_job(acme)
    old_queued = JobFactory(tenant=acme.tenant, status=JobStatus.QUEUED)
    long_ago = timezone.now() - timedelta(days=3)
    Job.objects.filter(pk__in=[old_done.pk, old_queued.pk]).update(created_at=long_ago, updated_at=long_ago)
    finished_job(acme, JobStatus.FAILED)
    data = operator_client.get(reverse("jobscheduler:overview")).context["overview"]
    assert (data.counts["completed"], data.counts["queued"], data.counts["failed"]) == (1, 1, 1)
    assert (data.completed_24h, data.failed_24h) == (0, 1)


def test_the_count_of_old_finished_jobs_is_carried_forward_hourly_and_counted_afresh_daily(acme):
    """The first overview of an hour adds the jobs of the hour the cutoff passed to the last count instead of
    counting the whole history again; what that step cannot see (a job deleted by retention) shows at the
    daily full count."""
    now = timezone.now()
    cutoff = metrics._truncate(now, "hour") - metrics.WINDOW  # what counts as old now

    def finished_at(created, status: str = JobStatus.COMPLETED) -> Job:
        job = finished_job(acme, status)
        Job.objects.filter(pk=job.pk).update(created_at=created, updated_at=created)
        return job

    def archived(at) -> dict[str, int]:
        counts = metrics.compute_overview(acme.tenant, at).counts
        return {s: counts[s] for s in ("completed", "failed", "cancelled")}

    pruned = finished_at(now - timedelta(days=5))
    finished_at(now - timedelta(days=4), JobStatus.FAILED)
    finished_at(cutoff + timedelta(minutes=30))  # recent now, old for the overview an hour from now
    assert archived(now) == {"completed": 2, "failed": 1, "cancelled": 0}

    with connection.cursor() as cursor:  # as retention deletes a job: its steps, then its row
        cursor.execute("DELETE FROM job_details WHERE job_id = %s", [pruned.job_id])
        cursor.execute("DELETE FROM jobs WHERE job_id = %s", [pruned.job_id])
    with CaptureQueriesContext(connection) as queries:
        assert archived(now + timedelta(hours=1)) == {"completed": 2, "failed": 1, "cancelled": 0}
    step = [q["sql"] for q in queries if "unnest" in q["sql"]]
    assert len(step) == 1 and "created_at >=" in step[0], "the next hour adds a step, not a full count"
    assert archived(now + timedelta(hours=2)) == {"completed": 2, "failed": 1, "cancelled": 0}

    # A day after the last full count the history is counted again, and the deleted job is gone.
    assert archived(now + metrics.ARCHIVE_RECOUNT + timedelta(hours=1)) == {
        "completed": 1,
        "failed": 1,
        "cancelled": 0,
    }


def test_overview_shows_fallback(operator_client, acme):
    JobRunnerFactory.reset()
    runner = JobRunnerFactory.get_instance()
    runner.fallback_active = True
    runner.fallback_reason = "Temporal unreachable at localhost:7233: refused"
    body = operator_client.get(reverse("jobscheduler:overview")).content.decode()
    assert "Temporal is unreachable" in body
    assert "refused" in body


def test_history_lists_only_the_tenant_newest_first(operator_client, acme, globex):
    older = finished_job(acme)
    newer = JobFactory(tenant=acme.tenant, status=JobStatus.QUEUED)
    JobFactory(tenant=globex.tenant)
    response = operator_client.get(HISTORY)
    assert history_ids(response) == [str(newer.job_id), str(older.job_id)]
    assert response.context["has_live_rows"] is True
    assert 'id="history-live" class="panel" data-live=' in response.content.decode()


def test_history_job_ids_show_the_part_that_differs_and_copy_whole(operator_client, acme):
    """UUIDv7 ids made together share their time-ordered head; the column shows each id's random tail, and
    its copy button carries the whole id."""
    jobs = [JobFactory(tenant=acme.tenant, job_id=new_id()) for _ in range(3)]
    assert len({str(job.job_id)[:8] for job in jobs}) == 1  # what the column used to show: the same for all
    body = operator_client.get(HISTORY).content.decode()
    cells = re.findall(
        r'<span class="job-id" title="([0-9a-f-]{36})">…([0-9a-f]{12})</span><button type="button" class="copy" '
        r'data-copy="([0-9a-f-]{36})"',
        body,
    )
    assert sorted(cells) == sorted((str(j.job_id), str(j.job_id)[-12:], str(j.job_id)) for j in jobs)
    assert len({tail for _, tail, _ in cells}) == 3


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "failed"}, {"failed"}),
        ({"status": "live"}, {"queued", "processing", "zip"}),
        ({"status": "finished"}, {"completed", "failed"}),
        ({"status": "processing"}, {"processing"}),
        ({"type": "invoice_zip"}, {"zip"}),
        ({"runner": "temporal"}, {"processing"}),
    ],
)
def test_history_filters(operator_client, acme, params, expected):
    finished_job(acme)
    finished_job(acme, JobStatus.FAILED)
    JobFactory(tenant=acme.tenant, status=JobStatus.QUEUED)
    JobFactory(tenant=acme.tenant, status=JobStatus.PROCESSING, runner_type="temporal")
    JobFactory(tenant=acme.tenant, status=JobStatus.PENDING, type="invoice_zip")
    records = [b.record for b in operator_client.get(HISTORY, params).context["table"].page.object_list]
    found = {"zip" if r.type == "invoice_zip" else r.status for r in records}
    assert found == expected


def test_history_search_by_job_id_and_external_id(operator_client, acme):
    job = JobFactory(tenant=acme.tenant, external_id="wf-invoice-42")
    JobFactory(tenant=acme.tenant)
    assert history_ids(operator_client.get(HISTORY, {"q": str(job.job_id)})) == [str(job.job_id)]
    assert history_ids(operator_client.get(HISTORY, {"q": "wf-invoice-42"})) == [str(job.job_id)]
    assert history_ids(operator_client.get(HISTORY, {"q": "nothing-like-it"})) == []


def test_history_time_ranges(operator_client, acme):
    now = timezone.now()
    old = finished_job(acme)
    Job.objects.filter(pk=old.pk).update(
        created_at=now - timedelta(days=3), updated_at=now - timedelta(days=3)
    )
    recent = finished_job(acme)
    fmt = "%Y-%m-%dT%H:%M"
    since = (now - timedelta(days=1)).strftime(fmt)
    assert history_ids(operator_client.get(HISTORY, {"created_after": since})) == [str(recent.job_id)]
    assert history_ids(operator_client.get(HISTORY, {"created_before": since})) == [str(old.job_id)]
    assert history_ids(operator_client.get(HISTORY, {"finished_after": since})) == [str(recent.job_id)]
    assert history_ids(operator_client.get(HISTORY, {"finished_before": since})) == [str(old.job_id)]


@pytest.mark.parametrize(
    "column", ["type", "status", "runner_type", "created_at", "started_at", "duration", "attempts"]
)
def test_history_sorts_by_every_sortable_column(operator_client, acme, column):
    quick = finished_job(acme, type="a-job", metadata={"attempts": 1})
    slow = finished_job(acme, JobStatus.FAILED, type="b-job", runner_type="temporal")
    Job.objects.filter(pk=slow.pk).update(created_at=quick.created_at + timedelta(seconds=5))
    slow.refresh_from_db()
    started = timezone.now() - timedelta(seconds=30)
    slow.metadata.update(
        startedAt=started.isoformat(), completedAt=(started + timedelta(minutes=5)).isoformat()
    )
    Job.objects.filter(pk=slow.pk).update(metadata=slow.metadata)
    ascending = history_ids(operator_client.get(HISTORY, {"sort": column}))
    descending = history_ids(operator_client.get(HISTORY, {"sort": f"-{column}"}))
    assert ascending == [str(quick.job_id), str(slow.job_id)]
    assert descending == list(reversed(ascending))


def test_history_does_not_load_the_payload(operator_client, acme):
    """Only extracted metadata keys are selected; the whole column (the payload) never leaves the database."""
    finished_job(acme)
    with CaptureQueriesContext(connection) as queries:
        response = operator_client.get(HISTORY)
    record = response.context["table"].page.object_list[0].record
    assert "metadata" in record.get_deferred_fields()
    selects = [q["sql"] for q in queries if 'FROM "jobs"' in q["sql"]]
    assert selects
    assert not any(re.search(r'"jobs"\."metadata"(,| FROM)', sql) for sql in selects)


@pytest.mark.parametrize("per_page", [25, 100])
def test_history_query_count_does_not_grow_with_page_size(
    acme, operator, per_page, django_assert_max_num_queries
):
    Job.objects.bulk_create(
        [
            Job(
                tenant=acme.tenant,
                type="generate-invoice",
                status="completed",
                user_id=acme.tenant,
                metadata={"attempts": 1},
            )
            for _ in range(120)
        ]
    )
    client = login(operator)
    client.get(HISTORY)  # session and permission caches warm
    with django_assert_max_num_queries(6):
        response = client.get(HISTORY, {"per_page": per_page})
    assert len(response.context["table"].page.object_list) == per_page
    assert response.context["table"].page.has_next()


def test_history_pages_forward(operator_client, acme):
    Job.objects.bulk_create(
        [
            Job(tenant=acme.tenant, type="t", status="queued", user_id=acme.tenant, metadata={})
            for _ in range(30)
        ]
    )
    second = operator_client.get(HISTORY, {"page": 2})
    assert len(second.context["table"].page.object_list) == 5
    assert "Previous" in second.content.decode()


def test_detail_shows_everything(operator_client, acme):
    job = finished_job(acme, JobStatus.FAILED, external_id="wf-1", external_run_id="run-9")
    response = operator_client.get(reverse("jobscheduler:job-detail", args=[job.job_id]))
    body = response.content.decode()
    assert response.status_code == 200
    for text in (
        "wf-1",
        "run-9",
        str(job.user_id),
        "42.0 s",
        "2 of 2",
        "execution_failed",
        "RemoteServiceError",
    ):
        assert text in body
    assert "remote service returned 503 (attempt 1)" in body
    assert "remote service returned 503 (attempt 2)" in body
    assert "Traceback (most recent call last)" in body
    assert "Retry as new job" in body
    assert "Cancel job" not in body
    assert 'id="job-live" data-live' not in body  # finished: nothing to refresh
    assert f'<span class="job-id select-all">{job.job_id}</span>' in body
    assert f'data-copy="{job.job_id}"' in body


def test_detail_shows_an_error_with_its_type_once(operator_client, acme):
    job = finished_job(
        acme,
        JobStatus.FAILED,
        metadata={
            "error": "RemoteServiceError: remote service returned 503",
            "errorType": "RemoteServiceError",
        },
    )
    body = operator_client.get(reverse("jobscheduler:job-detail", args=[job.job_id])).content.decode()
    assert "RemoteServiceError: remote service returned 503" in body
    assert "RemoteServiceError RemoteServiceError" not in body
    assert "RemoteServiceError: RemoteServiceError" not in body
    # A step recorded with the bare message (an older record) gets its type, once.
    assert "RemoteServiceError: remote service returned 503 (attempt 1)" in body


def test_detail_shows_who_cancelled_and_a_late_record(operator_client, acme):
    job = finished_job(
        acme,
        JobStatus.CANCELLED,
        metadata={
            "cancelReason": "not needed",
            "cancelledBy": "admin@example.com",
            "recordLagSeconds": 23.44,
        },
    )
    body = operator_client.get(reverse("jobscheduler:job-detail", args=[job.job_id])).content.decode()
    assert "not needed" in body and "admin@example.com" in body
    assert "caught up 23.4 s late" in body


def test_detail_of_running_job_refreshes_and_offers_cancel(operator_client, acme):
    job = JobFactory(
        tenant=acme.tenant,
        status=JobStatus.PROCESSING,
        metadata={"progress": 40, "progressMessage": "halfway"},
    )
    body = operator_client.get(reverse("jobscheduler:job-detail", args=[job.job_id])).content.decode()
    assert 'id="job-live" data-live' in body
    assert "Cancel job" in body
    assert "halfway" in body


def test_detail_redacts_secrets_recursively(operator_client, acme):
    job = JobFactory(
        tenant=acme.tenant,
        metadata={
            "data": {
                "apiToken": "tok-123",
                "nested": {"Password": "hunter2", "list": [{"client_secret": "s3"}], "plain": "visible"},
                "Authorization": "Bearer abc",
            },
            "webhookKey": "k-1",
        },
    )
    body = operator_client.get(reverse("jobscheduler:job-detail", args=[job.job_id])).content.decode()
    for secret in ("tok-123", "hunter2", "s3", "Bearer abc", "k-1"):
        assert secret not in body
    assert "visible" in body
    assert "••••••" in body


def test_schedules_page(operator_client, acme, globex):
    last = finished_job(acme)
    Schedule.objects.create(
        tenant=acme.tenant,
        key="nightly-credits",
        job_name="expired-credits",
        cron="0 0 * * *",
        timezone="Europe/Berlin",
        user_id=acme.tenant,
        last_job_id=last.job_id,
        last_run_at=timezone.now(),
    )
    Schedule.objects.create(
        tenant=globex.tenant, key="globex-only", job_name="x", cron="* * * * *", user_id=globex.tenant
    )
    body = operator_client.get(reverse("jobscheduler:schedules")).content.decode()
    assert "nightly-credits" in body
    assert "Europe/Berlin" in body
    assert "0 0 * * *" in body
    assert reverse("jobscheduler:job-detail", args=[last.job_id]) in body
    assert "globex-only" not in body
    assert "Run now" in body


def test_workers_page_links_only_own_jobs(operator_client, acme, globex):
    mine = JobFactory(tenant=acme.tenant, status=JobStatus.PROCESSING, type="asset_import")
    theirs = JobFactory(tenant=globex.tenant, status=JobStatus.PROCESSING, type="globex-secret-type")
    now = timezone.now()
    Worker.objects.create(
        id="host-1:123",
        host="host-1",
        pid=123,
        concurrency=4,
        started_at=now,
        heartbeat_at=now,
        running_jobs=[str(mine.job_id), str(theirs.job_id)],
    )
    response = operator_client.get(reverse("jobscheduler:workers"))
    body = response.content.decode()
    assert "host-1" in body
    assert reverse("jobscheduler:job-detail", args=[mine.job_id]) in body
    assert "globex-secret-type" not in body
    assert response.context["rows"][0]["running_total"] == 2


def test_library_bookkeeping_keys_are_not_redacted(operator_client, acme):
    job = JobFactory(
        tenant=acme.tenant,
        metadata={
            "data": {"singletonKey": "in-payload-secret"},
            "singletonKey": "invoice-42",
            "scheduleKey": "nightly",
            "callerToken": "tok-9",
        },
    )
    body = operator_client.get(reverse("jobscheduler:job-detail", args=[job.job_id])).content.decode()
    assert "invoice-42" in body
    assert "nightly" in body
    assert "in-payload-secret" not in body
    assert "tok-9" not in body
