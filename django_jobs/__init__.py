"""django_jobs: background jobs stored in the database your Django project already has.

The public API::

    from django_jobs import job, later, later_many

    @job(queue="email")
    def send_welcome_email(user_id): ...

    later(send_welcome_email, [user.id], wait=300)

Operators' controls: ``cancel(job_id)``, ``pause(queue)``, ``resume(queue)``.
Flows: ``later(b, after=a)`` and ``open_batch(on_success=...)``.
"""

from .exceptions import (
    BatchClosed,
    DependencyError,
    DependencyNotFound,
    Discard,
    InvalidArgument,
    JobNotFound,
    JobNotImported,
    JobNotRegistered,
    JobsError,
    JobsNotReady,
    NotSerializable,
    Retry,
    Snooze,
    UnknownQueue,
    ensure_ready,
)

__version__ = "0.1.0"

__all__ = [
    "BatchClosed",
    "DependencyError",
    "DependencyNotFound",
    "Discard",
    "InvalidArgument",
    "JobNotFound",
    "JobNotImported",
    "JobNotRegistered",
    "JobsError",
    "JobsNotReady",
    "NotSerializable",
    "Retry",
    "Snooze",
    "UnknownQueue",
    "__version__",
    "cancel",
    "job",
    "later",
    "later_many",
    "open_batch",
    "pause",
    "resume",
]


_NEEDS_REGISTRY = frozenset({"later", "later_many", "cancel", "open_batch", "pause", "resume"})


def __getattr__(name: str):
    # Importing the decorator must not import models before the app registry is ready.
    if name == "job":
        from .registry import job

        return job
    if name in _NEEDS_REGISTRY:
        # Each of these imports the models: say what to do, not "Apps aren't loaded yet".
        ensure_ready(f"django_jobs.{name}")
    if name in ("later", "later_many"):
        from . import scheduling

        return getattr(scheduling, name)
    if name == "cancel":
        from .cancelling import cancel

        return cancel
    if name == "open_batch":
        from .batches import open_batch

        return open_batch
    if name in ("pause", "resume"):
        from . import pausing

        return getattr(pausing, name)
    raise AttributeError(f"module 'django_jobs' has no attribute {name!r}")
