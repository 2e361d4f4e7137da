"""A running gateway for tests: its URL, its API key, and helpers to talk to it."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect

from tests.support.processes import ServiceProcess

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
        self, ws: ClientConnection, done: Any, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Read until ``done(event)`` is true for a JSON event; return that event."""
        async with asyncio.timeout(timeout):
            while True:
                message = await ws.recv()
                if isinstance(message, bytes):
                    self.audio.append(message)
                    continue
                event: dict[str, Any] = json.loads(message)
                self.events.append(event)
                if done(event):
                    return event

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("type") == type_]


def gateway_url(process: ServiceProcess) -> str:
    for line in process.lines:
        if line.startswith("STELLA-GATEWAY "):
            return line.split()[1]
    raise AssertionError("the gateway printed no URL line")
