"""``jobs workoff``: run every job that is ready now, then return."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

from .. import clock
from ..conf import jobs_settings, use_database
from ..models import Job
from ..recurring.scheduler import refuse_invalid_schedules, run_due
from ..storage import OUTCOME_FAILED, OUTCOME_RETRY, Outcome, use_worker_connections
from .lifeline import recover_all
from .worker import Worker


class Progress:
    """done / total, failed and rate on one terminal line; silent when not a terminal."""

    def __init__(self, total: int, stream: TextIO) -> None:
        self.total = total
        self.stream = stream
        self.live = stream.isatty()
        self.done = self.failed = self.retried = 0
        self.started = time.monotonic()
        self.last_draw = 0.0

    def __call__(self, outcome: Outcome) -> None:
        self.done += 1
        self.failed += outcome.kind == OUTCOME_FAILED
        self.retried += outcome.kind == OUTCOME_RETRY
        now = time.monotonic()
        if self.live and now - self.last_draw > 0.1:
            self.last_draw = now
            self.draw()

    def rate(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-6)

    def draw(self) -> None:
        total = max(self.total, self.done)
        self.stream.write(
            f"\r[jobs] {self.done}/{total} done, {self.retried} to retry, "
            f"{self.failed} failed, {self.rate():.0f} jobs/s "
        )
        self.stream.flush()

    def summary(self) -> str:
        if self.live:
            self.stream.write("\n")
        return (
            f"[jobs] workoff: {self.done} jobs run, {self.retried} to retry later, "
            f"{self.failed} failed, {self.rate():.0f} jobs/s"
        )


def workoff(queue: str | None = None, stream: TextIO = sys.stderr) -> Progress:
    """Run every job ready now with the configured worker groups, one group at a time."""
    refuse_invalid_schedules()
    settings = jobs_settings()
    groups = [g for g in settings.workers if queue is None or g.serves(queue)]
    if queue is not None:
        from dataclasses import replace

        groups = [replace(g, queues=(queue,)) for g in groups[:1]]
    # A cron-driven workoff is the only worker some deployments have: it recovers what
    # dead workers held (unstarted jobs at once, started ones after their back-off) and
    # jobs past their deadline, as a resident worker's lifeline would.
    use_worker_connections()
    try:
        for alias in settings.databases:  # each database as its own workers see it
            use_database(alias)
            recovered = recover_all()
            if recovered:
                stream.write(f"[jobs] workoff: recovered {recovered} job(s) of dead workers\n")
        use_database(None)
        # ...and enqueues the due ticks of recurring schedules, so that a cron-driven
        # workoff gets them too (once each, whatever else runs a scheduler meanwhile).
        ticks = run_due()
        if ticks:
            stream.write(f"[jobs] workoff: enqueued {ticks} recurring job(s)\n")
        now = clock.now()
        ready = sum(Job.objects.using(alias).ready(now).count() for alias in settings.databases)
        progress = Progress(ready, stream)
        for alias in settings.databases:
            use_database(alias)
            for group in (g for g in groups if g.database == alias):
                worker = Worker(group, f"workoff-{os.getpid()}", workoff=True, on_outcome=progress)
                worker.run()
    finally:
        use_database(None)
    return progress
