"""Worker registration and heartbeats in the ``django_jobs_worker`` table."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from datetime import timedelta

from django.db import DatabaseError, InterfaceError, connections

from .. import clock
from ..conf import WorkerGroup, jobs_settings
from ..exceptions import WorkerIdentityInUse
from ..models import Worker
from ..storage import bound_lock_waits, get_storage

logger = logging.getLogger("django_jobs.worker")

HOST = socket.gethostname()


def new_instance() -> str:
    """A token for one process start: 32 random bits, unique among the live workers."""
    return secrets.token_hex(4)


def identity_for(group: WorkerGroup, worker_id: str | int, instance: str, host: str = HOST) -> str:
    """``django-jobs-worker.<queue>.<id>@<host>/<instance>``, one per process start.

    Host name and pid do not tell processes apart: containers share a fixed host name,
    and each PID namespace starts its pids again at 1. The instance token does, so no
    worker takes over, beats for or recovers the jobs of another host's worker.
    """
    return f"django-jobs-worker.{group.queue_label}.{worker_id}@{host}/{instance}"


def process_alive(pid: int) -> bool:
    """True for a running process; False for none, or a zombie nobody has reaped yet."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def register(identity: str, group: WorkerGroup) -> Worker:
    """Insert or take over this identity's row; refuse when another live process has it.

    Identities are unique per process start, so the row and jobs of an identity exist
    only when a caller chose the identity itself (``Worker(identity=...)``): jobs still
    locked by it belonged to a previous process that died and are recovered at once.
    """
    from .lifeline import recover_worker_jobs

    # The group's database, not this process's: an embedded worker of a queue in another
    # database runs in a web process whose jobs database is JOBS["DATABASE"].
    alias = group.database
    storage = get_storage(alias)
    now = clock.follow_database(storage.database_now)
    fresh = now - timedelta(seconds=jobs_settings().heartbeat_timeout)
    with storage.write_transaction():
        row = Worker.objects.using(alias).select_for_update().filter(identity=identity).first()
        if row is not None and row.pid != os.getpid() and row.heartbeat_at >= fresh:
            if row.host != HOST or process_alive(row.pid):
                raise WorkerIdentityInUse(
                    f"worker identity {identity} is in use by pid {row.pid} on {row.host} "
                    "(heartbeat fresh): give this worker another --id"
                )
        Worker.objects.using(alias).filter(identity=identity).delete()
        row = Worker.objects.using(alias).create(
            identity=identity, host=HOST, pid=os.getpid(), group=group.index,
            queues=group.queue_label, started_at=now, heartbeat_at=now,
        )  # fmt: skip
    # Before the first claim: everything this identity holds is a previous process's.
    recover_worker_jobs(identity, alias=alias)
    if abs(clock.offset()) >= clock.TOLERANCE:
        logger.warning(
            "[jobs] the clock of %s is %+.1f s off the database's: workers follow the "
            "database's clock, but jobs scheduled from this host use its own (check NTP)",
            HOST, -clock.offset(),
        )  # fmt: skip
    return row


def deregister(identity: str, alias: str | None = None) -> None:
    Worker.objects.using(alias or jobs_settings().database).filter(
        identity=identity, pid=os.getpid()
    ).delete()


def beat(identity: str, group: WorkerGroup, jobs_done: int) -> None:
    """Record that this process is alive; re-register if a lifeline removed our row.

    The heartbeat is the database's time, and this process follows its clock from here.
    """
    alias = group.database
    now = clock.follow_database(get_storage(alias).database_now)
    updated = (
        Worker.objects.using(alias)
        .filter(identity=identity, pid=os.getpid())
        .update(heartbeat_at=now, jobs_done=jobs_done)
    )
    if not updated:
        logger.warning("worker %s was presumed dead; registering again", identity)
        fields = {
            "host": HOST, "pid": os.getpid(), "group": group.index,
            "queues": group.queue_label, "heartbeat_at": now,
        }  # fmt: skip
        # Every time written explicitly: the model's defaults are local time under
        # USE_TZ = False, and django_jobs keeps UTC.
        Worker.objects.using(alias).update_or_create(
            identity=identity, defaults=fields, create_defaults={**fields, "started_at": now}
        )


class HeartbeatThread(threading.Thread):
    """Beats every heartbeat interval and runs the lifeline every few beats."""

    LIFELINE_EVERY = 3

    def __init__(self, identity: str, group: WorkerGroup, jobs_done: Callable[[], int]) -> None:
        super().__init__(name="django-jobs-heartbeat", daemon=True)
        self.identity = identity
        self.group = group
        self.jobs_done = jobs_done
        self.stop_event = threading.Event()
        #: When the last beat reached the database (``time.monotonic()``; registration
        #: counts), and since when beats have come without a gap of ``trust`` seconds.
        self.last_beat = self.trusted_since = time.monotonic()
        #: Half the heartbeat timeout: others recover this process's claims only after a
        #: whole timeout without a beat, so claims made since ``trusted_since`` are still
        #: its own while the last beat is younger than this.
        self.trust = jobs_settings().heartbeat_timeout / 2

    def vouches_for(self, claimed_at: float) -> bool:
        """Whether a job claimed at ``claimed_at`` (``time.monotonic()``) is still this
        process's to start: no gap in the beats since, long enough for another worker to
        have recovered it (a host cut off from the database, a process frozen)."""
        return time.monotonic() - self.last_beat < self.trust and claimed_at >= self.trusted_since

    def _beaten(self) -> None:
        now = time.monotonic()
        if now - self.last_beat >= self.trust:
            self.trusted_since = now  # claims made before the gap may have been recovered
        self.last_beat = now

    def run(self) -> None:
        from .lifeline import recover

        bound_lock_waits()
        interval = jobs_settings().heartbeat_interval
        timeout = jobs_settings().heartbeat_timeout
        beats = 0
        # Since when this process has reached the database without a break. Other
        # workers could not beat while it was away either: judging them before they had
        # a full timeout to beat again would take jobs from live workers.
        reachable_since: float | None = time.monotonic()
        try:
            while not self.stop_event.wait(interval):
                try:
                    beat(self.identity, self.group, self.jobs_done())
                    self._beaten()
                    if reachable_since is None:
                        reachable_since = time.monotonic()
                    beats += 1
                    if (
                        beats % self.LIFELINE_EVERY == 0
                        and time.monotonic() - reachable_since >= timeout
                    ):
                        recover(self.group.database)
                except (DatabaseError, InterfaceError) as exc:
                    reachable_since = None
                    logger.warning("heartbeat of %s failed: %s", self.identity, exc)
                    connections.close_all()
        finally:
            connections.close_all()

    def stop(self) -> None:
        self.stop_event.set()
