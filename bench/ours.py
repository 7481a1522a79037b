"""Driver for django_jobs: ``python -m bench.ours SCENARIO --engine E --jobs N [...]``.

Runs in the interpreter that is being measured (``run.py --ours-python``) against the
repository's django_jobs, with the bench project in ``bench/project``. Workers are the
real ``python -m django jobs worker --index 0 --id K`` processes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from bench import cli, lib

SETTINGS = "bench.project.settings"
EXTRA_ROWS = 1_000_000
EXTRA_NAME = "bench.extra"


def setup_django(engine: str, db: str, fresh: bool = True) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    os.environ["BENCH_ENGINE"] = engine
    os.environ["BENCH_DB"] = db
    if fresh:
        lib.reset_database(engine, db)
    import django

    django.setup()
    if fresh:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


def worker_env(args, **extra) -> dict:
    return lib.python_env(
        DJANGO_SETTINGS_MODULE=SETTINGS,
        BENCH_ENGINE=args.engine,
        BENCH_DB=args.db,
        BENCH_THREADS=args.threads,
        BENCH_ASYNC=args.async_concurrency,
        BENCH_BATCH=args.batch,
        **extra,
    )


def worker_commands(procs: int) -> list[list[str]]:
    return [
        [sys.executable, "-m", "django", "jobs", "worker", "--index", "0", "--id", str(k)]
        for k in range(procs)
    ]


def count_sql(name: str) -> str:
    from django_jobs.models import Job

    return f"SELECT count(*) FROM {Job._meta.db_table} WHERE name = '{name}'"


def jobs_module():
    from bench.project.benchapp import jobs

    return jobs


def limited_jobs():
    from bench.project.benchapp import limited

    return limited


def enqueue(args) -> dict:
    if args.kind == "typed":
        os.environ["BENCH_TYPED"] = "1"  # declares noop_typed (bench/project/benchapp/typed.py)
    setup_django(args.engine, args.db)
    from django_jobs import later, later_many

    jobs = jobs_module()
    noop = jobs.noop_typed if args.kind == "typed" else jobs.noop
    call = jobs.typed_call if args.kind == "typed" else _plain_call
    n = args.jobs
    with lib.request_span():
        return _enqueue(args, later, later_many, noop, n, call)


def _plain_call(i: int) -> list:
    return [i]


def _enqueue(args, later, later_many, noop, n: int, call=_plain_call) -> dict:
    if args.scenario == "enqueue":
        start = time.perf_counter()
        for i in range(n):
            later(noop, call(i))
        seconds = time.perf_counter() - start
    else:
        start = time.perf_counter()
        for first in range(0, n, 1000):
            later_many(noop, [call(i) for i in range(first, min(n, first + 1000))])
        seconds = time.perf_counter() - start
    return {"jobs": n, "seconds": seconds, "rate": n / seconds}


def fill(definition, n: int, call=_plain_call) -> None:
    from django_jobs import later_many

    for first in range(0, n, 1000):
        later_many(definition, [call(i) for i in range(first, min(n, first + 1000))])


def drain(args) -> dict:
    big = args.scenario == "scale"
    if args.kind == "limited":
        # As in the workers: jobs.py declares noop_limited while Django loads (a job
        # declared later could not be enqueued: django_jobs.discovery).
        os.environ["BENCH_LIMITS"] = "1"
    if args.kind == "typed":
        os.environ["BENCH_TYPED"] = "1"  # as its workers do (worker_env)
    setup_django(args.engine, args.db, fresh=not (big and extra_rows_ready(args)))
    if big and extra_rows(args) != EXTRA_ROWS:
        add_extra_rows(args.engine)
    jobs = jobs_module()
    if args.kind == "limited":
        definition = limited_jobs().noop_limited
    else:
        # noop_typed exists only where BENCH_TYPED declared it: looked up by name.
        name = {"noop": "noop", "sleep": "sleep10", "async": "asleep10", "typed": "noop_typed"}
        definition = getattr(jobs, name[args.kind])
    with lib.request_span():
        fill(definition, args.jobs, jobs.typed_call if args.kind == "typed" else _plain_call)
    conn = lib.connect(args.engine, args.db)
    # Workers declare the limited job only for its own drain: any declared limit makes
    # every claim count slots, and the other drains measure the plain claim.
    # The typed job likewise: declared, it costs every worker's start its checks' pydantic.
    env = worker_env(
        args,
        **({"BENCH_LIMITS": "1"} if args.kind == "limited" else {}),
        **({"BENCH_TYPED": "1"} if args.kind == "typed" else {}),
    )
    log = f"/tmp/bench_ours_{args.engine}"
    rss: dict[str, float] = {}

    def sample_rss(left: int, procs) -> None:
        done = args.jobs - left
        if args.scenario != "memory" or not procs or procs[0].poll() is not None:
            return
        if done >= 1000 and "rss_1k_mb" not in rss:
            rss["rss_1k_mb"] = lib.rss_mb(procs[0].pid)
            rss["done_at_1k"] = done
        if left == 0:
            rss["rss_end_mb"] = lib.rss_mb(procs[0].pid)

    result = lib.time_drain(
        conn,
        count_sql(definition.name),
        args.jobs,
        lambda: lib.processes(worker_commands(args.procs), env, log=log),
        log=log,
        on_poll=sample_rss,
    )
    conn.close()
    result.update(rss)
    result["config"] = config_label(args)
    return result


def config_label(args) -> str:
    parts = [f"{args.procs} process{'es' if args.procs > 1 else ''}"]
    if args.kind == "sleep" and args.threads > 1:
        parts.append(f"THREADS={args.threads}")
    if args.kind == "async":
        parts.append(f"ASYNC_CONCURRENCY={args.async_concurrency}")
    if args.batch != 100:
        parts.append(f"BATCH_SIZE={args.batch}")
    return ", ".join(parts)


# -- 1,000,000 extra rows -------------------------------------------------------------


#: Written once the extra rows are in: reading it is one row, where counting the million
#: rows (twice per scale run) pushed the drain's pages out of MariaDB's buffer pool.
MARKER = "bench_extra_rows"


def extra_rows(args) -> int:
    try:
        conn = lib.connect(args.engine, args.db)
    except Exception:
        return -1
    try:
        return lib.scalar(conn, f"SELECT n FROM {MARKER}")
    except Exception:
        return -1
    finally:
        conn.close()


def extra_rows_ready(args) -> bool:
    """The big table is built once per run (run.py drops it first) and reused by repeats."""
    if args.engine == "sqlite" and not os.path.exists(lib.sqlite_path(args.db)):
        return False
    return extra_rows(args) == EXTRA_ROWS


def add_extra_rows(engine: str) -> None:
    """Half scheduled 30 days ahead, half failed: rows a worker must never look at."""
    from django.db import connection

    cols = (
        "name, args, kwargs, queue, priority, attempts, run_at, last_error, failed_at,"
        " progress_message, created_at, updated_at"
    )
    if engine == "postgres":
        source = (
            "SELECT '{n}', '[]', '{{}}', 'default', 50, CASE WHEN g % 2 = 0 THEN 0 ELSE 24 END,"
            " CASE WHEN g % 2 = 0 THEN now() + interval '30 days' END,"
            " CASE WHEN g % 2 = 0 THEN '' ELSE 'ValueError: boom' END,"
            " CASE WHEN g % 2 = 0 THEN NULL ELSE now() END, '', now(), now()"
            " FROM generate_series(1, {rows}) AS g"
        )
    elif engine == "mysql":
        source = (
            "SELECT '{n}', '[]', '{{}}', 'default', 50, IF(seq % 2 = 0, 0, 24),"
            " IF(seq % 2 = 0, NOW(6) + INTERVAL 30 DAY, NULL),"
            " IF(seq % 2 = 0, '', 'ValueError: boom'), IF(seq % 2 = 0, NULL, NOW(6)), '',"
            " NOW(6), NOW(6) FROM seq_1_to_{rows}"
        )
    else:
        source = (
            "SELECT '{n}', '[]', '{{}}', 'default', 50, CASE WHEN x % 2 = 0 THEN 0 ELSE 24 END,"
            " CASE WHEN x % 2 = 0 THEN strftime('%Y-%m-%d %H:%M:%f', 'now', '+30 days') END,"
            " CASE WHEN x % 2 = 0 THEN '' ELSE 'ValueError: boom' END,"
            " CASE WHEN x % 2 = 0 THEN NULL ELSE strftime('%Y-%m-%d %H:%M:%f', 'now') END,"
            " '', strftime('%Y-%m-%d %H:%M:%f', 'now'), strftime('%Y-%m-%d %H:%M:%f', 'now')"
            " FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c"
            " WHERE x < {rows}) SELECT x FROM c)"
        )
    sql = f"INSERT INTO django_jobs_job ({cols}) " + source.format(n=EXTRA_NAME, rows=EXTRA_ROWS)
    with connection.cursor() as cursor:
        cursor.execute(sql)  # no parameters: no %-interpolation either
        cursor.execute(f"CREATE TABLE {MARKER} (n integer)")
        cursor.execute(
            f"INSERT INTO {MARKER} SELECT count(*) FROM django_jobs_job WHERE name = '{EXTRA_NAME}'"
        )
        lib.analyze_jobs(cursor, engine)


# -- pickup latency ---------------------------------------------------------------------


def latency(args) -> dict:
    setup_django(args.engine, args.db)
    from django_jobs import later

    probe = jobs_module().pickup
    path = f"/tmp/bench_pickup_ours_{args.engine}.txt"
    pickup = lib.PickupFile(path)
    env = worker_env(args, BENCH_PICKUP_FILE=path)
    log = f"/tmp/bench_ours_latency_{args.engine}"

    def enqueue_one(key: int) -> float:
        later(probe, [key])
        return time.time()

    with lib.processes(worker_commands(1), env, log=log) as procs:
        result = lib.measure_pickup(
            enqueue_one, pickup, args.samples, args.budget, procs, log, args.jitter
        )
    result["config"] = "1 process, default SLEEP_DELAY (5 s)"
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return cli.driver_args(
        argv,
        ["enqueue", "bulk", "drain", "scale", "memory", "latency"],
        kinds=["noop", "sleep", "async", "limited", "typed"],
        options=[
            ("--threads", {"type": int, "default": 1}),
            ("--async-concurrency", {"type": int, "default": 10}),
            ("--batch", {"type": int, "default": 100}),
        ],
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.scenario in ("enqueue", "bulk"):
        result = enqueue(args)
    elif args.scenario == "latency":
        result = latency(args)
    else:
        result = drain(args)
    lib.emit(result)


if __name__ == "__main__":
    main()
