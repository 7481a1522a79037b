"""Pruning on PostgreSQL: ``python -m bench.prune [--rows N] [--jobs N]``.

Fills ``django_jobs_job`` in a fresh ``bench_prune`` database with N kept succeeded rows
(finished 50 ms apart, all more than two days ago, as ``DELETE_SUCCESSFUL_JOBS = False``
leaves them), then measures:

1. the no-op drain rate (one ``jobs worker`` process, ``--jobs`` jobs) on the empty table
   first, then beside those rows;
2. one :func:`django_jobs.pruning.prune` of them: total time, number of batches and the
   longest batch (its SELECT and DELETE, each its own transaction);
3. the same drain again right after the prune (no manual VACUUM: the dead tuples are
   there, and autovacuum may be at work on them), then once more after ``VACUUM ANALYZE``.

Prints one ``BENCH-RESULT`` line. Not part of ``bench/run.py`` or ``make bench-smoke``:
a million rows take a few minutes to build and prune.
"""

from __future__ import annotations

import argparse
import time

from bench import lib, ours

DB = "bench_prune"
KEPT_NAME = "bench.kept"


def add_kept_rows(rows: int) -> None:
    from django.db import connection

    cols = (
        "name, args, kwargs, queue, priority, attempts, last_error, finished_at,"
        " progress_message, created_at, updated_at"
    )
    when = "now() - interval '2 days' - g * interval '50 ms'"
    sql = (
        f"INSERT INTO django_jobs_job ({cols}) SELECT '{KEPT_NAME}', '[]', '{{}}', 'default',"
        f" 50, 1, '', {when}, '', {when}, {when} FROM generate_series(1, {int(rows)}) AS g"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        cursor.execute("VACUUM ANALYZE django_jobs_job")


def autovacuum_running() -> bool:
    """Whether autovacuum is at work on the jobs table (it follows a big delete)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_progress_vacuum WHERE relid = 'django_jobs_job'::regclass"
        )
        return bool(cursor.fetchone()[0])


def drain(jobs: int, args: argparse.Namespace) -> dict:
    definition = ours.jobs_module().noop
    ours.fill(definition, jobs)
    conn = lib.connect("postgres", DB)
    try:
        return lib.time_drain(
            conn,
            ours.count_sql(definition.name),
            jobs,
            lambda: lib.processes(ours.worker_commands(1), ours.worker_env(args), log=args.log),
            log=args.log,
        )
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="kept succeeded rows")
    parser.add_argument("--jobs", type=int, default=10_000, help="no-op jobs per drain")
    parser.add_argument("--batch-size", type=int, default=1000, help='PRUNE["BATCH_SIZE"]')
    args = parser.parse_args(argv)
    # What ours.worker_env reads: the bench project's one worker group, defaults.
    args.engine, args.db, args.threads, args.async_concurrency, args.batch = (
        "postgres", DB, 1, 10, 100,
    )  # fmt: skip
    args.log = "/tmp/bench_prune"
    ours.setup_django("postgres", DB)
    from django.conf import settings
    from django.test.utils import override_settings

    from django_jobs.models import Job
    from django_jobs.pruning import prune

    empty = drain(args.jobs, args)
    started = time.perf_counter()
    add_kept_rows(args.rows)
    fill_seconds = time.perf_counter() - started
    before = drain(args.jobs, args)
    with override_settings(JOBS={**settings.JOBS, "PRUNE": {"BATCH_SIZE": args.batch_size}}):
        report = prune()
    left = Job.objects.filter(name=KEPT_NAME).count()
    vacuuming_before_after = autovacuum_running()
    after = drain(args.jobs, args)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE django_jobs_job")
    vacuumed = drain(args.jobs, args)
    lib.emit(
        {
            "rows": args.rows,
            "fill_seconds": round(fill_seconds, 1),
            "drain_empty": round(empty["rate"]),
            "drain_empty_steady": round(empty["steady_rate"]),
            "drain_before": round(before["rate"]),
            "drain_before_steady": round(before["steady_rate"]),
            "prune_seconds": round(report.seconds, 2),
            "pruned": report.succeeded,
            "left": left,
            "batches": report.batches,
            "batch_size": args.batch_size,
            "longest_batch_ms": round(report.longest_batch * 1000, 1),
            "prune_rows_per_s": round(report.succeeded / report.seconds) if report.seconds else 0,
            "drain_after": round(after["rate"]),
            "drain_after_steady": round(after["steady_rate"]),
            "autovacuum_at_drain_after": vacuuming_before_after,
            "drain_after_vacuum": round(vacuumed["rate"]),
            "drain_after_vacuum_steady": round(vacuumed["steady_rate"]),
            "jobs_per_drain": args.jobs,
        }
    )


if __name__ == "__main__":
    main()
