"""Tool execution: request/reply on ``stella.tools.<name>`` (queue group of tool-executors)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from stella_contracts.events import ToolError


class ToolInvocation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    session_id: str
    call_id: str
    name: str
    arguments: dict[str, JsonValue] = Field(default_factory=dict)
    deadline_ms: int = Field(gt=0, description="the caller gives up after this long")


class ToolOutcome(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    call_id: str
    ok: bool
    result: JsonValue = None
    error: ToolError | None = None
    duration_ms: float = 0.0
    executed_by: str = ""
