"""Signed tokens that let their holder watch one job's events, and nothing else.

A token is the job id signed with the project's ``SECRET_KEY`` (``django.core.signing``)
and a timestamp: ids are easy to guess, tokens cannot be made without the key, and a
token stops working after ``JOBS["EVENTS"]["TOKEN_MAX_AGE"]`` seconds. A job whose queue
lives in another jobs database has its id and that database's alias signed together
(``[id, alias]``): ids of two databases overlap, and the reader must listen and read the
row where the job is. A job of ``JOBS["DATABASE"]`` keeps the id alone, so tokens signed
before stay valid.
"""

from __future__ import annotations

from typing import Any

from django.core import signing

from ..conf import jobs_settings

SALT = "django_jobs.events.job"


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def signed_job_token(job: Any, *, using: str | None = None) -> str:
    """A token for the event stream of ``job`` (a ``Job``, or a job id).

    ``using``: the jobs database that holds it (default: the ``Job``'s own, and for a
    bare id ``JOBS["DATABASE"]``).
    """
    job_id = getattr(job, "pk", job)
    if not _is_id(job_id):
        raise TypeError(f"signed_job_token() takes a stored job or its id, not {job!r}")
    settings = jobs_settings()
    alias = using or getattr(getattr(job, "_state", None), "db", None) or settings.main_database
    if alias not in settings.databases:
        raise ValueError(
            f"signed_job_token(): {alias!r} is not a jobs database "
            f"(those are {', '.join(settings.databases)})"
        )
    if alias == settings.main_database:
        return signing.dumps(job_id, salt=SALT)
    return signing.dumps([job_id, alias], salt=SALT)


def job_from_token(token: str, max_age: float | None = None) -> tuple[int, str] | None:
    """The job id ``token`` was made for and the alias of its jobs database; None when
    the token is forged, altered or expired, or names a database no longer holding jobs."""
    settings = jobs_settings()
    age = settings.events.token_max_age if max_age is None else max_age
    try:
        value = signing.loads(token, salt=SALT, max_age=age)
    except signing.BadSignature:  # SignatureExpired is one
        return None
    if _is_id(value):
        return value, settings.main_database
    if (
        isinstance(value, list)
        and len(value) == 2
        and _is_id(value[0])
        and isinstance(value[1], str)
        and value[1] in settings.databases
    ):
        return value[0], value[1]
    return None


def job_id_from_token(token: str, max_age: float | None = None) -> int | None:
    """The job id ``token`` was made for; None when it is forged, altered or expired
    (:func:`job_from_token` also says which jobs database holds it)."""
    found = job_from_token(token, max_age)
    return None if found is None else found[0]
