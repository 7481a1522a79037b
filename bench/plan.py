"""What the benchmark measures: one ``Case`` per (metric, system, engine) with its command.

Each case names the driver module and its arguments; ``run.py`` runs every case once per
repetition (cases interleaved, repetition loop outermost) and keeps the median.
The "best configuration" of each system for 10 ms jobs is fixed here and printed with the
results.
"""

from __future__ import annotations

from dataclasses import dataclass, field

OURS = "django_jobs"
TASKSDB = "django-tasks-db"
PROCRASTINATE = "procrastinate"
PGQUEUER = "pgqueuer"
FLOOR = "plain SQL floor"
PEERS = (TASKSDB, PROCRASTINATE, PGQUEUER)
PEER_KEYS = {"tasksdb": TASKSDB, "procrastinate": PROCRASTINATE, "pgqueuer": PGQUEUER}
PG_ONLY = {PROCRASTINATE, PGQUEUER}

#: Metric key → (label, unit, floor key or None). Rates are jobs/s, higher is better.
METRICS = {
    "enqueue_one": ("enqueue, one call per job", "jobs/s", "insert_one"),
    "enqueue_bulk": ("enqueue, bulk 1,000 per call", "jobs/s", "insert_1000"),
    "drain_1": ("no-op drain, 1 worker process", "jobs/s", "loop_10_p1"),
    "drain_2": ("no-op drain, 2 worker processes", "jobs/s", "loop_10_p2"),
    "sleep_sync": ("10 ms sync jobs, best configuration", "jobs/s", None),
    "sleep_async": ("10 ms async jobs, best configuration", "jobs/s", None),
    "pickup": ("idle pickup latency p50 / p99", "ms", None),
    "scale": ("no-op drain, 1 process, +1,000,000 rows", "jobs/s", None),
    "memory": ("worker RSS after 1,000 / 100,000 jobs", "MB", None),
}

#: Best configurations for 10 ms jobs on a 2-core machine, each the fastest of a few tried
#: by hand (ours THREADS 16/32/64, ASYNC_CONCURRENCY 50/100/250; procrastinate concurrency
#: 10/25/50; pgqueuer batch 10/25/50 sync, 25/100/250 async).
OURS_SYNC = {"procs": 2, "threads": 64}
OURS_ASYNC = {"procs": 2, "async_concurrency": 250, "batch": 250}
TASKSDB_SYNC_PROCS = 4
PROCRASTINATE_SYNC = {"procs": 2, "concurrency": 50}
PGQUEUER_SYNC = {"procs": 2, "batch": 50}
PGQUEUER_ASYNC = {"procs": 2, "batch": 250}


@dataclass
class Case:
    metric: str
    system: str
    engine: str
    module: str
    args: list[str] = field(default_factory=list)
    python: str = "ours"  # "ours" or "peers"
    once: bool = False  # run in the first repetition only

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.engine, self.metric, self.system)


def _ours(metric: str, engine: str, *args: str, once: bool = False) -> Case:
    return Case(metric, OURS, engine, "bench.ours", list(args) + ["--engine", engine], once=once)


def _peer(metric: str, system: str, engine: str, module: str, *args: str) -> Case:
    return Case(metric, system, engine, module, list(args) + ["--engine", engine], "peers")


def cases(
    engines: list[str],
    peers: list[str],
    jobs: int,
    slow_jobs: int,
    smoke: bool,
    samples: int,
    memory_jobs: int,
) -> list[Case]:
    """Every case for one repetition, in the order they interleave."""
    n = str(jobs)
    out: list[Case] = []
    budget = "10" if smoke else "30"
    lat = ["--samples", str(samples), "--budget", budget]
    for engine in engines:
        out += [
            _ours("enqueue_one", engine, "enqueue", "--jobs", n),
            _ours("enqueue_bulk", engine, "bulk", "--jobs", n),
            _ours("drain_1", engine, "drain", "--jobs", n, "--procs", "1"),
            _ours("drain_2", engine, "drain", "--jobs", n, "--procs", "2"),
            _ours(
                "sleep_sync",
                engine,
                "drain",
                "--jobs",
                n,
                "--kind",
                "sleep",
                "--procs",
                str(OURS_SYNC["procs"]),
                "--threads",
                str(OURS_SYNC["threads"]),
            ),  # fmt: skip
            _ours(
                "sleep_async",
                engine,
                "drain",
                "--jobs",
                n,
                "--kind",
                "async",
                "--procs",
                str(OURS_ASYNC["procs"]),
                "--async-concurrency",
                str(OURS_ASYNC["async_concurrency"]),
            ),  # fmt: skip
            _ours("pickup", engine, "latency", *lat),
        ]
        if not smoke:
            out += [
                _ours("scale", engine, "scale", "--jobs", n, "--db", "bench_jobs_big"),
                _ours("memory", engine, "memory", "--jobs", str(memory_jobs), once=True),
            ]
        out += _peer_cases(engine, peers, jobs, slow_jobs, lat)
    return out


def _peer_cases(engine: str, peers: list[str], jobs: int, slow_jobs: int, lat) -> list[Case]:
    out: list[Case] = []
    n = str(jobs)
    if TASKSDB in peers:
        m, slow = "bench.peers.tasksdb_drive", str(min(jobs, slow_jobs))
        out += [
            _peer("enqueue_one", TASKSDB, engine, m, "enqueue", "--jobs", n),
            _peer("drain_1", TASKSDB, engine, m, "drain", "--jobs", slow, "--procs", "1"),
            _peer("drain_2", TASKSDB, engine, m, "drain", "--jobs", slow, "--procs", "2"),
            _peer(
                "sleep_sync",
                TASKSDB,
                engine,
                m,
                "drain",
                "--jobs",
                slow,
                "--kind",
                "sleep",
                "--procs",
                str(TASKSDB_SYNC_PROCS),
            ),  # fmt: skip
            # It polls once a second: the spacing must cover that interval.
            _peer("pickup", TASKSDB, engine, m, "latency", *lat, "--jitter", "1.0"),
        ]
    if engine != "postgres":
        return out
    if PROCRASTINATE in peers:
        m = "bench.peers.procrastinate_drive"
        out += [
            _peer("enqueue_one", PROCRASTINATE, engine, m, "enqueue", "--jobs", n),
            _peer("enqueue_bulk", PROCRASTINATE, engine, m, "bulk", "--jobs", n),
            _peer("drain_1", PROCRASTINATE, engine, m, "drain", "--jobs", n, "--procs", "1"),
            _peer("drain_2", PROCRASTINATE, engine, m, "drain", "--jobs", n, "--procs", "2"),
            _peer(
                "sleep_sync",
                PROCRASTINATE,
                engine,
                m,
                "drain",
                "--jobs",
                n,
                "--kind",
                "sleep",
                "--procs",
                str(PROCRASTINATE_SYNC["procs"]),
                "--concurrency",
                str(PROCRASTINATE_SYNC["concurrency"]),
            ),  # fmt: skip
            _peer("pickup", PROCRASTINATE, engine, m, "latency", *lat),
        ]
    if PGQUEUER in peers:
        m = "bench.peers.pgqueuer_drive"
        out += [
            _peer("enqueue_one", PGQUEUER, engine, m, "enqueue", "--jobs", n),
            _peer("enqueue_bulk", PGQUEUER, engine, m, "bulk", "--jobs", n),
            _peer("drain_1", PGQUEUER, engine, m, "drain", "--jobs", n, "--procs", "1"),
            _peer("drain_2", PGQUEUER, engine, m, "drain", "--jobs", n, "--procs", "2"),
            _peer(
                "sleep_sync",
                PGQUEUER,
                engine,
                m,
                "drain",
                "--jobs",
                n,
                "--kind",
                "sleep",
                "--procs",
                str(PGQUEUER_SYNC["procs"]),
                "--batch",
                str(PGQUEUER_SYNC["batch"]),
            ),  # fmt: skip
            _peer(
                "sleep_async",
                PGQUEUER,
                engine,
                m,
                "drain",
                "--jobs",
                n,
                "--kind",
                "async",
                "--procs",
                str(PGQUEUER_ASYNC["procs"]),
                "--batch",
                str(PGQUEUER_ASYNC["batch"]),
            ),  # fmt: skip
            _peer("pickup", PGQUEUER, engine, m, "latency", *lat),
        ]
    return out
