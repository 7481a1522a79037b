"""What a test asserts about enqueued jobs: ``enqueued_jobs()``, ``assert_enqueued()``,
``assert_not_enqueued()`` and ``capture_jobs()`` read the jobs table."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from django.db.models import Max, QuerySet

from .. import clock, registry
from ..conf import jobs_settings
from ..models import Job
from ..payloads import as_stored
from ..registry import JobDefinition


def _job_name(job: Any) -> str:
    if isinstance(job, JobDefinition):
        return job.name
    if isinstance(job, str):
        return job
    raise TypeError(f"pass a job (the @job-decorated function) or its name, not {job!r}")


def enqueued_jobs(job: Any = None, *, queue: str | None = None) -> QuerySet[Job]:
    """The jobs waiting to run (due now or scheduled later), in the order enqueued."""
    rows = Job.objects.using(jobs_settings().database).scheduled()
    if job is not None:
        rows = rows.filter(name=_job_name(job))
    if queue is not None:
        rows = rows.filter(queue=queue)
    return rows.order_by("id")


def _as_stored(value: Any, kind: str) -> Any:
    """``value`` as it reads back from the jobs table (tuples become lists, …)."""
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"expected {kind} {value!r} cannot be stored as JSON, so no job has them: {exc}"
        ) from None


class _Expectation:
    def __init__(self, job: Any, args: Any, kwargs: Any, queue: str | None) -> None:
        self.name = _job_name(job)
        args, kwargs = as_stored(registry.find(self.name), args, kwargs)  # typed payloads
        self.args = None if args is None else _as_stored(list(args), "args")
        self.kwargs = None if kwargs is None else _as_stored(dict(kwargs), "kwargs")
        self.queue = queue

    def differences(self, row: Job) -> list[str]:
        found = []
        if self.args is not None and row.args != self.args:
            found.append(f"args {_dump(row.args)} != {_dump(self.args)}")
        if self.kwargs is not None and row.kwargs != self.kwargs:
            found.append(f"kwargs {_dump(row.kwargs)} != {_dump(self.kwargs)}")
        if self.queue is not None and row.queue != self.queue:
            found.append(f"queue {row.queue!r} != {self.queue!r}")
        return found

    def describe(self) -> str:
        args = "…" if self.args is None else ", ".join(map(_dump, self.args))
        kwargs = (
            ""
            if self.kwargs is None
            else ", ".join(f"{k}={_dump(v)}" for k, v in self.kwargs.items())
        )
        call = f"{self.name}({', '.join(p for p in (args, kwargs) if p)})"
        return call + (f" on queue {self.queue!r}" if self.queue is not None else "")

    def report(self, headline: str, rows: list[Job]) -> str:
        lines = [headline]
        if rows:
            lines.append(f"Enqueued calls of {self.name} ({len(rows)}):")
            for row in rows:
                differences = self.differences(row)
                verdict = "; ".join(differences) if differences else "matches"
                lines.append(f"  #{row.pk} {_call(row)}  -- {verdict}")
        else:
            lines.append(f"No call of {self.name} is enqueued.")
        others = _other_names(self.name)
        if others:
            lines.append("Other jobs enqueued: " + ", ".join(others))
        return "\n".join(lines)


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _call(row: Job) -> str:
    parts = [*map(_dump, row.args), *(f"{k}={_dump(v)}" for k, v in row.kwargs.items())]
    when = "" if row.run_at is None or row.run_at <= clock.now() else f" at {row.run_at}"
    short = row.name.rsplit(".", 1)[-1]
    return f"{short}({', '.join(parts)}) queue={row.queue!r} priority={row.priority}{when}"


def _other_names(name: str, limit: int = 10) -> list[str]:
    rows = enqueued_jobs().exclude(name=name).values_list("name", flat=True)
    counts: dict[str, int] = {}
    for other in rows[:1000]:
        counts[other] = counts.get(other, 0) + 1
    shown = [f"{n} x{c}" for n, c in sorted(counts.items())[:limit]]
    return shown + (["…"] if len(counts) > limit else [])


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


def assert_enqueued(
    job: Any,
    args: Iterable[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    *,
    queue: str | None = None,
    count: int | None = None,
) -> list[Job]:
    """Assert that ``job`` is enqueued (``count`` times exactly, if given); return the rows.

    ``args``, ``kwargs`` and ``queue`` narrow the match when given; arguments compare as
    stored (JSON), so a tuple matches a list. The error lists every enqueued call of the
    job and how it differs from the expected one.
    """
    expected = _Expectation(job, args, kwargs, queue)
    rows = list(enqueued_jobs(expected.name))
    matching = [row for row in rows if not expected.differences(row)]
    if (count is None and matching) or len(matching) == count:
        return matching
    wanted = "at least once" if count is None else _times(count)
    raise AssertionError(
        expected.report(
            f"Expected {expected.describe()} to be enqueued {wanted}; "
            f"{len(matching)} enqueued call(s) match.",
            rows,
        )
    )


def assert_not_enqueued(
    job: Any,
    args: Iterable[Any] | None = None,
    kwargs: dict[str, Any] | None = None,
    *,
    queue: str | None = None,
) -> None:
    """Assert that no enqueued call of ``job`` matches the given arguments and queue."""
    expected = _Expectation(job, args, kwargs, queue)
    rows = list(enqueued_jobs(expected.name))
    matching = [row for row in rows if not expected.differences(row)]
    if matching:
        raise AssertionError(
            expected.report(
                f"Expected {expected.describe()} not to be enqueued; "
                f"{len(matching)} enqueued call(s) match.",
                rows,
            )
        )


@contextmanager
def capture_jobs(job: Any = None) -> Iterator[list[Job]]:
    """Collect the jobs enqueued inside the ``with`` block (of ``job``, if given).

    The list is filled when the block ends, with the rows enqueued in it that still
    exist then (a job run and deleted inside the block is not in it).
    """
    alias = jobs_settings().database
    name = None if job is None else _job_name(job)
    before = Job.objects.using(alias).aggregate(last=Max("id"))["last"] or 0
    captured: list[Job] = []
    yield captured
    rows = Job.objects.using(alias).filter(id__gt=before)
    if name is not None:
        rows = rows.filter(name=name)
    captured.extend(rows.order_by("id"))
