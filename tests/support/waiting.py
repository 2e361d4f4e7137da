"""Waiting for what a test needs to have happened, never for a fixed time.

A fixed sleep before a check is a guess at how fast the machine is; on a loaded one (CI,
two cores shared with other work) the guess is wrong and the test fails for nothing. These
wait until the condition holds, with a deadline generous enough that only a real failure
reaches it, and fail loudly (naming what was awaited) when it does.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, overload

T = TypeVar("T")

# Far beyond any healthy wait: on two cores shared with other work, speaking the talker's
# 15 s greeting has been seen to take over 70 s (synthesis runs slower than real time).
DEADLINE_S = 180.0
POLL_S = 0.02  # a frame: fine enough for latency checks made after the wait


@overload
async def until(
    condition: Callable[[], Awaitable[T | None]],
    what: str | Callable[[], str],
    timeout: float = DEADLINE_S,
) -> T: ...


@overload
async def until(
    condition: Callable[[], T | None], what: str | Callable[[], str], timeout: float = DEADLINE_S
) -> T: ...


async def until(
    condition: Callable[[], Any], what: str | Callable[[], str], timeout: float = DEADLINE_S
) -> Any:
    """Wait until ``condition()`` (plain or async) is truthy and return its value; fail after
    ``timeout`` s, saying ``what`` was awaited (a callable: worded from the state then)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"waited {timeout:g} s for {said}; it did not happen")
        await asyncio.sleep(POLL_S)
