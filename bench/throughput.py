"""Throughput and latency of one-activity workflows against a local server.

Starts ``dw server start`` on a temporary SQLite file (or uses ``--url``), runs one worker in
this process, then:

1. starts N workflows concurrently (at most ``--concurrency`` in flight) and prints
   workflows/s and start-to-result p50/p99;
2. runs ``--sequential`` workflows one at a time and prints their p50/p99.

Usage::

    python bench/throughput.py                 # N=2000, concurrency 200, 200 sequential
    python bench/throughput.py -n 5000 --concurrency 500
    python bench/throughput.py --url http://127.0.0.1:8080
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from durable_workflow import Client, Worker, activity, workflow


@activity.defn(name="bench.noop")
def noop(value: int) -> int:
    return value


@workflow.defn(name="bench.one-activity")
class OneActivity:
    def run(self, ctx: Any, value: int) -> Any:
        return (yield ctx.schedule_activity("bench.noop", [value]))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _start_server(db: str) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "durable_workflow_server.cli", "server", "start",
         "--host", "127.0.0.1", "--port", str(port), "--db", db],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(f"{url}/api/health", timeout=1):
                return proc, url
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("server did not start")


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def _one(client: Client, queue: str, value: int) -> float:
    started = time.perf_counter()
    handle = await client.start_workflow(
        workflow_type="bench.one-activity", workflow_id=f"bench-{uuid.uuid4().hex}",
        task_queue=queue, input=[value],
    )
    result = await handle.result(timeout=120)
    if result != value:
        raise SystemExit(f"wrong result {result!r} for {value}")
    return (time.perf_counter() - started) * 1000


async def _run(url: str, count: int, concurrency: int, sequential: int) -> None:
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    async with Client(url) as client:
        worker = Worker(
            client, task_queue=queue, workflows=[OneActivity], activities=[noop],
            max_concurrent_activities=concurrency, max_concurrent_workflow_tasks=concurrency,
        )
        worker_task = asyncio.create_task(worker.run())
        try:
            # Warm up connections and code paths.
            await asyncio.gather(*(_one(client, queue, i) for i in range(20)))

            gate = asyncio.Semaphore(concurrency)

            async def bounded(i: int) -> float:
                async with gate:
                    return await _one(client, queue, i)

            started = time.perf_counter()
            latencies = await asyncio.gather(*(bounded(i) for i in range(count)))
            elapsed = time.perf_counter() - started
            print(f"concurrent: {count} workflows, concurrency {concurrency}: "
                  f"{count / elapsed:,.0f} workflows/s ({elapsed:.2f} s); start-to-result "
                  f"p50 {_pct(latencies, 0.5):.1f} ms, p99 {_pct(latencies, 0.99):.1f} ms")

            one_by_one = [await _one(client, queue, i) for i in range(sequential)]
            print(f"one at a time: {sequential} workflows: p50 {statistics.median(one_by_one):.1f} ms, "
                  f"p99 {_pct(one_by_one, 0.99):.1f} ms, mean {statistics.fmean(one_by_one):.1f} ms")
        finally:
            await worker.shutdown()
            await worker_task


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--url", help="use a running server instead of starting one")
    parser.add_argument("--db", help="database of the server this script starts (default: temp SQLite)")
    args = parser.parse_args()
    proc = None
    url = args.url
    with tempfile.TemporaryDirectory() as tmp:
        if url is None:
            proc, url = _start_server(args.db or str(Path(tmp) / "bench.db"))
        try:
            print(f"server {url} ({'external' if args.url else args.db or 'temp SQLite file'}), "
                  f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
            asyncio.run(_run(url, args.count, args.concurrency, args.sequential))
        finally:
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=10)


if __name__ == "__main__":
    main()
