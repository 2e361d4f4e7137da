"""One live session inside an agent runner: its events in, the agent's replies out.

Events of ``stella.session.<sid>.>`` are read as they arrive; user turns run one after
another on a turn worker, so a new turn never overlaps the previous one, while the
reader stays free to see an interrupt or the end of the session at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from stella_contracts import (
    AgentText,
    AgentTurnDone,
    ControlInterrupt,
    DispatchRequest,
    Envelope,
    InvalidEnvelope,
    SessionEnded,
    SttTranscript,
    TtsRequest,
    UserText,
    audio,
    new_id,
    subjects,
)
from stella_sdk.bus import Bus
from stella_sdk.history import HistoryClient
from stella_sdk.settings import AgentSettings
from stella_sdk.toolbox import ToolCaller

if TYPE_CHECKING:
    from stella_sdk.agent import BaseAgent

log = logging.getLogger(__name__)

current_session: ContextVar[AgentSession | None] = ContextVar("stella_session", default=None)

CONNECT_TURN = "connect"


@dataclass
class Turn:
    turn_id: str
    started: float = field(default_factory=time.perf_counter)
    replies: int = 0


class AgentSession:
    def __init__(
        self, bus: Bus, settings: AgentSettings, request: DispatchRequest, agent: BaseAgent
    ) -> None:
        self.bus = bus
        self.settings = settings
        self.request = request
        self.session_id = request.session_id
        self.room_name = request.room_name
        self.audio = request.audio
        self.agent = agent
        self.tools = ToolCaller(bus, settings, request.session_id)
        self.history = HistoryClient(settings.history_addr, request.history_token)
        self.turn: Turn | None = None
        self.ended = asyncio.Event()
        self._events: asyncio.Queue[Envelope | None] = asyncio.Queue()
        self._turns: asyncio.Queue[tuple[str, Callable[[], Awaitable[Any]]] | None] = (
            asyncio.Queue()
        )
        self._sub: Subscription | None = None
        self._reader: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._audio_seq = 0

    # -- lifecycle ---------------------------------------------------------------------

    async def start(self) -> None:
        """Subscribe before the dispatch is answered, so no event of the session is missed."""
        self._sub = await self.bus.nc.subscribe(
            subjects.session_events(self.session_id), cb=self._on_message
        )
        self.agent._attach(self)
        self._worker = asyncio.create_task(self._work(), name=f"turns-{self.session_id}")
        self._reader = asyncio.create_task(self._read(), name=f"session-{self.session_id}")
        await self._turns.put((CONNECT_TURN, self.agent.on_connect))

    def stop(self) -> None:
        """End the session from the runner's side (shutdown); idempotent."""
        self._events.put_nowait(None)

    async def _on_message(self, msg: Msg) -> None:
        try:
            envelope = Envelope.from_json(msg.data)
        except InvalidEnvelope:
            return  # the recorder dead-letters it; one report is enough
        self._events.put_nowait(envelope)

    async def _read(self) -> None:
        token = current_session.set(self)
        try:
            while (envelope := await self._events.get()) is not None:
                p = envelope.payload
                if isinstance(p, SessionEnded):
                    break
                if isinstance(p, UserText):
                    await self._turns.put((new_id().hex, partial(self.agent.on_user_text, p.text)))
                elif isinstance(p, SttTranscript):
                    if p.is_final:
                        handler = partial(self.agent.on_transcript, p.text, True)
                        await self._turns.put((new_id().hex, handler))
                    else:
                        await self._guarded(self.agent.on_transcript(p.text, False), "partial")
                elif isinstance(p, ControlInterrupt):
                    pass  # barge-in handling arrives with the speech pipeline
        finally:
            await self._finish()
            current_session.reset(token)

    async def _work(self) -> None:
        token = current_session.set(self)
        try:
            while (item := await self._turns.get()) is not None:
                turn_id, handler = item
                await self._run_turn(turn_id, handler)
        finally:
            current_session.reset(token)

    async def _run_turn(self, turn_id: str, handler: Callable[[], Awaitable[Any]]) -> None:
        self.turn = Turn(turn_id)
        error = ""
        try:
            await handler()
        except Exception as exc:  # an agent bug ends the turn, not the session
            log.exception("session %s: turn %s failed", self.session_id, turn_id)
            error = f"{type(exc).__name__}: {exc}"
        turn, self.turn = self.turn, None
        await self.bus.emit(
            self.session_id,
            AgentTurnDone(
                turn_id=turn_id,
                duration_ms=round((time.perf_counter() - turn.started) * 1000, 3),
                replies=turn.replies,
                error=error,
            ),
        )

    async def _guarded(self, call: Awaitable[Any], what: str) -> None:
        try:
            await call
        except Exception:
            log.exception("session %s: %s handler failed", self.session_id, what)

    async def _finish(self) -> None:
        while not self._turns.empty():  # turns not yet started die with the session
            self._turns.get_nowait()
        await self._turns.put(None)
        if self._worker is not None:
            # the turn in flight finishes (its reply is still recorded); then we leave
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        await self._guarded(self.agent.on_disconnect(), "disconnect")
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        await self.history.close()
        self.bus.envelopes.forget(self.session_id)
        self.ended.set()

    # -- what the agent does -------------------------------------------------------------

    @property
    def turn_id(self) -> str:
        return self.turn.turn_id if self.turn else ""

    async def say_text(self, text: str, *, final: bool = True) -> None:
        """Record what the agent says (``agent.text``); deltas carry ``final=False``."""
        if final and self.turn is not None:
            self.turn.replies += 1
        await self.bus.emit(
            self.session_id, AgentText(text=text, turn_id=self.turn_id, is_final=final)
        )

    async def request_speech(self, text: str) -> None:
        """Ask the tts service to speak ``text`` on this session's audio out."""
        await self.bus.emit(self.session_id, TtsRequest(text=text, turn_id=self.turn_id))

    async def publish_audio(self, pcm: bytes) -> None:
        """Raw PCM s16le 16 kHz mono onto ``stella.audio.<sid>.out``, cut into 20 ms frames."""
        frames, rest = audio.split_frames(pcm)
        if rest:
            frames.append(rest + b"\x00" * (audio.FRAME_BYTES - len(rest)))
        subject = subjects.audio_out(self.session_id)
        for pcm_frame in frames:
            frame = audio.AudioFrame(
                pcm=pcm_frame, seq=self._audio_seq, ts_us=time.time_ns() // 1000
            )
            self._audio_seq += 1
            await self.bus.nc.publish(subject, frame.pcm, headers=frame.headers())
