"""What activity code imports: the ``defn`` decorator and the running activity's context.

Declaring an activity::

    from durable_workflow import activity

    @activity.defn(name="charge-card")
    async def charge_card(order_id: str, amount: int) -> str:
        activity.heartbeat({"stage": "authorising"})
        ...

Inside a running activity, :func:`info`, :func:`heartbeat`, :func:`is_cancelled` and
:func:`context` reach the :class:`ActivityContext` that the worker installed for this attempt.
To fail on purpose with an explicit type and retry decision, raise
:class:`~durable_workflow.errors.ApplicationError`.

How the worker installs the context: it builds an :class:`ActivityContext` per attempt and
runs the activity inside ``with activity._running(ctx):``. The context lives in a
:class:`contextvars.ContextVar`, so it follows the code into tasks and threads only when the
worker carries the context along: enter ``_running`` inside the function submitted to the thread
pool, or submit ``contextvars.copy_context().run`` after entering it on the loop
(``loop.run_in_executor`` alone does not copy context variables).

This module never imports the client or the worker; the worker supplies the heartbeat callback.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from durable_workflow.errors import DurableWorkflowError, WorkflowDefinitionError

__all__ = [
    "ActivityContext",
    "ActivityInfo",
    "NotInActivityError",
    "activity_name",
    "context",
    "defn",
    "heartbeat",
    "info",
    "is_cancelled",
    "registry",
]

F = TypeVar("F", bound=Callable[..., Any])

logger = logging.getLogger("durable_workflow.activity")

# --- declaration ---------------------------------------------------------------------------

_registry: dict[str, Callable[..., Any]] = {}
_registry_lock = threading.Lock()


def _qualified(fn: Callable[..., Any]) -> str:
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"


def _same_definition(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """Whether two function objects come from the same source (a module reloaded or imported twice)."""
    code_a, code_b = getattr(a, "__code__", None), getattr(b, "__code__", None)
    if code_a is None or code_b is None:
        return _qualified(a) == _qualified(b)
    return bool(a.__qualname__ == b.__qualname__ and code_a.co_filename == code_b.co_filename)


def defn(*, name: str) -> Callable[[F], F]:
    """Register a function (sync or async) as an activity type under a language-neutral name.

    The function is returned unchanged, with the name stored as ``__activity_name__``, so it
    can still be called directly (in tests, for instance). The registry is per process and the
    last registration of a name wins; replacing a different function is logged as a warning,
    because it usually means two modules picked the same name by accident.

    Args:
        name: The activity type name that workflows schedule and workers poll for.

    Returns:
        The decorator.

    Raises:
        WorkflowDefinitionError: the name is empty or the target is not callable.
    """
    if not isinstance(name, str) or not name.strip():
        raise WorkflowDefinitionError(f"activity name must be a non-empty string, got {name!r}")

    def decorate(fn: F) -> F:
        if not callable(fn):
            raise WorkflowDefinitionError(f"@activity.defn(name={name!r}) must decorate a function")
        with _registry_lock:
            existing = _registry.get(name)
            _registry[name] = fn
        if existing is not None and existing is not fn and not _same_definition(existing, fn):
            logger.warning(
                "activity name %r now refers to %s instead of %s", name, _qualified(fn), _qualified(existing)
            )
        fn.__activity_name__ = name  # type: ignore[attr-defined]
        return fn

    return decorate


def registry() -> dict[str, Callable[..., Any]]:
    """Return a copy of the activity types registered in this process.

    Returns:
        Activity name -> function.
    """
    with _registry_lock:
        return dict(_registry)


def activity_name(fn: Callable[..., Any]) -> str:
    """Return the activity type name given to a function by :func:`defn`.

    Args:
        fn: A decorated function (or a bound method of one).

    Returns:
        The registered name.

    Raises:
        WorkflowDefinitionError: the function was not decorated with :func:`defn`.
    """
    name = getattr(fn, "__activity_name__", None)
    if not isinstance(name, str):
        raise WorkflowDefinitionError(f"{_qualified(fn)} is not an activity; decorate it with @activity.defn")
    return name


# --- the running attempt -----------------------------------------------------------------


@dataclass(frozen=True)
class ActivityInfo:
    """Facts about the running activity attempt, from the activity task.

    Attributes:
        workflow_id: The workflow that scheduled the activity.
        run_id: That workflow's run.
        activity_id: The activity execution's id (the same across attempts).
        activity_type: The registered activity name.
        attempt: 1 for the first attempt, then 2, 3...
        task_queue: The queue the task was polled from.
        task_id: The activity task's id.
        attempt_id: This attempt's id; heartbeats and the outcome are reported against it.
        deadline: When this attempt times out, if the task says so.
        heartbeat_details: Details of the last heartbeat of a previous attempt, for resuming.
    """

    workflow_id: str
    run_id: str
    activity_id: str
    activity_type: str
    attempt: int
    task_queue: str
    task_id: str
    attempt_id: str
    deadline: datetime | None = None
    heartbeat_details: Any = None


HeartbeatCallback = Callable[[Any], object]


class ActivityContext:
    """The per-attempt runtime surface that activity code talks to.

    The worker creates one for each attempt, passing the callback that records heartbeats
    and, for the worker's own event loop, ``loop``. Activity code normally reaches it through
    the module functions (:func:`heartbeat`, :func:`is_cancelled`...) rather than directly.
    """

    def __init__(
        self,
        info: ActivityInfo,
        *,
        heartbeat: HeartbeatCallback | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        """Create the context for one attempt.

        Args:
            info: The attempt's facts.
            heartbeat: Called with the details of every heartbeat. With ``loop`` given it always
                runs on that loop's thread, and an awaitable it returns is scheduled there as a
                task; without ``loop`` it runs on the caller's thread and must be thread-safe.
            loop: The worker's event loop. Sync activities run in a thread pool, and this is
                how their heartbeats get back to the loop safely.
        """
        self._info = info
        self._callback = heartbeat
        self._loop = loop
        self._cancelled = threading.Event()
        self._tasks: set[asyncio.Future[Any]] = set()
        self._last_details: Any = info.heartbeat_details

    @property
    def info(self) -> ActivityInfo:
        """The attempt's facts."""
        return self._info

    @property
    def last_heartbeat_details(self) -> Any:
        """The details of the latest heartbeat (or those of the previous attempt, until the first)."""
        return self._last_details

    def heartbeat(self, details: Any = None) -> None:
        """Record that the activity is alive, optionally with progress details.

        Safe from the event loop (async activities) and from any other thread (sync
        activities in the worker's pool).

        Args:
            details: A payload value that a retry can read back as ``info.heartbeat_details``.
        """
        self._last_details = details
        if self._callback is None:
            return
        loop = self._loop
        if loop is None or _running_loop() is loop:
            self._deliver(details)
        else:
            loop.call_soon_threadsafe(self._deliver, details)

    def _deliver(self, details: Any) -> None:
        if self._callback is None:
            return
        result = self._callback(details)
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            # The loop keeps only weak references to tasks; hold one until it finishes.
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    @property
    def is_cancelled(self) -> bool:
        """Whether cancellation of this attempt was requested."""
        return self._cancelled.is_set()

    @property
    def cancelled_event(self) -> threading.Event:
        """Set when cancellation is requested; sync code can ``wait()`` on it."""
        return self._cancelled

    def cancel(self) -> None:
        """Mark the attempt as cancelled (the worker calls this when the server asks)."""
        self._cancelled.set()


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class NotInActivityError(DurableWorkflowError, RuntimeError):
    """An activity-context function was called outside a running activity.

    It is also a ``RuntimeError``, which is what code that knows nothing of this SDK expects
    from "called in the wrong place".
    """


_current: contextvars.ContextVar[ActivityContext] = contextvars.ContextVar("durable_workflow_activity")


@contextmanager
def _running(ctx: ActivityContext) -> Iterator[ActivityContext]:
    """Install ``ctx`` as the current activity context for the duration of the block.

    For the worker only. See the module docstring for carrying it into a thread pool.
    """
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def context() -> ActivityContext:
    """Return the running activity's context.

    Returns:
        The context the worker installed for this attempt.

    Raises:
        NotInActivityError: not called from inside a running activity.
    """
    try:
        return _current.get()
    except LookupError:
        raise NotInActivityError("not running inside an activity") from None


def info() -> ActivityInfo:
    """Return the running attempt's :class:`ActivityInfo`.

    Returns:
        The attempt's facts.
    """
    return context().info


def heartbeat(details: Any = None) -> None:
    """Heartbeat the running activity (see :meth:`ActivityContext.heartbeat`).

    Args:
        details: Optional progress details for a later attempt to resume from.
    """
    context().heartbeat(details)


def is_cancelled() -> bool:
    """Return whether cancellation of the running attempt was requested.

    Returns:
        True once the worker has passed on a cancellation request.
    """
    return context().is_cancelled
