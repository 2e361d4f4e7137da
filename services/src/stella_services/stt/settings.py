from __future__ import annotations

from pydantic import Field

from stella_services.runtime.settings import ServiceSettings


class SttSettings(ServiceSettings):
    stt_provider: str = Field(default="sherpa", description="sherpa, whisper or openai")
    stt_threads: int = Field(default=2, ge=1)
    openai_stt_model: str = Field(
        default="gpt-4o-mini-transcribe", description="the model of the openai provider"
    )
    vad_threshold: float = Field(default=0.5, gt=0, lt=1)
    vad_min_silence_ms: int = Field(default=300, ge=100, description="silence that ends a turn")
    vad_min_speech_ms: int = Field(default=90, ge=0)
    vad_pre_roll_ms: int = Field(default=300, ge=0)
    partial_interval_ms: int = Field(default=500, ge=200, description="partials while speaking")
    max_utterance_s: float = Field(default=28.0, gt=1, le=29.5, description="whisper takes < 30 s")
