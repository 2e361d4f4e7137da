"""The sessions this gateway opened and still runs: clocks, fan-out to clients, and end.

Each live session holds two subscriptions (its events and its agent audio) for its whole
life and fans them out to the attached transports. Until the first client attaches, what
arrives is kept (bounded) and replayed to it, so an early greeting is not lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from stella_contracts import (
    ControlInterrupt,
    EndReason,
    Envelope,
    InvalidEnvelope,
    SessionCreated,
    SessionEnded,
    subjects,
)
from stella_sdk.runtime.leases import Leases
from stella_services.gateway.expiry import Clock, Limits, end_reason
from stella_services.gateway.media import MediaSink
from stella_services.runtime.bus import Bus
from stella_services.runtime.sessions import end_session

log = logging.getLogger(__name__)

BACKLOG_EVENTS = 500
BACKLOG_AUDIO_FRAMES = 750  # 15 s of agent speech before anyone listens
ENDED_ECHO_WAIT_S = 2.0
RECENTLY_ENDED = 1000  # answered from memory while the recorder catches up (no tasks held)


@dataclass
class LiveSession:
    session_id: str
    agent: str
    room_name: str
    metadata: dict[str, str]
    created_at: datetime
    max_duration_s: float
    created: float = field(default_factory=time.monotonic)
    last_activity: float = field(default_factory=time.monotonic)
    disconnected_at: float | None = None
    sinks: dict[int, MediaSink] = field(default_factory=dict)
    event_backlog: deque[tuple[Envelope, bytes]] | None = field(
        default_factory=lambda: deque(maxlen=BACKLOG_EVENTS)
    )
    audio_backlog: deque[bytes] | None = field(
        default_factory=lambda: deque(maxlen=BACKLOG_AUDIO_FRAMES)
    )
    ended: asyncio.Event = field(default_factory=asyncio.Event)
    end_reason: EndReason | None = None
    ended_at: datetime | None = None
    subscriptions: list[Subscription] = field(default_factory=list)

    @property
    def expires_at(self) -> datetime:
        return self.created_at + timedelta(seconds=self.max_duration_s)

    def clock(self) -> Clock:
        return Clock(self.created, self.last_activity, self.disconnected_at)

    def touch(self) -> None:
        self.last_activity = time.monotonic()


class LiveSessions:
    """Ends sessions on idle timeout, maximum duration, or when their clients left."""

    def __init__(
        self, bus: Bus, limits: Limits, calls: Leases | None = None, tick_s: float = 0.5
    ) -> None:
        self.bus = bus
        self.calls = calls  # a lease per running session: replicas take over only live calls
        self.limits = limits
        self.tick_s = tick_s
        self.sessions: dict[str, LiveSession] = {}
        self.recently_ended: OrderedDict[str, LiveSession] = OrderedDict()
        self._reaper: asyncio.Task[None] | None = None
        self._ending: set[asyncio.Task[None]] = set()
        self._adopting: dict[str, asyncio.Future[LiveSession | None]] = {}

    def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap(), name="gateway-reaper")
        if self.calls is not None:
            self.calls.start(None, self.lost)

    async def add(
        self,
        session_id: str,
        agent: str,
        room: str,
        metadata: dict[str, str],
        created_at: datetime | None = None,
    ) -> LiveSession:
        now = datetime.now(UTC)
        live = LiveSession(
            session_id, agent, room, metadata, created_at or now, self.limits.max_duration_s
        )
        live.created -= (now - live.created_at).total_seconds()  # its age counts, not ours
        self.sessions[session_id] = live
        if self.calls is not None and session_id not in self.calls.held:
            await self.calls.take(session_id)
        nc = self.bus.nc

        async def on_event(msg: Msg) -> None:
            await self._on_event(live, msg)

        async def on_audio(msg: Msg) -> None:
            await self._on_audio(live, msg.data)

        live.subscriptions = [
            await nc.subscribe(subjects.session_events(session_id), cb=on_event),
            await nc.subscribe(subjects.audio_out(session_id), cb=on_audio),
        ]
        return live

    async def _on_event(self, live: LiveSession, msg: Msg) -> None:
        live.touch()
        try:
            envelope = Envelope.from_json(msg.data)
        except InvalidEnvelope:
            return  # the recorder dead-letters it; a client has no use for it
        if live.event_backlog is not None:
            live.event_backlog.append((envelope, msg.data))
        for sink in list(live.sinks.values()):
            if isinstance(envelope.payload, ControlInterrupt):
                await sink.interrupted()
            await sink.session_event(envelope, msg.data)
        if isinstance(envelope.payload, SessionEnded):
            live.end_reason = live.end_reason or envelope.payload.reason
            await self._forget(live)

    async def _on_audio(self, live: LiveSession, pcm: bytes) -> None:
        listeners = [s for s in live.sinks.values() if s.wants_audio]
        if not listeners and live.audio_backlog is not None:
            live.audio_backlog.append(pcm)
        for sink in listeners:
            await sink.agent_audio(pcm)

    def get(self, session_id: str) -> LiveSession | None:
        """A running session of this gateway."""
        return self.sessions.get(session_id)

    async def adopt(self, session_id: str) -> LiveSession | None:
        """Run here a call another gateway ran until it died (its client reconnected here
        with its media token); None if the call has ended or another gateway runs it."""
        if session_id in self.sessions:
            return self.sessions[session_id]
        adopting = self._adopting.get(session_id)
        if adopting is None:  # two connections at once adopt it once
            adopting = asyncio.ensure_future(self._adopt_logged(session_id))
            self._adopting[session_id] = adopting
            adopting.add_done_callback(lambda _: self._adopting.pop(session_id, None))
        return await asyncio.shield(adopting)

    async def _adopt_logged(self, session_id: str) -> LiveSession | None:
        try:
            return await self._adopt(session_id)
        except Exception:  # NATS failing over, say: the client may try again
            log.exception("session %s: could not adopt it", session_id)
            return None

    async def _adopt(self, session_id: str) -> LiveSession | None:
        if self.calls is None:
            return None
        created = await self.bus.last_event(session_id, SessionCreated.TYPE)
        if created is None or not isinstance(created[1].payload, SessionCreated):
            return None
        if await self.bus.has_ended(session_id):
            return None
        # the dead gateway's lease lapses within its TTL; a live gateway's never does
        deadline = time.monotonic() + 2 * self.calls.ttl_s
        while not await self.calls.take(session_id):
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(self.calls.ttl_s / 4)
        envelope = created[1]
        event = created[1].payload
        live = await self.add(
            session_id, event.agent, event.room_name, event.metadata, created_at=envelope.ts
        )
        live.event_backlog = live.audio_backlog = None  # its client heard all that already
        if await self.bus.has_ended(session_id):  # ended while we took it (now subscribed)
            await self._forget(live)
            return None
        log.warning("session %s adopted: its client reconnected here", session_id)
        return live

    async def lost(self, session_id: str) -> None:
        """Another gateway runs the call now (its client reconnected there): let go here."""
        live = self.sessions.get(session_id)
        if live is not None:
            log.warning("session %s: another gateway runs it now", session_id)
            await self._forget(live)

    def known(self, session_id: str) -> LiveSession | None:
        """A running session, or one that ended here lately."""
        return self.sessions.get(session_id) or self.recently_ended.get(session_id)

    async def attach(self, live: LiveSession, key: int, sink: MediaSink) -> None:
        """Add a client; the first one gets what was said before it came."""
        if live.event_backlog is not None:
            while live.event_backlog:
                await sink.session_event(*live.event_backlog.popleft())
            live.event_backlog = None
        if sink.wants_audio and live.audio_backlog is not None:
            while live.audio_backlog:
                await sink.agent_audio(live.audio_backlog.popleft())
            live.audio_backlog = None
        # no await between the last replayed item and this: nothing falls in between
        live.sinks[key] = sink
        live.disconnected_at = None
        live.touch()
        if self.calls is not None and self.calls.offered(live.session_id):
            try:  # its client is back: not offered now
                await self.calls.take(live.session_id)
            except Exception as exc:
                log.warning("session %s: could not take its lease back: %s", live.session_id, exc)

    def detach(self, live: LiveSession, key: int) -> None:
        live.sinks.pop(key, None)
        if not live.sinks and not live.ended.is_set():
            live.disconnected_at = time.monotonic()
            if self.calls is not None:  # its client may come back through another gateway
                task = asyncio.create_task(self._offer(live.session_id))
                self._ending.add(task)
                task.add_done_callback(self._ending.discard)

    async def _offer(self, session_id: str) -> None:
        if self.calls is not None:
            await self.calls.offer(session_id)

    async def end(self, session_id: str, reason: EndReason, detail: str = "") -> bool:
        """Publish ``lifecycle.ended`` (once); clients hear it before they are hung up."""
        live = self.sessions.get(session_id)
        if live is None or live.ended.is_set() or live.end_reason is not None:
            return False
        live.end_reason = reason
        await end_session(self.bus, session_id, reason, detail)
        try:
            await asyncio.wait_for(live.ended.wait(), ENDED_ECHO_WAIT_S)
        except TimeoutError:  # our own event never came back: release anyway
            await self._forget(live)
        return True

    async def discard(self, session_id: str) -> None:
        """Forget a session that never started (its ``lifecycle.ended`` is already out)."""
        live = self.sessions.get(session_id)
        if live is not None:
            live.end_reason = live.end_reason or EndReason.ERROR
            await self._forget(live)

    async def _forget(self, live: LiveSession) -> None:
        if live.ended.is_set():
            return
        live.ended.set()
        live.ended_at = datetime.now(UTC)
        self.sessions.pop(live.session_id, None)
        if self.calls is not None:
            await self.calls.release(live.session_id)
        self.recently_ended[live.session_id] = live
        while len(self.recently_ended) > RECENTLY_ENDED:
            self.recently_ended.popitem(last=False)
        for sub in live.subscriptions:
            with contextlib.suppress(Exception):  # the connection may be closing already
                await sub.unsubscribe()
        live.subscriptions.clear()
        live.event_backlog = live.audio_backlog = None
        for sink in list(live.sinks.values()):
            try:
                await sink.close()
            except Exception:
                log.warning("closing a transport of %s failed", live.session_id, exc_info=True)
        live.sinks.clear()

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            now = time.monotonic()
            for live in list(self.sessions.values()):
                reason = end_reason(live.clock(), now, self.limits)
                if reason is not None and live.end_reason is None:
                    task = asyncio.create_task(self._end_logged(live.session_id, reason))
                    self._ending.add(task)
                    task.add_done_callback(self._ending.discard)

    async def _end_logged(self, session_id: str, reason: EndReason) -> None:
        try:
            if self.calls is not None and reason is EndReason.CLIENT:
                holder = await self.calls.holder(subjects.GATEWAY_ROLE, session_id)
                if holder is not None and holder.instance != self.calls.instance:
                    await self.lost(session_id)  # its client came back through another
                    return
            await self.end(session_id, reason)
        except Exception:
            log.exception("ending %s (%s) failed", session_id, reason)

    async def close(self, reason: EndReason = EndReason.ERROR) -> None:
        """On shutdown: end what is still running, so no service keeps its state."""
        if self._reaper is not None:
            self._reaper.cancel()
        await asyncio.gather(
            *(self.end(sid, reason, "gateway stopped") for sid in list(self.sessions)),
            return_exceptions=True,
        )
        if self.calls is not None:
            await self.calls.stop()
