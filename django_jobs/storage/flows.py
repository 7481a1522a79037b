"""What the end of a job writes to other rows: its dependants (``after=``) and the
callbacks of its batch.

Everything here runs inside the write transaction that ends the job (the claim-token
guarded outcome statement, a cancellation, a batch's close), so a crash either keeps the
outcome and every follow-on write, or neither. Each waiting row is locked before it is
read and changed: two prerequisites that end at the same moment on two workers are
serialised on the row that waits for both, and exactly one of them sees the count reach
zero and sets ``run_at``. Rows are locked in id order, so those two never deadlock.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from ..models import Batch, Job, JobLink

SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"

#: A row that has not ended and that no worker holds.
_OPEN = {"locked_at__isnull": True, "failed_at__isnull": True, "finished_at__isnull": True}

_VERBS = {FAILED: "failed", CANCELLED: "was cancelled"}


def ended(alias: str, job_id: int, outcome: str, reason: str, now: datetime) -> set[str]:
    """Record that job ``job_id`` ended with ``outcome`` ("succeeded", "failed" or
    "cancelled"; ``reason``: the error's last line or the cancellation's words).

    Dependants whose every prerequisite has now ended become due; a dependant that needed
    this job to succeed is recorded as never run (cancelled, with the reason), and so,
    transitively, are its own dependants. Returns the queues of the jobs that became
    due, for waking idle workers once the transaction commits.
    """
    queues: set[str] = set()
    todo = [(job_id, outcome, reason)]
    while todo:
        done_id, outcome, reason = todo.pop(0)
        links = list(
            JobLink.objects.using(alias)
            .filter(after_id=done_id, outcome__isnull=True)
            .order_by("job_id")
            .values_list("id", "job_id", "needs_success")
        )
        if not links:
            continue
        JobLink.objects.using(alias).filter(id__in=[link[0] for link in links]).update(
            outcome=outcome
        )
        for _, waiter, needs_success in links:
            if outcome != SUCCEEDED and needs_success:
                why = f"job {done_id} {_VERBS[outcome]}" + (f": {reason}" if reason else "")
                if never_run(alias, waiter, why, now):
                    todo.append((waiter, CANCELLED, f"never ran ({why})"))
            else:
                queues |= one_less(alias, waiter, now)
    return queues


def never_run(alias: str, job_id: int, why: str, now: datetime) -> bool:
    """End a waiting job without running it (status cancelled, ``last_error`` says why)."""
    return bool(
        Job.objects.using(alias)
        .filter(pk=job_id, **_OPEN)
        .update(
            failed_at=now,
            cancelled_at=now,
            run_at=None,
            last_error=f"Never run: {why}",
            unique_key=None,
            updated_at=now,
        )
    )


def one_less(alias: str, job_id: int, now: datetime) -> set[str]:
    """One fewer job for ``job_id`` to wait for; at none left it becomes due now.

    Returns its queue when it became due (else nothing).
    """
    row = (
        Job.objects.using(alias)
        .select_for_update()
        .filter(pk=job_id, run_at__isnull=True, waiting_for__gt=0, **_OPEN)
        .values_list("waiting_for", "queue", "kwargs")
        .first()
    )
    if row is None:
        return set()  # ended already (cancelled), or made due by hand
    left, queue, kwargs = row
    left -= 1
    changes: dict[str, Any] = {"waiting_for": left, "updated_at": now}
    if left == 0:
        changes["run_at"] = now
        summary = _batch_summary(alias, job_id, kwargs)
        if summary is not None:
            changes["kwargs"] = {**kwargs, "batch": summary}
    Job.objects.using(alias).filter(pk=job_id).update(**changes)
    return {queue} if left == 0 else set()


def _batch_summary(alias: str, job_id: int, kwargs: Any) -> dict[str, int] | None:
    """What a batch callback is told when it becomes due: the batch's id and counts."""
    if not isinstance(kwargs, dict) or not isinstance(kwargs.get("batch"), dict):
        return None
    batch = Batch.objects.using(alias).filter(pk=kwargs["batch"].get("id")).first()
    if batch is None or job_id not in (batch.on_success_id, batch.on_finish_id):
        return None
    counts = {SUCCEEDED: 0, FAILED: 0, CANCELLED: 0}
    for outcome in (
        JobLink.objects.using(alias).filter(job_id=job_id).values_list("outcome", flat=True)
    ):
        if outcome in counts:
            counts[outcome] += 1
    return {
        "id": batch.pk,
        "total": batch.size,
        "succeeded": counts[SUCCEEDED],
        "failed": counts[FAILED] + counts[CANCELLED],
    }


def reason_of(error: str) -> str:
    """The line of an error that names it (a traceback's last line)."""
    lines = [line.strip() for line in error.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""
