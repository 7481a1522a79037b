"""django_jobs' own jobs, registered like a project's (app autodiscovery imports this module).

``django_jobs.prune`` is what the built-in ``django_jobs.prune`` schedule enqueues
(``JOBS["PRUNE"]["CRON"]``, hourly by default); ``manage.py jobs prune`` runs the same
pruning in the foreground.
"""

from __future__ import annotations

import logging

from .registry import job

logger = logging.getLogger("django_jobs.pruning")

PRUNE_JOB = "django_jobs.prune"


# A few attempts: a run that lost its connection half-way simply goes on at the next one,
# and the next scheduled tick is at most an hour away anyway.
@job(name=PRUNE_JOB, max_attempts=3)
def prune() -> None:
    from .pruning import prune as prune_rows

    report = prune_rows()
    logger.info("prune: %s", report.summary().strip().replace("\n", "; "))
