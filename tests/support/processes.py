"""Start STELLA services as real processes for tests, and stop them by PID."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from stella_services.runtime.lifecycle import READY_LINE


@dataclass
class ServiceProcess:
    name: str
    env: dict[str, str]
    log_dir: Path
    process: subprocess.Popen[str] | None = None
    lines: list[str] = field(default_factory=list)
    _ready: threading.Event = field(default_factory=threading.Event)

    def start(self, timeout: float = 60.0) -> ServiceProcess:
        self._ready.clear()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        err = open(self.log_dir / f"{self.name}.err.log", "a")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stella_services", "serve", self.name],
            env={**os.environ, **self.env},
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            bufsize=1,
        )
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not become ready: {self.stderr_tail()}")
        return self

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.lines.append(line)
            if line.startswith(READY_LINE):
                self._ready.set()

    def stderr_tail(self, n: int = 30) -> str:
        path = self.log_dir / f"{self.name}.err.log"
        return "\n".join(path.read_text().splitlines()[-n:]) if path.exists() else ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: the crash case, no clean-up runs."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode
