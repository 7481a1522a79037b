"""Batches: a group of jobs whose callbacks are enqueued once, when every member ended.

::

    with open_batch(on_success=(mark_paid, [order.id]), description=f"order {order.id}") as b:
        later(charge, [order.id], batch=b)
        later_many(reserve, [[item.id] for item in order.items], batch=b)

Each callback is stored when the batch opens, as a job that waits (see
:mod:`django_jobs.chaining`): for one more job per member, and for one while the batch is
open. ``on_success`` runs only if every member succeeded (a member that failed or was
cancelled records it as never run, at once); ``on_finish`` runs once every member ended,
whatever the outcomes. A callback receives the keyword argument ``batch``: a dict with
the batch's ``id``, ``total``, ``succeeded`` and ``failed`` counts; ``Batch.member_ids()``
gives the ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from django.db import transaction

from . import clock, registry
from .calls import _insert_chunks, _instance, _new_job, _options
from .conf import jobs_settings
from .models import Batch, Job
from .signals import enqueued, job_enqueued
from .storage import get_storage
from .storage.flows import one_less


def open_batch(*, on_success: Any = None, on_finish: Any = None, description: str = "") -> Batch:
    """Open a batch; ``on_success`` / ``on_finish``: a job (or its name), or a tuple
    ``(job, args)`` or ``(job, args, kwargs)``. At least one is required.

    Add members with ``later(..., batch=b)``, ``later_many(..., batch=b)`` or
    ``job.using(batch=b).enqueue(...)``, in as many calls as you like, then ``b.close()``
    (or use the batch as a context manager). The callbacks are stored in the open
    transaction on the jobs database, or in one of their own.
    """
    if on_success is None and on_finish is None:
        raise ValueError("open_batch() needs on_success=, on_finish= or both")
    if not isinstance(description, str):
        raise TypeError(f"description must be a string, not {description!r}")
    specs = [
        (field, _callback(spec))
        for field, spec in (("on_success_id", on_success), ("on_finish_id", on_finish))
        if spec is not None
    ]
    alias = jobs_settings().database
    storage = get_storage(alias)
    now = clock.now()
    callbacks: list[Job] = []
    with storage.write_transaction():
        batch = Batch.objects.using(alias).create(description=description[:255], created_at=now)
        for field, (definition, args, kwargs) in specs:
            kwargs = {**kwargs, "batch": {"id": batch.pk}}
            row = _new_job(definition, args, kwargs, _options(definition, None, None, None, None))
            row = replace(row, run_at=None)
            job = _instance(row, alias, now)
            _insert_chunks(storage, alias, [row], [job], now)
            Job.objects.using(alias).filter(pk=job.pk).update(waiting_for=1)
            setattr(batch, field, job.pk)
            callbacks.append(job)
        batch.save(using=alias, update_fields=["on_success_id", "on_finish_id"])
        if job_enqueued.receivers:
            enqueued(callbacks, alias)
    return batch


def _callback(spec: Any) -> tuple[Any, list[Any], dict[str, Any]]:
    """(definition, args, kwargs) of a callback, checked like a call with ``batch``."""
    args: Sequence[Any] = []
    kwargs: dict[str, Any] = {}
    if isinstance(spec, tuple):
        if not 2 <= len(spec) <= 3:
            raise TypeError(
                f"a callback is a job, (job, args) or (job, args, kwargs), not {spec!r}"
            )
        spec, args, *rest = spec
        kwargs = rest[0] if rest else {}
    definition = registry.resolve(spec)
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        raise TypeError(f"callback {definition.name}: args must be a list and kwargs a dict")
    if "batch" in kwargs:
        raise TypeError(
            f"callback {definition.name}: the keyword argument 'batch' is set by the batch"
        )
    definition.check_arguments(list(args), {**kwargs, "batch": {}})
    return definition, list(args), dict(kwargs)


def close(batch: Batch) -> None:
    """Close ``batch`` (see :meth:`Batch.close`); closing it again changes nothing."""
    alias = batch._state.db or jobs_settings().database
    storage = get_storage(alias)
    now = clock.now()
    queues: set[str] = set()
    with storage.write_transaction():
        row = Batch.objects.using(alias).select_for_update().filter(pk=batch.pk).first()
        if row is None or row.closed_at is not None:
            return
        Batch.objects.using(alias).filter(pk=batch.pk).update(closed_at=now)
        for callback_id in sorted(filter(None, (row.on_success_id, row.on_finish_id))):
            queues |= one_less(alias, callback_id, now)
    batch.closed_at = now
    if queues:
        transaction.on_commit(lambda: storage.wake_workers(queues), using=alias)


Batch.closer = close
