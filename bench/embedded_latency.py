"""Enqueue-to-start latency in embedded mode: ``python -m bench.embedded_latency``.

    python -m bench.embedded_latency --engine postgres --samples 200

Serves the embedded-mode test project (tests/processes/embedded) under gunicorn
(2 sync workers; ``--workers``), with ``JOBS["EMBEDDED"]`` on, on a fresh ``bench_embedded``
database. Each sample
is one HTTP request whose view enqueues one job in a transaction and notes ``time.time()``
just before the commit; the job notes ``time.time()`` first thing. The difference is the
latency: the commit, waking the embedded worker (directly in the enqueuing process; by
NOTIFY, the SQLite data version or the MariaDB probe in the other), the claim and the
hand-over to a pool thread. Samples are 30 ms plus a random delay (up to 0.2 s) apart, so
the workers are idle at a random phase. ``--mode worker`` turns embedded mode off and runs
the jobs in one ``manage.py jobs work`` process instead, for comparison. Prints
p50/p95/p99/max and one ``BENCH-RESULT`` line. Timings are never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import lib  # noqa: E402
from bench.events_latency import free_port, percentile  # noqa: E402

DB = "bench_embedded"
JOB = "probe"
NO_SLEEP = urllib.parse.quote('{"seconds": 0}')


def environment(engine: str, mode: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="tests.processes.embedded.settings",
        DJANGO_JOBS_DB={"postgres": "postgres", "mysql": "mysql"}.get(engine, "sqlite"),
        DJANGO_JOBS_TEST_DB_NAME=DB,
        DJANGO_JOBS_SQLITE_NAME=lib.sqlite_path(DB),
        DJANGO_JOBS_EMBEDDED=json.dumps({"ENABLED": mode == "embedded", "THREADS": 4}),
        DJANGO_JOBS_WORKERS=json.dumps([{"QUEUE": "*", "THREADS": 4, "SLEEP_DELAY": 5}]),
        PYTHONPATH=str(lib.REPO),
    )
    return env


def get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return response.read()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)
    return value


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--engine", default="sqlite", choices=["sqlite", "postgres", "mysql"])
    p.add_argument("--samples", type=int, default=200)
    p.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    p.add_argument(
        "--mode",
        default="embedded",
        choices=["embedded", "worker"],
        help="worker: embedded mode off, one `jobs work` process (THREADS 4) runs the jobs",
    )
    args = p.parse_args(argv)

    lib.reset_database(args.engine, DB)
    env = environment(args.engine, args.mode)
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.db import connections

    from django_jobs.models import Worker
    from tests.testapp.models import Execution

    connections.close_all()
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "tests.processes.embedded.wsgi", "-w", str(args.workers),
         "-b", f"127.0.0.1:{port}", "--log-level", "warning"],
        cwd=lib.REPO, env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip
    worker = None
    if args.mode == "worker":
        worker = subprocess.Popen(
            [sys.executable, "-m", "django", "jobs", "work"], cwd=lib.REPO, env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    latencies = []
    try:

        def answers() -> bool:
            try:
                return get(port, "/ping/") == b"pong"
            except OSError:
                return False

        wait_for(answers, 30, "the server")
        if worker is not None:
            wait_for(Worker.objects.exists, 30, "the jobs work process")
            connections.close_all()
        for _ in range(4):  # every worker process has seen a request and started
            get(port, "/ping/")
        for i in range(args.samples):
            time.sleep(0.03 + random.uniform(0, 0.2))
            sent = json.loads(
                get(port, f"/enqueue/{JOB}/?start={i}&kwargs=%7B%22seconds%22%3A0%7D")
            )
            key = f"{JOB}-{i}"
            row = wait_for(
                lambda key=key: Execution.objects.filter(key=key).first(), 10, f"job {key}"
            )
            latencies.append((row.started - sent["committing"]) * 1000)
            connections.close_all()  # SQLite: hold no read snapshot between samples
    finally:
        for process in filter(None, (server, worker)):
            process.terminate()
            process.wait(timeout=30)
        connections.close_all()
        lib.drop_database(args.engine, DB)
    result = {
        "scenario": "embedded_latency",
        "engine": args.engine,
        "mode": args.mode,
        "web_workers": args.workers,
        "samples": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "max_ms": round(max(latencies), 1),
    }
    print(
        f"{args.engine} ({args.mode}): {result['samples']} jobs, enqueue-to-start "
        f"p50 {result['p50_ms']} ms, p95 {result['p95_ms']} ms, p99 {result['p99_ms']} ms, "
        f"max {result['max_ms']} ms"
    )
    lib.emit(result)
    return result


if __name__ == "__main__":
    main()
