"""Real processes for benchmarks: a private nats-server and STELLA services, on loopback."""

from __future__ import annotations

import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from stella_services.runtime.nats_server import LocalNats, free_port
from tests.support.processes import ServiceProcess

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "my-agent"


@dataclass
class BenchPlatform:
    root: Path
    nats_url: str
    env: dict[str, str]
    nats_pids: list[int]

    def start(self, service: str, extra_env: dict[str, str] | None = None) -> ServiceProcess:
        """``stella serve <service>``, waited for until ready (the tests' own launcher)."""
        process = ServiceProcess(service, {**self.env, **(extra_env or {})}, self.root)
        process.start(timeout=120)
        self._children.append(process)
        return process

    def example_agent_env(self, llm_env: dict[str, str]) -> dict[str, str]:
        """A runner of the guide's ``MyCustomAgent`` talking to the LLM at ``llm_env``."""
        return {
            **llm_env,
            "LIVEKIT_URL": "",
            "LIVEKIT_API_KEY": "",
            "LIVEKIT_API_SECRET": "",
            "ROOM_NAME": "",
            "TASKS_DB": str(Path(self.env["STELLA_DATA_DIR"]) / "a.db"),
            "STELLA_AGENT_PATH": str(EXAMPLE),
            "STELLA_AGENT": "src.agent:MyCustomAgent",
        }

    def __post_init__(self) -> None:
        self._children: list[ServiceProcess] = []

    def stop_all(self) -> None:
        for p in reversed(self._children):
            p.stop()


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
