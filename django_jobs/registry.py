"""The ``@job`` decorator, job definitions and the name → definition registry."""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from django.core.exceptions import AppRegistryNotReady, ImproperlyConfigured
from django.utils.module_loading import autodiscover_modules

from . import discovery, names, signals
from .backoff import resolve as resolve_backoff
from .exceptions import JobNotRegistered, JobsNotReady, TaskNotAllowed
from .hooks import checked as checked_hooks
from .limits import rule as concurrency_rule
from .rates import rule as rate_rule
from .tags import checked as checked_tag
from .unique import DEFAULT_RULE, per_call_key
from .unique import rule as unique_rule

if TYPE_CHECKING:
    from .models import Job

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_QUEUE = "default"
DEFAULT_PRIORITY = 50

_registry: dict[str, JobDefinition[Any, Any]] = {}

#: Names of ``django.tasks`` rows (:mod:`django_jobs.tasks`) start with this; the rest is
#: the task's module path. Reserved: ``@job`` refuses it (``django_jobs.names``).
TASK_PREFIX = names.TASK_PREFIX

#: Builds the definition that runs a ``django.tasks`` row (set by the app's ``ready()``:
#: the tasks package builds on the executor, which cannot import it back).
_task_definitions: Callable[[Any], JobDefinition[Any, Any]] | None = None


@dataclass(frozen=True)
class EnqueueOptions:
    """Per-call overrides carried by :meth:`JobDefinition.using`."""

    queue: str | None = None
    priority: int | None = None
    wait: float | timedelta | None = None
    wait_until: datetime | None = None
    unique_key: str | None = None
    tag: str | None = None
    #: ``after=`` and ``batch=`` of ``later`` (see django_jobs.chaining).
    after: Any = None
    batch: Any = None


class JobDefinition(Generic[P, R]):
    """A registered job: the function plus the options it was declared with."""

    def __init__(
        self,
        func: Callable[P, R],
        *,
        name: str | None = None,
        queue: str = DEFAULT_QUEUE,
        priority: int = DEFAULT_PRIORITY,
        max_attempts: int | None = None,
        timeout: float | None = None,
        takes_context: bool = False,
        options: EnqueueOptions | None = None,
        cron: str | None = None,
        keep_result: bool = False,
        unique: bool = False,
        unique_key: Callable[..., Any] | None = None,
        unique_for: float | timedelta | None = None,
        unique_states: Iterable[str] | None = None,
        backoff: Any = None,
        retry_on: Any = (),
        discard_on: Any = (),
        before_perform: Callable[..., Any] | None = None,
        after_perform: Callable[..., Any] | None = None,
        on_success: Callable[..., Any] | None = None,
        on_failure: Callable[..., Any] | None = None,
        events: bool = False,
        concurrency: int | None = None,
        concurrency_key: Callable[..., Any] | None = None,
        rate_limit: str | None = None,
        rate_key: Callable[..., Any] | None = None,
    ) -> None:
        if not callable(func):
            raise TypeError(f"@job decorates a function, not {type(func).__name__}")
        if not isinstance(priority, int) or isinstance(priority, bool):
            raise TypeError(f"@job priority must be an int, not {priority!r}")
        if max_attempts is not None and (not isinstance(max_attempts, int) or max_attempts < 1):
            raise ValueError(f"@job max_attempts must be a positive int, not {max_attempts!r}")
        if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
            raise ValueError(f"@job timeout must be a positive number of seconds, not {timeout!r}")
        self.func = func
        self.name = name or f"{func.__module__}.{func.__qualname__}"
        self.queue = queue
        self.priority = priority
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.takes_context = takes_context
        self.is_async = inspect.iscoroutinefunction(func)
        self.options = options or EnqueueOptions()
        self.signature = inspect.signature(func)
        #: check_arguments' verdicts by shape (positional count, keyword names).
        self._fits: dict[tuple[int, tuple[str, ...]], str | None] = {}
        if takes_context and not self.signature.parameters:
            raise TypeError(f"job {self.name} takes_context=True but accepts no argument")
        self.cron = cron
        #: Keep the row after success whatever DELETE_SUCCESSFUL_JOBS says, with the
        #: return value (JSON) in ``Job.return_value``.
        self.keep_result = bool(keep_result)
        if cron is not None:
            self._check_cron(cron)
        #: The unique rule (``django_jobs.unique.UniqueRule``), None for a plain job.
        self.unique = unique_rule(self.name, unique, unique_key, unique_for, unique_states)
        self.backoff = resolve_backoff(backoff, self.name)
        self.retry_on = _exception_classes(retry_on, "retry_on", self.name)
        self.discard_on = _exception_classes(discard_on, "discard_on", self.name)
        #: ``django_jobs.hooks.Hooks``, None for a job that declares none (most).
        self.hooks = checked_hooks(
            self.name, self.is_async, before_perform=before_perform,
            after_perform=after_perform, on_success=on_success, on_failure=on_failure,
        )  # fmt: skip
        #: Publish each outcome on the job's channel (``django_jobs.events``).
        self.events = bool(events)
        #: The concurrency limit (``django_jobs.limits.ConcurrencyRule``), or None.
        self.concurrency = concurrency_rule(self.name, concurrency, concurrency_key)
        #: The rate limit (``django_jobs.rates.RateRule``), or None.
        self.rate = rate_rule(self.name, rate_limit, rate_key)
        #: Set by ``@job``: declared after Django loaded its apps (``django_jobs.discovery``).
        self.declared_late = False
        functools.update_wrapper(self, func)  # type: ignore[arg-type]

    def _check_cron(self, cron: Any) -> None:
        # A recurring tick has no one to pass arguments: refuse at import time rather
        # than fail every tick. The expression itself is checked by E082 with the others.
        if not isinstance(cron, str):
            raise TypeError(f"@job cron must be a cron expression string, not {cron!r}")
        try:
            self.check_arguments([], {})
        except TypeError:
            raise TypeError(
                f"@job(cron=...) needs a job that takes no arguments, and {self.name}"
                f"{self.signature} requires some: give them defaults, or schedule it in "
                'settings.JOBS["SCHEDULE"] with "ARGS"/"KWARGS"'
            ) from None

    @functools.cached_property
    def payload(self) -> Any:
        """How typed parameters are stored and read back (``django_jobs.payloads``), None
        when the job has none. Built on first use and kept, so later calls pay nothing;
        ``ImproperlyConfigured`` when a typed parameter cannot be handled."""
        from .payloads import plan

        return plan(self)

    def __repr__(self) -> str:
        return f"<JobDefinition {self.name} queue={self.queue!r} priority={self.priority}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.func(*args, **kwargs)

    def perform(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run the job now, in this process, as a plain call (async jobs are awaited)."""
        if self.takes_context:
            from .context import JobContext

            args = (JobContext.detached(self.name), *args)  # type: ignore[assignment]
        result = self.func(*args, **kwargs)
        if inspect.isawaitable(result):
            # async_to_sync rather than asyncio.run: the job's sync_to_async database calls
            # then run on this thread's connection (and inside a test's transaction).
            from asgiref.sync import async_to_sync

            return async_to_sync(_await)(result)
        return result

    def check_arguments(self, args: tuple | list, kwargs: dict[str, Any]) -> None:
        """Raise ``TypeError`` naming the job when the arguments do not fit the function."""
        # Whether arguments fit depends on how many are positional and on the keywords'
        # names, never on their values: a worker checks each shape once, not every row.
        shape = (len(args), tuple(kwargs))
        fits = self._fits.get(shape, False)
        if fits is False:
            fits = self._misfit(args, kwargs)
            if len(self._fits) < 64:
                self._fits[shape] = fits
        if fits is not None:
            raise TypeError(fits)

    def _misfit(self, args: tuple | list, kwargs: dict[str, Any]) -> str | None:
        """Why the arguments do not fit the function (None: they do)."""
        # bind() reports a missing argument before an unexpected keyword, so a misspelt
        # keyword (page= for page_id) would be reported as the argument it was meant for.
        unexpected = self._unexpected_keyword(kwargs) if kwargs else None
        if unexpected:
            return f"arguments do not fit job {self.name}: {unexpected}"
        try:
            if self.takes_context:
                self.signature.bind(None, *args, **kwargs)
            else:
                self.signature.bind(*args, **kwargs)
        except TypeError as exc:
            return f"arguments do not fit job {self.name}: {exc}"
        return None

    def _unexpected_keyword(self, kwargs: dict[str, Any]) -> str | None:
        params = list(self.signature.parameters.values())[1 if self.takes_context else 0 :]
        if any(p.kind is p.VAR_KEYWORD for p in params):
            return None
        accepted = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        for key in kwargs:
            if key not in accepted:
                close = difflib.get_close_matches(str(key), accepted, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                return f"got an unexpected keyword argument {key!r}{hint}"
        return None

    def using(
        self,
        *,
        queue: str | None = None,
        priority: int | None = None,
        wait: float | timedelta | None = None,
        wait_until: datetime | None = None,
        unique_key: str | None = None,
        tag: str | None = None,
        after: Any = None,
        batch: Any = None,
    ) -> JobDefinition[P, R]:
        """A copy of this job whose ``enqueue`` uses other options; the registry is untouched.

        ``unique_key`` makes the calls of the copy unique under that key (see
        docs/howto/unique.md), whether or not the job was declared unique. ``tag`` labels
        its calls (at most 64 characters, one line), shown in logs, the admin and
        ``jobs status``. ``after`` and ``batch`` are those of
        ``later`` (docs/howto/chaining.md, docs/howto/batches.md).
        """
        if unique_key is not None:
            per_call_key(unique_key)
        tag = checked_tag(tag)
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.options = replace(
            self.options,
            **{
                key: value
                for key, value in {
                    "queue": queue,
                    "priority": priority,
                    "wait": wait,
                    "wait_until": wait_until,
                    "unique_key": unique_key,
                    "tag": tag,
                    "after": after,
                    "batch": batch,
                }.items()
                if value is not None
            },
        )
        return clone

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        """Store a call of this job to run in a worker (``later`` with this job's options)."""
        # Imported here: calls imports the models, which cannot be imported before the
        # app registry is ready, while this module may be (`from django_jobs import job`
        # in an app's models module).
        try:
            from .calls import store_call
        except AppRegistryNotReady:
            raise JobsNotReady(f"{self.name}.enqueue()") from None

        opts = self.options
        return store_call(
            resolve(self),
            list(args),
            kwargs,
            queue=opts.queue,
            priority=opts.priority,
            wait=opts.wait,
            wait_until=opts.wait_until,
            unique_key=opts.unique_key,
            tag=opts.tag,
            after=opts.after,
            batch=opts.batch,
        )

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> Job:
        from asgiref.sync import sync_to_async

        return await sync_to_async(self.enqueue)(*args, **kwargs)


async def _await(awaitable: Any) -> Any:
    return await awaitable


@overload
def job(func: Callable[P, R], /) -> JobDefinition[P, R]: ...


@overload
def job(
    *,
    name: str | None = ...,
    queue: str = ...,
    priority: int = ...,
    max_attempts: int | None = ...,
    timeout: float | None = ...,
    takes_context: bool = ...,
    cron: str | None = ...,
    keep_result: bool = ...,
    unique: bool = ...,
    unique_key: Callable[..., Any] | None = ...,
    unique_for: float | timedelta | None = ...,
    unique_states: Iterable[str] | None = ...,
    backoff: Any = ...,
    retry_on: Any = ...,
    discard_on: Any = ...,
    before_perform: Callable[..., Any] | None = ...,
    after_perform: Callable[..., Any] | None = ...,
    on_success: Callable[..., Any] | None = ...,
    on_failure: Callable[..., Any] | None = ...,
    events: bool = ...,
    concurrency: int | None = ...,
    concurrency_key: Callable[..., Any] | None = ...,
    rate_limit: str | None = ...,
    rate_key: Callable[..., Any] | None = ...,
) -> Callable[[Callable[P, R]], JobDefinition[P, R]]: ...


def job(func: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Declare a function as a job. Usable bare (``@job``) or with options (``@job(...)``)."""

    if options.get("name") is not None:
        names.checked(options["name"])

    def register(f: Callable[P, R]) -> JobDefinition[P, R]:
        definition = JobDefinition(f, **options)
        discovery.check_declaration(definition.name, f)
        #: Declared after Django loaded its apps: workers may not know it.
        definition.declared_late = discovery.declared_late()
        existing = _registry.get(definition.name)
        if existing is not None and _origin(existing.func) != _origin(f):
            raise ImproperlyConfigured(
                f"Two jobs are named {definition.name!r}: "
                f"{_origin(existing.func)} and {_origin(f)}. Give one of them name=..."
            )
        _registry[definition.name] = definition
        return definition

    if func is not None:
        return register(func)
    return register


def _exception_classes(value: Any, option: str, name: str) -> tuple[type[BaseException], ...]:
    classes = value if isinstance(value, tuple | list) else (value,)
    for cls in classes:
        if not (isinstance(cls, type) and issubclass(cls, BaseException)):
            raise TypeError(
                f"@job {name}: {option} must be exception classes (one or a tuple), not {cls!r}"
            )
    return tuple(classes)


def _origin(func: Callable[..., Any]) -> str:
    code = getattr(func, "__code__", None)
    where = f" ({code.co_filename}:{code.co_firstlineno})" if code else ""
    return f"{func.__module__}.{func.__qualname__}{where}"


def get(name: str) -> JobDefinition[Any, Any]:
    """The registered job called ``name``; :class:`JobNotRegistered` otherwise."""
    try:
        return _registry[name]
    except KeyError:
        raise JobNotRegistered(name) from None


def find(name: str) -> JobDefinition[Any, Any] | None:
    """The registered job called ``name``, or None (no copy of the registry is made)."""
    return _registry.get(name)


signals.definition_of = find


def use_task_definitions(factory: Callable[[Any], JobDefinition[Any, Any]]) -> None:
    global _task_definitions
    _task_definitions = factory


def definition_for(claimed: Any) -> JobDefinition[Any, Any]:
    """The definition that runs a claimed row: its registered ``@job``, or for a
    ``django.tasks`` row one built from the task it names."""
    if not claimed.name.startswith(TASK_PREFIX):
        return get(claimed.name)
    if _task_definitions is None:
        raise TaskNotAllowed(
            f"{claimed.name} is a django.tasks row, and django_jobs is not an installed app"
        )
    return _task_definitions(claimed)


def resolve(obj: Any) -> JobDefinition[Any, Any]:
    """The registered definition behind ``obj`` (a definition or a registered name)."""
    if isinstance(obj, JobDefinition):
        if _registry.get(obj.name) is None or _registry[obj.name].func is not obj.func:
            raise JobNotRegistered(obj.name)
        return obj
    if isinstance(obj, str):
        return get(obj)
    raise TypeError(
        f"{obj!r} is not a job: decorate the function with @django_jobs.job "
        "and pass the decorated object"
    )


def clears_unique_key(name: str, state: str) -> bool:
    """True when a job called ``name`` entering ``state`` must give its unique key up.

    For every statement that moves a job to a finished state (succeeded, failed,
    cancelled): it sets ``unique_key = NULL`` in the same guarded statement when this is
    true. A job that is no longer registered, or has no rule (a call made unique with
    ``.using(unique_key=...)``), follows the default rule, which counts no finished state.
    """
    definition = _registry.get(name)
    rule = (definition.unique if definition is not None else None) or DEFAULT_RULE
    return rule.clears(state)


def publishes_outcomes(name: str) -> bool:
    """True when the job called ``name`` publishes its outcomes (``@job(events=True)``)."""
    definition = _registry.get(name)
    return definition is not None and definition.events


def declares_limits() -> bool:
    """True when a registered job or a worker group declares a concurrency or a rate
    limit: a worker then counts slots and grants from its first claim."""
    from .conf import jobs_settings

    if any(
        group.concurrency is not None or group.rate_limit is not None
        for group in jobs_settings().workers
    ):
        return True
    return any(d.concurrency is not None or d.rate is not None for d in _registry.values())


def all_jobs() -> dict[str, JobDefinition[Any, Any]]:
    return dict(_registry)


def unregister(name: str) -> None:
    """Remove a job from the registry (tests use it to clean up jobs they declared)."""
    _registry.pop(name, None)


def autodiscover() -> None:
    """Import ``jobs`` from every installed app, as the admin does with ``admin``."""
    autodiscover_modules("jobs")
