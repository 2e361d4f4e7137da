"""``/v1/sessions/{id}/ws``: binary frames are PCM s16le 16 kHz mono both ways; text frames
are JSON — ``{"type": "user.text", "text": ...}`` or ``{"type": "session.end"}`` in, every
session event's envelope out (``?audio=false`` for events only)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from stella_contracts import EndReason, Envelope
from stella_services.gateway.live_sessions import LiveSession, LiveSessions
from stella_services.gateway.media import Uplink
from stella_services.gateway.outbox import Outbox
from stella_services.runtime.bus import Bus

log = logging.getLogger(__name__)

MAX_AUDIO_MESSAGE = 64_000  # 2 s of audio in one message is plenty; more is a client bug
MAX_TEXT_MESSAGE = 16_000


def client_error(code: str, message: str) -> str:
    return json.dumps({"type": "error", "code": code, "message": message})


class WsSink:
    def __init__(self, outbox: Outbox, wants_audio: bool) -> None:
        self.outbox = outbox
        self.wants_audio = wants_audio

    async def agent_audio(self, pcm: bytes) -> None:
        self.outbox.audio(pcm)

    async def session_event(self, envelope: Envelope, raw: bytes) -> None:
        self.outbox.text(raw.decode())

    async def interrupted(self) -> None:
        self.outbox.flush_audio()

    async def close(self) -> None:
        self.outbox.close()


async def _send_all(ws: WebSocket, outbox: Outbox) -> None:
    while (item := await outbox.next()) is not None:
        if item.audio is not None:
            await ws.send_bytes(item.audio)
        elif item.text is not None:
            await ws.send_text(item.text)


class _Receiver:
    def __init__(
        self, ws: WebSocket, uplink: Uplink, sessions: LiveSessions, live: LiveSession, out: Outbox
    ) -> None:
        self.ws = ws
        self.uplink = uplink
        self.sessions = sessions
        self.live = live
        self.out = out

    async def run(self) -> None:
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            if data is not None:
                await self._audio(data)
            else:
                await self._text(message.get("text") or "")

    async def _audio(self, data: bytes) -> None:
        if len(data) > MAX_AUDIO_MESSAGE:
            limit = f"audio messages hold at most {MAX_AUDIO_MESSAGE} bytes"
            self.out.text(client_error("too_large", limit))
        elif len(data) % 2:
            self.out.text(client_error("bad_audio", "PCM s16le needs an even number of bytes"))
        else:
            await self.uplink.audio(data)

    async def _text(self, text: str) -> None:
        if len(text) > MAX_TEXT_MESSAGE:
            limit = f"text messages hold at most {MAX_TEXT_MESSAGE} characters"
            self.out.text(client_error("too_large", limit))
            return
        try:
            body = json.loads(text)
            kind = body["type"]
        except (ValueError, KeyError, TypeError):
            self.out.text(client_error("bad_message", 'text frames are JSON with a "type"'))
            return
        if kind == "user.text":
            said = body.get("text")
            if not isinstance(said, str) or not said.strip():
                self.out.text(client_error("bad_message", 'user.text needs a non-empty "text"'))
                return
            self.live.touch()
            await self.uplink.text(said.strip())
        elif kind == "session.end":
            await self.sessions.end(self.live.session_id, EndReason.CLIENT, "the client ended it")
        else:
            self.out.text(client_error("bad_message", f"unknown message type {kind!r}"))


async def serve_websocket(
    ws: WebSocket, bus: Bus, sessions: LiveSessions, live: LiveSession, audio: bool
) -> None:
    """Bridge one accepted WebSocket to its session until either side ends."""
    outbox = Outbox()
    key = id(ws)
    await sessions.attach(live, key, WsSink(outbox, audio))
    receiver = _Receiver(ws, Uplink(bus, live.session_id), sessions, live, outbox)
    sending = asyncio.create_task(_send_all(ws, outbox))
    receiving = asyncio.create_task(receiver.run())
    try:
        done, _ = await asyncio.wait({sending, receiving}, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            exc = task.exception()
            if exc is not None and not isinstance(exc, WebSocketDisconnect):
                log.warning("websocket of %s failed: %r", live.session_id, exc)
    finally:
        for task in (sending, receiving):
            task.cancel()
        await asyncio.gather(sending, receiving, return_exceptions=True)
        sessions.detach(live, key)
        if ws.client_state is WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError):  # the client closed at the same moment
                await ws.close(1000)
