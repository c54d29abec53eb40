"""How fast the dashboard renders with a million jobs in one tenant.

    JOBSCHEDULER_DATA_DIR=.data-bench .venv/bin/python bench/dashboard_bench.py [--rows 1000000] [--repeat 15]
    JOBSCHEDULER_DATA_DIR=.data-bench .venv/bin/python bench/dashboard_bench.py --searches [--repeat 15]
        [--json FILE]

`make bench` runs it as its `dashboard` workload, on a database of the bench's own cluster ($DATABASE_URL),
with BENCH_DASHBOARD_ROWS rows, and reads the figures back from --json.

Fills `jobs` with ROWS rows for one tenant in a single INSERT ... SELECT over generate_series (spread over the
last 30 days, mostly completed, some failed and cancelled, a few hundred live), VACUUM ANALYZEs the table as
autovacuum would, then renders the overview and the first history page through Django's test Client, as a
signed-in user of that tenant, in four states of the overview's caches (see jobscheduler/dashboard/metrics.py):
"cold" clears every cache before each request (the first viewer of a process, and once a day per tenant when
the count of old finished jobs is taken in full), "hour" keeps only that count as of the previous hour (the
first overview of every other hour, which adds the hour's jobs to it), "refresh" drops only the few-second
overview entry (every TTL while someone watches), "cached" is a viewer reloading within the TTL.

`--searches` times the history's queue filter and payload search instead (common, rare and single matches),
and the Queues page, once per candidate index (none; the migration's; each alternative), building and dropping
each in turn, with the cost each adds to enqueueing (20,000 jobs through `schedule_jobs`): the numbers the
payload and queue indexes were chosen by (docs/dashboard.md).

Runs on the embedded PostgreSQL in $JOBSCHEDULER_DATA_DIR (or $DATABASE_URL); the rows stay there between runs
(delete the folder afterwards: a million rows take about half a gigabyte).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TENANT = uuid.UUID("00000000-0000-4000-8000-00000000b001")

FILL_SQL = """
INSERT INTO jobs (tenant, job_id, type, metadata, status, created_at, updated_at, user_id, runner_type, external_id)
SELECT %(tenant)s, g.id, g.type,
       jsonb_build_object(
           'data', jsonb_build_object('tenantId', %(tenant)s::text, 'invoiceId', g.i, 'apiToken', md5(g.i::text),
                                      'customerId', g.i %% 5000, 'region', (ARRAY['eu', 'us'])[1 + g.i %% 2],
                                      'lines', jsonb_build_array(g.i %% 97, g.i %% 89, g.i %% 83)),
           'attempts', CASE WHEN g.status = 'failed' THEN 3 WHEN g.status IN ('queued', 'pending') THEN 0 ELSE 1 END,
           'maxAttempts', 3,
           'queue', CASE WHEN g.i %% 10000 = 7 THEN 'rare' WHEN g.i %% 4 = 0 THEN 'emails' ELSE 'default' END)
       || CASE WHEN g.status IN ('queued', 'pending') THEN '{}'::jsonb
               ELSE jsonb_build_object('startedAt', g.created + interval '1 second') END
       || CASE WHEN g.status IN ('completed', 'failed', 'cancelled')
               THEN jsonb_build_object('completedAt', g.finished, 'progress', 100) ELSE '{}'::jsonb END
       || CASE WHEN g.status = 'failed'
               THEN jsonb_build_object('error', 'remote service returned 503', 'errorType', 'RemoteServiceError')
               ELSE '{}'::jsonb END,
       g.status::job_status, g.created,
       CASE WHEN g.status IN ('completed', 'failed', 'cancelled') THEN g.finished ELSE g.created END,
       %(tenant)s, g.runner, g.id::text
FROM (
    SELECT s.i, gen_random_uuid() AS id,
           (ARRAY['generate-invoice', 'invoice_zip', 'invoice_email', 'expired-credits',
                  'expiring-credits-notification', 'credit-reconciliation', 'asset_import',
                  'reconcile-bucket-usage', 'cleanup-temporary-workflow-forms', 'renew-microsoft-calendar-webhooks',
                  'verify-google-calendar-pubsub', 'cleanup-ai-session-keys', 'createClientContractLineCycles',
                  'createNextTimePeriods'])[1 + s.i %% 14] AS type,
           CASE WHEN s.i <= 40 THEN 'processing' WHEN s.i <= 300 THEN 'queued' WHEN s.i <= 350 THEN 'pending'
                WHEN s.i %% 100 < 5 THEN 'failed' WHEN s.i %% 100 < 7 THEN 'cancelled' ELSE 'completed' END AS status,
           CASE WHEN s.i %% 10 = 0 THEN 'temporal' ELSE 'pgboss' END AS runner,
           now() - s.i * (interval '30 days' / %(rows)s) AS created,
           now() - s.i * (interval '30 days' / %(rows)s) + (1 + s.i %% 90) * interval '1 second' AS finished
    FROM generate_series(1, %(rows)s) AS s(i)
) g
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument(
        "--searches", action="store_true", help="time the queue filter and payload search per index"
    )
    parser.add_argument("--json", type=Path, help="also write the timings (ms) to this file")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
    os.environ.setdefault("JOBSCHEDULER_DATA_DIR", str(REPO / ".data-bench"))
    sys.path.insert(0, str(REPO))
    subprocess.run([sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"], cwd=REPO, check=True)

    import django

    django.setup()
    from django.conf import settings

    settings.DEBUG = False  # no query log: measure what production pays

    fill(args.rows)
    client = signed_in_client()
    if args.searches:
        return searches(client, args.rows, args.repeat)
    pages = [
        ("overview", "/msp/jobs/"),
        ("overview, last day", "/msp/jobs/?range=day"),
        ("history, first page", "/msp/jobs/history/"),
        ("history, failed only", "/msp/jobs/history/?status=failed"),
        ("history, page 40", "/msp/jobs/history/?page=40"),
        ("queues", "/msp/jobs/queues/"),
    ]
    print(f"\n{args.rows:,} jobs in one tenant; median / worst of {args.repeat} renders, in ms\n")
    print(f"{'page':24} " + " ".join(f"{state:>15}" for state in STATES))
    result: dict[str, dict[str, dict[str, float]]] = {}
    for label, url in pages:
        cells = []
        for state in STATES:
            times = timings(client, url, args.repeat, state=state)
            result.setdefault(label, {})[state] = {
                "median_ms": statistics.median(times),
                "max_ms": max(times),
            }
            cells.append(f"{statistics.median(times):7.1f} / {max(times):5.0f}")
        print(f"{label:24} " + " ".join(f"{c:>15}" for c in cells))
    if args.json:
        args.json.write_text(
            json.dumps({"rows": args.rows, "repeat": args.repeat, "pages": result}, indent=2)
        )


#: (label, SQL that creates it, index name): the candidates for the history's payload search and queue filter.
CANDIDATES = [
    ("no index", None, None),
    (
        "GIN (metadata -> 'data') jsonb_path_ops [chosen: idx_jobs_data]",
        "CREATE INDEX bench_payload ON jobs USING gin ((metadata -> 'data') jsonb_path_ops)",
        "bench_payload",
    ),
    (
        "GIN (metadata -> 'data') jsonb_ops",
        "CREATE INDEX bench_payload ON jobs USING gin ((metadata -> 'data'))",
        "bench_payload",
    ),
    (
        "btree (tenant, metadata ->> 'queue', created_at DESC)",
        "CREATE INDEX bench_queue ON jobs (tenant, (metadata ->> 'queue'), created_at DESC)",
        "bench_queue",
    ),
    (
        "the same, named queues only [chosen: idx_jobs_tenant_queue]",
        "CREATE INDEX bench_queue ON jobs (tenant, (metadata ->> 'queue'), created_at DESC) "
        "WHERE (metadata ->> 'queue') <> 'default'",
        "bench_queue",
    ),
]

SEARCHES = [
    ("queue emails (25 %)", "/msp/jobs/history/?queue=emails"),
    ("queue rare (0.01 %)", "/msp/jobs/history/?queue=rare"),
    ("payload region=eu (50 %)", "/msp/jobs/history/?payload=region%3Deu"),
    ("payload customerId=42 (0.02 %)", "/msp/jobs/history/?payload=customerId%3D42"),
    ("payload invoiceId=777777 (1 job)", "/msp/jobs/history/?payload=invoiceId%3D777777"),
    ("payload, 2 pairs (0.01 %)", "/msp/jobs/history/?payload=customerId%3D42+region%3Deu"),
    ("queues page", "/msp/jobs/queues/"),
]


def searches(client, rows: int, repeat: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:  # the migrations' own search indexes are put back at the end
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'jobs' AND indexname = ANY(%s)",
            [list(INSTALLED)],
        )
        installed = cursor.fetchall()
        for name, _ in installed:
            cursor.execute(f"DROP INDEX {name}")
    try:
        print(f"\n{rows:,} jobs in one tenant; median / worst of {repeat} cold renders, in ms\n")
        for label, create, name in CANDIDATES:
            with connection.cursor() as cursor:
                if create:
                    started = time.perf_counter()
                    cursor.execute(create)
                    built = time.perf_counter() - started
                    cursor.execute("SELECT pg_relation_size(%s::regclass)", [name])
                    size = cursor.fetchone()[0]
                    cursor.execute("ANALYZE jobs")
                    print(f"== {label}: built in {built:.1f} s, {size / 2**20:.0f} MiB")
                else:
                    print(f"== {label}")
            best = min(enqueue_cost() for _ in range(3))
            print(f"   enqueue 20,000 jobs (schedule_jobs x1000), best of 3: {best:.2f} s")
            for page, url in SEARCHES:
                times = timings(client, url, repeat, state="cold")
                print(f"   {page:34} {statistics.median(times):8.1f} / {max(times):6.0f}")
            if name:
                with connection.cursor() as cursor:
                    cursor.execute(f"DROP INDEX {name}")
    finally:
        with connection.cursor() as cursor:
            for _, definition in installed:
                cursor.execute(definition)
            cursor.execute("ANALYZE jobs")


#: Search indexes the migrations create (dropped while the candidates are measured).
INSTALLED = ("idx_jobs_data", "idx_jobs_tenant_queue")


def enqueue_cost() -> float:
    """Seconds to enqueue 20,000 jobs in chunks of 1,000 into a tenant of their own (deleted afterwards)."""
    from django.db import connection

    from jobscheduler import JobRunnerFactory, job_handler
    from jobscheduler.registry import JobHandlerRegistry

    if not JobHandlerRegistry.has("bench.noop"):
        job_handler("bench.noop")(lambda job_id, data: None)
    other = uuid.uuid4()
    runner = JobRunnerFactory.get_instance()
    started = time.perf_counter()
    for _ in range(20):
        runner.schedule_jobs(
            "bench.noop", [{"customerId": i, "region": "eu"} for i in range(1000)], tenant_id=other
        )
    took = time.perf_counter() - started
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM jobscheduler_queue WHERE tenant = %s", [other])
        cursor.execute("DELETE FROM jobs WHERE tenant = %s", [other])
    return took


def fill(rows: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM jobs WHERE tenant = %s", [TENANT])
        have = cursor.fetchone()[0]
        if have == rows:
            print(f"{rows:,} rows already there")
            return
        started = time.perf_counter()
        cursor.execute("DELETE FROM jobs WHERE tenant = %s", [TENANT])
        cursor.execute(FILL_SQL, {"tenant": TENANT, "rows": rows})
        cursor.execute("VACUUM ANALYZE jobs")
        print(f"inserted {rows:,} rows in {time.perf_counter() - started:.1f} s")


def signed_in_client():
    from django.contrib.auth.models import Permission
    from django.test import Client

    from project.accounts.models import Tenant, User

    tenant, _ = Tenant.objects.get_or_create(tenant=TENANT, defaults={"name": "Bench"})
    user, _ = User.objects.get_or_create(username="bench-viewer", defaults={"tenant": tenant})
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="jobscheduler"))
    client = Client()
    client.force_login(user)
    return client


#: The cache states each page is rendered in (see the module's docstring).
STATES = ("cold", "hour", "refresh", "cached")


def timings(client, url: str, repeat: int, *, state: str) -> list[float]:
    from django.core.cache import cache
    from django.utils import timezone

    from jobscheduler.dashboard import metrics

    client.get(url)  # warm Python-side caches (templates, permissions)
    result = []
    for _ in range(repeat):
        if state == "cold":
            cache.clear()
        elif state == "hour":
            cache.clear()
            previous = metrics._truncate(timezone.now(), "hour") - metrics.WINDOW - timedelta(hours=1)
            metrics._archived_counts(TENANT, previous)
        elif state == "refresh":
            cache.delete(f"jobscheduler:overview:{TENANT}")
            cache.delete(f"jobscheduler:queues:{TENANT}")
        started = time.perf_counter()
        response = client.get(url)
        result.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}")
    return result


def run(cfg) -> dict:
    """The `dashboard` workload of `make bench`: this script on a fresh database of the bench cluster."""
    from bench import pg
    from bench.config import LOG_DIR, RESULTS_DIR

    db = "bench_dashboard"
    pg.recreate_db(cfg.pg_port, db)
    out = RESULTS_DIR / "dashboard.json"
    out.unlink(missing_ok=True)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, DATABASE_URL=f"postgres://postgres@127.0.0.1:{cfg.pg_port}/{db}")
    env["DJANGO_SETTINGS_MODULE"] = "project.settings"
    args = ["--rows", str(cfg.dashboard_rows), "--repeat", str(cfg.dashboard_repeat), "--json", str(out)]
    try:
        with open(LOG_DIR / "dashboard.log", "w") as log:
            subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), *args],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
            )
        return json.loads(out.read_text())
    finally:
        pg.drop_db(cfg.pg_port, db)


if __name__ == "__main__":
    main()
