"""The processes django_jobs starts: their environment, titles and console logging.

Titles (``ps``, ``top``) need the optional ``setproctitle`` package
(``pip install django-dbjobs[setproctitle]``); without it processes keep their
``python -m django …`` command line, which works as well for ``pgrep -f``.
"""

from __future__ import annotations

import logging
import os
import sys

from django.conf import settings

from ..conf import WorkerGroup

#: Environment of worker processes: the supervisor's pid (a worker whose parent is no
#: longer this pid was orphaned and stops gracefully) and the console log level.
ENV_SUPERVISOR = "DJANGO_JOBS_SUPERVISOR_PID"
ENV_CONSOLE_LOG = "DJANGO_JOBS_CONSOLE_LOG"
#: Set by ``jobs start``: Django's LOGGING decides what is logged where; when it says
#: nothing about django_jobs, INFO goes to stderr (the log file).
ENV_DETACHED = "DJANGO_JOBS_DETACHED"
#: ``apply_log_level`` value: Django's LOGGING decides, with INFO to stderr as the fallback.
LOG_DETACHED = "detached"
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


def console_logging(level: int | str = logging.DEBUG, *, unless_configured: bool = False) -> None:
    """Log ``django_jobs.*`` to stderr at ``level``, unless a console handler exists.

    With ``unless_configured``, do nothing when LOGGING gave ``django_jobs`` any handler.
    """
    jobs_logger = logging.getLogger("django_jobs")
    if unless_configured and jobs_logger.hasHandlers():
        return
    jobs_logger.setLevel(level)
    logger_: logging.Logger | None = jobs_logger
    while logger_ is not None:
        for handler in logger_.handlers:
            if type(handler) is logging.StreamHandler and handler.stream in (
                sys.stderr,
                sys.stdout,
            ):
                return
        logger_ = logger_.parent if logger_.propagate else None
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s [%(process)d] %(message)s"))
    jobs_logger.addHandler(handler)


def apply_log_level(value: str) -> None:
    """``"DEBUG"`` (or another level): console logging at that level; ``LOG_DETACHED``:
    INFO to stderr only where LOGGING configures nothing for django_jobs."""
    if value == LOG_DETACHED:
        console_logging(logging.INFO, unless_configured=True)
    elif value:
        console_logging(value)


def child_env() -> dict[str, str]:
    """The environment of a ``python -m django`` child that must import this project."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = settings.SETTINGS_MODULE
    paths = [os.getcwd()]
    script_dir = os.path.dirname(os.path.abspath(sys.argv[0])) if sys.argv[0] else ""
    # manage.py's directory, but never a package's (``python -m django`` makes argv[0]
    # django/__main__.py, and django/ on the path would shadow ``http``, ``test``…).
    if script_dir and not os.path.exists(os.path.join(script_dir, "__init__.py")):
        paths.insert(0, script_dir)
    existing = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys([*paths, *existing]))
    return env


def prepare_worker_process(group: WorkerGroup, worker_id: str | int) -> int | None:
    """In a worker process: title and logging; the supervisor's pid if one started us."""
    apply_log_level(os.environ.get(ENV_CONSOLE_LOG) or LOG_DETACHED)
    set_title(worker_title(group.queue_label, worker_id))
    supervisor = os.environ.get(ENV_SUPERVISOR, "")
    return int(supervisor) if supervisor.isdigit() else None
