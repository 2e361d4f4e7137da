"""A voice client on the bus: sends speech frames in, collects the agent's frames out."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import numpy as np
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from stella_contracts import AgentTurnDone, Envelope, TtsDone, audio, subjects
from stella_sdk.runtime.leases import Leases, open_bucket
from stella_services.runtime.bus import Bus
from tests.support.waiting import DEADLINE_S, until


@dataclass
class VoiceClient:
    bus: Bus
    session_id: str
    frames: list[tuple[float, bytes]] = field(default_factory=list)
    events: list[Envelope] = field(default_factory=list)
    turns: asyncio.Queue[AgentTurnDone] = field(default_factory=asyncio.Queue)
    _audio_sub: Subscription | None = None
    _call: Leases | None = None

    async def attach(self) -> VoiceClient:
        self._audio_sub = await self.bus.nc.subscribe(
            subjects.audio_out(self.session_id), cb=self._audio
        )
        await self.bus.nc.subscribe(subjects.session_events(self.session_id), cb=self._event)
        await self.bus.nc.flush()  # the server has both before anything is asked of it
        return self

    async def run_call(self, ttl_s: float = 2.0) -> VoiceClient:
        """Hold the call's gateway lease, as the gateway does for the calls it runs: this
        client stands in for the gateway, and replicas take over only calls that live."""
        kv = await open_bucket(self.bus.js, ttl_s)
        self._call = Leases(self.bus.js, kv, subjects.GATEWAY_ROLE, "test-client", ttl_s)
        assert await self._call.take(self.session_id)
        self._call.start(None, on_lost=_ignore)
        return self

    async def hang_up(self) -> None:
        """Let go of the call's lease, as the gateway does when a call ends."""
        if self._call is not None:
            await self._call.release(self.session_id)
            await self._call.stop()
            self._call = None

    async def _audio(self, msg: Msg) -> None:
        # dated by when the agent's side sent it (Stella-Ts), not when this process got to
        # it: a test starved of CPU would otherwise see frames as later than they were
        frame = audio.AudioFrame.from_message(msg.data, msg.headers)
        self.frames.append((frame.ts_us / 1e6, msg.data))

    async def _event(self, msg: Msg) -> None:
        env = Envelope.from_json(msg.data)
        self.events.append(env)
        if isinstance(env.payload, AgentTurnDone):
            self.turns.put_nowait(env.payload)

    def spoken(self, turn_id: str | None = None) -> list[TtsDone]:
        """The ``tts.done``s so far, in order (of one turn, given ``turn_id``)."""
        done = [e.payload for e in self.of("tts.done") if isinstance(e.payload, TtsDone)]
        return [d for d in done if turn_id is None or d.turn_id == turn_id]

    async def said(self, turn_id: str, timeout: float = DEADLINE_S) -> TtsDone:
        """Wait until tts has spoken the turn (``tts.done``) and its frames are in."""
        done = await until(lambda: self.spoken(turn_id), f"tts.done of turn {turn_id}", timeout)
        await self.caught_up(timeout)
        return done[0]

    async def caught_up(self, timeout: float = DEADLINE_S) -> None:
        """Wait until every frame that reached this process is in ``frames``.

        Whoever sends the audio (tts, or an agent publishing its own) sends the event that
        ends it (``tts.done``, ``agent.turn_done``) after the last frame, on the same
        connection, so the frames reach this process first; but each subscription runs its
        callbacks in a task of its own, so frames may still be queued for ``_audio``."""
        assert self._audio_sub is not None
        sub = self._audio_sub
        await until(lambda: sub.pending_msgs == 0, "the queued frames", timeout)

    def audio_after(self, wall: float) -> bytes:
        return b"".join(pcm for t, pcm in self.frames if t >= wall)

    def of(self, type_: str) -> list[Envelope]:
        return [e for e in self.events if e.type == type_]


def transcribe(pcm: bytes) -> str:
    from faster_whisper import WhisperModel

    from stella_services.models import catalog

    model = WhisperModel(str(catalog.model_path(catalog.WHISPER_CT2)), compute_type="int8")
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    segments, _ = model.transcribe(samples, beam_size=1, language="en")
    return " ".join(s.text.strip() for s in segments)


async def _ignore(session_id: str) -> None:
    """Nobody takes a call's lease over."""
