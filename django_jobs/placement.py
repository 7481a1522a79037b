"""Where jobs live: the database of each queue and worker group, and the LISTEN aliases.

Helpers of :mod:`django_jobs.conf`, which alone reads ``settings.JOBS`` and passes the raw
values here. A queue lives in ``JOBS["DATABASE"]`` unless its ``JOBS["QUEUES"]`` entry or a
worker group naming it says otherwise (the checks in ``django_jobs.checks.placement``
reject a queue mapped to two databases).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .conf import WorkerGroup


def as_alias(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def queue_names(value: Any) -> list[Any] | None:
    """The names of ``JOBS["QUEUES"]`` (a list, or a dict of name -> options)."""
    if isinstance(value, dict):
        return list(value)
    if isinstance(value, list | tuple):
        return list(value)
    return None


def placed(
    queues: Any, groups: tuple[WorkerGroup, ...], main: str
) -> tuple[tuple[tuple[str, str], ...], tuple[WorkerGroup, ...]]:
    """Where each queue lives, and each group's database, from QUEUES and WORKERS.

    A queue's ``DATABASE`` in ``JOBS["QUEUES"]`` wins, else that of the first group naming
    it with one (the check E175 rejects a queue mapped to two). A group without one claims
    from the database its named queues share, else from ``main``.
    """
    home: dict[str, str] = {}
    if isinstance(queues, dict):
        for name, options in queues.items():
            alias = as_alias(options.get("DATABASE")) if isinstance(options, dict) else None
            if isinstance(name, str) and alias:
                home[name] = alias
    for group in groups:
        for name in group.queues or ():
            if group.database:
                home.setdefault(name, group.database)
    resolved = []
    for group in groups:
        alias = group.database
        if not alias:
            homes = {home.get(name, main) for name in group.queues or ()}
            alias = homes.pop() if len(homes) == 1 else main
        resolved.append(replace(group, database=alias))
    pairs = tuple((name, alias) for name, alias in home.items() if alias != main)
    return pairs, tuple(resolved)


def listen(value: Any, database: Any) -> tuple[tuple[str, str], ...]:
    """``LISTEN_DATABASE`` as (jobs database alias, alias to LISTEN through) pairs."""
    if isinstance(value, str) and value:
        return ((database if isinstance(database, str) else "default", value),)
    if isinstance(value, dict):
        return tuple((k, v) for k, v in value.items() if isinstance(k, str) and isinstance(v, str))
    return ()
