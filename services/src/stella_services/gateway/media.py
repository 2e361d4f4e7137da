"""What a transport plugs into a live session: a sink for what goes to the client, and an
uplink for what the client sends.

Transports (WebSocket, WebRTC, LiveKit) differ only in how bytes reach the client. The
session's own subscriptions fan out to every attached sink (see ``live_sessions``), so a
client that connects after the agent greeted still hears the greeting.
"""

from __future__ import annotations

from typing import Protocol

from stella_contracts import Envelope, UserText, subjects
from stella_services.gateway.uplink import FrameCutter
from stella_services.runtime.bus import Bus


class MediaSink(Protocol):
    wants_audio: bool

    async def agent_audio(self, pcm: bytes) -> None:
        """One 20 ms frame of the agent's voice (PCM s16le 16 kHz mono)."""

    async def session_event(self, envelope: Envelope, raw: bytes) -> None:
        """Any event of the session (transcripts, agent text, metrics, lifecycle...), parsed
        and as it came off the bus (a client that wants JSON sends ``raw`` unchanged)."""

    async def interrupted(self) -> None:
        """The agent's speech was cut: drop whatever agent audio is still queued."""

    async def close(self) -> None:
        """The session ended (its ``lifecycle.ended`` was delivered first): hang up."""


class Uplink:
    """The client's audio (any chunking) and typed text onto the bus."""

    def __init__(self, bus: Bus, session_id: str) -> None:
        self.bus = bus
        self.session_id = session_id
        self._cutter = FrameCutter()

    async def audio(self, pcm: bytes) -> None:
        for frame in self._cutter.push(pcm):
            await self.bus.nc.publish(
                subjects.audio_in(self.session_id), frame.pcm, headers=frame.headers()
            )

    async def text(self, text: str) -> None:
        await self.bus.emit(self.session_id, UserText(text=text))
