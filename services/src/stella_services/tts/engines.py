"""Speech synthesis engines behind one small interface; audio leaves in the bus format."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Protocol

import numpy as np
import soxr

from stella_contracts import audio
from stella_services.models import catalog

if TYPE_CHECKING:
    import openai

log = logging.getLogger(__name__)

OPENAI_TTS_MODEL = "gpt-4o-mini-tts"
OPENAI_DEFAULT_VOICE = "alloy"
# the built-in voices of /v1/audio/speech; anything else (e.g. a kokoro voice name left in
# STELLA_TTS_VOICE) falls back to the default
OPENAI_VOICES = frozenset(
    {
        "alloy",
        "ash",
        "ballad",
        "cedar",
        "coral",
        "echo",
        "fable",
        "marin",
        "nova",
        "onyx",
        "sage",
        "shimmer",
        "verse",
    }
)
OPENAI_PCM_RATE = 24_000  # response_format="pcm": s16le mono at 24 kHz


class SpeechEngine(Protocol):
    name: str
    sample_rate: int

    def synthesize(self, text: str, voice: str) -> np.ndarray:
        """Mono float32 samples in [-1, 1] at ``sample_rate``."""
        ...


def to_bus_pcm(samples: np.ndarray, rate: int) -> bytes:
    """Float samples at any rate → PCM s16le mono 16 kHz."""
    if rate != audio.SAMPLE_RATE:
        samples = soxr.resample(samples, rate, audio.SAMPLE_RATE, quality="HQ")
    clipped = np.clip(samples, -1.0, 1.0)
    return bytes((clipped * 32767.0).astype("<i2").tobytes())


class KokoroEngine:
    name = "kokoro"
    sample_rate = 24_000

    def __init__(self, default_voice: str = "af_heart", speed: float = 1.0) -> None:
        import onnxruntime
        from kokoro_onnx import Kokoro

        model = catalog.model_path(catalog.KOKORO) / "kokoro-v1.0.int8.onnx"
        voices = catalog.model_path(catalog.KOKORO_VOICES) / "voices.npz"
        options = onnxruntime.SessionOptions()
        # idle worker threads sleep instead of spinning: next to stt replicas (and other
        # tts replicas) on the same cores, spinning threads took the CPU the others needed
        # (a sentence beside a Whisper decode loop: 3.4 s spinning, 2.7 s not, on 2 cores)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        session = onnxruntime.InferenceSession(
            str(model), options, providers=["CPUExecutionProvider"]
        )
        self._kokoro = Kokoro.from_session(session, str(voices))
        self.default_voice = default_voice
        self.speed = speed
        self.voices = set(self._kokoro.get_voices())
        if default_voice not in self.voices:
            raise ValueError(f"unknown kokoro voice {default_voice!r}")

    def synthesize(self, text: str, voice: str) -> np.ndarray:
        chosen = voice if voice in self.voices else self.default_voice
        samples, rate = self._kokoro.create(text, voice=chosen, speed=self.speed, lang="en-us")
        if rate != self.sample_rate:
            raise RuntimeError(f"kokoro produced {rate} Hz, expected {self.sample_rate}")
        return np.asarray(samples, dtype=np.float32)


class EngineUnavailable(RuntimeError):
    pass


class PiperEngine:
    """Piper's en_US-joe-medium voice (one speaker, 22.05 kHz): fast, lighter than kokoro."""

    name = "piper"
    sample_rate = catalog.PIPER_SAMPLE_RATE
    voice_name = "en_US-joe-medium"

    def __init__(self, default_voice: str = "", length_scale: float | None = None) -> None:
        try:
            from piper import PiperVoice, SynthesisConfig
        except ImportError as exc:
            raise EngineUnavailable(
                "tts provider piper needs the package piper-tts==1.8.0; run `make setup`"
            ) from exc
        folder = catalog.model_path(catalog.PIPER_JOE)
        self._voice = PiperVoice.load(
            folder / catalog.PIPER_ONNX, config_path=folder / catalog.PIPER_CONFIG
        )
        self._config = SynthesisConfig(length_scale=length_scale)
        rate = self._voice.config.sample_rate
        if rate != self.sample_rate:
            raise EngineUnavailable(f"piper voice is {rate} Hz, expected {self.sample_rate}")
        if default_voice and default_voice != self.voice_name:
            log.info("piper has one voice, %s; %r is ignored", self.voice_name, default_voice)

    def synthesize(self, text: str, voice: str) -> np.ndarray:
        # one chunk per sentence; the voice has a single speaker, so ``voice`` is ignored
        chunks = [c.audio_float_array for c in self._voice.synthesize(text, self._config)]
        if not chunks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(chunks).astype(np.float32, copy=False)


class OpenAIEngine:
    """OpenAI's /v1/audio/speech (or a compatible server) as raw 24 kHz PCM.

    ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` come from the environment, the model from
    ``STELLA_OPENAI_TTS_MODEL``. Synchronous client: synthesis runs on a worker thread.
    """

    name = "openai"
    sample_rate = OPENAI_PCM_RATE

    def __init__(
        self,
        default_voice: str = OPENAI_DEFAULT_VOICE,
        model: str | None = None,
        client: openai.OpenAI | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        import openai

        try:
            self._client = client or openai.OpenAI(timeout=timeout_s)
        except openai.OpenAIError as exc:
            raise EngineUnavailable(f"tts provider openai: {exc}") from exc
        self.model = model or OPENAI_TTS_MODEL
        if default_voice in OPENAI_VOICES:
            self.default_voice = default_voice
        else:
            if default_voice:
                log.info("%r is not an OpenAI voice; using %r", default_voice, OPENAI_DEFAULT_VOICE)
            self.default_voice = OPENAI_DEFAULT_VOICE

    def synthesize(self, text: str, voice: str) -> np.ndarray:
        chosen = voice if voice in OPENAI_VOICES else self.default_voice
        response = self._client.audio.speech.create(
            model=self.model, voice=chosen, input=text, response_format="pcm"
        )
        raw = response.content
        usable = len(raw) - len(raw) % 2
        pcm = np.frombuffer(raw[:usable], dtype="<i2")
        return pcm.astype(np.float32) / 32768.0


def create_engine(provider: str, voice: str, openai_model: str = OPENAI_TTS_MODEL) -> SpeechEngine:
    if provider == "kokoro":
        return KokoroEngine(default_voice=voice)
    if provider == "piper":
        return PiperEngine(default_voice=voice)
    if provider == "openai":
        return OpenAIEngine(model=openai_model, default_voice=voice)
    raise EngineUnavailable(
        f"tts provider {provider!r} is not available (kokoro, piper, openai are)"
    )
