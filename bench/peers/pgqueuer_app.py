"""pgqueuer harness factory (peers venv): ``pgq run bench.peers.pgqueuer_app:factory``.

Driver from BENCH_PGQ_DRIVER: psycopg (default) or asyncpg. On this machine psycopg
enqueues faster one call at a time and asyncpg drains faster, so the harness enqueues with
psycopg and runs workers on asyncpg (see pgqueuer_drive.py). The sync 10 ms job is
``asyncio.to_thread(sleep)``, the way pgqueuer documents blocking work (it accepts only
async entrypoints).
"""

import asyncio
import os
import time
from contextlib import asynccontextmanager

from pgqueuer import AsyncpgDriver, PgQueuer, PsycopgDriver

from bench.lib import pg_dsn, record_pickup


def dsn() -> str:
    return pg_dsn(os.environ.get("BENCH_DB", "bench_jobs"))


async def connect():
    """(connection, driver) for the configured driver."""
    if os.environ.get("BENCH_PGQ_DRIVER", "psycopg") == "asyncpg":
        import asyncpg

        conn = await asyncpg.connect(dsn())
        return conn, AsyncpgDriver(conn)
    import psycopg

    conn = await psycopg.AsyncConnection.connect(dsn(), autocommit=True)
    return conn, PsycopgDriver(conn)


@asynccontextmanager
async def factory():
    conn, driver = await connect()
    pgq = PgQueuer(driver)

    @pgq.entrypoint("noop")
    async def noop(job):
        pass

    @pgq.entrypoint("sleep10")
    async def sleep10(job):
        await asyncio.to_thread(time.sleep, 0.01)

    @pgq.entrypoint("asleep10")
    async def asleep10(job):
        await asyncio.sleep(0.01)

    @pgq.entrypoint("pickup")
    async def pickup(job):
        record_pickup(int(job.payload))

    try:
        yield pgq
    finally:
        await conn.close()
