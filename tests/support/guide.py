"""The environment a runner of the guide's example project (``examples/my-agent``) needs."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.scripted_openai import ScriptedOpenAI

ROOT = Path(__file__).resolve().parents[2]
MY_AGENT = ROOT / "examples" / "my-agent"


def guide_env(base: dict[str, str], llm: ScriptedOpenAI, tmp: Path) -> dict[str, str]:
    """What the guide's Settings require, plus where STELLA and the LLM are; agents import
    from the example project (``src.agent``) and from ``examples`` (``demo_agents``)."""
    return {
        **base,
        **llm.env(),
        "LIVEKIT_URL": "",
        "LIVEKIT_API_KEY": "",
        "LIVEKIT_API_SECRET": "",
        "ROOM_NAME": "",
        "OPENAI_MODEL": "scripted-model",
        "TASKS_DB": str(tmp / "agent.db"),
        "STELLA_AGENT_PATH": os.pathsep.join([str(MY_AGENT), str(ROOT), str(ROOT / "examples")]),
    }
