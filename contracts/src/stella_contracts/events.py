"""One small typed model per event type that travels on ``stella.session.<sid>.<type>``.

Each class names its wire ``TYPE``; subclassing :class:`Event` registers it, so the
envelope can validate any payload by its type string alone.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue


class Event(BaseModel):
    """Base of every session event payload."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    TYPE: ClassVar[str] = ""
    _registry: ClassVar[dict[str, type[Event]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not cls.TYPE:
            raise TypeError(f"{cls.__name__} must set TYPE")
        if cls.TYPE in Event._registry:
            raise TypeError(f"event type {cls.TYPE!r} is defined twice")
        Event._registry[cls.TYPE] = cls

    @classmethod
    def for_type(cls, type_: str) -> type[Event] | None:
        return cls._registry.get(type_)

    @classmethod
    def known_types(cls) -> list[str]:
        return sorted(cls._registry)


# --- lifecycle -------------------------------------------------------------------------


class EndReason(StrEnum):
    CLIENT = "client"
    API = "api"
    IDLE_TIMEOUT = "idle_timeout"
    MAX_DURATION = "max_duration"
    AGENT = "agent"
    ERROR = "error"


class SessionCreated(Event):
    TYPE: ClassVar[str] = "lifecycle.created"
    agent: str
    room_name: str
    audio: bool = Field(default=True, description="False for a text-only session")
    metadata: dict[str, str] = Field(default_factory=dict)


class SessionClaimed(Event):
    """A replica (stt, tts, an agent runner) took the session; it serves it until the end,
    or until another replica takes it over (which then records its own claim)."""

    TYPE: ClassVar[str] = "lifecycle.claimed"
    service: str
    instance: str
    handoff_from: str = ""
    resumed: bool = False  # taken over from a replica that died or was draining


class SessionEnded(Event):
    TYPE: ClassVar[str] = "lifecycle.ended"
    reason: EndReason
    detail: str = ""


# --- conversation text -----------------------------------------------------------------


class UserText(Event):
    """Text the user typed."""

    TYPE: ClassVar[str] = "user.text"
    text: str


class AgentText(Event):
    """Text the agent said or wrote. ``is_final=False`` marks a streaming delta."""

    TYPE: ClassVar[str] = "agent.text"
    text: str
    turn_id: str = ""
    is_final: bool = True


class AgentTurnDone(Event):
    """The agent finished handling one user turn (its replies, if any, were sent before)."""

    TYPE: ClassVar[str] = "agent.turn_done"
    turn_id: str
    duration_ms: float = Field(default=0.0, ge=0)
    replies: int = Field(default=0, ge=0)
    error: str = ""
    interrupted: bool = False


# --- speech ----------------------------------------------------------------------------


class VadState(StrEnum):
    SPEECH_STARTED = "speech_started"
    SPEECH_ENDED = "speech_ended"


class SttVad(Event):
    """Voice activity: where in the input stream speech started or ended."""

    TYPE: ClassVar[str] = "stt.vad"
    state: VadState
    audio_ms: int = Field(ge=0, description="offset in the session's input audio")
    utterance_id: str = ""
    wall_us: int | None = Field(default=None, description="when that audio arrived (µs epoch)")


class SttTranscript(Event):
    """Recognised user speech: partials while the user speaks, then one final."""

    TYPE: ClassVar[str] = "stt.transcript"
    text: str
    is_final: bool
    utterance_id: str = ""
    start_ms: int = Field(default=0, ge=0)
    end_ms: int = Field(default=0, ge=0)
    language: str = ""


class TtsRequest(Event):
    """Ask the tts service to speak ``text`` for one agent turn."""

    TYPE: ClassVar[str] = "tts.request"
    text: str
    turn_id: str
    voice: str = ""
    provider: str = ""
    final: bool = Field(default=True, description="False while more text of the turn will follow")


class TtsDone(Event):
    """Synthesis of one turn ended; ``spoken_text`` is what the user actually heard."""

    TYPE: ClassVar[str] = "tts.done"
    turn_id: str
    text: str
    spoken_text: str
    interrupted: bool = False
    dropped: bool = Field(
        default=False,
        description="its tts replica died mid-reply; the one that took over did not speak it",
    )
    audio_ms: int = Field(default=0, ge=0)
    first_audio_synth_us: int | None = Field(default=None, description="first clause ready")
    first_audio_out_us: int | None = Field(default=None, description="first frame sent")


class ControlInterrupt(Event):
    """Stop the agent's speech now (barge-in or an explicit stop)."""

    TYPE: ClassVar[str] = "control.interrupt"
    reason: str = "barge_in"
    turn_id: str = ""


# --- tools -----------------------------------------------------------------------------


class ToolCall(Event):
    TYPE: ClassVar[str] = "tool.call"
    call_id: str
    name: str
    arguments: dict[str, JsonValue] = Field(default_factory=dict)


class ToolErrorKind(StrEnum):
    TIMEOUT = "timeout"
    EXCEPTION = "exception"
    UNKNOWN_TOOL = "unknown_tool"
    INVALID_ARGUMENTS = "invalid_arguments"
    UNAVAILABLE = "unavailable"


class ToolError(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    kind: ToolErrorKind
    message: str


class ToolResult(Event):
    TYPE: ClassVar[str] = "tool.result"
    call_id: str
    name: str
    ok: bool
    result: JsonValue = None
    error: ToolError | None = None
    duration_ms: float = Field(default=0.0, ge=0)
    executed_by: str = Field(default="", description="the process that ran it")


# --- observability ---------------------------------------------------------------------


class TurnMetrics(Event):
    """The latency ledger of one turn: wall-clock marks (µs since epoch) and differences."""

    TYPE: ClassVar[str] = "metrics.turn"
    turn_id: str
    user_speech_end_us: int | None = None
    final_transcript_us: int | None = None
    first_agent_text_us: int | None = None
    first_audio_synth_us: int | None = None
    first_audio_out_us: int | None = None
    deltas_ms: dict[str, float] = Field(default_factory=dict)


class Debug(Event):
    TYPE: ClassVar[str] = "debug"
    message: str
    level: Literal["debug", "info", "warning", "error"] = "debug"
    data: dict[str, JsonValue] = Field(default_factory=dict)
