"""A new user's first hour, automated: the README's install section on a fresh `startproject` site.

The wheel of this checkout goes into a fresh virtualenv (no temporalio: the plain install), a
`django-admin startproject` site with the default `User` model and no tenant settings gets the app, the dashboard
and a view that schedules a job, migrates its own database on the test PostgreSQL, answers real HTTP requests,
and a `runjobworker --burst` runs the job. A staff user holding only `view_job` then finds the job on the
dashboard and in the admin, and a superuser lands on the default tenant. Each step below is a step of the
README's "Install in your site" section, in the same words.
"""

from __future__ import annotations

import re
import time

from tests.acceptance.newsite import (
    TIMINGS,
    Browser,
    NewSite,
    fresh_database,
    pinned_constraints,
)

DEFAULT_TENANT = "00000000-0000-0000-0000-000000000001"

WELCOME_JOBS = """
    from jobscheduler import current_job, job_handler


    @job_handler("send-welcome-email")
    def send_welcome_email(job_id, data):
        current_job().progress(50, "writing the email")
        return {"sent_to": data["email"]}
"""

WELCOME_VIEWS = """
    from django.http import JsonResponse

    import jobscheduler


    def send_welcome(request):
        result = jobscheduler.schedule_job("send-welcome-email", {"email": request.GET["email"]})
        return JsonResponse({"job_id": result.job_id})
"""

URLS = """
    from django.urls import include

    from welcome.views import send_welcome

    urlpatterns += [
        path("accounts/", include("django.contrib.auth.urls")),
        path("msp/jobs/", include("jobscheduler.dashboard.urls")),
        path("welcome/", send_welcome),
    ]
"""

STAFF_WITH_VIEW_JOB = """
    from django.contrib.auth.models import Permission, User

    ada = User.objects.create_user("ada", password="ada-pw-123", is_staff=True)
    ada.user_permissions.add(Permission.objects.get(content_type__app_label="jobscheduler", codename="view_job"))
"""


def test_fresh_startproject_site_schedules_runs_and_shows_a_job(tmp_path, jobscheduler_wheel):
    started = time.monotonic()
    site = NewSite(tmp_path)

    # pip install django-jobscheduler (the wheel; temporalio is an extra and stays out)
    site.install(jobscheduler_wheel, pinned_constraints(tmp_path))
    probe = "import importlib.util, jobscheduler; print(jobscheduler.__file__, importlib.util.find_spec('temporalio'))"
    where, temporalio = site.python(probe).split()
    assert "/site-packages/jobscheduler/" in where and where.startswith(str(site.venv)), where
    assert temporalio == "None"

    # django-admin startproject mysite; an app with a job handler and a view that schedules it
    site.startproject()
    site.startapp("welcome", {"jobs.py": WELCOME_JOBS, "views.py": WELCOME_VIEWS})

    with fresh_database() as database:
        # settings.py and urls.py, as the README says
        site.add_settings(
            f"""
            INSTALLED_APPS += ["django_tables2", "django_filters", "jobscheduler", "welcome"]
            DATABASES = {{"default": {database.django_settings()!r}}}
            LOGIN_URL = "admin:login"
            """
        )
        site.add_urls(URLS)

        assert site.manage("check").stdout.strip() == "System check identified no issues (0 silenced)."
        temporal = site.manage("check", check=False, JOB_RUNNER_TYPE="temporal")
        assert temporal.returncode == 1
        assert (
            "(jobscheduler.E008) JOB_RUNNER_TYPE is 'temporal' but the temporalio package is not installed."
            in (temporal.stderr)
        )
        site.manage("migrate", "--no-input")
        site.manage("createsuperuser", "--no-input", "--username", "root", "--email", "root@example.com",
                    DJANGO_SUPERUSER_PASSWORD="root-pw-123")  # fmt: skip
        # what the README does in the admin (Users > ada > "jobscheduler | job | Can view job"), in code
        site.shell(STAFF_WITH_VIEW_JOB)

        with site.serve(tmp_path / "runserver.log") as base_url:
            # a request schedules the job (no tenant anywhere)
            job_id = Browser(base_url).get_json("/welcome/?email=ada@example.com")["job_id"]
            assert re.fullmatch(r"[0-9a-f-]{36}", job_id)

            # python manage.py runjobworker (here: drain what is ready, then exit)
            worker = site.manage("runjobworker", "--burst", timeout=120)
            assert "jobscheduler worker" in worker.stdout and "send-welcome-email" in worker.stdout

            # a staff user with view_job finds it on the dashboard ...
            ada = Browser(base_url)
            status, history = ada.sign_in("ada", "ada-pw-123", "/msp/jobs/history/")
            assert status == 200, history[:3000]
            assert f"/msp/jobs/{job_id}/" in history
            status, page = ada.get(f"/msp/jobs/{job_id}/")
            assert status == 200, page[:3000]
            assert "send-welcome-email" in page and "execution_completed" in page
            assert "sent_to" in page and "ada@example.com" in page  # the handler's return value
            assert "Default tenant" in page

            # ... and in the admin
            status, changelist = ada.get("/admin/jobscheduler/job/")
            assert status == 200, changelist[:3000]
            assert job_id in changelist
            status, change = ada.get(f"/admin/jobscheduler/job/{job_id}/change/")
            assert status == 200 and "send-welcome-email" in change and "completed" in change

            # a superuser starts on the default tenant, with the picker
            root = Browser(base_url)
            status, overview = root.sign_in("root", "root-pw-123", "/msp/jobs/")
            assert status == 200, overview[:3000]
            assert f'<option value="{DEFAULT_TENANT}" selected>Default tenant</option>' in overview
            status, history = root.get("/msp/jobs/history/")
            assert f"/msp/jobs/{job_id}/" in history

            # signed out, the dashboard sends a visitor to the sign-in page
            status, login_page = Browser(base_url).get("/msp/jobs/")
            assert status == 200 and 'name="username"' in login_page

    print(f"fresh site: installed, migrated, served and checked in {time.monotonic() - started:.1f}s")
    print("\n".join(f"  {seconds:6.1f}s  {command}" for command, seconds in TIMINGS))
