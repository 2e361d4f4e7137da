"""Every session event on the bus, kept per session, for tests that watch many sessions."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from stella_contracts import Envelope, InvalidEnvelope, subjects
from stella_services.runtime.bus import Bus
from tests.support.waiting import DEADLINE_S, until


@dataclass
class EventLog:
    bus: Bus
    by_session: defaultdict[str, list[Envelope]] = field(default_factory=lambda: defaultdict(list))
    _sub: Subscription | None = None

    async def attach(self) -> EventLog:
        self._sub = await self.bus.nc.subscribe(subjects.all_session_events(), cb=self._on)
        await self.bus.nc.flush()
        return self

    async def _on(self, msg: Msg) -> None:
        try:
            env = Envelope.from_json(msg.data)
        except InvalidEnvelope:
            return
        self.by_session[env.session_id].append(env)

    def of(self, session_id: str, type_: str) -> list[Envelope]:
        return [e for e in self.by_session[session_id] if e.type == type_]

    def sources(self, session_id: str, type_: str) -> set[str]:
        """``service/instance`` of every producer of ``type_`` events in the session."""
        return {str(e.source) for e in self.of(session_id, type_)}

    async def wait_until(self, done: Callable[[], bool], timeout: float = DEADLINE_S) -> bool:
        """Whether ``done()`` came true within ``timeout`` s (the caller says what is missing)."""
        try:
            return await until(done, "the events", timeout)
        except AssertionError:
            return False

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
