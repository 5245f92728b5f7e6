"""Run histories this node read or wrote lately (docs/server-internals.md, "Reads per request").

A run's history is append-only with contiguous sequences from 1, and a stored event never
changes, so a copy of events ``1..n`` is never wrong, only possibly short. That makes the
copy safe with several server nodes over one database: an event appended elsewhere simply
is not in it, and the copy is extended only by events that follow it without a gap (a gap
drops the copy). Used for:

- the history pages of workflow tasks (a task's history ends at its ``history_cap``);
- "this run never recorded an event of these types", asked only with the
  ``last_history_sequence`` of a run row that the caller's write is fenced on (``RunVersion``):
  the copy must reach that far, and an event recorded after the fenced version would have
  moved the version and failed the write.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Collection, Sequence

from durable_workflow_server.storage import EventRow


class HistoryCache:
    """Per-run copies of history prefixes, at most ``max_events`` events in all (oldest run first
    out) and none for a run longer than ``max_run_events``."""

    def __init__(self, max_events: int = 20_000, max_run_events: int = 1_000) -> None:
        self._max_events = max_events
        self._max_run_events = max_run_events
        self._runs: OrderedDict[str, list[EventRow]] = OrderedDict()
        self._held = 0

    def add(self, run_id: str, events: Sequence[EventRow]) -> None:
        """Remember those of ``events`` that extend the run's copy without a gap."""
        held = self._runs.get(run_id)
        last = held[-1].sequence if held else 0
        mine = sorted((e for e in events if e.run_id == run_id), key=lambda e: e.sequence)
        fresh: list[EventRow] = []
        for e in mine:
            if e.sequence <= last + len(fresh):
                continue
            if e.sequence != last + len(fresh) + 1:
                break
            fresh.append(e)
        if not fresh:
            if mine and mine[-1].sequence > last:
                self.drop(run_id)  # a gap: events we never saw came in between
            return
        if last + len(fresh) > self._max_run_events:
            self.drop(run_id)
            return
        if held is None:
            held = self._runs[run_id] = []
        held.extend(fresh)
        self._held += len(fresh)
        self._runs.move_to_end(run_id)
        while self._held > self._max_events and self._runs:
            _, evicted = self._runs.popitem(last=False)
            self._held -= len(evicted)

    def page(self, run_id: str, after: int, limit: int) -> list[EventRow] | None:
        """Events ``after+1 .. after+limit`` when the copy holds them all, else None."""
        held = self._runs.get(run_id)
        if held is None or limit < 0 or len(held) < after + limit:
            return None
        return held[after : after + limit]

    def never_recorded(self, run_id: str, last: int, event_types: Collection[str]) -> bool:
        """True when the copy holds events ``1..last`` and none of them has one of ``event_types``.

        ``last`` must be the ``last_history_sequence`` of a run row the caller's write is
        fenced on; False means "unknown" (read storage), never "recorded".
        """
        held = self._runs.get(run_id)
        if held is None or len(held) < last:
            return False
        return not any(e.event_type in event_types for e in held[:last])

    def drop(self, run_id: str) -> None:
        """Forget the run's copy (it closed, or a gap appeared)."""
        held = self._runs.pop(run_id, None)
        if held is not None:
            self._held -= len(held)

    def size(self) -> int:
        """Events held in all (tests, metrics)."""
        return self._held
