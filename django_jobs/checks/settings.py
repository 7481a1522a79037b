"""Checks of ``settings.JOBS``: its keys, values, worker groups and queues."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, register

from .. import conf, placement, registry
from ..rates import is_rate
from .base import (
    TAG,
    _closest,
    _declared_queues,
    _error,
    _is_int,
    _jobs_is_a_dict,
    _optional_positive_int,
    _optional_str,
    _positive_int,
    _positive_number,
    _queue_name_problem,
    _raw,
    _warning,
    _worker_groups,
)


@register(TAG)
def check_jobs_is_a_dict(app_configs=None, **kwargs) -> list[CheckMessage]:
    value = getattr(settings, "JOBS", None)
    if value is None or isinstance(value, dict):
        return []
    return [
        _error(
            1,
            f"settings.JOBS must be a dict, not {type(value).__name__}.",
            'Write it as JOBS = {"QUEUES": ["default"], ...} or remove it to use the defaults.',
        )
    ]


@register(TAG)
def check_top_level_keys(app_configs=None, **kwargs) -> list[CheckMessage]:
    raw = _raw()
    return [_unknown_top_level_key(key, raw[key]) for key in raw if key not in conf.TOP_DEFAULTS]


def _unknown_top_level_key(key: Any, value: Any) -> CheckMessage:
    valid = list(conf.TOP_DEFAULTS)
    if key in conf.WORKER_DEFAULTS:
        # A worker-group key at the top would otherwise read as a typo to hunt for.
        example = repr(value) if len(repr(value)) <= 40 else "..."
        return _error(
            2,
            f"settings.JOBS has the key {key!r} at the top level: it belongs in a WORKERS "
            "entry (a worker group), where it is read per group.",
            f'Move it into each worker group it should apply to, e.g. "WORKERS": '
            f'[{{"QUEUE": "*", "{key}": {example}}}]. Top-level keys: {", ".join(valid)}.',
        )
    return _error(
        2,
        f"settings.JOBS has an unknown key {key!r}.",
        f"{_closest(key, valid)}Valid keys: {', '.join(valid)}.",
    )


@register(TAG)
def check_database(app_configs=None, **kwargs) -> list[CheckMessage]:
    raw = _raw()
    if "DATABASE" not in raw:
        return []
    alias = raw["DATABASE"]
    if not isinstance(alias, str):
        return [
            _error(
                3,
                f'JOBS["DATABASE"] must be a database alias (a string), not {alias!r}.',
                'Use a key of settings.DATABASES, e.g. "default".',
            )
        ]
    databases = list(getattr(settings, "DATABASES", {}))
    if alias not in databases:
        return [
            _error(
                4,
                f'JOBS["DATABASE"] is {alias!r}, which is not in settings.DATABASES.',
                f"{_closest(alias, databases)}Aliases: {', '.join(databases) or 'none'}.",
            )
        ]
    return []


@register(TAG)
def check_queues(app_configs=None, **kwargs) -> list[CheckMessage]:
    raw = _raw()
    if "QUEUES" not in raw:
        return []
    queues = placement.queue_names(raw["QUEUES"])
    hint = (
        'Use a list of queue names, e.g. ["default", "email"], or a dict of name to '
        'options, e.g. {"default": {}, "reports": {"DATABASE": "reports"}}.'
    )
    if queues is None or not queues:
        return [_error(5, f'JOBS["QUEUES"] must be a non-empty list, not {raw["QUEUES"]!r}.', hint)]
    for name in queues:
        problem = _queue_name_problem(name)
        if problem:
            return [_error(5, f'JOBS["QUEUES"] has a bad queue name: {problem}.', hint)]
    duplicates = sorted({q for q in queues if queues.count(q) > 1})
    if duplicates:
        return [
            _error(
                6,
                f'JOBS["QUEUES"] lists {", ".join(map(repr, duplicates))} more than once.',
                "List each queue once.",
            )
        ]
    return []


@register(TAG)
def check_workers_is_a_list(app_configs=None, **kwargs) -> list[CheckMessage]:
    workers = _raw().get("WORKERS")
    if workers is None:
        return []
    if isinstance(workers, list | tuple) and workers and all(isinstance(g, dict) for g in workers):
        return []
    return [
        _error(
            7,
            f'JOBS["WORKERS"] must be a non-empty list of dicts, not {workers!r}.',
            'Write one dict per worker group, e.g. [{"QUEUE": "*", "COUNT": 2}], or remove '
            "the key for one group that serves every queue.",
        )
    ]


#: Top-level keys checked by a predicate: key → (id, predicate, what the value must be).
TOP_LEVEL_VALUES: dict[str, tuple[int, Callable[[Any], bool], str]] = {
    "HEARTBEAT_TIMEOUT": (8, _positive_number, "a positive number of seconds"),
    "PID_DIR": (9, _optional_str, "a directory path (a string) or None"),
    "LOG_FILE": (10, _optional_str, "a file path (a string) or None"),
}


@register(TAG)
def check_top_level_values(app_configs=None, **kwargs) -> list[CheckMessage]:
    raw = _raw()
    return [
        _error(
            number,
            f'JOBS["{key}"] must be {what}, not {raw[key]!r}.',
            f"Remove the key to use the default, {conf.TOP_DEFAULTS[key]!r}.",
        )
        for key, (number, valid, what) in TOP_LEVEL_VALUES.items()
        if key in raw and not valid(raw[key])
    ]


# -- worker groups --------------------------------------------------------------------------


@register(TAG)
def check_worker_keys(app_configs=None, **kwargs) -> list[CheckMessage]:
    valid = list(conf.WORKER_DEFAULTS)
    return [
        _error(
            20,
            f'JOBS["WORKERS"][{index}] has an unknown key {key!r}.',
            f"{_closest(key, valid)}Valid keys: {', '.join(valid)}.",
        )
        for index, group in _worker_groups()
        for key in group
        if key not in conf.WORKER_DEFAULTS
    ]


def _valid_queue_option(value: Any) -> bool:
    if value == "*" or (isinstance(value, str) and value):
        return True
    return (
        isinstance(value, list | tuple)
        and bool(value)
        and all(isinstance(q, str) and q for q in value)
    )


#: Worker keys checked by a predicate: key → (id, predicate, what the value must be).
WORKER_VALUES: dict[str, tuple[int, Callable[[Any], bool], str]] = {
    "QUEUE": (21, _valid_queue_option, '"*", a queue name or a non-empty list of queue names'),
    "COUNT": (23, lambda v: _is_int(v) or v == conf.CPUS, 'a whole number of processes or "cpus"'),
    "MAX_ATTEMPTS": (25, _positive_int, "a whole number of at least 1"),
    "MAX_RUNTIME": (26, _positive_number, "a positive number of seconds"),
    "DELETE_FAILED_JOBS": (27, lambda v: isinstance(v, bool), "True or False"),
    "DELETE_SUCCESSFUL_JOBS": (27, lambda v: isinstance(v, bool), "True or False"),
    "SLEEP_DELAY": (28, _positive_number, "a positive number of seconds"),
    "THREADS": (29, _positive_int, "a whole number of at least 1"),
    "ASYNC_CONCURRENCY": (30, _positive_int, "a whole number of at least 1"),
    "BATCH_SIZE": (31, _positive_int, "a whole number of at least 1"),
    "MAX_JOBS": (32, _optional_positive_int, "a whole number of at least 1, or None"),
    "MAX_MEMORY_MB": (33, _optional_positive_int, "a whole number of megabytes, or None"),
    "CONCURRENCY": (
        130,
        _optional_positive_int,
        "a whole number of at least 1 (jobs of each of its queues running at once), or None",
    ),
    "RATE_LIMIT": (
        132,
        lambda value: value is None or is_rate(value),
        "a rate such as '100/m', '10/s', '5000/h' or '10/5s' (starts of each of its queues "
        "per period), or None",
    ),
}


@register(TAG)
def check_worker_values(app_configs=None, **kwargs) -> list[CheckMessage]:
    return [
        _error(
            number,
            f'JOBS["WORKERS"][{index}]["{key}"] must be {what}, not {group[key]!r}.',
            f"Remove the key to use the default, {conf.WORKER_DEFAULTS[key]!r}.",
        )
        for index, group in _worker_groups()
        for key, (number, valid, what) in WORKER_VALUES.items()
        if key in group and not valid(group[key])
    ]


@register(TAG)
def check_worker_count(app_configs=None, **kwargs) -> list[CheckMessage]:
    return [
        _error(
            24,
            f'JOBS["WORKERS"][{index}]["COUNT"] is {group["COUNT"]}: a group needs at least '
            "one process.",
            "Set COUNT to 1 or more, or remove the group.",
        )
        for index, group in _worker_groups()
        if _is_int(group.get("COUNT", 1)) and group.get("COUNT", 1) < 1
    ]


def _group_queues(group: dict[str, Any]) -> list[str] | None:
    """The queues a group names; None for ``"*"`` (every queue) or a malformed value."""
    value = group.get("QUEUE", conf.WORKER_DEFAULTS["QUEUE"])
    if not _valid_queue_option(value) or value == "*":
        return None
    names = [value] if isinstance(value, str) else list(value)
    return None if "*" in names else names


@register(TAG)
def check_worker_queues(app_configs=None, **kwargs) -> list[CheckMessage]:
    queues = _declared_queues()
    if queues is None:
        return []
    return [
        _error(
            22,
            f'JOBS["WORKERS"][{index}]["QUEUE"] names {name!r}, which is not in JOBS["QUEUES"].',
            f"{_closest(name, queues)}Add it to QUEUES or use one of: {', '.join(queues)}.",
        )
        for index, group in _worker_groups()
        for name in _group_queues(group) or ()
        if name not in queues
    ]


# -- registered jobs and queues ---------------------------------------------------------------


@register(TAG)
def check_job_queues(app_configs=None, **kwargs) -> list[CheckMessage]:
    queues = _declared_queues()
    if queues is None:
        return []
    return [
        _error(
            40,
            f"Job {name} is declared with queue={definition.queue!r}, which is not in "
            'JOBS["QUEUES"]: enqueueing it would raise UnknownQueue.',
            f'{_closest(definition.queue, queues)}Add {definition.queue!r} to JOBS["QUEUES"] '
            f"or pass one of {', '.join(map(repr, queues))} to @job(queue=...).",
            obj=name,
        )
        for name, definition in sorted(registry.all_jobs().items())
        # django_jobs' own jobs are enqueued on JOBS["PRUNE"]["QUEUE"] (E096), whatever
        # queues a project has; only a project's own declarations can be fixed by it.
        if definition.queue not in queues and definition.func.__module__ != "django_jobs.jobs"
    ]


@register(TAG)
def check_unserved_queues(app_configs=None, **kwargs) -> list[CheckMessage]:
    queues = _declared_queues()
    if queues is None or not _jobs_is_a_dict() or check_workers_is_a_list():
        return []  # which groups exist is unknown
    parsed = conf.parse(_raw())  # where each queue and group lives (checks/placement)
    served: set[tuple[str, str]] = set()
    everything: set[str] = set()  # databases with a "*" group
    for index, group in _worker_groups():
        if not _valid_queue_option(group.get("QUEUE", "*")):
            return []  # E021 first: what the group serves is unknown
        alias = parsed.workers[index].database
        names = _group_queues(group)
        if names is None:
            everything.add(alias)
        else:
            served.update((name, alias) for name in names)
    if parsed.embedded.enabled:  # the web processes' workers serve theirs, in each database
        if parsed.embedded.queues is None:
            everything.update(parsed.databases)
        else:
            served.update((name, parsed.database_for(name)) for name in parsed.embedded.queues)
    return [
        _warning(
            41,
            f'Queue {queue!r} is in JOBS["QUEUES"] but no worker group serves it'
            + ("" if alias == parsed.main_database else f" in its database {alias!r}")
            + ": its jobs would wait forever.",
            f'Add {queue!r} to a group\'s QUEUE in JOBS["WORKERS"], or add a group with '
            '"QUEUE": "*"'
            + ("." if alias == parsed.main_database else f' and "DATABASE": {alias!r}.'),
        )
        for queue in queues
        for alias in [parsed.database_for(queue)]
        if alias not in everything and (queue, alias) not in served
    ]


# -- the jobs database ------------------------------------------------------------------------


@register(TAG)
def check_use_tz(app_configs=None, **kwargs) -> list[CheckMessage]:
    if settings.USE_TZ:
        return []
    zone = getattr(settings, "TIME_ZONE", None) or "UTC"
    return [
        _warning(
            60,
            "USE_TZ is False: django_jobs stores and shows job and worker times (run at, "
            f"locked at, finished at, heartbeats) in UTC, not in TIME_ZONE ({zone!r}).",
            "Heartbeats and deadlines are compared across processes and hosts, so they must "
            "not move with a DST change. A naive datetime you pass (later(..., "
            "wait_until=...)) is read as TIME_ZONE time and converted; rows you read back "
            "hold naive UTC. Set USE_TZ = True to see local times in the admin, or add "
            '"django_jobs.W060" to SILENCED_SYSTEM_CHECKS.',
        )
    ]
