from pathlib import Path

import pytest

from stella_services.cli.plan import example_dir, local_plan


def test_plan_starts_recorder_first_then_tools_then_agent() -> None:
    example = example_dir()
    assert example is not None and (example / "src" / "agent.py").exists()
    plan = local_plan(Path("/data"), {}, example, llm_port=8123)
    assert [p.name for p in plan] == [
        "recorder",
        "stt",
        "tts",
        "llm",
        "tool-executor",
        "agent-runner",
        "gateway",
    ]
    assert plan[3].env["STELLA_LLM_PORT"] == "8123"
    runner = plan[5]
    # no cloud key: the guide's AsyncOpenAI() reaches the local llm
    assert runner.env["OPENAI_BASE_URL"] == "http://127.0.0.1:8123/v1"
    assert runner.env["OPENAI_API_KEY"] == "local"
    assert runner.env["STELLA_AGENT"] == "src.agent:MyCustomAgent"
    assert runner.env["STELLA_AGENT_NAME"] == "my-custom-agent"
    assert runner.env["ROOM_NAME"] == "" and runner.env["LIVEKIT_URL"] == ""
    assert runner.env["TASKS_DB"] == "/data/my-agent/agent.db"
    assert runner.cwd == example and plan[4].env["STELLA_TOOL_MODULES"] == "src.tools"


def test_plan_keeps_given_keys_and_filters() -> None:
    plan = local_plan(
        Path("/d"), {"OPENAI_API_KEY": "sk-x", "LIVEKIT_URL": "wss://lk"}, Path("/ex")
    )
    assert "llm" not in [p.name for p in plan]  # a real key: nothing local is started
    assert plan[4].env["OPENAI_API_KEY"] == "sk-x" and plan[4].env["LIVEKIT_URL"] == "wss://lk"
    assert "OPENAI_BASE_URL" not in plan[4].env
    given = local_plan(Path("/d"), {"OPENAI_BASE_URL": "http://vllm:8000/v1"}, Path("/ex"))
    assert "llm" not in [p.name for p in given]
    assert [p.name for p in local_plan(Path("/d"), {}, None)] == [
        "recorder",
        "stt",
        "tts",
        "gateway",
    ]
    assert [p.name for p in local_plan(Path("/d"), {}, Path("/ex"), ["recorder"])] == ["recorder"]
    with pytest.raises(ValueError, match="unknown service"):
        local_plan(Path("/d"), {}, None, ["agent-runner"])


def test_plan_with_replicas_names_each_and_keeps_one_recorder_and_llm() -> None:
    plan = local_plan(Path("/d"), {}, Path("/ex"), llm_port=8123, replicas=2)
    assert [p.name for p in plan] == [
        "recorder",
        "stt-1",
        "stt-2",
        "tts-1",
        "tts-2",
        "llm",
        "tool-executor-1",
        "tool-executor-2",
        "agent-runner-1",
        "agent-runner-2",
        "gateway-1",
        "gateway-2",
    ]
    assert {p.service for p in plan if p.name.startswith("agent-runner")} == {"agent-runner"}
    assert plan[8].env == plan[9].env and plan[8].cwd == Path("/ex")
