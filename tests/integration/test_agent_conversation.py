"""A text conversation with tools, end to end over the bus, with every part a real process:
NATS, the recorder (embedded ClickHouse), a tool-executor and an agent-runner hosting the
guide's MyCustomAgent; the LLM is a scripted OpenAI-compatible server on loopback, spoken to
by the real `openai` client."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stella_contracts import EndReason, ToolResult
from stella_services.runtime.bus import Bus
from stella_services.runtime.sessions import end_session
from tests.support.conversation import Conversation
from tests.support.guide import guide_env
from tests.support.history import HistoryClient
from tests.support.processes import ServiceProcess
from tests.support.scripted_openai import Rule, ScriptedOpenAI, ToolCallReply

Start = Callable[[str, dict[str, str]], ServiceProcess]


@pytest.fixture
def llm() -> Iterator[ScriptedOpenAI]:
    rules = [
        Rule(when_tool_result_for="create_task", text="Done! The system said: {tool_result}"),
        Rule(when_tool_result_for="search_database", text="I found: {tool_result}"),
        Rule(
            when_user_contains="task",
            tool_calls=(
                ToolCallReply(
                    name="create_task",
                    arguments={"title": "Buy milk", "description": "Two liters, organic"},
                ),
            ),
        ),
        Rule(
            when_user_contains="hours",
            tool_calls=(
                ToolCallReply(name="search_database", arguments={"query": "opening hours"}),
            ),
        ),
        Rule(text="I can help with tasks and questions."),
    ]
    with ScriptedOpenAI(rules) as server:
        yield server


async def test_guide_agent_creates_a_task_through_the_tool_executor(
    bus: Bus,
    recorder_env: dict[str, str],
    start_service: Start,
    llm: ScriptedOpenAI,
    tmp_path: Path,
) -> None:
    env = guide_env(recorder_env, llm, tmp_path)
    start_service("recorder", env)
    executor = start_service("tool-executor", {**env, "STELLA_TOOL_MODULES": "src.tools"})
    start_service(
        "agent-runner",
        {
            **env,
            "STELLA_AGENT": "tests.support.agents:HistoryProbeAgent",
            "STELLA_AGENT_NAME": "my-custom-agent",
            "STELLA_TOOLS_MODE": "remote",
        },
    )
    convo = await Conversation.open(bus, "my-custom-agent")
    sid = convo.session.session_id
    await convo.turn_done()  # the greeting
    assert [e.payload.text for e in convo.of_type("agent.text")] == [  # type: ignore[attr-defined]
        "Hello! How can I help you today?"
    ]

    answer = await convo.say("Please create a task to buy milk")
    assert answer.startswith("Done! The system said: ")
    told = json.loads(answer.removeprefix("Done! The system said: "))
    assert told["status"] == "created" and told["message"] == "Task 'Buy milk' created successfully"

    # the tool really ran in the tool-executor process, against the example's SQLite
    result = convo.of_type("tool.result")[0].payload
    assert isinstance(result, ToolResult) and result.ok
    assert result.executed_by.startswith("tool-executor/")
    assert result.executed_by.endswith(f"-{executor.pid}")  # that process, not the runner
    with sqlite3.connect(tmp_path / "agent.db") as db:
        rows = db.execute("SELECT id, title, description FROM tasks").fetchall()
    assert rows == [(told["task_id"], "Buy milk", "Two liters, organic")]

    # the LLM got the tools and, on the second call, the tool's result
    first, second = llm.requests[-2:]
    assert {t["function"]["name"] for t in first["tools"]} == {"search_database", "create_task"}
    assert second["messages"][-1]["role"] == "tool"
    assert json.loads(second["messages"][-1]["content"])["task_id"] == told["task_id"]

    # ClickHouse holds the user message, the tool call, the tool result and the answer
    history = HistoryClient(env["STELLA_HISTORY_ADDR"])
    where = f"session_id = '{sid}' AND type IN ('user.text','tool.call','tool.result','agent.text')"
    assert history.wait_for(f"SELECT count() FROM stella.events WHERE {where}", 5) == 5
    # ... and get_chat_history() from inside the agent returns them in order (the "/history"
    # message itself may or may not be recorded yet when the agent reads: not asserted)
    said = json.loads(await convo.say("/history"))
    # (the runner's lifecycle.claimed comes as it came: before or after the greeting)
    skip = {"agent.turn_done", "lifecycle.claimed"}
    assert [(m["role"], m["message_type"]) for m in said if m["message_type"] not in skip][:6] == [
        ("system", "lifecycle.created"),
        ("assistant", "agent_text"),
        ("user", "user_text"),
        ("system", "tool.call"),
        ("system", "tool.result"),
        ("assistant", "agent_text"),
    ]
    chat = [m for m in said if m["message_type"] in ("user_text", "agent_text")]
    assert [m["content"] for m in chat][:3] == [
        "Hello! How can I help you today?",
        "Please create a task to buy milk",
        answer,
    ]
    for m in said:
        assert set(m) == {"id", "timestamp", "role", "content", "message_type", "envelope"}
        assert m["envelope"]["id"] == m["id"] and m["timestamp"].endswith("Z")
    tool_call = next(m for m in said if m["message_type"] == "tool.call")
    assert tool_call["envelope"]["payload"]["arguments"] == {
        "title": "Buy milk",
        "description": "Two liters, organic",
    }
    await end_session(bus, sid, EndReason.CLIENT)
    await convo.close()
    history.close()


async def test_process_style_agent_reads_its_history(
    bus: Bus,
    recorder_env: dict[str, str],
    start_service: Start,
    llm: ScriptedOpenAI,
    tmp_path: Path,
) -> None:
    env = guide_env(recorder_env, llm, tmp_path)
    start_service("recorder", env)
    start_service(
        "agent-runner", {**env, "STELLA_AGENT": "examples.demo_agents.history_agent:MyAgent"}
    )
    convo = await Conversation.open(bus, "my-agent")
    await convo.turn_done()
    first = await convo.say("Where is your office?")
    assert first == "I can help with tasks and questions."  # no tools: the fallback rule
    history = HistoryClient(env["STELLA_HISTORY_ADDR"])
    sid = convo.session.session_id
    history.wait_for(
        f"SELECT count() FROM stella.events WHERE session_id = '{sid}' AND is_chat = 1", 3
    )
    await convo.say("And on Saturday?")
    system = llm.requests[-1]["messages"][0]
    assert system["role"] == "system"
    assert system["content"].startswith("Previous conversation:\n")
    assert "user: Where is your office?" in system["content"]
    assert "assistant: I can help with tasks and questions." in system["content"]
    assert llm.requests[-1]["messages"][1] == {"role": "user", "content": "And on Saturday?"}
    await convo.close()
    history.close()
