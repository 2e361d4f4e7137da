"""A connection to STELLA's NATS: typed envelopes out, dead letters for what can't be read.

The SDK owns this so an agent started with ``agent.run()`` needs nothing else; STELLA's
services use the same class.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Mapping

import nats
from nats.aio.client import Client as NATS
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import PubAck
from nats.js.errors import NoStreamResponseError, NotFoundError, ServiceUnavailableError
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from stella_contracts import (
    DeadLetter,
    Envelope,
    EnvelopeFactory,
    Event,
    SessionEnded,
    subjects,
    utc_now,
)

log = logging.getLogger(__name__)

MSG_ID = "Nats-Msg-Id"
PUBLISH_DEADLINE_S = 30.0  # an event is retried this long before its publisher gives up
PUBLISH_RETRY_S = 0.25
WAIT_LOG_EVERY_S = 10.0  # while NATS is unreachable at start, how often to say so
_propagator = TraceContextTextMapPropagator()


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the active span, or None outside any recording span."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent")


def new_traceparent() -> str:
    """A fresh trace (not sampled) for an envelope published outside any span."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"


async def stop_taking(sub: Subscription) -> None:
    """Stop a (queue) subscription the graceful way: the server stops routing to it, and
    messages already delivered to this client are still handled. ``unsubscribe`` would
    drop those, leaving their requesters to time out."""
    with contextlib.suppress(Exception):  # already closed, or the connection is gone
        await sub.drain()  # type: ignore[no-untyped-call]


class Bus:
    """Publishes envelopes with ``Nats-Msg-Id`` = envelope id, so JetStream de-duplicates."""

    def __init__(self, nc: NATS, service: str, instance: str) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.service = service
        self.instance = instance
        self.envelopes = EnvelopeFactory(service, instance)
        self._tracer = trace.get_tracer(f"stella.{service}")
        self.closing = False

    @classmethod
    async def open(
        cls, servers: list[str], *, service: str, instance: str, connect_timeout: float = 5.0
    ) -> Bus:
        made: list[Bus] = []

        async def on_disconnect() -> None:
            if not (made and made[0].closing):
                log.warning("disconnected from NATS; reconnecting")

        async def on_reconnect() -> None:
            log.info("reconnected to NATS")

        waiting_since: list[float] = []  # monotonic time of the last "waiting" line

        async def on_error(exc: Exception) -> None:
            if made:
                log.warning("NATS error: %s", exc)
                return
            # Not connected yet: nats.py retries every reconnect_time_wait; say what we wait
            # for once, then every WAIT_LOG_EVERY_S, not twice a second.
            now = time.monotonic()
            if not waiting_since or now - waiting_since[0] >= WAIT_LOG_EVERY_S:
                log.warning(
                    "waiting for NATS at %s (%s); retrying until it answers or a stop signal",
                    ", ".join(servers),
                    exc,
                )
                waiting_since[:] = [now]

        nc = await nats.connect(
            servers=servers,
            name=f"stella-{service}/{instance}",
            max_reconnect_attempts=-1,  # a service outlives NATS restarts
            reconnect_time_wait=0.5,
            connect_timeout=connect_timeout,
            allow_reconnect=True,
            drain_timeout=5,
            disconnected_cb=on_disconnect,
            reconnected_cb=on_reconnect,
            error_cb=on_error,
        )
        made.append(cls(nc, service, instance))
        return made[0]

    def wrap(self, session_id: str, event: Event) -> Envelope:
        """An envelope for ``event``, carrying the active trace (or a new one)."""
        with self._tracer.start_as_current_span(f"emit {event.TYPE}"):
            parent = current_traceparent()
        return self.envelopes.wrap(session_id, event, trace=parent or new_traceparent())

    async def emit(self, session_id: str, event: Event) -> Envelope:
        """Wrap and publish one event; returns once JetStream has stored it."""
        envelope = self.wrap(session_id, event)
        await self.publish(envelope)
        return envelope

    async def publish(self, envelope: Envelope, timeout: float = 5.0) -> PubAck:
        """Store one envelope; retried until stored or ``PUBLISH_DEADLINE_S`` has passed.

        A JetStream cluster that lost a node elects a new stream leader in a few seconds
        and NATS clients reconnect meanwhile; the envelope's id (``Nats-Msg-Id``) makes a
        retry of a publish that was in fact stored a duplicate the stream drops."""
        deadline = time.monotonic() + PUBLISH_DEADLINE_S
        while True:
            try:
                return await self.js.publish(
                    envelope.subject,
                    envelope.to_json(),
                    timeout=timeout,
                    headers={MSG_ID: str(envelope.id)},
                )
            except (NatsTimeout, NoRespondersError, ServiceUnavailableError, NoStreamResponseError):
                if time.monotonic() + PUBLISH_RETRY_S >= deadline:
                    raise
                log.warning("%s not stored yet; retrying (NATS failing over?)", envelope.type)
                await asyncio.sleep(PUBLISH_RETRY_S)

    async def publish_nowait(self, envelope: Envelope) -> asyncio.Future[PubAck]:
        """Publish without waiting for the store ack; await the future to confirm."""
        return await self.js.publish_async(
            envelope.subject, envelope.to_json(), headers={MSG_ID: str(envelope.id)}
        )

    async def has_ended(self, session_id: str) -> bool:
        """Whether the session's ``lifecycle.ended`` is stored already (JetStream).

        Asked *after* subscribing to a session: an end published before the subscription
        is found here, one published after it arrives on the subscription, so a replica
        taking a session late (its opener gave up and ended it) never keeps it."""
        subject = subjects.session_event(session_id, SessionEnded.TYPE)
        try:
            await self.js.get_last_msg(subjects.EVENTS_STREAM, subject)
        except NotFoundError:
            return False
        except Exception as exc:  # the check failing must not refuse a live session
            log.warning("could not ask JetStream whether %s has ended: %s", session_id, exc)
            return False
        return True

    async def last_event(self, session_id: str, event_type: str) -> tuple[int, Envelope] | None:
        """The session's last stored event of ``event_type`` and its stream sequence (which
        orders events of every producer), or None if there is none."""
        subject = subjects.session_event(session_id, event_type)
        try:
            msg = await self.js.get_last_msg(subjects.EVENTS_STREAM, subject)
        except NotFoundError:
            return None
        return msg.seq or 0, Envelope.from_json(msg.data or b"")

    async def dead_letter(
        self, subject: str, body: bytes, headers: Mapping[str, str] | None, reason: str
    ) -> None:
        """Never drop a message silently: park it with the reason on ``stella.deadletter.*``."""
        letter = DeadLetter(
            service=self.service,
            subject=subject,
            reason=reason,
            ts=utc_now(),
            data_b64=DeadLetter.encode(body),
            headers=dict(headers or {}),
        )
        log.warning("dead-lettered a message from %s: %s", subject, reason)
        await self.js.publish(subjects.deadletter(self.service), letter.model_dump_json().encode())

    async def close(self) -> None:
        self.closing = True
        if self.nc.is_connected:
            await self.nc.drain()
        elif not self.nc.is_closed:
            await self.nc.close()
