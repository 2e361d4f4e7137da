"""What the running replicas hold, for tests: gather every ``ServiceStatus`` and wait until
no replica holds anything for a session.

    statuses = await gather_status(bus.nc)                       # every replica that answers
    await wait_until_released(bus.nc, {"stt": 2, "tts": 2, "agent-runner": 2})
"""

from __future__ import annotations

import asyncio
import time

from nats.aio.client import Client as NATS

from stella_contracts import ServiceStatus
from stella_services.runtime.status import gather_status

__all__ = ["describe", "gather_status", "held", "wait_until_draining", "wait_until_released"]


def held(statuses: list[ServiceStatus]) -> list[ServiceStatus]:
    """The replicas still holding sessions, tasks or subscriptions for sessions."""
    return [s for s in statuses if s.holds_anything]


def describe(statuses: list[ServiceStatus]) -> str:
    return "; ".join(
        f"{s.service}/{s.instance}: {len(s.sessions)} session(s) {s.sessions[:3]}, "
        f"{s.tasks} task(s), {s.subscriptions} subscription(s)"
        for s in statuses
    )


async def wait_until_released(
    nc: NATS, replicas: dict[str, int], timeout: float = 20.0
) -> list[ServiceStatus]:
    """Poll until every expected replica (service → how many) answers holding nothing;
    return their statuses. Fails naming what is still held (or who did not answer)."""
    deadline = time.monotonic() + timeout
    statuses: list[ServiceStatus] = []
    while True:
        statuses = []
        for name, n in replicas.items():
            statuses += await gather_status(nc, name, timeout=1.0, expect=n)
        counts = {name: sum(1 for s in statuses if s.service == name) for name in replicas}
        if counts == replicas and not held(statuses):
            return statuses
        if time.monotonic() > deadline:
            raise AssertionError(
                f"after {timeout:g} s: replicas answering {counts} (expected {replicas}); "
                f"still held: {describe(held(statuses)) or 'nothing'}"
            )
        await asyncio.sleep(0.2)


async def wait_until_draining(
    nc: NATS, service: str, instance: str, replicas: int, timeout: float = 5.0
) -> list[ServiceStatus]:
    """After SIGTERM (handled asynchronously): poll until ``instance`` says it is draining;
    return every replica's status from that moment."""
    deadline = time.monotonic() + timeout
    while True:
        statuses = await gather_status(nc, service, timeout=1.0, expect=replicas)
        if any(s.instance == instance and s.draining for s in statuses):
            return statuses
        if time.monotonic() > deadline:
            raise AssertionError(f"{service}/{instance} is not draining after {timeout:g} s")
        await asyncio.sleep(0.1)
