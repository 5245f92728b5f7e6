"""``Worker``: runs workflow and activity code for one task queue until told to stop.

Lifecycle of :meth:`Worker.run`:

1. register (retrying while the server is unreachable);
2. poll workflow tasks and activity tasks concurrently, each kind bounded by its slots, and
   heartbeat the registration;
3. on :meth:`Worker.shutdown`: stop polling (cancelling long polls in flight), let tasks in
   hand finish for up to the grace period, cancel the rest, deregister, release the pool.

As a program, ``asyncio.run(main())`` with ``await worker.run_until_signal()`` inside turns
SIGINT and SIGTERM into that graceful shutdown.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from durable_workflow.client import Client
from durable_workflow.worker._activity_tasks import ActivityTaskPoller
from durable_workflow.worker._polling import TaskPoller
from durable_workflow.worker._query_tasks import QueryTaskPoller
from durable_workflow.worker._registration import (
    Registration,
    new_worker_id,
    resolve_activities,
    resolve_workflows,
)
from durable_workflow.worker._workflow_tasks import WorkflowTaskPoller

__all__ = ["Worker"]

logger = logging.getLogger("durable_workflow.worker")

#: Poll loops per task kind. More than one keeps a slot from idling while one poll's answer
#: is in transit; more than a few only adds held connections on the server.
POLLERS_PER_KIND = 4
#: A big worker gets one more poll loop per this many slots, up to MAX_POLLERS_PER_KIND: each
#: loop leases at most one task per round trip (5-15 ms under load), so 4 loops cap a kind at
#: a few hundred tasks/s however many slots are free.
SLOTS_PER_EXTRA_POLLER = 25
MAX_POLLERS_PER_KIND = 16
#: Seconds in-flight tasks get to finish when shutdown names no grace period.
DEFAULT_GRACE_SECONDS = 30.0


def pollers_for(max_concurrent: int) -> int:
    """Poll loops for a task kind with ``max_concurrent`` slots."""
    return max(POLLERS_PER_KIND, min(MAX_POLLERS_PER_KIND, max_concurrent // SLOTS_PER_EXTRA_POLLER))


class Worker:
    """Runs registered workflows and activities for one task queue.

    Args:
        client: the connection; the worker shares its transport and namespace.
        task_queue: the queue to poll.
        workflows: ``@workflow.defn`` classes this worker replays.
        activities: ``@activity.defn`` functions (sync or async) this worker runs.
        max_concurrent_activities: activity tasks handled at once.
        max_concurrent_workflow_tasks: workflow tasks handled at once.
        worker_id: a stable id; default ``py-worker-<8 hex>``, new per worker.
        build_id: the build this worker runs; the server routes pinned runs by it.
        poll_timeout_seconds: how long the server may hold one poll.
        activity_executor: the pool for sync activities; default a thread pool with
            ``max_concurrent_activities`` threads, owned and shut down by the worker.

    Raises:
        ValueError: no workflows and no activities, or a limit below 1.
        errors.WorkflowDefinitionError: an entry is not decorated, or two share a name.
    """

    def __init__(
        self,
        client: Client,
        *,
        task_queue: str,
        workflows: Sequence[type] = (),
        activities: Sequence[Callable[..., Any]] = (),
        max_concurrent_activities: int = 100,
        max_concurrent_workflow_tasks: int = 10,
        worker_id: str | None = None,
        build_id: str | None = None,
        poll_timeout_seconds: float = 30,
        activity_executor: concurrent.futures.Executor | None = None,
    ) -> None:
        if max_concurrent_activities < 1 or max_concurrent_workflow_tasks < 1:
            raise ValueError("max_concurrent_activities and max_concurrent_workflow_tasks must be >= 1")
        if not 0 <= poll_timeout_seconds <= 60:
            raise ValueError("poll_timeout_seconds must be between 0 and 60")
        self._workflows = resolve_workflows(workflows)
        self._activities = resolve_activities(activities)
        if not self._workflows and not self._activities:
            raise ValueError("a worker needs at least one workflow or activity")
        self._client = client
        self._task_queue = task_queue
        self._worker_id = worker_id or new_worker_id()
        self._build_id = build_id
        self._max_activities = max_concurrent_activities
        self._max_workflow_tasks = max_concurrent_workflow_tasks
        self._poll_timeout = poll_timeout_seconds
        self._executor = activity_executor
        self._owns_executor = activity_executor is None

        self._stop = asyncio.Event()
        self._registered = asyncio.Event()
        self._done = asyncio.Event()
        self._started = False
        self._grace = DEFAULT_GRACE_SECONDS
        self._pollers: list[TaskPoller] = []
        self._run_task: asyncio.Task[None] | None = None
        self._registration = Registration(
            client.api,
            worker_id=self._worker_id,
            task_queue=task_queue,
            build_id=build_id,
            workflow_types=sorted(self._workflows),
            activity_types=sorted(self._activities),
            max_concurrent_workflow_tasks=max_concurrent_workflow_tasks,
            max_concurrent_activity_tasks=max_concurrent_activities,
            task_slots=self._task_slots,
        )

    @property
    def worker_id(self) -> str:
        """This worker's id."""
        return self._worker_id

    @property
    def task_queue(self) -> str:
        """The queue this worker polls."""
        return self._task_queue

    @property
    def is_running(self) -> bool:
        """True from the start of :meth:`run` until it returns."""
        return self._started and not self._done.is_set()

    async def run(self) -> None:
        """Register, then handle tasks until :meth:`shutdown`; returns once drained.

        Raises:
            RuntimeError: the worker was already started.
            errors.ServerError: the server refused the registration (401, 403, 409, 422).
        """
        if self._started:
            raise RuntimeError("a Worker can run only once")
        self._started = True
        heartbeat: asyncio.Task[None] | None = None
        try:
            if not await self._registration.register_until_done(self._stop):
                return
            logger.info(
                "worker %s polling queue %r (%d workflow types, %d activity types)",
                self._worker_id,
                self._task_queue,
                len(self._workflows),
                len(self._activities),
            )
            self._pollers = self._make_pollers()
            for poller in self._pollers:
                poller.start()
                if isinstance(poller, WorkflowTaskPoller):  # eager starts from this client
                    poller.accepted_types = frozenset(self._workflows)
                    self._client.eager_starts.add(poller)
            self._registered.set()  # registered and polling: `async with worker` returns now
            heartbeat = asyncio.create_task(
                self._registration.heartbeat_forever(), name="dw-worker-heartbeat"
            )
            await self._stop.wait()
            await self._drain(self._grace)
        finally:
            await self._close(heartbeat)

    async def shutdown(self, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
        """Stop polling, let tasks in hand finish for up to ``grace_seconds``, deregister.

        Returns once :meth:`run` has finished; safe to call more than once, or before
        :meth:`run` (the worker then never starts).

        Args:
            grace_seconds: how long in-flight tasks may take before they are cancelled.
        """
        self._grace = max(0.0, grace_seconds)
        self._stop.set()
        if self._started:
            await self._done.wait()

    async def run_until_signal(self, grace_seconds: float = DEFAULT_GRACE_SECONDS) -> None:
        """Run until SIGINT or SIGTERM, then shut down gracefully.

        For a worker process: ``asyncio.run(main())`` where ``main`` builds the client and
        the worker and awaits this.

        Args:
            grace_seconds: the shutdown grace period.
        """
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []

        def request_stop() -> None:
            logger.info("worker %s: signal received, shutting down", self._worker_id)
            self._grace = max(0.0, grace_seconds)
            self._stop.set()

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, request_stop)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):
                pass  # not the main thread, or a platform without loop signal handlers
        try:
            await self.run()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    async def __aenter__(self) -> Worker:
        """Start :meth:`run` in the background and return once registered."""
        self._run_task = asyncio.create_task(self.run(), name=f"dw-worker-{self._worker_id}")
        registered = asyncio.create_task(self._registered.wait())
        await asyncio.wait({self._run_task, registered}, return_when=asyncio.FIRST_COMPLETED)
        if not registered.done():
            registered.cancel()
            self._run_task.result()  # surface the registration error
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.shutdown(self._grace)
        if self._run_task is not None:
            await self._run_task

    # --- internals --------------------------------------------------------------------------

    def _make_pollers(self) -> list[TaskPoller]:
        common: dict[str, Any] = {
            "api": self._client.api,
            "worker_id": self._worker_id,
            "task_queue": self._task_queue,
            "build_id": self._build_id,
            "poll_timeout_seconds": self._poll_timeout,
            "reregister": self._registration.reregister,
        }
        pollers: list[TaskPoller] = []
        # An empty supported-types list means "every type" to the server, so a kind with
        # nothing registered is not polled at all.
        if self._workflows:
            pollers.append(
                WorkflowTaskPoller(
                    workflows=self._workflows,
                    max_concurrent=self._max_workflow_tasks,
                    pollers=pollers_for(self._max_workflow_tasks),
                    **common,
                )
            )
            pollers.append(
                QueryTaskPoller(
                    workflows=self._workflows,
                    max_concurrent=self._max_workflow_tasks,
                    pollers=1,
                    **common,
                )
            )
        if self._activities:
            pollers.append(
                ActivityTaskPoller(
                    activities=self._activities,
                    executor=self._get_executor,
                    max_concurrent=self._max_activities,
                    pollers=pollers_for(self._max_activities),
                    **common,
                )
            )
        workflow = next((p for p in pollers if isinstance(p, WorkflowTaskPoller)), None)
        activity = next((p for p in pollers if isinstance(p, ActivityTaskPoller)), None)
        if workflow is not None and activity is not None:  # eager tasks go to the other kind
            workflow.eager_peer, activity.eager_peer = activity, workflow
        return pollers

    def _get_executor(self) -> concurrent.futures.Executor:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self._max_activities, thread_name_prefix=f"dw-activity-{self._worker_id}"
            )
        return self._executor

    def _task_slots(self) -> dict[str, int]:
        slots = {"workflow_available": self._max_workflow_tasks, "activity_available": self._max_activities}
        for poller in self._pollers:
            slots[f"{poller.kind}_available"] = poller.free_slots
        return slots

    async def _drain(self, grace_seconds: float) -> None:
        for poller in self._pollers:
            self._client.eager_starts.remove(poller)
        await asyncio.gather(*(p.stop_polling() for p in self._pollers))
        await asyncio.gather(*(p.drain(grace_seconds) for p in self._pollers))

    async def _close(self, heartbeat: asyncio.Task[None] | None) -> None:
        try:
            # Reached also when run() itself was cancelled: still stop cleanly, without grace.
            await self._drain(0.0)
            if heartbeat is not None:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
            if self._registered.is_set():
                try:
                    await self._registration.deregister()
                except Exception as exc:
                    logger.warning("worker %s: deregistration failed: %s", self._worker_id, exc)
            if self._owns_executor and self._executor is not None:
                # Threads still running an abandoned sync activity cannot be interrupted; do not
                # wait for them here.
                self._executor.shutdown(wait=False, cancel_futures=True)
        finally:
            self._done.set()
