"""Streaming synthesis: request on ``stella.tts.synthesize``, audio back to the reply inbox.

Each reply message is raw PCM (the bus audio format) with ``Stella-Seq``; the last one has
an empty body and ``Stella-Final: 1``, or ``Stella-Error`` with the reason.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

HEADER_FINAL = "Stella-Final"
HEADER_ERROR = "Stella-Error"


class SynthesisRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    session_id: str
    turn_id: str = ""
    text: str = Field(min_length=1)
    voice: str = ""
    provider: str = ""
