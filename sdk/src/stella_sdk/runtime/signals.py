"""Stopping a process on SIGTERM/SIGINT at once, also while it is still starting.

A service that starts while NATS (or ClickHouse) is unreachable waits in its connect loop;
an operator's SIGTERM must end that wait, not be queued behind it (which left SIGKILL as the
only way out). Services (``stella_services.runtime.lifecycle``) and agent hosts
(``stella_sdk.host``) both start through :func:`start_unless_stopped`.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import Awaitable

__all__ = ["dump_tasks_on_sigusr2", "start_unless_stopped", "stop_on_signals"]


def dump_tasks_on_sigusr2() -> None:
    """`kill -USR2 <pid>` prints every asyncio task's stack to stderr: where a stop that
    does not end is waiting (`kill -USR1` prints the threads', where services enable it)."""

    def dump() -> None:
        for task in asyncio.all_tasks():
            task.print_stack(limit=8, file=sys.stderr)
        sys.stderr.flush()

    asyncio.get_running_loop().add_signal_handler(signal.SIGUSR2, dump)


def stop_on_signals() -> asyncio.Event:
    """An event set by the first SIGTERM or SIGINT this process receives."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def start_unless_stopped(start: Awaitable[None], stop: asyncio.Event) -> bool:
    """Await ``start`` in the calling task, unless ``stop`` is set first: then the task is
    cancelled out of it and False returned. (``start`` stays in the caller's task and
    context: what it sets up is the caller's, as when it is awaited directly.)

    An exception raised by ``start`` propagates as usual."""
    task = asyncio.current_task()
    assert task is not None
    watcher = asyncio.ensure_future(stop.wait())
    starting = [True]  # a callback already scheduled when start ends must not cancel after

    def cut_short(_: object) -> None:
        if starting[0]:
            task.cancel()

    watcher.add_done_callback(cut_short)
    try:
        await start
    except asyncio.CancelledError:
        if not stop.is_set():
            raise
        task.uncancel()
        return False
    finally:
        starting[0] = False
        watcher.remove_done_callback(cut_short)
        watcher.cancel()
    return True
