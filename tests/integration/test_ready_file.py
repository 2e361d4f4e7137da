"""STELLA_READY_FILE: what container health checks and readiness probes look at.

Written once a service serves, removed as soon as it is told to stop; a stale file left by
an earlier run of the same container never counts as ready.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.support.processes import ServiceProcess

ROOT = Path(__file__).resolve().parents[2]


def test_a_service_writes_its_ready_file_and_removes_it_on_sigterm(
    nats_url: str, tmp_path: Path, start_service: Callable[[str, dict[str, str]], ServiceProcess]
) -> None:
    ready = tmp_path / "ready"
    ready.write_text("left by a previous run\n")
    proc = start_service(
        "tool-executor",
        {
            "NATS_URL": nats_url,
            "STELLA_TOOL_MODULES": "examples.demo_agents.tool_lab",
            "STELLA_AGENT_PATH": str(ROOT),
            "STELLA_INSTANCE": "probe-1",
            "STELLA_READY_FILE": str(ready),
        },
    )
    assert ready.read_text() == "tool-executor probe-1\n"
    assert proc.stop() == 0
    assert not ready.exists()


def test_the_agent_runner_of_agent_run_writes_and_removes_it(nats_url: str, tmp_path: Path) -> None:
    ready = tmp_path / "ready"
    ready.write_text("stale\n")
    code = "from examples.demo_agents.echo import EchoAgent; EchoAgent().run()"
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "STELLA_INSTANCE": "runner-1",
        "STELLA_READY_FILE": str(ready),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("STELLA-READY agent-runner echo-agent")
        assert ready.read_text() == "agent-runner echo-agent runner-1\n"
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
    assert not ready.exists()
