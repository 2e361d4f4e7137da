"""Settings every session-holding process shares: services and agent hosts alike."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_NATS_URL = "nats://127.0.0.1:4222"


def default_instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class RuntimeSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STELLA_", extra="ignore", populate_by_name=True)

    nats_url: str = Field(
        default=DEFAULT_NATS_URL,
        validation_alias=AliasChoices("NATS_URL", "STELLA_NATS_URL"),
        description="NATS server(s), comma separated",
    )
    instance: str = Field(default_factory=default_instance, description="this replica's name")
    log_level: str = "INFO"
    ready_file: Path | None = Field(
        default=None,
        description="written once the process serves, removed when it stops (container probes)",
    )
    max_sessions: int = Field(
        default=50, ge=0, description="sessions one replica takes (0: no limit)"
    )
    drain_timeout_s: float = Field(
        default=30.0, ge=0, description="on SIGTERM, wait this long for sessions and calls"
    )
    lease_ttl_s: float = Field(
        default=2.0,
        ge=0.5,
        description="a replica's lease on a session lapses this long after its last renewal "
        "(renewed every quarter of it); "
        "another replica of its role then takes the session over",
    )
    call_grace_s: float = Field(
        default=10.0,
        ge=0,
        description="a call whose gateway died waits this long for its client to reconnect "
        "through another gateway before its replicas let it go",
    )
    stream_replicas: int = Field(
        default=1,
        ge=1,
        le=5,
        description="copies JetStream keeps of the event streams and buckets (3 on a cluster)",
    )

    def nats_servers(self) -> list[str]:
        return [u.strip() for u in self.nats_url.split(",") if u.strip()]
