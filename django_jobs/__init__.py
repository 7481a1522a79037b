"""django_jobs: background jobs stored in the database your Django project already has.

The public API::

    from django_jobs import job, later, later_many

    @job(queue="email")
    def send_welcome_email(user_id): ...

    later(send_welcome_email, [user.id], wait=300)

Operators' controls: ``cancel(job_id)``, ``pause(queue)``, ``resume(queue)``.
"""

from .exceptions import (
    Discard,
    JobNotFound,
    JobNotRegistered,
    JobsError,
    NotSerializable,
    Retry,
    Snooze,
    UnknownQueue,
)

__version__ = "0.1.0"

__all__ = [
    "Discard",
    "JobNotFound",
    "JobNotRegistered",
    "JobsError",
    "NotSerializable",
    "Retry",
    "Snooze",
    "UnknownQueue",
    "__version__",
    "cancel",
    "job",
    "later",
    "later_many",
    "pause",
    "resume",
]


def __getattr__(name: str):
    # Importing the decorator must not import models before the app registry is ready.
    if name == "job":
        from .registry import job

        return job
    if name in ("later", "later_many"):
        from . import scheduling

        return getattr(scheduling, name)
    if name == "cancel":
        from .cancelling import cancel

        return cancel
    if name in ("pause", "resume"):
        from . import pausing

        return getattr(pausing, name)
    raise AttributeError(f"module 'django_jobs' has no attribute {name!r}")
