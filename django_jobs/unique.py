"""Unique jobs: the key a call is stored under, and the states in which it holds.

A unique job's row carries ``unique_key`` while it is in a state its rule counts; a
unique index on the column (migration 0008) lets the database refuse a second row with
the same key, whatever process or host enqueues it. The key is cleared (set NULL) by the
same guarded statement that moves the job out of the counted states, so NULL-keyed rows,
which the index ignores on every engine, never block anything.

``unique_for`` is not folded into the key: a time bucket in the key would let two
enqueues a second apart on either side of a boundary both in. Instead, a duplicate that
finds a holder enqueued longer than ``unique_for`` ago clears the holder's key (one
guarded UPDATE) and inserts again; concurrent enqueuers still race on the index, so one
of them wins. See ``Storage.insert_unique``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

#: States a job waits or runs in: a unique rule always counts them (clearing the key
#: while a job waits would need a write nobody makes).
WAITING_STATES = frozenset({"ready", "scheduled", "running"})
#: States a rule may also count, keeping the key on finished rows. Not "cancelled": a
#: cancelled job always gives its key up (django_jobs.cancelling's statements clear it).
FINISHED_STATES = frozenset({"succeeded", "failed"})
STATES = WAITING_STATES | FINISHED_STATES
DEFAULT_STATES = WAITING_STATES

#: Length of the ``unique_key`` column: the stored key is a digest, always shorter.
KEY_LENGTH = 255

_dumps = json.JSONEncoder(sort_keys=True, separators=(",", ":"), allow_nan=False).encode


@dataclass(frozen=True)
class UniqueRule:
    """What ``@job(unique=..., unique_key=..., unique_for=..., unique_states=...)`` asked."""

    #: None: the identity is the call (name + bound arguments); else a callable of the
    #: call's arguments returning the identity (None from it: that call is not unique).
    key: Callable[..., Any] | None = None
    unique_for: timedelta | None = None
    states: frozenset[str] = DEFAULT_STATES

    def clears(self, state: str) -> bool:
        """True when a job entering ``state`` must give its key up."""
        return state not in self.states


DEFAULT_RULE = UniqueRule()


def rule(
    job_name: str,
    unique: Any = False,
    unique_key: Any = None,
    unique_for: Any = None,
    unique_states: Any = None,
) -> UniqueRule | None:
    """The rule the decorator's options describe, or None; a clear error when they are bad."""
    where = f"@job {job_name}"
    if not isinstance(unique, bool):
        raise TypeError(f"{where}: unique must be True or False, not {unique!r}")
    if unique_key is not None and not callable(unique_key):
        raise TypeError(
            f"{where}: unique_key must be a callable of the job's arguments; pass a string "
            "per call with .using(unique_key=...)"
        )
    wanted = unique or unique_key is not None
    if not wanted:
        if unique_for is not None or unique_states is not None:
            raise TypeError(
                f"{where}: unique_for and unique_states need unique=True or unique_key=..."
            )
        return None
    return UniqueRule(
        key=unique_key,
        unique_for=duration(unique_for, where),
        states=states(unique_states, where),
    )


def duration(value: Any, where: str = "") -> timedelta | None:
    """``unique_for`` as a timedelta: a positive number of seconds or timedelta, or None."""
    if value is None:
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = timedelta(seconds=value) if value == value and abs(value) < 1e12 else None
    if not isinstance(value, timedelta) or value <= timedelta(0):
        raise ValueError(
            f"{where}: unique_for must be a positive duration (seconds or a timedelta), "
            f"not {value!r}"
        )
    return value


def states(value: Any, where: str = "") -> frozenset[str]:
    if value is None:
        return DEFAULT_STATES
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise TypeError(f"{where}: unique_states must be a list of states, not {value!r}")
    chosen = frozenset(value)
    unknown = sorted(map(repr, chosen - STATES))
    if unknown:
        raise ValueError(
            f"{where}: unique_states has unknown state(s) {', '.join(unknown)}; "
            f"states are {', '.join(sorted(STATES))}"
        )
    missing = sorted(WAITING_STATES - chosen)
    if missing:
        raise ValueError(
            f"{where}: unique_states must include {', '.join(sorted(WAITING_STATES))} "
            f"(a waiting or running job always holds its key); missing {', '.join(missing)}"
        )
    return chosen


def key_for(
    definition: Any,
    args: list[Any],
    kwargs: dict[str, Any],
    per_call: str | None = None,
    call: tuple[list[Any], dict[str, Any]] | None = None,
) -> str | None:
    """The ``unique_key`` to store for a call, or None when the call is not unique.

    The stored key is a digest of the job's name and the identity, so identities of any
    length fit the column and two jobs never collide on the same identity. ``args`` and
    ``kwargs`` are as stored (JSON); ``call`` is the arguments as the job gets them (typed
    parameters in their types), which a ``unique_key`` callable receives.
    """
    rule = definition.unique
    if per_call is not None:
        identity = "key:" + per_call
    elif rule is None:
        return None
    elif rule.key is None:
        identity = "call:" + _dumps(_bound(definition, args, kwargs))
    else:
        value = call_key(rule.key, "unique_key", definition.name, *(call or (args, kwargs)))
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise TypeError(
                f"unique_key of job {definition.name} must return a str or an int (or None "
                f"for no uniqueness), not {type(value).__name__}"
            )
        identity = "key:" + str(value)
    return hashlib.sha256(f"{definition.name}\x00{identity}".encode()).hexdigest()


def call_key(
    key: Callable[..., Any], option: str, job_name: str, args: list[Any], kwargs: dict[str, Any]
) -> Any:
    """What a key callable (``unique_key``, ``concurrency_key``) returns for a call; a
    ``ValueError`` naming the job when it raises."""
    try:
        return key(*args, **kwargs)
    except Exception as exc:
        raise ValueError(f"{option} of job {job_name} raised {type(exc).__name__}: {exc}") from exc


def per_call_key(value: Any) -> str:
    """Check ``.using(unique_key=...)``: a non-empty string."""
    if not isinstance(value, str) or not value:
        raise TypeError(f"unique_key must be a non-empty string, not {value!r}")
    return value


def _bound(definition: Any, args: list[Any], kwargs: dict[str, Any]) -> dict[str, Any]:
    # f(1) and f(user_id=1) are the same call: compare the arguments as bound, defaults
    # filled in. check_arguments has already proved that they bind.
    if definition.takes_context:
        bound = definition.signature.bind(None, *args, **kwargs)
        bound.apply_defaults()
        first = next(iter(definition.signature.parameters))
        values = dict(bound.arguments)
        values.pop(first, None)
    else:
        bound = definition.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        values = dict(bound.arguments)
    return values
