"""A running gateway for tests: its URL, its API key, and helpers to talk to it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.support.history import TEST_SECRET
from tests.support.processes import ServiceProcess
from tests.support.scripted_openai import Rule, ScriptedOpenAI
from tests.support.waiting import DEADLINE_S

ROOT = Path(__file__).resolve().parents[2]
QUESTION = "What is the capital of France?"
REPLY = "The capital of France is Paris."

TEST_API_KEY = "sk-stella-test-key-0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass
class GatewayClient:
    url: str
    api_key: str = TEST_API_KEY
    process: ServiceProcess | None = None

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=self.auth, timeout=30)

    async def create(self, agent: str, **body: Any) -> dict[str, Any]:
        async with self.http() as client:
            response = await client.post("/v1/sessions", json={"agent": agent, **body})
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def ws(self, created: dict[str, Any], audio: bool = True) -> ClientConnection:
        connect_info = created["connect"]
        url = f"{connect_info['websocket']}?token={connect_info['token']}"
        if not audio:
            url += "&audio=false"
        return await connect(url, max_size=1 << 20)


@dataclass
class WsTranscript:
    """Everything a WebSocket client received, split into audio and events."""

    audio: list[bytes] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    async def read_until(
        self, ws: ClientConnection, done: Any, timeout: float = DEADLINE_S
    ) -> dict[str, Any]:
        """Read until ``done(event)`` is true for a JSON event; return that event."""
        try:
            return await asyncio.wait_for(self._read_until(ws, done), timeout)
        except TimeoutError:
            seen = [(e.get("type"), (e.get("payload") or {}).get("text")) for e in self.events]
            raise AssertionError(f"no such event in {timeout:g} s; saw {seen}") from None

    async def _read_until(self, ws: ClientConnection, done: Any) -> dict[str, Any]:
        if True:
            while True:
                message = await ws.recv()
                if isinstance(message, bytes):
                    self.audio.append(message)
                    continue
                event: dict[str, Any] = json.loads(message)
                self.events.append(event)
                if done(event):
                    return event

    async def read_quiet(
        self, ws: ClientConnection, quiet_s: float = 1.5, limit: float = 60
    ) -> None:
        """Read until nothing arrives for ``quiet_s`` (the agent finished speaking)."""
        deadline = asyncio.get_running_loop().time() + limit
        while asyncio.get_running_loop().time() < deadline:
            try:
                message = await asyncio.wait_for(ws.recv(), quiet_s)
            except TimeoutError:
                return
            if isinstance(message, bytes):
                self.audio.append(message)
            else:
                self.events.append(json.loads(message))

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == type_]


def gateway_url(process: ServiceProcess) -> str:
    for line in process.lines:
        if line.startswith("STELLA-GATEWAY "):
            return line.split()[1]
    raise AssertionError("the gateway printed no URL line")


@dataclass
class VoicePlatform:
    env: dict[str, str]
    url: str
    tmp: Path


@contextmanager
def voice_platform(nats_url: str, tmp: Path) -> Iterator[VoicePlatform]:
    """recorder, stt, tts, the guide's agent and its tool-executor (scripted LLM: France →
    Paris) and a gateway."""
    from stella_services.runtime.nats_server import free_port

    with ScriptedOpenAI(
        [Rule(when_user_contains="capital", text=REPLY), Rule(text="Could you say that again?")]
    ) as llm:
        env = {
            "NATS_URL": nats_url,
            "STELLA_DATA_DIR": str(tmp / "data"),
            "STELLA_HISTORY_ADDR": f"127.0.0.1:{free_port()}",
            "CLICKHOUSE_URL": "",
            "STELLA_SECRET": TEST_SECRET,
            **llm.env(),
            "LIVEKIT_URL": "",
            "LIVEKIT_API_KEY": "",
            "LIVEKIT_API_SECRET": "",
            "ROOM_NAME": "",
            "TASKS_DB": str(tmp / "tasks.db"),
            "STELLA_AGENT_PATH": str(ROOT / "examples" / "my-agent"),
        }
        started: list[ServiceProcess] = []
        try:
            for name, extra in (
                ("recorder", {}),
                ("stt", {}),
                ("tts", {}),
                ("tool-executor", {"STELLA_TOOL_MODULES": "src.tools"}),
                ("agent-runner", {"STELLA_AGENT": "src.agent:MyCustomAgent"}),
                ("gateway", {"STELLA_API_KEYS": TEST_API_KEY, "STELLA_GATEWAY_PORT": "0"}),
            ):
                started.append(ServiceProcess(name, {**env, **extra}, tmp / "logs").start(120))
            yield VoicePlatform(env, gateway_url(started[-1]), tmp)
        finally:
            for proc in reversed(started):
                proc.stop()
