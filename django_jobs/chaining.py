"""Jobs that wait for other jobs: ``later(b, after=a)`` and batch members.

A job stored with ``after=`` waits, without ``run_at`` (so no claim sees it), until every
job it names succeeded; one :class:`~django_jobs.models.JobLink` row per prerequisite
records the edge, and the prerequisite is flagged ``follow_up`` so that the statement
recording its end leaves it to the path that also writes to its dependants
(``storage/flows.py``). Everything a call writes happens in one transaction on the jobs
database, with the prerequisites locked: a prerequisite cannot end half-way through.

At the call, each prerequisite is:

* running or waiting: the new job waits for it;
* succeeded (its row kept): nothing to wait for;
* failed or cancelled: the new job is stored as never run (cancelled, with the reason);
* missing: :class:`~django_jobs.exceptions.DependencyNotFound`, nothing stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .exceptions import BatchClosed, DependencyError, DependencyNotFound
from .models import Batch, Job, JobLink
from .storage import get_storage
from .storage.flows import CANCELLED, FAILED, SUCCEEDED, ended, never_run, reason_of

#: Dependants and callbacks followed when looking for a cycle, at most.
CYCLE_SEARCH_LIMIT = 10_000


def checked_after(after: Any) -> list[Any] | None:
    """``after=`` as a list of jobs or ids, type-checked at the call (None: not given)."""
    if after is None:
        return None
    items = [after] if isinstance(after, int | Job) else after
    if isinstance(items, str | bytes) or not isinstance(items, Iterable):
        raise TypeError(f"after= takes a job, a job id or a list of them, not {after!r}")
    items = list(items)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | Job):
            raise TypeError(f"after= takes jobs (as later() returns them) or ids, not {item!r}")
        if isinstance(item, int) and item < 1:
            raise ValueError(f"after=: {item!r} is not a job id")
    return items


def checked_batch(batch: Any) -> Batch | None:
    if batch is None:
        return None
    if not isinstance(batch, Batch) or batch.pk is None:
        raise TypeError(f"batch= takes a batch from open_batch(), not {batch!r}")
    return batch


def store_linked(
    alias: str,
    rows: list[Any],
    jobs: list[Job],
    now: Any,
    after: list[Any] | None,
    batch: Batch | None,
    insert: Callable[..., None],
) -> None:
    """Insert ``rows`` (their instances ``jobs``) waiting for ``after`` and as members of
    ``batch``, with their edges, in one transaction; see the module's documentation.
    ``insert``: the plain insert of ``calls`` (``insert(storage, alias, rows, jobs, now)``)."""
    storage = get_storage(alias)
    with storage.write_transaction():
        ids = _ids(after or [], alias)
        states = _locked_states(alias, ids)
        callbacks = _open_callbacks(alias, batch) if batch is not None else []
        if callbacks and ids:
            _refuse_cycle(alias, ids, callbacks)
        pending = [i for i in ids if states[i][0] is None]
        failed = next((i for i in ids if states[i][0] in (FAILED, CANCELLED)), None)
        if pending or failed is not None:
            rows = [_without_run_at(row) for row in rows]
        insert(storage, alias, rows, jobs, now)
        new_ids = [job.pk for job in jobs]
        links = [
            JobLink(job_id=new, after_id=i, outcome=states[i][0]) for new in new_ids for i in ids
        ]
        for callback_id, needs_success in callbacks:
            links += [
                JobLink(job_id=callback_id, after_id=new, needs_success=needs_success,
                        batch_id=batch.pk)
                for new in new_ids
            ]  # fmt: skip
        JobLink.objects.using(alias).bulk_create(links, batch_size=500)
        if pending and failed is None:
            _set(alias, new_ids, waiting_for=len(pending))
            for job in jobs:
                job.run_at, job.waiting_for = None, len(pending)
        if pending:
            Job.objects.using(alias).filter(pk__in=pending).update(follow_up=True)
        if batch is not None:
            _set(alias, new_ids, follow_up=True)
            _join(alias, batch, callbacks, len(new_ids), now)
        if failed is not None:
            outcome, reason = states[failed]
            verb = "failed" if outcome == FAILED else "was cancelled"
            why = f"job {failed} {verb}" + (f": {reason}" if reason else "")
            for job in jobs:
                never_run(alias, job.pk, why, now)
                ended(alias, job.pk, CANCELLED, f"never ran ({why})", now)
                job.refresh_from_db(using=alias)


def _without_run_at(row: Any) -> Any:
    from dataclasses import replace

    return replace(row, run_at=None)


def _set(alias: str, ids: list[int], **values: Any) -> None:
    for start in range(0, len(ids), 500):
        Job.objects.using(alias).filter(pk__in=ids[start : start + 500]).update(**values)


def _ids(items: list[Any], alias: str) -> list[int]:
    ids: list[int] = []
    for item in items:
        if isinstance(item, Job):
            db = item._state.db
            if db is not None and db != alias:
                raise DependencyError(
                    f"after=: job {item.pk} was read from database {db!r}, but this job's "
                    f"queue lives in {alias!r}: a chain links jobs of one database"
                )
            if item.pk is None:
                raise DependencyError(
                    f"after=: job {item} is not stored yet (it waits for the commit of a "
                    "transaction on another database); store the chain in that transaction "
                    "after it commits, or in one on the jobs database"
                )
            item = item.pk
        if item not in ids:
            ids.append(item)
    return ids


def _locked_states(alias: str, ids: list[int]) -> dict[int, tuple[str | None, str]]:
    """Each prerequisite's end (None while it has not ended) and reason, its row locked
    so that it cannot end before the new edges are stored."""
    if not ids:
        return {}
    found = {
        pk: (failed_at, finished_at, cancelled_at, last_error)
        for pk, failed_at, finished_at, cancelled_at, last_error in (
            Job.objects.using(alias)
            .select_for_update()
            .filter(pk__in=ids)
            .order_by("pk")
            .values_list("pk", "failed_at", "finished_at", "cancelled_at", "last_error")
        )
    }
    states: dict[int, tuple[str | None, str]] = {}
    for job_id in ids:
        if job_id not in found:
            raise DependencyNotFound(job_id, alias)
        failed_at, finished_at, cancelled_at, last_error = found[job_id]
        if finished_at is not None:
            states[job_id] = (SUCCEEDED, "")
        elif failed_at is not None:
            states[job_id] = (CANCELLED if cancelled_at else FAILED, reason_of(last_error))
        else:
            states[job_id] = (None, "")
    return states


def _open_callbacks(alias: str, batch: Batch) -> list[tuple[int, bool]]:
    """The batch's callbacks and whether each needs success; the batch row is locked, so
    a concurrent ``close`` waits for this transaction."""
    row = Batch.objects.using(alias).select_for_update().filter(pk=batch.pk).first()
    if row is None:
        raise DependencyError(f"batch {batch.pk} does not exist on database {alias!r}")
    if row.closed_at is not None:
        raise BatchClosed(batch.pk)
    callbacks = []
    if row.on_success_id is not None:
        callbacks.append((row.on_success_id, True))
    if row.on_finish_id is not None:
        callbacks.append((row.on_finish_id, False))
    return callbacks


def _refuse_cycle(alias: str, ids: list[int], callbacks: list[tuple[int, bool]]) -> None:
    """A member that waits for its own batch's callback (or a job that waits for it)
    would wait for ever: its callback waits for it."""
    seen: set[int] = set()
    frontier = [callback for callback, _ in callbacks]
    while frontier and len(seen) < CYCLE_SEARCH_LIMIT:
        for job_id in frontier:
            if job_id in ids:
                raise DependencyError(
                    f"after=: job {job_id} waits for this batch to finish (it is, or waits "
                    "for, one of its callbacks), so a member cannot wait for it: a cycle"
                )
        seen.update(frontier)
        frontier = [
            job_id
            for job_id in JobLink.objects.using(alias)
            .filter(after_id__in=frontier[:500])
            .values_list("job_id", flat=True)
            if job_id not in seen
        ]


def _join(alias: str, batch: Batch, callbacks: list[tuple[int, bool]], count: int, now) -> None:
    """``count`` more members: each callback waits for one more job."""
    from django.db.models import F

    Batch.objects.using(alias).filter(pk=batch.pk).update(size=F("size") + count)
    for callback_id, _ in sorted(callbacks):
        Job.objects.using(alias).filter(pk=callback_id, waiting_for__gt=0).update(
            waiting_for=F("waiting_for") + count, updated_at=now
        )
    batch.size += count


# -- what the admin and `jobs status` show ---------------------------------------------

#: Prerequisites named in a waiting reason before "and N more".
REASON_IDS = 3


def waiting_reason(job: Job) -> str:
    """Why ``job`` waits for other jobs ("waiting for job 42"); "" when it does not."""
    if not job.waits_for_jobs:
        return ""
    alias = job._state.db or "default"
    batch = batch_of_callback(job)
    if batch is not None:
        progress = batch.progress()
        ended_count = progress["total"] - progress["pending"]
        text = f"waiting for batch {batch.pk}: {ended_count} of {progress['total']} members ended"
        if batch.closed_at is None:
            text += " (open: more members may join)"
        return text
    pending = list(
        JobLink.objects.using(alias)
        .filter(job_id=job.pk, outcome__isnull=True)
        .order_by("after_id")
        .values_list("after_id", flat=True)[: REASON_IDS + 1]
    )
    if not pending:
        return "waiting for other jobs"
    shown = ", ".join(str(i) for i in pending[:REASON_IDS])
    more = job.waiting_for - REASON_IDS if job.waiting_for and len(pending) > REASON_IDS else 0
    noun = "job" if len(pending) == 1 else "jobs"
    return f"waiting for {noun} {shown}" + (f" and {more} more" if more > 0 else "")


def batch_of_callback(job: Job) -> Batch | None:
    """The batch whose callback ``job`` is, or None."""
    batch_arg = job.kwargs.get("batch") if isinstance(job.kwargs, dict) else None
    if not isinstance(batch_arg, dict) or not isinstance(batch_arg.get("id"), int):
        return None
    batch = Batch.objects.using(job._state.db or "default").filter(pk=batch_arg["id"]).first()
    if batch is None or job.pk not in (batch.on_success_id, batch.on_finish_id):
        return None
    return batch


def neighbours(job: Job, limit: int = 50) -> dict[str, list[tuple[int, str | None]]]:
    """The job's edges: ``before`` (what it waits for, with each one's outcome),
    ``after`` (what waits for it), ``batches`` (batches it is a member of)."""
    alias = job._state.db or "default"
    before = list(
        JobLink.objects.using(alias)
        .filter(job_id=job.pk)
        .order_by("after_id")
        .values_list("after_id", "outcome")[:limit]
    )
    after_rows = list(
        JobLink.objects.using(alias)
        .filter(after_id=job.pk)
        .order_by("job_id")
        .values_list("job_id", "batch_id")[:limit]
    )
    return {
        "before": before,
        "after": [(job_id, None) for job_id, batch_id in after_rows if batch_id is None],
        "batches": sorted({(batch_id, None) for _, batch_id in after_rows if batch_id}),
    }
