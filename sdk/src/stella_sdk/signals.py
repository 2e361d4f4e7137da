"""Stopping a process on SIGTERM/SIGINT at once, also while it is still starting.

A service that starts while NATS (or ClickHouse) is unreachable waits in its connect loop;
an operator's SIGTERM must end that wait, not be queued behind it (which left SIGKILL as the
only way out). Services (``stella_services.runtime.lifecycle``) and agent hosts
(``stella_sdk.host``) both start through :func:`start_unless_stopped`.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable

__all__ = ["start_unless_stopped", "stop_on_signals"]


def stop_on_signals() -> asyncio.Event:
    """An event set by the first SIGTERM or SIGINT this process receives."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def start_unless_stopped(start: Awaitable[None], stop: asyncio.Event) -> bool:
    """Run ``start`` to its end, unless ``stop`` is set first: then cancel it and return False.

    An exception raised by ``start`` propagates as usual."""
    starting = asyncio.ensure_future(start)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if starting.done():
        starting.result()  # raises what start raised
        return True
    starting.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await starting
    return False
