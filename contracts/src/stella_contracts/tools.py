"""Tool execution: request/reply on ``stella.tools.<name>`` (queue group of tool-executors).

A caller that sets ``heartbeat_ms`` hears a :class:`ToolProgress` on its reply subject as soon
as an executor has the call and then that often until the :class:`ToolOutcome`: an executor
that goes silent (killed mid-call) is noticed in seconds, not at the call's deadline.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter

from stella_contracts.events import ToolError


class ToolInvocation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    session_id: str
    call_id: str
    name: str
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    deadline_ms: int = Field(gt=0, description="the caller gives up after this long")
    heartbeat_ms: int | None = Field(
        default=None, gt=0, description="send a ToolProgress this often while running the call"
    )


class ToolProgress(BaseModel):
    """The executor has the call and is still running it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["progress"] = "progress"
    call_id: str
    executed_by: str = ""


class ToolOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    call_id: str
    ok: bool
    result: JsonValue = None
    error: ToolError | None = None
    duration_ms: float = 0.0
    executed_by: str = ""


_REPLY: TypeAdapter[ToolProgress | ToolOutcome] = TypeAdapter(ToolProgress | ToolOutcome)


def parse_tool_reply(data: bytes) -> ToolProgress | ToolOutcome:
    """A message on a tool call's reply subject (raises pydantic's ValidationError)."""
    return _REPLY.validate_json(data)
