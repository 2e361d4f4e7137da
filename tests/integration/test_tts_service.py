"""The tts service with the real kokoro model: paced frames on audio.out, interrupts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from nats.aio.msg import Msg

from stella_contracts import (
    ControlInterrupt,
    Envelope,
    TtsDone,
    TtsRequest,
    audio,
    new_id,
    subjects,
)
from stella_services.runtime.bus import Bus
from stella_services.runtime.claims import request_claim
from tests.support.processes import ServiceProcess
from tests.support.speech import rms, wer
from tests.support.waiting import until

pytestmark = pytest.mark.slow
Start = Callable[[str, dict[str, str]], ServiceProcess]
TEXT = "Sure. Your table for four is booked for eight tonight, and I sent you a confirmation."


class Capture:
    def __init__(self) -> None:
        self.frames: list[tuple[float, Msg]] = []
        self.done: asyncio.Queue[TtsDone] = asyncio.Queue()

    async def on_audio(self, msg: Msg) -> None:
        self.frames.append((time.monotonic(), msg))

    async def on_event(self, msg: Msg) -> None:
        env = Envelope.from_json(msg.data)
        if isinstance(env.payload, TtsDone):
            self.done.put_nowait(env.payload)

    @property
    def pcm(self) -> bytes:
        return b"".join(m.data for _, m in self.frames)


async def listen(bus: Bus, sid: str) -> Capture:
    """Capture the session's audio and events, once a tts replica has claimed it."""
    cap = Capture()
    await bus.nc.subscribe(subjects.audio_out(sid), cb=cap.on_audio)
    await bus.nc.subscribe(subjects.session_events(sid), cb=cap.on_event)
    await request_claim(bus.nc, "tts", sid)
    return cap


async def test_speech_out_is_paced_real_audio(
    bus: Bus, recorder_env: dict[str, str], start_service: Start
) -> None:
    start_service("tts", recorder_env)
    sid = str(new_id())
    cap = await listen(bus, sid)
    await bus.emit(sid, TtsRequest(text=TEXT, turn_id="t1"))
    done = await asyncio.wait_for(cap.done.get(), 60)
    assert not done.interrupted and done.spoken_text == TEXT

    frames = [m for _, m in cap.frames]
    assert all(len(m.data) == audio.FRAME_BYTES for m in frames)
    assert all(m.headers and m.headers["Stella-Format"] == audio.FORMAT for m in frames)
    assert [int(m.headers["Stella-Seq"]) for m in frames] == list(range(len(frames)))  # type: ignore[index]
    duration_s = len(frames) * audio.FRAME_MS / 1000
    assert 3.5 < duration_s < 9.0 and done.audio_ms == len(frames) * audio.FRAME_MS
    assert rms(cap.pcm) > 500  # speech, not silence
    # paced: the frames took about as long to arrive as they last (lead ≤ 120 ms + slack)
    spread = cap.frames[-1][0] - cap.frames[0][0]
    assert spread > duration_s - 0.4
    # (time to first audio is the bench's figure, `make bench`; timings are not asserted)
    # and it says the words: transcribe it back
    from faster_whisper import WhisperModel

    from stella_services.models import catalog

    model = WhisperModel(str(catalog.model_path(catalog.WHISPER_CT2)), compute_type="int8")
    import numpy as np

    samples = np.frombuffer(cap.pcm, dtype="<i2").astype(np.float32) / 32768
    heard = " ".join(s.text for s in model.transcribe(samples, beam_size=1, language="en")[0])
    errors, total = wer(TEXT, heard)
    assert errors / total <= 0.15, heard


async def test_interrupt_stops_within_a_frame_and_reports_what_was_heard(
    bus: Bus, recorder_env: dict[str, str], start_service: Start
) -> None:
    start_service("tts", recorder_env)
    sid = str(new_id())
    cap = await listen(bus, sid)
    await bus.emit(sid, TtsRequest(text=TEXT, turn_id="t2"))
    while len(cap.frames) < 60:  # 1.2 s of speech out
        await asyncio.sleep(0.01)
    await bus.emit(sid, ControlInterrupt(reason="barge_in", turn_id="t2"))
    interrupted_at = time.monotonic()
    done = await asyncio.wait_for(cap.done.get(), 30)
    await asyncio.sleep(0.5)
    late = [t for t, _ in cap.frames if t > interrupted_at + 0.040]
    assert late == [], f"{len(late)} frames after the interrupt"
    assert done.interrupted
    assert 0 < len(done.spoken_text) < len(TEXT)
    assert TEXT.startswith(done.spoken_text.rstrip(".,"))
    assert done.audio_ms == len(cap.frames) * audio.FRAME_MS


async def test_an_interrupt_while_a_clause_is_still_synthesizing_is_reported_at_once(
    bus: Bus,
) -> None:
    """On a loaded machine the next clause can still be synthesizing when the one before it
    has finished playing; an interrupt then must not wait for that synthesis to report."""
    from stella_services.tts.chunking import lead_in, speech_chunks
    from stella_services.tts.speaker import Speaker
    from tests.support.speech import speech_pcm

    chunks = lead_in(speech_chunks(TEXT))
    assert len(chunks) >= 2
    first_pcm = speech_pcm(chunks[0])  # the real voice; only the second clause is held back
    held = asyncio.Event()
    released = asyncio.Event()

    async def synthesize(text: str, voice: str, first: bool) -> bytes:
        if first:
            return first_pcm
        held.set()
        await released.wait()  # a synthesis slower than the first clause's playback
        return speech_pcm(text)

    sid = str(new_id())
    cap = Capture()
    await bus.nc.subscribe(subjects.audio_out(sid), cb=cap.on_audio)
    await bus.nc.subscribe(subjects.session_events(sid), cb=cap.on_event)
    speaker = Speaker(sid, bus, synthesize, lead_ms=120)
    try:
        speaker.say(TtsRequest(text=TEXT, turn_id="t3"))
        first_frames = len(audio.padded_frames(first_pcm))
        # every frame of the first clause is out: the speaker now waits for the second
        await until(lambda: held.is_set() and len(cap.frames) >= first_frames, "clause one")
        speaker.interrupt()
        done = await asyncio.wait_for(cap.done.get(), 30)  # the synthesis is still held
        assert done.interrupted and done.spoken_text == chunks[0].strip()
        assert done.audio_ms == first_frames * audio.FRAME_MS == len(cap.frames) * audio.FRAME_MS
    finally:
        released.set()
        await speaker.close()
