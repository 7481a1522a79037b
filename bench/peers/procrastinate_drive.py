"""Driver for procrastinate (peers venv): ``python -m bench.peers.procrastinate_drive ...``.

Enqueue is ``task.defer()`` / ``task.batch_defer()`` (sync API); workers are
``procrastinate --app=... worker`` processes (LISTEN/NOTIFY on, default polling).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from bench import cli, lib

APP = "bench.peers.procrastinate_app.app"


def commands(procs: int, concurrency: int) -> list[list[str]]:
    return [
        [
            sys.executable,
            "-m",
            "procrastinate",
            "--log-level=warning",
            f"--app={APP}",
            "worker",
            f"--concurrency={concurrency}",
            f"--name=bench-{k}",
        ]  # fmt: skip
        for k in range(procs)
    ]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return cli.driver_args(
        argv,
        ["enqueue", "bulk", "drain", "latency"],
        engines=["postgres"],
        options=[("--concurrency", {"type": int, "default": 1})],
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ["BENCH_DB"] = args.db
    lib.reset_database("postgres", args.db)
    from bench.peers.procrastinate_app import app, noop, pickup, sleep10

    n = args.jobs
    env = lib.python_env(BENCH_DB=args.db)
    log = "/tmp/bench_procrastinate"
    with app.open():
        app.schema_manager.apply_schema()
        if args.scenario == "enqueue":
            start = time.perf_counter()
            for i in range(n):
                noop.defer(i=i)
            seconds = time.perf_counter() - start
            result = {"jobs": n, "seconds": seconds, "rate": n / seconds}
        elif args.scenario == "bulk":
            start = time.perf_counter()
            for first in range(0, n, 1000):
                noop.batch_defer(*({"i": i} for i in range(first, min(n, first + 1000))))
            seconds = time.perf_counter() - start
            result = {"jobs": n, "seconds": seconds, "rate": n / seconds}
        elif args.scenario == "drain":
            task = sleep10 if args.kind == "sleep" else noop
            for first in range(0, n, 1000):
                task.batch_defer(*({"i": i} for i in range(first, min(n, first + 1000))))
            conn = lib.connect("postgres", args.db)
            count = "SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')"
            cmds = commands(args.procs, args.concurrency)
            result = lib.time_drain(conn, count, n, lambda: lib.processes(cmds, env, log=log), log)
            conn.close()
            result["config"] = f"{args.procs} process(es), --concurrency={args.concurrency}"
        else:
            path = "/tmp/bench_pickup_procrastinate.txt"
            probe = lib.PickupFile(path)

            def enqueue_one(key: int) -> float:
                pickup.defer(key=key)
                return time.time()

            penv = dict(env, BENCH_PICKUP_FILE=path)
            with lib.processes(commands(1, 1), penv, log=log) as procs:
                result = lib.measure_pickup(
                    enqueue_one, probe, args.samples, args.budget, procs, log, args.jitter
                )
            result["config"] = "1 worker, LISTEN/NOTIFY"
    lib.emit(result)


if __name__ == "__main__":
    main()
