"""The server process's garbage-collector settings."""

from __future__ import annotations

import gc

from durable_workflow_server._gc import THRESHOLDS, tune_gc


def test_tune_gc_freezes_what_exists_and_raises_the_thresholds() -> None:
    before = gc.get_threshold()
    try:
        tune_gc()
        assert gc.get_threshold() == THRESHOLDS
        assert gc.get_freeze_count() > 0
        assert THRESHOLDS[0] > before[0]
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
