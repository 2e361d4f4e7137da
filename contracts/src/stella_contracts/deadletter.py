"""What a service publishes on ``stella.deadletter.<service>`` instead of dropping a message."""

from __future__ import annotations

import base64
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class DeadLetter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    service: str
    subject: str
    reason: str
    ts: datetime
    data_b64: str = Field(description="the original message body, base64")
    headers: dict[str, str] = Field(default_factory=dict)

    @property
    def data(self) -> bytes:
        return base64.b64decode(self.data_b64)

    @staticmethod
    def encode(body: bytes) -> str:
        return base64.b64encode(body).decode()
