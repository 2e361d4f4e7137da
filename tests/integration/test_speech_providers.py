"""The extra speech providers: piper (local TTS) and OpenAI's speech and transcription endpoints
(driven by the real ``openai`` client against the scripted server on loopback)."""

from __future__ import annotations

import asyncio
import io
import math
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import openai
import pytest
from nats.aio.msg import Msg

from stella_contracts import Envelope, TtsDone, TtsRequest, audio, new_id, subjects
from stella_services.models import catalog, prepare
from stella_services.runtime.bus import Bus
from stella_services.runtime.claims import request_claim
from stella_services.stt.recognizers import (
    OpenAIRecognizer,
    RecognizerUnavailable,
    create_recognizer,
)
from stella_services.stt.settings import SttSettings
from stella_services.tts.chunking import speech_chunks
from stella_services.tts.engines import (
    EngineUnavailable,
    OpenAIEngine,
    PiperEngine,
    create_engine,
    to_bus_pcm,
)
from stella_services.tts.settings import TtsSettings
from tests.support.processes import ServiceProcess
from tests.support.scripted_openai import (
    PCM_CONTENT_TYPE,
    SPEECH_RATE,
    ScriptedOpenAI,
    speech_pcm,
)
from tests.support.speech import rms, wer

Start = Callable[[str, dict[str, str]], ServiceProcess]
TEXT = "Sure. Your table for four is booked for eight tonight, and I sent you a confirmation."


def pcm_floats(pcm: bytes) -> np.ndarray:
    return np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0


def transcribe_ct2(samples: np.ndarray) -> str:
    from faster_whisper import WhisperModel

    folder = prepare.prepare_whisper_ct2(catalog.models_dir())  # idempotent: a copy at most
    model = WhisperModel(str(folder), device="cpu", compute_type="int8", cpu_threads=2)
    segments, _ = model.transcribe(samples, beam_size=1, language="en")
    return " ".join(s.text for s in segments)


# -- piper ---------------------------------------------------------------------------------------


def test_piper_prepare_verifies_and_is_idempotent(tmp_path: Path) -> None:
    with pytest.raises(catalog.ModelPreparationError, match="stella models prepare"):
        catalog.model_path(catalog.PIPER_JOE, tmp_path)
    folder = prepare.prepare(["piper-en_US-joe-medium"], tmp_path, lambda _: None)[
        catalog.PIPER_JOE.name
    ]
    assert folder == tmp_path / "piper-en_US-joe-medium-1.0.0"
    assert catalog.verified(folder, catalog.PIPER_JOE, deep=True)
    assert catalog.model_path(catalog.PIPER_JOE, tmp_path) == folder
    for name, digest in catalog.PIPER_SHA256.items():
        assert catalog.sha256(folder / name) == digest
    stamp = (folder / catalog.MANIFEST).stat().st_mtime_ns
    assert prepare.prepare_piper(tmp_path) == folder  # verified already: left alone
    assert (folder / catalog.MANIFEST).stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]  # no work folder left over


@pytest.mark.slow
def test_piper_speaks_the_words() -> None:
    prepare.prepare_piper(catalog.models_dir())
    engine = create_engine("piper", "af_heart")  # a kokoro voice name is ignored, not an error
    assert isinstance(engine, PiperEngine) and engine.sample_rate == 22_050
    engine.synthesize("Ready.", "")  # warm-up, as the service does

    samples = engine.synthesize(TEXT, "")  # its speed is the bench's figure, not asserted
    assert samples.dtype == np.float32 and samples.ndim == 1
    duration_s = len(samples) / engine.sample_rate
    assert 3.0 < duration_s < 9.0
    assert float(np.max(np.abs(samples))) <= 1.0
    pcm = to_bus_pcm(samples, engine.sample_rate)
    assert rms(pcm) > 1000  # speech, not silence
    assert engine.synthesize("", "").size == 0

    heard = transcribe_ct2(pcm_floats(pcm))
    errors, total = wer(TEXT, heard)
    assert errors / total <= 0.15, heard


# -- OpenAI --------------------------------------------------------------------------------------


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI() as server:
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("STELLA_OPENAI_TTS_MODEL", raising=False)
        monkeypatch.delenv("STELLA_OPENAI_STT_MODEL", raising=False)
        yield server


def test_openai_engine_returns_the_served_pcm(scripted: ScriptedOpenAI) -> None:
    engine = create_engine("openai", "af_heart")  # not an OpenAI voice: alloy instead
    assert isinstance(engine, OpenAIEngine) and engine.sample_rate == SPEECH_RATE == 24_000
    samples = engine.synthesize(TEXT, "")
    served = speech_pcm(TEXT)
    assert len(served) == round(len(TEXT) * 0.060 * SPEECH_RATE) * 2
    assert samples.dtype == np.float32 and len(samples) == len(served) // 2
    assert np.array_equal(samples, pcm_floats(served))
    assert 0.25 < float(np.max(np.abs(samples))) <= 0.3

    [request] = scripted.speech_requests
    assert request == {
        "input": TEXT,
        "model": "gpt-4o-mini-tts",
        "voice": "alloy",
        "response_format": "pcm",
    }
    # on the bus it is 16 kHz: two thirds of the samples
    assert abs(len(to_bus_pcm(samples, engine.sample_rate)) // 2 - len(samples) * 2 / 3) <= 1


def test_openai_engine_model_and_voice_choices(
    scripted: ScriptedOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STELLA_OPENAI_TTS_MODEL", "tts-1")
    engine = create_engine("openai", "nova", TtsSettings().openai_tts_model)
    engine.synthesize("One.", "")
    engine.synthesize("Two.", "coral")
    engine.synthesize("Three.", "am_michael")
    sent = [(r["model"], r["voice"], r["input"]) for r in scripted.speech_requests]
    assert sent == [
        ("tts-1", "nova", "One."),
        ("tts-1", "coral", "Two."),
        ("tts-1", "nova", "Three."),
    ]


def test_openai_speech_endpoint_raw(scripted: ScriptedOpenAI) -> None:
    client = openai.OpenAI()
    with client.audio.speech.with_streaming_response.create(
        model="m", voice="alloy", input="abc", response_format="pcm"
    ) as response:
        assert response.headers["content-type"] == PCM_CONTENT_TYPE
        body = response.read()
    assert body == speech_pcm("abc")
    wav = client.audio.speech.create(model="m", voice="alloy", input="abc", response_format="wav")
    with wave.open(io.BytesIO(wav.content)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24_000, 1, 2)
        assert w.readframes(w.getnframes()) == speech_pcm("abc")
    with pytest.raises(openai.BadRequestError, match="pcm or wav"):
        client.audio.speech.create(model="m", voice="alloy", input="abc")  # mp3


def test_openai_recognizer_sends_a_16k_wav(scripted: ScriptedOpenAI) -> None:
    said = "Book a table for four at eight."
    scripted.set_transcripts([f"  {said} "])
    recognizer = create_recognizer("openai")
    assert isinstance(recognizer, OpenAIRecognizer)
    t = np.arange(int(1.37 * 16_000)) / 16_000
    samples = (0.5 * np.sin(2 * math.pi * 440 * t)).astype(np.float32)
    assert recognizer.transcribe(samples) == said

    [request] = scripted.transcription_requests
    assert request.fields == {"model": "gpt-4o-mini-transcribe", "language": "en"}
    assert (request.filename, request.content_type) == ("audio.wav", "audio/wav")
    with wave.open(io.BytesIO(request.audio)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (16_000, 1, 2)
        assert w.getnframes() == len(samples)
        got = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert np.max(np.abs(got - samples * 32767)) <= 1.0

    # nothing left to answer: the server's error reaches the caller
    with pytest.raises(openai.InternalServerError, match="no transcript left"):
        recognizer.transcribe(samples)


def test_openai_recognizer_model_from_settings(
    scripted: ScriptedOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STELLA_OPENAI_STT_MODEL", "whisper-1")
    scripted.set_transcripts(["hi"])
    recognizer = create_recognizer("openai", openai_model=SttSettings().openai_stt_model)
    assert recognizer.transcribe(np.zeros(0, dtype=np.float32)) == ""  # no request for nothing
    assert recognizer.transcribe(np.zeros(8000, dtype=np.float32)) == "hi"
    [request] = scripted.transcription_requests
    assert request.fields["model"] == "whisper-1"


def test_openai_providers_need_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(EngineUnavailable, match="OPENAI_API_KEY"):
        create_engine("openai", "alloy")
    with pytest.raises(RecognizerUnavailable, match="OPENAI_API_KEY"):
        create_recognizer("openai")


def test_unknown_providers_are_named() -> None:
    with pytest.raises(EngineUnavailable, match="kokoro, piper, openai"):
        create_engine("espeak", "x")
    with pytest.raises(RecognizerUnavailable, match="sherpa, whisper, openai"):
        create_recognizer("vosk")


# -- the tts service with the new providers ------------------------------------------------------


class Capture:
    def __init__(self) -> None:
        self.frames: list[Msg] = []
        self.done: asyncio.Queue[TtsDone] = asyncio.Queue()

    async def on_audio(self, msg: Msg) -> None:
        self.frames.append(msg)

    async def on_event(self, msg: Msg) -> None:
        env = Envelope.from_json(msg.data)
        if isinstance(env.payload, TtsDone):
            self.done.put_nowait(env.payload)

    @property
    def pcm(self) -> bytes:
        return b"".join(m.data for m in self.frames)


async def speak(bus: Bus, service: ServiceProcess, text: str) -> tuple[Capture, TtsDone]:
    sid = str(new_id())
    cap = Capture()
    await bus.nc.subscribe(subjects.audio_out(sid), cb=cap.on_audio)
    await bus.nc.subscribe(subjects.session_events(sid), cb=cap.on_event)
    await request_claim(bus.nc, "tts", sid)
    await bus.emit(sid, TtsRequest(text=text, turn_id="t1"))
    try:
        done = await asyncio.wait_for(cap.done.get(), 60)
    except TimeoutError:
        pytest.fail(
            f"no tts.done within 60 s ({len(cap.frames)} frames came); "
            f"tts log:\n{service.stderr_tail()}"
        )
    return cap, done


async def test_tts_service_with_openai(
    bus: Bus, recorder_env: dict[str, str], start_service: Start
) -> None:
    with ScriptedOpenAI() as server:
        env = {**recorder_env, **server.env(), "STELLA_TTS_PROVIDER": "openai"}
        cap, done = await speak(bus, start_service("tts", env), TEXT)
        assert not done.interrupted and done.spoken_text == TEXT
        chunks = speech_chunks(TEXT)
        spoken = server.speech_requests  # no paid warm-up request at start
        assert [r["input"] for r in spoken] == chunks
        assert all(r["response_format"] == "pcm" and r["voice"] == "alloy" for r in spoken)
        # each chunk's served audio, resampled to 16 kHz and padded to whole frames
        expected = sum(
            math.ceil(len(to_bus_pcm(pcm_floats(speech_pcm(c)), 24_000)) / audio.FRAME_BYTES)
            for c in chunks
        )
        assert len(cap.frames) == expected and done.audio_ms == expected * audio.FRAME_MS
        # 60 ms per character, give or take a frame per chunk
        ms_per_char = 60
        assert abs(done.audio_ms - sum(map(len, chunks)) * ms_per_char) <= 20 * len(chunks)


@pytest.mark.slow
async def test_tts_service_with_piper(
    bus: Bus, recorder_env: dict[str, str], start_service: Start
) -> None:
    prepare.prepare_piper(catalog.models_dir())
    service = start_service("tts", {**recorder_env, "STELLA_TTS_PROVIDER": "piper"})
    asked = time.monotonic()
    cap, done = await speak(bus, service, TEXT)
    assert not done.interrupted and done.spoken_text == TEXT
    assert all(len(m.data) == audio.FRAME_BYTES for m in cap.frames)
    duration_s = len(cap.frames) * audio.FRAME_MS / 1000
    assert 3.0 < duration_s < 9.0 and done.audio_ms == len(cap.frames) * audio.FRAME_MS
    assert time.monotonic() - asked > duration_s - 0.4  # paced in real time
    assert rms(cap.pcm) > 500
    heard = transcribe_ct2(pcm_floats(cap.pcm))
    errors, total = wer(TEXT, heard)
    assert errors / total <= 0.15, heard
