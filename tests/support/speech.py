"""Real synthesized speech for tests (kokoro, a voice other than the agent's), WER scoring,
and feeding audio onto the bus in real time."""

from __future__ import annotations

import asyncio
import re
import time
from functools import cache

import numpy as np

from stella_contracts import audio, subjects
from stella_services.runtime.bus import Bus

USER_VOICE = "am_michael"

_NUMBERS = {
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
    "eleven": "11",
    "twelve": "12",
    "fifteen": "15",
    "twenty": "20",
    "thirty": "30",
}


@cache
def _kokoro() -> object:
    from stella_services.tts.engines import KokoroEngine

    return KokoroEngine(default_voice=USER_VOICE)


def speech_pcm(text: str, voice: str = USER_VOICE) -> bytes:
    """``text`` spoken by kokoro, as bus PCM (16 kHz s16le mono)."""
    from stella_services.tts.engines import to_bus_pcm

    engine = _kokoro()
    return to_bus_pcm(engine.synthesize(text, voice), engine.sample_rate)  # type: ignore[attr-defined]


def silence(ms: int) -> bytes:
    return b"\x00\x00" * (audio.SAMPLE_RATE * ms // 1000)


def words(text: str) -> list[str]:
    out = []
    for w in re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split():
        out.append(_NUMBERS.get(w, w))
    return out


def wer(reference: str, hypothesis: str) -> tuple[int, int]:
    """(word errors, reference words): Levenshtein distance over normalised words."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)], len(ref)


def rms(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return float(np.sqrt(np.mean(samples**2))) if len(samples) else 0.0


def dominant_hz(pcm: bytes) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * audio.SAMPLE_RATE / len(samples))


async def stream_audio(bus: Bus, session_id: str, pcm: bytes, speed: float = 1.0) -> float:
    """Publish ``pcm`` as 20 ms frames on ``audio.in``, paced at ``speed`` times real time.
    Returns the wall time the last frame left."""
    frames = audio.padded_frames(pcm)
    subject = subjects.audio_in(session_id)
    start = time.monotonic()
    for i, pcm_frame in enumerate(frames):
        due = start + i * audio.FRAME_MS / 1000 / speed
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        frame = audio.AudioFrame(pcm=pcm_frame, seq=i, ts_us=time.time_ns() // 1000)
        await bus.nc.publish(subject, frame.pcm, headers=frame.headers())
    await bus.nc.flush()
    return time.time()
