"""``stella up`` as a process for end-to-end tests: started, waited for, its banner read."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from stella_services.runtime.nats_server import free_port

STELLA = [sys.executable, "-m", "stella_services"]


def fresh_shell_env(home: Path) -> dict[str, str]:
    """A new login's environment, nothing inherited: no venv, no ~/.local/bin on PATH."""
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "COLUMNS": "200"}


@dataclass
class RunningUp:
    process: subprocess.Popen[str]
    banner: str  # what it printed on stderr up to STELLA-UP

    def playground(self) -> tuple[str, str]:
        """The gateway URL and the API key from the printed playground link."""
        found = re.search(r"playground\s+(http://127\.0\.0\.1:\d+)/#key=(\S+)", self.banner)
        assert found is not None, self.banner
        return found.group(1), found.group(2)

    def printed_commands(self) -> list[str]:
        """The commands printed under "in another terminal", in order, as a user copies them."""
        block = self.banner.split("in another terminal", 1)[1].split("Ctrl-C stops everything")[0]
        lines = [line.strip() for line in block.splitlines()[1:]]
        return [line for line in lines if line and not line.startswith("(")]

    def printed_command(self, word: str) -> str:
        """The one printed ``stella <word>`` command."""
        found = [c for c in self.printed_commands() if re.search(rf"stella {word}\b", c)]
        assert len(found) == 1, self.banner
        return found[0]

    def stop(self) -> int:
        """SIGTERM, as Ctrl-C would; returns its exit code."""
        self.process.terminate()
        return self.process.wait(60)


def start_up(
    env: dict[str, str], tmp_path: Path, timeout: float = 240, args: list[str] | None = None
) -> RunningUp:
    """Run ``stella up [args]`` until it prints STELLA-UP (fails with its stderr otherwise)."""
    err = tmp_path / "up.err"
    # never the defaults (8080, 8090): another platform on this machine may hold them, and a
    # call would then reach its gateway
    env = {
        "STELLA_GATEWAY_PORT": str(free_port()),
        "STELLA_LLM_PORT": str(free_port()),
        **env,
    }
    process = subprocess.Popen(
        [*STELLA, "up", *(args or [])],
        env=env,
        stdout=subprocess.PIPE,
        stderr=open(err, "w"),
        text=True,
    )
    assert process.stdout is not None
    line = ""
    deadline = time.monotonic() + timeout
    while "STELLA-UP" not in line and time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            raise AssertionError(f"stella up exited: {err.read_text()}")
    if "STELLA-UP" not in line:
        process.kill()
        raise AssertionError(f"stella up was not up in {timeout:g} s: {err.read_text()}")
    return RunningUp(process, err.read_text())
