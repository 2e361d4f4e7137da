from __future__ import annotations

from pathlib import Path

from pydantic import Field

from stella_services.runtime.settings import ServiceSettings


class LlmSettings(ServiceSettings):
    """``STELLA_LLM_*``: where the OpenAI-compatible endpoint listens and how the model runs."""

    llm_host: str = Field(default="127.0.0.1", description="listen address (loopback: no auth)")
    llm_port: int = Field(default=8090, ge=0, le=65535, description="0 picks a free port")
    llm_model: str = Field(
        default="qwen2.5-coder-1.5b",
        description="qwen2.5-coder-1.5b (default) or qwen2.5-coder-0.5b (faster, weaker tools)",
    )
    llm_model_path: Path | None = Field(
        default=None, description="a GGUF file to serve instead of a prepared model"
    )
    llm_context: int = Field(default=8192, ge=512, description="tokens of context (all slots)")
    llm_threads: int = Field(default=2, ge=1, description="CPU threads for generation")
    llm_concurrency: int = Field(
        default=1, ge=1, le=16, description="requests generated at once; the rest wait in FIFO"
    )
    llm_max_waiting: int = Field(
        default=64, ge=0, description="requests allowed to wait; beyond it answers 429"
    )
    llm_prompt_cache_mib: int = Field(
        default=1024, ge=0, description="memory for evaluated prompts kept beyond the slots"
    )
    llm_max_tokens: int = Field(
        default=1024, ge=1, description="completion tokens when a request sets no max_tokens"
    )
    llm_temperature: float = Field(
        default=0.2, ge=0, le=2, description="when a request sets none (small models: keep low)"
    )
    llm_seed: int | None = Field(
        default=None, description="sampling seed when a request sets none (tests: repeatable)"
    )
