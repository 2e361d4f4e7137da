"""One synthesis at a time, first clauses first.

A session waits for the first clause of a reply (that is its time to first audio); a later
clause has slack, since the clause before it is still playing. With several sessions
speaking, a plain FIFO would make a new reply's first clause wait behind other replies'
later clauses; here it goes ahead of them. A request whose caller has given up (an
interrupt cancelled it) is dropped before it costs any CPU.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Generic, TypeVar

T = TypeVar("T")

FIRST, LATER = 0, 1


class SynthesisQueue(Generic[T]):
    def __init__(self, executor: Executor) -> None:
        self._executor = executor
        self._heap: list[tuple[int, int, Callable[[], T], asyncio.Future[T]]] = []
        self._order = itertools.count()  # FIFO within a priority; never compares jobs
        self._worker: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._heap)

    async def run(self, job: Callable[[], T], *, first: bool) -> T:
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._heap, (FIRST if first else LATER, next(self._order), job, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work(), name="synthesis-queue")
        return await future

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while self._heap:
            _, _, job, future = heapq.heappop(self._heap)
            if future.done():  # cancelled while waiting: nobody wants this audio
                continue
            try:
                result = await loop.run_in_executor(self._executor, job)
            except Exception as exc:
                if not future.done():
                    future.set_exception(exc)
            else:
                if not future.done():
                    future.set_result(result)
