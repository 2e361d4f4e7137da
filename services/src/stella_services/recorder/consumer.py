"""The recorder's durable JetStream consumer: fetch a batch, insert it, then ack it.

Every message is acked explicitly, and only after its batch is stored. (AckAll would be
cheaper, but a message that reached the client just as a fetch expired would then be
acked by the next batch without ever being stored.) A batch whose insert fails is retried,
never acked; after a crash JetStream redelivers it, and ids already stored are skipped
(redelivered messages carry ``num_delivered > 1``).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from uuid import UUID

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError

from stella_contracts import Envelope, subjects
from stella_services.recorder.store import EventRow, EventStore, event_row
from stella_services.runtime.bus import Bus

log = logging.getLogger(__name__)

RETRY_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)


def consumer_config(name: str, ack_wait_s: float) -> ConsumerConfig:
    # ack_wait bounds how long events of a crashed recorder wait before redelivery; a slow
    # insert keeps its batch with in_progress() instead of stretching it.
    return ConsumerConfig(
        durable_name=name,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=ack_wait_s,
        max_ack_pending=200_000,
        filter_subject=subjects.all_session_events(),
    )


@dataclass
class RecorderStats:
    recorded: int = 0
    duplicates_skipped: int = 0
    dead_lettered: int = 0
    batches: int = 0
    insert_failures: int = 0
    last_error: str = field(default="")


@dataclass
class Batch:
    msgs: list[Msg]
    rows: list[EventRow] = field(default_factory=list)
    redelivered: list[UUID] = field(default_factory=list)


def check_envelope(msg: Msg) -> Envelope:
    """Parse and check one message; raises ValueError with a reason for the dead-letter."""
    try:
        envelope = Envelope.model_validate_json(msg.data)
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'envelope'}: {e['msg']}"
            for e in exc.errors(include_url=False)
        )
        raise ValueError(reasons) from exc
    if envelope.subject != msg.subject:
        raise ValueError(f"envelope belongs on {envelope.subject!r}, arrived on {msg.subject!r}")
    return envelope


class EventRecorder:
    def __init__(
        self,
        bus: Bus,
        store: EventStore,
        *,
        consumer: str,
        batch_size: int,
        batch_wait_s: float,
        ack_wait_s: float = 10.0,
    ) -> None:
        self.bus = bus
        self.store = store
        self.consumer = consumer
        self.batch_size = batch_size
        self.batch_wait_s = batch_wait_s
        self.ack_wait_s = ack_wait_s
        self.stats = RecorderStats()
        self._stopping = asyncio.Event()
        self._sub: JetStreamContext.PullSubscription | None = None

    async def start(self) -> None:
        self._sub = await self.bus.js.pull_subscribe(
            subjects.all_session_events(),
            durable=self.consumer,
            stream=subjects.EVENTS_STREAM,
            config=consumer_config(self.consumer, self.ack_wait_s),
        )

    def stop(self) -> None:
        """Ask the loop to end after the batch in hand is stored and acked."""
        self._stopping.set()

    async def run(self) -> None:
        """Fetch and parse batch N+1 while batch N is being inserted (one writer, in order)."""
        assert self._sub is not None, "start() first"
        batches: asyncio.Queue[Batch | None] = asyncio.Queue(maxsize=2)
        writer = asyncio.create_task(self._write_loop(batches), name="recorder-writer")
        try:
            while not self._stopping.is_set() and not writer.done():
                try:
                    msgs = await self._sub.fetch(self.batch_size, timeout=self.batch_wait_s)
                except (TimeoutError, NatsTimeout):
                    continue
                except Exception as exc:  # connection trouble: nats-py reconnects; go on
                    log.warning("fetch failed: %s", exc)
                    await asyncio.sleep(0.2)
                    continue
                if msgs:
                    await batches.put(await self._prepare(msgs))
        finally:
            await batches.put(None)
            await writer
            # A pull subscription left subscribed makes nc.drain() wait for its queue forever.
            await self._sub.unsubscribe()

    async def _prepare(self, msgs: list[Msg]) -> Batch:
        batch = Batch(msgs)
        seen: set[UUID] = set()
        for msg in msgs:
            try:
                envelope = check_envelope(msg)
            except ValueError as exc:
                await self.bus.dead_letter(msg.subject, msg.data, msg.headers, str(exc))
                self.stats.dead_lettered += 1
                continue  # acked with the batch: it now lives in the dead-letter stream
            if envelope.id in seen:
                self.stats.duplicates_skipped += 1
                continue
            seen.add(envelope.id)
            if msg.metadata.num_delivered > 1:
                batch.redelivered.append(envelope.id)
            batch.rows.append(event_row(envelope, msg.data.decode()))
        return batch

    async def _write_loop(self, batches: asyncio.Queue[Batch | None]) -> None:
        while (batch := await batches.get()) is not None:
            try:
                await self._insert_until_stored(batch.rows, batch.redelivered, batch.msgs)
                for msg in batch.msgs:
                    await msg.ack()
                self.stats.batches += 1
            except Exception:  # unacked: JetStream redelivers the batch after ack_wait
                log.exception("recording a batch of %d failed", len(batch.msgs))

    async def _insert_until_stored(
        self, rows: list[EventRow], redelivered: list[UUID], msgs: list[Msg]
    ) -> None:
        attempt = 0
        while True:
            try:
                if redelivered:
                    stored = await self.store.existing_ids(redelivered)
                    before = len(rows)
                    rows = [r for r in rows if str(r[0]) not in stored]
                    self.stats.duplicates_skipped += before - len(rows)
                await self.store.insert(rows)
                self.stats.recorded += len(rows)
                return
            except Exception as exc:
                self.stats.insert_failures += 1
                self.stats.last_error = str(exc)
                delay = RETRY_BACKOFF_S[min(attempt, len(RETRY_BACKOFF_S) - 1)]
                log.error(
                    "insert of %d events failed (%s); retrying in %.1fs", len(rows), exc, delay
                )
                attempt += 1
                await asyncio.sleep(delay)
                for msg in msgs:  # still ours: don't let JetStream hand them out again
                    await msg.in_progress()
