"""What the local llm asks llama.cpp for an OpenAI request: checks, tool plan, messages and
parameters (pure functions, no model)."""

import json
from typing import Any

import pytest
from pydantic import ValidationError

from stella_services.llm.prompt import (
    DEFAULT_SYSTEM,
    LLGUIDANCE_JSON,
    Defaults,
    llama_payload,
    plan_tools,
    render_messages,
)
from stella_services.llm.wire import ChatRequest, RequestProblem

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
TASK = {
    "type": "function",
    "function": {
        "name": "create_task",
        "description": "Create a task.",
        "parameters": {"type": "object", "properties": {"title": {"type": "string"}}},
    },
}


def request(**fields: Any) -> ChatRequest:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], **fields}
    return ChatRequest.model_validate(body)


def test_plan_follows_tool_choice() -> None:
    assert not plan_tools(request()).constrained
    auto = plan_tools(request(tools=[WEATHER, TASK]))
    assert (auto.allowed, auto.allow_reply) == (("get_weather", "create_task"), True)
    none = plan_tools(request(tools=[WEATHER, TASK], tool_choice="none"))
    assert (none.allowed, none.allow_reply, none.constrained) == ((), True, True)
    required = plan_tools(request(tools=[WEATHER, TASK], tool_choice="required"))
    assert (required.allowed, required.allow_reply) == (("get_weather", "create_task"), False)
    named = {"type": "function", "function": {"name": "create_task"}}
    one = plan_tools(request(tools=[WEATHER, TASK], tool_choice=named))
    assert (one.allowed, one.allow_reply) == (("create_task",), False)
    assert one.schema()["properties"]["action"] == {"const": "create_task"}


def test_a_tool_named_reply_moves_the_reply_action_aside() -> None:
    reply_tool = {"type": "function", "function": {"name": "reply", "description": "x"}}
    plan = plan_tools(request(tools=[reply_tool]))
    assert plan.reply == "reply_1"
    actions = [v["properties"]["action"]["const"] for v in plan.schema()["anyOf"]]
    assert actions == ["reply", "reply_1"]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 2}, "n"),
        ({"tools": [WEATHER, WEATHER]}, "tools"),
        ({"tool_choice": "required"}, "tool_choice"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "tool_choice",
        ),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
            "messages",
        ),
    ],
)
def test_check_refuses_what_a_local_model_cannot_honour(fields: dict[str, Any], param: str) -> None:
    with pytest.raises(RequestProblem) as refused:
        request(**fields).check()
    assert refused.value.param == param


def test_malformed_requests_do_not_validate() -> None:
    with pytest.raises(ValidationError):
        ChatRequest.model_validate({"model": "m", "messages": []})
    with pytest.raises(ValidationError):
        ChatRequest.model_validate({"model": "m", "messages": [{"role": "robot", "content": ""}]})
    with pytest.raises(ValidationError):
        request(temperature=3)


def test_plain_messages_pass_through_with_text_parts_joined() -> None:
    req = request(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "Speak English."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Capital "},
                    {"type": "text", "text": "of France?"},
                ],
            },
            {"role": "assistant", "content": "Paris.", "refusal": None, "annotations": []},
        ]
    )
    assert render_messages(req.messages, plan_tools(req)) == [
        {"role": "system", "content": "Be brief.\n\nSpeak English."},
        {"role": "user", "content": "Capital of France?"},
        {"role": "assistant", "content": "Paris."},
    ]


def test_tools_go_into_the_system_prompt_and_history_into_decisions() -> None:
    req = request(
        tools=[WEATHER, TASK],
        messages=[
            {"role": "system", "content": "You are a voice assistant."},
            {"role": "user", "content": "Hello"},
            {"role": "assistant", "content": "Hi! How can I help?"},
            {"role": "user", "content": "Weather in Paris and Rome?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
                    },
                    {
                        "id": "c2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": '{"temp_c": 17}'},
            {"role": "tool", "tool_call_id": "c2", "content": "sunny"},
        ],
    )
    out = render_messages(req.messages, plan_tools(req))
    system = out[0]["content"]
    assert system.startswith("You are a voice assistant.\n\n# Functions")
    assert "- get_weather: Current weather for a city. Arguments: " in system
    assert '"required": ["city"]' in system
    assert '{"action":"reply","reply":"<text>"}' in system
    assert out[1:] == [
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": '{"action":"reply","reply":"Hi! How can I help?"}'},
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {
            "role": "assistant",
            "content": '{"action":"get_weather","arguments":{"city":"Paris"}}\n'
            '{"action":"get_weather","arguments":{"city":"Rome"}}',
        },
        {
            "role": "user",
            "content": '<tool_response>\n{"name":"get_weather","result":{"temp_c":17}}\n'
            "</tool_response>\n"
            '<tool_response>\n{"name":"get_weather","result":"sunny"}\n</tool_response>',
        },
    ]


def test_the_tool_prompt_does_not_depend_on_tool_choice() -> None:
    """So the prompt cache serves the same prefix whatever the agent asks this turn."""
    prompts = {
        render_messages(r.messages, plan_tools(r))[0]["content"]
        for r in (
            request(tools=[WEATHER, TASK]),
            request(tools=[WEATHER, TASK], tool_choice="none"),
            request(tools=[WEATHER, TASK], tool_choice="required"),
        )
    }
    assert len(prompts) == 1
    assert next(iter(prompts)).startswith(DEFAULT_SYSTEM)


def test_payload_plain() -> None:
    req = request(max_tokens=20, temperature=0.7, stop="END", seed=3, top_p=0.9)
    payload = llama_payload(req, plan_tools(req), Defaults(max_tokens=99, temperature=0.1))
    assert payload["stream"] is True and payload["stream_options"] == {"include_usage": True}
    assert payload["cache_prompt"] is True
    assert (payload["max_tokens"], payload["temperature"]) == (20, 0.7)
    assert (payload["stop"], payload["seed"], payload["top_p"]) == (["END"], 3, 0.9)
    assert "grammar" not in payload
    defaults = llama_payload(request(), plan_tools(request()), Defaults(99, 0.1, 5))
    assert (defaults["max_tokens"], defaults["temperature"], defaults["seed"]) == (99, 0.1, 5)
    assert "seed" not in llama_payload(request(), plan_tools(request()), Defaults())
    newer = request(max_completion_tokens=7, max_tokens=20)
    assert llama_payload(newer, plan_tools(newer), Defaults())["max_tokens"] == 7


def test_payload_with_tools_carries_the_decision_grammar_and_no_stop() -> None:
    req = request(tools=[WEATHER], stop=["\n"], response_format={"type": "json_object"})
    payload = llama_payload(req, plan_tools(req), Defaults())
    assert payload["grammar"].startswith(LLGUIDANCE_JSON)
    schema = json.loads(payload["grammar"].removeprefix(LLGUIDANCE_JSON))
    assert schema == plan_tools(req).schema()
    assert "stop" not in payload and "response_format" not in payload
