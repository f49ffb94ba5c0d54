"""Run the annotation server as a separate process (tests, benchmarks, the durability check)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``python -m human_feedback.server`` on a free port; :meth:`kill` sends SIGKILL, :meth:`start` restarts.

    Example:
        >>> with ServerProcess("runs/feedback.db") as server:  # doctest: +SKIP
        ...     httpx.get(server.url + "/healthz")
    """

    def __init__(self, db: str | os.PathLike, *, host: str = "127.0.0.1", port: int | None = None,
                 log: str | os.PathLike | None = None) -> None:  # fmt: skip
        self.db, self.host = str(db), host
        self.port = port or free_port(host)
        self.log_path = Path(log) if log is not None else None
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        """Start the server and wait until it answers ``/healthz``."""
        import httpx

        if self.log_path is not None and self._log is None:
            self._log = self.log_path.open("ab")
        out = self._log or subprocess.DEVNULL
        command = [
            sys.executable,
            "-m",
            "human_feedback.server",
            "--db",
            self.db,
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        self.process = subprocess.Popen(command, stdout=out, stderr=out)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the annotation server exited with code {self.process.returncode} ({command})"
                )
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise TimeoutError(f"the annotation server did not come up on {self.url} within {timeout} s")

    def kill(self) -> None:
        """SIGKILL: no shutdown handlers, no flushing; what was committed must survive."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self._log is not None:
            self._log.close()
            self._log = None
