"""The jobs admin on a big table: ``python -m bench.admin_changelist --engine E [...]``.

Fills the job table of a benchmark database of its own (``bench_admin`` by default,
built once per row count and reused) with ``--rows`` jobs: 70 % succeeded (kept), 15 %
ready, 10 % due later, 5 % failed, one in 10,000 running, over four names, three queues and
five priorities. Then it requests each page through Django's test client as a logged-in
superuser (the test project's settings and URLs: session, auth and message middleware,
the admin's default ordering and filters), so a timing is the server side of the whole
request: middleware, queries and template rendering. Each page is requested once to warm
the caches, then ``--repeat`` times; the table shows the median and the fastest request,
the median CPU time of this process per request (the Python side: a measure that a loaded
machine disturbs less than wall time), the number of queries and the slowest query (its
median over the repeats); the BENCH-RESULT line has them all, per page.

    python -m bench.admin_changelist --engine postgres                 # 1,000,000 rows
    python -m bench.admin_changelist --engine mysql --rows 200000 --repeat 5
    python -m bench.admin_changelist --engine postgres --explain       # plans of page 1 / 500

Not part of ``bench/run.py``: filling a million rows takes a minute or more per engine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from bench import lib

#: (label, URL): the first and 500th page of the default list are the targets (issue 21).
PAGES = [
    ("job list, first page", "/admin/django_jobs/job/"),
    ("job list, page 500", "/admin/django_jobs/job/?p=500"),
    ("status = ready", "/admin/django_jobs/job/?status=ready"),
    ("status = running", "/admin/django_jobs/job/?status=running"),
    ("status = failed", "/admin/django_jobs/job/?status=failed"),
    ("status = succeeded", "/admin/django_jobs/job/?status=succeeded"),
    ("queue = email", "/admin/django_jobs/job/?queue=email"),
    ("job name", "/admin/django_jobs/job/?name=app.jobs.resize_image"),
    ("one job's page", "/admin/django_jobs/job/{job}/change/"),
    ("queue dashboard", "/admin/django_jobs/job/dashboard/"),
    ("failed jobs by error", "/admin/django_jobs/job/failed/"),
]
NAMES = ("send_email", "resize_image", "sync_account", "daily_report")
QUEUES = ("default", "email", "slow")


def configure(engine: str, db: str) -> None:
    """The test project's settings on the benchmark database ``db``."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    os.environ["DJANGO_JOBS_DB"] = engine
    os.environ["PGDATABASE"] = db
    os.environ["MYSQL_DATABASE"] = db
    os.environ["DJANGO_JOBS_SQLITE_NAME"] = lib.sqlite_path(db)


def create_database(engine: str, db: str) -> None:
    if not db.startswith("bench_"):
        raise SystemExit(f"refusing to use {db!r}: benchmark databases start with bench_")
    if engine == "postgres":
        import psycopg

        with psycopg.connect(lib.pg_dsn("postgres"), autocommit=True) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [db]).fetchone():
                conn.execute(f'CREATE DATABASE "{db}"')
    elif engine == "mysql":
        import MySQLdb

        conn = MySQLdb.connect(host=lib.MY["host"], port=lib.MY["port"], user=lib.MY["user"])
        conn.cursor().execute(f"CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4")
        conn.close()


def fill_sql(engine: str, rows: int) -> str:
    """One INSERT … SELECT of ``rows`` jobs in the mix the module docstring describes."""
    if engine == "postgres":
        series = f"generate_series(1, {rows}) AS g(i)"
        args, kwargs = "('[' || i || ']')::jsonb", "'{}'::jsonb"
    elif engine == "mysql":
        series = f"(SELECT seq AS i FROM seq_1_to_{rows}) AS g"
        args, kwargs = "CONCAT('[', i, ']')", "'{}'"
    else:
        series = (
            f"(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {rows})"
            " SELECT i FROM c) AS g"
        )
        args, kwargs = "'[' || i || ']'", "'{}'"

    def text(*parts: str) -> str:
        return f"CONCAT({', '.join(parts)})" if engine == "mysql" else " || ".join(parts)

    def choose(values: tuple[str, ...], key: str) -> str:
        cases = " ".join(f"WHEN {n} THEN '{v}'" for n, v in enumerate(values))
        return f"CASE {key} {cases} END"

    def at(sign: str, seconds: str) -> str:
        if engine == "postgres":
            return f"now() {sign} ({seconds}) * interval '1 second'"
        if engine == "mysql":
            return f"NOW(6) {sign} INTERVAL ({seconds}) SECOND"
        return f"strftime('%Y-%m-%d %H:%M:%f', 'now', '{sign}' || ({seconds}) || ' seconds')"

    kind = (
        "CASE WHEN i % 10000 = 0 THEN 'running' WHEN i % 100 < 70 THEN 'succeeded'"
        " WHEN i % 100 < 85 THEN 'ready' WHEN i % 100 < 95 THEN 'later' ELSE 'failed' END"
    )
    error = text(
        "'Traceback (most recent call last):\nTimeoutError: api-'",
        "i % 7",
        "'.example.com timed out'",
    )
    name = text("'app.jobs.'", choose(NAMES, "i % 4"))
    return (
        "INSERT INTO django_jobs_job (name, args, kwargs, queue, priority, attempts, run_at,"
        " locked_at, locked_by, last_error, failed_at, finished_at, progress_message,"
        " created_at, updated_at)"
        f" SELECT {name}, {args}, {kwargs},"
        f" {choose(QUEUES, 'i % 3')}, (i % 5) * 10,"
        " CASE WHEN k = 'failed' THEN 3 WHEN k IN ('succeeded', 'running') THEN 1 ELSE 0 END,"
        f" CASE k WHEN 'failed' THEN NULL WHEN 'later' THEN {at('+', 'i % 86400 + 60')}"
        f" ELSE {at('-', 'i % 86400')} END,"
        f" CASE WHEN k = 'running' THEN {at('-', '30')} END,"
        " CASE WHEN k = 'running' THEN 'bench-worker' END,"
        f" CASE WHEN k = 'failed' THEN {error} ELSE '' END,"
        f" CASE WHEN k = 'failed' THEN {at('-', 'i % 604800')} END,"
        f" CASE WHEN k = 'succeeded' THEN {at('-', 'i % 604800')} END,"
        f" '', {at('-', 'i % 604800 + 60')}, {at('-', 'i % 604800')}"
        f" FROM (SELECT i, {kind} AS k FROM {series}) AS s"
    )


def ensure_rows(engine: str, rows: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_jobs_job")
        if cursor.fetchone()[0] == rows:
            return
        print(f"filling django_jobs_job with {rows:,} rows …", file=sys.stderr, flush=True)
        started = time.perf_counter()
        cursor.execute("DELETE FROM django_jobs_job")
        cursor.execute(fill_sql(engine, rows))
        lib.analyze_jobs(cursor, engine)
        print(f"  done in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)


def explain(url: str) -> None:
    """Print the plan of every query a request of ``url`` makes (PostgreSQL: with buffers)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = logged_in_client()
    with CaptureQueriesContext(connection) as queries:
        client.get(url)
    prefix = {
        "postgresql": "EXPLAIN (ANALYZE, BUFFERS) ",
        "mysql": "ANALYZE ",
        "sqlite": "EXPLAIN QUERY PLAN ",
    }[connection.vendor]
    for query in queries.captured_queries:
        sql = query["sql"]
        if not sql.lstrip().upper().startswith("SELECT") or "django_jobs_job" not in sql:
            continue
        print(f"\n-- {float(query['time']) * 1000:.1f} ms: {sql[:300]}")
        with connection.cursor() as cursor:
            cursor.execute(prefix + sql)
            for row in cursor.fetchall():
                print("   ", " | ".join(str(c) for c in row))


def logged_in_client():
    from django.contrib.auth.models import User
    from django.test import Client

    user, _ = User.objects.get_or_create(
        username="bench", defaults={"is_staff": True, "is_superuser": True}
    )
    client = Client()
    client.force_login(user)
    return client


def measure(repeat: int) -> list[dict]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from django_jobs.models import Job

    client = logged_in_client()
    job = Job.objects.failed().values_list("pk", flat=True).first()
    results = []
    for label, url in PAGES:
        url = url.format(job=job)
        first = client.get(url)  # warm caches, as a second visit would
        if first.status_code == 302 and "e=1" in first.get("Location", ""):
            # Past the last page the count allows ("more than 10,000" on an engine
            # without a size estimate): the admin sends the user back to the list.
            results.append({"page": label, "url": url, "skipped": "beyond the counted pages"})
            continue
        if first.status_code != 200:
            raise RuntimeError(f"{url}: HTTP {first.status_code}")
        timings, cpu, slowest, count = [], [], [], 0
        for _ in range(repeat):
            with CaptureQueriesContext(connection) as queries:
                started, cpu_started = time.perf_counter(), time.process_time()
                response = client.get(url)
                timings.append(time.perf_counter() - started)
                cpu.append(time.process_time() - cpu_started)
            assert response.status_code == 200, (url, response.status_code)
            count = len(queries.captured_queries)
            slowest.append(max(float(q["time"]) for q in queries.captured_queries))
        results.append(
            {
                "page": label,
                "url": url,
                "median_ms": round(statistics.median(timings) * 1000, 1),
                "min_ms": round(min(timings) * 1000, 1),
                "python_cpu_ms": round(statistics.median(cpu) * 1000, 1),
                "queries": count,
                "slowest_query_ms": round(statistics.median(slowest) * 1000, 1),
            }
        )
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--engine", required=True, choices=["sqlite", "postgres", "mysql"])
    parser.add_argument("--db", default="bench_admin")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--explain", action="store_true", help="plans of page 1 and 500")
    args = parser.parse_args(argv)
    configure(args.engine, args.db)
    create_database(args.engine, args.db)
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    ensure_rows(args.engine, args.rows)
    if args.explain:
        for _, url in PAGES[:2]:
            explain(url)
        return
    load = os.getloadavg()[0]
    results = measure(args.repeat)
    print(
        f"{connection.display_name} {'.'.join(map(str, connection.get_database_version()))}"
        f", {args.rows:,} rows, median of {args.repeat} requests, load average {load:.1f}\n"
    )
    print(
        f"{'page':<24} {'median':>9} {'min':>9} {'Python CPU':>11} {'queries':>8}"
        f" {'slowest query':>14}"
    )
    for r in results:
        if "skipped" in r:
            print(f"{r['page']:<24} {r['skipped']}")
            continue
        print(
            f"{r['page']:<24} {r['median_ms']:>7.1f}ms {r['min_ms']:>7.1f}ms"
            f" {r['python_cpu_ms']:>9.1f}ms {r['queries']:>8} {r['slowest_query_ms']:>12.1f}ms"
        )
    lib.emit(
        {
            "engine": args.engine,
            "rows": args.rows,
            "repeat": args.repeat,
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "loadavg_before": round(load, 2),
            "pages": results,
        }
    )


if __name__ == "__main__":
    main()
