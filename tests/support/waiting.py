"""Waiting for what a test needs to have happened, never for a fixed time.

A fixed sleep before a check is a guess at how fast the machine is; on a loaded one (CI,
two cores shared with other work) the guess is wrong and the test fails for nothing. These
wait until the condition holds, with a deadline generous enough that only a real failure
reaches it, and fail loudly (naming what was awaited) when it does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEADLINE_S = 60.0  # far beyond any healthy wait, even on a loaded two-core machine
POLL_S = 0.02  # a frame: fine enough for latency checks made after the wait


async def until(condition: Callable[[], T | None], what: str, timeout: float = DEADLINE_S) -> T:
    """Wait until ``condition()`` is truthy and return its value; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}; it did not happen")
        await asyncio.sleep(POLL_S)
    return value


def until_sync(condition: Callable[[], T | None], what: str, timeout: float = DEADLINE_S) -> T:
    """``until`` for tests without an event loop (a thread, a subprocess's output)."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:g} s for {what}; it did not happen")
        time.sleep(POLL_S)
    return value
