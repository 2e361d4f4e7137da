"""OpenAI's answer shapes, built from what the model generates. Pure: no I/O, no clock (the
caller passes ids and times).

The model's text goes through a translator into OpenAI deltas: ``PlainDeltas`` passes text
through; ``DecisionDeltas`` reads the constrained decision object and turns it into content
deltas (the reply, token by token) or ``tool_calls`` deltas. A non-streamed answer is the
fold of the same chunks (``fold_chunks``), so both kinds of request behave alike.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from stella_services.llm.decision import (
    ActionChosen,
    ArgumentsText,
    DecisionScanner,
    ReplyText,
)

Json = dict[str, Any]

FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter")


@dataclass(frozen=True, slots=True)
class Identity:
    """What every chunk of one answer repeats."""

    id: str
    created: int
    model: str
    include_usage: bool = False  # OpenAI then sends "usage": null on every other chunk


def chunk(ident: Identity, delta: Json, finish_reason: str | None = None) -> Json:
    body: Json = {
        "id": ident.id,
        "object": "chat.completion.chunk",
        "created": ident.created,
        "model": ident.model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}],
    }
    if ident.include_usage:
        body["usage"] = None
    return body


def usage_chunk(ident: Identity, usage: Json) -> Json:
    """The last chunk when ``stream_options.include_usage``: no choices, the usage."""
    return {
        "id": ident.id,
        "object": "chat.completion.chunk",
        "created": ident.created,
        "model": ident.model,
        "system_fingerprint": None,
        "choices": [],
        "usage": usage,
    }


def usage(prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> Json:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": cached_tokens},
    }


def usage_from_llama(reported: Json | None) -> Json:
    """llama.cpp reports usage in OpenAI's own form; keep only the fields OpenAI has."""
    reported = reported or {}
    details = reported.get("prompt_tokens_details") or {}
    return usage(
        int(reported.get("prompt_tokens", 0)),
        int(reported.get("completion_tokens", 0)),
        int(details.get("cached_tokens", 0)),
    )


def finish_reason(reported: str | None) -> str:
    return reported if reported in FINISH_REASONS else "stop"


class Translator(Protocol):
    def feed(self, text: str) -> list[Json]:
        """Deltas for the next piece of generated text."""

    def finish(self, reported: str | None) -> tuple[list[Json], str]:
        """Deltas still owed at the end, and the finish reason to report."""


@dataclass
class PlainDeltas:
    def feed(self, text: str) -> list[Json]:
        return [{"content": text}] if text else []

    def finish(self, reported: str | None) -> tuple[list[Json], str]:
        return [], finish_reason(reported)


@dataclass
class DecisionDeltas:
    """Decisions → deltas: the reply streams as content while it grows; a tool call is
    announced (id, name) once its action is read, then its arguments stream as text."""

    reply: str
    call_id: str
    scanner: DecisionScanner = field(default_factory=DecisionScanner)
    called: bool = False

    def feed(self, text: str) -> list[Json]:
        deltas: list[Json] = []
        for event in self.scanner.feed(text):
            if isinstance(event, ActionChosen) and event.name != self.reply:
                self.called = True
                call = {
                    "index": 0,
                    "id": self.call_id,
                    "type": "function",
                    "function": {"name": event.name, "arguments": ""},
                }
                deltas.append({"tool_calls": [call]})
            elif isinstance(event, ReplyText):
                deltas.append({"content": event.text})
            elif isinstance(event, ArgumentsText) and self.called:
                deltas.append({"tool_calls": [{"index": 0, "function": {"arguments": event.text}}]})
        return deltas

    def finish(self, reported: str | None) -> tuple[list[Json], str]:
        reason = finish_reason(reported)
        if self.scanner.action is None and self.scanner.text.strip() and reason != "length":
            # no decision came (should not happen under the schema): say what was generated
            return [{"content": self.scanner.text}], reason
        if self.called and reason == "stop":
            return [], "tool_calls"
        return [], reason


def fold_chunks(chunks: Iterable[Json]) -> tuple[Json, str, Json | None]:
    """(message, finish reason, usage) of a whole streamed answer, as a non-streamed
    ``chat.completion`` carries them."""
    content: list[str] = []
    calls: dict[int, Json] = {}
    reason = "stop"
    used: Json | None = None
    for item in chunks:
        if item.get("usage"):
            used = item["usage"]
        for choice in item.get("choices", ()):
            delta = choice.get("delta", {})
            if delta.get("content"):
                content.append(delta["content"])
            for call in delta.get("tool_calls") or ():
                known = calls.setdefault(
                    call["index"],
                    {"id": "", "type": "function", "function": {"name": "", "arguments": ""}},
                )
                if call.get("id"):
                    known["id"] = call["id"]
                function = call.get("function") or {}
                known["function"]["name"] += function.get("name") or ""
                known["function"]["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                reason = choice["finish_reason"]
    message: Json = {
        "role": "assistant",
        "content": "".join(content) if content or not calls else None,
        "refusal": None,
        "annotations": [],
    }
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return message, reason, used


def completion(ident: Identity, message: Json, reason: str, used: Json | None) -> Json:
    return {
        "id": ident.id,
        "object": "chat.completion",
        "created": ident.created,
        "model": ident.model,
        "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": reason}],
        "usage": used or usage(0, 0),
    }


def model_card(model_id: str, created: int) -> Json:
    return {"id": model_id, "object": "model", "created": created, "owned_by": "stella"}
