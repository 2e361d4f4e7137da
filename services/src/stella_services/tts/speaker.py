"""One session's voice: speaks its ``tts.request``s in order, paced, stoppable at once.

The next clause is synthesized while the current one plays, so only the first clause's
synthesis is ever waited for. On ``control.interrupt`` nothing more leaves after the frame
in flight, and ``tts.done`` says how much of the text the user heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from stella_contracts import TtsDone, TtsRequest, audio, subjects
from stella_sdk.bus import Bus
from stella_sdk.pacing import Pacer
from stella_services.tts.chunking import lead_in, speech_chunks, spoken_prefix

log = logging.getLogger(__name__)

# (text, voice, first clause of the utterance?) -> bus PCM
Synthesize = Callable[[str, str, bool], Coroutine[Any, Any, bytes]]


class Speaker:
    def __init__(self, session_id: str, bus: Bus, synthesize: Synthesize, lead_ms: float) -> None:
        self.session_id = session_id
        self.bus = bus
        self.synthesize = synthesize
        self.pacer = Pacer(lead_ms=lead_ms)
        self.subject = subjects.audio_out(session_id)
        self._queue: asyncio.Queue[TtsRequest | None] = asyncio.Queue()
        self._interrupt = asyncio.Event()
        self._seq = 0
        self.task = asyncio.create_task(self._run(), name=f"speaker-{session_id}")

    def say(self, request: TtsRequest) -> None:
        self._queue.put_nowait(request)

    def interrupt(self) -> None:
        """Stop the current utterance within a frame and drop the queued ones."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is None:
                self._queue.put_nowait(None)
                break
        self._interrupt.set()

    async def close(self) -> None:
        self.interrupt()
        self._queue.put_nowait(None)
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    async def _run(self) -> None:
        while (item := await self._queue.get()) is not None:
            self._interrupt.clear()
            try:
                await self._speak(item)
            except Exception:
                log.exception("session %s: speaking failed", self.session_id)

    async def _speak(self, request: TtsRequest) -> None:
        chunks = lead_in(speech_chunks(request.text)) or [request.text]
        voice = request.voice
        frames_sent = 0
        spoken_chunks = 0
        fraction = 0.0
        interrupted = False
        first_synth_us: int | None = None
        first_out_us: int | None = None
        next_pcm: asyncio.Task[bytes] = asyncio.create_task(self.synthesize(chunks[0], voice, True))
        for index in range(len(chunks)):
            pcm = await self._synthesized_or_interrupted(next_pcm)
            if pcm is None:  # stopped before this clause had any audio: none of it was heard
                interrupted = True
                break
            if first_synth_us is None:
                first_synth_us = time.time_ns() // 1000
            if index + 1 < len(chunks):  # synthesize ahead while this one plays
                next_pcm = asyncio.create_task(self.synthesize(chunks[index + 1], voice, False))
            frames = audio.padded_frames(pcm)
            for position, frame in enumerate(frames):
                if await self._wait_or_interrupted(self.pacer.delay()):
                    interrupted = True
                    fraction = position / max(1, len(frames))
                    break
                await self._publish(frame)
                if first_out_us is None:
                    first_out_us = time.time_ns() // 1000
                frames_sent += 1
            if interrupted:
                break
            spoken_chunks += 1
        if interrupted and not next_pcm.done():
            next_pcm.cancel()
        spoken = spoken_prefix(chunks, spoken_chunks, fraction) if interrupted else request.text
        await self.bus.emit(
            self.session_id,
            TtsDone(
                turn_id=request.turn_id,
                text=request.text,
                spoken_text=spoken,
                interrupted=interrupted,
                audio_ms=frames_sent * audio.FRAME_MS,
                first_audio_synth_us=first_synth_us,
                first_audio_out_us=first_out_us,
            ),
        )

    async def _synthesized_or_interrupted(self, pending: asyncio.Task[bytes]) -> bytes | None:
        """The clause's audio, or None on an interrupt. On a loaded machine a clause can take
        longer to synthesize than the one before it took to play; waiting for it would hold
        ``tts.done`` back by that long after the user cut in."""
        if not pending.done() and not self._interrupt.is_set():
            stop = asyncio.create_task(self._interrupt.wait())
            try:
                await asyncio.wait((pending, stop), return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop.cancel()
        if self._interrupt.is_set():
            return None
        return pending.result()

    async def _wait_or_interrupted(self, delay: float) -> bool:
        if self._interrupt.is_set():
            return True
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._interrupt.wait(), delay)
        return self._interrupt.is_set()

    async def _publish(self, pcm: bytes) -> None:
        frame = audio.AudioFrame(pcm=pcm, seq=self._seq, ts_us=time.time_ns() // 1000)
        self._seq += 1
        self.pacer.sent()
        await self.bus.nc.publish(self.subject, pcm, headers=frame.headers())
