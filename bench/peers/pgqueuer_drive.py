"""Driver for pgqueuer (peers venv): ``python -m bench.peers.pgqueuer_drive SCENARIO``.

Enqueue is ``Queries.enqueue`` (scalars: one job; lists: a batch); workers
are ``pgq run`` equivalents (bench/peers/pgqueuer_worker.py: the CLI's own call).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import time

from bench import cli, lib


def commands(procs: int, batch: int) -> list[list[str]]:
    return [[sys.executable, "-m", "bench.peers.pgqueuer_worker", str(batch)] for _ in range(procs)]


async def fill(queries, name: str, first: int, count: int) -> None:
    await queries.enqueue(
        [name] * count, [str(i).encode() for i in range(first, first + count)], [0] * count
    )


async def run(args) -> dict:
    from pgqueuer import Queries

    from bench.peers.pgqueuer_app import connect

    conn, driver = await connect()
    queries = Queries(driver)
    await queries.install()
    n = args.jobs
    env = lib.python_env(BENCH_DB=args.db, BENCH_PGQ_DRIVER=args.worker_driver)
    log = "/tmp/bench_pgqueuer"
    if args.scenario == "enqueue":
        start = time.perf_counter()
        for i in range(n):
            await queries.enqueue("noop", str(i).encode())
        seconds = time.perf_counter() - start
        result = {"jobs": n, "seconds": seconds, "rate": n / seconds}
    elif args.scenario == "bulk":
        start = time.perf_counter()
        for first in range(0, n, 1000):
            await fill(queries, "noop", first, min(1000, n - first))
        seconds = time.perf_counter() - start
        result = {"jobs": n, "seconds": seconds, "rate": n / seconds}
    elif args.scenario == "drain":
        name = {"noop": "noop", "sleep": "sleep10", "async": "asleep10"}[args.kind]
        for first in range(0, n, 1000):
            await fill(queries, name, first, min(1000, n - first))
        await conn.close()
        db = lib.connect("postgres", args.db)
        count = "SELECT count(*) FROM pgqueuer"
        cmds = commands(args.procs, args.batch)
        result = await asyncio.to_thread(
            lib.time_drain, db, count, n, lambda: lib.processes(cmds, env, log=log), log
        )
        db.close()
        result["config"] = f"{args.procs} process(es), --batch-size={args.batch}"
        return result
    else:
        path = "/tmp/bench_pickup_pgqueuer.txt"
        probe = lib.PickupFile(path)
        loop = asyncio.get_running_loop()

        def enqueue_one(key: int) -> float:
            asyncio.run_coroutine_threadsafe(
                queries.enqueue("pickup", str(key).encode()), loop
            ).result()
            return time.time()

        penv = dict(env, BENCH_PICKUP_FILE=path)
        with lib.processes(commands(1, args.batch), penv, log=log) as procs:
            result = await asyncio.to_thread(
                lib.measure_pickup,
                enqueue_one,
                probe,
                args.samples,
                args.budget,
                procs,
                log,
                args.jitter,
            )
        result["config"] = "1 worker, LISTEN/NOTIFY"
    await conn.close()
    return result


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return cli.driver_args(
        argv,
        ["enqueue", "bulk", "drain", "latency"],
        engines=["postgres"],
        kinds=["noop", "sleep", "async"],
        options=[
            ("--batch", {"type": int, "default": 10}),
            ("--worker-driver", {"default": "asyncpg", "choices": ["asyncpg", "psycopg"]}),
        ],
    )


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    os.environ["BENCH_DB"] = args.db
    signal.signal(signal.SIGTERM, lib.terminated)
    lib.reset_database("postgres", args.db)
    lib.emit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
