"""An agent's state, kept after every turn so a runner taking a session over resumes it.

What is kept: the agent's public attributes that are plain JSON data (the guide's
``self.history`` list, counters, dicts); clients, pipelines and settings are rebuilt by
the agent's ``__init__`` as usual. Stored in the JetStream key-value bucket
``stella_agent_state`` under the session id, and deleted when the session ends.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig
from nats.js.errors import BucketNotFoundError, KeyNotFoundError
from nats.js.kv import KeyValue

from stella_contracts import subjects

log = logging.getLogger(__name__)

BUCKET = "stella_agent_state"
MAX_AGE_S = 24 * 3600.0  # a session's state outlives no session


def snapshot(agent: object) -> bytes:
    """The agent's public plain-data attributes as JSON."""
    kept: dict[str, Any] = {}
    for name, value in vars(agent).items():
        if name.startswith("_"):
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue  # a client, a pipeline, settings: rebuilt by __init__
        kept[name] = value
    return json.dumps(kept, separators=(",", ":")).encode()


def restore(agent: object, data: bytes) -> list[str]:
    """Set the kept attributes back; returns their names."""
    kept = json.loads(data)
    for name, value in kept.items():
        setattr(agent, name, value)
    return sorted(kept)


class Checkpoints:
    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    @classmethod
    async def open(cls, js: JetStreamContext, replicas: int = 1) -> Checkpoints:
        try:
            kv = await js.key_value(BUCKET)
        except BucketNotFoundError:
            kv = await js.create_key_value(
                KeyValueConfig(
                    bucket=BUCKET,
                    history=1,
                    ttl=MAX_AGE_S,
                    replicas=replicas,
                    description="an agent's state per session, for resuming it elsewhere",
                )
            )
        return cls(kv)

    async def save(self, session_id: str, data: bytes) -> None:
        try:
            await self.kv.put(subjects.token(session_id, "session id"), data)
        except Exception as exc:  # a turn is not failed for it; the next one saves again
            log.warning("session %s: agent state not kept: %s", session_id, exc)

    async def load(self, session_id: str) -> bytes | None:
        try:
            entry = await self.kv.get(subjects.token(session_id, "session id"))
        except KeyNotFoundError:
            return None
        return entry.value

    async def drop(self, session_id: str) -> None:
        with contextlib.suppress(Exception):
            await self.kv.purge(subjects.token(session_id, "session id"))
