"""Job names: what ``@job(name=...)`` accepts.

A job's name is what its rows store and what a worker looks the function up by, so a name
that outlives refactors is chosen, not derived from a module path. The recommended form
is ``category:action`` (``"emails:welcome"``). Two prefixes are django_jobs' own and
refused: ``django.tasks:`` names the rows of the ``django.tasks`` backend (a worker runs
those through the task's module path, never the registry), and ``queue:`` begins the
concurrency key of a queue's ``CONCURRENCY`` limit, which a job's own key
(``"<job name>"``) would otherwise share.
"""

from __future__ import annotations

from .limits import QUEUE_PREFIX

#: The longest name (the ``name`` column's length).
MAX_LENGTH = 255

#: ``django.tasks`` rows (``django_jobs.tasks``): the rest of the name is a module path.
TASK_PREFIX = "django.tasks:"

RESERVED_PREFIXES = (TASK_PREFIX, QUEUE_PREFIX)


def checked(name: object) -> str:
    """``name`` when a job may be called so; ``TypeError``/``ValueError`` saying why not."""
    if not isinstance(name, str):
        raise TypeError(f"@job name must be a string, not {name!r}")
    if not name or name != name.strip() or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise ValueError(
            f"@job name {name!r} must be non-empty, without leading or trailing spaces or "
            'control characters: use the form "category:action", e.g. "emails:welcome"'
        )
    if len(name) > MAX_LENGTH:
        raise ValueError(f"@job name {name[:40]!r}… is longer than {MAX_LENGTH} characters")
    for prefix in RESERVED_PREFIXES:
        if name.startswith(prefix):
            raise ValueError(
                f"@job name {name!r} starts with {prefix!r}, which django_jobs reserves "
                f"({'django.tasks rows' if prefix == TASK_PREFIX else 'queue limits'}): "
                "choose another category"
            )
    if ":" in name and "" in (parts := name.split(":")):
        raise ValueError(
            f"@job name {name!r} has an empty part: in the form category:action both are "
            f"named, e.g. {':'.join(p or 'action' for p in parts)!r}"
        )
    return name
