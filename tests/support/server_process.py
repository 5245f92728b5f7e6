"""The real ``dw server start`` in a subprocess, for API and end-to-end tests.

Each server binds 127.0.0.1 on a free port, keeps its database under a directory of the test,
is waited for on ``/api/health`` and is stopped by its PID. ``kill()`` sends SIGKILL, so no
shutdown code runs, and ``start()`` may be called again on the same port and database.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

START_TIMEOUT_SECONDS = 15.0


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class DwServer:
    """One ``dw server start`` subprocess on a free port and a database under ``workdir``
    (or ``db``: another database, such as a ``postgresql://`` DSN several servers share)."""

    def __init__(self, workdir: Path, *extra_args: str, db: str | None = None) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.db = db if db is not None else str(workdir / "dw.db")
        self.log_path = workdir / "server.log"
        self.args = [
            sys.executable, "-m", "durable_workflow_server.cli", "server", "start",
            "--host", "127.0.0.1", "--port", str(self.port), "--db", self.db, *extra_args,
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The base URL (without ``/api``)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the process and wait until ``/api/health`` answers 200."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            # The child keeps its own copy of the descriptor; ours closes with the block.
            env = {k: v for k, v in os.environ.items() if not k.startswith("DW_")}
            env["PYTHONUNBUFFERED"] = "1"
            self.proc = subprocess.Popen(
                self.args, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir
            )
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dw server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/health", timeout=1) as reply:
                    if reply.status == 200:
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"dw server not healthy after {START_TIMEOUT_SECONDS} s:\n{self.log()}")

    def kill(self) -> None:
        """SIGKILL the process: like a crash, no shutdown code runs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> int | None:
        """SIGTERM the process (SIGKILL after 10 s); return its exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def log(self) -> str:
        """The tail of the server's output."""
        try:
            return self.log_path.read_text(errors="replace")[-8000:]
        except OSError:
            return ""
