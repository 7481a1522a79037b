"""Settings: the only reader of ``settings.JOBS``.

The dictionary is parsed once into frozen dataclasses and re-parsed when a test changes
the setting. Parsing is lenient (a bad value falls back to its default) because the system
checks in :mod:`django_jobs.checks` report every problem with an id and a hint; code that
runs workers calls :func:`jobs_settings` and trusts it.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import cached_property
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from . import placement

#: Top-level keys of ``settings.JOBS`` and their defaults.
TOP_DEFAULTS: dict[str, Any] = {
    "DATABASE": "default",
    # A list of names, or a dict of name -> {"DATABASE": alias} for queues whose jobs
    # live in another database (see JobsSettings.database_for).
    "QUEUES": ["default"],
    "WORKERS": None,  # None: one group with WORKER_DEFAULTS
    "HEARTBEAT_TIMEOUT": 60,
    "PID_DIR": None,  # None: <tempdir>/django_jobs
    "LOG_FILE": None,
    "SCHEDULE": {},  # key -> entry; see SCHEDULE_DEFAULTS and django_jobs.recurring
    "PRUNE": {},  # {}: every PRUNE_DEFAULTS; None or False: no built-in prune schedule
    # django.tasks backend (django_jobs.tasks): finished task rows are kept this many
    # seconds for their results (None: for ever), and the modules besides installed apps'
    # whose tasks workers may import.
    "TASK_RESULTS_TTL": 24 * 3600,
    "TASK_MODULES": [],
    # Seconds a running job has to stop once cancelled, before its worker process is
    # stopped (and replaced); 0 stops it at once.
    "CANCEL_GRACE": 5,
    "MAX_SNOOZES": 100,  # times one job may Snooze before it fails
    # Prometheus metrics (django_jobs.metrics): None is off; a dict turns counting on,
    # with METRICS_DEFAULTS for its keys.
    "METRICS": None,
    # OpenTelemetry (django_jobs.tracing), when opentelemetry-api is installed.
    "TRACING": True,
    "EVENTS": {},  # see EVENTS_DEFAULTS and django_jobs.events
    # PostgreSQL behind a transaction-pooling PgBouncer: an alias of the same database that
    # connects directly, used only to LISTEN for wake-ups and events (None: the jobs
    # database itself; workers poll when it turns out to be pooled). A dict maps each
    # jobs database alias to its own.
    "LISTEN_DATABASE": None,
    # Jobs run by threads inside each web process (django_jobs.runtime.embedded): None or
    # {} is off; a dict with "ENABLED": True turns it on, with EMBEDDED_DEFAULTS for its keys.
    "EMBEDDED": None,
}

#: Keys of ``settings.JOBS["EMBEDDED"]`` and their defaults.
EMBEDDED_DEFAULTS: dict[str, Any] = {
    "ENABLED": False,
    # Jobs one web process runs at once (a whole number, or "cpus").
    "THREADS": 4,
    "QUEUES": "*",
    # Seconds running jobs have to end when the web process exits; then they are given
    # back unspent. Keep it below the server's own graceful-stop time.
    "SHUTDOWN_TIMEOUT": 20,
}

#: The value of ``COUNT`` (worker groups) or ``THREADS`` (embedded) meaning one per CPU.
CPUS = "cpus"
#: The worker-table ``group`` of embedded workers (no group of ``WORKERS``).
EMBEDDED_GROUP = -1

#: Keys of ``settings.JOBS["EVENTS"]`` and their defaults (seconds).
EVENTS_DEFAULTS: dict[str, Any] = {
    # How often a subscriber on SQLite or MySQL/MariaDB reads the events table.
    "POLL_INTERVAL": 0.1,
    # How long pruning keeps rows of the events table (None: for ever).
    "RETENTION": 3600,
    # How long a token from signed_job_token() lets its holder watch the job.
    "TOKEN_MAX_AGE": 24 * 3600,
    # The event stream view sends a comment (and re-reads the job) this often when quiet.
    "KEEPALIVE": 15,
}

#: Keys of ``settings.JOBS["METRICS"]`` and their defaults. PORT None: the supervisor
#: serves no metrics (the view still does).
METRICS_DEFAULTS: dict[str, Any] = {
    "PORT": None,
    "ADDRESS": "127.0.0.1",
}

#: Keys of ``settings.JOBS["PRUNE"]`` and their defaults (ages in seconds).
PRUNE_DEFAULTS: dict[str, Any] = {
    # Hourly, at a minute few people pick, so it does not pile onto the :00 crowd.
    "CRON": "17 * * * *",
    "SUCCEEDED_AFTER": 24 * 3600,
    "FAILED_AFTER": 30 * 24 * 3600,
    "HISTORY_AFTER": 30 * 24 * 3600,
    "BATCH_SIZE": 1000,
    "QUEUE": None,  # None: "default" when it is in QUEUES, else the first of QUEUES
}

#: Worker rows are pruned when their heartbeat is this many HEARTBEAT_TIMEOUTs old, and
#: at least WORKER_ROWS_MIN_AGE: long after the lifeline has recovered their jobs, and
#: late enough that `jobs status` can still show a worker that just died.
WORKER_ROWS_TIMEOUTS = 10
WORKER_ROWS_MIN_AGE = 3600

#: Keys of one entry of ``settings.JOBS["SCHEDULE"]`` and their defaults (JOB and CRON are
#: required; TIMEZONE None means settings.TIME_ZONE, QUEUE/PRIORITY None the job's own).
SCHEDULE_DEFAULTS: dict[str, Any] = {
    "JOB": None,
    "CRON": None,
    "ARGS": [],
    "KWARGS": {},
    "TIMEZONE": None,
    "QUEUE": None,
    "PRIORITY": None,
    "CATCH_UP": True,
}

#: Keys of one worker group in ``settings.JOBS["WORKERS"]`` and their defaults.
WORKER_DEFAULTS: dict[str, Any] = {
    "QUEUE": "*",
    "COUNT": 1,
    "MAX_ATTEMPTS": 24,
    "MAX_RUNTIME": 14400,
    "DELETE_FAILED_JOBS": False,
    "DELETE_SUCCESSFUL_JOBS": True,
    "SLEEP_DELAY": 5,
    "THREADS": 1,
    "ASYNC_CONCURRENCY": 10,
    "BATCH_SIZE": 100,
    "MAX_JOBS": None,
    "MAX_MEMORY_MB": None,
    # At most this many jobs of each of the group's queues run at once, across every
    # worker and host (None: no limit); see django_jobs.limits.
    "CONCURRENCY": None,
    # At most this many jobs of each of the group's queues start per period, across every
    # worker and host ("100/m", "10/s", "5000/h"; None: no limit); see django_jobs.rates.
    "RATE_LIMIT": None,
    # The database the group's workers claim from (None: its queues' database).
    "DATABASE": None,
}


@dataclass(frozen=True)
class WorkerGroup:
    index: int
    queues: tuple[str, ...] | None  # None means every queue ("*")
    count: int = 1
    max_attempts: int = 24
    max_runtime: float = 14400
    delete_failed_jobs: bool = False
    delete_successful_jobs: bool = True
    sleep_delay: float = 5
    threads: int = 1
    async_concurrency: int = 10
    batch_size: int = 100
    max_jobs: int | None = None
    max_memory_mb: int | None = None
    #: ``CONCURRENCY``: the per-queue concurrency limit of the queues this group's
    #: policy covers (``JobsSettings.policy_for``), None for no limit.
    concurrency: int | None = None
    #: ``RATE_LIMIT``: the per-queue rate limit of the queues this group's policy covers
    #: as written ("100/m"; ``django_jobs.rates.parse`` reads it), None for no limit.
    rate_limit: str | None = None
    #: The database the group's workers claim from (resolved by ``parse``).
    database: str = "default"

    @property
    def queue_label(self) -> str:
        """The queue part of a worker identity: ``*`` or names joined with ``+``."""
        return "*" if self.queues is None else "+".join(self.queues)

    def serves(self, queue: str) -> bool:
        return self.queues is None or queue in self.queues


@dataclass(frozen=True)
class PruneSettings:
    """``JOBS["PRUNE"]``; an age of None keeps those rows for ever."""

    enabled: bool = True  # False: no built-in schedule (``jobs prune`` still works)
    cron: str = PRUNE_DEFAULTS["CRON"]
    succeeded_after: timedelta | None = timedelta(seconds=PRUNE_DEFAULTS["SUCCEEDED_AFTER"])
    failed_after: timedelta | None = timedelta(seconds=PRUNE_DEFAULTS["FAILED_AFTER"])
    history_after: timedelta | None = timedelta(seconds=PRUNE_DEFAULTS["HISTORY_AFTER"])
    batch_size: int = PRUNE_DEFAULTS["BATCH_SIZE"]
    queue: str = "default"  # where the built-in schedule enqueues django_jobs.prune


@dataclass(frozen=True)
class MetricsSettings:
    """``JOBS["METRICS"]``: counting is on; the supervisor serves them on ``port``."""

    port: int | None = None
    address: str = METRICS_DEFAULTS["ADDRESS"]


@dataclass(frozen=True)
class EventsSettings:
    """``JOBS["EVENTS"]`` (see django_jobs.events)."""

    poll_interval: float = EVENTS_DEFAULTS["POLL_INTERVAL"]
    retention: timedelta | None = timedelta(seconds=EVENTS_DEFAULTS["RETENTION"])
    token_max_age: float = EVENTS_DEFAULTS["TOKEN_MAX_AGE"]
    keepalive: float = EVENTS_DEFAULTS["KEEPALIVE"]


@dataclass(frozen=True)
class EmbeddedSettings:
    """``JOBS["EMBEDDED"]`` (see django_jobs.runtime.embedded)."""

    enabled: bool = False
    threads: int = EMBEDDED_DEFAULTS["THREADS"]
    queues: tuple[str, ...] | None = None  # None means every queue ("*")
    shutdown_timeout: float = EMBEDDED_DEFAULTS["SHUTDOWN_TIMEOUT"]


@dataclass(frozen=True)
class JobsSettings:
    #: This process's jobs database: ``JOBS["DATABASE"]``, or in a worker process the
    #: database of its group (``use_database``).
    database: str = "default"
    #: ``JOBS["DATABASE"]``: where queues without a database of their own live.
    main_database: str = "default"
    #: (queue, alias) for every queue whose jobs live outside ``main_database``.
    queue_databases: tuple[tuple[str, str], ...] = ()
    #: ``LISTEN_DATABASE`` as pairs (jobs database alias, alias to LISTEN through).
    listen_databases: tuple[tuple[str, str], ...] = ()
    queues: tuple[str, ...] = ("default",)
    workers: tuple[WorkerGroup, ...] = field(default_factory=lambda: (WorkerGroup(index=0),))
    heartbeat_timeout: float = 60
    pid_dir: str = ""
    log_file: str | None = None
    #: ``JOBS["SCHEDULE"]`` entries whose key is a string and whose value is a dict, as
    #: written; django_jobs.recurring.schedule turns them into Schedule objects.
    schedule: tuple[tuple[str, dict[str, Any]], ...] = ()
    prune: PruneSettings = field(default_factory=PruneSettings)
    #: How long finished ``django.tasks`` rows are kept (None: for ever).
    task_results_ttl: timedelta | None = timedelta(seconds=TOP_DEFAULTS["TASK_RESULTS_TTL"])
    task_modules: tuple[str, ...] = ()
    cancel_grace: float = 5
    max_snoozes: int = TOP_DEFAULTS["MAX_SNOOZES"]
    #: None: no metrics are counted (``JOBS["METRICS"]`` unset).
    metrics: MetricsSettings | None = None
    tracing: bool = True
    events: EventsSettings = field(default_factory=EventsSettings)
    embedded: EmbeddedSettings = field(default_factory=EmbeddedSettings)

    @property
    def worker_rows_max_age(self) -> timedelta:
        """How old a worker row's heartbeat must be before pruning deletes the row."""
        seconds = max(self.heartbeat_timeout * WORKER_ROWS_TIMEOUTS, WORKER_ROWS_MIN_AGE)
        return timedelta(seconds=seconds)

    @property
    def heartbeat_interval(self) -> float:
        """How often a worker writes its heartbeat: a sixth of the timeout, at most 10 s."""
        return max(0.05, min(10.0, self.heartbeat_timeout / 6))

    @property
    def databases(self) -> tuple[str, ...]:
        """Every database alias that holds jobs, ``main_database`` first."""
        others = [alias for _, alias in self.queue_databases]
        others += [group.database for group in self.workers]
        return tuple(dict.fromkeys([self.main_database, *others]))

    def database_for(self, queue: str) -> str:
        """The alias that holds ``queue``'s jobs (``JOBS["QUEUES"]`` or its worker group)."""
        for name, alias in self.queue_databases:
            if name == queue:
                return alias
        return self.main_database

    def listen_database(self, alias: str) -> str | None:
        """The alias workers of jobs database ``alias`` LISTEN through, if one is set."""
        return dict(self.listen_databases).get(alias)

    def group_for_queue(self, queue: str) -> WorkerGroup | None:
        """The worker group whose policy applies to ``queue``'s jobs, wherever they run.

        The one rule, used by workers, recovery, ``run_jobs`` and the admin alike: the
        first group that names the queue, else the first ``"*"`` group (None: no group
        serves it). Its ``MAX_ATTEMPTS`` and ``DELETE_*`` apply even when a job of the
        queue runs in another group that also serves it.
        """
        named = [g for g in self.workers if g.queues is not None and queue in g.queues]
        if named:
            return named[0]
        return next((g for g in self.workers if g.queues is None), None)

    @cached_property
    def queue_concurrency(self) -> dict[str, int]:
        """The ``CONCURRENCY`` of each queue whose policy has one (read on every enqueue)."""
        limits = {q: self.policy_for(q).concurrency for q in self.queues}
        return {queue: limit for queue, limit in limits.items() if limit is not None}

    @cached_property
    def queue_rate_limits(self) -> dict[str, str]:
        """The ``RATE_LIMIT`` of each queue whose policy has one, as written."""
        rates = {q: self.policy_for(q).rate_limit for q in self.queues}
        return {queue: rate for queue, rate in rates.items() if rate is not None}

    def policy_for(self, queue: str) -> WorkerGroup:
        """``group_for_queue``, or the default options for a queue no group serves."""
        return self.group_for_queue(queue) or WorkerGroup(index=0, queues=None)


def raw_settings() -> dict[str, Any]:
    value = getattr(settings, "JOBS", None)
    return value if isinstance(value, dict) else {}


def _pick(raw: dict[str, Any], key: str, defaults: dict[str, Any], types: tuple[type, ...]):
    value = raw.get(key, defaults[key])
    if value is None or (isinstance(value, bool) and bool not in types):
        return defaults[key]
    return value if isinstance(value, types) else defaults[key]


def _queues_of(value: Any) -> tuple[str, ...] | None:
    if value == "*" or value is None:
        return None
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple) and all(isinstance(q, str) for q in value):
        return None if "*" in value else tuple(value)
    return None


def cpu_count() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS and Windows have no affinity call
        return os.cpu_count() or 1


def _how_many(raw: dict[str, Any], key: str, defaults: dict[str, Any]) -> int:
    """A whole number of at least 1, where ``"cpus"`` means one per CPU."""
    if raw.get(key) == CPUS:
        return cpu_count()
    return max(1, _pick(raw, key, defaults, (int,)))


def _group(index: int, raw: dict[str, Any]) -> WorkerGroup:
    number = (int, float)
    return WorkerGroup(
        index=index,
        queues=_queues_of(raw.get("QUEUE", "*")),
        count=_how_many(raw, "COUNT", WORKER_DEFAULTS),
        max_attempts=max(1, _pick(raw, "MAX_ATTEMPTS", WORKER_DEFAULTS, (int,))),
        max_runtime=_pick(raw, "MAX_RUNTIME", WORKER_DEFAULTS, number),
        delete_failed_jobs=_pick(raw, "DELETE_FAILED_JOBS", WORKER_DEFAULTS, (bool,)),
        delete_successful_jobs=_pick(raw, "DELETE_SUCCESSFUL_JOBS", WORKER_DEFAULTS, (bool,)),
        sleep_delay=_pick(raw, "SLEEP_DELAY", WORKER_DEFAULTS, number),
        threads=max(1, _pick(raw, "THREADS", WORKER_DEFAULTS, (int,))),
        async_concurrency=max(1, _pick(raw, "ASYNC_CONCURRENCY", WORKER_DEFAULTS, (int,))),
        batch_size=max(1, _pick(raw, "BATCH_SIZE", WORKER_DEFAULTS, (int,))),
        max_jobs=_pick(raw, "MAX_JOBS", WORKER_DEFAULTS, (int,)),
        max_memory_mb=_pick(raw, "MAX_MEMORY_MB", WORKER_DEFAULTS, (int,)),
        concurrency=_positive(raw.get("CONCURRENCY")),
        rate_limit=raw.get("RATE_LIMIT") if isinstance(raw.get("RATE_LIMIT"), str) else None,
        database=placement.as_alias(raw.get("DATABASE")) or "",  # "" until parse() resolves it
    )


def _positive(value: Any) -> int | None:
    """A limit of at least 1, or None (bad values are reported by the system checks)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    return None


def _age(value: Any, default: float) -> timedelta | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value if value >= timedelta(0) else timedelta(seconds=default)
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return timedelta(seconds=value)
    return timedelta(seconds=default)


def _prune(value: Any, queues: tuple[str, ...]) -> PruneSettings:
    queue = value.get("QUEUE") if isinstance(value, dict) else None
    if queue not in queues:
        queue = queues[0] if queues and "default" not in queues else "default"
    if value is None or value is False:
        return PruneSettings(enabled=False, queue=queue)
    raw = value if isinstance(value, dict) else {}
    cron = raw.get("CRON")
    batch_size = _pick(raw, "BATCH_SIZE", PRUNE_DEFAULTS, (int,))
    return PruneSettings(
        cron=cron if isinstance(cron, str) and cron.strip() else PRUNE_DEFAULTS["CRON"],
        **{
            key.lower(): _age(raw.get(key, PRUNE_DEFAULTS[key]), PRUNE_DEFAULTS[key])
            for key in ("SUCCEEDED_AFTER", "FAILED_AFTER", "HISTORY_AFTER")
        },
        batch_size=batch_size if batch_size >= 1 else PRUNE_DEFAULTS["BATCH_SIZE"],
        queue=queue,
    )


def _schedule(value: Any) -> tuple[tuple[str, dict[str, Any]], ...]:
    if not isinstance(value, dict):
        return ()
    return tuple(
        (key, dict(entry))
        for key, entry in value.items()
        if isinstance(key, str) and isinstance(entry, dict)
    )


def parse(raw: dict[str, Any]) -> JobsSettings:
    raw_queues = raw.get("QUEUES", TOP_DEFAULTS["QUEUES"])
    queues = placement.queue_names(raw_queues)
    if queues is None or not all(isinstance(q, str) for q in queues):
        queues = TOP_DEFAULTS["QUEUES"]
    workers = raw.get("WORKERS")
    if not isinstance(workers, list | tuple) or not workers:
        workers = [{}]
    groups = tuple(_group(i, w if isinstance(w, dict) else {}) for i, w in enumerate(workers))
    main = raw.get("DATABASE") if isinstance(raw.get("DATABASE"), str) else "default"
    queue_databases, groups = placement.placed(raw_queues, groups, main)
    pid_dir = raw.get("PID_DIR") or os.path.join(tempfile.gettempdir(), "django_jobs")
    return JobsSettings(
        database=main,
        main_database=main,
        queue_databases=queue_databases,
        listen_databases=placement.listen(raw.get("LISTEN_DATABASE"), raw.get("DATABASE")),
        queues=tuple(queues),
        workers=groups,
        heartbeat_timeout=_pick(raw, "HEARTBEAT_TIMEOUT", TOP_DEFAULTS, (int, float)),
        pid_dir=str(pid_dir),
        log_file=raw.get("LOG_FILE") if isinstance(raw.get("LOG_FILE"), str) else None,
        schedule=_schedule(raw.get("SCHEDULE")),
        prune=_prune(raw.get("PRUNE", TOP_DEFAULTS["PRUNE"]), tuple(queues)),
        task_results_ttl=_age(
            raw.get("TASK_RESULTS_TTL", TOP_DEFAULTS["TASK_RESULTS_TTL"]),
            TOP_DEFAULTS["TASK_RESULTS_TTL"],
        ),
        task_modules=_names(raw.get("TASK_MODULES")),
        cancel_grace=_cancel_grace(raw.get("CANCEL_GRACE", TOP_DEFAULTS["CANCEL_GRACE"])),
        max_snoozes=max(0, _pick(raw, "MAX_SNOOZES", TOP_DEFAULTS, (int,))),
        metrics=_metrics(raw.get("METRICS")),
        tracing=raw.get("TRACING") is not False,
        events=_events(raw.get("EVENTS")),
        embedded=_embedded(raw.get("EMBEDDED")),
    )


def _embedded(value: Any) -> EmbeddedSettings:
    raw = value if isinstance(value, dict) else {}
    timeout = _pick(raw, "SHUTDOWN_TIMEOUT", EMBEDDED_DEFAULTS, (int, float))
    return EmbeddedSettings(
        enabled=raw.get("ENABLED") is True,
        threads=_how_many(raw, "THREADS", EMBEDDED_DEFAULTS),
        queues=_queues_of(raw.get("QUEUES", EMBEDDED_DEFAULTS["QUEUES"])),
        shutdown_timeout=max(0.0, float(timeout)),
    )


def _events(value: Any) -> EventsSettings:
    raw = value if isinstance(value, dict) else {}

    def seconds(key: str) -> float:
        number = _pick(raw, key, EVENTS_DEFAULTS, (int, float))
        return float(number) if number > 0 else float(EVENTS_DEFAULTS[key])

    retention = EVENTS_DEFAULTS["RETENTION"]
    return EventsSettings(
        poll_interval=seconds("POLL_INTERVAL"),
        retention=_age(raw.get("RETENTION", retention), retention),
        token_max_age=seconds("TOKEN_MAX_AGE"),
        keepalive=seconds("KEEPALIVE"),
    )


def _metrics(value: Any) -> MetricsSettings | None:
    if not isinstance(value, dict):
        return None
    port = value.get("PORT")
    address = value.get("ADDRESS")
    return MetricsSettings(
        port=port if _is_port(port) else None,
        address=address if isinstance(address, str) and address else METRICS_DEFAULTS["ADDRESS"],
    )


def _is_port(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list | tuple):
        return tuple(name for name in value if isinstance(name, str) and name)
    return ()


def _cancel_grace(value: Any) -> float:
    if isinstance(value, timedelta):
        value = value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 24 * 3600:
        return float(value)
    return float(TOP_DEFAULTS["CANCEL_GRACE"])


_cached: JobsSettings | None = None
#: Set in a worker process whose group claims from a database of its own.
_process_database: str | None = None


def jobs_settings() -> JobsSettings:
    """The parsed ``settings.JOBS``, cached until the setting changes."""
    global _cached
    if _cached is None:
        parsed = parse(raw_settings())
        if _process_database is not None:
            parsed = replace(parsed, database=_process_database)
        _cached = parsed
    return _cached


def use_database(alias: str | None) -> None:
    """This process (a worker) works on ``alias``: its claims, heartbeats, recovery and
    controls go there (None: back to ``JOBS["DATABASE"]``). Enqueueing still routes each
    call by its queue."""
    global _process_database, _cached
    _process_database = alias
    _cached = None


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    global _cached
    if setting == "JOBS":
        _cached = None
