"""Opening and ending sessions: ``lifecycle.created``; for a voice session one stt and one
tts replica claim it; then dispatch to one agent runner."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from stella_contracts import (
    DispatchReply,
    DispatchRequest,
    EndReason,
    SessionCreated,
    SessionEnded,
    new_id,
    subjects,
)
from stella_sdk.runtime.asking import Answer, ask_until_accepted
from stella_services.runtime import tokens
from stella_services.runtime.bus import Bus
from stella_services.runtime.claims import request_claim

HISTORY_TOKEN_TTL_S = 24 * 3600
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
    asked = await ask_until_accepted(
        bus.nc,
        targets,
        request.model_dump_json().encode(),
        _runner_answer,
        timeout,
        who="runner",
        wait_for_replica=False,  # an agent nobody runs is an error now, not in 5 s
    )
    if asked.answer is not None:
        runner = asked.answer.instance
        return OpenedSession(session_id, room, agent, runner, speech["stt"], speech["tts"])
    detail = f"no runner took the session for agent {agent!r}: " + "; ".join(asked.reasons)
    await bus.emit(session_id, SessionEnded(reason=EndReason.ERROR, detail=detail))
    raise (NoRunner if asked.nobody_listens else DispatchFailed)(detail)


def _runner_answer(data: bytes) -> Answer:
    reply = DispatchReply.model_validate_json(data)
    return Answer(reply.accepted, reply.runner, reply.reason)


async def end_session(bus: Bus, session_id: str, reason: EndReason, detail: str = "") -> None:
    """Every service frees what it holds for the session when this event arrives."""
    await bus.emit(session_id, SessionEnded(reason=reason, detail=detail))
