"""Real-time pacing of outgoing audio: frames leave no faster than a client plays them,
a small lead ahead, so an interrupt stops speech within a frame instead of leaving
seconds of audio queued downstream."""

from __future__ import annotations

import time
from collections.abc import Callable

from stella_contracts import audio


class Pacer:
    def __init__(
        self,
        lead_ms: float = 120.0,
        frame_ms: float = audio.FRAME_MS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lead_s = lead_ms / 1000
        self.frame_s = frame_ms / 1000
        self.clock = clock
        self._start: float | None = None
        self._sent = 0

    def delay(self, now: float | None = None) -> float:
        """Seconds to wait before the next frame may leave (0 when it may go now)."""
        if self._start is None:
            return 0.0
        now = self.clock() if now is None else now
        playhead = self._start + self._sent * self.frame_s  # when the next frame would play
        if playhead < now:  # fell behind (a pause between utterances): start a new run
            self._start = None
            return 0.0
        return max(0.0, playhead - self.lead_s - now)

    def sent(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        if self._start is None:
            self._start = now
            self._sent = 0
        self._sent += 1

    @property
    def frames_sent(self) -> int:
        return self._sent
