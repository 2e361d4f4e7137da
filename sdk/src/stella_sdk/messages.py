"""What flows into and out of ``BaseAgent.process()``."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class InputKind(StrEnum):
    TEXT = "text"  # typed by the user
    TRANSCRIPT = "transcript"  # recognised speech


class AgentInput(BaseModel):
    model_config = ConfigDict(frozen=True)

    session_id: str
    text: str
    kind: InputKind = InputKind.TEXT
    is_final: bool = True
    turn_id: str = ""
    metadata: dict[str, str] = Field(default_factory=dict)


class OutputKind(StrEnum):
    TEXT_DELTA = "text_delta"
    TEXT_FINAL = "text_final"


class AgentOutput(BaseModel):
    """A piece of the agent's reply: streamed deltas, then (or only) the final text."""

    model_config = ConfigDict(frozen=True)

    session_id: str
    text: str
    kind: OutputKind = OutputKind.TEXT_FINAL

    @property
    def is_final(self) -> bool:
        return self.kind is OutputKind.TEXT_FINAL

    @classmethod
    def text_final(cls, session_id: str, text: str) -> AgentOutput:
        return cls(session_id=session_id, text=text, kind=OutputKind.TEXT_FINAL)

    @classmethod
    def text_delta(cls, session_id: str, text: str) -> AgentOutput:
        return cls(session_id=session_id, text=text, kind=OutputKind.TEXT_DELTA)
