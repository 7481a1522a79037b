"""The plain-SQL floor on PostgreSQL: what psycopg and a minimal job table can do.

``python -m bench.floor --jobs N`` prints one BENCH-RESULT line with rows/s for: INSERT one
per transaction, INSERT 1,000 per transaction (one multi-row statement), claim 1 and claim
100 per transaction (``FOR UPDATE SKIP LOCKED``), and the worker loop claim + delete as one
batch of 1, 10 and 100 rows, with one and with two processes. No Python framework is
involved: this is the ceiling any queue on this machine works under. The loops start
timing once their processes are connected, so start-up is not in these figures.
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

from bench import lib

DB = "bench_floor"
TABLE = """
CREATE TABLE job (
    id bigserial PRIMARY KEY,
    name text NOT NULL,
    args jsonb NOT NULL,
    priority int NOT NULL DEFAULT 0,
    run_at timestamptz NOT NULL DEFAULT now(),
    locked_at timestamptz,
    locked_by text
);
CREATE INDEX job_claim ON job (priority, run_at, id) WHERE locked_at IS NULL;
"""
CLAIM = (
    "UPDATE job SET locked_at = now(), locked_by = %s WHERE id IN (SELECT id FROM job"
    " WHERE locked_at IS NULL AND run_at <= now() ORDER BY priority, run_at, id"
    " LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING id, name, args"
)


def connect():
    import psycopg

    return psycopg.connect(lib.pg_dsn(DB), autocommit=True)


def fresh() -> None:
    lib.reset_database("postgres", DB)
    with connect() as conn:
        conn.execute(TABLE)


def fill(n: int) -> None:
    with connect() as conn:
        conn.execute(
            "INSERT INTO job (name, args) SELECT 'noop', jsonb_build_array(g)"
            " FROM generate_series(1, %s) AS g",
            [n],
        )
        conn.execute("VACUUM ANALYZE job")


def insert_one(n: int) -> float:
    fresh()
    with connect() as conn:
        start = time.perf_counter()
        for i in range(n):
            conn.execute("INSERT INTO job (name, args) VALUES (%s, %s)", ["noop", f"[{i}]"])
        return n / (time.perf_counter() - start)


def insert_bulk(n: int) -> float:
    fresh()
    with connect() as conn:
        start = time.perf_counter()
        for first in range(0, n, 1000):
            count = min(1000, n - first)
            values = ", ".join(["(%s, %s)"] * count)
            params = []
            for i in range(first, first + count):
                params += ["noop", f"[{i}]"]
            conn.execute(f"INSERT INTO job (name, args) VALUES {values}", params)
        return n / (time.perf_counter() - start)


def claim(n: int, size: int) -> float:
    fresh()
    fill(n)
    with connect() as conn:
        start = time.perf_counter()
        while conn.execute(CLAIM, ["w", size]).fetchall():
            pass
        return n / (time.perf_counter() - start)


def _loop(size: int, ready, go) -> None:
    with connect() as conn:
        ready.set()
        go.wait()
        while True:
            rows = conn.execute(CLAIM, ["w", size]).fetchall()
            if not rows:
                return
            conn.execute("DELETE FROM job WHERE id = ANY(%s)", [[row[0] for row in rows]])


def loop(n: int, size: int, procs: int) -> float:
    """Claim ``size`` + delete them as one batch, in ``procs`` processes, until empty."""
    fresh()
    fill(n)
    ctx = multiprocessing.get_context("fork")
    go = ctx.Event()
    readies = [ctx.Event() for _ in range(procs)]
    workers = [ctx.Process(target=_loop, args=(size, r, go)) for r in readies]
    for w in workers:
        w.start()
    for r in readies:
        r.wait()
    start = time.perf_counter()
    go.set()
    for w in workers:
        w.join()
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> None:
    global DB
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--db", default=DB, help="database name (bench_…; dropped and created)")
    parser.add_argument("--only", default="", help="comma list of steps (default: all)")
    args = parser.parse_args(argv)
    DB = args.db
    n = args.jobs
    steps = {
        "insert_one": lambda: insert_one(n),
        "insert_1000": lambda: insert_bulk(n),
        "claim_1": lambda: claim(n, 1),
        "claim_100": lambda: claim(n, 100),
        "loop_1_p1": lambda: loop(n, 1, 1),
        "loop_1_p2": lambda: loop(n, 1, 2),
        "loop_10_p1": lambda: loop(n, 10, 1),
        "loop_10_p2": lambda: loop(n, 10, 2),
        # The no-op drains' floor: a django_jobs worker claims BATCH_SIZE (100) per statement.
        "loop_100_p1": lambda: loop(n, 100, 1),
        "loop_100_p2": lambda: loop(n, 100, 2),
    }
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - set(steps)
    if unknown:
        parser.error(f"unknown steps {sorted(unknown)}; known: {', '.join(steps)}")
    result = {key: step() for key, step in steps.items() if not only or key in only}
    lib.drop_database("postgres", DB)
    lib.emit(result)


if __name__ == "__main__":
    main()
