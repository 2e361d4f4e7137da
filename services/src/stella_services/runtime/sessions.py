"""Opening and ending sessions: ``lifecycle.created``; for a voice session one stt and one
tts replica claim it; then dispatch to one agent runner."""

from __future__ import annotations

import asyncio
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
from stella_contracts.claims import REASON_ENDED
from stella_services.runtime import tokens
from stella_services.runtime.bus import Bus
from stella_services.runtime.claims import request_claim

HISTORY_TOKEN_TTL_S = 24 * 3600
DISPATCH_ATTEMPTS = 4
SPEECH_SERVICES = ("stt", "tts")  # what a voice session needs besides its agent


class DispatchFailed(RuntimeError):
    pass


class NoRunner(DispatchFailed):
    """No runner of this agent is subscribed at all (unknown agent, or none started)."""


class SpeechClaimFailed(DispatchFailed):
    """A voice session found no stt or tts replica to take it (the session is ended)."""


@dataclass(frozen=True, slots=True)
class OpenedSession:
    session_id: str
    room_name: str
    agent: str
    runner: str
    stt: str = ""  # service/instance serving the session's speech; empty for text sessions
    tts: str = ""


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
    """Record the session; for a voice session have one stt and one tts replica claim it;
    then hand it to exactly one runner of ``agent``.

    Speech is claimed before the runner gets the session, so its greeting and the user's
    first words find their replicas subscribed. A named room goes first to a runner that
    serves that room, then to the agent's pool. Each step waits at most ``timeout``; if one
    fails the session is ended (``lifecycle.ended``, reason ``error``) and this raises.
    """
    session_id = session_id or new_session_id()
    room = room_name or f"room-{session_id}"
    await bus.emit(
        session_id,
        SessionCreated(agent=agent, room_name=room, audio=audio, metadata=metadata or {}),
    )
    speech = {"stt": "", "tts": ""}
    if audio:
        results = await asyncio.gather(
            *(request_claim(bus.nc, s, session_id, timeout=timeout) for s in SPEECH_SERVICES),
            return_exceptions=True,
        )
        failures = [str(r) for r in results if isinstance(r, BaseException)]
        if failures:
            detail = "; ".join(failures)
            await bus.emit(session_id, SessionEnded(reason=EndReason.ERROR, detail=detail))
            raise SpeechClaimFailed(detail)
        speech = {s: str(r) for s, r in zip(SPEECH_SERVICES, results, strict=True)}
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
    reply, reasons = await _dispatch(bus, targets, request.model_dump_json().encode(), timeout)
    if reply is not None:
        return OpenedSession(session_id, room, agent, reply.runner, speech["stt"], speech["tts"])
    detail = f"no runner took the session for agent {agent!r}: " + "; ".join(reasons)
    await bus.emit(session_id, SessionEnded(reason=EndReason.ERROR, detail=detail))
    nobody = len(reasons) == len(targets) and all(r.startswith("no runner on") for r in reasons)
    raise (NoRunner if nobody else DispatchFailed)(detail)


async def _dispatch(
    bus: Bus, targets: list[str], body: bytes, timeout: float
) -> tuple[DispatchReply | None, list[str]]:
    """The first runner that accepts, or None and why not. A refusal (busy, draining) asks
    the group again; silence does not: a runner may be taking the session slowly, and
    asking again could start a second agent for it."""
    reasons: list[str] = []
    for subject in targets:
        for _ in range(DISPATCH_ATTEMPTS):
            try:
                msg = await bus.nc.request(subject, body, timeout=timeout)
            except NoRespondersError:
                reasons.append(f"no runner on {subject}")
                break
            except (TimeoutError, NatsTimeout):
                reasons.append(f"no answer on {subject} in {timeout:g} s")
                return None, reasons
            reply = DispatchReply.model_validate_json(msg.data)
            if reply.accepted:
                return reply, reasons
            reasons.append(f"{reply.runner}: {reply.reason}")
            if reply.reason == REASON_ENDED:  # no runner will take it: why ask one
                return None, reasons
    return None, reasons


async def end_session(bus: Bus, session_id: str, reason: EndReason, detail: str = "") -> None:
    """Every service frees what it holds for the session when this event arrives."""
    await bus.emit(session_id, SessionEnded(reason=reason, detail=detail))
