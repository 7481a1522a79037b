"""The log records of a job's life: start, success, retry, snooze, failure, cancellation.

One logger, ``django_jobs.job``, so a project sets its level apart from the worker's own
lines (``django_jobs.worker``). Every record carries ``extra`` fields a JSON formatter
writes out: ``job_id``, ``job_name``, ``queue``, ``attempt``, ``max_attempts``,
``duration_ms``, ``tag``, ``worker``, ``outcome``. A final failure is logged at ERROR with
the exception (``exc_info``), so Sentry-like handlers see an error with the job's context.

Levels: start DEBUG, success and snooze INFO, retry and cancellation WARNING, final
failure ERROR. Nothing is formatted, and no dict is built, for a level that is off.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger("django_jobs.job")

DEBUG, INFO, WARNING, ERROR = logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR

#: The identity of the worker of this process (set when it starts; run_jobs sets its own).
worker = ""


def _extra(
    claimed: Any,
    outcome: str,
    duration: float | None,
    max_attempts: int | None,
    worker_identity: str | None,
) -> dict[str, Any]:
    return {
        "job_id": claimed.id,
        "job_name": claimed.name,
        "queue": claimed.queue,
        "attempt": claimed.attempts,
        "max_attempts": max_attempts,
        "duration_ms": None if duration is None else round(duration * 1000),
        "tag": getattr(claimed, "tag", None) or "",
        "worker": worker if worker_identity is None else worker_identity,
        "outcome": outcome,
    }


def _where(claimed: Any, max_attempts: int | None) -> str:
    """``attempt 2 of 24, job 42, tag signup-42``: what the parentheses of a line hold."""
    text = f"attempt {claimed.attempts}"
    if max_attempts:
        text += f" of {max_attempts}"
    text += f", job {claimed.id}"
    tag = getattr(claimed, "tag", None)
    if tag:
        text += f", tag {tag}"
    return text


def _took(duration: float | None, word: str) -> str:
    return "" if duration is None else f" {word} {duration * 1000:.0f} ms"


def started(claimed: Any, max_attempts: int | None = None) -> None:
    if logger.isEnabledFor(DEBUG):
        logger.debug(
            "[jobs] [%s] started (%s)", claimed.name, _where(claimed, max_attempts),
            extra=_extra(claimed, "started", None, max_attempts, None),
        )  # fmt: skip


def succeeded(claimed: Any, duration: float | None) -> None:
    if logger.isEnabledFor(INFO):
        logger.info(
            "[jobs] [%s] succeeded%s (%s)",
            claimed.name, _took(duration, "in"), _where(claimed, None),
            extra=_extra(claimed, "succeeded", duration, None, None),
        )  # fmt: skip


def retrying(
    claimed: Any,
    duration: float | None,
    max_attempts: int | None,
    run_at: Any,
    summary: str,
    worker_identity: str | None = None,
) -> None:
    if logger.isEnabledFor(WARNING):
        logger.warning(
            "[jobs] [%s] failed%s (%s; retrying at %s): %s",
            claimed.name, _took(duration, "after"), _where(claimed, max_attempts),
            run_at.isoformat(timespec="seconds"), summary,
            extra=_extra(claimed, "retry", duration, max_attempts, worker_identity),
        )  # fmt: skip


def failed(
    claimed: Any,
    duration: float | None,
    max_attempts: int | None,
    summary: str,
    error: BaseException | None,
    why: str = "no more retries",
    worker_identity: str | None = None,
) -> None:
    if logger.isEnabledFor(ERROR):
        logger.error(
            "[jobs] [%s] failed%s (%s; %s): %s",
            claimed.name, _took(duration, "after"), _where(claimed, max_attempts), why,
            summary, exc_info=error if isinstance(error, BaseException) else None,
            extra=_extra(claimed, "failed", duration, max_attempts, worker_identity),
        )  # fmt: skip


def snoozed(claimed: Any, duration: float | None, what: str, run_at: Any) -> None:
    if logger.isEnabledFor(INFO):
        logger.info(
            "[jobs] [%s] %s (%s; until %s)",
            claimed.name, what, _where(claimed, None), run_at.isoformat(timespec="seconds"),
            extra=_extra(claimed, "snooze", duration, None, None),
        )  # fmt: skip


def cancelled(claimed: Any, duration: float | None, note: str) -> None:
    if logger.isEnabledFor(WARNING):
        logger.warning(
            "[jobs] [%s] cancelled%s (%s): %s",
            claimed.name, _took(duration, "after"), _where(claimed, None), note,
            extra=_extra(claimed, "cancelled", duration, None, None),
        )  # fmt: skip
