"""What a client is sent, in order, with the agent's queued audio droppable on interrupt."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

MAX_QUEUED_AUDIO = 500  # 10 s of frames: a client that stops reading loses the oldest


@dataclass(frozen=True, slots=True)
class Outgoing:
    audio: bytes | None = None
    text: str | None = None


class Outbox:
    def __init__(self) -> None:
        self._queue: asyncio.Queue[Outgoing | None] = asyncio.Queue()
        self._audio_queued = 0

    def audio(self, pcm: bytes) -> None:
        if self._audio_queued >= MAX_QUEUED_AUDIO:
            self._drop_audio(1)
        self._queue.put_nowait(Outgoing(audio=pcm))
        self._audio_queued += 1

    def text(self, text: str) -> None:
        self._queue.put_nowait(Outgoing(text=text))

    def flush_audio(self) -> int:
        """Drop every queued audio frame (barge-in); text stays. Returns how many."""
        return self._drop_audio(None)

    def _drop_audio(self, limit: int | None) -> int:
        kept: list[Outgoing | None] = []
        dropped = 0
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None and item.audio is not None and (limit is None or dropped < limit):
                dropped += 1
            else:
                kept.append(item)
        for item in kept:
            self._queue.put_nowait(item)
        self._audio_queued -= dropped
        return dropped

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def next(self) -> Outgoing | None:
        item = await self._queue.get()
        if item is not None and item.audio is not None:
            self._audio_queued -= 1
        return item
