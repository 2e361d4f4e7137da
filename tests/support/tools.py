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
