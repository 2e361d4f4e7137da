"""The REST API's request and response bodies (what ``/openapi.json`` describes)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from stella_contracts import EndReason

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]+$", min_length=1, max_length=128)]
MetaKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MetaValue = Annotated[str, StringConstraints(max_length=1024)]


class CreateSession(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: Name = Field(description="the agent's name (its runners' STELLA_AGENT_NAME)")
    metadata: dict[MetaKey, MetaValue] = Field(default_factory=dict, max_length=32)
    audio: bool = Field(default=True, description="false for a text-only session")


class LiveKitConnect(BaseModel):
    url: str
    token: str = Field(description="participant token, grants limited to this session's room")
    room_name: str


class Connect(BaseModel):
    """How a client reaches the session's media. Every way needs ``token``."""

    token: str = Field(description="short-lived media token scoped to this one session")
    token_expires_at: datetime
    websocket: str = Field(description="ws(s) URL; append ?token=...")
    webrtc_offer: str = Field(description="POST an SDP offer here (Bearer token)")
    livekit: LiveKitConnect | None = None


class SessionInfo(BaseModel):
    session_id: str
    agent: str
    room_name: str
    status: Literal["active", "ended"]
    created_at: datetime
    expires_at: datetime | None = Field(default=None, description="the latest it can end")
    ended_at: datetime | None = None
    end_reason: EndReason | None = None
    metadata: dict[str, str] = Field(default_factory=dict)


class CreatedSession(SessionInfo):
    connect: Connect


class SessionPage(BaseModel):
    sessions: list[SessionInfo]
    next_cursor: str | None = Field(default=None, description="pass as ?cursor= for more")


class TranscriptEntry(BaseModel):
    id: str
    timestamp: str
    role: str
    content: str
    message_type: str


class Transcript(BaseModel):
    session_id: str
    messages: list[TranscriptEntry]


class MediaToken(BaseModel):
    token: str
    expires_at: datetime


class SessionDescription(BaseModel):
    model_config = ConfigDict(extra="ignore")

    sdp: str = Field(min_length=1, max_length=200_000)
    type: Literal["offer", "answer"]


class AgentList(BaseModel):
    agents: list[str] = Field(description="agents that had sessions in the last 30 days")
