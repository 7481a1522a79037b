"""Three hosts, one cut off: ``sudo .venv/bin/python -m bench.many_hosts [--engine postgres]``.

Three Linux network namespaces ("hosts", the helpers of tests/processes/netns.py) each run
``jobs work`` with ``--procs`` worker processes against one database, reached through a
forwarder on the root side of each host's veth. The queue holds ``--jobs`` 10 ms jobs.
After ``--phase`` seconds the first host's link goes down; once the other hosts have
recovered its jobs and run for another phase, the link comes back. Printed (and one
``BENCH-RESULT`` JSON line): jobs/s with three hosts, with two after the cut, with three
again after the host rejoined, the recovery time (cut → no job held by the cut host) and
the rejoin time (link up → the cut host holds a job again).
Needs root. Timings are never asserted.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import psutil

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import lib  # noqa: E402
from bench.ours import count_sql, fill, jobs_module, setup_django  # noqa: E402
from tests.processes.netns import Network, namespaces_available  # noqa: E402

SETTINGS = "bench.project.settings"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--engine", choices=["postgres", "mysql"], default="postgres")
    p.add_argument("--db", default="bench_many_hosts")
    p.add_argument("--jobs", type=int, default=30000)
    p.add_argument("--procs", type=int, default=2, help="worker processes per host")
    p.add_argument("--threads", type=int, default=1, help="THREADS of each worker")
    p.add_argument("--heartbeat", type=float, default=5.0, help="HEARTBEAT_TIMEOUT")
    p.add_argument("--phase", type=float, default=10.0, help="seconds measured per phase")
    return p.parse_args(argv)


class Counter:
    """Jobs done so far, read from the database; rates between two moments."""

    def __init__(self, conn, sql: str, total: int) -> None:
        self.conn, self.sql, self.total = conn, sql, total

    def done(self) -> tuple[float, int]:
        return time.perf_counter(), self.total - lib.scalar(self.conn, self.sql)

    def rate_over(self, seconds: float) -> float:
        t0, d0 = self.done()
        time.sleep(seconds)
        t1, d1 = self.done()
        if d1 >= self.total:
            raise RuntimeError("the queue ran dry during a phase: raise --jobs")
        return (d1 - d0) / (t1 - t0)


def held_by(conn, host: str) -> int:
    from django_jobs.models import Job

    return lib.scalar(
        conn,
        f"SELECT count(*) FROM {Job._meta.db_table} WHERE locked_by LIKE %s",
        [f"%@{host}/%"],
    )


def registered(conn, host: str) -> int:
    from django_jobs.models import Worker

    return lib.scalar(conn, f"SELECT count(*) FROM {Worker._meta.db_table} WHERE host = %s", [host])


def wait_for(what: str, check, timeout: float = 120.0, interval: float = 0.02) -> float:
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > timeout:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(interval)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if why := namespaces_available():
        sys.exit(f"bench.many_hosts: {why}")
    setup_django(args.engine, args.db)
    definition = jobs_module().sleep10
    fill(definition, args.jobs)
    conn = lib.connect(args.engine, args.db)
    counter = Counter(conn, count_sql(definition.name), args.jobs)
    target = lib.PG if args.engine == "postgres" else lib.MY
    procs = []
    log = open(f"/tmp/bench_many_hosts_{args.engine}.log", "w")  # noqa: SIM115
    with log, Network(3, (target["host"], target["port"])) as network:
        try:
            for host in network.hosts:
                env = lib.python_env(
                    DJANGO_SETTINGS_MODULE=SETTINGS, BENCH_ENGINE=args.engine,
                    BENCH_DB=args.db, BENCH_THREADS=args.threads, BENCH_BATCH=100,
                    BENCH_SLEEP_DELAY=1, BENCH_DB_HOST=host.gateway,
                    BENCH_DB_PORT=network.port, BENCH_HEARTBEAT_TIMEOUT=args.heartbeat,
                )  # fmt: skip
                env["BENCH_COUNT"] = str(args.procs)
                command = [*host.prefix, sys.executable, "-m", "django", "jobs", "work"]
                procs.append(
                    subprocess.Popen(
                        command,
                        cwd=lib.REPO,
                        env=env,
                        start_new_session=True,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )  # fmt: skip
                )
            names = [host.name for host in network.hosts]
            wait_for("every host's workers", lambda: all(
                registered(conn, name) == args.procs for name in names
            ))  # fmt: skip
            time.sleep(2)  # past start-up
            before = counter.rate_over(args.phase)
            cut = network.hosts[0]
            cut.cut()
            recovery = wait_for("the cut host's jobs to be recovered", lambda: not held_by(
                conn, cut.name
            ))  # fmt: skip
            cut_off = counter.rate_over(args.phase)
            wait_for("the cut host's rows to go", lambda: not registered(conn, cut.name))
            cut.restore()
            # Rejoined: its workers claim again (a connection that was mid-statement at the
            # cut resumes at TCP's next retransmission, which backs off while the link is down).
            rejoin = wait_for("the cut host to claim again", lambda: held_by(conn, cut.name) > 0)
            time.sleep(2)
            after = counter.rate_over(args.phase)
        finally:
            # Workers run in sessions of their own: kill every descendant, not a group.
            doomed = []
            for proc in procs:
                try:
                    doomed += [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(True)]
                except psutil.NoSuchProcess:
                    pass
            for each in doomed:
                try:
                    each.kill()
                except psutil.NoSuchProcess:
                    pass
            psutil.wait_procs(doomed, timeout=10)
    conn.close()
    result = {
        "engine": args.engine, "hosts": 3, "procs_per_host": args.procs,
        "threads": args.threads, "heartbeat_timeout": args.heartbeat,
        "rate_three_hosts": before, "rate_one_cut": cut_off, "rate_rejoined": after,
        "recovery_seconds": recovery, "rejoin_seconds": rejoin,
    }  # fmt: skip
    print(
        f"{args.engine}: 3 hosts {before:,.0f} jobs/s; one cut off {cut_off:,.0f} jobs/s "
        f"(its jobs recovered in {recovery:.1f} s, HEARTBEAT_TIMEOUT {args.heartbeat:g} s); "
        f"rejoined after {rejoin:.1f} s: {after:,.0f} jobs/s"
    )
    lib.emit(result)


if __name__ == "__main__":
    main()
