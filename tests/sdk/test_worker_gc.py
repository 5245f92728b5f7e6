"""The opt-in garbage-collector setting for worker programs."""

from __future__ import annotations

import gc

from durable_workflow.worker import tune_process_gc
from durable_workflow.worker._gc import PROCESS_GC_THRESHOLDS


def test_tune_process_gc_freezes_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        tune_process_gc()
        assert gc.get_threshold() == PROCESS_GC_THRESHOLDS
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def test_the_sdk_never_tunes_by_itself() -> None:
    import durable_workflow.worker  # noqa: F401  (importing must not change the collector)

    assert gc.get_threshold() != PROCESS_GC_THRESHOLDS
