"""``WorkflowContext``: the replay-safe helper surface passed to ``run``.

Methods that build commands (``schedule_activity``, ``start_timer``, ``wait_condition`` …)
are pure: they return a dataclass to ``yield``. Methods that produce values at once
(``side_effect``, ``patched``, ``get_version``) talk to a :class:`WorkflowRuntime` that the
replayer installs; a context without one (for example in a unit test of a helper) behaves
like a brand-new run.
"""

from __future__ import annotations

import hashlib
import math
import random as _random
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

from durable_workflow.errors import NonDeterministicReplayError, WorkflowDefinitionError
from durable_workflow.retry_policy import ActivityRetryPolicy, ChildWorkflowRetryPolicy
from durable_workflow.workflow._commands import (
    ScheduleActivity,
    StartChildWorkflow,
    StartTimer,
    WaitCondition,
)

_R = TypeVar("_R")

#: The version a run reports for a change it never recorded a marker for.
DEFAULT_VERSION = -1

# Changing this prefix changes every fingerprint and so breaks replay of open waits.
_FINGERPRINT_PREFIX = b"durable-workflow.condition-definition.v1\x00"


class WorkflowRuntime(Protocol):
    """What the replayer provides to a context for values decided at call time."""

    @property
    def replaying(self) -> bool:
        """True while the code is still consuming recorded history."""

    def side_effect(self, fn: Callable[[], Any]) -> Any:
        """Return the recorded value, or run ``fn`` once and record it."""

    def version(self, change_id: str, min_supported: int, max_supported: int, record: int) -> int:
        """Return the version decided for ``change_id``, recording ``record`` on a new path."""


def condition_fingerprint(predicate: Callable[[], Any]) -> str:
    """A stable identity for a wait predicate: ``"sha256:"`` plus a hex digest.

    The digest covers a fixed prefix, the predicate's module, its qualified name and the
    bytes of its code object, so editing the predicate shows up as a changed condition on
    replay.
    """
    fn: Any = getattr(predicate, "__func__", predicate)
    code = getattr(fn, "__code__", None)
    module = getattr(fn, "__module__", None) or type(fn).__module__
    qualname = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    digest = hashlib.sha256(_FINGERPRINT_PREFIX)
    digest.update(str(module).encode())
    digest.update(b"\x00")
    digest.update(str(qualname).encode())
    digest.update(b"\x00")
    if code is not None:
        digest.update(code.co_code)
    return "sha256:" + digest.hexdigest()


def _whole_seconds(value: float | int | None, what: str) -> int | None:
    """Round a duration up to whole seconds (the server stores integer seconds)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WorkflowDefinitionError(f"{what} must be a number of seconds, got {value!r}")
    if value < 0 or not math.isfinite(value):
        raise WorkflowDefinitionError(f"{what} must be a finite number of seconds >= 0, got {value!r}")
    return math.ceil(value)


class WorkflowContext:
    """Replay-safe helper surface passed to workflow run methods.

    Args:
        run_id: The run id; it seeds :meth:`random`, :meth:`uuid4` and :meth:`uuid7`.
        current_time: The run's start time, returned by :meth:`now`.
    """

    def __init__(self, *, run_id: str = "", current_time: datetime | None = None) -> None:
        self._run_id = run_id
        if current_time is not None and current_time.tzinfo is None:
            current_time = current_time.replace(tzinfo=UTC)
        self._current_time = current_time
        self._rng: _random.Random | None = None
        self._workflow_id: str | None = None
        self._workflow_type: str | None = None
        self._runtime: WorkflowRuntime | None = None

    # --- identity -----------------------------------------------------------------------

    @property
    def run_id(self) -> str:
        """The run id this context replays."""
        return self._run_id

    @property
    def workflow_id(self) -> str | None:
        """The workflow (instance) id, when the replayer knows it."""
        return self._workflow_id

    @property
    def workflow_type(self) -> str | None:
        """The registered workflow type name, when the replayer knows it."""
        return self._workflow_type

    @property
    def is_replaying(self) -> bool:
        """True while the code re-runs recorded history, False once it makes new decisions.

        Use it to silence logging during replay; never to change what the workflow does.
        """
        return self._runtime.replaying if self._runtime is not None else False

    # --- commands -----------------------------------------------------------------------

    def schedule_activity(
        self,
        activity_type: str,
        arguments: Sequence[Any] | None = None,
        *,
        queue: str | None = None,
        retry_policy: ActivityRetryPolicy | None = None,
        start_to_close_timeout: int | None = None,
        schedule_to_start_timeout: int | None = None,
        schedule_to_close_timeout: int | None = None,
        heartbeat_timeout: int | None = None,
    ) -> ScheduleActivity:
        """Build an activity command; ``yield`` it to get the activity's result.

        Args:
            activity_type: The registered activity name.
            arguments: Positional arguments for the activity.
            queue: The task queue; the workflow's own queue when omitted.
            retry_policy: The durable retry budget for this call.
            start_to_close_timeout: Seconds one attempt may run.
            schedule_to_start_timeout: Seconds an attempt may wait in the queue.
            schedule_to_close_timeout: Seconds the whole execution, retries included, may take.
            heartbeat_timeout: Largest gap in seconds between heartbeats.

        Returns:
            The command. A failed activity raises :class:`~durable_workflow.errors.ActivityError`
            at the ``yield``.
        """
        return ScheduleActivity(
            activity_type=activity_type,
            arguments=list(arguments or ()),
            queue=queue,
            retry_policy=retry_policy,
            start_to_close_timeout=start_to_close_timeout,
            schedule_to_start_timeout=schedule_to_start_timeout,
            schedule_to_close_timeout=schedule_to_close_timeout,
            heartbeat_timeout=heartbeat_timeout,
        )

    def start_child_workflow(
        self,
        workflow_type: str,
        arguments: Sequence[Any] | None = None,
        *,
        task_queue: str | None = None,
        parent_close_policy: str | None = None,
        retry_policy: ChildWorkflowRetryPolicy | None = None,
        execution_timeout_seconds: int | None = None,
        run_timeout_seconds: int | None = None,
    ) -> StartChildWorkflow:
        """Build a child-workflow command; ``yield`` it to get the child's result.

        Args:
            workflow_type: The child's workflow type.
            arguments: Positional start arguments.
            task_queue: The child's task queue.
            parent_close_policy: ``abandon``, ``request_cancel`` or ``terminate``.
            retry_policy: The durable retry budget for the child.
            execution_timeout_seconds: Budget of the whole child execution.
            run_timeout_seconds: Budget of one child run.

        Returns:
            The command. A failed child raises
            :class:`~durable_workflow.errors.ChildWorkflowError` at the ``yield``.
        """
        return StartChildWorkflow(
            workflow_type=workflow_type,
            arguments=list(arguments or ()),
            task_queue=task_queue,
            parent_close_policy=parent_close_policy,
            retry_policy=retry_policy,
            execution_timeout_seconds=execution_timeout_seconds,
            run_timeout_seconds=run_timeout_seconds,
        )

    def start_timer(self, seconds: float) -> StartTimer:
        """Yield a durable timer that resolves after ``seconds`` seconds.

        Args:
            seconds: Whole seconds; a fraction is rounded up.

        Returns:
            The command; the ``yield`` resolves to ``None``.
        """
        delay = _whole_seconds(seconds, "timer delay")
        assert delay is not None
        return StartTimer(delay_seconds=delay)

    def sleep(self, seconds: float) -> StartTimer:
        """Sleep for ``seconds`` seconds of durable wall time.

        Sugar over :meth:`start_timer` that accepts a float and rounds up to the next whole
        second (the server stores timer deadlines as integer seconds). Still a single yield:
        ``yield ctx.sleep(60)``.

        Args:
            seconds: The duration.

        Returns:
            The timer command.
        """
        return self.start_timer(seconds)

    def wait_condition(
        self,
        predicate: Callable[[], Any],
        *,
        key: str | None = None,
        timeout: float | None = None,
    ) -> WaitCondition:
        """Yield execution until ``predicate()`` returns truthy.

        The predicate is evaluated against in-memory workflow state, typically changed by
        ``@signal`` / ``@update`` handlers. A predicate that is already true resolves at once
        without a command and without a sequence number.

        Args:
            predicate: A zero-argument callable over workflow state.
            key: A stable name for the wait, checked on replay.
            timeout: Seconds before giving up; rounded up to whole seconds.

        Returns:
            The command; the ``yield`` resolves to ``True``, or ``False`` on timeout.
        """
        return WaitCondition(
            predicate=predicate,
            condition_key=key,
            condition_definition_fingerprint=condition_fingerprint(predicate),
            timeout_seconds=_whole_seconds(timeout, "wait timeout"),
        )

    # --- values decided at call time -----------------------------------------------------

    def now(self) -> datetime:
        """The run's start time (UTC); it never changes during the run.

        Returns:
            The ``WorkflowStarted`` time (``payload.timestamp``, else ``recorded_at``).

        Raises:
            NonDeterministicReplayError: the history carries no parseable start time.
        """
        if self._current_time is None:
            raise NonDeterministicReplayError(
                "now() was called but the history has no parseable WorkflowStarted time",
                workflow_type=self._workflow_type,
            )
        return self._current_time

    def random(self) -> _random.Random:
        """A :class:`random.Random` seeded from the run id, identical on every replay.

        Returns:
            The context's generator, seeded with the first 16 hex digits of SHA-256(run_id).
        """
        if self._rng is None:
            seed = int(hashlib.sha256(self._run_id.encode()).hexdigest()[:16], 16)
            self._rng = _random.Random(seed)
        return self._rng

    def uuid4(self) -> uuid.UUID:
        """A version-4 UUID drawn from :meth:`random`.

        Returns:
            The same sequence of UUIDs on every replay of the run.
        """
        return uuid.UUID(int=self.random().getrandbits(128), version=4)

    def uuid7(self) -> uuid.UUID:
        """A version-7 UUID whose time is :meth:`now` and whose random bits come from :meth:`random`.

        Returns:
            The same sequence of UUIDs on every replay of the run.
        """
        millis = int(self.now().timestamp() * 1000) & ((1 << 48) - 1)
        rng = self.random()
        value = (
            (millis << 80) | (0x7 << 76) | (rng.getrandbits(12) << 64) | (0b10 << 62) | rng.getrandbits(62)
        )
        return uuid.UUID(int=value)

    def side_effect(self, fn: Callable[[], _R]) -> _R:
        """Run ``fn`` once and replay its value ever after.

        On first execution ``fn`` runs and its result is recorded (a ``record_side_effect``
        command, which does not end the task); on replay the recorded value is returned and
        ``fn`` is not called. An exception from ``fn`` propagates into the workflow.

        Args:
            fn: A zero-argument function with a payload-encodable result.

        Returns:
            The value, at once (no ``yield``).
        """
        if self._runtime is None:
            return fn()
        result: _R = self._runtime.side_effect(fn)
        return result

    def get_version(self, change_id: str, min_supported: int, max_supported: int) -> int:
        """Read or record the code version for ``change_id``.

        A new path records ``max_supported``; a replayed marker returns its version; a run
        that reached this point before the change existed gets ``-1``.

        Args:
            change_id: Names the change.
            min_supported: Oldest version the code still handles.
            max_supported: Newest version.

        Returns:
            The version for this run.

        Raises:
            NonDeterministicReplayError: the decided version is outside the range.
        """
        if self._runtime is None:
            return max_supported
        return self._runtime.version(change_id, min_supported, max_supported, max_supported)

    def patched(self, change_id: str) -> bool:
        """Record or read a patch marker and resolve to True for patched runs.

        New runs record version 1 for ``change_id`` and replay as True. Older runs that
        reached this code without a marker resolve the legacy default version -1 and replay
        as False. Later calls with the same id reuse the first decision.

        Args:
            change_id: Names the patch.

        Returns:
            True on the patched path.
        """
        if self._runtime is None:
            return True
        return self._runtime.version(change_id, DEFAULT_VERSION, 1, 1) == 1

    def deprecate_patch(self, change_id: str) -> None:
        """Keep a patch marker alive after the old branch has been removed.

        Args:
            change_id: The patch that :meth:`patched` used to guard.
        """
        if self._runtime is not None:
            self._runtime.version(change_id, DEFAULT_VERSION, 1, 1)
