"""The tts synthesis queue: first clauses go ahead of later ones; abandoned work never runs."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from stella_services.tts.queue import SynthesisQueue


async def test_first_clauses_go_ahead_and_cancelled_ones_never_run() -> None:
    ran: list[str] = []
    gate = threading.Event()

    def job(name: str) -> str:
        if name == "busy":
            gate.wait(5)  # holds the one worker while the others queue up
        ran.append(name)
        return name

    with ThreadPoolExecutor(max_workers=1) as executor:
        queue: SynthesisQueue[str] = SynthesisQueue(executor)
        busy = asyncio.create_task(queue.run(lambda: job("busy"), first=False))
        await asyncio.sleep(0.05)
        later = [asyncio.create_task(queue.run(lambda n=n: job(n), first=False)) for n in "ab"]
        dropped = asyncio.create_task(queue.run(lambda: job("dropped"), first=False))
        first = asyncio.create_task(queue.run(lambda: job("first"), first=True))
        await asyncio.sleep(0.05)
        assert len(queue) == 4
        dropped.cancel()  # an interrupt: its caller no longer wants the audio
        gate.set()
        assert await first == "first"
        assert [await t for t in later] == ["a", "b"]
        assert await busy == "busy"
        with pytest.raises(asyncio.CancelledError):
            await dropped
    assert ran == ["busy", "first", "a", "b"]


async def test_a_failing_synthesis_fails_its_caller_only() -> None:
    def boom() -> str:
        raise RuntimeError("engine broke")

    with ThreadPoolExecutor(max_workers=1) as executor:
        queue: SynthesisQueue[str] = SynthesisQueue(executor)
        with pytest.raises(RuntimeError, match="engine broke"):
            await queue.run(boom, first=True)
        assert await queue.run(lambda: "fine", first=False) == "fine"
