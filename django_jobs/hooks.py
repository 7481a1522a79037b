"""Per-job hooks: ``@job(before_perform=..., after_perform=..., on_success=...,
on_failure=...)``, checked when the job is declared, run by the worker around each attempt.

In the thread (or event loop) that runs the job, for each attempt:

* ``before_perform(job)`` just before the function;
* ``after_perform(job)`` once it returned or raised, whatever happened;
* then ``on_success(job, result)``, or ``on_failure(job, exception)`` for an attempt that
  raised (a ``Retry`` or ``Discard`` too; a ``Snooze`` is neither).

``job`` is a :class:`~django_jobs.signals.JobInfo`. A hook that raises is logged on
``django_jobs.hooks`` and changes nothing: the job runs, and its outcome is what the job
itself did. An async job may have ``async def`` hooks (awaited); a sync job may not.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("django_jobs.hooks")

#: Each hook's name and the arguments it is called with.
PARAMETERS = {
    "before_perform": ("job",),
    "after_perform": ("job",),
    "on_success": ("job", "result"),
    "on_failure": ("job", "exception"),
}


@dataclass(frozen=True, slots=True)
class Hooks:
    before_perform: Callable[..., Any] | None = None
    after_perform: Callable[..., Any] | None = None
    on_success: Callable[..., Any] | None = None
    on_failure: Callable[..., Any] | None = None

    def run(self, which: str, name: str, *args: Any) -> None:
        hook = getattr(self, which)
        if hook is None:
            return
        try:
            hook(*args)
        except Exception as exc:
            _log_raised(which, name, hook, exc)

    async def arun(self, which: str, name: str, *args: Any) -> None:
        hook = getattr(self, which)
        if hook is None:
            return
        try:
            result = hook(*args)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            _log_raised(which, name, hook, exc)


def _log_raised(which: str, name: str, hook: Any, error: Exception) -> None:
    logger.error(
        "[jobs] [%s] %s hook %s raised %s: %s (ignored: the job's outcome is unchanged)",
        name, which, getattr(hook, "__qualname__", hook), type(error).__name__, error,
        exc_info=error, extra={"job_name": name},
    )  # fmt: skip


def checked(name: str, is_async: bool, **hooks: Any) -> Hooks | None:
    """The hooks a job declares, each checked (callable, fits its arguments); None for
    a job that declares none. ``TypeError`` naming the job and the hook otherwise."""
    found = {}
    for which, hook in hooks.items():
        if hook is None:
            continue
        expected = ", ".join(PARAMETERS[which])
        if not callable(hook):
            raise TypeError(
                f"@job {name}: {which} must be a function taking ({expected}), not {hook!r}"
            )
        if not is_async and _is_async(hook):
            raise TypeError(
                f"@job {name}: {which} is an async function, and {name} is not: a sync "
                "job's hooks are plain functions"
            )
        try:
            signature = inspect.signature(hook)
        except (TypeError, ValueError):
            signature = None  # some builtins have none: trust them
        if signature is not None:
            try:
                signature.bind(*PARAMETERS[which])
            except TypeError as exc:
                raise TypeError(
                    f"@job {name}: {which} is called with ({expected}), and "
                    f"{getattr(hook, '__qualname__', hook)}{signature} does not accept "
                    f"that: {exc}"
                ) from None
        found[which] = hook
    return Hooks(**found) if found else None


def _is_async(hook: Any) -> bool:
    return inspect.iscoroutinefunction(hook) or inspect.iscoroutinefunction(
        getattr(hook, "__call__", None)  # noqa: B004 - an object with an async __call__
    )
