"""Who serves a session: a lease in a JetStream key-value bucket, renewed while held.

Why a key-value bucket with a TTL (``stella_leases``): JetStream is already there, so
nothing new to run or trust; ``create`` is atomic, so when a lease lapses exactly one
replica wins it; ``update`` names the revision it replaces, so a replica that lost its
lease (paused, partitioned) learns it on its next renewal and lets go instead of serving
the session twice; and since nats-server 2.11 a key removed by the bucket's max age leaves
a marker (``limit_marker_ttl``) that watchers receive at once, so taking over is a
reaction to an event, not a poll. A lease lapses ``lease_ttl_s`` after its holder's last
renewal (renewals every quarter of that, all at once).

A deliberate release deletes the key (a ``DEL`` marker): nobody takes that session over.
A lapse arrives as a ``PURGE`` (``Nats-Marker-Reason: MaxAge``): the holder is gone.

The gateway holds a lease of role ``gateway`` on every call it runs (nobody takes those
over: a call's connection dies with its gateway). A replica takes over a session only while
that lease lives, so a session whose gateway is gone is never revived by a newcomer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.js import JetStreamContext
from nats.js.api import KeyValueConfig, StorageType
from nats.js.errors import (
    BucketNotFoundError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NotFoundError,
)
from nats.js.kv import KV_DEL, KV_OP, KV_PURGE, KeyValue
from pydantic import ValidationError

from stella_contracts import Lease, subjects

log = logging.getLogger(__name__)

MARKER_TTL_S = 60.0  # how long a lapse or release marker stays readable
MARKER_REASON = "Nats-Marker-Reason"  # on markers the server leaves (a lapse: MaxAge)


@dataclass(frozen=True, slots=True)
class Lapsed:
    """A session whose holder for this role stopped renewing its lease, or offers it."""

    session_id: str
    previous: Lease | None  # its last value seen here (None: never seen)
    offered: bool = False  # its holder, alive, hands it over (draining)
    replayed: bool = False  # found when the watch began: it lapsed at an unknown time before


OnLapse = Callable[[Lapsed], Awaitable[None]]
OnLost = Callable[[str], Awaitable[None]]


async def open_bucket(js: JetStreamContext, ttl_s: float, replicas: int = 1) -> KeyValue:
    """The leases bucket, created by whichever process comes first (the rest open it)."""
    try:
        return await js.key_value(subjects.LEASES_BUCKET)
    except BucketNotFoundError:
        pass
    config = KeyValueConfig(
        bucket=subjects.LEASES_BUCKET,
        description="which replica serves which session, per role",
        ttl=ttl_s,
        limit_marker_ttl=MARKER_TTL_S,
        storage=StorageType.MEMORY,  # renewed several times a second; a restart re-leases
        replicas=replicas,
        history=1,
    )
    return await js.create_key_value(config)


class Leases:
    """This replica's leases for one role: take, renew, release, and hear lapses."""

    def __init__(
        self, js: JetStreamContext, kv: KeyValue, role: str, instance: str, ttl_s: float
    ) -> None:
        self.js = js
        self.kv = kv
        self.role = role
        self.instance = instance
        self.ttl_s = ttl_s
        self.held: dict[str, tuple[int, Lease]] = {}  # session → (revision, value)
        self._seen: dict[str, Lease] = {}  # last value of every lease of the role
        self._released: set[str] = set()  # deleted on purpose: not to be taken over
        self._tasks: list[asyncio.Task[None]] = []
        self._spawned: set[asyncio.Future[None]] = set()  # take-overs started by the watch
        self._stopping = False
        self._watcher: KeyValue.KeyWatcher | None = None

    def key(self, session_id: str) -> str:
        return subjects.lease_key(self.role, session_id)

    async def holder(self, role: str, session_id: str) -> Lease | None:
        """The live lease of ``role`` on the session (any replica's), or None."""
        try:
            entry = await self.kv.get(subjects.lease_key(role, session_id))
        except KeyNotFoundError:  # also a deleted or lapsed key
            return None
        if entry.operation in (KV_DEL, KV_PURGE):
            return None
        return _parse(entry.value)

    async def _create(self, key: str, data: bytes) -> int | None:
        """Write the lease if nobody holds it (no key, or only a release or lapse marker
        left); its revision, or None. (nats-py's ``create`` does not know the server's
        lapse markers and refuses those keys.)"""
        try:
            return await self.kv.create(key, data)
        except KeyWrongLastSequenceError:
            pass
        try:
            last = await self.js.get_last_msg(
                f"KV_{subjects.LEASES_BUCKET}", f"$KV.{subjects.LEASES_BUCKET}.{key}"
            )
        except NotFoundError:
            return None  # gone meanwhile: the next event decides
        headers = last.headers or {}
        if headers.get(KV_OP) in (KV_DEL, KV_PURGE) or MARKER_REASON in headers:
            try:
                return await self.kv.update(key, data, last=last.seq)
            except KeyWrongLastSequenceError:
                return None  # another replica was quicker
        return None

    async def take(self, session_id: str, ticket: str = "", *, handoff_from: str = "") -> bool:
        """Hold the session's lease; False if another replica holds it.

        ``handoff_from``: the holder hands it over (draining), so its lease is replaced."""
        value = Lease(instance=self.instance, ticket=ticket)
        data = value.model_dump_json().encode()
        key = self.key(session_id)
        revision = await self._create(key, data)
        if revision is None:
            try:
                entry = await self.kv.get(key)
            except KeyNotFoundError:
                return False  # lapsed or released meanwhile: the next lapse event decides
            current = _parse(entry.value)
            if current is None or not (
                current.instance == self.instance
                or current.offered  # its holder gives it up (draining)
                or (handoff_from and current.instance == handoff_from)
            ):
                return False
            if current is not None and current.ticket and not ticket:
                value = Lease(instance=self.instance, ticket=current.ticket)
                data = value.model_dump_json().encode()
            try:
                revision = await self.kv.update(key, data, last=entry.revision)
            except KeyWrongLastSequenceError:
                return False
        self.held[session_id] = (revision, value)
        self._released.discard(session_id)
        return True

    async def release(self, session_id: str) -> None:
        """Let go on purpose (the session ended, or was handed over): nobody takes it over."""
        held = self.held.pop(session_id, None)
        if held is None:
            return
        with contextlib.suppress(Exception):  # someone else's now, or NATS is gone
            await self.kv.delete(self.key(session_id), last=held[0])

    async def offer(self, session_id: str) -> bool:
        """Give the session up to any other replica of the role (draining); keep serving
        it until one takes the lease (``on_lost``) or the caller stops waiting."""
        for _ in range(3):  # a renewal may write between our read and our write
            held = self.held.get(session_id)
            if held is None:
                return False
            revision, value = held
            offered = Lease(instance=self.instance, ticket=value.ticket, offered=True)
            try:
                new = await self.kv.update(
                    self.key(session_id), offered.model_dump_json().encode(), last=revision
                )
            except KeyWrongLastSequenceError:
                await asyncio.sleep(self.ttl_s / 8)  # the renewal records its revision
                continue
            except Exception as exc:
                log.warning("session %s: could not offer it: %s", session_id, exc)
                return False
            self.held[session_id] = (new, offered)
            return True
        log.warning("session %s: could not offer it: its lease kept changing", session_id)
        return False

    def offered(self, session_id: str) -> bool:
        """Whether this replica holds the session's lease and offers it."""
        held = self.held.get(session_id)
        return held is not None and held[1].offered

    def forget(self, session_id: str) -> None:
        """Stop renewing without deleting (the lease is someone else's already)."""
        self.held.pop(session_id, None)

    # -- renewing and watching -------------------------------------------------------------

    def start(self, on_lapse: OnLapse | None, on_lost: OnLost) -> None:
        """Renew held leases; ``on_lapse`` for another holder's lapse or offer (called in a
        task of its own; None: nobody here takes over), ``on_lost`` when a lease held here
        turns out to be someone else's."""
        self._tasks = [asyncio.create_task(self._renew(on_lost), name=f"leases-renew-{self.role}")]
        if on_lapse is not None:
            self._tasks.append(
                asyncio.create_task(
                    self._watch(on_lapse, on_lost), name=f"leases-watch-{self.role}"
                )
            )

    async def stop(self) -> None:
        self._stopping = True
        tasks = [*self._tasks, *self._spawned]
        for task in tasks:
            task.cancel()
        for _ in range(3):
            # Python 3.11's asyncio.wait_for (inside nats-py's requests) can swallow a
            # cancellation that lands as its answer arrives: the watch then waits on its
            # watcher, which stopping it ends
            if self._watcher is not None:
                with contextlib.suppress(Exception):
                    await self._watcher.stop()  # type: ignore[no-untyped-call]
            _, pending = await asyncio.wait(tasks, timeout=self.ttl_s / 2) if tasks else ((), ())
            if not pending:
                break
        else:
            log.warning("leases of %s: %d task(s) did not stop", self.role, len(pending))
        self._tasks = []
        self._watcher = None

    async def _renew(self, on_lost: OnLost) -> None:
        while True:
            await asyncio.sleep(self.ttl_s / 4)
            held = list(self.held.items())
            await asyncio.gather(*(self._renew_one(sid, rev, v, on_lost) for sid, (rev, v) in held))

    async def _renew_one(
        self, session_id: str, revision: int, value: Lease, on_lost: OnLost
    ) -> None:
        data = value.model_dump_json().encode()
        key = self.key(session_id)
        try:
            new = await self.kv.update(key, data, last=revision)
        except KeyWrongLastSequenceError:
            held = self.held.get(session_id)
            if held is not None and held[0] != revision:
                return  # written here meanwhile (offered, taken again): renewed next time
            # lapsed (this process was too busy or cut off to renew in time) or taken:
            # ours again if nobody took it meanwhile, else the taker serves it now
            try:
                revived = await self._create(key, data)
            except Exception as exc:
                log.warning("session %s: lease not renewed: %s", session_id, exc)
                return
            if revived is None:
                if session_id in self.held:
                    log.warning(
                        "session %s: %s lease taken by another replica", session_id, self.role
                    )
                    self.held.pop(session_id, None)
                    await on_lost(session_id)
                return
            new = revived
            log.warning("session %s: %s lease had lapsed; renewed", session_id, self.role)
        except Exception as exc:  # NATS away: keep trying; the lease may lapse meanwhile
            log.warning("session %s: lease not renewed: %s", session_id, exc)
            return
        if session_id in self.held:
            self.held[session_id] = (new, value)

    async def _watch(self, on_lapse: OnLapse, on_lost: OnLost) -> None:
        def spawn(call: Awaitable[None]) -> None:  # a take-over must not hold up the watch
            task = asyncio.ensure_future(call)
            self._spawned.add(task)
            task.add_done_callback(self._spawned.discard)

        while not self._stopping:
            try:
                self._watcher = watcher = await self.kv.watch(f"{self.role}.*")
                replaying = True
                async for entry in watcher:
                    if entry is None:
                        replaying = False  # the end of what was there before we watched
                        continue
                    session_id = entry.key[len(self.role) + 1 :]
                    if entry.operation == KV_DEL:
                        self._released.add(session_id)
                        self._seen.pop(session_id, None)
                    elif entry.operation == KV_PURGE:
                        previous = self._seen.pop(session_id, None)
                        if session_id in self._released:
                            self._released.discard(session_id)  # its DEL marker aged out
                        elif session_id not in self.held:
                            spawn(on_lapse(Lapsed(session_id, previous, replayed=replaying)))
                    elif (lease := _parse(entry.value)) is not None:
                        self._seen[session_id] = lease
                        self._released.discard(session_id)
                        if lease.instance != self.instance:
                            if self.held.pop(session_id, None) is not None:
                                spawn(on_lost(session_id))  # taken from us (we offered it)
                            elif lease.offered:
                                spawn(on_lapse(Lapsed(session_id, lease, offered=True)))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the watch broke (NATS reconnecting): watch again
                log.warning("lease watch for %s broke (%s); watching again", self.role, exc)
                await asyncio.sleep(self.ttl_s / 3)


def _parse(data: bytes | None) -> Lease | None:
    try:
        return Lease.model_validate_json(data or b"")
    except ValidationError:
        return None
