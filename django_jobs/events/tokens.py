"""Signed tokens that let their holder watch one job's events, and nothing else.

A token is the job id signed with the project's ``SECRET_KEY`` (``django.core.signing``)
and a timestamp: ids are easy to guess, tokens cannot be made without the key, and a
token stops working after ``JOBS["EVENTS"]["TOKEN_MAX_AGE"]`` seconds.
"""

from __future__ import annotations

from typing import Any

from django.core import signing

from ..conf import jobs_settings

SALT = "django_jobs.events.job"


def signed_job_token(job: Any) -> str:
    """A token for the event stream of ``job`` (a ``Job``, or a job id)."""
    job_id = getattr(job, "pk", job)
    if not isinstance(job_id, int) or isinstance(job_id, bool):
        raise TypeError(f"signed_job_token() takes a stored job or its id, not {job!r}")
    return signing.dumps(job_id, salt=SALT)


def job_id_from_token(token: str, max_age: float | None = None) -> int | None:
    """The job id ``token`` was made for; None when it is forged, altered or expired."""
    age = jobs_settings().events.token_max_age if max_age is None else max_age
    try:
        job_id = signing.loads(token, salt=SALT, max_age=age)
    except signing.BadSignature:  # SignatureExpired is one
        return None
    return job_id if isinstance(job_id, int) and not isinstance(job_id, bool) else None
