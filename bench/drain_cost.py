"""Where a no-op drain's time goes, in measures that do not depend on the machine's load.

    python -m bench.drain_cost --engine postgres --jobs 10000            # CPU per job
    python -m bench.drain_cost --engine postgres --jobs 10000 --count    # statements
    python -m bench.drain_cost --engine postgres --jobs 10000 --profile 30
    python -m bench.drain_cost --engine postgres --jobs 20000 --kind async --batch 250

``--kind async`` drains the 10 ms ``async def`` job of the sleep_async case instead, with
``--async-concurrency`` slots (250, bench/plan.py's OURS_ASYNC), and adds the hand-offs
between the worker's thread and its event loop per job (batches sent, reports back).

Stores ``--jobs`` no-op jobs (``later_many``), then drains them in this process with one
real :class:`~django_jobs.runtime.worker.Worker` (``workoff``: it returns once nothing is
ready) of the benchmark project's worker group, and prints:

* the worker process's CPU time per job (every thread: the claiming loop, the flusher,
  heartbeats, controls), from ``time.process_time``;
* on PostgreSQL, the CPU time of the server backends serving the bench database per job,
  read with psutil just before the worker closes its connections (a backend's own start,
  a few milliseconds, is included);
* with ``--count``, statements per job and per claim by kind, and transactions (each
  autocommit statement, each committed ``atomic`` block) per job: counting wraps every
  cursor, so the CPU figures of that run are not the plain ones;
* with ``--profile N``, the N costliest functions by own time (cProfile, main thread).

CPU time hardly moves with what else runs on the machine, unlike wall-clock time: use
this to compare two trees. Prints one ``BENCH-RESULT`` line. Timings are never asserted.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import threading
import time
from collections import Counter

from bench import lib

DB = "bench_drain_cost"


def backend_cpu(db: str) -> float | None:
    """CPU seconds the PostgreSQL backends connected to ``db`` have used so far."""
    import psutil

    conn = lib.connect("postgres", "postgres")
    try:
        cur = conn.cursor()
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [db],
        )
        pids = [row[0] for row in cur.fetchall()]
    finally:
        conn.close()
    total = 0.0
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
    return total


class Counting:
    """Counts statements (by first words and thread) and transactions, engine-agnostic."""

    def __init__(self) -> None:
        self.statements: Counter[str] = Counter()
        self.transactions = 0
        self.lock = threading.Lock()

    def install(self) -> None:
        from django.db.backends.base.base import BaseDatabaseWrapper
        from django.db.backends.utils import CursorWrapper

        counting = self
        execute, executemany, commit = (
            CursorWrapper.execute, CursorWrapper.executemany, BaseDatabaseWrapper.commit,
        )  # fmt: skip

        def note(cursor, sql) -> None:
            words = " ".join(str(sql).split()[:2]).upper()
            key = f"{threading.current_thread().name}: {words}"
            with counting.lock:
                counting.statements[key] += 1
                if not cursor.db.in_atomic_block and cursor.db.get_autocommit():
                    counting.transactions += 1

        def counted_execute(cursor, sql, params=None):
            note(cursor, sql)
            return execute(cursor, sql, params)

        def counted_executemany(cursor, sql, param_list):
            note(cursor, sql)
            return executemany(cursor, sql, param_list)

        def counted_commit(db):
            with counting.lock:
                counting.transactions += 1
            return commit(db)

        CursorWrapper.execute = counted_execute
        CursorWrapper.executemany = counted_executemany
        BaseDatabaseWrapper.commit = counted_commit


#: Where a profiled function's own time is counted, by the first match in its file path.
PACKAGES = ("django_jobs", "psycopg", "MySQLdb", "django", "asgiref", "sqlite3")


def shares(stats: pstats.Stats) -> dict[str, float]:
    """Each package's share of the profiled own time, waiting for the database apart
    (psycopg's ``wait`` and the selects: time the process does not spend on a CPU)."""
    totals: Counter[str] = Counter()
    for (path, _, function), (_, _, own, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        if (
            function in ("wait", "<method 'poll' of 'select.epoll' objects>")
            or "select" in function
        ):
            key = "waiting"
        else:
            key = next((p for p in PACKAGES if f"/{p}/" in path or path.startswith(p)), "other")
        totals[key] += own
    busy = sum(v for k, v in totals.items() if k != "waiting") or 1.0
    return {k: round(100 * v / busy, 1) for k, v in totals.most_common() if k != "waiting"}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--engine", default="postgres", choices=["sqlite", "postgres", "mysql"])
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--db", default=DB)
    p.add_argument("--batch", type=int, default=100, help="BATCH_SIZE of the worker group")
    p.add_argument("--kind", default="noop", choices=["noop", "async"])
    p.add_argument("--async-concurrency", type=int, default=250)
    p.add_argument("--count", action="store_true", help="count statements and transactions")
    p.add_argument("--profile", type=int, default=0, help="print the N costliest functions")
    args = p.parse_args(argv)

    import os

    os.environ["BENCH_BATCH"] = str(args.batch)
    os.environ["BENCH_ASYNC"] = str(args.async_concurrency)
    from bench.ours import fill, jobs_module, setup_django

    setup_django(args.engine, args.db)
    from django.db import connections

    from django_jobs.conf import jobs_settings
    from django_jobs.runtime import worker as worker_module

    fill(jobs_module().asleep10 if args.kind == "async" else jobs_module().noop, args.jobs)
    connections.close_all()
    counting = Counting()
    if args.count:
        counting.install()
    server: dict[str, float | None] = {}
    shutdown = worker_module.Worker._shutdown

    def measured_shutdown(self) -> None:
        # Before the worker closes its connections: their backends are still there.
        server["cpu"] = backend_cpu(args.db) if args.engine == "postgres" else None
        server["process"] = time.process_time()
        shutdown(self)

    worker_module.Worker._shutdown = measured_shutdown
    worker = worker_module.Worker(jobs_settings().workers[0], "cost", workoff=True)
    profiler = cProfile.Profile() if args.profile else None
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if profiler is not None:
        profiler.enable()
    worker.run()
    if profiler is not None:
        profiler.disable()
    wall = time.perf_counter() - wall0
    n = worker.jobs_done
    result = {
        "engine": args.engine,
        "kind": args.kind,
        "jobs": n,
        "wall_s": round(wall, 3),
        "worker_cpu_us_per_job": round(1e6 * (server["process"] - cpu0) / max(n, 1), 1),
    }
    if args.kind == "async":
        # (an older tree counts none: it handed over each job, and back, on its own)
        crossings = getattr(worker.asyncs, "sends", n) + getattr(worker.asyncs, "reports", n)
        result["loop_handoffs_per_job"] = round(crossings / max(n, 1), 4)
    if server.get("cpu") is not None:
        result["pg_cpu_us_per_job"] = round(1e6 * server["cpu"] / max(n, 1), 1)
    if args.count:
        result["transactions_per_job"] = round(counting.transactions / max(n, 1), 4)
        result["statements_per_job"] = {
            key: round(count / max(n, 1), 4) for key, count in counting.statements.most_common()
        }
    lib.drop_database(args.engine, args.db)
    if profiler is not None:
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(args.profile)
        print(out.getvalue())
        result["profile_share"] = shares(stats)
    lib.emit(result)
    return result


if __name__ == "__main__":
    main()
