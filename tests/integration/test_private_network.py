"""WebRTC and the browser run inside a private network namespace that holds only loopback,
so no packet can leave the machine whatever aiortc or Chromium try (docs/testing.md)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_webrtc_and_playground_suites_pass_in_a_private_network_namespace() -> None:
    assert shutil.which("unshare") and shutil.which("ip"), "util-linux and iproute2 are needed"
    env = {k: v for k, v in os.environ.items() if k != "NATS_URL"}  # none answers in there
    env["STELLA_NETNS"] = "1"
    script = 'ip link set lo up && exec "$0" -m pytest tests/netns -q -rA -p no:cacheprovider'
    result = subprocess.run(
        ["unshare", "-n", "--", "bash", "-c", script, sys.executable],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    output = result.stdout + result.stderr
    print(output[-20000:])
    assert result.returncode == 0, output[-6000:]
    summary = output.strip().splitlines()[-1]
    assert "passed" in summary and "skipped" not in summary and "failed" not in summary, summary
