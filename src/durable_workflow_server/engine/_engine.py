"""The :class:`Engine` facade the HTTP layer calls (see docs/server-internals.md).

The methods live in two mixins, one per plane (``_facade_worker``, ``_facade_control``);
this class adds construction and the lifecycle.
"""

from __future__ import annotations

import asyncio
import contextlib

from durable_workflow_server.engine import _timers
from durable_workflow_server.engine._clock import Clock, SystemClock
from durable_workflow_server.engine._core import Core
from durable_workflow_server.engine._errors import EngineError
from durable_workflow_server.engine._facade_base import storage_errors
from durable_workflow_server.engine._facade_control import ControlPlane
from durable_workflow_server.engine._facade_eager import EagerTasks
from durable_workflow_server.engine._facade_messages import MessagesPlane
from durable_workflow_server.engine._facade_search import SearchAttributesPlane
from durable_workflow_server.engine._facade_worker import WorkerPlane
from durable_workflow_server.engine._settings import EngineSettings
from durable_workflow_server.storage import Storage, StorageError, Wake


class Engine(WorkerPlane, ControlPlane, MessagesPlane, SearchAttributesPlane):
    """Domain rules over a storage backend; no HTTP and no SQL.

    Args:
        storage: the backend (opened by :meth:`start` if needed).
        settings: tunables; defaults when omitted.
        clock: time source; tests pass a :class:`ManualClock`.
    """

    def __init__(
        self, storage: Storage, settings: EngineSettings | None = None, *, clock: Clock | None = None
    ) -> None:
        self._core = Core(
            storage=storage, settings=settings or EngineSettings(), clock=clock or SystemClock()
        )
        self._loop_task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._eager = EagerTasks(self._core)

    @property
    def eager(self) -> EagerTasks:
        """Eager tasks, our extension: reports that hand back the next task (see the docs)."""
        return self._eager

    @property
    def storage(self) -> Storage:
        """The storage backend."""
        return self._core.storage

    @property
    def settings(self) -> EngineSettings:
        """The engine settings."""
        return self._core.settings

    # --- lifecycle ------------------------------------------------------------------------

    def _on_wake(self, wake: Wake) -> None:
        self._core.recent.on_wake(wake)
        self._core.notifier.notify(wake.key, wake.detail)

    async def start(self, *, background: bool = True) -> None:
        """Open storage, hook wake-ups, start the timer loop; idempotent.

        Args:
            background: False leaves the timer loop off (tests then call :meth:`fire_due_timers`).
        """
        await self._core.storage.open()
        self._core.storage.set_wake_listener(self._on_wake)
        if background and self._loop_task is None:
            self._stopping = asyncio.Event()
            self._loop_task = asyncio.create_task(
                _timers.run_loop(self._core, self._stopping), name="dw-engine-timers"
            )

    async def stop(self) -> None:
        """Stop the loop and close storage (pending writes are committed first); idempotent."""
        task, self._loop_task = self._loop_task, None
        if task is not None:
            self._stopping.set()
            self._core.notifier.notify(("timers",))
            try:
                await asyncio.wait_for(task, 5)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._core.storage.set_wake_listener(None)
        await self._core.storage.close()

    @storage_errors
    async def fire_due_timers(self) -> int:
        """Fire every due timer now (what the background loop does); returns how many fired."""
        return await _timers.fire_due(self._core)

    async def health(self) -> dict[str, str]:
        """``{"database": "ok"}``, or raise ``unavailable``."""
        try:
            await self._core.storage.ping()
        except StorageError as exc:
            raise EngineError("unavailable", "storage_unavailable", str(exc)) from exc
        return {"database": "ok"}

    async def namespace_exists(self, ns: str) -> bool:
        """Whether the namespace is known."""
        try:
            return await self._core.storage.namespace_exists(ns)
        except StorageError as exc:
            raise EngineError("unavailable", "storage_unavailable", str(exc)) from exc
