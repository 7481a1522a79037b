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
    "drain_1": ("no-op drain, 1 worker process", "jobs/s", "loop_100_p1"),
    "drain_2": ("no-op drain, 2 worker processes", "jobs/s", "loop_100_p2"),
    "drain_limited": (
        "no-op drain, 1 process, concurrency limit 1 per key on every job (100 keys)",
        "jobs/s",
        None,
    ),
    "enqueue_typed": (
        "enqueue, one call per job, typed payload (datetime, Decimal, UUID, dataclass)",
        "jobs/s",
        None,
    ),
    "drain_typed": ("no-op drain, 1 worker process, typed payload", "jobs/s", None),
    "sleep_sync": ("10 ms sync jobs, best configuration", "jobs/s", None),
    "sleep_async": ("10 ms async jobs, best configuration", "jobs/s", None),
    "pickup": ("idle pickup latency p50 / p99", "ms", None),
    "scale": ("no-op drain, 1 process, +1,000,000 rows", "jobs/s", None),
    "memory": ("worker RSS after 1,000 / 100,000 jobs", "MB", None),
}

#: Best configurations for 10 ms jobs on a 2-core machine, each the fastest of a few tried
#: by hand (ours THREADS 16/32/64, ASYNC_CONCURRENCY 50/100/250, BATCH_SIZE 100/250 async;
#: procrastinate concurrency 10/25/50; pgqueuer batch 10/25/50 sync, 25/100/250 async, and
#: again 250/500/1000 with 1 and 2 processes: 2 processes best, the batches within noise).
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


@dataclass(frozen=True)
class System:
    """How one system is measured: its driver and what it supports.

    Every system gets the same cases in the same order (enqueue one by one, in bulk, no-op
    drains with 1 and 2 processes, 10 ms sync and async jobs in its best configuration,
    pickup latency); a metric it has no way to do is left out.
    """

    name: str
    module: str
    python: str  # "ours" or "peers": the interpreter that runs the driver
    engines: tuple[str, ...] = ("sqlite", "postgres", "mysql")
    bulk: bool = True
    capped: bool = False  # drains use at most --slow-jobs jobs (a slow system)
    sleep_sync: tuple[str, ...] | None = None  # driver flags of its best configuration
    sleep_async: tuple[str, ...] | None = None
    pickup: tuple[str, ...] = ()  # extra flags of the pickup case


def _flags(**options: int) -> tuple[str, ...]:
    """``procs=2, threads=64`` → ``("--procs", "2", "--threads", "64")``, in that order."""
    out: list[str] = []
    for key, value in options.items():
        out += [f"--{key.replace('_', '-')}", str(value)]
    return tuple(out)


SYSTEMS = {
    OURS: System(
        OURS,
        "bench.ours",
        "ours",
        sleep_sync=_flags(**OURS_SYNC),
        sleep_async=_flags(**OURS_ASYNC),
    ),
    TASKSDB: System(
        TASKSDB,
        "bench.peers.tasksdb_drive",
        "peers",
        bulk=False,
        capped=True,
        sleep_sync=_flags(procs=TASKSDB_SYNC_PROCS),
        # It polls once a second: the spacing must cover that interval.
        pickup=("--jitter", "1.0"),
    ),
    PROCRASTINATE: System(
        PROCRASTINATE,
        "bench.peers.procrastinate_drive",
        "peers",
        engines=("postgres",),
        sleep_sync=_flags(**PROCRASTINATE_SYNC),
    ),
    PGQUEUER: System(
        PGQUEUER,
        "bench.peers.pgqueuer_drive",
        "peers",
        engines=("postgres",),
        sleep_sync=_flags(**PGQUEUER_SYNC),
        sleep_async=_flags(**PGQUEUER_ASYNC),
    ),
}


def system_cases(
    system: System, engine: str, jobs: int, slow_jobs: int, lat: list[str]
) -> list[Case]:
    """The cases of one system on one engine, in the order they interleave."""
    if engine not in system.engines:
        return []
    n = str(jobs)
    drained = str(min(jobs, slow_jobs)) if system.capped else n

    def case(metric: str, *args: str) -> Case:
        return Case(
            metric, system.name, engine, system.module, [*args, "--engine", engine], system.python
        )

    out = [case("enqueue_one", "enqueue", "--jobs", n)]
    if system.bulk:
        out.append(case("enqueue_bulk", "bulk", "--jobs", n))
    out += [
        case("drain_1", "drain", "--jobs", drained, "--procs", "1"),
        case("drain_2", "drain", "--jobs", drained, "--procs", "2"),
    ]
    if system.sleep_sync is not None:
        out.append(
            case("sleep_sync", "drain", "--jobs", drained, "--kind", "sleep", *system.sleep_sync)
        )
    if system.sleep_async is not None:
        out.append(
            case("sleep_async", "drain", "--jobs", drained, "--kind", "async", *system.sleep_async)
        )
    out.append(case("pickup", "latency", *lat, *system.pickup))
    return out


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
    out: list[Case] = []
    budget = "10" if smoke else "30"
    lat = ["--samples", str(samples), "--budget", budget]
    ours = SYSTEMS[OURS]
    for engine in engines:
        out += system_cases(ours, engine, jobs, slow_jobs, lat)
        # Beside drain_1: the same drain with a concurrency limit on every job.
        out.append(
            Case(
                "drain_limited",
                OURS,
                engine,
                ours.module,
                ["drain", "--jobs", str(jobs), "--procs", "1", "--kind", "limited",
                 "--engine", engine],
            )
        )  # fmt: skip
        # Beside enqueue_one and drain_1: the same with a typed payload (django_jobs.payloads).
        out += [
            Case("enqueue_typed", OURS, engine, ours.module,
                 ["enqueue", "--jobs", str(jobs), "--kind", "typed", "--engine", engine]),
            Case("drain_typed", OURS, engine, ours.module,
                 ["drain", "--jobs", str(jobs), "--procs", "1", "--kind", "typed",
                  "--engine", engine]),
        ]  # fmt: skip
        if not smoke:
            big = Case(
                "scale",
                OURS,
                engine,
                ours.module,
                ["scale", "--jobs", str(jobs), "--db", "bench_jobs_big", "--engine", engine],
            )
            memory = Case(
                "memory",
                OURS,
                engine,
                ours.module,
                ["memory", "--jobs", str(memory_jobs), "--engine", engine],
                once=True,
            )
            out += [big, memory]
        for peer in PEERS:
            if peer in peers:
                out += system_cases(SYSTEMS[peer], engine, jobs, slow_jobs, lat)
    return out
