"""Settings every service shares; each service extends :class:`ServiceSettings`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from stella_sdk.runtime.settings import DEFAULT_NATS_URL, RuntimeSettings, default_instance

__all__ = ["DEFAULT_NATS_URL", "ServiceSettings", "default_instance"]


class ServiceSettings(RuntimeSettings):
    data_dir: Path = Field(default=Path(".stella"), description="local state (embedded DB, NATS)")
    events_max_age_days: float = Field(
        default=30.0, gt=0, description="how long JetStream keeps events after recording"
    )
