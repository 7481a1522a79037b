"""What one PostgreSQL carries: ``python -m bench.capacity`` (PostgreSQL on this machine).

    python -m bench.capacity --jobs 10000 --batches 1,10,100,500 --procs 1,2

For each batch size (``BATCH_SIZE``: how many jobs a claim takes) and number of worker
processes, drains ``--jobs`` no-op jobs with ``bench.ours drain`` and measures, besides
the wall-clock rate:

* the CPU time the PostgreSQL server spent (every ``postgres`` process of the cluster:
  the live ones' own time plus what the postmaster reaped from backends that exited)
  per 1,000 jobs, each enqueued (``later_many``, 1,000 per call) and run, and so the jobs
  one PostgreSQL core carries per second;
* the CPU time the client side spent per 1,000 jobs (the enqueuing driver and the worker
  processes: this process's reaped children);

Each figure is the difference between a drain of ``--jobs`` and one of ``--small`` jobs,
so that what both spend alike (a new database, its migrations, interpreters starting)
cancels out.
* the connections each worker process holds (``pg_stat_activity`` on the bench
  database, sampled during the drain).

CPU time, unlike wall-clock time, hardly depends on what else the machine runs, but the
server's background work (autovacuum, checkpoints) is counted too: run it on an idle
machine. Prints a table and one ``BENCH-RESULT`` line; docs/explanation/scaling.md has
the figures. Timings are never asserted.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import lib  # noqa: E402

DB = "bench_capacity"


def server_cpu() -> float:
    """CPU seconds of the PostgreSQL cluster so far (live processes and reaped backends)."""
    total = 0.0
    for proc in psutil.process_iter(["name"]):
        if proc.info["name"] != "postgres":
            continue
        try:
            times = proc.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system
        try:
            parent = proc.parent()
            postmaster = parent is None or parent.name() != "postgres"
        except psutil.Error:
            postmaster = False
        if postmaster:  # backends that exited were reaped by it
            total += times.children_user + times.children_system
    return total


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def connections(stop: threading.Event, seen: list[int]) -> None:
    conn = lib.connect("postgres", "postgres")
    try:
        while not stop.wait(0.2):
            seen.append(
                lib.scalar(
                    conn,
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                    [DB],
                )
            )
    finally:
        conn.close()


def measure(jobs: int, batch: int, procs: int) -> tuple[float, float, dict, list[int]]:
    """(PostgreSQL CPU s, client CPU s, the drain's result, connections seen) of one
    ``bench.ours drain``: a fresh database, ``jobs`` enqueued in bulk, then drained."""
    command = [
        sys.executable, "-m", "bench.ours", "drain", "--engine", "postgres", "--db", DB,
        "--jobs", str(jobs), "--procs", str(procs), "--batch", str(batch), "--kind", "noop",
    ]  # fmt: skip
    seen: list[int] = []
    stop = threading.Event()
    sampler = threading.Thread(target=connections, args=(stop, seen), daemon=True)
    server_before, client_before = server_cpu(), children_cpu()
    sampler.start()
    try:
        out = subprocess.run(command, cwd=lib.REPO, capture_output=True, text=True, check=True)
    finally:
        stop.set()
        sampler.join()
    line = next(x for x in out.stdout.splitlines() if x.startswith(lib.RESULT_PREFIX))
    result = json.loads(line[len(lib.RESULT_PREFIX) :])
    return server_cpu() - server_before, children_cpu() - client_before, result, seen


def one(jobs: int, batch: int, procs: int, small: int) -> dict:
    """The cost of one job's enqueue (bulk) and run, as the difference between a drain of
    ``jobs`` and one of ``small`` jobs: what both spend alike (a new database, migrations,
    interpreters starting) cancels out."""
    server, client, result, seen = measure(jobs, batch, procs)
    server_small, client_small, _, _ = measure(small, batch, procs)
    n = jobs - small
    server_per_job = max(server - server_small, 1e-9) / n
    return {
        "batch": batch,
        "procs": procs,
        "jobs": jobs,
        "steady_rate": round(result["steady_rate"] or 0),
        "server_cpu_ms_per_1k": round(1e6 * server_per_job, 1),
        "jobs_per_server_core": round(1 / server_per_job),
        "client_cpu_ms_per_1k": round(1e6 * (client - client_small) / n, 1),
        "connections_per_process": round(max(seen, default=0) / procs, 1),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--batches", default="1,10,100,500")
    p.add_argument("--procs", default="1,2")
    p.add_argument("--small", type=int, default=500, help="the drain subtracted as overhead")
    args = p.parse_args(argv)
    rows = []
    print("| batch | procs | jobs/s | PG CPU ms / 1k jobs | jobs per PG core-second |"
          " worker CPU ms / 1k jobs | connections per process |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for batch in (int(b) for b in args.batches.split(",")):
        for procs in (int(n) for n in args.procs.split(",")):
            row = one(args.jobs, batch, procs, args.small)
            rows.append(row)
            print(
                f"| {batch} | {procs} | {row['steady_rate']:,} | {row['server_cpu_ms_per_1k']} |"
                f" {row['jobs_per_server_core']:,} | {row['client_cpu_ms_per_1k']} |"
                f" {row['connections_per_process']} |",
                flush=True,
            )
            time.sleep(1)
    lib.emit({"scenario": "capacity", "rows": rows})
    lib.drop_database("postgres", DB)
    return rows


if __name__ == "__main__":
    main()
