"""Speech recognizers behind one interface: 16 kHz float32 samples in, text out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Protocol

import numpy as np

from stella_services.models import catalog


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


def create_recognizer(provider: str, threads: int = 2) -> Recognizer:
    if provider == "whisper":
        return FasterWhisperRecognizer(threads)
    if provider == "sherpa":
        return SherpaWhisperRecognizer(threads)
    raise RecognizerUnavailable(
        f"stt provider {provider!r} is not available in this version (sherpa, whisper are)"
    )
