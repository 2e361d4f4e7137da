"""A voice client on the bus: sends speech frames in, collects the agent's frames out."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

import numpy as np
from nats.aio.msg import Msg

from stella_contracts import AgentTurnDone, Envelope, subjects
from stella_services.runtime.bus import Bus


@dataclass
class VoiceClient:
    bus: Bus
    session_id: str
    frames: list[tuple[float, bytes]] = field(default_factory=list)
    events: list[Envelope] = field(default_factory=list)
    turns: asyncio.Queue[AgentTurnDone] = field(default_factory=asyncio.Queue)

    async def attach(self) -> VoiceClient:
        await self.bus.nc.subscribe(subjects.audio_out(self.session_id), cb=self._audio)
        await self.bus.nc.subscribe(subjects.session_events(self.session_id), cb=self._event)
        return self

    async def _audio(self, msg: Msg) -> None:
        self.frames.append((time.time(), msg.data))

    async def _event(self, msg: Msg) -> None:
        env = Envelope.from_json(msg.data)
        self.events.append(env)
        if isinstance(env.payload, AgentTurnDone):
            self.turns.put_nowait(env.payload)

    async def quiet(self, for_s: float = 0.6, timeout: float = 60) -> None:
        """Wait until no agent audio has arrived for ``for_s``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            last = self.frames[-1][0] if self.frames else 0.0
            if time.time() - last > for_s:
                return
            await asyncio.sleep(0.05)

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
