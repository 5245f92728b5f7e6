"""Throughput and latency of one-activity workflows against a local server.

Starts ``dw server start`` on a temporary SQLite file or on ``--db`` (a SQLite path or a
``postgresql://`` DSN), or uses ``--url``; runs one worker per server in this process, then:

1. starts N workflows concurrently (at most ``--concurrency`` in flight) and prints
   workflows/s and start-to-result p50/p99;
2. runs ``--sequential`` workflows one at a time and prints their p50/p99.

Usage::

    python bench/throughput.py                 # N=2000, concurrency 200, 200 sequential
    python bench/throughput.py -n 5000 --concurrency 500
    python bench/throughput.py --url http://127.0.0.1:8080
    python bench/throughput.py --db postgresql://user@127.0.0.1:5432/bench
    python bench/throughput.py --db postgresql://user@127.0.0.1:5432/bench --nodes 2
    python bench/throughput.py --loop asyncio   # the stock event loop for this process

``--loop`` picks this process's event loop (client and worker): uvloop when it is installed
(what a production worker would run), else asyncio. The servers always run their own.
``--gc`` (default ``tuned``) calls ``durable_workflow.worker.tune_process_gc()`` in this process,
as a long-running worker program would; ``default`` keeps CPython's collector settings. The
server process always tunes its own (``durable_workflow_server._gc``).

``--nodes N`` starts N servers on the one ``--db`` (each on its own port) and spreads the
workflow starts, result waits and workers over them round-robin: what N nodes behind a load
balancer see. Use a database of its own: the runs stay in it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from durable_workflow.worker import tune_process_gc


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


def _cpu_seconds(pids: list[int]) -> float:
    """CPU seconds (user + system) used so far by these processes (Linux ``/proc``), else 0."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return 0.0
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def _run(
    urls: list[str], count: int, concurrency: int, sequential: int, server_pids: list[int]
) -> None:
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(Client(url)) for url in urls]
        client = clients[0]
        per_node = max(1, concurrency // len(clients))
        workers = [
            Worker(
                c, task_queue=queue, workflows=[OneActivity], activities=[noop],
                max_concurrent_activities=per_node, max_concurrent_workflow_tasks=per_node,
            )
            for c in clients
        ]
        worker_tasks = [asyncio.create_task(w.run()) for w in workers]
        try:
            # Warm up connections and code paths.
            await asyncio.gather(*(_one(clients[i % len(clients)], queue, i) for i in range(20)))

            gate = asyncio.Semaphore(concurrency)

            async def bounded(i: int) -> float:
                async with gate:
                    return await _one(clients[i % len(clients)], queue, i)

            server_cpu = _cpu_seconds(server_pids)
            own_cpu = _cpu_seconds([os.getpid()])
            started = time.perf_counter()
            latencies = await asyncio.gather(*(bounded(i) for i in range(count)))
            elapsed = time.perf_counter() - started
            server_cpu = _cpu_seconds(server_pids) - server_cpu
            own_cpu = _cpu_seconds([os.getpid()]) - own_cpu
            print(f"concurrent: {count} workflows, concurrency {concurrency}, {len(clients)} node(s): "
                  f"{count / elapsed:,.0f} workflows/s ({elapsed:.2f} s); start-to-result "
                  f"p50 {_pct(latencies, 0.5):.1f} ms, p99 {_pct(latencies, 0.99):.1f} ms")
            if own_cpu > 0:
                where = f"server(s) {1000 * server_cpu / count:.2f} ms, " if server_pids else ""
                print(f"CPU per workflow: {where}client and worker {1000 * own_cpu / count:.2f} ms "
                      "(user + system; a steadier figure than workflows/s on a busy machine)")

            if sequential > 0:
                one_by_one = [await _one(client, queue, i) for i in range(sequential)]
                print(f"one at a time: {sequential} workflows: p50 {statistics.median(one_by_one):.1f} ms, "
                      f"p99 {_pct(one_by_one, 0.99):.1f} ms, mean {statistics.fmean(one_by_one):.1f} ms")
        finally:
            for worker in workers:
                await worker.shutdown()
            await asyncio.gather(*worker_tasks)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("-n", "--count", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--url", help="use a running server instead of starting one")
    parser.add_argument("--db", help="database of the server(s) this script starts (default: temp SQLite)")
    parser.add_argument("--nodes", type=int, default=1, help="servers to start on the one --db (default 1)")
    parser.add_argument(
        "--gc",
        choices=("tuned", "default"),
        default="tuned",
        help="this process's garbage collector: tune_process_gc() as a worker program would "
        "(default), or CPython's defaults",
    )
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop" if _has_uvloop() else "asyncio",
        help="event loop of this process (default: uvloop when installed)",
    )
    args = parser.parse_args()
    if args.gc == "tuned":
        tune_process_gc()
    if args.nodes > 1 and (args.url or not args.db):
        parser.error("--nodes needs --db (a database all nodes share) and no --url")
    procs: list[subprocess.Popen[bytes]] = []
    urls = [args.url] if args.url else []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            if not urls:
                for _ in range(args.nodes):
                    proc, url = _start_server(args.db or str(Path(tmp) / "bench.db"))
                    procs.append(proc)
                    urls.append(url)
            where = "external" if args.url else _shown_db(args.db) if args.db else "temp SQLite file"
            print(f"server {', '.join(urls)} ({where}), "
                  f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, client loop {args.loop}, "
                  f"client gc {args.gc}")
            pids = [proc.pid for proc in procs]
            _run_loop(args.loop, _run(urls, args.count, args.concurrency, args.sequential, pids))
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                proc.wait(timeout=10)


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def _run_loop(loop: str, main: Any) -> None:
    if loop == "uvloop":
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)


def _shown_db(db: str) -> str:
    """The database for the report line, without a DSN's password."""
    scheme, sep, rest = db.partition("://")
    userinfo, at, host = rest.rpartition("@")
    if sep and at and ":" in userinfo:
        return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{host}"
    return db


if __name__ == "__main__":
    main()
