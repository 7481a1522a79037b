"""What one PostgreSQL carries: ``python -m bench.capacity`` (PostgreSQL on this machine).

    python -m bench.capacity --jobs 10000 --batches 1,10,100,500 --procs 1,2

For each batch size (``BATCH_SIZE``: how many jobs a claim takes) and number of worker
processes, drains ``--jobs`` no-op jobs with ``bench.ours drain`` and measures, besides
the wall-clock rate:

* the CPU time PostgreSQL spent: the bench database's backends (sampled every 0.1 s,
  robust to other work on the machine) and the whole cluster (every ``postgres`` process:
  the live ones' own time plus what the postmaster reaped from backends that exited)
  per 1,000 jobs, each enqueued (``later_many``, 1,000 per call) and run, and so the jobs
  one PostgreSQL core carries per second;
* the CPU time the client side spent per 1,000 jobs (the enqueuing driver and the worker
  processes: this process's reaped children);

* the WAL the cluster wrote per job (read it on an idle machine too);
* the PostgreSQL connections each worker process holds (its TCP connections to the
  server, sampled every 0.1 s during the drain; the enqueuing driver's are not counted).

Each CPU figure is the difference between a drain of ``--jobs`` and one of ``--small``
jobs, so that what both spend alike (a new database, its migrations, interpreters
starting) cancels out. CPU time, unlike wall-clock time, hardly depends on what else the
machine runs; the whole-cluster figure also counts the server's background work (WAL
writer, autovacuum, checkpoints) and anything else using the server: read it on an idle
machine. "jobs per PG core-second" is from the backends' figure. Prints a table and one
``BENCH-RESULT`` line; docs/explanation/scaling.md has the figures. Timings are never asserted.
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


def wal_bytes() -> int:
    """The cluster's WAL position in bytes (every database's writes, as CPU for the cluster)."""
    conn = lib.connect("postgres", "postgres")
    try:
        return int(lib.scalar(conn, "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')"))
    finally:
        conn.close()


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Sampler(threading.Thread):
    """Every 0.1 s during a drain: the bench database's backends (their CPU time so far,
    what their connection last ran) and the PostgreSQL connections of each worker
    process (the driver's children, matched by client port)."""

    def __init__(self, driver: subprocess.Popen) -> None:
        super().__init__(daemon=True)
        self.driver = driver
        self.stop = threading.Event()
        self.backend_cpu: dict[int, float] = {}  # backend pid -> CPU s seen last
        self.held: dict[int, int] = {}  # worker pid -> most connections held at once
        self.roles: dict[int, set[str]] = {}  # worker pid -> first words of their queries

    def run(self) -> None:
        conn = lib.connect("postgres", "postgres")
        try:
            parent = psutil.Process(self.driver.pid)
            while not self.stop.wait(0.1):
                rows = conn.execute(
                    "SELECT pid, client_port, left(query, 40) FROM pg_stat_activity"
                    " WHERE datname = %s",
                    [DB],
                ).fetchall()
                for backend, _, _ in rows:
                    try:
                        times = psutil.Process(backend).cpu_times()
                    except psutil.Error:
                        continue
                    self.backend_cpu[backend] = times.user + times.system
                by_port = {port: query for _, port, query in rows}
                self._connections(parent, by_port)
        except psutil.Error:
            pass
        finally:
            conn.close()

    def _connections(self, parent: psutil.Process, by_port: dict[int, str]) -> None:
        try:
            workers = parent.children(recursive=True)
        except psutil.Error:
            return
        for proc in workers:
            try:
                ports = [
                    c.laddr.port
                    for c in proc.net_connections(kind="tcp")
                    if c.raddr and c.raddr.port == lib.PG["port"]
                    and c.status == psutil.CONN_ESTABLISHED
                ]  # fmt: skip
            except psutil.Error:
                continue
            self.held[proc.pid] = max(self.held.get(proc.pid, 0), len(ports))
            roles = self.roles.setdefault(proc.pid, set())
            roles.update(" ".join(by_port.get(port, "?").split()[:2]) for port in ports)


def measure(jobs: int, batch: int, procs: int) -> tuple[float, float, float, int, dict, Sampler]:
    """(PostgreSQL cluster CPU s, the bench database's backends' CPU s, client CPU s, WAL
    bytes, the drain's result, the sampler) of one ``bench.ours drain``: a fresh database,
    ``jobs`` enqueued in bulk, then drained."""
    command = [
        sys.executable, "-m", "bench.ours", "drain", "--engine", "postgres", "--db", DB,
        "--jobs", str(jobs), "--procs", str(procs), "--batch", str(batch), "--kind", "noop",
    ]  # fmt: skip
    server_before, client_before, wal_before = server_cpu(), children_cpu(), wal_bytes()
    driver = subprocess.Popen(command, cwd=lib.REPO, stdout=subprocess.PIPE, text=True)
    sampler = Sampler(driver)
    sampler.start()
    try:
        stdout, _ = driver.communicate()
    finally:
        sampler.stop.set()
        sampler.join()
    if driver.returncode:
        raise SystemExit(f"bench.ours drain failed ({driver.returncode})")
    line = next(x for x in stdout.splitlines() if x.startswith(lib.RESULT_PREFIX))
    result = json.loads(line[len(lib.RESULT_PREFIX) :])
    backends = sum(sampler.backend_cpu.values())
    client = children_cpu() - client_before
    wal = wal_bytes() - wal_before
    return server_cpu() - server_before, backends, client, wal, result, sampler


def one(jobs: int, batch: int, procs: int, small: int) -> dict:
    """The cost of one job's enqueue (bulk) and run, as the difference between a drain of
    ``jobs`` and one of ``small`` jobs: what both spend alike (a new database, migrations,
    interpreters starting) cancels out."""
    cluster, backends, client, wal, result, sampler = measure(jobs, batch, procs)
    cluster_small, backends_small, client_small, wal_small, _, _ = measure(small, batch, procs)
    n = jobs - small
    cluster_per_job = max(cluster - cluster_small, 1e-9) / n
    backend_per_job = max(backends - backends_small, 1e-9) / n
    roles = sorted({role for held in sampler.roles.values() for role in held})
    return {
        "batch": batch,
        "procs": procs,
        "jobs": jobs,
        "steady_rate": round(result["steady_rate"] or 0),
        "cluster_cpu_ms_per_1k": round(1e6 * cluster_per_job, 1),
        "backend_cpu_ms_per_1k": round(1e6 * backend_per_job, 1),
        "jobs_per_server_core": round(1 / backend_per_job),
        "client_cpu_ms_per_1k": round(1e6 * (client - client_small) / n, 1),
        "wal_bytes_per_job": round((wal - wal_small) / n),
        "connections_per_process": max(sampler.held.values(), default=0),
        "connection_roles": roles,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jobs", type=int, default=10_000)
    p.add_argument("--batches", default="1,10,100,500")
    p.add_argument("--procs", default="1,2")
    p.add_argument("--small", type=int, default=500, help="the drain subtracted as overhead")
    args = p.parse_args(argv)
    rows = []
    print(
        "| batch | procs | jobs/s | PG backends CPU ms / 1k jobs | whole cluster |"
        " jobs per PG core-second | worker CPU ms / 1k jobs | WAL bytes / job |"
        " connections per process |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for batch in (int(b) for b in args.batches.split(",")):
        for procs in (int(n) for n in args.procs.split(",")):
            row = one(args.jobs, batch, procs, args.small)
            rows.append(row)
            print(
                f"| {batch} | {procs} | {row['steady_rate']:,} | {row['backend_cpu_ms_per_1k']} |"
                f" {row['cluster_cpu_ms_per_1k']} | {row['jobs_per_server_core']:,} |"
                f" {row['client_cpu_ms_per_1k']} | {row['wal_bytes_per_job']:,} |"
                f" {row['connections_per_process']} |",
                flush=True,
            )
            time.sleep(1)
    roles = sorted({role for row in rows for role in row["connection_roles"]})
    print("\nWhat the workers' connections last ran:", "; ".join(roles))
    lib.emit({"scenario": "capacity", "rows": rows})
    lib.drop_database("postgres", DB)
    return rows


if __name__ == "__main__":
    main()
