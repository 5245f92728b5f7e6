"""Engine tunables, built once at the edge (``app.py``) and passed in."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EngineSettings:
    """Durations are seconds.

    Attributes:
        workflow_task_lease_seconds: how long a polled workflow task stays leased without a
            heartbeat; after that it is offered again with attempt + 1.
        activity_lease_seconds: the lease reported to activity workers (renewed by heartbeats);
            activities are ended by their four timeouts, not by this lease.
        worker_heartbeat_interval_seconds / worker_stale_after_seconds: advertised to workers.
        poll_timeout_default / poll_timeout_max: workflow/activity long-poll hold.
        poll_recheck_seconds: longest sleep of a poll between storage probes (delayed tasks,
            expired leases, wake-ups from other server nodes).
        history_page_size_default / history_page_size_max: workflow-task history pages.
        workflow_task_backoff_base / workflow_task_backoff_max: retry delay of a failed
            workflow task (doubles per consecutive failure).
        timer_batch: due timers handled per pass of the background loop.
        timer_poll_seconds: longest sleep of the background loop.
        history_wait_seconds: hold of ``run_history(wait_new_event=True)``.
        worker_cache_seconds: how long this node trusts a worker registration it read for
            eager leases and poll checks (0: always read); changes made through this node
            are seen at once, changes made through another node within this bound.
    """

    workflow_task_lease_seconds: float = 60.0
    activity_lease_seconds: float = 300.0
    worker_heartbeat_interval_seconds: int = 20
    worker_stale_after_seconds: int = 60
    poll_timeout_default: float = 30.0
    poll_timeout_max: float = 60.0
    poll_recheck_seconds: float = 1.0
    history_page_size_default: int = 500
    history_page_size_max: int = 1000
    workflow_task_backoff_base: float = 1.0
    workflow_task_backoff_max: float = 60.0
    timer_batch: int = 200
    timer_poll_seconds: float = 1.0
    history_wait_seconds: float = 30.0
    worker_cache_seconds: float = 2.0
