"""procrastinate harness app (peers venv): PostgreSQL via its psycopg connector."""

import os
import time

import procrastinate

from bench.lib import pg_dsn, record_pickup

app = procrastinate.App(
    connector=procrastinate.PsycopgConnector(
        conninfo=pg_dsn(os.environ.get("BENCH_DB", "bench_jobs"))
    )
)


@app.task(name="noop")
def noop(i):
    pass


@app.task(name="sleep10")
def sleep10(i):
    time.sleep(0.01)


@app.task(name="pickup")
def pickup(key):
    record_pickup(key)
