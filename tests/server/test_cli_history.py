"""``dw workflow history``: flags, their ``DW_*`` fallbacks and refusals (exit 1, no traceback)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from server_process import free_port

from durable_workflow_server.cli import build_parser, main


def test_help_names_the_env_fallbacks(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["workflow", "history", "--help"])
    text = capsys.readouterr().out
    for env in ("DW_URL", "DW_NAMESPACE", "DW_TOKEN"):
        assert env in text


def test_unreachable_server_is_exit_1(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "h.json"
    code = main(
        ["workflow", "history", "wf-1", "--export", str(target)],
        environ={"DW_URL": f"http://127.0.0.1:{free_port()}"},
    )
    assert code == 1 and "cannot reach" in capsys.readouterr().err
    assert not target.exists()


def test_export_against_a_live_server(
    server_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import urllib.request

    wid = f"cli-export-{tmp_path.name}"[:100]
    request = urllib.request.Request(
        f"{server_url}/api/workflows",
        data=json.dumps({"workflow_type": "t", "workflow_id": wid}).encode(),
        headers={"Content-Type": "application/json", "X-Durable-Workflow-Control-Plane-Version": "2"},
        method="POST",
    )
    with urllib.request.urlopen(request) as reply:
        assert reply.status == 201
    target = tmp_path / "h.json"
    assert main(["workflow", "history", wid, "--export", str(target), "--url", server_url], environ={}) == 0
    assert "wrote" in capsys.readouterr().out
    exported = json.loads(target.read_text())
    assert exported["workflow_id"] == wid and exported["events"][0]["event_type"] == "WorkflowStarted"
    assert main(["workflow", "history", wid, "--url", server_url], environ={}) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == exported["run_id"]
