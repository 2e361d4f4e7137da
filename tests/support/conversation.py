"""Driving a text session over the bus, as a client would, and watching its events."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from stella_contracts import AgentText, AgentTurnDone, Envelope, UserText, subjects
from stella_services.runtime.bus import Bus
from stella_services.runtime.sessions import OpenedSession, new_session_id, open_session
from tests.support.history import TEST_SECRET
from tests.support.waiting import DEADLINE_S


@dataclass
class Conversation:
    bus: Bus
    session: OpenedSession
    events: list[Envelope] = field(default_factory=list)
    _turns: asyncio.Queue[AgentTurnDone] = field(default_factory=asyncio.Queue)
    _sub: Subscription | None = None

    @classmethod
    async def open(cls, bus: Bus, agent: str, room_name: str = "") -> Conversation:
        sid = new_session_id()
        convo = cls(bus, OpenedSession(sid, "", agent, ""))  # the real one once dispatched
        convo._sub = await bus.nc.subscribe(subjects.session_events(sid), cb=convo._on)
        convo.session = await open_session(
            bus, agent, TEST_SECRET, room_name=room_name, session_id=sid
        )
        return convo

    async def _on(self, msg: Msg) -> None:
        env = Envelope.from_json(msg.data)
        self.events.append(env)
        if isinstance(env.payload, AgentTurnDone):
            self._turns.put_nowait(env.payload)

    async def turn_done(self, timeout: float = DEADLINE_S) -> AgentTurnDone:
        return await asyncio.wait_for(self._turns.get(), timeout)

    async def say(self, text: str, timeout: float = DEADLINE_S) -> str:
        """Send user text; return the agent's final replies of that turn, joined."""
        start = len(self.events)
        await self.bus.emit(self.session.session_id, UserText(text=text))
        done = await self.turn_done(timeout)
        assert not done.error, done.error
        return " ".join(
            e.payload.text
            for e in self.events[start:]
            if isinstance(e.payload, AgentText) and e.payload.is_final
        )

    async def say_nothing_back(self, text: str, wait: float = 1.0) -> bool:
        """Send user text and confirm no agent turn follows (the session has ended)."""
        await self.bus.emit(self.session.session_id, UserText(text=text))
        try:
            await asyncio.wait_for(self._turns.get(), wait)
        except TimeoutError:
            return True
        return False

    def of_type(self, type_: str) -> list[Envelope]:
        return [e for e in self.events if e.type == type_]

    async def close(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None
