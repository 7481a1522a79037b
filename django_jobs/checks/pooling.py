"""Checks of ``JOBS["LISTEN_DATABASE"]`` and of jobs databases behind a connection pooler."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, register

from .. import conf
from .base import TAG, _closest, _error, _raw, _vendor, _warning


def _listen_pairs(value: Any, database: Any) -> list[tuple[Any, Any]] | None:
    """``LISTEN_DATABASE`` as (jobs alias, listen alias) pairs; None if malformed."""
    if isinstance(value, str):
        return [(database if isinstance(database, str) else "default", value)]
    if isinstance(value, dict):
        return list(value.items())
    return None


@register(TAG)
def check_listen_database(app_configs=None, **kwargs) -> list[CheckMessage]:
    raw = _raw()
    value = raw.get("LISTEN_DATABASE")
    if value is None:
        return []
    pairs = _listen_pairs(value, raw.get("DATABASE", conf.TOP_DEFAULTS["DATABASE"]))
    databases = getattr(settings, "DATABASES", {})
    if pairs is None or not all(isinstance(k, str) and isinstance(v, str) for k, v in pairs):
        return [
            _error(
                170,
                f'JOBS["LISTEN_DATABASE"] must be a database alias, or a dict of jobs '
                f"database alias to alias, not {value!r}.",
                'E.g. "direct": a key of settings.DATABASES that connects to the jobs '
                "database without the pooler.",
            )
        ]
    messages: list[CheckMessage] = []
    for jobs_alias, listen in pairs:
        if listen not in databases:
            messages.append(
                _error(
                    170,
                    f'JOBS["LISTEN_DATABASE"] names {listen!r}, which is not in '
                    "settings.DATABASES.",
                    f"{_closest(listen, list(databases))}Aliases: {', '.join(databases)}.",
                )
            )
        elif _vendor(databases[listen].get("ENGINE", "")) != "postgresql" or (
            _vendor(databases.get(jobs_alias, {}).get("ENGINE", "")) != "postgresql"
        ):
            messages.append(
                _error(
                    171,
                    f'JOBS["LISTEN_DATABASE"] pairs the jobs database {jobs_alias!r} with '
                    f"{listen!r}: both must be PostgreSQL (only PostgreSQL workers LISTEN).",
                    "Remove the entry: on SQLite and MySQL/MariaDB workers poll and need no "
                    "LISTEN_DATABASE.",
                )
            )
    return messages


@register(Tags.database, TAG)
def check_pooled_databases(app_configs=None, databases=None, **kwargs) -> list[CheckMessage]:
    # Connects, so Django runs it only when asked (check --database, migrate).
    from django.db import connections
    from django.utils.connection import ConnectionDoesNotExist

    from ..storage.pooler import LISTEN_HINT, behind_pooler, polling_reason

    jobs = conf.jobs_settings()
    messages: list[CheckMessage] = []
    for alias in jobs.databases:
        if not databases or alias not in databases:
            continue
        try:
            connection = connections[alias]
        except ConnectionDoesNotExist:
            continue  # E004
        if connection.vendor != "postgresql" or not behind_pooler(connection):
            continue
        listen = jobs.listen_database(alias)
        if listen is None:
            messages.append(_warning(172, polling_reason(alias), LISTEN_HINT))
        elif listen in databases and behind_pooler(connections[listen]):
            messages.append(
                _warning(
                    173,
                    f'JOBS["LISTEN_DATABASE"] names {listen!r} for the jobs database '
                    f"{alias!r}, but {listen!r} goes through a connection pooler too: a "
                    "LISTEN there stops hearing NOTIFY when the pooler moves the session.",
                    f"Point DATABASES[{listen!r}] at PostgreSQL itself (its own HOST and "
                    "PORT), not at the pooler.",
                )
            )
        messages.extend(_session_features(alias, connection.settings_dict))
    return messages


def _session_features(alias: str, database: dict[str, Any]) -> list[CheckMessage]:
    """W174: settings that need one server session for longer than a transaction."""
    options = database.get("OPTIONS") or {}
    problems = []
    if not database.get("DISABLE_SERVER_SIDE_CURSORS"):
        problems.append(
            "DISABLE_SERVER_SIDE_CURSORS is not True (QuerySet.iterator() opens a "
            "cursor that outlives its transaction)"
        )
    if options.get("prepare_threshold") is not None:
        problems.append(
            "OPTIONS['prepare_threshold'] is set (psycopg prepares named "
            "statements on one server session)"
        )
    if not problems:
        return []
    return [
        _warning(
            174,
            f"The jobs database {alias!r} goes through a connection pooler and "
            + "; ".join(problems)
            + ".",
            f'Set DATABASES[{alias!r}]["DISABLE_SERVER_SIDE_CURSORS"] = True and leave '
            "OPTIONS['prepare_threshold'] unset (None), or use a pooler in session mode.",
        )
    ]
