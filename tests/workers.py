"""Real faust workers as subprocesses (`ocop-trace worker`), for the pipeline tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ocop_trace.broker import _die_with_parent
from tests.helpers import free_port

ROOT = Path(__file__).resolve().parent.parent


class Worker:
    def __init__(self, bootstrap: str, prefix: str, data_dir: Path, log: Path, **env):
        self.port = free_port()
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.env = dict(os.environ, OCOP_BOOTSTRAP=bootstrap, OCOP_TOPIC_PREFIX=prefix, OCOP_DATA_DIR=str(data_dir),
                        OCOP_WORKER_WEB_PORT=str(self.port), PYTHONUNBUFFERED="1",
                        **{k: str(v) for k, v in env.items()})
        self.proc: subprocess.Popen | None = None
        self._log_start = 0  # where this run's lines begin in the (appended) log

    def start(self) -> "Worker":
        self._log_start = self.log.stat().st_size if self.log.exists() else 0
        self.proc = subprocess.Popen([sys.executable, "-m", "ocop_trace.cli", "worker", "--loglevel", "info"],
                                     cwd=ROOT, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT,
                                     start_new_session=True, preexec_fn=_die_with_parent())  # no orphans if pytest dies
        return self

    def wait_ready(self, timeout: float = 60) -> None:
        """Ready = this run's log says the worker is ready and its /readyz answers 200 (partitions assigned, tables
        recovered)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}: {self.tail()}")
            if b"Worker]: Ready" in self.log.read_bytes()[self._log_start:]:
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz", timeout=1)
                    return
                except OSError:  # connection refused, or HTTPError 503: not ready yet
                    pass
            time.sleep(0.2)
        raise AssertionError(f"worker not ready within {timeout}s: {self.tail()}")

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no final commit."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)

    def tail(self, n: int = 3000) -> str:
        return self.log.read_bytes()[-n:].decode("utf-8", "replace")
