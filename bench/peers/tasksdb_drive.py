"""Driver for django-tasks-db (peers venv): ``python -m bench.peers.tasksdb_drive SCENARIO``.

Enqueue is Django's ``task.enqueue()``; workers are ``django-admin db_worker`` processes
(default 1 s poll interval, no start-up delay, no autoreload, verbosity 0).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from bench import cli, lib

SETTINGS = "bench.peers.tasksdb.settings"


def setup(args) -> None:
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    os.environ["BENCH_ENGINE"] = args.engine
    os.environ["BENCH_DB"] = args.db
    lib.reset_database(args.engine, args.db)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def table() -> str:
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult._meta.db_table


def commands(procs: int) -> list[list[str]]:
    return [
        [
            sys.executable,
            "-m",
            "django",
            "db_worker",
            "--no-startup-delay",
            "--no-reload",
            "--queue-name",
            "default",
            "--verbosity",
            "0",
            "--worker-id",
            f"bench-{k}",
        ]  # fmt: skip
        for k in range(procs)
    ]


def env(args, **extra) -> dict:
    return lib.python_env(
        DJANGO_SETTINGS_MODULE=SETTINGS, BENCH_ENGINE=args.engine, BENCH_DB=args.db, **extra
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return cli.driver_args(argv, ["enqueue", "drain", "latency"])


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    setup(args)
    from bench.peers.tasksdb import tasks

    n = args.jobs
    log = f"/tmp/bench_tasksdb_{args.engine}"
    if args.scenario == "enqueue":
        start = time.perf_counter()
        for i in range(n):
            tasks.noop.enqueue(i)
        seconds = time.perf_counter() - start
        result = {"jobs": n, "seconds": seconds, "rate": n / seconds}
    elif args.scenario == "drain":
        definition = tasks.sleep10 if args.kind == "sleep" else tasks.noop
        from django.db import transaction

        # No bulk API: fill with enqueue() calls inside one transaction (not timed).
        with transaction.atomic():
            for i in range(n):
                definition.enqueue(i)
        conn = lib.connect(args.engine, args.db)
        count = f"SELECT count(*) FROM {table()} WHERE status IN ('READY', 'RUNNING')"
        result = lib.time_drain(
            conn, count, n, lambda: lib.processes(commands(args.procs), env(args), log=log), log
        )
        conn.close()
        result["config"] = f"{args.procs} db_worker process{'es' if args.procs > 1 else ''}"
    else:
        path = f"/tmp/bench_pickup_tasksdb_{args.engine}.txt"
        pickup = lib.PickupFile(path)

        def enqueue_one(key: int) -> float:
            tasks.pickup.enqueue(key)
            return time.time()

        with lib.processes(commands(1), env(args, BENCH_PICKUP_FILE=path), log=log) as procs:
            result = lib.measure_pickup(
                enqueue_one, pickup, args.samples, args.budget, procs, log, args.jitter
            )
        result["config"] = "1 db_worker, default --interval 1"
    lib.emit(result)


if __name__ == "__main__":
    main()
