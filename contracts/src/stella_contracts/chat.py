"""The chat message view of a session: what ``get_chat_history()`` returns."""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from stella_contracts.envelope import Envelope
from stella_contracts.events import (
    AgentText,
    ControlInterrupt,
    Debug,
    SessionClaimed,
    SessionCreated,
    SessionEnded,
    SttTranscript,
    SttVad,
    ToolCall,
    ToolResult,
    TtsDone,
    TtsRequest,
    TurnMetrics,
    UserText,
)


class Role(StrEnum):
    USER = "user"
    ASSISTANT = "assistant"
    SYSTEM = "system"


class MessageType(StrEnum):
    """Conversation message types; debug rows carry their event type instead."""

    USER_TEXT = "user_text"
    TRANSCRIPT = "transcript"
    AGENT_TEXT = "agent_text"


HISTORY_DEFAULT_LIMIT = 100
HISTORY_MAX_LIMIT = 500


class ChatMessage(BaseModel):
    """One message of a session's history, as the public guide describes it."""

    model_config = ConfigDict(frozen=True)

    id: str
    timestamp: str  # ISO 8601, UTC
    role: str
    content: str
    message_type: str
    envelope: dict[str, Any]


# How an event appears in a session's chat history (a pure decision).


@dataclass(frozen=True, slots=True)
class ChatView:
    role: Role
    content: str
    message_type: str
    is_chat: bool  # False: a debug/processing row, shown only with include_debug


def _compact(value: object, limit: int = 400) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def chat_view(envelope: Envelope) -> ChatView:
    p = envelope.payload
    if isinstance(p, UserText):
        return ChatView(Role.USER, p.text, MessageType.USER_TEXT, True)
    if isinstance(p, SttTranscript):
        if p.is_final:
            return ChatView(Role.USER, p.text, MessageType.TRANSCRIPT, True)
        return ChatView(Role.USER, p.text, "transcript_partial", False)
    if isinstance(p, AgentText):
        if p.is_final:
            return ChatView(Role.ASSISTANT, p.text, MessageType.AGENT_TEXT, True)
        return ChatView(Role.ASSISTANT, p.text, "agent_text_delta", False)
    return ChatView(Role.SYSTEM, _debug_content(envelope), envelope.type, False)


def _debug_content(envelope: Envelope) -> str:
    p = envelope.payload
    if isinstance(p, ToolCall):
        return f"{p.name}({_compact(p.arguments)})"
    if isinstance(p, ToolResult):
        if p.ok:
            return f"{p.name} → {_compact(p.result)}"
        kind = p.error.kind.value if p.error else "error"
        message = p.error.message if p.error else ""
        return f"{p.name} failed ({kind}): {message}"
    if isinstance(p, SttVad):
        return f"{p.state.value} at {p.audio_ms} ms"
    if isinstance(p, TtsRequest):
        return p.text
    if isinstance(p, TtsDone):
        suffix = " (interrupted)" if p.interrupted else ""
        return f"spoke {p.audio_ms} ms: {p.spoken_text}{suffix}"
    if isinstance(p, ControlInterrupt):
        return f"interrupt: {p.reason}"
    if isinstance(p, SessionCreated):
        return f"session created for agent {p.agent} in room {p.room_name}"
    if isinstance(p, SessionClaimed):
        handoff = f" (handed on by {p.handoff_from})" if p.handoff_from else ""
        return f"{p.service} served by {p.instance}{handoff}"
    if isinstance(p, SessionEnded):
        return f"session ended: {p.reason.value}" + (f" ({p.detail})" if p.detail else "")
    if isinstance(p, TurnMetrics):
        return "turn latency " + _compact(p.deltas_ms)
    if isinstance(p, Debug):
        return p.message
    return _compact(p.model_dump(mode="json"))
