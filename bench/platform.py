"""Real processes for benchmarks: a private nats-server and STELLA services, on loopback."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from stella_services.runtime.lifecycle import READY_LINE
from stella_services.runtime.nats_server import LocalNats, free_port


@dataclass
class BenchPlatform:
    root: Path
    nats_url: str
    env: dict[str, str]
    nats_pids: list[int]

    def start(self, service: str, extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-m", "stella_services", "serve", service],
            env={**os.environ, **self.env, **(extra_env or {})},
            stdout=subprocess.PIPE,
            stderr=open(self.root / f"{service}.err.log", "a"),
            text=True,
        )
        ready = threading.Event()

        def watch() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                if line.startswith(READY_LINE):
                    ready.set()

        threading.Thread(target=watch, daemon=True).start()
        deadline = time.monotonic() + 120
        while not ready.wait(0.05):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{service} did not start; see {self.root}/{service}.err.log")
        self._children.append(process)
        return process

    def __post_init__(self) -> None:
        self._children: list[subprocess.Popen[str]] = []

    def stop_all(self) -> None:
        for p in reversed(self._children):
            if p.poll() is None:
                p.terminate()
        for p in self._children:
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()


@contextmanager
def bench_platform() -> Iterator[BenchPlatform]:
    with tempfile.TemporaryDirectory(prefix="stella-bench-") as tmp:
        root = Path(tmp)
        nats = LocalNats(store_dir=root / "nats", log_file=root / "nats.log")
        url = nats.start()
        env = {
            "NATS_URL": url,
            "STELLA_DATA_DIR": str(root / "data"),
            "STELLA_HISTORY_ADDR": f"127.0.0.1:{free_port()}",
            "CLICKHOUSE_URL": "",
            "STELLA_SECRET": secrets.token_urlsafe(48),
        }
        assert nats.process is not None
        platform = BenchPlatform(root=root, nats_url=url, env=env, nats_pids=[nats.process.pid])
        try:
            yield platform
        finally:
            platform.stop_all()
            nats.stop()
