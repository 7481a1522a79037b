"""django_jobs: background jobs stored in the database your Django project already has.

The public API::

    from django_jobs import job, later, later_many

    @job(queue="email")
    def send_welcome_email(user_id): ...

    later(send_welcome_email, [user.id], wait=300)
"""

from .exceptions import JobNotRegistered, JobsError, NotSerializable, UnknownQueue

__version__ = "0.1.0"

__all__ = [
    "JobNotRegistered",
    "JobsError",
    "NotSerializable",
    "UnknownQueue",
    "__version__",
    "job",
    "later",
    "later_many",
]


def __getattr__(name: str):
    # Importing the decorator must not import models before the app registry is ready.
    if name == "job":
        from .registry import job

        return job
    if name in ("later", "later_many"):
        from . import scheduling

        return getattr(scheduling, name)
    raise AttributeError(f"module 'django_jobs' has no attribute {name!r}")
