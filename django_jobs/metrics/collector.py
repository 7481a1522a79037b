"""Gauges read from the jobs table when Prometheus scrapes: queue depth, the age of the
oldest ready job, running jobs, paused queues and live workers.

Read at scrape time from the table every process shares, they are right whichever web
process, supervisor or host serves them, with no state to add up; every jobs database is
read (queues may live in databases of their own), each on its own. Four small queries
per database, each served by an index on every engine (tests/unit/test_metrics.py reads
their plans): ready rows by the due index (``run_at`` of claimable rows), running rows
by the lock index, live workers by the heartbeat index, pauses from their own small
table. Counting ready rows reads one index entry per ready job: a backlog of a million
costs a scrape some hundred milliseconds.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, InterfaceError, connections
from django.db.models import CharField, Count, Min, Value
from django.db.models.functions import Concat

from .. import clock
from ..conf import jobs_settings
from ..models import Job, QueuePause, Worker

logger = logging.getLogger("django_jobs.metrics")


class TableCollector:
    """A prometheus-client collector of the jobs table's state.

    ``alias``: read that database only (default: every jobs database, see
    :attr:`~django_jobs.conf.JobsSettings.databases`). ``close_connections``: close this
    thread's database connections after each scrape (the supervisor's endpoint serves
    each scrape on a thread of its own).

    A project with one jobs database gets the gauges without a ``database`` label, as
    before queues could live elsewhere. With more, every gauge has one: a queue's stray
    rows left in a database it moved out of would otherwise give two series of one name
    and labels, and workers and reachability are per database.
    """

    def __init__(self, alias: str | None = None, close_connections: bool = False) -> None:
        self.alias = alias
        self.close_connections = close_connections

    def describe(self) -> list[Any]:
        return []  # registering must not query the database

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        settings = jobs_settings()
        aliases = (self.alias,) if self.alias else settings.databases
        labelled = len(aliases) > 1
        up = GaugeMetricFamily(
            "django_jobs_database_up",
            "1 when the jobs table could be read for this scrape.",
            labels=[DATABASE_LABEL] if labelled else None,
        )
        states: list[tuple[str, dict[str, Any]]] = []
        try:
            for alias in aliases:
                # Each database on its own: one that is down leaves the others' gauges.
                try:
                    state = read_state(alias, _home_queues(alias) if labelled else None)
                except (DatabaseError, InterfaceError) as exc:
                    logger.warning("[jobs] metrics could not read the jobs table of %s: %s",
                                   alias, exc)  # fmt: skip
                    connections[alias].close()
                    up.add_metric([alias] if labelled else [], 0)
                    continue
                up.add_metric([alias] if labelled else [], 1)
                states.append((alias, state))
        finally:
            if self.close_connections:
                connections.close_all()
        yield up
        if states:
            yield from _families(states, GaugeMetricFamily, labelled)


#: The label that says which jobs database a gauge was read from (several only).
DATABASE_LABEL = "database"


def _home_queues(alias: str) -> list[str]:
    """The configured queues that live in ``alias``, in ``JOBS["QUEUES"]`` order."""
    settings = jobs_settings()
    return [queue for queue in settings.queues if settings.database_for(queue) == alias]


def read_state(alias: str, configured: list[str] | None = None) -> dict[str, Any]:
    """What the gauges show, in four index-served queries.

    ``configured``: the queues listed even without rows (default: every configured one).
    """
    settings = jobs_settings()
    now = clock.now()
    jobs = Job.objects.using(alias).order_by()
    ready = {
        row["q"]: (row["n"], row["oldest"])
        for row in ready_by_queue(jobs, now).values("q", "n", "oldest")
    }
    running = dict(running_by_queue(jobs).values_list("q", "n"))
    cutoff = now - timedelta(seconds=settings.heartbeat_timeout)
    live = Worker.objects.using(alias).filter(heartbeat_at__gte=cutoff)
    workers = list(live.values_list("queues", flat=True))
    paused = set(QueuePause.objects.using(alias).values_list("queue", flat=True))
    configured = list(settings.queues) if configured is None else configured
    queues = configured + sorted((set(ready) | set(running) | paused) - set(configured))
    return {
        "now": now, "queues": queues, "ready": ready, "running": running,
        "workers": workers, "paused": paused,
    }  # fmt: skip


def _per_queue(rows: Any) -> Any:
    """``rows`` grouped by queue (``q``).

    By an expression, not the column: SQLite would otherwise read the whole table in
    ``queue`` index order to spare a sort, instead of the few rows the filter's own
    index finds (every engine then sorts or hashes just those).
    """
    return rows.annotate(q=Concat("queue", Value(""), output_field=CharField())).values("q")


def ready_by_queue(jobs: Any, now: datetime) -> Any:
    """Ready rows per queue (``q``): their count (``n``) and oldest ``run_at`` (``oldest``)."""
    return _per_queue(jobs.ready(now)).annotate(n=Count("id"), oldest=Min("run_at"))


def running_by_queue(jobs: Any) -> Any:
    """Running rows per queue (``q``): their count (``n``)."""
    return _per_queue(jobs.running()).annotate(n=Count("id"))


def _serves(label: str, queue: str) -> bool:
    """Whether a worker whose row's ``queues`` is ``label`` (``*`` or ``a+b``) serves it."""
    return label == "*" or queue in label.split("+")


def _families(
    states: list[tuple[str, dict[str, Any]]], gauge: Any, labelled: bool
) -> Iterator[Any]:
    labels = ["queue", DATABASE_LABEL] if labelled else ["queue"]
    ready = gauge("django_jobs_queue_ready", "Jobs ready to run now (queue depth).", labels=labels)
    oldest = gauge(
        "django_jobs_queue_oldest_ready_age_seconds",
        "How long the oldest ready job has waited past its run time (0: none ready).",
        labels=labels,
    )
    running = gauge("django_jobs_queue_running", "Jobs running now.", labels=labels)
    serving = gauge(
        "django_jobs_queue_workers", "Live worker processes that serve the queue.", labels=labels
    )
    paused = gauge("django_jobs_queue_paused", "1 while the queue is paused.", labels=labels)
    live = gauge(
        "django_jobs_live_workers",
        "Worker processes with a fresh heartbeat.",
        labels=[DATABASE_LABEL] if labelled else None,
    )
    for alias, state in states:
        now = state["now"]
        where = [alias] if labelled else []
        for queue in state["queues"]:
            key = [queue, *where]
            count, first = state["ready"].get(queue, (0, None))
            ready.add_metric(key, count)
            age = (now - first).total_seconds() if first is not None else 0.0
            oldest.add_metric(key, max(age, 0.0))
            running.add_metric(key, state["running"].get(queue, 0))
            serving.add_metric(key, sum(_serves(label, queue) for label in state["workers"]))
            paused.add_metric(key, 1 if queue in state["paused"] else 0)
        live.add_metric(where, len(state["workers"]))
    yield from (ready, oldest, running, serving, paused, live)
