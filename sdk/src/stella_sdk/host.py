"""The agent runner: takes sessions from the dispatch queue, one agent instance each.

Pool mode: a queue group on ``stella.dispatch.<agent>`` spreads sessions over every
runner of the agent. Room mode (``ROOM_NAME`` set): the runner serves that one room on
``stella.dispatch.<agent>.<room>``. On SIGTERM a runner stops taking sessions and waits
(up to ``STELLA_DRAIN_TIMEOUT_S``) for the ones it holds to end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from stella_contracts import (
    DispatchReply,
    DispatchRequest,
    EndReason,
    ServiceStatus,
    SessionEnded,
    subjects,
)
from stella_contracts.claims import REASON_ENDED
from stella_sdk.admission import admit
from stella_sdk.bus import Bus, stop_taking
from stella_sdk.session import AgentSession
from stella_sdk.settings import AgentSettings
from stella_sdk.signals import start_unless_stopped, stop_on_signals
from stella_sdk.status import answer_status, status_of

if TYPE_CHECKING:
    from stella_sdk.agent import BaseAgent

log = logging.getLogger(__name__)

SERVICE = "agent-runner"
QUEUE = "agent-runners"
END_WAIT_S = 5.0  # after announcing the end of sessions left at the drain deadline


class AgentHost:
    def __init__(self, agent_class: type[BaseAgent], settings: AgentSettings) -> None:
        self.agent_class = agent_class
        self.settings = settings
        self.name = agent_class.agent_name(settings)
        self.room = settings.room_name
        self.bus: Bus | None = None
        self.sessions: dict[str, AgentSession] = {}
        self.served_total = 0
        self._sub: Subscription | None = None
        self._status_subs: list[Subscription] = []
        self._draining = False
        self._cleanup: set[asyncio.Task[None]] = set()

    @property
    def dispatch_subject(self) -> str:
        if self.room:
            return subjects.dispatch_room(self.name, self.room)
        return subjects.dispatch(self.name)

    @property
    def capacity(self) -> int:
        return 1 if self.room else self.settings.max_sessions

    async def start(self) -> None:
        self.bus = await Bus.open(
            self.settings.nats_servers(), service=SERVICE, instance=self.settings.instance
        )
        self._sub = await self.bus.nc.subscribe(
            self.dispatch_subject, queue=QUEUE, cb=self._on_dispatch
        )
        self._status_subs = await answer_status(self.bus.nc, SERVICE, self.status)
        await self.bus.nc.flush()  # the server knows us before anyone is told we are ready
        log.info(
            "agent %r taking sessions on %s (capacity %d)",
            self.name,
            self.dispatch_subject,
            self.capacity,
        )

    async def _on_dispatch(self, msg: Msg) -> None:
        assert self.bus is not None
        try:
            request = DispatchRequest.model_validate_json(msg.data)
        except ValidationError as exc:
            await self.bus.dead_letter(msg.subject, msg.data, msg.headers, str(exc))
            await msg.respond(
                DispatchReply(accepted=False, reason="invalid request").model_dump_json().encode()
            )
            return
        reply = await self._accept(request)
        await msg.respond(reply.model_dump_json().encode())

    async def _accept(self, request: DispatchRequest) -> DispatchReply:
        assert self.bus is not None
        runner = f"{SERVICE}/{self.settings.instance}"
        admission = admit(
            already_held=request.session_id in self.sessions,
            draining=self._draining,
            held=len(self.sessions),
            capacity=self.capacity,
        )
        if not admission.accepted or admission.reason:
            return DispatchReply(
                accepted=admission.accepted, runner=runner, reason=admission.reason
            )
        agent = self.agent_class.create_for_session()
        session = AgentSession(self.bus, self.settings, request, agent)
        self.sessions[request.session_id] = session
        if not await session.start():
            self.sessions.pop(request.session_id, None)
            return DispatchReply(accepted=False, runner=runner, reason=REASON_ENDED)
        self.served_total += 1
        task = asyncio.create_task(self._forget_when_ended(session))
        self._cleanup.add(task)
        task.add_done_callback(self._cleanup.discard)
        log.info("serving session %s (%d active)", request.session_id, len(self.sessions))
        return DispatchReply(accepted=True, runner=runner)

    async def _forget_when_ended(self, session: AgentSession) -> None:
        await session.ended.wait()
        self.sessions.pop(session.session_id, None)

    def status(self) -> ServiceStatus:
        tasks = subs = 0
        for session in self.sessions.values():
            t, n = session.held()
            tasks, subs = tasks + t, subs + n
        assert self.bus is not None
        return status_of(
            self.bus.nc,
            SERVICE,
            self.settings.instance,
            sessions=self.sessions,
            tasks=tasks + len(self._cleanup),
            subscriptions=subs,
            draining=self._draining,
            capacity=self.capacity,
            served_total=self.served_total,
        )

    async def drain(self, timeout: float | None = None) -> None:
        """Take no new sessions; wait for the held ones to end; end those left at the
        deadline (``lifecycle.ended``, so every other service frees them too)."""
        self._draining = True
        if self._sub is not None:
            # drain, not unsubscribe: dispatches already queued here get "draining" at once
            # (and go to another runner) instead of timing out unanswered
            await stop_taking(self._sub)
            self._sub = None
        limit = self.settings.drain_timeout_s if timeout is None else timeout
        pending = [s.ended.wait() for s in self.sessions.values()]
        if pending:
            log.info("draining: waiting up to %.0fs for %d session(s)", limit, len(pending))
            try:
                await asyncio.wait_for(asyncio.gather(*pending), limit)
            except TimeoutError:
                log.warning("drain timed out; ending %d session(s)", len(self.sessions))
        left = list(self.sessions.values())
        if left and self.bus is not None and self.bus.nc.is_connected:
            for session in left:
                with contextlib.suppress(Exception):
                    await self.bus.emit(
                        session.session_id,
                        SessionEnded(reason=EndReason.AGENT, detail="agent runner shut down"),
                    )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(s.ended.wait() for s in left)), END_WAIT_S)
        for session in list(self.sessions.values()):
            session.stop()  # not reached by its own end event: end it here
        await asyncio.gather(*(s.ended.wait() for s in list(self.sessions.values())))

    async def stop(self) -> None:
        if self.bus is not None:
            await self.bus.close()


async def serve(agent_class: type[BaseAgent], settings: AgentSettings) -> None:
    host = AgentHost(agent_class, settings)
    stop = stop_on_signals()
    ready_file = settings.ready_file
    if ready_file is not None:  # a restarted container keeps its files: never look ready early
        ready_file.unlink(missing_ok=True)
    if not await start_unless_stopped(host.start(), stop):
        log.info("agent-runner %s stopped before it was ready", host.name)
        return
    if ready_file is not None:  # before the line, so whoever reads the line finds the file
        ready_file.write_text(f"agent-runner {host.name} {settings.instance}\n")
    print(f"STELLA-READY agent-runner {host.name} {settings.instance}", flush=True)
    await stop.wait()
    if ready_file is not None:  # draining takes no new sessions: not ready any more
        ready_file.unlink(missing_ok=True)
    await host.drain()
    await host.stop()


def run_host(agent_class: type[BaseAgent], settings: AgentSettings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(serve(agent_class, settings))
