"""Running workflow and activity code: the :class:`Worker`.

A worker registers with the server for one task queue, long-polls workflow and activity tasks,
replays workflow tasks with :mod:`durable_workflow.workflow`, runs activities (sync ones in a
thread pool) and reports the outcomes. See :class:`Worker` for its lifecycle and shutdown.
:func:`tune_process_gc` is an opt-in garbage-collector setting for long-running worker programs.
"""

from durable_workflow.worker._gc import tune_process_gc
from durable_workflow.worker._worker import Worker

__all__ = ["Worker", "tune_process_gc"]
