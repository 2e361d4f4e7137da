"""The agent runner: a replica of the agent's role (``stella_sdk.runtime.replica``), one
agent instance per session.

Pool mode: a queue group on ``stella.dispatch.<agent>`` spreads sessions over every
runner of the agent. Room mode (``ROOM_NAME`` set): the runner serves that one room on
``stella.dispatch.<agent>.<room>``. Each session is held under a lease; when a runner dies
another runner of the agent takes the session over: a new agent instance, its kept state
restored (``stella_sdk.checkpoint``), ``on_connect`` run again with ``resumed`` True and
its greeting not said twice. On SIGTERM a runner takes nothing new, waits up to
``STELLA_DRAIN_TIMEOUT_S`` for its sessions to end and hands the rest to another runner
(or ends them, if there is none).
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from stella_contracts import DispatchReply, DispatchRequest, ServiceStatus, subjects
from stella_sdk.bus import Bus
from stella_sdk.checkpoint import Checkpoints
from stella_sdk.runtime.asking import Answer
from stella_sdk.runtime.replica import Claim, ClaimSubject, Replica
from stella_sdk.runtime.serving import serve as serve_process
from stella_sdk.session import AgentSession
from stella_sdk.settings import AgentSettings

if TYPE_CHECKING:
    from stella_sdk.agent import BaseAgent

log = logging.getLogger(__name__)

SERVICE = "agent-runner"
QUEUE = "agent-runners"


class HeldAgent:
    """One session's agent, as the replica holds it."""

    def __init__(self, session: AgentSession) -> None:
        self.session = session

    def held(self) -> tuple[int, int]:
        return self.session.held()

    async def close(self) -> None:
        self.session.stop()  # its end event may have stopped it already; idempotent
        await self.session.ended.wait()


class AgentHost:
    def __init__(self, agent_class: type[BaseAgent], settings: AgentSettings) -> None:
        self.agent_class = agent_class
        self.settings = settings
        self.name = agent_class.agent_name(settings)
        self.room = settings.room_name
        self.bus: Bus | None = None
        self.replica: Replica | None = None
        self.checkpoints: Checkpoints | None = None

    @property
    def dispatch_subject(self) -> str:
        if self.room:
            return subjects.dispatch_room(self.name, self.room)
        return subjects.dispatch(self.name)

    @property
    def capacity(self) -> int:
        return 1 if self.room else self.settings.max_sessions

    @property
    def sessions(self) -> dict[str, AgentSession]:
        held = self.replica.sessions if self.replica is not None else {}
        return {sid: h.session for sid, h in held.items() if isinstance(h, HeldAgent)}

    async def start(self) -> None:
        self.bus = await Bus.open(
            self.settings.nats_servers(), service=SERVICE, instance=self.settings.instance
        )
        self.checkpoints = await Checkpoints.open(self.bus.js, self.settings.stream_replicas)
        self.replica = Replica(
            self.bus,
            self.settings,
            SERVICE,
            self._open,
            role=subjects.lease_role(SERVICE, self.name),
            capacity=self.capacity,
            end_unserved=True,  # a session without its agent is over
        )
        await self.replica.start(ClaimSubject(self.dispatch_subject, QUEUE, _claim, _reply))
        await self.bus.nc.flush()  # the server knows us before anyone is told we are ready
        log.info(
            "agent %r taking sessions on %s (capacity %d)",
            self.name,
            self.dispatch_subject,
            self.capacity,
        )

    async def _open(self, claim: Claim) -> HeldAgent | None:
        assert self.bus is not None
        request = DispatchRequest.model_validate_json(claim.ticket)
        agent = self.agent_class.create_for_session()
        session = AgentSession(
            self.bus,
            self.settings,
            request,
            agent,
            resumed=claim.resumed,
            checkpoints=self.checkpoints,
        )
        if not await session.start():
            return None
        return HeldAgent(session)

    def status(self) -> ServiceStatus:
        assert self.replica is not None
        return self.replica.status()

    async def drain(self, timeout: float | None = None) -> None:
        """Take no new sessions; wait for the held ones to end; hand on or end the rest."""
        if self.replica is not None:
            await self.replica.drain(timeout)

    async def stop(self) -> None:
        await self.drain()
        if self.replica is not None:
            await self.replica.stop()
        if self.bus is not None:
            await self.bus.close()


def _claim(data: bytes) -> Claim:
    request = DispatchRequest.model_validate_json(data)
    return Claim(request.session_id, ticket=data.decode())


def _reply(answer: Answer) -> bytes:
    reply = DispatchReply(accepted=answer.accepted, runner=answer.instance, reason=answer.reason)
    return reply.model_dump_json().encode()


class _Runner:
    """What ``serve`` runs: the host under the name ``agent-runner``."""

    name = SERVICE

    def __init__(self, host: AgentHost) -> None:
        self.host = host
        self.settings = host.settings
        self.bus: Bus | None = None

    async def start(self) -> None:
        await self.host.start()
        self.bus = self.host.bus

    async def stop(self) -> None:
        await self.host.stop()


async def serve(agent_class: type[BaseAgent], settings: AgentSettings) -> None:
    host = AgentHost(agent_class, settings)
    await serve_process(_Runner(host), f"{SERVICE} {host.name} {settings.instance}")


def run_host(agent_class: type[BaseAgent], settings: AgentSettings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(serve(agent_class, settings))
