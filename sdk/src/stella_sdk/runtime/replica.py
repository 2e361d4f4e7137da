"""A replica of a session-holding role (stt, tts, an agent's runners): it admits sessions
from a queue group, holds each under a lease, takes over sessions whose holder died,
drains on SIGTERM and reports what it holds.

The one place sessions are held. A claim is answered only once the session is open here
(its subscriptions made), so nothing the session sends after the answer is missed. When a
lease lapses (its holder was SIGKILLed, ran out of memory, lost the network) every replica
of the role hears it and one wins the lease; it opens the session again as a resumption.
On SIGTERM a replica takes nothing new, waits ``drain_timeout_s`` for its sessions to end,
then offers the rest to the other replicas of its role and lets each go once taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError

from stella_contracts import (
    EndReason,
    Envelope,
    InvalidEnvelope,
    ServiceStatus,
    SessionClaimed,
    SessionEnded,
    subjects,
)
from stella_contracts.claims import REASON_ENDED
from stella_sdk.bus import Bus, stop_taking
from stella_sdk.runtime.admission import admit
from stella_sdk.runtime.asking import Answer
from stella_sdk.runtime.leases import Lapsed, Leases, open_bucket
from stella_sdk.runtime.settings import RuntimeSettings
from stella_sdk.runtime.status import answer_status, status_of

log = logging.getLogger(__name__)

HANDOVER_TIMEOUT_S = 2.0  # a draining replica waits this long for another to take a session
DRAIN_POLL_S = 0.1


@dataclass(frozen=True, slots=True)
class Claim:
    """A request to serve a session, whatever subject it came on."""

    session_id: str
    ticket: str = ""  # what resuming needs (an agent's DispatchRequest as JSON)
    handoff_from: str = ""  # the replica giving it up, or the one whose lease lapsed
    resumed: bool = False  # taken over: the session was already under way


class HeldSession(Protocol):
    """What a replica keeps for one session (a listener, a speaker, an agent)."""

    def held(self) -> tuple[int, int]:
        """(asyncio tasks, NATS subscriptions) held right now."""

    async def close(self) -> None:
        """Unsubscribe and free everything; called once, when the session ends or moves."""


GATEWAY_GONE = "its gateway is gone"  # SessionEnded.detail of a call whose gateway died

# opens a session here; None: it turned out to have ended already
OpenSession = Callable[[Claim], Awaitable[HeldSession | None]]
ParseClaim = Callable[[bytes], Claim]  # raises ValidationError for a bad request
ReplyTo = Callable[[Answer], bytes]
ExtraHeld = Callable[[], tuple[set[str], int]]  # held outside sessions (tts synthesis streams)
OnEnded = Callable[[str], None]  # more to free when any session ends


@dataclass(frozen=True, slots=True)
class ClaimSubject:
    subject: str
    queue: str
    parse: ParseClaim
    reply: ReplyTo


class Replica:
    def __init__(
        self,
        bus: Bus,
        settings: RuntimeSettings,
        service: str,
        open_session: OpenSession,
        *,
        role: str = "",
        capacity: int | None = None,
        end_unserved: bool = False,
        extra: ExtraHeld | None = None,
        on_ended: OnEnded | None = None,
    ) -> None:
        self.bus = bus
        self.settings = settings
        self.service = service
        self.role = role or service
        self.instance = f"{service}/{settings.instance}"
        self.capacity = settings.max_sessions if capacity is None else capacity
        self.sessions: dict[str, HeldSession] = {}
        self.draining = False
        self.served_total = 0
        self.taken_over_total = 0
        self._open = open_session
        self._end_unserved = end_unserved  # at the drain deadline, end what nobody took
        self._extra = extra
        self._on_ended_hook = on_ended
        self._leases: Leases | None = None
        self._calls: Leases | None = None  # watches the gateways' leases on their calls
        self._gateway_lapsed: dict[str, float] = {}  # calls whose gateway lease lapsed: when
        self._claim_subs: list[Subscription] = []
        self._claim_tasks: set[asyncio.Task[None]] = set()
        self._subs: list[Subscription] = []
        self._claiming: set[str] = set()  # being set up right now

    @property
    def leases(self) -> Leases:
        assert self._leases is not None, "start() first"
        return self._leases

    async def start(self, *claims: ClaimSubject) -> None:
        nc = self.bus.nc
        kv = await open_bucket(
            self.bus.js, self.settings.lease_ttl_s, self.settings.stream_replicas
        )
        self._leases = Leases(
            self.bus.js, kv, self.role, self.settings.instance, self.settings.lease_ttl_s
        )
        self._leases.start(self._on_lapse, self._on_lost)
        # a call whose gateway died is over: let it go (the runner also says so)
        self._calls = Leases(
            self.bus.js,
            kv,
            subjects.GATEWAY_ROLE,
            self.settings.instance,
            self.settings.lease_ttl_s,
        )
        self._calls.start(self._on_gateway_gone, self._on_lost)
        for claim in claims:

            async def on_claim(msg: Msg, c: ClaimSubject = claim) -> None:
                # nats-py runs one callback at a time per subscription: each claim waits on
                # a flush and a lease, so claims run as tasks or a burst of sessions queues
                task = asyncio.create_task(self._answer(msg, c))
                self._claim_tasks.add(task)
                task.add_done_callback(self._claim_tasks.discard)

            self._claim_subs.append(await nc.subscribe(claim.subject, claim.queue, cb=on_claim))
        self._subs = [
            await nc.subscribe(subjects.any_session_event(SessionEnded.TYPE), cb=self._on_ended),
            *await answer_status(nc, self.service, self.status),
        ]

    # -- claims ------------------------------------------------------------------------

    async def _answer(self, msg: Msg, claim_subject: ClaimSubject) -> None:
        try:
            claim = claim_subject.parse(msg.data)
        except ValidationError as exc:
            await self.bus.dead_letter(msg.subject, msg.data, msg.headers, str(exc))
            answer = Answer(False, self.instance, "invalid request")
        else:
            answer = await self.take(claim)
        await msg.respond(claim_subject.reply(answer))

    async def take(self, claim: Claim) -> Answer:
        """Serve the session here if this replica may; say whether it does."""
        sid = claim.session_id
        admission = admit(
            already_held=sid in self.sessions or sid in self._claiming,
            draining=self.draining,
            held=len(self.sessions) + len(self._claiming),  # claims still being set up count
            capacity=self.capacity,
        )
        if not admission.accepted or admission.reason:
            return Answer(admission.accepted, self.instance, admission.reason)
        self._claiming.add(sid)
        try:
            if not await self.leases.take(sid, claim.ticket, handoff_from=claim.handoff_from):
                return Answer(False, self.instance, "served by another replica")
            try:
                held = await self._open(claim)
            except Exception as exc:
                log.exception("session %s: could not take it", sid)
                await self.leases.release(sid)
                return Answer(False, self.instance, f"failed: {exc}")
        finally:
            self._claiming.discard(sid)
        if held is None:
            await self.leases.release(sid)
            return Answer(False, self.instance, REASON_ENDED)
        self.sessions[sid] = held
        self.served_total += 1
        if await self.bus.has_ended(sid):  # ended before we held it: its end freed nothing
            await self.release(sid)
            return Answer(False, self.instance, REASON_ENDED)
        await self.bus.nc.flush()  # the server routes its subjects here before we say yes
        await self.bus.emit(
            sid,
            SessionClaimed(
                service=self.service,
                instance=self.settings.instance,
                handoff_from=claim.handoff_from,
                resumed=claim.resumed,
            ),
        )
        log.info(
            "session %s %s (%d held)",
            sid,
            "taken over" if claim.resumed else "taken",
            len(self.sessions),
        )
        return Answer(True, self.instance)

    async def _on_lapse(self, lapsed: Lapsed) -> None:
        """Another replica's lease on a session lapsed (or was offered): take it over,
        if the call still lives (its gateway holds it, or lost it so lately that its client
        may still come back through another)."""
        sid = lapsed.session_id
        if self.draining or sid in self.sessions:
            return
        previous = lapsed.previous
        if await self.bus.has_ended(sid):
            return  # its holder let it go with the session's end
        gateway = await self.leases.holder(subjects.GATEWAY_ROLE, sid)
        orphaned_at = self._gateway_lapsed.get(sid) if gateway is None else None
        if gateway is None and not lapsed.offered and not self._within_grace(orphaned_at):
            log.info("session %s: not taken over, no gateway runs it", sid)
            return  # its call died with its gateway: nobody will speak or listen
        if self.capacity:  # the least loaded replica asks first and so usually wins
            await asyncio.sleep(0.05 * len(self.sessions) / self.capacity)
        answer = await self.take(
            Claim(
                sid,
                ticket=previous.ticket if previous else "",
                handoff_from=previous.instance if previous else "",
                resumed=True,
            )
        )
        if answer.accepted:
            self.taken_over_total += 1
            log.warning(
                "session %s taken over from %s", sid, previous.instance if previous else "?"
            )
            if gateway is None:  # a call without a gateway right now: lives only if adopted
                await self._let_go_unless_adopted(sid, orphaned_at or time.monotonic())

    def _within_grace(self, since: float | None) -> bool:
        return since is not None and time.monotonic() - since < self._call_grace_s

    @property
    def _call_grace_s(self) -> float:
        return max(self.settings.call_grace_s, 2 * self.settings.lease_ttl_s)

    async def _on_gateway_gone(self, lapsed: Lapsed) -> None:
        """A gateway stopped renewing its lease on a call (it died, or is too slow). Also
        for calls not held here: one may be taken over here before the grace ends."""
        if lapsed.offered:
            return  # its client left; the gateway still runs the call (another may adopt it)
        if lapsed.replayed:
            return  # it lapsed before this replica watched, when is unknown: no grace from it
        now = time.monotonic()
        for sid, since in list(self._gateway_lapsed.items()):
            if now - since > 2 * self._call_grace_s:
                del self._gateway_lapsed[sid]
        self._gateway_lapsed[lapsed.session_id] = now
        await self._let_go_unless_adopted(lapsed.session_id, now)

    async def _let_go_unless_adopted(self, sid: str, since: float) -> None:
        """Unless the gateway renews its lease again (it was only slow) or another gateway
        adopts the call (its client reconnected there) within ``call_grace_s``, the call
        is over: free it here; an agent's runner also ends it, so the recording says why."""
        await asyncio.sleep(max(0.0, since + self._call_grace_s - time.monotonic()))
        while sid in self.sessions:
            if self._gateway_lapsed.get(sid, since) > since:
                return  # renewed, then lapsed again: that lapse's own wait decides
            try:
                if await self.leases.holder(subjects.GATEWAY_ROLE, sid) is not None:
                    return
            except Exception as exc:  # NATS failing over: ask again
                log.warning("session %s: could not read its gateway's lease: %s", sid, exc)
                await asyncio.sleep(self.settings.lease_ttl_s)
                continue
            log.warning("session %s: its gateway is gone; letting it go", sid)
            if self._end_unserved:
                with contextlib.suppress(Exception):
                    await self.bus.emit(
                        sid, SessionEnded(reason=EndReason.ERROR, detail=GATEWAY_GONE)
                    )
            await self.release(sid)
            return

    async def _on_lost(self, session_id: str) -> None:
        """Another replica holds the lease now: stop serving the session here, quietly."""
        await self._close(session_id)

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
        """Free everything held for the session and give up its lease (its end)."""
        if session_id in self.sessions:
            await self.leases.release(session_id)
        await self._close(session_id)

    async def _close(self, session_id: str) -> None:
        held = self.sessions.pop(session_id, None)
        if held is not None:
            self.leases.forget(session_id)
            try:
                await held.close()
            except Exception:
                log.exception("session %s: closing failed", session_id)
        self.bus.envelopes.forget(session_id)

    # -- draining ----------------------------------------------------------------------

    async def drain(self, timeout: float | None = None) -> None:
        """Take no new sessions; wait for the held ones to end; offer the rest to the
        other replicas of the role and let each go once taken (or at the deadline)."""
        self.draining = True
        for sub in self._claim_subs:
            # drain, not unsubscribe: claims already queued here are refused at once
            # ("draining") and asked again elsewhere, instead of timing out unanswered
            await stop_taking(sub)
        self._claim_subs = []
        if self._claim_tasks:  # claims being answered finish first: they may add sessions
            await asyncio.wait(list(self._claim_tasks), timeout=HANDOVER_TIMEOUT_S)
        limit = self.settings.drain_timeout_s if timeout is None else timeout
        if self.sessions:
            log.info("draining: waiting up to %.0fs for %d session(s)", limit, len(self.sessions))
        await self._until(lambda: not self.sessions, limit)
        left = [sid for sid in list(self.sessions) if await self.leases.offer(sid)]
        # the taker opened the session before it took the lease: both hear it meanwhile,
        # so letting go once it is taken loses nothing
        await self._until(lambda: not any(s in self.sessions for s in left), HANDOVER_TIMEOUT_S)
        for sid in list(self.sessions):
            log.warning("session %s: no other %s replica took it", sid, self.role)
            if self._end_unserved and self.bus.nc.is_connected:
                with contextlib.suppress(Exception):
                    await self.bus.emit(
                        sid,
                        SessionEnded(reason=EndReason.AGENT, detail=f"{self.service} shut down"),
                    )
            await self.release(sid)

    @staticmethod
    async def _until(done: Callable[[], bool], limit: float) -> None:
        deadline = time.monotonic() + limit
        while not done() and time.monotonic() < deadline:
            await asyncio.sleep(DRAIN_POLL_S)

    async def stop(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        self._subs = []
        for sid in list(self.sessions):
            await self.release(sid)
        for leases in (self._leases, self._calls):
            if leases is not None:
                await leases.stop()

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
            capacity=self.capacity,
            served_total=self.served_total,
        )
