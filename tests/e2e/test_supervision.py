"""`stella up` supervises: a SIGKILLed child (nats-server included) comes back on its own; a
child that keeps crashing stops the platform with a message naming it, leaving nothing behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import httpx

from stella_services.runtime.nats_server import free_port, port_in_use
from tests.support.up import STELLA, RunningUp

UP_TIMEOUT_S = 180.0  # a loaded 2-core machine; each wait ends as soon as its event is seen


def start(tmp_path: Path) -> tuple[RunningUp, Path]:
    """`stella up` with the recorder and the gateway only (no speech models needed)."""
    env = {
        **os.environ,
        "NATS_URL": f"nats://127.0.0.1:{free_port()}",  # nothing answers: up starts nats-server
        "STELLA_DATA_DIR": str(tmp_path / "stella"),
        "STELLA_HISTORY_ADDR": f"127.0.0.1:{free_port()}",
        "STELLA_GATEWAY_PORT": str(free_port()),
        "CLICKHOUSE_URL": "",
        "COLUMNS": "200",
    }
    err = tmp_path / "up.err"
    process = subprocess.Popen(
        [*STELLA, "up", "-s", "recorder", "-s", "gateway"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=open(err, "w"),
        text=True,
    )
    assert process.stdout is not None
    for line in process.stdout:  # ends at STELLA-UP, or at EOF if it exited
        if line.startswith("STELLA-UP"):
            break
    assert process.poll() is None, err.read_text()
    return RunningUp(process, err.read_text()), err


def wait_for_text(
    err: Path, pattern: str, after: int, timeout: float = UP_TIMEOUT_S
) -> re.Match[str]:
    """The first match of ``pattern`` in ``stella up``'s stderr past offset ``after``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.compile(pattern).search(err.read_text(), after)
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"no {pattern!r} in {timeout:g} s:\n{err.read_text()}")


def pid_of(banner: str, name: str) -> int:
    found = re.search(rf"{name} (?:ready|started at \S+) \(pid (\d+)\)", banner)
    assert found is not None, banner
    return int(found.group(1))


def healthy(url: str, timeout: float = UP_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer in {timeout:g} s")


def test_killed_children_are_restarted_and_serve_again(tmp_path: Path) -> None:
    up, err = start(tmp_path)
    try:
        url, _key = up.playground()
        offset = len(err.read_text())
        for name in ("gateway", "recorder", "nats-server"):
            os.kill(pid_of(up.banner, name), signal.SIGKILL)
            restarted = wait_for_text(err, rf"{name} restarted \(pid (\d+)\)", offset)
            offset = restarted.end()
            assert "exited with" in err.read_text()  # the crash is logged, not silent
            healthy(url)  # the gateway answers where the printed link points
        assert up.process.poll() is None
    finally:
        assert up.stop() == 0


def test_a_child_that_keeps_crashing_stops_the_platform(tmp_path: Path) -> None:
    up, err = start(tmp_path)
    url, _key = up.playground()
    port = int(url.rsplit(":", 1)[1])
    pid, offset = pid_of(up.banner, "gateway"), 0
    try:
        while up.process.poll() is None:
            os.kill(pid, signal.SIGKILL)
            found = wait_for_text(
                err, r"gateway restarted \(pid (\d+)\)|Stopping the platform", offset
            )
            offset = found.end()
            if found.group(1) is None:
                break
            pid = int(found.group(1))
        assert up.process.wait(60) == 1
        text = err.read_text()
        assert re.search(r"gateway crashed 6 times within 60 s .*Stopping the platform", text), text
        assert not port_in_use("127.0.0.1", port)  # nothing left serving
    finally:
        if up.process.poll() is None:
            up.process.kill()
            up.process.wait()
