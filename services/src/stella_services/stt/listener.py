"""One session's ears: VAD on every 32 ms window, partial transcripts while the user
speaks, and a final one as soon as the end of speech is confirmed.

The final is decoded speculatively when silence begins, in parallel with the silence
being confirmed; if speech resumes the result is dropped. Only the current utterance and
a short pre-roll are kept in memory.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import numpy as np

from stella_contracts import SttTranscript, SttVad, VadState, audio, new_id
from stella_sdk.bus import Bus
from stella_services.stt.settings import SttSettings
from stella_services.stt.vad import (
    SilenceStarted,
    SpeechEnded,
    SpeechResumed,
    SpeechStarted,
    VadConfig,
    VadTracker,
)

log = logging.getLogger(__name__)

WINDOW = 512  # samples per silero window at 16 kHz (32 ms)
SAMPLES_PER_MS = audio.SAMPLE_RATE // 1000

Transcribe = Callable[[np.ndarray], Awaitable[str]]


class Listener:
    def __init__(
        self,
        session_id: str,
        bus: Bus,
        vad_prob: Callable[[np.ndarray], float],
        transcribe: Transcribe,
        settings: SttSettings,
        decoder_busy: Callable[[], bool],
    ) -> None:
        self.session_id = session_id
        self.bus = bus
        self.vad_prob = vad_prob
        self.transcribe = transcribe
        self.settings = settings
        self.decoder_busy = decoder_busy
        self.tracker = VadTracker(
            VadConfig(
                threshold=settings.vad_threshold,
                neg_threshold=max(0.05, settings.vad_threshold - 0.15),
                min_speech_ms=settings.vad_min_speech_ms,
                min_silence_ms=settings.vad_min_silence_ms,
                pre_roll_ms=settings.vad_pre_roll_ms,
            )
        )
        self.samples = np.zeros(0, dtype=np.float32)  # audio from `base` samples on
        self.base = 0  # absolute sample index of samples[0]
        self.total = 0  # samples received so far
        self._pending = np.zeros(0, dtype=np.float32)  # not yet a full VAD window
        self.utterance_id = ""
        self.segment_start = 0  # absolute sample where the current utterance's audio starts
        self.last_partial_ms = 0
        self._speculative: tuple[int, asyncio.Task[str]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.last_frame_at = time.monotonic()

    # -- input -------------------------------------------------------------------------

    def feed(self, pcm: bytes) -> None:
        """One frame of bus audio (called for every frame, so it stays cheap)."""
        self.last_frame_at = time.monotonic()
        chunk = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        self.samples = np.concatenate([self.samples, chunk])
        self.total += len(chunk)
        self._pending = np.concatenate([self._pending, chunk])
        while len(self._pending) >= WINDOW:
            window, self._pending = self._pending[:WINDOW], self._pending[WINDOW:]
            end = self.total - len(self._pending)
            start_ms, end_ms = (end - WINDOW) // SAMPLES_PER_MS, end // SAMPLES_PER_MS
            for event in self.tracker.update(self.vad_prob(window), start_ms, end_ms):
                self._on_vad(event)
        if self.tracker.in_speech:
            self._maybe_partial()
            if (
                self.total - self.segment_start
            ) / audio.SAMPLE_RATE > self.settings.max_utterance_s:
                self._finish(self.total // SAMPLES_PER_MS, forced=True)
        else:
            self._trim()

    # -- decisions ---------------------------------------------------------------------

    def _on_vad(self, event: object) -> None:
        if isinstance(event, SpeechStarted):
            self.utterance_id = new_id().hex
            pre_roll = self.settings.vad_pre_roll_ms * SAMPLES_PER_MS
            self.segment_start = max(self.base, event.at_ms * SAMPLES_PER_MS - pre_roll)
            self.last_partial_ms = event.at_ms
            self._emit(
                SttVad(
                    state=VadState.SPEECH_STARTED,
                    audio_ms=event.at_ms,
                    utterance_id=self.utterance_id,
                    wall_us=self._wall_us(event.at_ms),
                )
            )
        elif isinstance(event, SilenceStarted):
            end = self.total  # everything so far: the words and the start of the silence
            self._speculative = (end, asyncio.create_task(self._decode(self.segment_start, end)))
        elif isinstance(event, SpeechResumed):
            self._speculative = None  # its text would miss what comes next
        elif isinstance(event, SpeechEnded):
            self._finish(event.end_ms)

    def _finish(self, end_ms: int, forced: bool = False) -> None:
        utterance, start = self.utterance_id, self.segment_start
        speculative = None if forced else self._speculative
        self._speculative = None
        self._emit(
            SttVad(
                state=VadState.SPEECH_ENDED,
                audio_ms=end_ms,
                utterance_id=utterance,
                wall_us=self._wall_us(end_ms),
            )
        )
        end = self.total if speculative is None else speculative[0]
        decode = speculative[1] if speculative else asyncio.create_task(self._decode(start, end))
        self._spawn(self._final(decode, utterance, start, end_ms))
        if forced:  # a very long utterance: go on listening as a new one
            self.utterance_id = new_id().hex
            self.segment_start = self.total

    def _maybe_partial(self) -> None:
        now_ms = self.total // SAMPLES_PER_MS
        if now_ms - self.last_partial_ms < self.settings.partial_interval_ms:
            return
        if self.decoder_busy() or self._speculative is not None:
            return  # finals first; a partial can wait for the next window
        self.last_partial_ms = now_ms
        self._spawn(self._partial(self.utterance_id, self.segment_start, self.total))

    # -- work --------------------------------------------------------------------------

    async def _decode(self, start: int, end: int) -> str:
        lo, hi = start - self.base, end - self.base
        return await self.transcribe(self.samples[max(0, lo) : hi].copy())

    async def _partial(self, utterance: str, start: int, end: int) -> None:
        text = await self._decode(start, end)
        if utterance == self.utterance_id and self.tracker.in_speech:
            await self._transcript(text, False, utterance, start, end // SAMPLES_PER_MS)

    async def _final(
        self, decode: asyncio.Task[str], utterance: str, start: int, end_ms: int
    ) -> None:
        await self._transcript(await decode, True, utterance, start, end_ms)

    async def _transcript(
        self, text: str, is_final: bool, utterance: str, start: int, end_ms: int
    ) -> None:
        if text:
            await self.bus.emit(
                self.session_id,
                SttTranscript(
                    text=text,
                    is_final=is_final,
                    utterance_id=utterance,
                    start_ms=start // SAMPLES_PER_MS,
                    end_ms=end_ms,
                    language="en",
                ),
            )

    def _emit(self, event: SttVad) -> None:
        self._spawn(self._publish(event))

    async def _publish(self, event: SttVad) -> None:
        await self.bus.emit(self.session_id, event)

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("session %s: %s", self.session_id, task.exception())

    def _trim(self) -> None:
        """Outside speech keep only the pre-roll (and what a pending decode still reads)."""
        if self._tasks or self._speculative is not None:
            return
        keep = self.settings.vad_pre_roll_ms * SAMPLES_PER_MS + WINDOW
        if len(self.samples) > 4 * keep:
            drop = len(self.samples) - keep
            self.samples = self.samples[drop:]
            self.base += drop

    def _wall_us(self, at_ms: int) -> int:
        """When the audio at ``at_ms`` arrived, assuming it streams in real time."""
        behind_s = (self.total // SAMPLES_PER_MS - at_ms) / 1000
        return int((time.time() - behind_s) * 1_000_000)

    def pending_tasks(self) -> int:
        """Decodes and publications not finished yet (the speculative decode included)."""
        speculative = self._speculative is not None and not self._speculative[1].done()
        return len(self._tasks) + int(speculative)

    async def close(self) -> None:
        """Let the transcripts already being decoded go out, then drop the audio."""
        if self._speculative is not None and not self._speculative[1].done():
            self._speculative[1].cancel()  # its final would never be asked for
        self._speculative = None
        for task in list(self._tasks):
            await asyncio.wait([task], timeout=10)
        self.samples = np.zeros(0, dtype=np.float32)
        self._pending = np.zeros(0, dtype=np.float32)
