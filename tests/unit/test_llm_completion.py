"""OpenAI answer shapes built from generated text (pure functions, no model)."""

import json
from typing import Any

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from stella_services.llm.completion import (
    DecisionDeltas,
    Identity,
    PlainDeltas,
    Translator,
    chunk,
    completion,
    fold_chunks,
    usage_chunk,
    usage_from_llama,
)
from stella_services.llm.engine import engine_error

IDENT = Identity("chatcmpl-1", 1700000000, "local-model")


def run(translator: Translator, pieces: list[str], reported: str | None) -> list[dict[str, Any]]:
    chunks = [chunk(IDENT, {"role": "assistant", "content": ""})]
    for piece in pieces:
        chunks += [chunk(IDENT, d) for d in translator.feed(piece)]
    deltas, reason = translator.finish(reported)
    chunks += [chunk(IDENT, d) for d in deltas]
    chunks.append(chunk(IDENT, {}, reason))
    chunks.append(
        usage_chunk(IDENT, usage_from_llama({"prompt_tokens": 9, "completion_tokens": 4}))
    )
    return chunks


def test_plain_text_streams_and_folds() -> None:
    chunks = run(PlainDeltas(), ["The", " capital", "", " is Paris."], "stop")
    assert [c["choices"][0]["delta"].get("content") for c in chunks[1:4]] == [
        "The",
        " capital",
        " is Paris.",
    ]
    for c in chunks:
        ChatCompletionChunk.model_validate(c)  # the openai client's own models accept them
    message, reason, used = fold_chunks(chunks)
    assert message == {
        "role": "assistant",
        "content": "The capital is Paris.",
        "refusal": None,
        "annotations": [],
    }
    body = completion(IDENT, message, reason, used)
    parsed = ChatCompletion.model_validate(body)
    assert parsed.choices[0].finish_reason == "stop"
    assert parsed.usage is not None and parsed.usage.total_tokens == 13


def test_a_decided_reply_streams_as_content_token_by_token() -> None:
    text = '{"action":"reply","reply":"It is 17 degrees in Paris."}'
    pieces = [text[i : i + 4] for i in range(0, len(text), 4)]
    chunks = run(DecisionDeltas("reply", "call_1"), pieces, "stop")
    contents = [
        c["choices"][0]["delta"]["content"]
        for c in chunks[1:]
        if c["choices"] and c["choices"][0]["delta"].get("content")
    ]
    assert len(contents) > 3
    assert "".join(contents) == "It is 17 degrees in Paris."
    message, reason, _ = fold_chunks(chunks)
    assert (message["content"], reason) == ("It is 17 degrees in Paris.", "stop")
    assert "tool_calls" not in message


def test_a_decided_tool_call_streams_in_openai_form() -> None:
    text = '{"action":"get_weather","arguments":{"city":"Paris","unit":"c"}}'
    pieces = [text[i : i + 5] for i in range(0, len(text), 5)]
    chunks = run(DecisionDeltas("reply", "call_1"), pieces, "stop")
    calls = [
        c["choices"][0]["delta"]["tool_calls"][0]
        for c in chunks
        if c["choices"] and "tool_calls" in c["choices"][0]["delta"]
    ]
    assert calls[0] == {
        "index": 0,
        "id": "call_1",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert all(set(c) == {"index", "function"} for c in calls[1:])
    assert json.loads("".join(c["function"]["arguments"] for c in calls)) == {
        "city": "Paris",
        "unit": "c",
    }
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    for c in chunks:
        ChatCompletionChunk.model_validate(c)
    message, reason, used = fold_chunks(chunks)
    assert reason == "tool_calls"
    assert message["content"] is None
    assert message["tool_calls"] == [
        {
            "id": "call_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city":"Paris","unit":"c"}'},
        }
    ]
    parsed = ChatCompletion.model_validate(completion(IDENT, message, reason, used))
    calls_back = parsed.choices[0].message.tool_calls
    assert calls_back is not None and calls_back[0].type == "function"
    assert calls_back[0].function.name == "get_weather"


def test_a_cut_answer_reports_length() -> None:
    chunks = run(DecisionDeltas("reply", "c"), ['{"action":"reply","reply":"Once upon a'], "length")
    message, reason, _ = fold_chunks(chunks)
    assert (message["content"], reason) == ("Once upon a", "length")


def test_text_without_a_decision_is_passed_on_as_content() -> None:
    chunks = run(DecisionDeltas("reply", "c"), ["Sure", ", Paris."], "stop")
    message, reason, _ = fold_chunks(chunks)
    assert (message["content"], reason) == ("Sure, Paris.", "stop")


def test_usage_chunks_follow_openai_include_usage() -> None:
    with_usage = Identity("x", 1, "m", include_usage=True)
    assert chunk(with_usage, {"content": "a"})["usage"] is None
    assert "usage" not in chunk(IDENT, {"content": "a"})
    last = usage_chunk(
        with_usage,
        usage_from_llama(
            {
                "prompt_tokens": 5,
                "completion_tokens": 2,
                "prompt_tokens_details": {"cached_tokens": 4},
            }
        ),
    )
    assert last["choices"] == []
    assert last["usage"] == {
        "prompt_tokens": 5,
        "completion_tokens": 2,
        "total_tokens": 7,
        "prompt_tokens_details": {"cached_tokens": 4},
    }
    ChatCompletionChunk.model_validate(last)


def test_llama_errors_become_http_statuses() -> None:
    error = engine_error(
        {"error": {"code": 400, "message": "too long", "type": "exceed_context_size_error"}}
    )
    assert (error.status, error.message, error.kind) == (
        400,
        "too long",
        "exceed_context_size_error",
    )
    assert engine_error({"error": {"message": "boom"}}).status == 500
    assert engine_error({"error": "plain"}).status == 500
