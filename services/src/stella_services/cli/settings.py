from __future__ import annotations

from pydantic import Field

from stella_services.runtime.settings import ServiceSettings


class CliSettings(ServiceSettings):
    history_addr: str = Field(default="127.0.0.1:50051", description="the recorder's gRPC address")
