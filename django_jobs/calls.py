"""One call of a job, checked and then stored as a row.

The path every way of enqueueing shares: ``later``, ``later_many`` (in
:mod:`django_jobs.scheduling`) and ``JobDefinition.enqueue`` (in
:mod:`django_jobs.registry`). It takes a resolved definition and never looks names up, so
that the registry can use it without the two modules importing each other.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connections, transaction
from django.db.models.base import ModelState
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

from . import clock, tags, tracing
from .arguments import SCALARS, as_stored, dumps, to_json
from .conf import jobs_settings
from .discovery import check_enqueue
from .exceptions import UnknownQueue
from .limits import for_call as concurrency_for
from .models import Job
from .rates import for_call as rate_for
from .signals import enqueued, job_enqueued
from .storage import NewJob, get_storage
from .unique import DEFAULT_RULE, key_for, per_call_key

if TYPE_CHECKING:
    from .registry import JobDefinition

#: Queue, priority, run_at, and whether a limit may apply (``_options``).
Options = tuple[str, int, datetime, bool]


def store_call(
    definition: JobDefinition[Any, Any],
    args: Sequence[Any] | None,
    kwargs: dict[str, Any] | None,
    *,
    wait: float | timedelta | None = None,
    wait_until: datetime | None = None,
    queue: str | None = None,
    priority: int | None = None,
    unique_key: str | None = None,
    tag: str | None = None,
    after: Any = None,
    batch: Any = None,
) -> Job:
    """Check one call of a registered job and store it; see ``scheduling.later``."""
    options = _options(definition, wait, wait_until, queue, priority)
    if unique_key is not None:
        per_call_key(unique_key)
    row = _new_job(definition, args, kwargs, options, unique_key)
    if tag is not None:
        row = replace(row, tag=tags.checked(tag))
    if after is None and batch is None:
        return _store([row])[0]
    return _store_linked(definition, [row], wait, wait_until, after, batch)[0]


def store_calls(
    definition: JobDefinition[Any, Any],
    calls: Iterable[Sequence[Any] | tuple[Sequence[Any], dict[str, Any]]],
    *,
    wait: float | timedelta | None = None,
    wait_until: datetime | None = None,
    queue: str | None = None,
    priority: int | None = None,
    tag: str | None = None,
    after: Any = None,
    batch: Any = None,
) -> list[Job]:
    """Check every call of a registered job, then store them; see ``scheduling.later_many``."""
    options = _options(definition, wait, wait_until, queue, priority)
    tag = tags.checked(tag)
    rows = []
    for call in calls:
        if isinstance(call, tuple) and len(call) == 2 and isinstance(call[1], dict):
            args, kwargs = call
        else:
            args, kwargs = call, None
        row = _new_job(definition, args, kwargs, options)
        rows.append(row if tag is None else replace(row, tag=tag))
    if after is None and batch is None:
        return _store(rows)
    return _store_linked(definition, rows, wait, wait_until, after, batch)


def _store_linked(definition, rows: list[NewJob], wait, wait_until, after, batch) -> list[Job]:
    """Store calls that wait for other jobs or join a batch (``django_jobs.chaining``)."""
    from .chaining import checked_after, checked_batch, store_linked

    after, batch = checked_after(after), checked_batch(batch)
    if after and (wait is not None or wait_until is not None):
        raise ValueError(
            "after= and wait/wait_until cannot be combined: a job that waits for "
            "others runs as soon as they succeeded"
        )
    if any(row.unique_key is not None for row in rows):
        raise ValueError(
            f"job {definition.name} is unique: unique jobs cannot take after= "
            "or batch= (a duplicate would store nothing to wait or count)"
        )
    alias, now, rows, jobs = _prepared(rows)

    def store() -> None:
        store_linked(alias, rows, jobs, now, after, batch, _insert_chunks)
        if job_enqueued.receivers:
            enqueued(jobs, alias)

    other = _other_transaction(alias)
    if other is not None:
        for job in jobs:
            job.created = None
        transaction.on_commit(store, using=other)
    else:
        store()
    return jobs


def store_task(
    name: str,
    args: Sequence[Any],
    kwargs: dict[str, Any],
    *,
    queue: str,
    priority: int,
    run_at: datetime,
    meta: dict[str, Any],
) -> Job:
    """Store one ``django.tasks`` call (see :mod:`django_jobs.tasks`), checked for JSON.

    Unlike a ``@job`` call, it is stored at once even inside a transaction on another
    database: Django's ``TaskResult`` needs the row's id when ``enqueue()`` returns.
    """
    known = jobs_settings().queues
    if queue not in known:
        raise UnknownQueue(queue, known)
    call = _TaskCall(name)
    row = _new_job(call, args, kwargs, (queue, priority, run_at, _limited(call, queue)))
    row = replace(row, meta=dumps(meta))
    return _store([row], follow_other_transaction=False)[0]


class _TaskCall:
    """What ``_new_job`` needs of a definition, for a task: Django binds no arguments
    at enqueue, and a call that does not fit fails its attempt with the TypeError."""

    #: Tasks have no unique rule, their arguments are plain JSON, and a worker imports
    #: the task's module by its path (django_jobs.tasks).
    unique = None
    payload = None
    declared_late = False

    def __init__(self, name: str) -> None:
        self.name = name

    def check_arguments(self, args: Any, kwargs: Any) -> None:
        pass


def _options(definition, wait, wait_until, queue, priority) -> Options:
    """Queue, priority and run_at of a call, checked once for all its rows, and whether
    a concurrency or rate limit may apply to them."""
    queue = definition.queue if queue is None else queue
    known = jobs_settings().queues
    if queue not in known:
        raise UnknownQueue(queue, known)
    priority = definition.priority if priority is None else priority
    if not isinstance(priority, int) or isinstance(priority, bool):
        raise TypeError(f"priority must be an int, not {priority!r}")
    return queue, priority, run_at_for(wait, wait_until), _limited(definition, queue)


def _limited(definition, queue: str) -> bool:
    """False when neither ``limits.for_call`` nor ``rates.for_call`` can find a limit for
    the job's calls into ``queue``: asked once per call, not per row."""
    conf = jobs_settings()
    return not (
        getattr(definition, "concurrency", None) is None
        and getattr(definition, "rate", None) is None
        and conf.queue_concurrency.get(queue) is None
        and conf.queue_rate_limits.get(queue) is None
    )


def _new_job(
    definition,
    args,
    kwargs,
    options: tuple[str, int, datetime, bool],
    unique_key: str | None = None,
) -> NewJob:
    args = [] if args is None else args
    kwargs = {} if kwargs is None else kwargs
    if not isinstance(args, list | tuple):
        raise TypeError(f"args of job {definition.name} must be a list, not {type(args).__name__}")
    if not isinstance(kwargs, dict):
        raise TypeError(
            f"kwargs of job {definition.name} must be a dict, not {type(kwargs).__name__}"
        )
    if definition.declared_late:  # every way of enqueueing, batch callbacks included
        check_enqueue(definition)
    definition.check_arguments(args, kwargs)
    queue, priority, run_at, limited = options
    typed = None
    if definition.payload is not None:
        args, kwargs, *typed = definition.payload.encode(args, kwargs)
    # Scalars (nearly every argument) are stored as they are: only containers are walked.
    arg_list = list(args)
    for i, arg in enumerate(arg_list):
        if type(arg) not in SCALARS:
            arg_list[i] = as_stored(definition.name, f"argument {i}", arg, f"args[{i}]")
    kwarg_dict = dict(kwargs)
    for key, arg in kwarg_dict.items():
        if type(arg) not in SCALARS:
            label = f"keyword argument {key!r}"
            kwarg_dict[key] = as_stored(definition.name, label, arg, f"kwargs[{key!r}]")
    row = NewJob(
        definition.name,
        to_json(definition.name, arg_list, "argument", arg_list),
        to_json(definition.name, kwarg_dict, "keyword argument", kwarg_dict),
        queue, priority, run_at, arg_list, kwarg_dict,
    )  # fmt: skip
    # Key callables get the arguments as the job will: typed ones in their types.
    call = None if typed is None else _as_called(arg_list, kwarg_dict, typed)
    key_args = call or (arg_list, kwarg_dict)
    if limited:
        limit = concurrency_for(definition, queue, *key_args)
        if limit is not None:
            row = replace(row, concurrency_key=limit[0], concurrency_limit=limit[1])
        rate = rate_for(definition, queue, *key_args)
        if rate is not None:
            row = replace(row, rate_key=rate[0], rate_limit=rate[1])
    if definition.unique is None and unique_key is None:
        return row
    key = key_for(definition, arg_list, kwarg_dict, unique_key, call=call)
    if key is None:
        return row
    rule = definition.unique or DEFAULT_RULE
    return replace(row, unique_key=key, unique_for=rule.unique_for)


def _as_called(
    args: list[Any], kwargs: dict[str, Any], typed: list[dict[Any, Any]]
) -> tuple[list[Any], dict[str, Any]]:
    args, kwargs = list(args), dict(kwargs)
    for i, value in typed[0].items():
        args[i] = value
    kwargs.update(typed[1])
    return args, kwargs


def run_at_for(wait: float | timedelta | None, wait_until: datetime | None) -> datetime:
    """When a job scheduled with ``wait`` or ``wait_until`` becomes due."""
    now = clock.now()
    if wait is not None and wait_until is not None:
        raise ValueError("pass wait or wait_until, not both")
    if wait is not None:
        if isinstance(wait, bool) or not isinstance(wait, int | float | timedelta):
            raise TypeError(f"wait must be seconds or a timedelta, not {wait!r}")
        return now + (wait if isinstance(wait, timedelta) else timedelta(seconds=wait))
    if wait_until is not None:
        if not isinstance(wait_until, datetime):
            raise TypeError(f"wait_until must be a datetime, not {wait_until!r}")
        if settings.USE_TZ and timezone.is_naive(wait_until):
            raise ValueError(
                "wait_until is a naive datetime while USE_TZ is True: "
                "pass an aware datetime (e.g. django.utils.timezone.now() + timedelta(...))"
            )
        return clock.stored(wait_until)
    return now


def _store(rows: list[NewJob], follow_other_transaction: bool = True) -> list[Job]:
    alias, now, rows, jobs = _prepared(rows)
    other = _other_transaction(alias) if follow_other_transaction else None
    if other is not None:
        for job in jobs:
            job.created = None
        transaction.on_commit(lambda: _insert(alias, rows, jobs), using=other)
    else:
        _insert(alias, rows, jobs)
    return jobs


def _prepared(rows: list[NewJob]) -> tuple[str, datetime, list[NewJob], list[Job]]:
    """The jobs database, the enqueue time, the rows (carrying the caller's trace context
    when there is one) and their model instances: what every way of storing starts with."""
    # Every row of one call has the same queue: its queue decides the database.
    alias = jobs_settings().database_for(rows[0].queue) if rows else jobs_settings().database
    now = clock.now()
    trace = tracing.outgoing()
    if trace is not None:
        rows = _with_trace(rows, trace)
    template = _template()
    return alias, now, rows, [_instance(row, alias, now, template) for row in rows]


def _with_trace(rows: list[NewJob], trace: dict[str, str]) -> list[NewJob]:
    """The rows with the caller's trace context in their meta, beside what they hold."""
    alone = dumps({tracing.META_KEY: trace})  # encoded once for a whole later_many
    traced = []
    for row in rows:
        if row.meta is None:
            meta = alone
        else:
            meta = dumps({**json.loads(row.meta), tracing.META_KEY: trace})
        # Positional, not dataclasses.replace(), which costs several times more per row.
        traced.append(NewJob(
            row.name, row.args, row.kwargs, row.queue, row.priority, row.run_at,
            row.arg_list, row.kwarg_dict, meta, row.unique_key, row.unique_for, row.tag,
            row.concurrency_key, row.concurrency_limit, row.rate_key, row.rate_limit,
        ))  # fmt: skip
    return traced


def _instance(row: NewJob, alias: str, now: datetime, template: dict | None = None) -> Job:
    if template is None:
        # One value per concrete field, in the model's order (test_enqueued_job.py compares
        # the result with the stored row, so a new field cannot shift them silently).
        job = Job(
            None, row.name, row.arg_list, row.kwarg_dict, row.queue, row.priority, 0,
            row.run_at, None, None, None, None, None, "", None, None, None, "", now, now,
            None, None, None, None, None, None, row.tag, row.concurrency_key,
            row.concurrency_limit, None, None, row.rate_key, row.rate_limit,
        )  # fmt: skip
    else:
        # What Model.__init__ makes of one positional value per field (as Django builds
        # rows read from the database) minus the signals nobody listens to: a copy of the
        # call's template, with this row's values. Model.__init__ costs more than the
        # INSERT's Python side on the one-call-per-job path.
        values = template.copy()
        values["_state"] = ModelState()
        values["name"] = row.name
        values["args"] = row.arg_list
        values["kwargs"] = row.kwarg_dict
        values["queue"] = row.queue
        values["priority"] = row.priority
        values["run_at"] = row.run_at
        values["tag"] = row.tag
        values["concurrency_key"] = row.concurrency_key
        values["concurrency_limit"] = row.concurrency_limit
        values["rate_key"] = row.rate_key
        values["rate_limit"] = row.rate_limit
        values["created_at"] = values["updated_at"] = now
        job = Job.__new__(Job)
        job.__dict__ = values
    if row.meta is not None:
        job.meta = json.loads(row.meta)
    job._state.db = alias
    #: False when a unique call found its key held and stored nothing; None until
    #: stored when the row waits for another database's commit.
    job.created = True
    if row.unique_key is not None:
        job.unique_key = row.unique_key
    return job


#: What a new row holds in the fields a call does not set (``_instance``'s template).
_UNSET = {"attempts": 0, "last_error": "", "progress_message": ""}


def _template() -> dict | None:
    """The attributes ``Job(...)`` gives a new row, to be filled per row by ``_instance``
    (None when something listens to pre_init or post_init: then ``Job(...)`` it is)."""
    if pre_init.has_listeners(Job) or post_init.has_listeners(Job):
        return None
    return _blank_row()


@functools.cache
def _blank_row() -> dict[str, Any]:
    blank: dict[str, Any] = {"_state": None}  # first, as Model.__init__ sets it
    for field in Job._meta.concrete_fields:
        blank[field.attname] = _UNSET.get(field.attname)
    return blank


def _other_transaction(alias: str) -> str | None:
    """The alias of an open transaction when the jobs database has none, else None."""
    if connections[alias].in_atomic_block or len(connections.settings) == 1:
        return None
    for conn in connections.all(initialized_only=True):
        if conn.in_atomic_block:
            return conn.alias
    return None


def _insert(alias: str, rows: list[NewJob], jobs: list[Job]) -> None:
    storage = get_storage(alias)
    now = jobs[0].created_at if jobs else clock.now()
    if any(row.unique_key is not None for row in rows):
        _insert_unique(storage, alias, rows, jobs, now)
    else:
        # Several INSERT statements must stand or fall together: nothing half-stored.
        with storage.atomic_if(len(rows) > 1000):
            _insert_chunks(storage, alias, rows, jobs, now)
    if job_enqueued.receivers:
        enqueued(jobs, alias)


def _insert_unique(storage, alias: str, rows: list[NewJob], jobs: list[Job], now) -> None:
    """Rows with a key one statement each (the index decides each), the others batched."""
    plain = [i for i, row in enumerate(rows) if row.unique_key is None]
    with storage.atomic_if(len(rows) > 1):
        if plain:
            _insert_chunks(storage, alias, [rows[i] for i in plain], [jobs[i] for i in plain], now)
        for row, job in zip(rows, jobs, strict=True):
            if row.unique_key is None:
                continue
            job_id, created = storage.insert_unique(row, now)
            job.id = job_id
            job._state.adding = False
            job.created = created
            if not created:
                _as_holder(job, alias)


def _as_holder(job: Job, alias: str) -> None:
    """Turn the returned instance into the row that holds the key, as stored."""
    try:
        job.refresh_from_db(using=alias)
    except Job.DoesNotExist:
        pass  # it finished and was deleted meanwhile: the id still names it


def _insert_chunks(storage, alias: str, rows: list[NewJob], jobs: list[Job], now) -> None:
    for start in range(0, len(rows), 1000):
        ids = storage.insert(rows[start : start + 1000], now)
        for job, job_id in zip(jobs[start : start + 1000], ids, strict=True):
            job.id = job_id
            job._state.adding = False
