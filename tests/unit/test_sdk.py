import asyncio
from pathlib import Path

import pytest

from stella_contracts import ToolErrorKind
from stella_sdk import AgentOutput, AudioPipeline, BaseAgent, NotInSession, OutputKind, tool
from stella_sdk.agent import kebab
from stella_sdk.history import clamp_limit
from stella_sdk.settings import AgentSettings
from stella_sdk.tool_run import as_llm_result, run_tool
from stella_sdk.toolbox import Toolbox


class MyCustomAgent(BaseAgent):
    pass


class Named(BaseAgent):
    name = "front-desk"


def test_agent_names() -> None:
    assert kebab("MyCustomAgent") == "my-custom-agent"
    assert MyCustomAgent.agent_name(AgentSettings()) == "my-custom-agent"
    assert Named.agent_name(AgentSettings()) == "front-desk"
    assert Named.agent_name(AgentSettings(agent_name="override")) == "override"


def test_session_only_methods_say_so_before_a_session() -> None:
    agent = MyCustomAgent()
    assert agent.room_name == "" and agent.has_history is False
    with pytest.raises(NotInSession):
        _ = agent.session_id
    with pytest.raises(NotInSession):
        asyncio.run(agent.get_chat_history())


def test_agent_output_constructors() -> None:
    final = AgentOutput.text_final("s1", "Hello.")
    delta = AgentOutput.text_delta("s1", "Hel")
    assert (final.kind, final.is_final, final.text) == (OutputKind.TEXT_FINAL, True, "Hello.")
    assert (delta.kind, delta.is_final) == (OutputKind.TEXT_DELTA, False)


@pytest.mark.parametrize(
    ("given", "used"), [(1, 1), (20, 20), (500, 500), (501, 500), (10_000, 500)]
)
def test_history_limit_is_capped_at_500(given: int, used: int) -> None:
    assert clamp_limit(given) == used


def test_history_limit_below_one_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        clamp_limit(0)


def test_pipeline_names_its_providers() -> None:
    p = AudioPipeline(stt_provider="sherpa", tts_provider="kokoro")
    assert (p.stt_provider, p.tts_provider) == ("sherpa", "kokoro")
    with pytest.raises(ValueError, match="stt_provider 'deepgram'"):
        AudioPipeline(stt_provider="deepgram")
    with pytest.raises(ValueError, match="tts_provider 'x'"):
        AudioPipeline(tts_provider="x")


def test_text_to_speech_stream_outside_a_session_is_a_clear_error() -> None:
    async def consume() -> None:
        async for _ in AudioPipeline().text_to_speech_stream("hi"):
            pass

    with pytest.raises(RuntimeError, match="inside a session"):
        asyncio.run(consume())


@tool
async def create_task(title: str, description: str) -> dict:
    """Create a task.

    Args:
        title: Task title
        description: Task description
    """
    return {"title": title, "description": description}


def plain(x: int) -> int:
    """Double it.

    Args:
        x: a number
    """
    return 2 * x


def test_toolbox_registers_decorated_and_plain_functions() -> None:
    box = Toolbox()
    box.register(create_task)
    box.register(plain)
    box.register(create_task)  # the same tool twice is fine
    assert box.names() == ["create_task", "plain"]
    assert [d["function"]["name"] for d in box.definitions()] == ["create_task", "plain"]
    assert box.definitions()[1]["function"]["parameters"]["required"] == ["x"]

    @tool(name="plain")
    def impostor(y: int) -> int:
        """Other."""
        return y

    with pytest.raises(ValueError, match="already registered as 'plain'"):
        box.register(impostor)


async def test_run_tool_outcomes() -> None:
    ok = await run_tool(
        create_task,
        {"title": "a", "description": "b"},
        call_id="c1",
        deadline_s=1,
        executed_by="here",
    )
    assert ok.ok and ok.result == {"title": "a", "description": "b"} and ok.executed_by == "here"
    assert as_llm_result(ok) == {"title": "a", "description": "b"}

    bad = await run_tool(create_task, {"title": "a"}, call_id="c2", deadline_s=1, executed_by="")
    assert bad.error is not None and bad.error.kind is ToolErrorKind.INVALID_ARGUMENTS
    assert "description" in bad.error.message
    assert as_llm_result(bad)["error"]["kind"] == "invalid_arguments"

    @tool
    async def sleepy() -> None:
        """Sleeps."""
        await asyncio.sleep(2)

    slow = await run_tool(sleepy, {}, call_id="c3", deadline_s=0.05, executed_by="")
    assert slow.error is not None and slow.error.kind is ToolErrorKind.TIMEOUT
    assert slow.error.message == "sleepy did not finish within 0.05 s"

    @tool
    def boom(path: Path) -> str:
        """Fails.

        Args:
            path: a path
        """
        raise FileNotFoundError(str(path))

    failed = await run_tool(boom, {"path": "/nope"}, call_id="c4", deadline_s=1, executed_by="")
    assert failed.error is not None and failed.error.kind is ToolErrorKind.EXCEPTION
    assert failed.error.message == "FileNotFoundError: /nope"
