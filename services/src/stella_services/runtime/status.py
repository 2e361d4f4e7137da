"""Gathering every replica's :class:`ServiceStatus` (scatter-gather on ``stella.status``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from pydantic import ValidationError

from stella_contracts import ServiceStatus, subjects

log = logging.getLogger(__name__)

NO_RESPONDERS = "503"


async def gather_status(
    nc: NATS, service: str | None = None, *, timeout: float = 0.5, expect: int = 0
) -> list[ServiceStatus]:
    """Ask every replica (of ``service``, or of all services) what it holds.

    Replies are collected for ``timeout`` seconds, or until ``expect`` replicas answered.
    Sorted by service, then instance.
    """
    replies: list[ServiceStatus] = []
    enough = asyncio.Event()

    async def on_reply(msg: Msg) -> None:
        if (msg.headers or {}).get("Status") == NO_RESPONDERS:
            enough.set()  # the server says nobody listens: no use waiting
            return
        try:
            replies.append(ServiceStatus.model_validate_json(msg.data))
        except ValidationError as exc:
            log.warning("a status reply is not a ServiceStatus: %s", exc)
            return
        if expect and len(replies) >= expect:
            enough.set()

    inbox = nc.new_inbox()
    sub = await nc.subscribe(inbox, cb=on_reply)
    try:
        await nc.publish(subjects.status(service), b"", reply=inbox)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), timeout)
    finally:
        await sub.unsubscribe()
    return sorted(replies, key=lambda s: (s.service, s.instance))
