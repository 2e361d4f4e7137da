"""Speech recognizers behind one interface: 16 kHz float32 samples in, text out."""

from __future__ import annotations

import io
import subprocess
import sys
import wave
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from stella_services.models import catalog

if TYPE_CHECKING:
    import openai

SAMPLE_RATE = 16_000
OPENAI_STT_MODEL = "gpt-4o-mini-transcribe"


class Recognizer(Protocol):
    name: str

    def transcribe(self, samples: np.ndarray) -> str: ...


class RecognizerUnavailable(RuntimeError):
    pass


class FasterWhisperRecognizer:
    """Whisper tiny.en (CTranslate2) through faster-whisper, greedy."""

    name = "whisper"

    def __init__(self, threads: int = 2) -> None:
        from faster_whisper import WhisperModel

        folder = catalog.model_path(catalog.WHISPER_CT2)
        self._model = WhisperModel(
            str(folder), device="cpu", compute_type="int8", cpu_threads=threads
        )

    def transcribe(self, samples: np.ndarray) -> str:
        segments, _ = self._model.transcribe(
            samples,
            language="en",
            beam_size=1,
            without_timestamps=True,
            condition_on_previous_text=False,
            vad_filter=False,
        )
        return " ".join(s.text.strip() for s in segments).strip()


class SherpaWhisperRecognizer:
    """Whisper tiny.en converted to ONNX, through sherpa-onnx (the guide's default)."""

    name = "sherpa"

    def __init__(self, threads: int = 2) -> None:
        import sherpa_onnx

        folder = catalog.model_path(catalog.WHISPER_ONNX)
        files = [folder / name for name in catalog.WHISPER_ONNX.files]
        _check_loadable(files)
        self._recognizer = sherpa_onnx.OfflineRecognizer.from_whisper(
            encoder=str(files[0]),
            decoder=str(files[1]),
            tokens=str(files[2]),
            language="en",
            task="transcribe",
            num_threads=threads,
        )

    def transcribe(self, samples: np.ndarray) -> str:
        stream = self._recognizer.create_stream()
        stream.accept_waveform(16_000, samples)
        self._recognizer.decode_stream(stream)
        return str(stream.result.text).strip()


def _check_loadable(files: list[Path]) -> None:
    """sherpa-onnx ends the whole process on a model it rejects: try it in a child first."""
    code = (
        "import sherpa_onnx, sys; sherpa_onnx.OfflineRecognizer.from_whisper("
        "encoder=sys.argv[1], decoder=sys.argv[2], tokens=sys.argv[3], language='en')"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, files)], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0:
        raise RecognizerUnavailable(
            f"sherpa-onnx cannot load {files[0].parent} (exit {done.returncode}); "
            f"run `stella models prepare` again. {done.stderr[-300:]}"
        )


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """Float samples in [-1, 1] → a mono 16-bit PCM WAV file, in memory."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return buffer.getvalue()


class OpenAIRecognizer:
    """OpenAI's /v1/audio/transcriptions (or a compatible server) on one utterance.

    ``OPENAI_API_KEY`` and ``OPENAI_BASE_URL`` come from the environment, the model from
    ``STELLA_OPENAI_STT_MODEL`` (``SttSettings``). Synchronous client: recognition runs on a
    worker thread.
    """

    name = "openai"

    def __init__(
        self,
        model: str | None = None,
        client: openai.OpenAI | None = None,
        timeout_s: float = 30.0,
    ) -> None:
        import openai

        try:
            self._client = client or openai.OpenAI(timeout=timeout_s)
        except openai.OpenAIError as exc:
            raise RecognizerUnavailable(f"stt provider openai: {exc}") from exc
        self.model = model or OPENAI_STT_MODEL

    def transcribe(self, samples: np.ndarray) -> str:
        if samples.size == 0:
            return ""
        result = self._client.audio.transcriptions.create(
            model=self.model,
            file=("audio.wav", wav_bytes(samples), "audio/wav"),
            language="en",
        )
        return result.text.strip()


def create_recognizer(
    provider: str, threads: int = 2, openai_model: str = OPENAI_STT_MODEL
) -> Recognizer:
    if provider == "whisper":
        return FasterWhisperRecognizer(threads)
    if provider == "sherpa":
        return SherpaWhisperRecognizer(threads)
    if provider == "openai":
        return OpenAIRecognizer(model=openai_model)
    raise RecognizerUnavailable(
        f"stt provider {provider!r} is not available (sherpa, whisper, openai are)"
    )
