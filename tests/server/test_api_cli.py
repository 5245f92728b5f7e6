"""The ``dw`` command: first log line, clean stop on SIGTERM, ``migrate``, backend refusal."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from api_support import DwServer


def _dw(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "durable_workflow_server.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
        env={"PATH": "", "PYTHONUNBUFFERED": "1"},
    )


def test_first_log_line_says_where_and_that_auth_is_off(dw_server: Callable[..., DwServer]) -> None:
    server = dw_server()
    first = server.log().splitlines()[0]
    assert f"listening on http://127.0.0.1:{server.port}" in first
    assert "auth OFF" in first
    assert server.db in first


def test_sigterm_stops_cleanly_and_closes_storage(dw_server: Callable[..., DwServer]) -> None:
    server = dw_server()
    assert server.stop() == 0
    assert "storage closed" in server.log()


def test_token_mode_names_its_roles_not_its_tokens(dw_server: Callable[..., DwServer]) -> None:
    server = dw_server("--auth", "token", "--worker-token", "s3cret-w")
    first = server.log().splitlines()[0]
    assert "auth token: worker" in first
    assert "s3cret-w" not in server.log()


def test_migrate_creates_the_database_and_exits(tmp_path: Path) -> None:
    done = _dw("server", "migrate", "--db", "fresh.db", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "fresh.db").exists()
    again = _dw("server", "migrate", "--db", "fresh.db", cwd=tmp_path)
    assert again.returncode == 0, again.stderr


def test_unreachable_postgres_is_reported_clearly(tmp_path: Path) -> None:
    done = _dw("server", "migrate", "--db", "postgresql://dw:pw@127.0.0.1:1/dw", cwd=tmp_path)
    assert done.returncode == 1
    assert "cannot open the PostgreSQL database" in done.stderr
    assert "pw@" not in done.stderr  # the password stays out of the log


def test_bad_flag_values_exit_2(tmp_path: Path) -> None:
    done = _dw("server", "start", "--port", "seventy", cwd=tmp_path)
    assert done.returncode == 2
    assert "--port/DW_PORT" in done.stderr


def test_ctrl_c_stops_cleanly_too(dw_server: Callable[..., DwServer]) -> None:
    server = dw_server()
    assert server.proc is not None
    server.proc.send_signal(signal.SIGINT)
    assert server.proc.wait(timeout=15) == 0
    log = server.log()
    assert "storage closed" in log
    assert "Traceback" not in log
