"""Session assignment: request/reply on ``stella.dispatch.<agent>`` (queue group)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class DispatchRequest(BaseModel):
    """Sent by whoever opens a session; exactly one runner of the agent takes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    session_id: str
    agent: str
    room_name: str
    audio: bool = True
    metadata: dict[str, str] = Field(default_factory=dict)
    history_token: str = Field(description="signed, scoped to this session: reads its history")


class DispatchReply(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    accepted: bool
    runner: str = ""
    reason: str = ""
