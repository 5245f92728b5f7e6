"""Determinism helpers across worker restarts and deploys, end to end.

``side_effect``, ``random``, ``uuid4``, ``uuid7`` and ``now`` return their recorded values when
a new worker (a new process in production; a new Worker here) replays the run; ``patched`` lets
open runs keep their old branch while new runs take the new one, and ``deprecate_patch`` keeps
patched runs replaying once the old branch is gone.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from e2e_lifecycle_workflows import LIFECYCLE_ACTIVITIES, SEEN, Determinism, PatchyV1, PatchyV2, PatchyV3
from e2e_support import event_types, running_worker, unique
from server_process import DwServer

from durable_workflow import Client, workflow
from durable_workflow.errors import NonDeterministicReplayError
from durable_workflow.workflow import Replayer


async def _until(client: Client, workflow_id: str, event: str) -> list[str]:
    handle = client.get_workflow_handle(workflow_id)
    for _ in range(300):
        types = event_types(await handle.history())
        if event in types:
            return types
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} never recorded {event}")


async def test_recorded_values_survive_a_worker_restart(client: Client) -> None:
    queue, key = unique("q"), unique("values")
    async with running_worker(client, queue, workflows=[Determinism], activities=LIFECYCLE_ACTIVITIES):
        handle = await client.start_workflow(
            workflow_type="lc-determinism", workflow_id=unique("det"), task_queue=queue, input=[key, 2]
        )
        await _until(client, handle.workflow_id, "TimerScheduled")
    before = SEEN[key]  # what the first worker computed, before its shutdown
    async with running_worker(client, queue, workflows=[Determinism], activities=LIFECYCLE_ACTIVITIES):
        after = await handle.result(timeout=30)  # computed again by the new worker, in replay
    assert after == before
    assert "SideEffectRecorded" in event_types(await handle.history())


async def test_patched_and_deprecate_patch_across_deploys(client: Client) -> None:
    queue = unique("q")
    acts = LIFECYCLE_ACTIVITIES
    # v1: run A reaches its (short) sleep on the old path and stays open.
    async with running_worker(client, queue, workflows=[PatchyV1], activities=acts):
        run_a = await client.start_workflow(
            workflow_type="lc-patchy", workflow_id=unique("a"), task_queue=queue, input=[3]
        )
        await _until(client, run_a.workflow_id, "TimerScheduled")
    # v2 deployed: A replays its old branch, a new run B takes the new one (and sleeps longer).
    async with running_worker(client, queue, workflows=[PatchyV2], activities=acts):
        run_b = await client.start_workflow(
            workflow_type="lc-patchy", workflow_id=unique("b"), task_queue=queue, input=[4]
        )
        assert await run_a.result(timeout=30) == "old"
        await _until(client, run_b.workflow_id, "TimerScheduled")
    # v3 deployed, the old branch removed: B (patched) replays, a new run C is on the new path.
    async with running_worker(client, queue, workflows=[PatchyV3], activities=acts):
        run_c = await client.start_workflow(
            workflow_type="lc-patchy", workflow_id=unique("c"), task_queue=queue, input=[1]
        )
        assert await run_b.result(timeout=30) == "new"
        assert await run_c.result(timeout=30) == "new"
    assert "VersionMarkerRecorded" not in event_types(await run_a.history())
    assert "VersionMarkerRecorded" in event_types(await run_b.history())
    assert "VersionMarkerRecorded" in event_types(await run_c.history())
    for run in (run_a, run_b, run_c):  # no replay trouble on the way
        assert (await run.describe()).raw["workflow_task_failure"] is None


@workflow.defn(name="lc-determinism")
class DeterminismChanged:
    """The same workflow type after an incompatible edit: another activity comes first."""

    def run(self, ctx: Any, key: str, seconds: int) -> Any:
        yield ctx.schedule_activity("lc-echo", [key])
        yield ctx.sleep(seconds)
        return None


async def test_exported_history_replays_offline_and_catches_a_breaking_change(
    client: Client, server: DwServer, tmp_path: Path
) -> None:
    queue, key = unique("q"), unique("values")
    async with running_worker(client, queue, workflows=[Determinism], activities=LIFECYCLE_ACTIVITIES):
        handle = await client.start_workflow(
            workflow_type="lc-determinism", workflow_id=unique("exp"), task_queue=queue, input=[key, 1]
        )
        result = await handle.result(timeout=30)

    cli_file = tmp_path / "cli.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DW_")}
    env["DW_URL"] = server.url  # the URL from the environment, the rest from flags
    done = subprocess.run(
        [sys.executable, "-m", "durable_workflow_server.cli", "workflow", "history", handle.workflow_id,
         "--export", str(cli_file), "--namespace", "default"],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    client_file = tmp_path / "client.json"
    count = await client.export_history(handle.workflow_id, str(client_file))

    for path in (cli_file, client_file):
        exported = json.loads(path.read_text())
        assert len(exported["events"]) == count and exported["run_id"] == handle.run_id
        outcome = Replayer(workflows=[Determinism]).replay(exported)
        assert outcome.completed and outcome.result == result
        with pytest.raises(NonDeterministicReplayError) as caught:
            Replayer(workflows=[DeterminismChanged]).replay(exported)
        assert caught.value.sequence == 1  # history has the side effect the new code dropped

    # The server's own bundle (control-plane §6.10) replays as it is, and is checksummed.
    bundle = await client.api.call("GET", f"/workflows/{handle.workflow_id}/history/export")
    assert bundle["schema"] == "durable-workflow.v2.history-export" and bundle["history_complete"] is True
    assert "control_plane" not in bundle
    integrity = bundle.pop("integrity")
    canonical = json.dumps(bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert integrity["checksum"] == hashlib.sha256(canonical.encode()).hexdigest()
    assert Replayer(workflows=[Determinism]).replay(bundle).result == result
    with pytest.raises(NonDeterministicReplayError):
        Replayer(workflows=[DeterminismChanged]).replay(bundle)

    missing = subprocess.run(
        [sys.executable, "-m", "durable_workflow_server.cli", "workflow", "history", "no-such-id",
         "--url", server.url],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode == 1 and "instance_not_found" in missing.stderr
