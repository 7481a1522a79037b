"""Helpers shared by every benchmark driver, in both virtualenvs (stdlib + DB drivers only).

A driver is a short program that measures one scenario of one system and prints one
``BENCH-RESULT {json}`` line; ``bench/run.py`` runs drivers as subprocesses so that each
system runs in its own interpreter with its own dependencies, and never in ours.
"""

from __future__ import annotations

import json
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULT_PREFIX = "BENCH-RESULT "

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
MY = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": ""}


def sqlite_path(name: str) -> str:
    return f"/tmp/{name}.sqlite3"


def pg_dsn(name: str) -> str:
    return f"postgresql://{PG['user']}@{PG['host']}:{PG['port']}/{name}"


def analyze_jobs(cursor, engine: str) -> None:
    """Fresh planner statistics for the job table (after a bulk fill), on ``cursor``."""
    if engine == "postgres":
        cursor.execute("VACUUM ANALYZE django_jobs_job")
    elif engine == "mysql":
        cursor.execute("ANALYZE TABLE django_jobs_job")
        cursor.fetchall()  # MySQL's ANALYZE TABLE returns a result set
    else:
        cursor.execute("ANALYZE")


def connect(engine: str, name: str):
    """An autocommit DB-API connection to the benchmark database ``name``."""
    if engine == "postgres":
        import psycopg

        return psycopg.connect(pg_dsn(name), autocommit=True)
    if engine == "mysql":
        import MySQLdb

        conn = MySQLdb.connect(
            host=MY["host"], port=MY["port"], user=MY["user"], passwd=MY["password"],
            db=name, charset="utf8mb4",
        )  # fmt: skip
        conn.autocommit(True)
        return conn
    import sqlite3

    conn = sqlite3.connect(sqlite_path(name), isolation_level=None, timeout=30)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


def reset_database(engine: str, name: str) -> None:
    """Drop and create the benchmark database ``name`` (never a test database)."""
    if not name.startswith("bench_"):
        raise ValueError(f"refusing to reset {name!r}: benchmark databases start with bench_")
    if engine == "postgres":
        import psycopg

        with psycopg.connect(pg_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
    elif engine == "mysql":
        import MySQLdb

        conn = MySQLdb.connect(host=MY["host"], port=MY["port"], user=MY["user"], passwd="")
        cur = conn.cursor()
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        conn.close()
    else:
        drop_database(engine, name)


def drop_database(engine: str, name: str) -> None:
    if engine == "postgres":
        import psycopg

        with psycopg.connect(pg_dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    elif engine == "mysql":
        import MySQLdb

        conn = MySQLdb.connect(host=MY["host"], port=MY["port"], user=MY["user"], passwd="")
        conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()
    else:
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.unlink(sqlite_path(name) + suffix)
            except FileNotFoundError:
                pass


def scalar(conn, sql: str, params: Sequence = ()):
    cur = conn.cursor()
    cur.execute(sql, params) if params else cur.execute(sql)
    row = cur.fetchone()
    cur.close()
    return row[0] if row else None


def emit(result: dict) -> None:
    print(RESULT_PREFIX + json.dumps(result), flush=True)


def run_checked(cmd: Sequence[str], env: dict | None = None, cwd: Path = REPO) -> str:
    done = subprocess.run(list(cmd), env=env, cwd=cwd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


# -- worker processes -----------------------------------------------------------------


def terminated(signum, frame):
    raise SystemExit(128 + signum)


@contextmanager
def processes(commands: Sequence[Sequence[str]], env: dict, cwd: Path = REPO, log: str = ""):
    """Start the system's real worker commands; stop exactly these processes afterwards."""
    # A driver stopped by SIGTERM must still stop the workers it started (handlers can
    # only be set from the main thread; pgqueuer's driver calls this from a helper thread
    # and sets it itself).
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, terminated)
    procs = []
    logs = []
    try:
        for i, cmd in enumerate(commands):
            out = open(f"{log or '/tmp/bench_worker'}.{i}.log", "w")  # noqa: SIM115
            logs.append(out)
            procs.append(
                subprocess.Popen(
                    list(cmd),
                    env=env,
                    cwd=cwd,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )  # fmt: skip
            )
        yield procs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for out in logs:
            out.close()


def check_alive(procs, log: str = "") -> None:
    for i, proc in enumerate(procs):
        if proc.poll() is not None:
            tail = ""
            try:
                tail = Path(f"{log or '/tmp/bench_worker'}.{i}.log").read_text()[-2000:]
            except OSError:
                pass
            raise RuntimeError(f"worker {i} exited with {proc.returncode}:\n{tail}")


def time_drain(
    conn,
    count_sql: str,
    jobs: int,
    start: Callable[[], list],
    log: str = "",
    timeout: float = 900.0,
    on_poll: Callable[[int, list], None] | None = None,
) -> dict:
    """Start the workers and time until ``count_sql`` reads 0 (polled every 10 ms).

    ``count_sql`` is ``SELECT count(*) FROM … WHERE …`` (no ORDER BY or LIMIT).

    ``seconds`` runs from just before the first worker process is started (so interpreter
    and framework start-up count, as they do for a real deploy); ``steady_rate`` runs from
    the first finished job and leaves start-up out.
    """
    # Counting thousands of rows every 10 ms would load the database under test: once the
    # first job is done, only ask whether any row is left (and count once to be sure).
    exists_sql = count_sql.replace("SELECT count(*)", "SELECT 1", 1) + " LIMIT 1"
    t0 = time.perf_counter()
    with start() as procs:
        first = None
        done_at_first = 0
        polls = 0
        while True:
            if first is None or on_poll is not None:
                left = scalar(conn, count_sql)
            else:
                left = 1 if scalar(conn, exists_sql) else scalar(conn, count_sql)
            now = time.perf_counter()
            if on_poll is not None:
                on_poll(left, procs)
            if first is None and left < jobs:
                first, done_at_first = now, jobs - left
            if left == 0:
                break
            if now - t0 > timeout:
                raise RuntimeError(f"drain timed out with {left} of {jobs} jobs left")
            polls += 1
            if polls % 50 == 0:
                check_alive(procs, log)
            time.sleep(0.01)
        seconds = now - t0
    steady = None
    if first is not None and now > first and jobs > done_at_first:
        steady = (jobs - done_at_first) / (now - first)
    return {
        "jobs": jobs,
        "seconds": seconds,
        "rate": jobs / seconds,
        "steady_rate": steady,
        "startup_seconds": (first - t0) if first else None,
    }


# -- pickup latency ---------------------------------------------------------------------


def record_pickup(key) -> None:
    """Called first thing inside a latency job: append ``key started`` to the pickup file."""
    started = time.time()
    fd = os.open(os.environ["BENCH_PICKUP_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, f"{key} {started!r}\n".encode())
    finally:
        os.close(fd)


class PickupFile:
    def __init__(self, path: str) -> None:
        self.path = path
        Path(path).write_text("")
        self.offset = 0
        self.seen: dict[int, float] = {}

    def read(self) -> None:
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].decode().splitlines():
            key, started = line.split()
            self.seen[int(key)] = float(started)

    def wait(self, key: int, timeout: float, procs=None, log: str = "") -> float:
        deadline = time.monotonic() + timeout
        while key not in self.seen:
            if time.monotonic() > deadline:
                if procs:
                    check_alive(procs, log)
                raise RuntimeError(f"latency job {key} did not start within {timeout}s")
            time.sleep(0.0005)
            self.read()
        return self.seen[key]


def measure_pickup(
    enqueue: Callable[[int], float],
    pickup: PickupFile,
    samples: int,
    budget: float,
    procs=None,
    log: str = "",
    jitter: float = 0.2,
) -> dict:
    """Enqueue one job at a time into an idle worker; latency = job start - enqueue commit.

    ``enqueue(key)`` stores the job and returns ``time.time()`` taken when the storing
    call returned (the commit is known to the client then). Samples are spaced 30 ms plus
    a random 0-``jitter`` s apart: the worker is back in its idle wait, and a polling
    worker is caught at a random phase of its poll interval (``jitter`` must cover it,
    or the spacing locks onto the poll cycle). The run stops after ``samples`` samples or
    ``budget`` seconds, whichever comes first (slow pollers get fewer samples).
    """
    enqueue(-1)  # warm-up: connections open, code paths imported
    pickup.wait(-1, 60, procs, log)
    time.sleep(0.5)
    latencies = []
    started = time.monotonic()
    for key in range(samples):
        committed = enqueue(key)
        began = pickup.wait(key, 30, procs, log)
        latencies.append((began - committed) * 1000)
        if time.monotonic() - started > budget and len(latencies) >= 20:
            break
        time.sleep(0.03 + random.uniform(0, jitter))
    return latency_summary(latencies)


def latency_summary(latencies: list[float]) -> dict:
    ordered = sorted(latencies)
    return {
        "samples": len(ordered),
        "p50_ms": statistics.median(ordered),
        "p99_ms": percentile(ordered, 99),
        "max_ms": ordered[-1],
        "mean_ms": statistics.fmean(ordered),
    }


def percentile(ordered: list[float], pct: float) -> float:
    if not ordered:
        return float("nan")
    rank = (len(ordered) - 1) * pct / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def python_env(**extra: str) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def this_python() -> str:
    return sys.executable


def drop_spans() -> None:
    """An OpenTelemetry SDK tracer provider that records every span and exports none:
    the cost of tracing without an exporter's own."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class Dropped(SpanExporter):
        def export(self, spans):
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(Dropped()))
    trace.set_tracer_provider(provider)


def request_span():
    """A span around the enqueue loop when BENCH_OBSERVE is "traced" (a request that
    enqueues), else nothing."""
    import contextlib

    if os.environ.get("BENCH_OBSERVE") != "traced":
        return contextlib.nullcontext()
    from opentelemetry import trace

    return trace.get_tracer("bench").start_as_current_span("request")
