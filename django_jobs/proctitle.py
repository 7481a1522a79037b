"""Process titles (``ps``, ``top``) for the supervisor and its workers.

Titles need the optional ``setproctitle`` package (``pip install django-jobs[setproctitle]``);
without it processes keep their ``python -m django …`` command line, which works as well
for ``pgrep -f``.
"""

from __future__ import annotations

SUPERVISOR_TITLE = "django-jobs-supervisor"


def worker_title(queue_label: str, worker_id: str | int) -> str:
    return f"django-jobs-worker.{queue_label}.{worker_id}"


def set_title(title: str) -> bool:
    """Set this process's title; False when setproctitle is not installed."""
    try:
        from setproctitle import setproctitle
    except ImportError:
        return False
    setproctitle(title)
    return True
