"""The jobs table and the table of live worker processes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar

from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import clock


class JobStatus(models.TextChoices):
    SCHEDULED = "scheduled", _("scheduled")
    RUNNING = "running", _("running")
    SUCCEEDED = "succeeded", _("succeeded")
    FAILED = "failed", _("failed")
    CANCELLED = "cancelled", _("cancelled")


#: Rows a worker may claim (with ``run_at <= now``). The claim index is partial on this
#: condition where the engine supports it (PostgreSQL, SQLite); MySQL/MariaDB get a
#: composite index with these columns first (both in migration 0002).
CLAIMABLE = Q(locked_at__isnull=True, failed_at__isnull=True, finished_at__isnull=True)


class JobQuerySet(models.QuerySet):
    """Querysets named after the states a job moves through."""

    def scheduled(self) -> JobQuerySet:
        """Jobs that wait: ready, due later, or blocked by their concurrency limit."""
        return self.filter(CLAIMABLE)

    # clock.now(), not timezone.now(): under USE_TZ = False run_at is naive UTC, and
    # timezone.now() would be local time.
    def ready(self, now=None) -> JobQuerySet:
        return self.scheduled().filter(run_at__lte=now or clock.now())

    def later(self, now=None) -> JobQuerySet:
        return self.scheduled().filter(run_at__gt=now or clock.now())

    def blocked(self) -> JobQuerySet:
        """Jobs waiting for a slot of their concurrency limit: not claimable until a
        job with the same key ends (``run_at`` is NULL while they wait)."""
        return self.filter(CLAIMABLE, run_at__isnull=True, concurrency_key__isnull=False).exclude(
            waiting_for__gt=0
        )

    def running(self) -> JobQuerySet:
        return self.filter(locked_at__isnull=False)

    def succeeded(self) -> JobQuerySet:
        return self.filter(finished_at__isnull=False)

    def failed(self) -> JobQuerySet:
        return self.filter(failed_at__isnull=False, cancelled_at__isnull=True)

    def cancelled(self) -> JobQuerySet:
        """Jobs cancelled for good: ``failed_at`` marks the end, ``cancelled_at`` the cause."""
        return self.filter(failed_at__isnull=False, cancelled_at__isnull=False)

    def retryable(self) -> JobQuerySet:
        """Jobs that ended without succeeding (failed or cancelled): what "retry" re-runs."""
        return self.filter(failed_at__isnull=False)

    def cancellable(self) -> JobQuerySet:
        """Jobs that have not ended and whose cancellation was not asked for yet."""
        return self.filter(failed_at__isnull=True, finished_at__isnull=True, cancelled_at=None)

    def waiting(self) -> JobQuerySet:
        """Jobs waiting for other jobs to end (``after=``, batch callbacks)."""
        return self.filter(CLAIMABLE, run_at__isnull=True, waiting_for__gt=0)

    def with_status(self, status: str) -> JobQuerySet:
        return getattr(self, str(status))()


class Job(models.Model):
    """One enqueued call of a registered job function."""

    name = models.CharField(_("name"), max_length=255, db_index=True)
    args = models.JSONField(_("positional arguments"), default=list)
    kwargs = models.JSONField(_("keyword arguments"), default=dict)
    queue = models.CharField(_("queue"), max_length=64, default="default")
    priority = models.IntegerField(_("priority"), default=50)
    attempts = models.IntegerField(_("attempts"), default=0)
    run_at = models.DateTimeField(_("run at"), null=True, blank=True)
    locked_at = models.DateTimeField(_("locked at"), null=True, blank=True)
    locked_by = models.CharField(_("locked by"), max_length=255, null=True, blank=True)
    #: Written by each claim, unique to it: every write that ends or gives back a claim
    #: is guarded by it, so a late writer (a frozen or cut-off worker) changes nothing.
    claim_token = models.BigIntegerField(_("claim token"), null=True, blank=True, editable=False)
    #: When the current (or last) attempt began to run; NULL while a claimed job waits.
    started_at = models.DateTimeField(_("started at"), null=True, blank=True)
    #: The running attempt's own deadline (start + its timeout): past it plus a grace, a
    #: job may be taken from a worker that failed to stop it.
    expires_at = models.DateTimeField(_("deadline"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True, default="")
    failed_at = models.DateTimeField(_("failed at"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    progress = models.SmallIntegerField(_("progress (%)"), null=True, blank=True)
    progress_message = models.CharField(
        _("progress message"), max_length=255, blank=True, default=""
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)
    # The columns below are nullable so that adding them (migration 0007) is a plain
    # ADD COLUMN on every engine, and rows that do not use them cost nothing.
    #: Set while the job is in a state its unique rule counts, cleared when it leaves
    #: them: a unique index on it (migration 0007) refuses a duplicate at the database.
    unique_key = models.CharField(
        _("unique key"), max_length=255, null=True, blank=True, editable=False
    )
    #: Times the job was rescheduled without spending an attempt (``Snooze``).
    snoozes = models.IntegerField(_("snoozes"), null=True, blank=True, editable=False)
    #: When cancellation was asked for; a cancelled job also has ``failed_at`` set, so it
    #: leaves the claimable rows without touching the claim index.
    cancelled_at = models.DateTimeField(_("cancelled at"), null=True, blank=True)
    #: The job's return value (JSON), kept for ``django.tasks`` results and for jobs
    #: declared with ``keep_result``.
    return_value = models.JSONField(_("return value"), null=True, blank=True)
    #: One entry per attempt (worker, start, end, error), kept for ``django.tasks``
    #: results, whose ``errors`` and ``worker_ids`` list every attempt.
    attempt_log = models.JSONField(_("attempt log"), null=True, blank=True, editable=False)
    #: Small per-row data of integrations (e.g. the ``django.tasks`` backend alias).
    meta = models.JSONField(_("metadata"), null=True, blank=True, editable=False)
    #: A short free-text label given at enqueue (``.using(tag=...)``): shown in logs, the
    #: admin and ``jobs status``; NULL when none was given.
    tag = models.CharField(_("tag"), max_length=64, null=True, blank=True)
    #: The concurrency limit the job counts against (``django_jobs.limits``): at most
    #: ``concurrency_limit`` rows with this key are claimed at once. A row with a key and
    #: no ``run_at`` that no worker holds waits for a slot (see ``JobQuerySet.blocked``).
    concurrency_key = models.CharField(
        _("concurrency key"), max_length=255, null=True, blank=True, editable=False
    )
    concurrency_limit = models.IntegerField(
        _("concurrency limit"), null=True, blank=True, editable=False
    )
    #: How many jobs this one still waits for (``after=``, or the members of the batch
    #: whose callback it is, plus one while that batch is open). A row with a count above
    #: zero has no ``run_at``, so no claim sees it; the last prerequisite to end sets
    #: ``run_at`` (``storage/flows.py``). NULL for a job that never waited.
    waiting_for = models.IntegerField(_("waiting for"), null=True, blank=True, editable=False)
    #: Ending this job writes to other rows (it has dependants, or is a batch member):
    #: the outcome statements leave such rows to the path that does both in one transaction.
    follow_up = models.BooleanField(_("has follow-up"), null=True, blank=True, editable=False)
    #: The rate limit the job counts against (``django_jobs.rates``): at most N rows with
    #: this key start per period (``rate_limit``, such as ``100/m``). A row that has to
    #: wait gets a ``RateGrant`` for a later moment and that moment as ``run_at``.
    rate_key = models.CharField(
        _("rate key"), max_length=255, null=True, blank=True, editable=False
    )
    rate_limit = models.CharField(
        _("rate limit"), max_length=32, null=True, blank=True, editable=False
    )

    objects = JobQuerySet.as_manager()

    class Meta:
        verbose_name = _("job")
        verbose_name_plural = _("jobs")
        ordering = ["priority", "run_at", "id"]
        permissions = [
            ("retry_job", _("Can retry jobs")),
            ("cancel_job", _("Can cancel jobs")),
        ]
        # The claim, lifeline and failure indexes are partial on PostgreSQL and SQLite
        # and composite on MySQL: they are created per engine by migration 0002, since
        # declaring partial indexes here makes MySQL warn (models.W037) on every migrate.
        indexes = [
            models.Index(fields=["created_at"], name="django_jobs_created_idx"),
            models.Index(fields=["queue"], name="django_jobs_queue_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.name} #{self.pk}"

    @property
    def status(self) -> str:
        if self.failed_at is not None:
            return JobStatus.CANCELLED if self.cancelled_at is not None else JobStatus.FAILED
        if self.finished_at is not None:
            return JobStatus.SUCCEEDED
        if self.locked_at is not None:
            return JobStatus.RUNNING
        return JobStatus.SCHEDULED

    @property
    def blocked(self) -> bool:
        """True while the job waits for a slot of its concurrency limit."""
        return (
            self.concurrency_key is not None
            and not self.waiting_for
            and self.run_at is None
            and self.locked_at is None
            and self.failed_at is None
            and self.finished_at is None
        )

    @property
    def waits_for_jobs(self) -> bool:
        """True while the job waits for other jobs to end (see ``waiting_for``)."""
        return (
            bool(self.waiting_for)
            and self.run_at is None
            and self.locked_at is None
            and self.failed_at is None
            and self.finished_at is None
        )

    @property
    def rate_limited_until(self) -> datetime | None:
        """When a job waiting for its rate limit may start (the moment it was granted),
        or None; reads the job's ``RateGrant`` (one query, for rows with a rate key)."""
        if (
            self.rate_key is None
            or self.run_at is None
            or self.locked_at is not None
            or self.failed_at is not None
            or self.finished_at is not None
            or self.run_at <= clock.now()
        ):
            return None
        grants = RateGrant.objects.using(self._state.db or "default")
        return (
            grants.filter(job_id=self.pk, at__gt=clock.now()).values_list("at", flat=True).first()
        )

    @property
    def waiting_reason(self) -> str:
        """Why a job that is due does not run yet ("" when nothing holds it back)."""
        if self.blocked:
            return _("concurrency limit %(limit)s for key %(key)s") % {
                "limit": self.concurrency_limit,
                "key": self.concurrency_key,
            }
        until = self.rate_limited_until
        if until is not None:
            local = timezone.localtime(until) if timezone.is_aware(until) else until
            return _("rate limited until %(until)s (rate limit %(rate)s for key %(key)s)") % {
                "until": f"{local:%H:%M:%S}",
                "rate": self.rate_limit,
                "key": self.rate_key,
            }
        return ""

    @property
    def cancel_requested(self) -> bool:
        """True while a running job is asked to stop (its worker is told; it has not ended)."""
        return self.cancelled_at is not None and self.failed_at is None and self.finished_at is None

    #: ``django_jobs.cancelling.cancel``, set when that module is imported (the app's
    #: ``ready`` imports it): it reads and writes this table, so this module cannot import it.
    canceller: ClassVar[Callable[..., Any] | None] = None

    def cancel(self, *, by: str = "", reason: str = "") -> Any:
        """Cancel this job (see :func:`django_jobs.cancel`); the row is refreshed after."""
        canceller = type(self).canceller
        if canceller is None:
            raise RuntimeError("django_jobs is not ready: add it to INSTALLED_APPS")
        result = canceller(self.pk, by=by, reason=reason, using=self._state.db)
        self.refresh_from_db()
        return result

    @property
    def events_token(self) -> str:
        """A signed token that lets its holder watch this job's events (and no other
        job's), valid for ``JOBS["EVENTS"]["TOKEN_MAX_AGE"]`` seconds."""
        from .events.tokens import signed_job_token

        return signed_job_token(self.pk, using=self._state.db)

    @property
    def events_url(self) -> str:
        """The URL of this job's event stream (``django_jobs.events.urls`` must be
        included in the project's URLconf)."""
        from django.urls import reverse

        return reverse("django_jobs_events:job", kwargs={"token": self.events_token})

    @property
    def error_summary(self) -> str:
        """The last line of ``last_error`` that names the exception, for lists."""
        lines = [line for line in self.last_error.strip().splitlines() if line.strip()]
        return lines[-1].strip() if lines else ""


class Worker(models.Model):
    """A live worker process; rows whose heartbeat is stale belong to dead processes."""

    identity = models.CharField(_("identity"), max_length=255, unique=True)
    host = models.CharField(_("host"), max_length=255)
    pid = models.IntegerField(_("pid"))
    group = models.IntegerField(_("worker group"), default=0)
    queues = models.CharField(_("queues"), max_length=255, default="*")
    started_at = models.DateTimeField(_("started at"), default=timezone.now)
    heartbeat_at = models.DateTimeField(_("last heartbeat"), default=timezone.now, db_index=True)
    jobs_done = models.BigIntegerField(_("jobs done"), default=0)

    class Meta:
        verbose_name = _("worker")
        verbose_name_plural = _("workers")
        ordering = ["group", "identity"]

    def __str__(self) -> str:
        return self.identity


class QueuePause(models.Model):
    """A paused queue: while its row exists, no worker on any host claims its jobs.

    Enqueues into a paused queue are stored as usual, and jobs that were running when it
    was paused finish. Resuming deletes the row.
    """

    queue = models.CharField(_("queue"), max_length=64, unique=True)
    paused_at = models.DateTimeField(_("paused at"))
    paused_by = models.CharField(_("paused by"), max_length=150, blank=True, default="")
    reason = models.CharField(_("reason"), max_length=255, blank=True, default="")

    class Meta:
        verbose_name = _("paused queue")
        verbose_name_plural = _("paused queues")
        ordering = ["queue"]

    def __str__(self) -> str:
        return self.queue


class LimitLock(models.Model):
    """One row per concurrency key: what a claim and the end of a claim lock, so that
    deciding who gets a slot of that key is serialised across workers and hosts (two
    claims that both count the running rows would otherwise both see a free slot).

    It holds no count: the running rows are counted, so nothing drifts when a worker
    dies. Rows are created on a key's first claim and deleted by pruning when unused.
    """

    key = models.CharField(_("key"), max_length=255, unique=True, db_column="lock_key")
    used_at = models.DateTimeField(_("last used"), db_index=True)

    class Meta:
        verbose_name = _("limit lock")
        verbose_name_plural = _("limit locks")
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class RateGrant(models.Model):
    """One start allowed by a rate limit: the key's latest grants say when the next job
    with that key may start (``django_jobs.rates``). ``job_id`` is set while the grant is
    a reservation for a job that waits for its moment (its ``run_at``), and cleared when a
    claim uses it. Grants older than their period no longer count; claims delete them."""

    key = models.CharField(_("key"), max_length=255, db_column="rate_key")
    at = models.DateTimeField(_("start allowed at"))
    job_id = models.BigIntegerField(_("reserved for job"), null=True, blank=True)

    class Meta:
        verbose_name = _("rate grant")
        verbose_name_plural = _("rate grants")
        indexes = [
            models.Index(fields=["key", "at"], name="django_jobs_rate_key_at_idx"),
            models.Index(fields=["job_id"], name="django_jobs_rate_job_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.key} @ {self.at}"


class JobLink(models.Model):
    """An edge of a chain or a batch: job ``job_id`` waits for job ``after_id`` to end.

    ``needs_success``: the waiting job runs only if ``after_id`` succeeded (``after=``,
    a batch's ``on_success``); otherwise any end will do (``on_finish``). ``outcome`` is
    written when ``after_id`` ends, so the edge outlives the prerequisite's row (successes
    are deleted) and tells a batch's callback what became of each member. Plain ids, no
    foreign keys: the rows they name are deleted on their own schedule.
    """

    job_id = models.BigIntegerField(_("waiting job"))
    after_id = models.BigIntegerField(_("prerequisite"))
    needs_success = models.BooleanField(_("needs success"), default=True)
    #: "succeeded", "failed" or "cancelled" once ``after_id`` ended; NULL before.
    outcome = models.CharField(_("outcome"), max_length=16, null=True, blank=True)
    #: The batch this edge belongs to (member -> callback), NULL for ``after=``.
    batch_id = models.BigIntegerField(_("batch"), null=True, blank=True)

    class Meta:
        verbose_name = _("job link")
        verbose_name_plural = _("job links")
        constraints = [
            models.UniqueConstraint(fields=["job_id", "after_id"], name="django_jobs_link_uniq")
        ]
        indexes = [
            models.Index(fields=["after_id"], name="django_jobs_link_after_idx"),
            models.Index(fields=["batch_id"], name="django_jobs_link_batch_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.job_id} after {self.after_id}"


class Batch(models.Model):
    """A group of jobs whose callbacks are enqueued once, when every member ended.

    The callbacks are stored when the batch opens, as rows that wait (``waiting_for``:
    one per member, plus one while the batch is open): the end of the last member, or
    the close of a batch whose members all ended, sets their ``run_at``. One row per
    callback is what makes "exactly once" hold: there is nothing to enqueue twice.
    """

    description = models.CharField(_("description"), max_length=255, blank=True, default="")
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    closed_at = models.DateTimeField(_("closed at"), null=True, blank=True)
    on_success_id = models.BigIntegerField(_("on success job"), null=True, blank=True)
    on_finish_id = models.BigIntegerField(_("on finish job"), null=True, blank=True)
    #: Members added so far.
    size = models.IntegerField(_("members"), default=0)

    class Meta:
        verbose_name = _("batch")
        verbose_name_plural = _("batches")
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"batch {self.pk}" + (f" ({self.description})" if self.description else "")

    def __enter__(self) -> Batch:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # A block that raised leaves the batch open: its transaction (if any) rolls back.
        if exc_type is None:
            self.close()

    @property
    def callback_id(self) -> int | None:
        """The callback whose edges record the members (on_finish, else on_success)."""
        return self.on_finish_id or self.on_success_id

    def progress(self) -> dict[str, int]:
        """Members by outcome: total, succeeded, failed (incl. cancelled), pending."""
        counts = {"succeeded": 0, "failed": 0, "cancelled": 0}
        rows = (
            JobLink.objects.using(self._state.db or "default")
            .filter(batch_id=self.pk, job_id=self.callback_id, outcome__isnull=False)
            .values_list("outcome")
            .annotate(n=models.Count("id"))
            .order_by()
        )
        for outcome, n in rows:
            counts[outcome] = n
        ended = counts["succeeded"] + counts["failed"] + counts["cancelled"]
        return {
            "total": self.size,
            "succeeded": counts["succeeded"],
            "failed": counts["failed"] + counts["cancelled"],
            "pending": self.size - ended,
        }

    def member_ids(self, outcome: str | None = None) -> list[int]:
        """Ids of the members, in the order they were added; ``outcome``: "succeeded",
        "failed" (failed or cancelled, or never run), or "pending"."""
        links = JobLink.objects.using(self._state.db or "default").filter(
            batch_id=self.pk, job_id=self.callback_id
        )
        if outcome == "succeeded":
            links = links.filter(outcome="succeeded")
        elif outcome == "failed":
            links = links.filter(outcome__in=["failed", "cancelled"])
        elif outcome == "pending":
            links = links.filter(outcome__isnull=True)
        elif outcome is not None:
            raise ValueError(f"outcome must be succeeded, failed or pending, not {outcome!r}")
        return list(links.order_by("after_id").values_list("after_id", flat=True))

    #: ``django_jobs.batches.add_to``/``close``, set when that module is imported.
    closer: ClassVar[Callable[..., Any] | None] = None

    def close(self) -> None:
        """No more members: the callbacks run once every member ended (at once if all did)."""
        closer = type(self).closer
        if closer is None:
            raise RuntimeError("django_jobs is not ready: add it to INSTALLED_APPS")
        closer(self)


class Schedule(models.Model):
    """The database side of a recurring schedule; its definition stays in settings.

    One row per schedule key that a scheduler has seen. Only what operators change at run
    time lives here (the paused flag) and when the key first appeared: ticks before
    ``since`` are never enqueued, so deploying a new daily 02:00 schedule at 15:00 does not
    run "today's" 02:00 tick at once.
    """

    key = models.CharField(_("key"), max_length=200, unique=True)
    paused = models.BooleanField(_("paused"), default=False)
    since = models.DateTimeField(_("first seen"))
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)

    class Meta:
        verbose_name = _("schedule")
        verbose_name_plural = _("schedules")
        ordering = ["key"]

    def __str__(self) -> str:
        return self.key


class ScheduleRun(models.Model):
    """One enqueued tick of a schedule (or one manual "run now").

    The unique (key, tick) pair is what makes a tick run exactly once, whatever the number
    of schedulers: each inserts the row in the transaction that enqueues the job, and the
    database lets exactly one of them commit it.
    """

    #: No index of its own: lookups by key use the (key, tick) unique index's prefix.
    key = models.CharField(_("schedule key"), max_length=200)
    #: The tick in UTC; for a manual run, the time it was asked for.
    tick = models.DateTimeField(_("tick"))
    job_id = models.BigIntegerField(_("job id"), null=True, blank=True)
    manual = models.BooleanField(_("run by hand"), default=False)
    enqueued_at = models.DateTimeField(_("enqueued at"), db_index=True)

    class Meta:
        verbose_name = _("schedule run")
        verbose_name_plural = _("schedule runs")
        ordering = ["-tick"]
        constraints = [
            models.UniqueConstraint(fields=["key", "tick"], name="django_jobs_schedule_run_uniq")
        ]

    def __str__(self) -> str:
        return f"{self.key} @ {self.tick:%Y-%m-%d %H:%M:%S}"


class Event(models.Model):
    """One published event, for subscribers on SQLite and MySQL/MariaDB to poll.

    PostgreSQL sends events with NOTIFY and never writes this table. Rows are transient:
    a subscriber reads the ones published after it subscribed, and pruning deletes them
    after ``JOBS["EVENTS"]["RETENTION"]`` (see ``django_jobs.events``).
    """

    channel = models.CharField(_("channel"), max_length=200)
    #: The event's JSON text.
    payload = models.TextField(_("payload"))
    created_at = models.DateTimeField(_("created at"))

    class Meta:
        verbose_name = _("event")
        verbose_name_plural = _("events")
        indexes = [
            # A subscriber's poll: its channels, after the last id it saw.
            models.Index(fields=["channel", "id"], name="django_jobs_event_chan_idx"),
            # Pruning by age.
            models.Index(fields=["created_at"], name="django_jobs_event_created_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} #{self.pk}"
