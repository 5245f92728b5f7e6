"""An opt-in garbage-collector setting for long-running worker processes.

Measured in ``bench/throughput.py``: with CPython's default thresholds a busy worker process
(client and worker on one event loop) spent about 16 % of its time in the cyclic collector,
mostly in full collections that walk every object of the imported libraries. Almost all of a
worker's garbage is freed by reference counting at once; the collector is only there for the
rare cycle. This is process-wide, so the SDK never does it by itself: call it once in the
worker program's ``main``, after the imports and before the loop starts.
"""

from __future__ import annotations

import gc

__all__ = ["PROCESS_GC_THRESHOLDS", "tune_process_gc"]

#: ``gc.set_threshold`` arguments: a young collection after 50,000 net allocations, an older
#: one every 20 of those, a full one every 20 of those.
PROCESS_GC_THRESHOLDS = (50_000, 20, 20)


def tune_process_gc() -> None:
    """Freeze the objects that exist now (``gc.freeze``) and collect far less often.

    Process-wide; for a program that runs workers for a long time. Objects frozen here are
    never scanned again (module-level state lives as long as the process anyway).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*PROCESS_GC_THRESHOLDS)
