"""Answering ``stella.status`` and ``stella.status.<service>``: what this replica holds.

Every replica subscribes without a queue group, so one request gathers them all.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from stella_contracts import ServiceStatus, subjects

log = logging.getLogger(__name__)


def status_of(
    nc: NATS,
    service: str,
    instance: str,
    *,
    sessions: Iterable[str] = (),
    tasks: int = 0,
    subscriptions: int = 0,
    draining: bool = False,
    capacity: int = 0,
    served_total: int = 0,
) -> ServiceStatus:
    """This process's status: what the service says it holds, plus process-wide counts."""
    return ServiceStatus(
        service=service,
        instance=instance,
        pid=os.getpid(),
        sessions=sorted(sessions),
        tasks=tasks,
        subscriptions=subscriptions,
        draining=draining,
        capacity=capacity,
        served_total=served_total,
        process_tasks=len(asyncio.all_tasks()),
        # nats-py keeps every live subscription here (ours, the request inbox, library
        # ones): counting them all shows a leak even where no service keeps its own count
        process_subscriptions=len(nc._subs),
    )


async def answer_status(
    nc: NATS, service: str, snapshot: Callable[[], ServiceStatus]
) -> list[Subscription]:
    """Subscribe to both status subjects; each request gets ``snapshot()`` as JSON."""

    async def on_request(msg: Msg) -> None:
        if not msg.reply:
            return
        try:
            body = snapshot().model_dump_json().encode()
        except Exception:  # a broken snapshot must not take the subscription down
            log.exception("status snapshot failed")
            return
        await msg.respond(body)

    return [
        await nc.subscribe(subjects.status(), cb=on_request),
        await nc.subscribe(subjects.status(service), cb=on_request),
    ]
