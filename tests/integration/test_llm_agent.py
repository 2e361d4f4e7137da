"""The guide's MyCustomAgent, unchanged, running on the local llm service instead of a
cloud model: its non-streamed tool loop creates a task through the tool-executor, then it
answers. Every part is a real process (NATS, tool-executor, agent-runner, llm)."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest

from stella_contracts import EndReason, ToolResult
from stella_services.runtime.bus import Bus
from stella_services.runtime.nats_server import free_port
from stella_services.runtime.sessions import end_session
from tests.support.conversation import Conversation
from tests.support.processes import ServiceProcess

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
MY_AGENT = ROOT / "examples" / "my-agent"
Start = Callable[[str, dict[str, str]], ServiceProcess]


async def test_guide_agent_runs_on_the_local_model(
    bus: Bus, recorder_env: dict[str, str], start_service: Start, tmp_path: Path
) -> None:
    port = free_port()
    start_service(
        "llm",
        {
            "STELLA_LLM_PORT": str(port),
            "STELLA_LLM_MODEL": "qwen2.5-coder-1.5b",
            "STELLA_LLM_SEED": "7",  # the model's choices repeat from run to run
        },
    )
    env = {
        **recorder_env,
        # what an agent needs to use the local model: its URL, and any key
        "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1",
        "OPENAI_API_KEY": "local",
        "OPENAI_MODEL": "gpt-4o",  # the guide's default name, served by the local model
        "LIVEKIT_URL": "",
        "LIVEKIT_API_KEY": "",
        "LIVEKIT_API_SECRET": "",
        "ROOM_NAME": "",
        "TASKS_DB": str(tmp_path / "agent.db"),
        "STELLA_AGENT_PATH": os.pathsep.join([str(MY_AGENT), str(ROOT)]),
    }
    start_service("tool-executor", {**env, "STELLA_TOOL_MODULES": "src.tools"})
    start_service(
        "agent-runner",
        {**env, "STELLA_AGENT": "src.agent:MyCustomAgent", "STELLA_TOOLS_MODE": "remote"},
    )
    convo = await Conversation.open(bus, "my-custom-agent")
    await convo.turn_done()  # the greeting

    answer = await convo.say("Please create a task to buy milk.", timeout=240)

    results = [e.payload for e in convo.of_type("tool.result")]
    assert results and isinstance(results[0], ToolResult) and results[0].ok, results
    with sqlite3.connect(tmp_path / "agent.db") as db:
        titles = [row[0] for row in db.execute("SELECT title FROM tasks")]
    assert len(titles) == 1 and "milk" in titles[0].lower(), titles
    assert answer.strip(), "the agent said nothing after the tool result"
    await end_session(bus, convo.session.session_id, EndReason.CLIENT)  # the runner drains
    await convo.close()
