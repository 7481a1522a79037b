"""When a long-lived worker process should make way for a fresh one."""

from __future__ import annotations

import logging
import os

from ..conf import WorkerGroup

logger = logging.getLogger("django_jobs.worker")

#: Jobs between two reads of the process's memory.
MEMORY_CHECK_EVERY = 16


def rss_mb() -> float:
    """This process's resident memory in MB (Linux; 0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as statm:
            pages = int(statm.read().split()[1])
    except OSError:
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / 1_048_576


class Recycling:
    """``MAX_JOBS`` and ``MAX_MEMORY_MB`` of one worker group."""

    def __init__(self, group: WorkerGroup, identity: str) -> None:
        self.group = group
        self.identity = identity
        #: Jobs done at which memory is next compared with MAX_MEMORY_MB.
        self.next_memory_check = 1

    def due(self, jobs_done: int) -> bool:
        group = self.group
        if group.max_jobs and jobs_done >= group.max_jobs:
            logger.info("[jobs] %s ran %s jobs: recycling", self.identity, jobs_done)
            return True
        # Only after a job: a fresh process already above the limit would otherwise
        # restart forever without doing any work. Then every few jobs (reading /proc).
        if group.max_memory_mb and jobs_done >= self.next_memory_check:
            self.next_memory_check = jobs_done + MEMORY_CHECK_EVERY
            used = rss_mb()
            if used > group.max_memory_mb:
                logger.info("[jobs] %s uses %.0f MB: recycling", self.identity, used)
                return True
        return False

    def claim_limit(self, jobs_done: int, running: int) -> int | None:
        """At most this many more jobs may be claimed before recycling (None: no limit)."""
        if not self.group.max_jobs:
            return None
        return self.group.max_jobs - jobs_done - running
