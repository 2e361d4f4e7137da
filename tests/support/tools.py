"""Tools used only by tests (a tool-executor imports them from the repository root)."""

from __future__ import annotations

import asyncio

from stella_sdk import tool


@tool(timeout=30)
async def pause(seconds: float) -> dict[str, float]:
    """Wait, then say how long: a call that is still running when its executor is stopped.

    Args:
        seconds: How long to wait
    """
    await asyncio.sleep(seconds)
    return {"waited": seconds}


@tool(timeout=30, idempotent=True)
async def pause_safely(seconds: float) -> dict[str, float]:
    """The same wait, declared safe to run twice: retried when its executor dies.

    Args:
        seconds: How long to wait
    """
    await asyncio.sleep(seconds)
    return {"waited": seconds}
