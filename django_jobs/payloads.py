"""Typed payloads: job parameters annotated with Python types beyond JSON.

A parameter annotated with ``datetime``, ``Decimal``, ``UUID``, an ``Enum``, a dataclass, a
``TypedDict``, a pydantic model or a container of these is *typed*: at enqueue its argument
must already be of that type (pydantic's strict mode) and is stored as JSON; at perform the
JSON is read back into that type before the call. Parameters without an annotation, or
annotated with JSON's own types, follow the plain-JSON rule of :mod:`django_jobs.calls` and
cost nothing here: a job none of whose parameters is typed has no ``Payload`` at all.

The conversion is pydantic's ``TypeAdapter`` (the ``[pydantic]`` extra), built once per
parameter on first use. Without pydantic a typed parameter is refused at enqueue and by
``manage.py check`` (docs/explanation/typed-payloads.md says why).
"""

from __future__ import annotations

import collections.abc as abc
import dataclasses
import inspect
import types
import typing
from datetime import datetime
from enum import Enum
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from .exceptions import InvalidArgument
from .extras import installed

#: What to install for typed parameters.
EXTRA = "django-dbjobs[pydantic]"

_JSON_TYPES = (str, int, float, bool, type(None), None, dict, list, tuple, Any, object)
_JSON_CONTAINERS = (
    dict, list, tuple, Union, types.UnionType,
    abc.Mapping, abc.MutableMapping, abc.Sequence, abc.MutableSequence,
)  # fmt: skip
_JSON_SCALARS = (str, int, float, bool, type(None))


def is_plain(annotation: Any, typeddicts: bool = False) -> bool:
    """True when ``annotation`` names only JSON's own types: the argument is stored as it is
    (tuples as lists, as for an unannotated parameter). With ``typeddicts`` (no pydantic to
    validate them), a ``TypedDict`` whose fields are all JSON counts as JSON too."""
    if any(annotation is t for t in _JSON_TYPES) or isinstance(annotation, typing.TypeVar):
        return True
    supertype = getattr(annotation, "__supertype__", None)  # typing.NewType
    if supertype is not None:
        return is_plain(supertype, typeddicts)
    origin = get_origin(annotation)
    if origin is Annotated:
        return is_plain(get_args(annotation)[0], typeddicts)
    if origin is Literal:
        return all(
            isinstance(v, _JSON_SCALARS) and not isinstance(v, Enum) for v in get_args(annotation)
        )
    if any(origin is o for o in _JSON_CONTAINERS):
        return all(arg is Ellipsis or is_plain(arg, typeddicts) for arg in get_args(annotation))
    if typeddicts and _is_typeddict(annotation):
        try:
            fields = typing.get_type_hints(annotation)
        except Exception:
            return False
        return all(is_plain(field, typeddicts) for field in fields.values())
    return False


def _is_typeddict(annotation: Any) -> bool:
    # typing's and typing_extensions' TypedDicts alike (typing.is_typeddict knows its own).
    return (
        isinstance(annotation, type)
        and issubclass(annotation, dict)
        and hasattr(annotation, "__total__")
    )


class _Param:
    """One typed parameter: its name, annotation and pydantic adapter."""

    __slots__ = ("name", "annotation", "adapter")

    def __init__(self, name: str, annotation: Any, adapter: Any) -> None:
        self.name, self.annotation, self.adapter = name, annotation, adapter


class Payload:
    """How the typed parameters of one job are checked, stored and read back."""

    def __init__(self, job: str, params: list[inspect.Parameter], typed: dict[str, _Param]):
        self.job = job
        kinds = inspect.Parameter
        #: Typed parameter by position (None: not typed), then by name; ``*args`` and
        #: ``**kwargs`` annotations apply to each of their items.
        by_position = (kinds.POSITIONAL_ONLY, kinds.POSITIONAL_OR_KEYWORD)
        self.positional = [typed.get(p.name) for p in params if p.kind in by_position]
        self.rest = next(
            (typed.get(p.name) for p in params if p.kind is kinds.VAR_POSITIONAL), None
        )
        keywords = [
            p.name for p in params if p.kind in (kinds.POSITIONAL_OR_KEYWORD, kinds.KEYWORD_ONLY)
        ]
        self.named = {name: typed.get(name) for name in keywords}
        self.extra = next((typed.get(p.name) for p in params if p.kind is kinds.VAR_KEYWORD), None)

    def _at(self, index: int) -> _Param | None:
        return self.positional[index] if index < len(self.positional) else self.rest

    def _named(self, key: str) -> _Param | None:
        return self.named[key] if key in self.named else self.extra

    def encode(
        self, args: list[Any], kwargs: dict[str, Any]
    ) -> tuple[list[Any], dict[str, Any], dict[int, Any], dict[str, Any]]:
        """The arguments to store (typed ones as JSON), and the typed ones as checked
        (what key callables get), by position and by name. ``InvalidArgument`` names the
        parameter of an argument of the wrong type."""
        stored_args, stored_kwargs = list(args), dict(kwargs)
        checked_args: dict[int, Any] = {}
        checked_kwargs: dict[str, Any] = {}
        for i, value in enumerate(args):
            param = self._at(i)
            if param is not None:
                checked_args[i], stored_args[i] = self._checked(param, value)
        for key, value in kwargs.items():
            param = self._named(key)
            if param is not None:
                checked_kwargs[key], stored_kwargs[key] = self._checked(param, value)
        return stored_args, stored_kwargs, checked_args, checked_kwargs

    def _checked(self, param: _Param, value: Any) -> tuple[Any, Any]:
        """The argument as checked, and as stored."""
        from pydantic import ValidationError
        from pydantic_core import PydanticSerializationError

        must = f"argument {param.name!r} of job {self.job} must be {_type_name(param.annotation)}"
        try:
            checked = param.adapter.validate_python((value,), strict=True)
            # warnings="error": a model instance built without validation (model_construct,
            # an assignment) can still hold a wrong type, which only its dump notices.
            stored = param.adapter.dump_python(checked, mode="json", warnings="error")[0]
        except ValidationError as exc:
            raise InvalidArgument(f"{must}: {_errors(exc)}") from None
        except PydanticSerializationError as exc:
            raise InvalidArgument(f"{must}: {' '.join(str(exc).split())}") from None
        checked = checked[0]
        if settings.USE_TZ:
            where = _naive_datetime(checked, "")
            if where is not None:
                raise InvalidArgument(
                    f"argument {param.name!r} of job {self.job} holds a naive datetime"
                    f"{f' at {where}' if where else ''} while USE_TZ is True: pass an aware "
                    "datetime (django.utils.timezone.now(), or timezone.make_aware(value))"
                )
        return checked, stored

    def decode(self, args: list[Any], kwargs: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
        """The stored arguments with the typed ones read back into their types.
        ``InvalidArgument`` names the parameter whose stored value no longer fits."""
        from pydantic import ValidationError

        args, kwargs = list(args), dict(kwargs)
        places = [(i, self._at(i)) for i in range(len(args))]
        places += [(key, self._named(key)) for key in kwargs]
        for place, param in places:
            if param is None:
                continue
            target = args if isinstance(place, int) else kwargs
            try:
                target[place] = param.adapter.validate_python((target[place],), strict=False)[0]
            except ValidationError as exc:
                raise InvalidArgument(
                    f"the stored argument {param.name!r} of job {self.job} is not "
                    f"{_type_name(param.annotation)} (was the annotation changed since it was "
                    f"enqueued?): {_errors(exc)}"
                ) from None
        return args, kwargs


def plan(definition: Any) -> Payload | None:
    """The ``Payload`` of a job, or None when no parameter is typed (the plain-JSON path).

    ``ImproperlyConfigured`` when a parameter is typed and pydantic is not installed, or
    pydantic cannot validate its annotation.
    """
    params = list(definition.signature.parameters.values())
    if definition.takes_context:
        params = params[1:]
    annotated = [p.name for p in params if p.annotation is not inspect.Parameter.empty]
    if not annotated:
        return None
    hints = resolved_hints(definition.func, annotated)
    typed = {name: hint for name, hint in hints.items() if not is_plain(hint)}
    if not typed:
        return None
    if not installed("pydantic"):
        # What JSON holds as it is needs no pydantic: a TypedDict of JSON fields is a dict.
        typed = {name: hint for name, hint in typed.items() if not is_plain(hint, True)}
        if not typed:
            return None
        listed = ", ".join(f"{name}: {_type_name(hint)}" for name, hint in typed.items())
        raise ImproperlyConfigured(
            f"job {definition.name} has parameters annotated with types beyond JSON "
            f"({listed}), which need pydantic: pip install '{EXTRA}' "
            "(or annotate them with JSON types: str, int, float, bool, list, dict)"
        )
    from pydantic import ConfigDict, TypeAdapter

    # In a one-item tuple: a dataclass at the top cannot take a config, and without
    # revalidate_instances pydantic takes a dataclass instance as it is, unchecked.
    config = ConfigDict(revalidate_instances="always")
    adapters = {}
    for name, hint in typed.items():
        try:
            adapters[name] = _Param(name, hint, TypeAdapter(tuple[hint], config=config))
        except Exception as exc:  # pydantic's schema errors, a dataclass's unresolved names
            raise ImproperlyConfigured(
                f"job {definition.name}: parameter {name!r} is annotated {_type_name(hint)}, "
                f"which pydantic cannot validate ({type(exc).__name__}: {exc}). Annotate it "
                "with a type pydantic knows (a dataclass, a TypedDict, a pydantic model, "
                "datetime, Decimal, UUID, an Enum…), or pass an id instead"
            ) from None
    return Payload(definition.name, params, adapters)


def as_stored(definition: Any, args: Any, kwargs: Any) -> tuple[Any, Any]:
    """Expected arguments of ``definition`` (None: any) with the typed ones as stored:
    what ``django_jobs.testing.assert_enqueued`` compares rows with."""
    payload = getattr(definition, "payload", None)
    if payload is None:
        return args, kwargs
    stored_args, stored_kwargs, *_ = payload.encode(list(args or ()), dict(kwargs or {}))
    return (None if args is None else stored_args), (None if kwargs is None else stored_kwargs)


def resolved_hints(func: Any, names: list[str]) -> dict[str, Any]:
    """The evaluated annotations of ``names``. One that cannot be evaluated (a name
    imported only under ``TYPE_CHECKING``) is left out: that parameter is plain JSON."""
    try:
        hints = typing.get_type_hints(func, include_extras=True)
        return {name: hints[name] for name in names if name in hints}
    except Exception:  # one unresolvable annotation fails them all: try each alone
        pass
    raw = getattr(func, "__annotations__", {})
    namespace = getattr(inspect.unwrap(func), "__globals__", {})
    hints = {}
    for name in names:

        def holder() -> None: ...

        holder.__annotations__ = {name: raw.get(name)}
        try:
            hints[name] = typing.get_type_hints(holder, namespace, include_extras=True)[name]
        except Exception:
            continue
    return hints


def unresolved(definition: Any) -> list[str]:
    """Annotated parameters whose annotation cannot be evaluated (for ``manage.py check``)."""
    params = list(definition.signature.parameters.values())[1 if definition.takes_context else 0 :]
    annotated = [p.name for p in params if p.annotation is not inspect.Parameter.empty]
    if not annotated:
        return []
    hints = resolved_hints(definition.func, annotated)
    return [name for name in annotated if name not in hints]


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")


def _errors(exc: Any) -> str:
    """pydantic's errors in one line: where (inside the argument), what, what was given."""
    parts = []
    for error in exc.errors(include_url=False)[:3]:
        path = error["loc"][1:]  # [0] is the place in the one-item tuple
        where = "".join(f"[{loc}]" if isinstance(loc, int) else f".{loc}" for loc in path)
        given = error.get("input")
        got = f" (got {type(given).__name__} {given!r:.60})"
        parts.append(f"{where.lstrip('.') + ': ' if where else ''}{error['msg']}{got}")
    more = exc.error_count() - len(parts)
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")


def _naive_datetime(value: Any, path: str) -> str | None:
    """Where in ``value`` a naive datetime is (``""`` for the value itself), or None."""
    if isinstance(value, datetime):
        return path if value.utcoffset() is None else None
    if isinstance(value, str | int | float | bool | type(None)):
        return None
    if isinstance(value, dict):
        items: Any = ((f"{path}[{k!r}]", v) for k, v in value.items())
    elif isinstance(value, list | tuple | set | frozenset):
        items = ((f"{path}[{i}]", v) for i, v in enumerate(value))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        items = ((f"{path}.{f.name}", getattr(value, f.name)) for f in dataclasses.fields(value))
    elif isinstance(getattr(type(value), "model_fields", None), dict):  # a pydantic model
        items = ((f"{path}.{name}", getattr(value, name)) for name in type(value).model_fields)
    else:
        return None
    for where, item in items:
        found = _naive_datetime(item, where)
        if found is not None:
            return found.lstrip(".")
    return None
