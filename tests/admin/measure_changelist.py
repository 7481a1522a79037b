"""Time the jobs admin on a PostgreSQL table of 1,000,000 jobs (not a test; run by hand).

    DJANGO_JOBS_DB=postgres PGDATABASE=bench_admin \
        .venv/bin/python tests/admin/measure_changelist.py

Creates (once) the scratch database ``bench_admin``, fills its job table with
``INSERT … SELECT generate_series`` (70 % succeeded, 15 % ready, 10 % later, 5 % failed,
100 running), runs ANALYZE, then requests each admin page through Django's test client
(full request: middleware, queries, template rendering) and prints the median of 10 runs
with the number of queries and the slowest one.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
os.environ.setdefault("DJANGO_JOBS_DB", "postgres")
os.environ.setdefault("PGDATABASE", "bench_admin")

ROWS = int(os.environ.get("ROWS", "1000000"))
RUNS = 10

FILL = """
INSERT INTO django_jobs_job (name, args, kwargs, queue, priority, attempts, run_at, locked_at,
    locked_by, last_error, failed_at, finished_at, progress, progress_message, created_at,
    updated_at)
SELECT
    'app.jobs.' || (ARRAY['send_email', 'resize_image', 'sync_account', 'daily_report'])[1 + i % 4],
    jsonb_build_array(i, 'user-' || (i % 5000)),
    '{}'::jsonb,
    (ARRAY['default', 'email', 'slow'])[1 + i % 3],
    (i % 5) * 10,
    CASE WHEN s.kind = 'failed' THEN 3 WHEN s.kind IN ('succeeded', 'running') THEN 1 ELSE 0 END,
    CASE s.kind WHEN 'failed' THEN NULL
        WHEN 'later' THEN now() + (i % 86400) * interval '1 second'
        ELSE now() - (i % 86400) * interval '1 second' END,
    CASE WHEN s.kind = 'running' THEN now() - interval '30 seconds' END,
    CASE WHEN s.kind = 'running' THEN 'django-jobs-worker.*.1@bench' END,
    CASE WHEN s.kind = 'failed' THEN E'Traceback (most recent call last):\\n  File "app/jobs.py", '
        || 'line 12, in sync_account\\n    raise TimeoutError(host)\\nTimeoutError: api-'
        || (i % 7) || '.example.com timed out' ELSE '' END,
    CASE WHEN s.kind = 'failed' THEN now() - (i % 604800) * interval '1 second' END,
    CASE WHEN s.kind = 'succeeded' THEN now() - (i % 604800) * interval '1 second' END,
    NULL, '',
    now() - (i % 604800) * interval '1 second' - interval '1 minute',
    now() - (i % 604800) * interval '1 second'
FROM generate_series(1, %s) AS i,
LATERAL (SELECT CASE
    WHEN i % 10000 = 0 THEN 'running'
    WHEN i % 100 < 70 THEN 'succeeded'
    WHEN i % 100 < 85 THEN 'ready'
    WHEN i % 100 < 95 THEN 'later'
    ELSE 'failed' END AS kind) AS s
"""

PAGES = [
    ("job list, first page", "/admin/django_jobs/job/"),
    ("job list, page 500", "/admin/django_jobs/job/?p=500"),
    ("status = failed", "/admin/django_jobs/job/?status=failed"),
    ("status = ready", "/admin/django_jobs/job/?status=ready"),
    ("status = running", "/admin/django_jobs/job/?status=running"),
    ("queue = email", "/admin/django_jobs/job/?queue=email"),
    ("job name", "/admin/django_jobs/job/?name=app.jobs.resize_image"),
    (
        "failed at, last 24 h",
        "/admin/django_jobs/job/?status=failed&failed_at__range__gte_0={day}"
        "&failed_at__range__gte_1=00:00:00",
    ),
    ("search 'api-3'", "/admin/django_jobs/job/?q=api-3"),
    ("one job's page", "/admin/django_jobs/job/{job}/change/"),
    ("queue dashboard", "/admin/django_jobs/job/dashboard/"),
    ("failed jobs by error", "/admin/django_jobs/job/failed/"),
]


def create_database() -> None:
    import psycopg
    from django.conf import settings

    db = settings.DATABASES["default"]
    with psycopg.connect(
        host=db["HOST"], port=db["PORT"], user=db["USER"], dbname="postgres", autocommit=True
    ) as conn:
        if not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", [db["NAME"]]
        ).fetchone():
            conn.execute(f'CREATE DATABASE "{db["NAME"]}"')


def main() -> None:
    import django

    django.setup()
    create_database()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from django_jobs.models import Job

    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_jobs_job")
        if cursor.fetchone()[0] != ROWS:
            print(f"filling django_jobs_job with {ROWS:,} rows …", flush=True)
            started = time.perf_counter()
            cursor.execute("TRUNCATE django_jobs_job")
            cursor.execute(FILL.replace("%s", str(int(ROWS))))
            cursor.execute("VACUUM ANALYZE django_jobs_job")
            print(f"  done in {time.perf_counter() - started:.1f} s")
        cursor.execute("SELECT version()")
        version = cursor.fetchone()[0].split(",")[0]
    user, _ = User.objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    job = Job.objects.failed().values_list("pk", flat=True).first()
    day = timezone.localtime(timezone.now()).strftime("%Y-%m-%d")
    print(f"{version}, {Job.objects.count():,} rows; median of {RUNS} requests\n")
    print(f"{'page':<26} {'median':>8} {'queries':>8} {'slowest query':>14}")
    for label, url in PAGES:
        url = url.format(job=job, day=day)
        client.get(url)  # warm caches, as a second visit would
        timings, slowest, count = [], 0.0, 0
        for _ in range(RUNS):
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                response = client.get(url)
                timings.append(time.perf_counter() - started)
            assert response.status_code == 200, (url, response.status_code)
            count = len(queries.captured_queries)
            slowest = max(slowest, max(float(q["time"]) for q in queries.captured_queries))
        median = statistics.median(timings) * 1000
        print(f"{label:<26} {median:>6.0f}ms {count:>8} {slowest * 1000:>12.0f}ms")


if __name__ == "__main__":
    main()
