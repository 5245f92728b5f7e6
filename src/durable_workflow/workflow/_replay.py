"""The driver: runs workflow code against a parsed history and collects the new commands.

The workflow's ``run`` is a generator. Every yielded command is matched, in order, with the
next unconsumed recorded :class:`~._history.Step`; the match returns the recorded result (or
throws the recorded failure into the generator). A command with no recorded step is new: it
is queued, and unless it is a side effect, marker or upsert the task ends there.

Signals and applied updates run at their history position: just before the code receives the
first result recorded after them, or when the code blocks. They never run before a step that
keeps the code running (side effect, marker, upsert) nor before the first predicate check of
a wait: a signal that arrives while a task runs is recorded ahead of that task's own events,
and must not change, on replay, a decision the task made without it.

Workflow sequence numbers follow the history: a matched step takes its recorded number, a new
step takes the previous number plus one. On a dense history (one number per step command,
§12.2 of the protocol notes) that is the dense counter; on a history from a server that
numbers by event position it is the "max recorded plus one" rule of the 2.12.0 SDK.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator
from typing import Any

from durable_workflow import errors
from durable_workflow.errors import NonDeterministicReplayError, ReplayError, WorkflowDefinitionError
from durable_workflow.workflow import _groups as g
from durable_workflow.workflow import _history as h
from durable_workflow.workflow._cancel import WorkflowCancellationRequested
from durable_workflow.workflow._commands import (
    CompleteWorkflow,
    ContinueAsNew,
    FailWorkflow,
    RecordSideEffect,
    RecordVersionMarker,
    ScheduleActivity,
    StartChildWorkflow,
    StartTimer,
    UpsertSearchAttributes,
    WaitCondition,
    with_wire_extras,
)
from durable_workflow.workflow._context import DEFAULT_VERSION, WorkflowContext
from durable_workflow.workflow._definition import WorkflowDefinition
from durable_workflow.workflow._failures import fail_workflow_command, step_failure

# What resolving one yielded value produced.
_VALUE = 0  # send the value back into the generator
_THROW = 1  # throw the exception into the generator
_BLOCKED = 2  # no result yet: the task ends here
_DONE = 3  # a terminal command was yielded

# inspect.signature costs ~0.2 ms and every workflow task replays from the start; a class's
# run method does not change, so its signature is computed once per function.
_SIGNATURES: dict[Callable[..., Any], inspect.Signature] = {}


def _check_arguments(run: Callable[..., Any], ctx: Any, args: list[Any]) -> None:
    """Raise TypeError if ``run(ctx, *args)`` would not bind (before running any code)."""
    func = getattr(run, "__func__", None)
    owner = getattr(run, "__self__", None)
    if func is None or owner is None:  # not a bound method: nothing stable to cache by
        inspect.signature(run).bind(ctx, *args)
        return
    signature = _SIGNATURES.get(func)
    if signature is None:
        signature = _SIGNATURES[func] = inspect.signature(func)
    signature.bind(owner, ctx, *args)


_KINDS: dict[type, str] = {
    ScheduleActivity: h.ACTIVITY,
    StartTimer: h.TIMER,
    StartChildWorkflow: h.CHILD,
    RecordSideEffect: h.SIDE_EFFECT,
    RecordVersionMarker: h.MARKER,
    UpsertSearchAttributes: h.UPSERT,
    WaitCondition: h.WAIT,
}


class UnknownUpdate(errors.UpdateFailed):
    """History applied, or a task asked for, an update name the workflow class does not handle."""


class _Stop(BaseException):
    """Halts workflow code that reached new territory while only state was wanted (query mode).

    A BaseException so that a broad ``except Exception`` in workflow code cannot swallow it.
    """


class _ReceiverFailed(BaseException):
    """Carries an exception raised by a signal handler out to the driver, which fails the run.

    A BaseException for the same reason as :class:`_Stop`: it may pass through workflow code.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(error)
        self.error = error


def _describe(command: Any) -> str:
    """A short text naming a yielded command for error messages."""
    name = type(command).__name__
    for attr in ("activity_type", "workflow_type", "change_id", "condition_key", "delay_seconds"):
        value = getattr(command, attr, None)
        if value is not None:
            return f"{name}({value!r})"
    return name


class Driver:
    """Replays one workflow instance over one parsed history.

    Args:
        definition: The workflow's definition.
        history: The parsed history.
        ctx: The context handed to ``run``; the driver installs itself as its runtime.
        record_new: False to stop at the first new decision instead of queueing it (queries,
            and the state-rebuilding part of an update task).
    """

    def __init__(
        self,
        definition: WorkflowDefinition,
        history: h.History,
        ctx: WorkflowContext,
        *,
        record_new: bool = True,
    ) -> None:
        self.definition = definition
        self.history = history
        self.ctx = ctx
        self.instance: Any = definition.cls()
        self.steps = history.steps
        self.pos = 0
        self.receivers = history.receivers
        self.rpos = 0
        self.seq = 0
        self.commands: list[Any] = []
        self.record_new = record_new
        self.completed = False
        self.waiting = False
        self.result: Any = None
        self.fatal: BaseException | None = None
        self.versions: dict[str, int] = {}
        #: A recorded cancel request not yet raised into the code (see ``_cancel_due``).
        self.cancel_at = history.cancel_index
        ctx._runtime = self

    # --- WorkflowRuntime ----------------------------------------------------------------

    @property
    def replaying(self) -> bool:
        """True while recorded steps remain ahead of the code."""
        return self.pos < len(self.steps)

    def side_effect(self, fn: Callable[[], Any]) -> Any:
        """Return the recorded side-effect value or run ``fn`` once and queue its record."""
        try:
            step = self._match(h.SIDE_EFFECT, None, None, "side_effect()", apply=False)
            if step is not None:
                if step.outcome == h.PENDING:
                    raise self._nondeterminism(
                        step, "side_effect()", "the recorded side effect has no result"
                    )
                return h.decode_value(step.value)
        except (ReplayError, errors.PayloadError) as exc:
            self.fatal = exc
            raise
        if not self.record_new:
            raise _Stop
        value = fn()
        self.seq += 1
        self.commands.append(RecordSideEffect(result=value))
        return value

    def version(self, change_id: str, min_supported: int, max_supported: int, record: int) -> int:
        """Decide the version of ``change_id`` once per run (see ``WorkflowContext.patched``)."""
        try:
            return self._version(change_id, min_supported, max_supported, record)
        except ReplayError as exc:
            self.fatal = exc
            raise

    def _version(self, change_id: str, min_supported: int, max_supported: int, record: int) -> int:
        decided = self.versions.get(change_id)
        if decided is None:
            step = self._peek(apply=False)
            if step is not None and step.kind == h.MARKER:
                if step.name != change_id:
                    raise self._nondeterminism(step, f"version marker {change_id!r}", "a different change id")
                self._consume(step)
                decided = int(step.value)
            elif step is not None or self.history.closed:
                # The run reached this point before the change existed.
                decided = DEFAULT_VERSION
            else:
                if not self.record_new:
                    raise _Stop
                self.seq += 1
                self.commands.append(RecordVersionMarker(change_id, record, min_supported, max_supported))
                decided = record
            self.versions[change_id] = decided
        else:
            # Older SDKs wrote one marker per call; consume repeats of a decided id silently.
            step = self._peek(apply=False)
            while step is not None and step.kind == h.MARKER and step.name == change_id:
                self._consume(step)
                step = self._peek(apply=False)
        if not min_supported <= decided <= max_supported:
            raise NonDeterministicReplayError(
                f"workflow {self._type()!r}: version {decided} of change {change_id!r} is outside the "
                f"supported range {min_supported}..{max_supported}",
                workflow_type=self._type(),
                sequence=self.seq,
                recorded=f"version {decided}",
                yielded=f"range {min_supported}..{max_supported}",
            )
        return decided

    # --- running the code ---------------------------------------------------------------

    def start(self, args: list[Any]) -> None:
        """Call ``run(ctx, *args)`` and drive it as far as the history allows."""
        run = getattr(self.instance, self.definition.run)
        try:
            _check_arguments(run, self.ctx, args)
        except TypeError as exc:
            raise WorkflowDefinitionError(
                f"workflow {self._type()!r} cannot take its start input {args!r}: {exc}"
            ) from exc
        try:
            produced = run(self.ctx, *args)
        except _Stop:
            return
        except _ReceiverFailed as failed:
            self._finish_failure(failed.error)
            return
        except Exception as exc:
            self._raise_fatal()
            self._finish_failure(exc)
            return
        self._raise_fatal()
        if inspect.isgenerator(produced):
            self._drive_main(produced)
        else:
            self._finish_value(produced)

    def _drive_main(self, gen: Generator[Any, Any, Any]) -> None:
        state: int = _VALUE
        value: Any = None
        while True:
            try:
                yielded = gen.throw(value) if state == _THROW else gen.send(value)
            except StopIteration as stop:
                self._raise_fatal()
                self._finish_value(stop.value)
                return
            except _Stop:
                return
            except _ReceiverFailed as failed:
                self._finish_failure(failed.error)
                return
            except WorkflowCancellationRequested as cancelled:  # not caught by the code
                self._raise_fatal()
                self._finish_failure(cancelled)
                return
            except Exception as exc:
                self._raise_fatal()
                self._finish_failure(exc)
                return
            if self.fatal is not None:
                raise self.fatal
            try:
                state, value = self.resolve(yielded)
            except _Stop:
                return
            except _ReceiverFailed as failed:
                self._finish_failure(failed.error)
                return
            if state == _BLOCKED:
                self.waiting = True
                return
            if state == _DONE:
                self._finish_value(value)
                return

    def drive_handler(self, gen: Generator[Any, Any, Any]) -> tuple[bool, Any]:
        """Drive a generator update handler; return ``(finished, value)``."""
        state: int = _VALUE
        value: Any = None
        while True:
            try:
                yielded = gen.throw(value) if state == _THROW else gen.send(value)
            except StopIteration as stop:
                self._raise_fatal()
                return True, stop.value
            self._raise_fatal()
            state, value = self.resolve(yielded)
            if state == _BLOCKED:
                return False, None
            if state == _DONE:
                raise WorkflowDefinitionError("update handlers cannot yield terminal workflow commands")

    def _raise_fatal(self) -> None:
        if self.fatal is not None:
            raise self.fatal

    # --- resolving one yielded value ----------------------------------------------------

    def resolve(self, yielded: Any) -> tuple[int, Any]:
        """Resolve a yielded command or list; return ``(state, value)``."""
        kind = _KINDS.get(type(yielded))
        if kind is None:
            if isinstance(yielded, list | tuple):
                return self._resolve_group(yielded)
            if isinstance(yielded, CompleteWorkflow):
                return _DONE, yielded.result
            if isinstance(yielded, ContinueAsNew | FailWorkflow):
                return _DONE, yielded
            for klass, name in _KINDS.items():
                if isinstance(yielded, klass):
                    kind = name
                    break
            else:
                raise WorkflowDefinitionError(
                    f"workflow {self._type()!r} yielded {yielded!r}; yield a command or a list of commands"
                )
        if kind == h.WAIT:
            return self._resolve_wait(yielded)
        if kind == h.SIDE_EFFECT:
            result = yielded.result
            return _VALUE, self.side_effect(lambda: result)
        if kind == h.MARKER:
            return _VALUE, self.version(
                yielded.change_id, yielded.min_supported, yielded.max_supported, yielded.version
            )
        # Receivers run only where the code waits for a result, never before a step that keeps
        # running (an upsert here): a signal that arrived while the task ran is recorded before
        # the task's own events, and must not change a decision made without it.
        step = self._match(kind, yielded, None, apply=kind != h.UPSERT)
        if kind != h.UPSERT and self._cancel_due([step]):
            return self._deliver_cancel()
        if step is None:
            if not self.record_new:
                return _BLOCKED, None
            self.seq += 1
            self.commands.append(yielded)
            # Upserts keep the code running; every other new step ends the task.
            return (_VALUE, None) if kind == h.UPSERT else (_BLOCKED, None)
        if kind == h.UPSERT:
            # A recorded upsert is not a delivery point either (see above): going through
            # _result() would run receivers recorded ahead of it, which the live task never saw.
            return _VALUE, None
        return self._result(step)

    def _result(self, step: h.Step) -> tuple[int, Any]:
        outcome = step.outcome
        if outcome == h.PENDING:
            self._receivers_to_next_step()
            return _BLOCKED, None
        if self.rpos < len(self.receivers):
            self._apply_receivers(step.result_index)
        if outcome == h.FAILED:
            return _THROW, step_failure(step)
        kind = step.kind
        if kind == h.ACTIVITY or kind == h.CHILD:
            return _VALUE, h.decode_value(step.value)
        return _VALUE, None

    def _resolve_group(self, items: list[Any] | tuple[Any, ...]) -> tuple[int, Any]:
        leaves, groups = g.flatten(items, _KINDS)
        matched: list[h.Step | None] = []
        sequences: list[int] = []
        seq_before = self.seq
        for index, leaf in enumerate(leaves):
            step = self._match(leaf.kind, leaf.command, g.shape(leaves, groups, index))
            if step is None and self.record_new:
                self.seq += 1
            matched.append(step)
            sequences.append(self.seq)
        if self._cancel_due(matched):
            # New members are not issued: the code learns of the cancel instead.
            recorded = [s.sequence for s in matched if s is not None and s.sequence is not None]
            self.seq = max([seq_before, *recorded])
            return self._deliver_cancel()
        if not self.record_new and any(step is None for step in matched):
            return _BLOCKED, None
        for index, step in enumerate(matched):
            if step is None:
                keys = g.wire_keys(leaves, groups, index, sequences)
                self.commands.append(with_wire_extras(leaves[index].command, keys))
        # A group resolves only when every member has a result; then the first failure by
        # position is thrown, otherwise the results come back in position order.
        if any(step is None or step.outcome == h.PENDING for step in matched):
            self._receivers_to_next_step()
            return _BLOCKED, None
        resolved = [step for step in matched if step is not None]
        if resolved and self.rpos < len(self.receivers):
            self._apply_receivers(max(step.result_index for step in resolved))
        for step in resolved:
            if step.outcome == h.FAILED:
                return _THROW, step_failure(step)
        return _VALUE, g.rebuild(items, iter([self._result(step)[1] for step in resolved]))

    def _resolve_wait(self, command: WaitCondition) -> tuple[int, Any]:
        predicate = command.predicate
        # The first check sees only the state as of the last result (see resolve()).
        try:
            if predicate():
                return _VALUE, True
        except Exception as exc:
            return _THROW, exc
        while True:
            step = self._match(h.WAIT, command, None)
            if self._cancel_due([step]):
                return self._deliver_cancel()
            if step is None:
                if not self.record_new:
                    return _BLOCKED, None
                self.seq += 1
                self.commands.append(command)
                # Receivers that came in before this task may already satisfy the wait; the
                # open is still recorded, so a replay pairs it and resolves it the same way.
                try:
                    if predicate():
                        return _VALUE, True
                except Exception as exc:
                    return _THROW, exc
                return _BLOCKED, None
            if step.outcome == h.PENDING:
                self._receivers_to_next_step()
            elif self.rpos < len(self.receivers):
                self._apply_receivers(step.result_index)
            if step.outcome != h.PENDING and step.value is False:
                return _VALUE, False
            try:
                if predicate():
                    return _VALUE, True
            except Exception as exc:
                return _THROW, exc
            if step.outcome == h.PENDING:
                return _BLOCKED, None
            # Satisfied was recorded but the predicate is still false: the wait re-opens with
            # the same identity, which consumes the next recorded open or queues a new one.

    # --- cancellation -------------------------------------------------------------------

    def _cancel_due(self, steps: list[h.Step | None]) -> bool:
        """Whether a recorded cancel request is raised at a yield waiting on ``steps``.

        It is raised at the first blocking yield that, in history, had not resolved before
        the request: a new step, a step still pending, or one resolved after the request.
        That is the yield the code was blocked on when the request arrived, on the first
        execution and on every replay alike.
        """
        at = self.cancel_at
        if at is None:
            return False
        return any(s is None or s.outcome == h.PENDING or s.result_index > at for s in steps)

    def _deliver_cancel(self) -> tuple[int, Any]:
        at = self.cancel_at
        assert at is not None
        self.cancel_at = None
        if self.rpos < len(self.receivers):
            self._apply_receivers(at)
        reason = self.history.cancel_reason
        return _THROW, WorkflowCancellationRequested(reason or "the workflow run was asked to cancel")

    # --- history cursor -----------------------------------------------------------------

    def _peek(self, apply: bool = True) -> h.Step | None:
        """The next unconsumed step, after running receivers recorded before it (if ``apply``)."""
        steps = self.steps
        if not apply:
            return steps[self.pos] if self.pos < len(steps) else None
        while True:
            pos = self.pos
            if pos >= len(steps):
                if self.rpos < len(self.receivers):
                    self._apply_receivers(None)
                    continue
                return None
            step = steps[pos]
            if self.rpos < len(self.receivers) and self.receivers[self.rpos].index < step.first_index:
                self._apply_receivers(step.first_index)
                continue
            return step

    def _consume(self, step: h.Step) -> None:
        self.pos += 1
        self.seq = step.sequence if step.sequence is not None else self.seq + 1

    def _match(
        self,
        kind: str,
        command: Any,
        path: g.PathShape | None,
        label: str | None = None,
        *,
        apply: bool = True,
    ) -> h.Step | None:
        """Consume and return the recorded step for ``command``, or None when it is new."""
        step = self._peek(apply)
        if step is None:
            return None
        if step.kind != kind:
            raise self._nondeterminism(step, label or _describe(command), None)
        if command is not None:
            self._check_details(step, kind, command, path)
        self._consume(step)
        return step

    def _check_details(self, step: h.Step, kind: str, command: Any, path: g.PathShape | None) -> None:
        details = step.details
        reason = None
        if kind == h.ACTIVITY:
            if step.name is not None and step.name != command.activity_type:
                reason = "a different activity type"
        elif kind == h.TIMER:
            if step.name is not None and step.name != command.delay_seconds:
                reason = "a different timer delay"
        elif kind == h.CHILD:
            if step.name is not None and step.name != command.workflow_type:
                reason = "a different child workflow type"
            recorded_policy = details.get("parent_close_policy")
            if recorded_policy is not None and recorded_policy != (command.parent_close_policy or "abandon"):
                reason = "a different parent close policy"
        elif kind == h.WAIT:
            recorded_key = details.get("condition_key")
            if recorded_key is not None and recorded_key != command.condition_key:
                reason = "condition_key_changed"
            recorded_print = details.get("condition_definition_fingerprint")
            if recorded_print is not None and recorded_print != command.condition_definition_fingerprint:
                reason = reason or "condition_fingerprint_changed"
        recorded_path = details.get("parallel_group_path")
        if (recorded_path is not None or path is not None) and not g.same_path(recorded_path, path):
            reason = reason or "a different parallel group shape"
        if reason is not None:
            raise self._nondeterminism(step, _describe(command), reason)

    def _apply_receivers(self, limit: int | None) -> None:
        """Run signals and applied updates recorded before history index ``limit`` (all if None)."""
        receivers = self.receivers
        while self.rpos < len(receivers):
            receiver = receivers[self.rpos]
            if limit is not None and receiver.index >= limit:
                return
            self.rpos += 1
            self._run_receiver(receiver)

    def _receivers_to_next_step(self) -> None:
        if self.rpos < len(self.receivers):
            self._peek()

    def _run_receiver(self, receiver: h.Receiver) -> None:
        definition = self.definition
        if receiver.kind == "signal":
            attr = definition.signals.get(receiver.name)
            if attr is None:
                return  # unknown signals are ignored
            args = self._decode_arguments(receiver.arguments)
            try:
                produced = getattr(self.instance, attr)(*args)
                if inspect.isgenerator(produced):
                    self._replay_handler(produced, f"signal {receiver.name!r}")
            except (_Stop, _ReceiverFailed, ReplayError, errors.PayloadError):
                raise
            except Exception as exc:
                raise _ReceiverFailed(exc) from exc
            return
        attr = definition.updates.get(receiver.name)
        if attr is None:
            raise _ReceiverFailed(
                UnknownUpdate(
                    f"history applied update {receiver.name!r}, "
                    f"which workflow {self._type()!r} does not handle",
                    update_name=receiver.name,
                    update_id=receiver.update_id,
                )
            )
        args = self._decode_arguments(receiver.arguments)
        try:
            produced = getattr(self.instance, attr)(*args)
            if inspect.isgenerator(produced):
                self._replay_handler(produced, f"update {receiver.name!r}")
        except (_Stop, _ReceiverFailed, ReplayError, errors.PayloadError):
            raise
        except Exception as exc:
            # The update was applied when it first ran, so a failure now means the code changed.
            raise NonDeterministicReplayError(
                f"workflow {self._type()!r}: update {receiver.name!r} ({receiver.update_id}) was applied in "
                f"history but its handler now raises {type(exc).__name__}: {exc}",
                workflow_type=self._type(),
                sequence=self.seq,
                recorded="UpdateApplied",
                yielded=type(exc).__name__,
            ) from exc

    def _replay_handler(self, gen: Generator[Any, Any, Any], what: str) -> None:
        finished, _ = self.drive_handler(gen)
        if not finished:
            raise ReplayError(
                f"workflow {self._type()!r}: {what} is waiting on a step that history has not resolved"
            )

    def _decode_arguments(self, raw: Any) -> list[Any]:
        try:
            return h.decode_arguments(raw)
        except errors.PayloadError as exc:
            self.fatal = exc
            raise

    # --- outcomes -----------------------------------------------------------------------

    def _finish_value(self, value: Any) -> None:
        terminal = value if isinstance(value, ContinueAsNew | FailWorkflow) else CompleteWorkflow(value)
        # Older SDKs could leave repeated markers for an id decided earlier; they are not steps.
        step = self._peek()
        while step is not None and step.kind == h.MARKER and step.name in self.versions:
            self._consume(step)
            step = self._peek()
        if step is not None:
            raise NonDeterministicReplayError(
                f"workflow {self._type()!r} finished with {type(terminal).__name__} but history still holds "
                f"{step.describe()} at workflow sequence {_number(step, self.seq)}",
                workflow_type=self._type(),
                sequence=step.sequence,
                recorded=step.describe(),
                yielded=type(terminal).__name__,
            )
        self.completed = True
        self.result = value
        if self.record_new:
            self.commands.append(terminal)

    def _finish_failure(self, exc: BaseException) -> None:
        self.completed = True
        self.waiting = False
        if self.record_new:
            self.commands.append(fail_workflow_command(exc))

    # --- errors -------------------------------------------------------------------------

    def _type(self) -> str:
        return self.definition.name

    def _nondeterminism(self, step: h.Step, yielded: str, reason: str | None) -> NonDeterministicReplayError:
        sequence = _number(step, self.seq)
        recorded = step.describe()
        text = (
            f"workflow {self._type()!r} is not deterministic at workflow sequence {sequence}: "
            f"history recorded {recorded} but the code yielded {yielded}"
        )
        if reason:
            text += f" ({reason})"
        error = NonDeterministicReplayError(
            text, workflow_type=self._type(), sequence=sequence, recorded=recorded, yielded=yielded
        )
        self.fatal = error
        return error


def _number(step: h.Step, last: int) -> int:
    """The workflow sequence of a step, or the next number when history did not record one."""
    return step.sequence if step.sequence is not None else last + 1
