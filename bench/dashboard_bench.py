"""How fast the dashboard renders with a million jobs in one tenant.

    JOBSCHEDULER_DATA_DIR=.data-bench .venv/bin/python bench/dashboard_bench.py [--rows 1000000] [--repeat 15]
        [--json FILE]

`make bench` runs it as its `dashboard` workload, on a database of the bench's own cluster ($DATABASE_URL),
with BENCH_DASHBOARD_ROWS rows, and reads the figures back from --json.

Fills `jobs` with ROWS rows for one tenant in a single INSERT ... SELECT over generate_series (spread over the
last 30 days, mostly completed, some failed and cancelled, a few hundred live), VACUUM ANALYZEs the table as
autovacuum would, then renders the overview and the first history page through Django's test Client, as a
signed-in user of that tenant, in three states of the overview's caches (see jobscheduler/dashboard/metrics.py):
"cold" clears every cache before each request (the first viewer, and once an hour per tenant when the count
of old finished jobs is recomputed), "refresh" drops only the few-second overview entry (every TTL while
someone watches), "cached" is a viewer reloading within the TTL.

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
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TENANT = uuid.UUID("00000000-0000-4000-8000-00000000b001")

FILL_SQL = """
INSERT INTO jobs (tenant, job_id, type, metadata, status, created_at, updated_at, user_id, runner_type, external_id)
SELECT %(tenant)s, g.id, g.type,
       jsonb_build_object(
           'data', jsonb_build_object('tenantId', %(tenant)s::text, 'invoiceId', g.i, 'apiToken', md5(g.i::text),
                                      'lines', jsonb_build_array(g.i %% 97, g.i %% 89, g.i %% 83)),
           'attempts', CASE WHEN g.status = 'failed' THEN 3 WHEN g.status IN ('queued', 'pending') THEN 0 ELSE 1 END,
           'maxAttempts', 3)
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
    pages = [
        ("overview", "/msp/jobs/"),
        ("overview, last day", "/msp/jobs/?range=day"),
        ("history, first page", "/msp/jobs/history/"),
        ("history, failed only", "/msp/jobs/history/?status=failed"),
        ("history, page 40", "/msp/jobs/history/?page=40"),
    ]
    print(f"\n{args.rows:,} jobs in one tenant; median / worst of {args.repeat} renders, in ms\n")
    print(f"{'page':24} {'cold':>15} {'refresh':>15} {'cached':>15}")
    result: dict[str, dict[str, dict[str, float]]] = {}
    for label, url in pages:
        cells = []
        for state in ("cold", "refresh", "cached"):
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


def timings(client, url: str, repeat: int, *, state: str) -> list[float]:
    from django.core.cache import cache

    client.get(url)  # warm Python-side caches (templates, permissions)
    result = []
    for _ in range(repeat):
        if state == "cold":
            cache.clear()
        elif state == "refresh":
            cache.delete(f"jobscheduler:overview:{TENANT}")
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
