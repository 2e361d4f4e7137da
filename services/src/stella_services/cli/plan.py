"""What ``stella up`` starts, decided without starting anything (a pure function)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

EXAMPLE_AGENT = "my-custom-agent"
# one of each is enough for these: the recorder is one consumer, the local llm one model
SINGLE = frozenset({"recorder", "llm"})
LOCAL_LLM_KEY = "local"  # the local llm asks for no key; the openai client wants one set


@dataclass(frozen=True)
class ProcessSpec:
    """One child process: ``stella serve <service>`` with its own environment and folder."""

    name: str
    service: str
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


def example_dir(configured: Path | None = None) -> Path | None:
    """The guide's example project: ``configured`` (``STELLA_EXAMPLE_AGENT_DIR``), else the
    checkout's ``examples/my-agent``."""
    if configured is not None:
        return configured
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "examples" / "my-agent"
        if (candidate / "src" / "agent.py").exists():
            return candidate
    return None


def uses_local_llm(environ: dict[str, str]) -> bool:
    """No cloud key and no endpoint given: STELLA serves the agents' LLM itself."""
    return not environ.get("OPENAI_API_KEY") and not environ.get("OPENAI_BASE_URL")


def local_llm_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/v1"


def example_env(data_dir: Path, environ: dict[str, str], llm_port: int) -> dict[str, str]:
    """What the guide's ``Settings`` require, defaulted for local mode.

    LiveKit is optional locally (the gateway's embedded transports need none); an empty
    ROOM_NAME lets the runner take any session. Without an OpenAI key or endpoint the
    agent's ``AsyncOpenAI()`` reaches the local llm.
    """
    env = {
        "LIVEKIT_URL": environ.get("LIVEKIT_URL", ""),
        "LIVEKIT_API_KEY": environ.get("LIVEKIT_API_KEY", ""),
        "LIVEKIT_API_SECRET": environ.get("LIVEKIT_API_SECRET", ""),
        "OPENAI_API_KEY": environ.get("OPENAI_API_KEY", ""),
        "ROOM_NAME": environ.get("ROOM_NAME", ""),
        "TASKS_DB": str(data_dir / "my-agent" / "agent.db"),
    }
    if uses_local_llm(environ):
        env["OPENAI_API_KEY"] = LOCAL_LLM_KEY
        env["OPENAI_BASE_URL"] = local_llm_url(llm_port)
    return env


def local_plan(
    data_dir: Path,
    environ: dict[str, str],
    example: Path | None,
    only: list[str] | None = None,
    llm_port: int = 8090,
    replicas: int = 1,
) -> list[ProcessSpec]:
    """The recorder first (so nothing is missed), then speech, tools, the agents, and the
    gateway that lets people in; ``replicas`` of each but the recorder and the local llm
    (named ``stt-1``, ``stt-2``…)."""
    plan = [
        ProcessSpec("recorder", "recorder"),
        ProcessSpec("stt", "stt"),
        ProcessSpec("tts", "tts"),
    ]
    if example is not None and uses_local_llm(environ):
        plan.append(ProcessSpec("llm", "llm", {"STELLA_LLM_PORT": str(llm_port)}))
    if example is not None:
        agent_env = {
            **example_env(data_dir, environ, llm_port),
            "STELLA_AGENT_PATH": str(example),
        }
        plan.append(
            ProcessSpec(
                "tool-executor",
                "tool-executor",
                {**agent_env, "STELLA_TOOL_MODULES": "src.tools"},
                example,
            )
        )
        plan.append(
            ProcessSpec(
                "agent-runner",
                "agent-runner",
                {
                    **agent_env,
                    "STELLA_AGENT": "src.agent:MyCustomAgent",
                    "STELLA_AGENT_NAME": EXAMPLE_AGENT,
                },
                example,
            )
        )
    plan.append(ProcessSpec("gateway", "gateway"))  # last: agents answer once it is reachable
    if only:
        unknown = set(only) - {p.name for p in plan}
        if unknown:
            raise ValueError(f"unknown service(s): {', '.join(sorted(unknown))}")
        plan = [p for p in plan if p.name in only]
    if replicas > 1:
        plan = [
            copy
            for p in plan
            for copy in (
                [p]
                if p.name in SINGLE
                else [
                    ProcessSpec(f"{p.name}-{n}", p.service, p.env, p.cwd)
                    for n in range(1, replicas + 1)
                ]
            )
        ]
    return plan
