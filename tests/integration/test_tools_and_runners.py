"""Tool failures come back to the LLM as structured results and the conversation goes on;
sessions are spread over runner processes, each served by exactly one agent instance."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stella_contracts import EndReason, SttTranscript, ToolResult
from stella_services.runtime.bus import Bus
from stella_services.runtime.sessions import DispatchFailed, end_session, open_session
from tests.support.conversation import Conversation
from tests.support.history import TEST_SECRET, HistoryClient
from tests.support.processes import ServiceProcess
from tests.support.scripted_openai import Rule, ScriptedOpenAI, ToolCallReply
from tests.support.status import wait_until_released

ROOT = Path(__file__).resolve().parents[2]
Start = Callable[[str, dict[str, str]], ServiceProcess]


def call(name: str, **arguments: object) -> tuple[ToolCallReply, ...]:
    return (ToolCallReply(name=name, arguments=arguments),)


@pytest.fixture
def llm() -> Iterator[ScriptedOpenAI]:
    tools = ("add", "slow_lookup", "broken_report", "no_such_tool")
    rules = [Rule(when_tool_result_for=t, text=f"{t} said {{tool_result}}") for t in tools]
    rules += [
        Rule(when_user_contains="bad args", tool_calls=call("add", a="two", b=3)),
        Rule(when_user_contains="add", tool_calls=call("add", a=2, b=3)),
        Rule(when_user_contains="slow", tool_calls=call("slow_lookup", key="k1")),
        Rule(when_user_contains="report", tool_calls=call("broken_report", month="May")),
        Rule(when_user_contains="unknown", tool_calls=call("no_such_tool", x=1)),
    ]
    with ScriptedOpenAI(rules) as server:
        yield server


async def test_tool_errors_are_results_and_the_conversation_goes_on(
    bus: Bus, recorder_env: dict[str, str], start_service: Start, llm: ScriptedOpenAI
) -> None:
    env = {**recorder_env, **llm.env(), "STELLA_AGENT_PATH": str(ROOT / "examples")}
    executor = start_service(
        "tool-executor", {**env, "STELLA_TOOL_MODULES": "demo_agents.tool_lab"}
    )
    start_service(
        "agent-runner",
        {**env, "STELLA_AGENT": "demo_agents.tool_lab:ToolLabAgent", "STELLA_TOOLS_MODE": "remote"},
    )
    convo = await Conversation.open(bus, "tool-lab-agent")
    await convo.turn_done()

    def error_of(answer: str, tool: str) -> dict[str, str]:
        payload = json.loads(answer.removeprefix(f"{tool} said "))
        return payload["error"]  # type: ignore[no-any-return]

    assert await convo.say("please add") == 'add said {"sum": 5}'
    slow = error_of(await convo.say("something slow"), "slow_lookup")
    assert slow == {"kind": "timeout", "message": "slow_lookup did not finish within 0.5 s"}
    broken = error_of(await convo.say("the report"), "broken_report")
    assert broken == {
        "kind": "exception",
        "message": "RuntimeError: report service is down for May",
    }
    unknown = error_of(await convo.say("an unknown tool"), "no_such_tool")
    assert unknown["kind"] == "unknown_tool"
    assert "no tool named 'no_such_tool'" in unknown["message"]
    assert "add, broken_report, slow_lookup" in unknown["message"]
    bad = error_of(await convo.say("bad args"), "add")
    assert bad["kind"] == "invalid_arguments" and "a:" in bad["message"]
    # and after all that, the conversation goes on
    assert await convo.say("add again") == 'add said {"sum": 5}'

    results = [e.payload for e in convo.of_type("tool.result")]
    assert all(isinstance(r, ToolResult) for r in results)
    kinds = [r.error.kind.value if r.error else "ok" for r in results]  # type: ignore[union-attr]
    assert kinds == ["ok", "timeout", "exception", "unknown_tool", "invalid_arguments", "ok"]
    ran_in_executor = [r for r in results if r.executed_by.endswith(f"-{executor.pid}")]  # type: ignore[union-attr]
    assert len(ran_in_executor) == 5  # all but the unknown tool, refused by the agent itself
    assert len(convo.of_type("tool.call")) == 6
    await convo.close()


async def test_without_an_executor_tools_run_in_the_agent_process(
    bus: Bus, recorder_env: dict[str, str], start_service: Start, llm: ScriptedOpenAI
) -> None:
    env = {
        **recorder_env,
        **llm.env(),
        "STELLA_AGENT_PATH": str(ROOT / "examples"),
        "STELLA_AGENT_NAME": "lab-local",
    }
    runner = start_service(
        "agent-runner", {**env, "STELLA_AGENT": "demo_agents.tool_lab:ToolLabAgent"}
    )
    convo = await Conversation.open(bus, "lab-local")
    await convo.turn_done()
    assert await convo.say("please add") == 'add said {"sum": 5}'
    result = convo.of_type("tool.result")[0].payload
    assert isinstance(result, ToolResult)
    assert result.executed_by == f"agent-runner/{os.uname().nodename}-{runner.pid} (local)"
    await convo.close()


async def test_two_runners_share_twenty_sessions_one_instance_each(
    bus: Bus, recorder_env: dict[str, str], start_service: Start
) -> None:
    env = {
        **recorder_env,
        "STELLA_AGENT_PATH": str(ROOT / "examples"),
        "STELLA_AGENT_NAME": "echo",
        "STELLA_AGENT": "demo_agents.echo:EchoAgent",
    }
    start_service("recorder", env)
    runners = [start_service("agent-runner", env) for _ in range(2)]
    convos = await asyncio.gather(*(Conversation.open(bus, "echo") for _ in range(20)))
    await asyncio.gather(*(c.turn_done() for c in convos))
    replies = await asyncio.gather(*(c.say(f"message {i}") for i, c in enumerate(convos)))
    assert replies == [f"echo: message {i}" for i in range(20)]

    names = {f"agent-runner/{os.uname().nodename}-{r.pid}" for r in runners}
    served_by = [c.session.runner for c in convos]
    assert set(served_by) == names  # both runners took sessions
    for c in convos:
        greetings = [e for e in c.of_type("agent.text") if e.payload.text.startswith("hello")]  # type: ignore[attr-defined]
        sources = {str(e.source) for e in c.of_type("agent.text")}
        assert len(greetings) == 1
        assert sources == {c.session.runner}  # one agent instance answered, never two
    # and the record agrees: per session, agent events come from exactly one runner
    history = HistoryClient(env["STELLA_HISTORY_ADDR"])
    ids = ",".join(f"'{c.session.session_id}'" for c in convos)
    sql = (
        "SELECT max(n) FROM (SELECT session_id, uniqExact(source_instance) AS n "
        f"FROM stella.events WHERE session_id IN ({ids}) AND type = 'agent.text' "
        "GROUP BY session_id)"
    )
    total = (
        f"SELECT count() FROM stella.events WHERE session_id IN ({ids}) "
        "AND type = 'agent.text' AND is_chat = 1"
    )
    assert history.wait_for(total, 40) == 40
    assert history.scalar(sql) == 1
    for c in convos:
        await end_session(bus, c.session.session_id, EndReason.CLIENT)
        await c.close()
    history.close()


async def test_room_mode_serves_only_its_room(
    bus: Bus, recorder_env: dict[str, str], start_service: Start
) -> None:
    env = {
        **recorder_env,
        "STELLA_AGENT_PATH": str(ROOT / "examples"),
        "STELLA_AGENT_NAME": "echo-room",
        "STELLA_AGENT": "demo_agents.echo:EchoAgent",
        "ROOM_NAME": "lobby",
    }
    start_service("agent-runner", env)
    convo = await Conversation.open(bus, "echo-room", room_name="lobby")
    assert convo.session.room_name == "lobby"
    await convo.turn_done()
    assert await convo.say("hi") == "echo: hi"
    # the room holds one session at a time; and no runner serves other rooms or the pool
    with pytest.raises(DispatchFailed, match="at capacity"):
        await open_session(bus, "echo-room", TEST_SECRET, room_name="lobby", timeout=2)
    with pytest.raises(DispatchFailed, match="no runner"):
        await open_session(bus, "echo-room", TEST_SECRET, room_name="kitchen", timeout=2)
    # once the session ends, its instance is gone: the room takes a new session
    await end_session(bus, convo.session.session_id, EndReason.CLIENT)
    await wait_until_released(bus.nc, {"agent-runner": 1})  # the runner let go of it
    assert await convo.say_nothing_back("anyone there?")
    again = await Conversation.open(bus, "echo-room", room_name="lobby")
    await again.turn_done()
    assert await again.say("back") == "echo: back"
    await again.close()
    await convo.close()


async def test_transcripts_partials_do_not_take_a_turn_finals_do(
    bus: Bus, recorder_env: dict[str, str], start_service: Start
) -> None:
    env = {
        **recorder_env,
        "STELLA_AGENT_PATH": str(ROOT / "examples"),
        "STELLA_AGENT_NAME": "echo-stt",
        "STELLA_AGENT": "demo_agents.echo:EchoAgent",
    }
    start_service("agent-runner", env)
    convo = await Conversation.open(bus, "echo-stt")
    await convo.turn_done()
    sid = convo.session.session_id
    await bus.emit(sid, SttTranscript(text="book a", is_final=False))
    await bus.emit(sid, SttTranscript(text="book a table", is_final=False))
    await bus.emit(sid, SttTranscript(text="Book a table for two.", is_final=True))
    done = await convo.turn_done()
    assert not done.error and done.replies == 1
    finals = [e.payload.text for e in convo.of_type("agent.text") if e.payload.is_final]  # type: ignore[attr-defined]
    assert finals[1:] == ["echo: Book a table for two."]
    deltas = [e.payload.text for e in convo.of_type("agent.text") if not e.payload.is_final]  # type: ignore[attr-defined]
    assert deltas == ["echo: ", "Book a table for two."]
    await convo.close()


async def test_agent_run_in_the_authors_main_is_the_runner(
    bus: Bus, recorder_env: dict[str, str], tmp_path: Path
) -> None:
    """`python -m src.agent` (the guide's main(): agent.run()) serves sessions by itself."""
    example = ROOT / "examples" / "my-agent"
    llm = ScriptedOpenAI([Rule(text="Hi from the scripted model.")]).__enter__()
    env = {
        **os.environ,
        **recorder_env,
        **llm.env(),
        "LIVEKIT_URL": "",
        "LIVEKIT_API_KEY": "",
        "LIVEKIT_API_SECRET": "",
        "ROOM_NAME": "",
        "TASKS_DB": str(tmp_path / "a.db"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "src.agent"], cwd=example, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("STELLA-READY agent-runner my-custom-agent")
        convo = await Conversation.open(bus, "my-custom-agent")
        await convo.turn_done()
        assert await convo.say("hello?") == "Hi from the scripted model."
        await end_session(bus, convo.session.session_id, EndReason.CLIENT)
        await convo.close()
    finally:
        proc.terminate()
        assert proc.wait(20) == 0
        llm.stop()
    # the guide's on_connect printed the room it serves
    assert f"Connected to room: room-{convo.session.session_id}" in proc.stdout.read()
