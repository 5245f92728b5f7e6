"""The exception that delivers a cancel request to workflow code.

``handle.cancel()`` does not stop a run: the server records ``CancelRequested`` and wakes the
workflow, and the replayer raises :class:`WorkflowCancellationRequested` at the ``yield`` the
code is waiting on (an activity, a timer, a child, a wait or a parallel group). The code may
catch it, run compensations (schedule activities, sleep...) and then return or re-raise;
either way the server closes the run as ``cancelled``. The replayer raises it at the same
``yield`` on every replay, so the cleanup is deterministic.
"""

from __future__ import annotations


class WorkflowCancellationRequested(BaseException):
    """The run was asked to cancel; raised at the ``yield`` the workflow code waits on.

    It derives from ``BaseException``, not ``Exception``, on purpose: a broad
    ``except Exception`` around a step (common for retry or logging code) must not swallow a
    cancellation by accident. Catch it by name to clean up::

        try:
            yield ctx.schedule_activity("ship", [order])
        except WorkflowCancellationRequested:
            yield ctx.schedule_activity("refund", [order])
            raise

    Args:
        message: why, for logs (the cancel request's reason when known).
    """

    def __init__(self, message: str = "the workflow run was asked to cancel") -> None:
        super().__init__(message)
        self.message = message
