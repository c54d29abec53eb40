"""Job handlers by name, with their retry policy and timeout.

Handlers are plain callables `fn(job_id, data)`, sync or async. Both backends look handlers up here, so a job
name means the same code whichever backend runs it.

A name nobody registered may still be served by a resolver (`add_resolver`): the `django.tasks` backend
(`jobscheduler.tasks`) resolves a task's module path to a spec, so `@task` functions run without registering
each one. The registry itself never imports anything by name.
"""

from __future__ import annotations

import inspect
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .exceptions import HandlerAlreadyRegistered, InvalidRetryPolicy, JobHandlerNotFound

Handler = Callable[[str, dict[str, Any]], Any]
#: Turns a name nobody registered into a spec, returns None when the name is none of its business, or raises
#: a JobHandlerNotFound subclass saying why the name cannot run.
Resolver = Callable[[str], "HandlerSpec | None"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How often and how fast a failed job is tried again.

    `max_attempts` counts every attempt, the first included: `max_attempts=1` never retries.
    """

    max_attempts: int = 3
    backoff_coefficient: float = 2.0
    initial_interval_ms: int = 1000
    max_interval_ms: int = 60000
    non_retryable_errors: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if isinstance(self.non_retryable_errors, str) or not isinstance(self.non_retryable_errors, Iterable):
            raise InvalidRetryPolicy("non_retryable_errors must be a list of exception class names")
        object.__setattr__(self, "non_retryable_errors", tuple(self.non_retryable_errors))
        if not isinstance(self.max_attempts, int) or self.max_attempts < 1:
            raise InvalidRetryPolicy(f"max_attempts must be an integer >= 1, got {self.max_attempts!r}")
        if self.backoff_coefficient < 1:
            raise InvalidRetryPolicy(f"backoff_coefficient must be >= 1, got {self.backoff_coefficient!r}")
        if self.initial_interval_ms < 0:
            raise InvalidRetryPolicy(f"initial_interval_ms must be >= 0, got {self.initial_interval_ms!r}")
        if self.max_interval_ms < self.initial_interval_ms:
            raise InvalidRetryPolicy(
                f"max_interval_ms ({self.max_interval_ms}) must be >= initial_interval_ms "
                f"({self.initial_interval_ms})"
            )

    def delay_ms(self, attempt: int, *, jitter: float = 0.1) -> float:
        """Wait before the attempt after `attempt` (1-based): min(initial * coefficient^(n-1), max), +-jitter."""
        base = min(self.initial_interval_ms * self.backoff_coefficient ** (attempt - 1), self.max_interval_ms)
        if jitter:
            base *= 1 + random.uniform(-jitter, jitter)
        return max(0.0, min(base, self.max_interval_ms * (1 + jitter)))

    def is_retryable(self, error: BaseException) -> bool:
        """False when the error's class (or a base class) is named in `non_retryable_errors`."""
        names = {cls.__name__ for cls in type(error).__mro__} | {
            f"{cls.__module__}.{cls.__qualname__}" for cls in type(error).__mro__
        }
        return not names.intersection(self.non_retryable_errors)


@dataclass(frozen=True, slots=True)
class HandlerSpec:
    """A registered handler and how it runs."""

    name: str
    handler: Handler
    retry: RetryPolicy
    timeout_ms: int
    is_async: bool


#: The length of `jobs.type` (varchar(255)).
MAX_JOB_NAME_LENGTH = 255


class JobHandlerRegistry:
    """Process-wide map of job name to handler; class methods so it works like the seed's static registry."""

    _handlers: dict[str, HandlerSpec] = {}
    _resolvers: list[Resolver] = []
    _lock = threading.Lock()

    @classmethod
    def register(
        cls,
        name: str,
        handler: Handler,
        *,
        retry: RetryPolicy | None = None,
        timeout_ms: int | None = None,
        replace: bool = False,
    ) -> HandlerSpec:
        from .conf import setting

        if not isinstance(name, str) or not name.strip():
            raise ValueError("A job handler needs a non-empty name")
        if len(name) > MAX_JOB_NAME_LENGTH:
            # `jobs.type` is varchar(255): refused here, not when the first job of this name is written.
            raise ValueError(f"A job name is at most {MAX_JOB_NAME_LENGTH} characters, got {len(name)}")
        if not callable(handler):
            raise TypeError(f"The handler for job {name} is not callable: {handler!r}")
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise InvalidRetryPolicy(f"retry must be a RetryPolicy, got {type(retry).__name__}")
        if timeout_ms is not None and (not isinstance(timeout_ms, int) or timeout_ms <= 0):
            raise ValueError(f"timeout_ms must be a positive integer, got {timeout_ms!r}")
        spec = HandlerSpec(
            name=name,
            handler=handler,
            retry=retry or setting("DEFAULT_RETRY") or RetryPolicy(),
            timeout_ms=timeout_ms or setting("DEFAULT_TIMEOUT_MS"),
            is_async=inspect.iscoroutinefunction(handler),
        )
        with cls._lock:
            if name in cls._handlers and not replace:
                raise HandlerAlreadyRegistered(name)
            cls._handlers[name] = spec
        return spec

    @classmethod
    def get(cls, name: str) -> HandlerSpec:
        """The spec of `name`: registered, else from a resolver; JobHandlerNotFound (or a subclass naming the
        reason) when neither knows it."""
        spec = cls._handlers.get(name)
        if spec is not None:
            return spec
        for resolver in list(cls._resolvers):
            spec = resolver(name)
            if spec is not None:
                return spec
        raise JobHandlerNotFound(name)

    @classmethod
    def find(cls, name: str) -> HandlerSpec | None:
        """The spec of `name`, or None (for code that must carry on without one)."""
        try:
            return cls.get(name)
        except JobHandlerNotFound:
            return None

    @classmethod
    def add_resolver(cls, resolver: Resolver) -> None:
        """Consult `resolver` for names nobody registered (once, however often it is added)."""
        with cls._lock:
            if resolver not in cls._resolvers:
                cls._resolvers.append(resolver)

    @classmethod
    def snapshot(cls) -> dict[str, HandlerSpec]:
        """The registrations as they are now (tests restore them with `restore`)."""
        with cls._lock:
            return dict(cls._handlers)

    @classmethod
    def restore(cls, saved: dict[str, HandlerSpec]) -> None:
        with cls._lock:
            cls._handlers.clear()
            cls._handlers.update(saved)

    @classmethod
    def has(cls, name: str) -> bool:
        return cls.find(name) is not None

    @classmethod
    def names(cls) -> list[str]:
        return sorted(cls._handlers)


def job_handler(
    name: str, *, retry: RetryPolicy | None = None, timeout_ms: int | None = None, replace: bool = False
) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of job `name`."""

    def decorate(fn: Handler) -> Handler:
        JobHandlerRegistry.register(name, fn, retry=retry, timeout_ms=timeout_ms, replace=replace)
        return fn

    return decorate
