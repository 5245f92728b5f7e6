"""The published upstream Python SDK 2.12.0 works against our server, unmodified.

It cannot share our virtualenv (both packages import as ``durable_workflow``), so ``.ci/run``
installs it into a virtualenv of its own and names that interpreter in
``DW_TEST_UPSTREAM_PYTHON``; the scenario runs there as a subprocess against a real server.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from server_process import DwServer

UPSTREAM_PYTHON = os.environ.get("DW_TEST_UPSTREAM_PYTHON")

pytestmark = pytest.mark.skipif(
    not UPSTREAM_PYTHON,
    reason="needs DW_TEST_UPSTREAM_PYTHON: an interpreter with durable-workflow==2.12.0 (.ci/run sets it)",
)


def test_upstream_212_worker_and_client_run_a_workflow(tmp_path: Path) -> None:
    server = DwServer(tmp_path / "server")
    server.start()
    try:
        done = subprocess.run(
            [str(UPSTREAM_PYTHON), str(Path(__file__).with_name("upstream_212_scenario.py")), server.url],
            capture_output=True, text=True, timeout=120, cwd=tmp_path,
        )
    finally:
        server.stop()
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}\n--- server log ---\n{server.log()}"
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["query"] == {"approved_by": None}
    assert seen["result"] == {"greeting": "hello, Ada", "approved_by": "ops"}
