"""Behind a real PgBouncer (Debian's 1.18) in transaction pooling mode, with LISTEN/NOTIFY off: the site's
Django connection (enqueue, cancel, the dashboard) and every worker connection go through the pooler; enqueue
inside a transaction, claims, retries, cancellation and the dashboard work, no prepared statement or session
setting breaks or leaks, and the ledger is clean."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.urls import reverse

from jobscheduler import JobRunnerFactory
from jobscheduler.models import Job
from tests.acceptance.ledger import check
from tests.acceptance.support import drain
from tests.support.pgbouncer import PgBouncer
from tests.support.processes import libpq_url, wait_for

pytestmark = [pytest.mark.acceptance, pytest.mark.django_db(transaction=True)]

POOLED = {"USE_LISTEN_NOTIFY": False}


@pytest.fixture
def bouncer(fast_settings, ledger_table):
    """PgBouncer started, and this process's Django connection moved behind it (restored afterwards)."""
    fast_settings.JOBSCHEDULER = {**fast_settings.JOBSCHEDULER, **POOLED}
    direct = libpq_url()
    pooler = PgBouncer().start()
    original = {**connection.settings_dict, "OPTIONS": dict(connection.settings_dict["OPTIONS"])}
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(pooler.port), DISABLE_SERVER_SIDE_CURSORS=True)
    connection.settings_dict["OPTIONS"].pop("host", None)
    JobRunnerFactory.reset()
    pooler.direct_url = direct
    try:
        yield pooler
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(original)
        JobRunnerFactory.reset()
        pooler.stop()


@pytest.fixture
def site_tenant(db):
    """A tenant of the example site with an operator signed in to the dashboard."""
    from django.contrib.auth.models import Permission
    from django.test import Client

    from project.accounts.models import Tenant, User

    tenant = Tenant.objects.create(name="Pooled")
    user = User.objects.create_user(username="pooled-operator", password="pw", tenant=tenant)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="jobscheduler"))
    client = Client()
    client.force_login(user)
    return tenant.tenant, client


def server_setting(name: str) -> set[str]:
    """The setting on every server connection of the pool: ask through the pooler as many times as it has
    connections (each statement may land on another)."""
    seen = set()
    for _ in range(20):
        with connection.cursor() as cursor:
            cursor.execute(f"SHOW {name}")
            seen.add(cursor.fetchone()[0])
    return seen


def test_transaction_pooling_enqueue_claim_retry_cancel_and_dashboard(bouncer, workers, site_tenant):
    tenant, operator_client = site_tenant
    runner = JobRunnerFactory.get_instance()
    env = {"LEDGER_DATABASE_URL": bouncer.direct_url}  # the ledger itself stays off the pooler
    for _ in range(2):
        workers.start("--concurrency", "4", settings=POOLED, extra_env=env)
    ids = [r.job_id for r in runner.schedule_jobs("t.ledger", [{}] * 200, tenant_id=tenant)]
    ids += [runner.schedule_job("t.ledger", {"n": i}, tenant_id=tenant).job_id for i in range(50)]
    with transaction.atomic():
        ids.append(runner.schedule_job("t.ledger", {"in": "committed"}, tenant_id=tenant).job_id)
    with pytest.raises(RuntimeError), transaction.atomic():
        rolled_back = runner.schedule_job("t.ledger", {"in": "rolled back"}, tenant_id=tenant).job_id
        raise RuntimeError("roll back")
    flaky = [runner.schedule_job("t.flaky", {"succeed_on": 2}, tenant_id=tenant).job_id for _ in range(5)]
    waiting = runner.schedule_job("t.wait_cancel", {}, tenant_id=tenant).job_id
    wait_for(lambda: runner.get_job_status(waiting, tenant).status == "processing", timeout=60)
    assert runner.cancel_job(waiting, tenant)

    drain([*ids, *flaky, waiting], timeout=180, pool=workers)
    report = check("pgbouncer-transaction", ids, faulted_pids=workers.faulted)
    report.assert_clean(max_duplicated=0)
    assert not Job.objects.filter(job_id=rolled_back).exists()
    assert {e.pid for e in report.executions} == {w.pid for w in workers.all}  # both workers claimed
    for job_id in flaky:  # a retry after a failed attempt, through the pooler
        status = runner.get_job_status(job_id, tenant)
        assert (status.status, status.metadata["attempts"]) == ("completed", 2)
    assert runner.get_job_status(waiting, tenant).status == "cancelled"

    for url in (
        reverse("jobscheduler:overview"),
        reverse("jobscheduler:job-list"),
        reverse("jobscheduler:job-detail", args=[ids[0]]),
        reverse("jobscheduler:workers"),
    ):
        assert operator_client.get(url).status_code == 200, url
    assert operator_client.get("/ops/jobs/health/").status_code == 200

    logs = workers.logs()
    assert "prepared statement" not in logs and "Traceback" not in logs, logs[-3000:]
    # The workers' session settings did not leak onto the pool's server connections.
    assert server_setting("enable_seqscan") == {"on"}
    assert server_setting("idle_in_transaction_session_timeout") == {"0"}
    # Everything went through the pooler: its transaction count covers every job's claim and finish.
    [stats] = [row for row in bouncer.show("STATS") if row[0] == bouncer.dbname]
    assert stats[1] > len(ids), stats  # total_xact_count
