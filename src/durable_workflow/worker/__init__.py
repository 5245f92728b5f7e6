"""Running workflow and activity code: the :class:`Worker`.

A worker registers with the server for one task queue, long-polls workflow and activity tasks,
replays workflow tasks with :mod:`durable_workflow.workflow`, runs activities (sync ones in a
thread pool) and reports the outcomes. See :class:`Worker` for its lifecycle and shutdown.
"""

from durable_workflow.worker._worker import Worker

__all__ = ["Worker"]
