"""The scripted OpenAI server, driven by the real ``openai`` client (in-thread and as a process)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from tests.support.scripted_openai import READY_LINE, Rule, ScriptedOpenAI, ScriptError

REPO = Path(__file__).resolve().parents[2]

CREATE_TASK: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "create_task",
        "description": "Create a task for the user.",
        "parameters": {
            "type": "object",
            "properties": {"title": {"type": "string"}, "due": {"type": "string"}},
            "required": ["title"],
        },
    },
}

TASK_SCRIPT: list[dict[str, Any]] = [
    {
        "when_tool_result_for": "create_task",
        "reply": {"text": "Done. The system said: {tool_result}"},
    },
    {
        "when_user_contains": "remind me",
        "reply": {
            "tool_calls": [
                {"name": "create_task", "arguments": {"title": "call mum", "due": "tomorrow 9:00"}}
            ]
        },
    },
    {"when_user_contains": "hello", "reply": {"text": "Hi there, how can I help you today?"}},
    {"reply": {"text": "Sorry, I did not catch that."}},
]


def client(base_url: str, **kwargs: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base_url, api_key="test", **kwargs)


@pytest.fixture
def server() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI(TASK_SCRIPT) as s:
        yield s


async def test_plain_text_answer(server: ScriptedOpenAI) -> None:
    assert server.base_url.startswith("http://127.0.0.1:")
    reply = await client(server.base_url).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hello STELLA"}]
    )
    assert reply.object == "chat.completion"
    assert reply.model == "gpt-test"
    choice = reply.choices[0]
    assert choice.message.content == "Hi there, how can I help you today?"
    assert choice.message.tool_calls is None
    assert choice.finish_reason == "stop"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 8  # one per word
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 8


async def test_fallback_rule_and_models_list(server: ScriptedOpenAI) -> None:
    c = client(server.base_url)
    reply = await c.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "mumble"}]
    )
    assert reply.choices[0].message.content == "Sorry, I did not catch that."
    models = await c.models.list()
    assert [m.id for m in models.data] == ["scripted-model"]


async def test_streamed_answer_reassembles_to_the_scripted_text(server: ScriptedOpenAI) -> None:
    stream = await client(server.base_url).chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "well hello"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    finish: list[str] = []
    usage_chunks = 0
    async for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage_chunks += 1
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish.append(choice.finish_reason)
    assert "".join(pieces) == "Hi there, how can I help you today?"
    assert len(pieces) == 8  # one chunk per word, so clients really reassemble
    assert finish == ["stop"]
    assert usage_chunks == 1


async def test_tool_round_trip(server: ScriptedOpenAI) -> None:
    c = client(server.base_url)
    messages: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "You are a helpful voice assistant."},
        {"role": "user", "content": "Please remind me to call mum"},
    ]
    first = await c.chat.completions.create(model="m", messages=messages, tools=[CREATE_TASK])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.type == "function"
    assert call.function.name == "create_task"
    assert json.loads(call.function.arguments) == {"title": "call mum", "due": "tomorrow 9:00"}

    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "create_task", "arguments": call.function.arguments},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": '{"task_id": "T-4711"}'},
    ]
    second = await c.chat.completions.create(model="m", messages=messages, tools=[CREATE_TASK])
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == 'Done. The system said: {"task_id": "T-4711"}'

    sent = server.requests
    assert len(sent) == 2
    assert [t["function"]["name"] for t in sent[0]["tools"]] == ["create_task"]
    assert sent[0]["tools"][0]["function"]["parameters"]["required"] == ["title"]
    assert [m["role"] for m in sent[1]["messages"]] == ["system", "user", "assistant", "tool"]
    assert sent[1]["messages"][3]["tool_call_id"] == call.id


async def test_streamed_tool_call_deltas_reassemble(server: ScriptedOpenAI) -> None:
    stream = await client(server.base_url).chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "remind me to call mum"}],
        tools=[CREATE_TASK],
        stream=True,
    )
    ids: dict[int, str] = {}
    names: dict[int, str] = {}
    args: dict[int, str] = {}
    arg_chunks = 0
    finish: list[str] = []
    async for chunk in stream:
        for choice in chunk.choices:
            for d in choice.delta.tool_calls or []:
                if d.id:
                    ids[d.index] = d.id
                if d.function and d.function.name:
                    names[d.index] = d.function.name
                if d.function and d.function.arguments:
                    args[d.index] = args.get(d.index, "") + d.function.arguments
                    arg_chunks += 1
            if choice.finish_reason:
                finish.append(choice.finish_reason)
    assert names == {0: "create_task"}
    assert ids[0].startswith("call_")
    assert json.loads(args[0]) == {"title": "call mum", "due": "tomorrow 9:00"}
    assert arg_chunks > 1
    assert finish == ["tool_calls"]


async def test_old_tool_results_do_not_match_a_new_turn(server: ScriptedOpenAI) -> None:
    reply = await client(server.base_url).chat.completions.create(
        model="m",
        messages=[
            {"role": "user", "content": "remind me to call mum"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "create_task", "arguments": "{}"},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "ok"},
            {"role": "assistant", "content": "Done."},
            {"role": "user", "content": "hello again"},
        ],
    )
    assert reply.choices[0].message.content == "Hi there, how can I help you today?"


async def test_missing_messages_is_a_400_in_openai_shape(server: ScriptedOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client(server.base_url).chat.completions.create(model="m", messages=[])
    assert caught.value.status_code == 400
    assert caught.value.code == "missing_messages"
    assert caught.value.type == "invalid_request_error"
    assert "messages" in caught.value.message

    async with httpx.AsyncClient() as http:
        raw = await http.post(f"{server.base_url}/chat/completions", content=b"not json")
    assert raw.status_code == 400
    assert raw.json()["error"]["code"] == "invalid_json"


async def test_no_matching_rule_is_a_500_naming_the_user_message() -> None:
    with ScriptedOpenAI([{"when_user_contains": "weather", "reply": {"text": "Sunny."}}]) as s:
        # Default retries stay on: the server tells the client not to retry.
        with pytest.raises(openai.InternalServerError) as caught:
            await client(s.base_url).chat.completions.create(
                model="m", messages=[{"role": "user", "content": "book a flight"}]
            )
        assert caught.value.status_code == 500
        assert caught.value.code == "no_matching_rule"
        assert "'book a flight'" in caught.value.message
        assert len(s.requests) == 1


def test_sync_client_and_rules_as_objects() -> None:
    rules = [Rule(when_user_contains="ping", text="pong"), Rule(text="fallback")]
    with ScriptedOpenAI(rules) as s:
        c = openai.OpenAI(base_url=s.base_url, api_key="test")
        reply = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "ping"}])
        assert reply.choices[0].message.content == "pong"
        s.set_rules([{"reply": {"text": "changed"}}])
        reply = c.chat.completions.create(model="m", messages=[{"role": "user", "content": "ping"}])
        assert reply.choices[0].message.content == "changed"


def test_bad_rules_are_rejected() -> None:
    with pytest.raises(ScriptError, match="when_user_contians"):
        Rule.from_dict({"when_user_contians": "x", "reply": {"text": "y"}})
    with pytest.raises(ScriptError, match="no reply"):
        Rule.from_dict({"when_user_contains": "x"})


async def test_streaming_delays() -> None:
    text = "one two three four five"
    with ScriptedOpenAI([{"reply": {"text": text}}], ttft_delay=0.3, token_delay=0.05) as s:
        started = time.monotonic()
        stream = await client(s.base_url).chat.completions.create(
            model="m", messages=[{"role": "user", "content": "count"}], stream=True
        )
        first_token: float | None = None
        pieces: list[str] = []
        async for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    if first_token is None:
                        first_token = time.monotonic() - started
                    pieces.append(choice.delta.content)
        total = time.monotonic() - started
    assert "".join(pieces) == text
    assert first_token is not None and first_token >= 0.3
    # four gaps between five word chunks; arrival times jitter, so allow 20% (no delay: ~0)
    assert total - first_token >= 0.8 * 4 * 0.05


# -- subprocess mode -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server_process(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"rules": TASK_SCRIPT}))
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.support.scripted_openai",
            "--port",
            str(port),
            "--script",
            str(script),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 30
        while True:  # listening = /v1/models answers
            if proc.poll() is not None:
                pytest.fail(
                    f"scripted server exited early: {proc.stderr.read() if proc.stderr else ''}"
                )
            try:
                if httpx.get(f"{base_url}/models", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("scripted server did not start listening")
            time.sleep(0.05)
        yield proc, base_url
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


async def test_subprocess_mode(server_process: tuple[subprocess.Popen[str], str]) -> None:
    proc, base_url = server_process
    reply = await client(base_url).chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "remind me to call mum"}],
        tools=[CREATE_TASK],
    )
    calls = reply.choices[0].message.tool_calls
    assert calls is not None and calls[0].type == "function"
    assert calls[0].function.name == "create_task"
    assert json.loads(calls[0].function.arguments)["title"] == "call mum"

    async with httpx.AsyncClient() as http:
        got = await http.get(f"{base_url.removesuffix('/v1')}/scripted/requests")
    recorded = got.json()
    assert [t["function"]["name"] for t in recorded[0]["tools"]] == ["create_task"]

    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(10) == 0
    assert proc.stdout is not None
    assert proc.stdout.read().startswith(f"{READY_LINE} {base_url}")
