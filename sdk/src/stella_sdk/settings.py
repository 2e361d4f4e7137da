"""What an agent process reads from its environment (and ``.env``)."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from stella_sdk.runtime.settings import RuntimeSettings


class AgentSettings(RuntimeSettings):
    model_config = SettingsConfigDict(
        env_prefix="STELLA_", env_file=".env", extra="ignore", populate_by_name=True
    )

    history_addr: str = Field(default="127.0.0.1:50051", description="the recorder's gRPC address")
    agent_name: str = Field(
        default="", description="dispatch name; default: the class in kebab-case"
    )
    room_name: str = Field(
        default="",
        validation_alias=AliasChoices("ROOM_NAME", "STELLA_ROOM_NAME"),
        description="serve only this room (the guide's Settings.room_name); empty: any session",
    )
    tools_mode: Literal["auto", "remote", "local"] = Field(
        default="auto",
        description="remote: tool-executors only; local: in this process; auto: remote if one "
        "answers, else local",
    )
    tool_timeout_s: float = Field(default=30.0, gt=0, description="default tool deadline")
    tool_heartbeat_s: float = Field(
        default=0.5, gt=0, description="how often a tool-executor says it still runs a call"
    )
    tool_silence_s: float = Field(
        default=2.5,
        gt=0,
        description="a tool-executor silent this long is taken for dead: the call is retried "
        "on another executor if the tool is idempotent, else answered 'unavailable'",
    )
    openai_model: str = Field(
        default="gpt-4o", validation_alias=AliasChoices("OPENAI_MODEL", "STELLA_OPENAI_MODEL")
    )
    barge_in_min_ms: int = Field(default=400, ge=0, description="user speech that may interrupt")
    barge_in_min_words: int = Field(default=2, ge=0, description="non-backchannel words needed")
