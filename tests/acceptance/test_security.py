"""Battery item 12: two tenants with hundreds of jobs each; everything tried as the other tenant.

Acme's staff try every dashboard page, count, filter, search, detail and action, and the admin, on Globex's
jobs: the answer is 404 or nothing, never a Globex row. Actions need CSRF. Globex's hostile text (`<script>` in
job type, payload and a real handler's error) is rendered inert, and secret-looking payload keys never show.
"""

from __future__ import annotations

import uuid

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from jobscheduler import JobRunnerFactory
from jobscheduler.models import Job, JobStatus, Schedule
from project.accounts.models import Tenant, User
from tests.acceptance.ledger import SUMMARIES
from tests.acceptance.support import drain

pytestmark = [pytest.mark.acceptance, pytest.mark.django_db(transaction=True)]

SCRIPT = "<script>alert('x')</script>"
SECRET = "s3cr3t-VALUE-never-shown"
PERMS = ("view_job", "cancel_job", "retry_job", "change_schedule", "view_jobdetail", "view_schedule")


def staff_of(tenant: Tenant, *, csrf: bool = False) -> Client:
    user = User.objects.create_user(username=f"u-{uuid.uuid4().hex[:8]}", password="pw", tenant=tenant)
    user.is_staff = True
    user.save()
    user.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="jobscheduler", codename__in=PERMS)
    )
    client = Client(enforce_csrf_checks=csrf)
    client.force_login(user)
    return client


@pytest.fixture
def two_tenants(fast_settings, workers):
    """Acme and Globex with 300 jobs each: queued, and finished by a real worker (some failing hostilely)."""
    acme, globex = Tenant.objects.create(name="Acme"), Tenant.objects.create(name="Globex")
    runner = JobRunnerFactory.get_instance()
    payload = {"note": SCRIPT, "apiToken": SECRET, "nested": {"password": SECRET}}
    ids = {}
    for t in (acme, globex):
        done = runner.schedule_jobs("t.echo", [payload] * 150, tenant_id=t.tenant)
        failed = runner.schedule_jobs("acc.hostile", [payload] * 50, tenant_id=t.tenant)
        ids[t.name] = [r.job_id for r in done + failed]
    workers.start("--concurrency", "8")
    drain(ids["Acme"] + ids["Globex"], timeout=60, pool=workers)
    workers.stop_all()  # the queued ones below stay queued
    for t in (acme, globex):
        queued = runner.schedule_jobs("t.echo", [payload] * 100, tenant_id=t.tenant)
        ids[t.name] += [r.job_id for r in queued]
        Schedule.objects.create(
            tenant=t.tenant, key=f"{t.name}-nightly", job_name="t.echo", cron="0 0 * * *", user_id=t.tenant
        )
    # A job type with markup, in Globex only (the runner refuses unknown names; this one is written directly).
    Job.objects.filter(job_id__in=ids["Globex"][:5]).update(type=SCRIPT)
    return acme, globex, {k: [str(i) for i in v] for k, v in ids.items()}


def assert_no_globex(body: str, globex_ids: set[str], url: str) -> None:
    leaked = [i for i in globex_ids if i in body]
    assert not leaked, f"{url} shows Globex job ids {leaked[:3]}"
    assert "Globex-nightly" not in body, url
    assert SECRET not in body, f"{url} shows a secret"
    assert "<script>alert" not in body, f"{url} renders live markup"


def test_other_tenant_sees_nothing_and_touches_nothing(two_tenants):
    acme, globex, ids = two_tenants
    theirs = set(ids["Globex"])
    globex_before = dict(Job.objects.filter(tenant=globex.tenant).values_list("job_id", "status"))
    client = staff_of(acme)
    history = reverse("jobscheduler:job-list")
    probes = [reverse(f"jobscheduler:{n}") for n in ("overview", "job-list", "schedules", "workers")]
    probes += [f"{reverse('jobscheduler:overview')}?range={r}" for r in ("hour", "day", "week")]
    probes += [
        f"{history}?status={s}" for s in ("queued", "completed", "failed", "live", "finished", "cancelled")
    ]
    probes += [f"{history}?type={SCRIPT}", f"{history}?type=acc.hostile", f"{history}?runner=pgboss"]
    probes += [f"{history}?tenant={globex.tenant}", f"{history}?per_page=100&page=2"]
    probes += [f"{history}?q={i}" for i in ids["Globex"][::20]]
    for url in probes:
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        if "?q=" in url:  # the search form echoes what was typed; the table must be empty
            assert len(response.context["table"].page.object_list) == 0, url
            body = body.replace(url.split("?q=")[1], "")
        assert_no_globex(body, theirs, url)
    # counts: Acme's overview counts only Acme's 400 jobs
    overview = client.get(reverse("jobscheduler:overview")).context["overview"]
    assert sum(overview.counts.values()) == len(ids["Acme"])
    for job_id in ids["Globex"]:
        assert client.get(reverse("jobscheduler:job-detail", args=[job_id])).status_code == 404
    for job_id in ids["Globex"][::10]:
        assert client.post(reverse("jobscheduler:job-cancel", args=[job_id])).status_code == 404
        assert client.post(reverse("jobscheduler:job-retry", args=[job_id])).status_code == 404
    for action in ("cancel", "retry"):
        client.post(reverse("jobscheduler:job-bulk"), {"action": action, "job_ids": ids["Globex"]})
    schedule = Schedule.objects.get(tenant=globex.tenant)
    for action in ("pause", "resume", "run"):
        url = reverse("jobscheduler:schedule-action", args=[schedule.id, action])
        assert client.post(url).status_code == 404
    # the admin, as the same Acme staff member
    admin_lists = [
        reverse("admin:jobscheduler_job_changelist"),
        reverse("admin:jobscheduler_jobdetail_changelist"),
        reverse("admin:jobscheduler_schedule_changelist"),
    ]
    for url in admin_lists:
        for params in (
            {},
            {"q": ids["Globex"][0]},
            {"q": "Globex"},
            {"q": "acc.hostile"},
            {"status": "failed"},
        ):
            response = client.get(url, params)
            assert response.status_code in (200, 302), (url, params)  # 302: no such filter on that list
            body = response.content.decode()
            if params.get("q") == ids["Globex"][0]:  # the search box echoes the query; no result may match
                assert response.context["cl"].result_count == 0, url
                body = body.replace(params["q"], "")
            assert_no_globex(body, theirs, f"{url} {params}")
    assert (
        client.get(reverse("admin:jobscheduler_job_changelist"), {"q": ids["Globex"][0]})
        .context["cl"]
        .result_count
        == 0
    )
    for job_id in ids["Globex"][::25]:
        response = client.get(reverse("admin:jobscheduler_job_change", args=[job_id]))
        assert response.status_code in (302, 404)
        assert_no_globex(response.content.decode(), theirs, "admin change")
    changelist = reverse("admin:jobscheduler_job_changelist")
    for action in ("cancel_selected", "retry_selected"):
        client.post(changelist, {"action": action, "_selected_action": ids["Globex"]})
    client.post(
        reverse("admin:jobscheduler_schedule_changelist"),
        {"action": "pause_selected", "_selected_action": [str(schedule.id)]},
    )
    after = dict(Job.objects.filter(tenant=globex.tenant).values_list("job_id", "status"))
    assert after == globex_before, "an action as Acme changed or added Globex jobs"
    assert not Schedule.objects.get(pk=schedule.pk).paused
    SUMMARIES.append(
        f"security: {len(probes)} pages, {len(ids['Globex'])} details, {len(admin_lists) * 5} admin lists "
        f"probed as the other tenant: 0 rows leaked"
    )


def test_actions_need_csrf(two_tenants):
    acme, _globex, ids = two_tenants
    mine = Job.objects.filter(tenant=acme.tenant, status=JobStatus.QUEUED).first()
    done = Job.objects.filter(tenant=acme.tenant, status=JobStatus.FAILED).first()
    schedule = Schedule.objects.get(tenant=acme.tenant)
    before = dict(Job.objects.values_list("job_id", "status"))
    client = staff_of(acme, csrf=True)
    posts = [
        (reverse("jobscheduler:job-cancel", args=[mine.job_id]), {}),
        (reverse("jobscheduler:job-retry", args=[done.job_id]), {}),
        (reverse("jobscheduler:job-bulk"), {"action": "cancel", "job_ids": [str(mine.job_id)]}),
        (reverse("jobscheduler:schedule-action", args=[schedule.id, "pause"]), {}),
        (
            reverse("admin:jobscheduler_job_changelist"),
            {"action": "cancel_selected", "_selected_action": [str(mine.job_id)]},
        ),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    assert dict(Job.objects.values_list("job_id", "status")) == before
    assert not Schedule.objects.get(pk=schedule.pk).paused


def test_hostile_text_is_inert_and_secrets_redacted_in_own_views(two_tenants):
    """Acme looks at its own hostile jobs: the markup is escaped, the secret keys masked, everywhere."""
    acme, _globex, ids = two_tenants
    client = staff_of(acme)
    failed = Job.objects.filter(tenant=acme.tenant, type="acc.hostile").first()
    assert "<script>" in failed.metadata["error"]  # a real handler's error, recorded by a real worker
    pages = [
        reverse("jobscheduler:overview"),
        reverse("jobscheduler:job-list"),
        reverse("jobscheduler:job-list") + "?status=failed",
        reverse("jobscheduler:job-detail", args=[failed.job_id]),
        reverse("jobscheduler:job-detail", args=[ids["Acme"][0]]),
        reverse("admin:jobscheduler_job_changelist"),
        reverse("admin:jobscheduler_job_change", args=[failed.job_id]),
        reverse("admin:jobscheduler_jobdetail_changelist") + "?q=" + str(failed.job_id),
    ]
    for url in pages:
        response = client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert "<script>alert" not in body, url
        assert SECRET not in body, url
    detail = client.get(reverse("jobscheduler:job-detail", args=[failed.job_id])).content.decode()
    assert "&lt;script&gt;" in detail
