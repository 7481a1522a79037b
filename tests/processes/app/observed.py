"""Jobs with every hook, and receivers of every django_jobs signal, each writing one
Execution row per call, so a test can count them from another process.

Receivers are connected only in processes started with ``DJANGO_JOBS_OBSERVE=1`` (and
by tests that call :func:`connect`): other process tests keep the no-receiver path.
A row's key is ``what|attempt|detail``; its ``job_id`` is the job's, ``started`` the
duration in seconds the signal carried (0 when None).
"""

from __future__ import annotations

import os
import time

from django_jobs import Retry, Snooze, job, signals
from tests.testapp.models import Execution

SIGNALS = {
    "job_enqueued": signals.job_enqueued,
    "job_started": signals.job_started,
    "job_succeeded": signals.job_succeeded,
    "job_retrying": signals.job_retrying,
    "job_snoozed": signals.job_snoozed,
    "job_failed": signals.job_failed,
    "job_cancelled": signals.job_cancelled,
}


def note(what: str, job_info, detail: str = "", duration: float | None = None) -> None:
    Execution.objects.create(
        key=f"{what}|{job_info.attempt}|{detail}"[:100],
        job_id=job_info.id,
        pid=os.getpid(),
        started=duration or 0.0,
        ended=time.time(),
    )


def _before(job):
    note("before_perform", job)


def _after(job):
    note("after_perform", job)


def _success(job, result):
    note("on_success", job, repr(result))


def _failure(job, exception):
    note("on_failure", job, type(exception).__name__)


HOOKS = {
    "before_perform": _before,
    "after_perform": _after,
    "on_success": _success,
    "on_failure": _failure,
}


@job(max_attempts=2, takes_context=True, queue="slow", **HOOKS)
def observed(context, mode: str, seconds: float = 0.0):
    """``ok`` returns, ``fail`` raises, ``retry``/``snooze`` ask for it once, ``wait``
    runs until it is told to stop, ``hang`` outlives its own timeout."""
    if mode == "fail":
        raise ValueError(f"boom on attempt {context.attempt}")
    if mode == "retry" and context.attempt == 1:
        raise Retry(0.2, reason="once more")
    if mode == "snooze" and not Execution.objects.filter(key="snoozed-once").exists():
        Execution.objects.create(key="snoozed-once")
        raise Snooze(0.2, reason="not yet")
    if mode == "wait":
        Execution.objects.create(key=f"waiting:{context.job_id}")
        deadline = time.monotonic() + 30
        while not context.should_stop() and time.monotonic() < deadline:
            time.sleep(0.05)
        return "stopped"
    return mode


@job(max_attempts=1, timeout=1, **HOOKS)
def hangs(seconds: float = 30.0):
    """Outlives its timeout: the watchdog records the attempt and ends the process."""
    time.sleep(seconds)


def _raises(*args, **kwargs):
    raise RuntimeError("a broken receiver or hook")


@job(
    max_attempts=2,
    before_perform=_raises,
    after_perform=_raises,
    on_success=_raises,
    on_failure=_raises,
)
def with_broken_hooks(mode: str):
    Execution.objects.create(key=f"broken-hooks:{mode}")
    if mode == "fail":
        raise ValueError("the job's own error")
    return mode


def _recorder(name):
    def receive(sender, job, **kwargs):
        if not job.name.startswith(__name__):
            return
        detail = ""
        if kwargs.get("exception") is not None:
            detail = type(kwargs["exception"]).__name__
        if kwargs.get("run_at") is not None:
            detail += "@run_at"
        if "result" in kwargs:
            detail = repr(kwargs["result"])
        sender_ok = sender is None or getattr(sender, "name", None) == job.name
        note(name, job, detail + ("" if sender_ok else "!sender"), kwargs.get("duration"))

    receive.__qualname__ = f"record_{name}"
    return receive


_RECEIVERS = {name: _recorder(name) for name in SIGNALS}


def connect() -> None:
    """Record every signal; a raising receiver too, for the job with broken hooks only."""
    for name, signal in SIGNALS.items():
        signal.connect(_RECEIVERS[name], dispatch_uid=f"observed-{name}")
        signal.connect(_raises, sender=with_broken_hooks, dispatch_uid=f"raises-{name}")


def disconnect() -> None:
    for name, signal in SIGNALS.items():
        signal.disconnect(dispatch_uid=f"observed-{name}")
        signal.disconnect(sender=with_broken_hooks, dispatch_uid=f"raises-{name}")


if os.environ.get("DJANGO_JOBS_OBSERVE") == "1":
    connect()
