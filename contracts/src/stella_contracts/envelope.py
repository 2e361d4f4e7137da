"""The envelope every session event travels in.

JSON on the wire; ``id`` is a UUIDv7 (time ordered) and doubles as ``Nats-Msg-Id`` so
JetStream drops a re-published duplicate.
"""

from __future__ import annotations

import builtins
import json
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any, TypeVar
from uuid import UUID

import uuid6
from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, model_validator

from stella_contracts import subjects
from stella_contracts.events import Event

SCHEMA_VERSION = 1
_TRACEPARENT = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"

E = TypeVar("E", bound=Event)


class InvalidEnvelope(ValueError):
    """Bytes that are not a valid envelope; ``reason`` says why, for the dead-letter."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    service: str = Field(min_length=1)
    instance: str = Field(min_length=1)

    def __str__(self) -> str:
        return f"{self.service}/{self.instance}"


class Envelope(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int = SCHEMA_VERSION
    id: UUID
    type: str
    session_id: str = Field(min_length=1)
    ts: datetime
    source: Source
    seq: int = Field(ge=0)
    trace: str | None = Field(default=None, pattern=_TRACEPARENT)
    payload: SerializeAsAny[Event]

    @model_validator(mode="before")
    @classmethod
    def _typed_payload(cls, data: Any) -> Any:
        # The payload's model is chosen by ``type``; validate it against that model.
        if not isinstance(data, dict):
            return data
        type_ = data.get("type")
        payload = data.get("payload")
        model = Event.for_type(type_) if isinstance(type_, str) else None
        if model is None:
            raise ValueError(f"unknown event type {type_!r}")
        if not isinstance(payload, model):
            data = {**data, "payload": model.model_validate(payload)}
        return data

    @model_validator(mode="after")
    def _check(self) -> Envelope:
        if self.v != SCHEMA_VERSION:
            raise ValueError(f"schema version {self.v} is not supported (this is {SCHEMA_VERSION})")
        if self.type != self.payload.TYPE:
            raise ValueError(f"payload is {self.payload.TYPE!r} but type says {self.type!r}")
        if self.ts.tzinfo is None:
            raise ValueError("ts must carry a timezone (UTC)")
        subjects.token(self.session_id, "session id")
        return self

    @property
    def subject(self) -> str:
        # session_id and type were both validated when this envelope was built
        return f"{subjects.ROOT}.session.{self.session_id}.{self.type}"

    def payload_as(self, model: builtins.type[E]) -> E:  # `type` is a field here
        if not isinstance(self.payload, model):
            raise TypeError(f"envelope holds {self.type!r}, not {model.TYPE!r}")
        return self.payload

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def from_json(cls, data: bytes | str) -> Envelope:
        """Parse and validate; raise :class:`InvalidEnvelope` with a readable reason."""
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InvalidEnvelope(f"not JSON: {exc}") from exc
        if not isinstance(raw, dict):
            raise InvalidEnvelope("an envelope is a JSON object")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise InvalidEnvelope(_explain(exc)) from exc


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "envelope"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def new_id() -> UUID:
    """A UUIDv7: unique and ordered by creation time."""
    return uuid6.uuid7()


def utc_now() -> datetime:
    return datetime.now(UTC)


class EnvelopeFactory:
    """Wraps events for one producer, numbering them per session (``seq``)."""

    def __init__(self, service: str, instance: str) -> None:
        self.source = Source(service=service, instance=instance)
        self._seq: defaultdict[str, int] = defaultdict(int)

    def wrap(self, session_id: str, event: Event, *, trace: str | None = None) -> Envelope:
        seq = self._seq[session_id]
        self._seq[session_id] = seq + 1
        return Envelope(
            id=new_id(),
            type=event.TYPE,
            session_id=session_id,
            ts=utc_now(),
            source=self.source,
            seq=seq,
            trace=trace,
            payload=event,
        )

    def forget(self, session_id: str) -> None:
        """Drop the counter of an ended session so long-running producers don't grow."""
        self._seq.pop(session_id, None)
