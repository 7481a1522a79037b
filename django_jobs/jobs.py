"""django_jobs' own jobs, registered like a project's (app autodiscovery imports this module).

``django_jobs.prune`` is what the built-in ``django_jobs.prune`` schedule enqueues
(``JOBS["PRUNE"]["CRON"]``, hourly at :17 by default); ``manage.py jobs prune`` runs the
same pruning in the foreground.
"""

from __future__ import annotations

import logging

from .conf import jobs_settings
from .recurring.schedule import SOURCE_BUILTIN, Schedule, default_timezone, register_builtin
from .registry import job

logger = logging.getLogger("django_jobs.pruning")

PRUNE = "django_jobs.prune"


# A few attempts: a run that lost its connection half-way simply goes on at the next one,
# and the next tick is at most an hour away anyway.
@job(name=PRUNE, max_attempts=3)
def prune() -> None:
    from .pruning import prune as prune_rows

    report = prune_rows()
    logger.info("prune: %s", report.summary().strip().replace("\n", "; "))


def prune_schedule() -> Schedule | None:
    """The built-in schedule, as ``JOBS["PRUNE"]`` says now (None: turned off)."""
    settings = jobs_settings().prune
    if not settings.enabled:
        return None
    return Schedule(
        key=PRUNE,
        job=PRUNE,
        cron=settings.cron,
        # The project's zone, like any schedule without TIMEZONE: a CRON of "0 3 * * *"
        # means 03:00 where the project is.
        timezone=default_timezone(),
        queue=settings.queue,
        source=SOURCE_BUILTIN,
    )


register_builtin(PRUNE, prune_schedule)
