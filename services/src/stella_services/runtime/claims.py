"""Sticky sessions for the speech services (stt, tts): the opener's claim, and the claim
subject their replicas answer on (``stella.claim.<service>``, a queue group).

The replica that accepts opens the session (subscribes to its subjects) *before* it
answers and holds it under a lease until ``lifecycle.ended`` (``stella_sdk.runtime.replica``).
"""

from __future__ import annotations

from nats.aio.client import Client as NATS

from stella_contracts import ClaimReply, ClaimRequest, subjects
from stella_sdk.runtime.asking import Answer, ask_until_accepted
from stella_sdk.runtime.replica import Claim, ClaimSubject


class ClaimFailed(RuntimeError):
    """No replica of the service took the session before the deadline; says why."""


async def request_claim(nc: NATS, service: str, session_id: str, *, timeout: float = 5.0) -> str:
    """Have one replica of ``service`` take ``session_id``; return its ``service/instance``.
    Raises :class:`ClaimFailed` naming every reason (the opener then ends the session,
    which frees it in a replica that took it late)."""
    body = ClaimRequest(session_id=session_id, service=service).model_dump_json().encode()
    asked = await ask_until_accepted(
        nc, [subjects.claim(service)], body, _answer, timeout, who=f"{service} replica"
    )
    if asked.answer is None:
        raise ClaimFailed(
            f"no {service} replica took session {session_id} within {timeout:g} s: "
            + "; ".join(asked.reasons or ["no reason given"])
        )
    return asked.answer.instance


def _answer(data: bytes) -> Answer:
    reply = ClaimReply.model_validate_json(data)
    return Answer(reply.accepted, reply.instance, reply.reason)


def _claim(data: bytes) -> Claim:
    request = ClaimRequest.model_validate_json(data)
    return Claim(request.session_id, handoff_from=request.handoff_from)


def _reply(answer: Answer) -> bytes:
    return (
        ClaimReply(accepted=answer.accepted, instance=answer.instance, reason=answer.reason)
        .model_dump_json()
        .encode()
    )


def speech_claims(service: str) -> ClaimSubject:
    """Where a replica of a speech service takes sessions."""
    return ClaimSubject(subjects.claim(service), service, _claim, _reply)
