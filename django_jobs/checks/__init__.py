"""System checks for ``settings.JOBS``, the registered jobs and the jobs database.

:mod:`django_jobs.conf` parses the setting leniently (a bad value falls back to its
default) so that a typo never crashes a worker; these checks are where the typo is
reported, with an id from ``docs/reference/checks.md`` and a hint. They read the raw
dictionary, never the parsed one. Ids are stable: a retired check keeps its number.
"""

from . import (  # noqa: F401  (importing registers the checks)
    admin,
    cancelling,
    database,
    declarations,
    embedded,
    events,
    limits,
    observability,
    placement,
    pooling,
    prune,
    retries,
    schedule,
    settings,
    tasks,
)
from .base import TAG
from .database import psycopg_warnings, skip_locked_errors

__all__ = ["TAG", "psycopg_warnings", "skip_locked_errors"]
