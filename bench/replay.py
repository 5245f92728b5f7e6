"""Replay throughput: how many history events per second the workflow replayer gets through.

Builds a ~10,000-event history for one workflow (activities, timers, signals and side
effects, numbered the way the server numbers them), checks that it replays to completion,
then times several full replays and reports the median.

Usage::

    python bench/replay.py [--events 10000] [--repeat 7] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import statistics
import time
from collections.abc import Generator
from typing import Any

from durable_workflow import serializer, workflow
from durable_workflow.workflow import CompleteWorkflow, WorkflowContext

EVENTS_PER_ROUND = 6  # activity (2), signal (1), timer (2), side effect (1)
TARGET_EVENTS_PER_SECOND = 200_000


@workflow.defn(name="bench.replay")
class BenchWorkflow:
    def __init__(self) -> None:
        self.bumps = 0

    @workflow.signal("bump")
    def bump(self, amount: int) -> None:
        self.bumps += amount

    def run(self, ctx: WorkflowContext, rounds: int) -> Generator[Any, Any, Any]:
        total = 0
        for number in range(rounds):
            order = yield ctx.schedule_activity("bench.load-order", [number])
            total += order["amount"]
            yield ctx.start_timer(1)
            total += ctx.side_effect(lambda: 1)
        return {"total": total, "bumps": self.bumps}


def build_history(rounds: int) -> list[dict[str, Any]]:
    """A history as the server would record it for ``rounds`` loop iterations."""
    events: list[dict[str, Any]] = []

    def add(event_type: str, payload: dict[str, Any]) -> None:
        position = len(events) + 1
        events.append(
            {
                "id": f"01JBENCH{position:018d}",
                "sequence": position,
                "event_type": event_type,
                "payload": payload,
                "workflow_task_id": None,
                "workflow_command_id": None,
                "recorded_at": "2026-01-01T10:00:00.000000Z",
            }
        )

    add(
        "WorkflowStarted",
        {
            "workflow_type": "bench.replay",
            "workflow_run_id": "run-bench",
            "workflow_instance_id": "bench-1",
            "arguments": serializer.encode([rounds]),
        },
    )
    one = serializer.encode(1)
    seq = 0
    for number in range(rounds):
        seq += 1
        add(
            "ActivityScheduled",
            {"sequence": seq, "activity_type": "bench.load-order", "activity_execution_id": f"a{seq}"},
        )
        add(
            "ActivityCompleted",
            {
                "sequence": seq,
                "activity_type": "bench.load-order",
                "attempt_number": 1,
                "result": serializer.encode({"order": number, "amount": number % 7, "status": "paid"}),
                "payload_codec": "avro",
            },
        )
        add(
            "SignalReceived",
            {
                "signal_name": "bump",
                "arguments": {"codec": "avro", "blob": serializer.encode([1])},
                "payload_codec": "avro",
                "workflow_sequence": seq,
            },
        )
        seq += 1
        add("TimerScheduled", {"sequence": seq, "delay_seconds": 1, "timer_id": f"t{seq}"})
        add("TimerFired", {"sequence": seq, "delay_seconds": 1, "timer_id": f"t{seq}"})
        seq += 1
        add("SideEffectRecorded", {"sequence": seq, "result": one})
    return events


def replay_once(history: list[dict[str, Any]], rounds: int) -> workflow.ReplayOutcome:
    return workflow.replay(BenchWorkflow, history, [rounds], run_id="run-bench", workflow_id="bench-1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="approximate history length")
    parser.add_argument("--repeat", type=int, default=7, help="timed replays (the median is reported)")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one replay")
    options = parser.parse_args()

    rounds = max(1, (options.events - 1) // EVENTS_PER_ROUND)
    history = build_history(rounds)
    expected = sum(number % 7 for number in range(rounds)) + rounds
    outcome = replay_once(history, rounds)
    assert outcome.commands == [CompleteWorkflow({"total": expected, "bumps": rounds})], outcome.commands

    if options.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        replay_once(history, rounds)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)

    timings = []
    for _ in range(options.repeat):
        start = time.perf_counter()
        replay_once(history, rounds)
        timings.append(time.perf_counter() - start)
    median = statistics.median(timings)
    rate = len(history) / median
    verdict = "meets" if rate >= TARGET_EVENTS_PER_SECOND else "misses"
    print(
        f"replayed {len(history)} events: median {median * 1000:.1f} ms over {options.repeat} runs, "
        f"{rate:,.0f} events/s ({verdict} the {TARGET_EVENTS_PER_SECOND:,} events/s target)"
    )


if __name__ == "__main__":
    main()
