"""What the running replicas hold, for tests: gather every ``ServiceStatus`` and wait until
no replica holds anything for a session.

    statuses = await gather_status(bus.nc)                       # every replica that answers
    await wait_until_released(bus.nc, {"stt": 2, "tts": 2, "agent-runner": 2})
"""

from __future__ import annotations

from nats.aio.client import Client as NATS

from stella_contracts import ServiceStatus
from stella_services.runtime.status import gather_status
from tests.support.waiting import DEADLINE_S, until

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
    nc: NATS, replicas: dict[str, int], timeout: float = DEADLINE_S
) -> list[ServiceStatus]:
    """Poll until every expected replica (service → how many) answers holding nothing;
    return their statuses. Fails naming what is still held (or who did not answer)."""
    statuses: list[ServiceStatus] = []

    def counts() -> dict[str, int]:
        return {name: sum(1 for s in statuses if s.service == name) for name in replicas}

    async def released() -> list[ServiceStatus] | None:
        statuses.clear()
        for name, n in replicas.items():
            statuses.extend(await gather_status(nc, name, timeout=1.0, expect=n))
        return list(statuses) if counts() == replicas and not held(statuses) else None

    return await until(
        released,
        lambda: (
            f"replicas {replicas} holding nothing (answering {counts()}; "
            f"still held: {describe(held(statuses)) or 'nothing'})"
        ),
        timeout,
    )


async def wait_until_draining(
    nc: NATS, service: str, instance: str, replicas: int, timeout: float = DEADLINE_S
) -> list[ServiceStatus]:
    """After SIGTERM (handled asynchronously): poll until ``instance`` says it is draining;
    return every replica's status from that moment."""

    async def draining() -> list[ServiceStatus] | None:
        statuses = await gather_status(nc, service, timeout=1.0, expect=replicas)
        return statuses if any(s.instance == instance and s.draining for s in statuses) else None

    return await until(draining, f"{service}/{instance} to say it is draining", timeout)
