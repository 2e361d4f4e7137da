"""Opening and ending sessions: ``lifecycle.created``, then dispatch to one agent runner."""

from __future__ import annotations

from dataclasses import dataclass

from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from stella_contracts import (
    DispatchReply,
    DispatchRequest,
    EndReason,
    SessionCreated,
    SessionEnded,
    new_id,
    subjects,
)
from stella_services.runtime import tokens
from stella_services.runtime.bus import Bus

HISTORY_TOKEN_TTL_S = 24 * 3600
DISPATCH_ATTEMPTS = 4


class DispatchFailed(RuntimeError):
    pass


class NoRunner(DispatchFailed):
    """No runner of this agent is subscribed at all (unknown agent, or none started)."""


@dataclass(frozen=True, slots=True)
class OpenedSession:
    session_id: str
    room_name: str
    agent: str
    runner: str


def new_session_id() -> str:
    return str(new_id())


async def open_session(
    bus: Bus,
    agent: str,
    secret: str,
    *,
    room_name: str = "",
    audio: bool = False,
    metadata: dict[str, str] | None = None,
    timeout: float = 5.0,
    session_id: str = "",
) -> OpenedSession:
    """Record the session, then hand it to exactly one runner of ``agent``.

    A named room goes first to a runner that serves that room, then to the agent's pool.
    """
    session_id = session_id or new_session_id()
    room = room_name or f"room-{session_id}"
    await bus.emit(
        session_id,
        SessionCreated(agent=agent, room_name=room, audio=audio, metadata=metadata or {}),
    )
    request = DispatchRequest(
        session_id=session_id,
        agent=agent,
        room_name=room,
        audio=audio,
        metadata=metadata or {},
        history_token=tokens.mint(secret, session_id, tokens.Scope.HISTORY, HISTORY_TOKEN_TTL_S),
    )
    targets = [subjects.dispatch(agent)]
    if room_name:
        targets.insert(0, subjects.dispatch_room(agent, room_name))
    body = request.model_dump_json().encode()
    reasons: list[str] = []
    unanswered = 0
    for subject in targets:
        for _ in range(DISPATCH_ATTEMPTS):
            try:
                msg = await bus.nc.request(subject, body, timeout=timeout)
            except NoRespondersError:
                reasons.append(f"no runner on {subject}")
                unanswered += 1
                break
            except (TimeoutError, NatsTimeout):
                reasons.append(f"no answer on {subject} in {timeout:g} s")
                continue
            reply = DispatchReply.model_validate_json(msg.data)
            if reply.accepted:
                return OpenedSession(session_id, room, agent, reply.runner)
            reasons.append(f"{reply.runner}: {reply.reason}")  # busy: ask the group again
    detail = f"no runner took the session for agent {agent!r}: " + "; ".join(reasons)
    await bus.emit(session_id, SessionEnded(reason=EndReason.ERROR, detail=detail))
    raise (NoRunner if unanswered == len(targets) else DispatchFailed)(detail)


async def end_session(bus: Bus, session_id: str, reason: EndReason, detail: str = "") -> None:
    await bus.emit(session_id, SessionEnded(reason=reason, detail=detail))
