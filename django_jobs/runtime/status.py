"""``jobs status``: what runs (live workers by host and group), the supervisor, every worker
process with what it runs, every queue.

It leads with the worker table's live rows rather than this host's pid file: workers
under ``jobs work`` in the foreground, a process manager or another host have no detached
supervisor here, and "no supervisor" first would read as "nothing is running".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import DatabaseError, InterfaceError

from .. import clock
from ..conf import EMBEDDED_GROUP, jobs_settings
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


def _supervisor_line(live_here: list[Worker]) -> str:
    from .daemon import pid_file, running_pid

    pid = running_pid()
    if pid:
        return f"Supervisor: running on this host (pid {pid}, pid file {pid_file()}), detached"
    text = "Supervisor: no detached one on this host (`jobs start` starts one)"
    if not live_here:
        return text
    parents = sorted({_parent_pid(w.pid) for w in live_here} - {None, 1})
    under = f" under pid {', '.join(map(str, parents))}" if parents else ""
    return (
        f"{text}; the {len(live_here)} live worker(s) on this host run{under} "
        "(`jobs work` in the foreground, or a process manager)"
    )


def _parent_pid(pid: int) -> int | None:
    """The parent of a process on this host (Linux /proc), or None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return int(stat.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def running_summary(workers: list[Worker], held: dict[str, list[Job]], now: datetime) -> str:
    """Live workers counted by host and group, with how many of them run a job now."""
    from .heartbeat import HOST

    timeout = jobs_settings().heartbeat_timeout
    live = [w for w in workers if _is_live(w, now)]
    if not live:
        text = f"Running: no live worker (none has sent a heartbeat in the last {timeout:g} s)"
        if workers:
            text += f"; {len(workers)} registered worker row(s) are stale or dead (below)"
        return text
    counts: dict[tuple[str, int, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for worker in live:
        entry = counts[(worker.host, worker.group, worker.queues)]
        entry[0] += 1
        entry[1] += bool(held.get(worker.identity))
        entry[2] += len(held.get(worker.identity, ()))
    hosts = {w.host for w in live}
    jobs_now = sum(entry[2] for entry in counts.values())
    rows = [
        [host + (" (this host)" if host == HOST else ""), _group(group), queues, n, busy, running]
        for (host, group, queues), (n, busy, running) in sorted(counts.items())
    ]
    headline = (
        f"Running: {len(live)} live worker(s) on {len(hosts)} host(s), "
        f"{jobs_now} job(s) running now"
    )
    headers = ["HOST", "GROUP", "QUEUES", "LIVE", "BUSY", "JOBS"]
    return headline + "\n" + table(headers, rows)


def _group(index: int) -> int | str:
    return "embedded" if index == EMBEDDED_GROUP else index


def _is_live(worker: Worker, now: datetime) -> bool:
    cutoff = now - timedelta(seconds=jobs_settings().heartbeat_timeout)
    return _alive(worker, worker.heartbeat_at >= cutoff) == "yes"


def _alive(row: Worker, fresh: bool) -> str:
    from .heartbeat import HOST, process_alive

    if row.host == HOST:
        if not process_alive(row.pid):
            return "dead"
        return "yes" if fresh else "hung?"
    return "yes" if fresh else "stale"


def _job_text(job: Job, now: datetime) -> str:
    text = f"#{job.pk} {job.name}"
    if job.tag:
        text += f" [{job.tag}]"
    text += f" running {_duration(now - job.locked_at)}"
    if job.cancelled_at is not None:
        text += " (cancelled: stopping)"
    if job.progress is not None:
        text += f", {job.progress}%"
        if job.progress_message:
            text += f" {job.progress_message}"
    return text


def _load() -> tuple[list[Worker], dict[str, list[Job]]]:
    """Every registered worker, and the running jobs by the identity that holds them."""
    workers: list[Worker] = []
    held: dict[str, list[Job]] = defaultdict(list)
    for alias in jobs_settings().databases:
        workers += Worker.objects.using(alias).order_by("group", "identity")
        _load_running(alias, held)
    workers.sort(key=lambda worker: (worker.group, worker.identity))
    return workers, held


def _load_running(alias: str, held: dict[str, list[Job]]) -> None:
    running = (
        Job.objects.using(alias)
        .filter(locked_at__isnull=False)
        .only(
            "id",
            "name",
            "locked_at",
            "locked_by",
            "progress",
            "progress_message",
            "cancelled_at",
            "tag",
        )
        .order_by("locked_at", "id")
    )
    for job in running:
        held[job.locked_by or ""].append(job)


def workers_table(now: datetime, workers: list[Worker], held: dict[str, list[Job]]) -> str:
    settings = jobs_settings()
    held = {identity: list(jobs) for identity, jobs in held.items()}
    cutoff = now - timedelta(seconds=settings.heartbeat_timeout)
    rows = []
    for worker in workers:
        jobs = held.pop(worker.identity, [])
        texts = [_job_text(job, now) for job in jobs] or ["idle"]
        rows.append(
            [
                _group(worker.group), worker.identity, worker.host, worker.pid,
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
    from ..stats import placed_queue_stats

    settings = jobs_settings()
    placed = placed_queue_stats(now)
    all_stats = [stats for _, stats in placed]
    rows = [
        [
            stats.queue + ("" if stats.configured else " (not in JOBS['QUEUES'])"),
            stats.ready, stats.later, stats.running, stats.failed, stats.cancelled,
            _duration(stats.oldest_ready_age), "PAUSED" if stats.paused else "running",
        ]
        for stats in all_stats
    ]  # fmt: skip
    headers = ["QUEUE", "READY", "LATER", "RUNNING", "FAILED", "CANCELLED", "OLDEST READY", "STATE"]
    if len(settings.databases) > 1:  # queues in databases of their own: say where
        headers.append("DATABASE")
        for row, (alias, _) in zip(rows, placed, strict=True):
            row.append(alias)
    out = "Queues\n" + table(headers, rows)
    for stats in all_stats:
        if stats.pause is not None:
            pause = stats.pause
            out += (
                f"\n{stats.queue} paused {_duration(now - pause.paused_at)} ago"
                + (f" by {pause.paused_by}" if pause.paused_by else "")
                + (f": {pause.reason}" if pause.reason else "")
                + " (`jobs resume "
                + stats.queue
                + "` resumes it)"
            )
    return out + waiting_lines()


def waiting_lines() -> str:
    """Why jobs that are due do not run: the keys whose concurrency limit holds them, and
    those whose rate limit made them wait for a later moment."""
    from ..stats import rate_limited_keys, waiting_keys

    out = ""
    keys = [key for alias in jobs_settings().databases for key in waiting_keys(alias)]
    if keys:
        out += "\n\nWaiting for a slot\n" + "\n".join(
            f"{_printable(key.reason)}: {key.waiting} job(s) waiting" for key in keys
        )
    rated = [key for alias in jobs_settings().databases for key in rate_limited_keys(alias)]
    if rated:
        out += "\n\nRate limited\n" + "\n".join(_printable(key.reason) for key in rated)
    return out


#: Waiting jobs and unfinished batches listed by ``jobs status``, at most.
FLOW_ROWS = 10


def flows_table() -> str:
    """Jobs waiting for other jobs, and batches not finished yet ("" when there are none)."""
    return "\n\n".join(filter(None, map(_flows_of, jobs_settings().databases)))


def _flows_of(alias: str) -> str:
    from ..chaining import waiting_reason
    from ..models import Batch

    waiting = Job.objects.using(alias).waiting()
    count = waiting.count()
    out = []
    if count:
        rows = [
            [f"#{job.pk}", job.name, waiting_reason(job)]
            for job in waiting.order_by("id")[:FLOW_ROWS]
        ]
        out.append(
            f"Waiting for other jobs: {count}"
            + (f" (the first {FLOW_ROWS})" if count > FLOW_ROWS else "")
            + "\n"
            + table(["JOB", "NAME", "WHY"], rows)
        )
    batches = []
    for batch in Batch.objects.using(alias).order_by("-id")[: FLOW_ROWS * 5]:
        progress = batch.progress()
        if progress["pending"] or batch.closed_at is None:
            batches.append(
                [
                    batch.pk, batch.description or "-", "open" if batch.closed_at is None
                    else "closed", f"{progress['total'] - progress['pending']}/{progress['total']}",
                    progress["failed"],
                ]
            )  # fmt: skip
        if len(batches) == FLOW_ROWS:
            break
    if batches:
        out.append(
            "Unfinished batches\n"
            + table(["BATCH", "DESCRIPTION", "STATE", "ENDED", "FAILED"], batches)
        )
    return "\n\n".join(out)


def render_status() -> str:
    from .heartbeat import HOST

    now = clock.now()
    try:
        workers, held = _load()
        live_here = [w for w in workers if w.host == HOST and _is_live(w, now)]
        parts = [
            running_summary(workers, held, now),
            _supervisor_line(live_here),
            workers_table(now, workers, held),
            queues_table(now),
        ]
        flows = flows_table()
        if flows:
            parts.append(flows)
    except (DatabaseError, InterfaceError) as exc:
        parts = [f"The jobs database is unreachable: {exc}", _supervisor_line([])]
    return "\n\n".join(parts) + "\n"
