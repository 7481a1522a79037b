"""``jobs status``: the supervisor, every worker process with what it runs, every queue."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import DatabaseError, InterfaceError

from .. import clock
from ..conf import jobs_settings
from ..models import Job, Worker


def _duration(delta: timedelta | None) -> str:
    if delta is None:
        return "-"
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"


def _printable(text: object) -> str:
    """Stored text goes to a terminal: no escape sequences or line breaks from a job."""
    return "".join(ch if ch.isprintable() else "?" for ch in str(text))


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[_printable(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])


def _supervisor_line() -> str:
    from .daemon import pid_file, running_pid

    pid = running_pid()
    if pid:
        return f"Supervisor: running on this host (pid {pid}, pid file {pid_file()})"
    return "Supervisor: no detached supervisor on this host (jobs start); `jobs work` may run"


def _alive(row: Worker, fresh: bool) -> str:
    from .heartbeat import HOST, process_alive

    if row.host == HOST:
        if not process_alive(row.pid):
            return "dead"
        return "yes" if fresh else "hung?"
    return "yes" if fresh else "stale"


def _job_text(job: Job, now: datetime) -> str:
    text = f"#{job.pk} {job.name} running {_duration(now - job.locked_at)}"
    if job.progress is not None:
        text += f", {job.progress}%"
        if job.progress_message:
            text += f" {job.progress_message}"
    return text


def workers_table(now: datetime) -> str:
    settings = jobs_settings()
    alias = settings.database
    workers = list(Worker.objects.using(alias).order_by("group", "identity"))
    held: dict[str, list[Job]] = defaultdict(list)
    running = (
        Job.objects.using(alias)
        .filter(locked_at__isnull=False)
        .only("id", "name", "locked_at", "locked_by", "progress", "progress_message")
        .order_by("locked_at", "id")
    )
    for job in running:
        held[job.locked_by or ""].append(job)
    cutoff = now - timedelta(seconds=settings.heartbeat_timeout)
    rows = []
    for worker in workers:
        jobs = held.pop(worker.identity, [])
        texts = [_job_text(job, now) for job in jobs] or ["idle"]
        rows.append(
            [
                worker.group, worker.identity, worker.host, worker.pid,
                _alive(worker, worker.heartbeat_at >= cutoff),
                _duration(now - worker.heartbeat_at) + " ago", worker.jobs_done, texts[0],
            ]
        )  # fmt: skip
        rows += [["", "", "", "", "", "", "", text] for text in texts[1:]]
    headers = ["GROUP", "WORKER", "HOST", "PID", "ALIVE", "HEARTBEAT", "DONE", "RUNNING"]
    out = [f"Workers ({len(workers)} registered)", table(headers, rows) if rows else "(none)"]
    orphans = sum(len(jobs) for jobs in held.values())
    if orphans:
        out.append(
            f"{orphans} running job(s) belong to workers that are gone; a live worker "
            f"recovers them within {2 * settings.heartbeat_timeout:g} s"
        )
    return "\n".join(out)


def queues_table(now: datetime) -> str:
    from ..stats import queue_stats

    rows = [
        [
            stats.queue + ("" if stats.configured else " (not in JOBS['QUEUES'])"),
            stats.ready, stats.later, stats.running, stats.failed,
            _duration(stats.oldest_ready_age),
        ]
        for stats in queue_stats(now=now)
    ]  # fmt: skip
    headers = ["QUEUE", "READY", "LATER", "RUNNING", "FAILED", "OLDEST READY"]
    return "Queues\n" + table(headers, rows)


def render_status() -> str:
    now = clock.now()
    try:
        tables = [workers_table(now), queues_table(now)]
    except (DatabaseError, InterfaceError) as exc:
        tables = [f"The jobs database is unreachable: {exc}"]
    return "\n\n".join([_supervisor_line(), *tables]) + "\n"
