"""The same new user, with code written for Django's task API: `@task` functions and `.enqueue()`.

A fresh `startproject` site installs the wheel with the `[tasks]` extra (the django-tasks backport), declares
`TASKS = {"default": {"BACKEND": "jobscheduler.tasks.JobSchedulerBackend"}}` and nothing else of ours, enqueues
task functions unchanged (a plain one, one that fails, a deferred one, an async one, one that takes its
context), runs `runjobworker --burst`, and reads every result back through the task API (the backend's `get_result`). The
tasks also show on the dashboard as ordinary jobs. docs/tasks.md describes each behaviour checked here.
"""

from __future__ import annotations

import json
import textwrap
import time

from tests.acceptance.newsite import Browser, NewSite, fresh_database, pinned_constraints

SHOP_TASKS = """
    from django_tasks import task


    @task
    def add(a, b):
        return a + b


    @task
    def refuse(order_id):
        raise ValueError(f"order {order_id} is locked")


    @task
    async def ping(word):
        return {"pong": word}


    @task(takes_context=True)
    def attempt_of(context, n):
        if context.attempt < 2:
            raise RuntimeError("first attempt fails")
        return {"attempt": context.attempt, "n": n}
"""

ENQUEUE = """
    import json
    from datetime import timedelta

    from django.utils import timezone

    from shop.tasks import add, attempt_of, ping, refuse

    ids = {
        "add": add.enqueue(2, 3).id,
        "refuse": refuse.enqueue(7).id,
        "deferred": add.using(run_after=timezone.now() + timedelta(seconds=3)).enqueue(10, 20).id,
        "ping": ping.enqueue("hi").id,
        "context": attempt_of.enqueue(5).id,
        "urgent": add.using(priority=50).enqueue(1, 1).id,
    }
    print(json.dumps(ids))
"""

READ_RESULTS = """
    import json

    from django_tasks import default_task_backend

    out = {}
    for name, result_id in json.loads(IDS).items():
        r = default_task_backend.get_result(result_id)
        out[name] = {
            "status": r.status.name,
            "return_value": r.return_value if r.status.name == "SUCCESSFUL" else None,
            "errors": [e.exception_class_path for e in r.errors],
            "tracebacks": [e.traceback for e in r.errors],
            "args": list(r.args),
            "times": [t is not None for t in (r.enqueued_at, r.started_at, r.finished_at, r.last_attempted_at)],
            "run_after": r.task.run_after.isoformat() if r.task.run_after else None,
            "started_at": r.started_at.isoformat() if r.started_at else None,
            "workers": len(r.worker_ids),
        }
    print(json.dumps(out))
"""

RETRY_TWICE = '{"max_attempts": 2, "initial_interval_ms": 100, "max_interval_ms": 200}'


def test_fresh_site_runs_django_task_api_code_unchanged(tmp_path, jobscheduler_wheel):
    started = time.monotonic()
    site = NewSite(tmp_path)
    site.install(jobscheduler_wheel, pinned_constraints(tmp_path), extras=("tasks",))
    site.startproject()
    site.startapp("shop", {"tasks.py": SHOP_TASKS})

    with fresh_database("newsite_tasks") as database:
        site.add_settings(
            f"""
            INSTALLED_APPS += ["django_tables2", "django_filters", "django_tasks", "jobscheduler", "shop"]
            DATABASES = {{"default": {database.django_settings()!r}}}
            LOGIN_URL = "admin:login"
            TASKS = {{
                "default": {{
                    "BACKEND": "jobscheduler.tasks.JobSchedulerBackend",
                    "OPTIONS": {{"RETRY": {RETRY_TWICE}}},
                }}
            }}
            """
        )
        site.add_urls(
            """
            from django.urls import include

            urlpatterns += [
                path("accounts/", include("django.contrib.auth.urls")),
                path("msp/jobs/", include("jobscheduler.dashboard.urls")),
            ]
            """
        )
        assert site.manage("check").stdout.strip() == "System check identified no issues (0 silenced)."
        site.manage("migrate", "--no-input")

        ids = json.loads(site.shell(ENQUEUE).strip().splitlines()[-1])
        time.sleep(3.5)  # the deferred task is due by the time the worker drains
        worker = site.manage("runjobworker", "--burst", timeout=180)
        assert "jobscheduler worker" in worker.stdout

        code = f"IDS = {json.dumps(json.dumps(ids))}\n" + textwrap.dedent(READ_RESULTS)
        results = json.loads(site.shell(code).splitlines()[-1])

        assert results["add"]["status"] == "SUCCESSFUL" and results["add"]["return_value"] == 5
        assert results["add"]["args"] == [2, 3] and all(results["add"]["times"])
        assert results["add"]["workers"] == 1 and results["add"]["errors"] == []

        refused = results["refuse"]
        assert refused["status"] == "FAILED"
        assert refused["errors"] == ["builtins.ValueError", "builtins.ValueError"]  # one per attempt
        assert all("order 7 is locked" in tb for tb in refused["tracebacks"])
        assert refused["workers"] == 2

        deferred = results["deferred"]
        assert deferred["status"] == "SUCCESSFUL" and deferred["return_value"] == 30
        assert deferred["started_at"] >= deferred["run_after"]  # not before its time

        assert results["ping"]["status"] == "SUCCESSFUL" and results["ping"]["return_value"] == {"pong": "hi"}

        context = results["context"]
        assert context["status"] == "SUCCESSFUL" and context["return_value"] == {"attempt": 2, "n": 5}
        assert context["errors"] == ["builtins.RuntimeError"] and context["workers"] == 2

        assert results["urgent"]["status"] == "SUCCESSFUL" and results["urgent"]["return_value"] == 2

        # the tasks are ordinary jobs on the dashboard, typed by their module path
        site.manage("createsuperuser", "--no-input", "--username", "root", "--email", "root@example.com",
                    DJANGO_SUPERUSER_PASSWORD="root-pw-123")  # fmt: skip
        with site.serve(tmp_path / "runserver.log") as base_url:
            root = Browser(base_url)
            status, history = root.sign_in("root", "root-pw-123", "/msp/jobs/history/")
            assert status == 200, history[:3000]
            for job_id in ids.values():
                assert f"/msp/jobs/{job_id}/" in history
            assert "shop.tasks.add" in history and "shop.tasks.refuse" in history
            status, page = root.get(f"/msp/jobs/{ids['refuse']}/")
            assert status == 200 and "order 7 is locked" in page

    print(f"fresh tasks site: installed, migrated, ran and checked in {time.monotonic() - started:.1f}s")
