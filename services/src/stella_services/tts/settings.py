from __future__ import annotations

from pydantic import Field

from stella_services.runtime.settings import ServiceSettings


class TtsSettings(ServiceSettings):
    tts_provider: str = Field(default="kokoro", description="kokoro, piper or openai")
    tts_voice: str = Field(default="af_heart", description="default voice")
    openai_tts_model: str = Field(
        default="gpt-4o-mini-tts", description="the model of the openai provider"
    )
    tts_lead_ms: float = Field(default=120.0, ge=0, description="audio sent ahead of playback")
