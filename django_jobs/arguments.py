"""A call's arguments as a job row stores them: checked for JSON, encoded.

Arguments become the row's ``args``/``kwargs`` JSON text at the call, so a value JSON
cannot hold fails there, with the argument it came from, and nothing is stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from .exceptions import NotSerializable

dumps = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode


def _arguments_encoder() -> Callable[[Any], str]:
    """``dumps`` for arguments, without making an encoder per call as ``encode`` does
    (that costs more than the encoding of a few scalars).

    The encoder is made once with no circular-reference markers: arguments reach it
    rebuilt by ``as_stored``, which a self-referencing value never gets through. Where
    the interpreter has no C encoder, ``dumps`` itself.
    """
    try:
        from json.encoder import c_make_encoder, encode_basestring_ascii

        def refuse(value: Any) -> Any:
            raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")

        encode = c_make_encoder(
            None, refuse, encode_basestring_ascii, None, ":", ",", False, False, False
        )
        sample = [1, -2.5, '\u00e9"', None, True, {"k": []}]
        if "".join(encode(sample, 0)) != dumps(sample):
            return dumps
    except Exception:  # another interpreter's json module
        return dumps
    return lambda value: "".join(encode(value, 0))


_encode_arguments = _arguments_encoder()


SCALARS = frozenset({str, int, float, bool, type(None)})


def as_stored(name: str, label: str, value: Any, path: str) -> Any:
    """``value`` as the worker will get it back from JSON: tuples become lists.

    A dict key that is not a string is refused rather than converted: JSON would turn
    ``{1: "a"}`` into ``{"1": "a"}`` (and merge ``1`` with ``"1"``), so the job would look
    up keys that are no longer there. Values JSON cannot hold are left for ``_json``
    to report.
    """
    if isinstance(value, list | tuple):
        return [
            item if type(item) in SCALARS else as_stored(name, label, item, f"{path}[{i}]")
            for i, item in enumerate(value)
        ]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise NotSerializable(_key_error(name, label, key, path))
        return {
            key: item if type(item) in SCALARS else as_stored(name, label, item, f"{path}[{key!r}]")
            for key, item in value.items()
        }
    return value


def _key_error(name: str, label: str, key: Any, path: str) -> str:
    try:
        as_json = f", so the job would get {next(iter(json.loads(dumps({key: 0}))))!r} instead"
    except (TypeError, ValueError):
        as_json = ""
    return (
        f"{label} of job {name} has a dict key {key!r} ({type(key).__name__}) at {path}: "
        f"JSON object keys are strings{as_json}. Use string keys"
    )


def to_json(name: str, value: Any, kind: str, items: Any) -> str:
    try:
        return _encode_arguments(value) if value else "[]" if isinstance(value, list) else "{}"
    except (TypeError, ValueError):
        pass
    pairs = enumerate(items) if isinstance(items, list) else items.items()
    for key, item in pairs:
        try:
            dumps(item)
        except (TypeError, ValueError) as exc:
            raise NotSerializable(
                f"{kind} {key!r} of job {name} is not JSON-serialisable: "
                f"{type(item).__name__} ({exc}). Pass ids and plain values, not objects"
            ) from None
    raise NotSerializable(f"the {kind}s of job {name} are not JSON-serialisable")
