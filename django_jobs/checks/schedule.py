"""Checks of recurring schedules: ``JOBS["SCHEDULE"]`` entries and ``@job(cron=...)``.

``django_jobs.recurring.schedule`` leaves an invalid entry out (a worker never crashes on
it); these checks say why, naming the entry. Workers refuse to start while any of them
fails (:func:`schedule_errors`), since a schedule that silently never runs is worse than
a worker that does not start.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, register

from .. import conf, registry
from .base import TAG, _closest, _declared_queues, _error, _is_int, _raw

#: The ``key`` column's length.
KEY_MAX_LENGTH = 200


def _entries() -> list[tuple[Any, Any]]:
    value = _raw().get("SCHEDULE")
    return list(value.items()) if isinstance(value, dict) else []


def _where(key: Any) -> str:
    return f'JOBS["SCHEDULE"][{key!r}]'


@register(TAG)
def check_schedule_shape(app_configs=None, **kwargs) -> list[CheckMessage]:
    raw = _raw()
    if "SCHEDULE" in raw and not isinstance(raw["SCHEDULE"], dict):
        return [
            _error(
                80,
                f'JOBS["SCHEDULE"] must be a dict of schedules by key, not '
                f"{type(raw['SCHEDULE']).__name__}.",
                'Write e.g. "SCHEDULE": {"nightly-report": {"JOB": "reports.jobs.nightly", '
                '"CRON": "0 2 * * *"}}.',
            )
        ]
    errors = []
    valid = list(conf.SCHEDULE_DEFAULTS)
    for key, entry in _entries():
        if not isinstance(key, str) or not key or len(key) > KEY_MAX_LENGTH:
            errors.append(
                _error(
                    81,
                    f'JOBS["SCHEDULE"] has the key {key!r}: a schedule key must be a non-empty '
                    f"string of at most {KEY_MAX_LENGTH} characters.",
                    f"Rename the entry {key!r} with a string such as 'nightly-report'; it is "
                    "how the schedule's history, pause flag and admin row are found.",
                )
            )
        if not isinstance(entry, dict):
            errors.append(
                _error(
                    80,
                    f"{_where(key)} must be a dict, not {type(entry).__name__}.",
                    f'Write the entry {key!r} as {{"JOB": "<registered job name>", '
                    '"CRON": "0 2 * * *"}.',
                )
            )
            continue
        for name in entry:
            if name not in conf.SCHEDULE_DEFAULTS:
                errors.append(
                    _error(
                        80,
                        f"{_where(key)} has an unknown key {name!r}.",
                        f"{_closest(name, valid)}Valid keys of the entry {key!r}: "
                        f"{', '.join(valid)}.",
                    )
                )
        for required in ("JOB", "CRON"):
            if required not in entry:
                errors.append(
                    _error(
                        80,
                        f"{_where(key)} has no {required!r}.",
                        f"Add {required!r} to the entry {key!r}: JOB names a registered job, "
                        "CRON says when it runs.",
                    )
                )
    return errors


def _cron_error(label: str, entry_name: Any, expression: Any) -> CheckMessage | None:
    from ..recurring.schedule import is_valid_cron

    if is_valid_cron(expression):
        return None
    return _error(
        82,
        f"{label} has the cron expression {expression!r}, which cannot be parsed.",
        f"Fix the expression of {entry_name!r}: five fields (minute hour day month weekday), "
        "six with seconds first (e.g. '*/10 * * * * *'), or @hourly, @daily, @weekly, "
        "@monthly, @yearly.",
    )


@register(TAG)
def check_schedule_entries(app_configs=None, **kwargs) -> list[CheckMessage]:
    from ..recurring.schedule import is_json, is_valid_timezone

    errors: list[CheckMessage] = []
    queues = _declared_queues()
    jobs = registry.all_jobs()
    for key, entry in _entries():
        if not isinstance(entry, dict):
            continue
        where = _where(key)
        if "CRON" in entry:
            error = _cron_error(where, key, entry["CRON"])
            if error:
                errors.append(error)
        definition = None
        if "JOB" in entry:
            name = entry["JOB"]
            definition = jobs.get(name) if isinstance(name, str) else None
            if definition is None:
                errors.append(
                    _error(
                        83,
                        f"{where} names the job {name!r}, which is not registered.",
                        f"{_closest(name, list(jobs))}JOB of {key!r} is a registered job "
                        "name (the function's module and name, or its @job(name=...)), never "
                        "a path to import. Check that the app's jobs module declares it.",
                    )
                )
        zone = entry.get("TIMEZONE")
        if zone is not None and not is_valid_timezone(zone):
            errors.append(
                _error(
                    84,
                    f"{where} has the time zone {zone!r}, which is unknown.",
                    f"Use an IANA name such as 'Europe/Paris' for {key!r}, or leave TIMEZONE "
                    "out to use settings.TIME_ZONE.",
                )
            )
        errors.extend(_argument_errors(key, entry, definition, is_json))
        queue = entry.get("QUEUE")
        if queue is not None and queues is not None and queue not in queues:
            errors.append(
                _error(
                    86,
                    f"{where} has the queue {queue!r}, which is not in JOBS['QUEUES'].",
                    f"{_closest(queue, queues)}Use one of {', '.join(map(repr, queues))} for "
                    f"{key!r}, or add {queue!r} to JOBS['QUEUES'].",
                )
            )
        if "CATCH_UP" in entry and not isinstance(entry["CATCH_UP"], bool):
            errors.append(
                _error(
                    87,
                    f"{where} has CATCH_UP {entry['CATCH_UP']!r}, which is not True or False.",
                    f"Set CATCH_UP of {key!r} to True (enqueue the latest missed tick after "
                    "downtime) or False (skip missed ticks).",
                )
            )
        priority = entry.get("PRIORITY")
        if priority is not None and not _is_int(priority):
            errors.append(
                _error(
                    88,
                    f"{where} has PRIORITY {priority!r}, which is not an int.",
                    f"Use an int for {key!r} (lower runs first), or leave PRIORITY out for "
                    "the job's own.",
                )
            )
    return errors


def _argument_errors(key: Any, entry: dict[str, Any], definition, is_json) -> list[CheckMessage]:
    args, kwargs = entry.get("ARGS", []), entry.get("KWARGS", {})
    where = _where(key)
    if not isinstance(args, list | tuple) or not isinstance(kwargs, dict):
        return [
            _error(
                85,
                f"{where} must have ARGS as a list and KWARGS as a dict, not "
                f"{type(args).__name__} and {type(kwargs).__name__}.",
                f'Write e.g. "ARGS": [1], "KWARGS": {{"full": True}} for {key!r}.',
            )
        ]
    if not is_json([args, kwargs]) or any(not isinstance(name, str) for name in kwargs):
        return [
            _error(
                85,
                f"{where} has ARGS or KWARGS that are not JSON.",
                f"Use plain values (str, int, float, bool, None, lists, dicts with string "
                f"keys) in {key!r}: they are stored as JSON with every enqueued job.",
            )
        ]
    if definition is None:
        return []
    try:
        definition.check_arguments(list(args), kwargs)
    except TypeError as exc:
        return [
            _error(
                85,
                f"{where} has ARGS/KWARGS that do not fit the job: {exc}.",
                f"Make ARGS and KWARGS of {key!r} match {definition.name}{definition.signature}.",
            )
        ]
    return []


@register(TAG)
def check_decorated_schedules(app_configs=None, **kwargs) -> list[CheckMessage]:
    """``@job(cron=...)``: the expression; a key used twice (settings, @job, built-in)."""
    from ..recurring.schedule import builtin_keys

    errors = []
    settings_keys = {key for key, _ in _entries()}
    for key in sorted(set(builtin_keys()) & settings_keys):
        errors.append(
            _error(
                89,
                f"The schedule key {key!r} of {_where(key)} is the key of a built-in "
                "schedule; the settings entry replaces it.",
                f"Rename the settings entry {key!r}, or configure the built-in schedule "
                "through its own setting.",
            )
        )
    for name, definition in registry.all_jobs().items():
        cron = getattr(definition, "cron", None)
        if cron is None:
            continue
        error = _cron_error(f"@job(cron=...) of {name}", name, cron)
        if error:
            errors.append(error)
        if name in settings_keys:
            errors.append(
                _error(
                    89,
                    f"The schedule key {name!r} is used by @job(cron=...) of {name} and by "
                    f"{_where(name)}; the settings entry wins.",
                    f"Remove cron= from @job of {name}, or rename the settings entry {name!r}.",
                )
            )
    return errors


def schedule_errors() -> list[CheckMessage]:
    """Every schedule check's messages: what workers refuse to start with."""
    return [
        *check_schedule_shape(),
        *check_schedule_entries(),
        *check_decorated_schedules(),
    ]
