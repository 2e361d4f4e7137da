"""Client audio of any length in, the bus's 20 ms frames out (a pure accumulator)."""

from __future__ import annotations

import time

from stella_contracts.audio import FRAME_BYTES, FRAME_MS, AudioFrame


class FrameCutter:
    """Cuts a byte stream of PCM s16le 16 kHz mono into numbered frames.

    Timestamps run on the audio's own clock from the first byte, so a client sending in
    bursts still yields frames 20 ms apart.
    """

    def __init__(self, start_us: int | None = None) -> None:
        self._pending = bytearray()
        self._seq = 0
        self._start_us = start_us

    def push(self, pcm: bytes) -> list[AudioFrame]:
        if self._start_us is None:
            self._start_us = time.time_ns() // 1000
        self._pending += pcm
        frames = []
        while len(self._pending) >= FRAME_BYTES:
            body = bytes(self._pending[:FRAME_BYTES])
            del self._pending[:FRAME_BYTES]
            ts = self._start_us + self._seq * FRAME_MS * 1000
            frames.append(AudioFrame(pcm=body, seq=self._seq, ts_us=ts))
            self._seq += 1
        return frames

    @property
    def pending_bytes(self) -> int:
        return len(self._pending)
