"""Sticky sessions for per-session services (stt, tts).

The session opener asks ``stella.claim.<service>`` (a queue group, request/reply); the one
replica that accepts subscribes to that session's own subjects *before* it answers, so
nothing sent after the claim is lost, records a ``lifecycle.claimed`` event, and serves the
session until ``lifecycle.ended``. On SIGTERM a replica stops taking claims, waits for its
sessions to end (``STELLA_DRAIN_TIMEOUT_S``) and hands those still open at the deadline to
another replica of its service (a claim with ``handoff_from``) before it lets them go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from pydantic import ValidationError

from stella_contracts import (
    ClaimReply,
    ClaimRequest,
    Envelope,
    InvalidEnvelope,
    ServiceStatus,
    SessionClaimed,
    SessionEnded,
    subjects,
)
from stella_contracts.claims import REASON_ENDED
from stella_sdk.admission import admit
from stella_sdk.bus import stop_taking
from stella_sdk.status import answer_status, status_of
from stella_services.runtime.bus import Bus
from stella_services.runtime.settings import ServiceSettings

log = logging.getLogger(__name__)

HANDOVER_TIMEOUT_S = 2.0  # a draining replica waits this long for another to take a session
RETRY_PAUSE_S = 0.1
DRAIN_POLL_S = 0.1


class ClaimFailed(RuntimeError):
    """No replica of the service took the session before the deadline; says why."""


async def request_claim(
    nc: NATS, service: str, session_id: str, *, timeout: float = 5.0, handoff_from: str = ""
) -> str:
    """Have one replica of ``service`` take ``session_id``; return its ``service/instance``.

    Retries until ``timeout``: a refusal (draining, at capacity) lets the queue group pick
    again, and with no replica up at all a replica starting within the deadline still
    gets the session. A request that is not answered is *not* asked again: the replica
    may be taking the session slowly, and a second one would then serve it too. Raises
    :class:`ClaimFailed` naming every reason otherwise (the opener then ends the session,
    which frees it in a replica that took it late).
    """
    body = ClaimRequest(
        session_id=session_id, service=service, handoff_from=handoff_from
    ).model_dump_json()
    deadline = time.monotonic() + timeout
    reasons: list[str] = []
    while (remaining := deadline - time.monotonic()) > 0:
        try:
            msg = await nc.request(subjects.claim(service), body.encode(), timeout=remaining)
        except NoRespondersError:
            _note(reasons, f"no {service} replica is running")
        except (TimeoutError, NatsTimeout):
            _note(reasons, f"a {service} replica did not answer within {remaining:.1f} s")
            break
        else:
            reply = ClaimReply.model_validate_json(msg.data)
            if reply.accepted:
                return reply.instance
            _note(reasons, f"{reply.instance}: {reply.reason}")
            if reply.reason == REASON_ENDED:
                break
        await asyncio.sleep(min(RETRY_PAUSE_S, max(0.0, deadline - time.monotonic())))
    raise ClaimFailed(
        f"no {service} replica took session {session_id} within {timeout:g} s: "
        + "; ".join(reasons or ["no reason given"])
    )


def _note(reasons: list[str], reason: str) -> None:
    if reason not in reasons:  # retries repeat themselves; say each reason once
        reasons.append(reason)


class HeldSession(Protocol):
    """What a replica keeps for one session (a listener, a speaker) and its subscriptions."""

    def held(self) -> tuple[int, int]:
        """(asyncio tasks, NATS subscriptions) held right now."""

    async def close(self) -> None:
        """Unsubscribe and free everything; called once, when the session ends or moves."""


OpenSession = Callable[[str], Awaitable[HeldSession]]
# extra sessions and tasks a service holds outside its claims (tts synthesis streams)
ExtraHeld = Callable[[], tuple[set[str], int]]
# what else to free when a session ends, claimed here or not (tts synthesis streams)
OnEnded = Callable[[str], None]


class SessionClaims:
    def __init__(
        self,
        bus: Bus,
        settings: ServiceSettings,
        service: str,
        open_session: OpenSession,
        extra: ExtraHeld | None = None,
        on_ended: OnEnded | None = None,
    ) -> None:
        self.bus = bus
        self.settings = settings
        self.service = service
        self.instance = f"{service}/{settings.instance}"
        self.sessions: dict[str, HeldSession] = {}
        self.draining = False
        self.served_total = 0
        self._open = open_session
        self._extra = extra
        self._on_ended_hook = on_ended
        self._claim_sub: Subscription | None = None
        self._claim_tasks: set[asyncio.Task[None]] = set()
        self._subs: list[Subscription] = []
        self._claiming: set[str] = set()  # being set up right now

    async def start(self) -> None:
        nc = self.bus.nc
        self._claim_sub = await nc.subscribe(
            subjects.claim(self.service), queue=self.service, cb=self._on_claim
        )
        self._subs = [
            await nc.subscribe(subjects.any_session_event(SessionEnded.TYPE), cb=self._on_ended),
            *await answer_status(nc, self.service, self.status),
        ]

    # -- claims ------------------------------------------------------------------------

    async def _on_claim(self, msg: Msg) -> None:
        # nats-py runs one callback at a time per subscription: each claim waits on a flush
        # and a JetStream ack, so claims run as tasks or a burst of sessions would queue
        task = asyncio.create_task(self._answer(msg))
        self._claim_tasks.add(task)
        task.add_done_callback(self._claim_tasks.discard)

    async def _answer(self, msg: Msg) -> None:
        try:
            request = ClaimRequest.model_validate_json(msg.data)
        except ValidationError as exc:
            await self.bus.dead_letter(msg.subject, msg.data, msg.headers, str(exc))
            reply = ClaimReply(accepted=False, instance=self.instance, reason="invalid request")
        else:
            reply = await self.take(request)
        await msg.respond(reply.model_dump_json().encode())

    async def take(self, request: ClaimRequest) -> ClaimReply:
        sid = request.session_id
        admission = admit(
            already_held=sid in self.sessions or sid in self._claiming,
            draining=self.draining,
            held=len(self.sessions) + len(self._claiming),  # claims still being set up count
            capacity=self.settings.max_sessions,
        )
        if not admission.accepted or admission.reason:
            return ClaimReply(
                accepted=admission.accepted, instance=self.instance, reason=admission.reason
            )
        self._claiming.add(sid)
        try:
            held = await self._open(sid)
        except Exception as exc:
            log.exception("session %s: could not take it", sid)
            return ClaimReply(accepted=False, instance=self.instance, reason=f"failed: {exc}")
        finally:
            self._claiming.discard(sid)
        self.sessions[sid] = held
        self.served_total += 1
        if await self.bus.has_ended(sid):  # ended before we held it: its end freed nothing
            await self.release(sid)
            return ClaimReply(accepted=False, instance=self.instance, reason=REASON_ENDED)
        await self.bus.nc.flush()  # the server routes its subjects here before we say yes
        await self.bus.emit(
            sid,
            SessionClaimed(
                service=self.service,
                instance=self.settings.instance,
                handoff_from=request.handoff_from,
            ),
        )
        log.info("session %s taken (%d held)", sid, len(self.sessions))
        return ClaimReply(accepted=True, instance=self.instance)

    async def _on_ended(self, msg: Msg) -> None:
        try:
            env = Envelope.from_json(msg.data)
        except InvalidEnvelope:
            return  # the recorder dead-letters it
        if isinstance(env.payload, SessionEnded):
            if self._on_ended_hook is not None:
                self._on_ended_hook(env.session_id)
            await self.release(env.session_id)

    async def release(self, session_id: str) -> None:
        """Free everything held for the session (its end, or a hand-over)."""
        held = self.sessions.pop(session_id, None)
        if held is not None:
            try:
                await held.close()
            except Exception:
                log.exception("session %s: closing failed", session_id)
        self.bus.envelopes.forget(session_id)

    # -- draining ----------------------------------------------------------------------

    async def drain(self, timeout: float | None = None) -> None:
        """Take no new sessions; wait for the held ones to end; hand on the rest."""
        self.draining = True
        if self._claim_sub is not None:
            # drain, not unsubscribe: claims already queued here are refused at once
            # ("draining") and asked again elsewhere, instead of timing out unanswered
            await stop_taking(self._claim_sub)
            self._claim_sub = None
        if self._claim_tasks:  # claims being answered finish first: they may add sessions
            await asyncio.wait(list(self._claim_tasks), timeout=HANDOVER_TIMEOUT_S)
        limit = self.settings.drain_timeout_s if timeout is None else timeout
        if self.sessions:
            log.info("draining: waiting up to %.0fs for %d session(s)", limit, len(self.sessions))
        deadline = time.monotonic() + limit
        while self.sessions and time.monotonic() < deadline:
            await asyncio.sleep(DRAIN_POLL_S)
        for sid in list(self.sessions):
            await self._hand_over(sid)

    async def _hand_over(self, session_id: str) -> None:
        try:
            taker = await request_claim(
                self.bus.nc,
                self.service,
                session_id,
                timeout=HANDOVER_TIMEOUT_S,
                handoff_from=self.settings.instance,
            )
        except ClaimFailed as exc:
            log.warning("session %s left without %s: %s", session_id, self.service, exc)
        else:
            log.info("session %s handed over to %s", session_id, taker)
        # the taker subscribed before it answered: from here on both hear the session,
        # so letting go now loses nothing
        await self.release(session_id)

    async def stop(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs = []
        for sid in list(self.sessions):
            await self.release(sid)

    # -- status ------------------------------------------------------------------------

    def status(self) -> ServiceStatus:
        sessions = set(self.sessions)
        tasks = subs = 0
        for held in self.sessions.values():
            t, n = held.held()
            tasks, subs = tasks + t, subs + n
        if self._extra is not None:
            more, more_tasks = self._extra()
            sessions |= more
            tasks += more_tasks
        return status_of(
            self.bus.nc,
            self.service,
            self.settings.instance,
            sessions=sessions,
            tasks=tasks,
            subscriptions=subs,
            draining=self.draining,
            capacity=self.settings.max_sessions,
            served_total=self.served_total,
        )
