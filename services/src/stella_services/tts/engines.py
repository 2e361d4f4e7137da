"""Speech synthesis engines behind one small interface; audio leaves in the bus format."""

from __future__ import annotations

import logging
from typing import Protocol

import numpy as np
import soxr

from stella_contracts import audio
from stella_services.models import catalog

log = logging.getLogger(__name__)


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
        from kokoro_onnx import Kokoro

        model = catalog.model_path(catalog.KOKORO) / "kokoro-v1.0.int8.onnx"
        voices = catalog.model_path(catalog.KOKORO_VOICES) / "voices.npz"
        self._kokoro = Kokoro(str(model), str(voices))
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


def create_engine(provider: str, voice: str) -> SpeechEngine:
    if provider == "kokoro":
        return KokoroEngine(default_voice=voice)
    raise EngineUnavailable(
        f"tts provider {provider!r} is not available in this version (kokoro is)"
    )
