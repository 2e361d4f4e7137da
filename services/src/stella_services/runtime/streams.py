"""JetStream stream definitions, created or updated idempotently at service start."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from stella_contracts import subjects

DUPLICATE_WINDOW_S = 600.0  # re-publishes of one envelope id within this window are dropped


def events_stream(max_age_days: float, replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        num_replicas=replicas,
        name=subjects.EVENTS_STREAM,
        subjects=[subjects.all_session_events()],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=max_age_days * 86_400.0,
        duplicate_window=DUPLICATE_WINDOW_S,
    )


def deadletter_stream(replicas: int = 1) -> StreamConfig:
    return StreamConfig(
        num_replicas=replicas,
        name=subjects.DEADLETTER_STREAM,
        subjects=[subjects.all_deadletters()],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=30 * 86_400.0,
    )


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream, or bring an existing one to ``config``; safe to race."""
    assert config.name is not None
    try:
        await js.stream_info(config.name)
    except NotFoundError:
        try:
            await js.add_stream(config)
            return
        except Exception:  # another service created it between our two calls
            await js.stream_info(config.name)
    await js.update_stream(config)
