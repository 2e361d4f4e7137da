"""A service started while NATS is unreachable says what it waits for, and a SIGTERM ends it.

Before, the connect loop swallowed SIGTERM (the handler only set an event that was awaited
after start) and a stuck service needed SIGKILL.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from stella_services.runtime.nats_server import free_port
from tests.support.history import TEST_SECRET

ROOT = Path(__file__).resolve().parents[2]


class Watched:
    """A service process whose stderr lines are collected and can be waited for."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.closed = False  # stderr reached its end: no more lines will come
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "stella_services", "serve", name],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def wait_for_line(self, text: str, timeout: float) -> str:
        with self._changed:
            found = self._changed.wait_for(
                lambda: any(text in line for line in self.lines) or self.closed,
                timeout,
            )
            hits = [line for line in self.lines if text in line]
        assert found and hits, f"no line with {text!r}; stderr:\n{''.join(self.lines[-30:])}"
        return hits[0]


@pytest.mark.parametrize("service", ["recorder", "gateway", "agent-runner"])
def test_a_service_waiting_for_nats_stops_on_sigterm(tmp_path: Path, service: str) -> None:
    closed = free_port()  # nothing listens there
    proc = Watched(
        service,
        {
            "NATS_URL": f"nats://127.0.0.1:{closed}",
            "STELLA_DATA_DIR": str(tmp_path / "data"),
            "STELLA_HISTORY_ADDR": f"127.0.0.1:{free_port()}",
            "STELLA_GATEWAY_PORT": str(free_port()),
            "CLICKHOUSE_URL": "",
            "STELLA_SECRET": TEST_SECRET,
            "STELLA_API_KEYS": "test-key-for-an-unreachable-nats",
            "STELLA_AGENT_PATH": str(ROOT / "examples"),
            "STELLA_AGENT": "demo_agents.talker:TalkerAgent",
        },
    )
    try:
        line = proc.wait_for_line("waiting for NATS at", timeout=120)
        assert f"nats://127.0.0.1:{closed}" in line  # it names what it waits for
        proc.process.send_signal(signal.SIGTERM)
        code = proc.process.wait(60)  # generous: a loaded machine; before, it never ended
        assert code == 0, "".join(proc.lines[-30:])
        proc.wait_for_line("stopped before it was ready", timeout=5)
    finally:
        if proc.process.poll() is None:
            proc.process.kill()
            proc.process.wait()
