"""The bus audio format: PCM s16le mono, 16 kHz, 20 ms frames.

The frame body is raw PCM; sequence number, capture timestamp and format travel in NATS
headers so the body stays zero-copy.
"""

from __future__ import annotations

from dataclasses import dataclass

SAMPLE_RATE = 16_000
CHANNELS = 1
SAMPLE_WIDTH = 2  # bytes, signed 16-bit little endian
FRAME_MS = 20
SAMPLES_PER_FRAME = SAMPLE_RATE * FRAME_MS // 1000  # 320
FRAME_BYTES = SAMPLES_PER_FRAME * SAMPLE_WIDTH * CHANNELS  # 640
FORMAT = "pcm_s16le;rate=16000;channels=1"

HEADER_SEQ = "Stella-Seq"
HEADER_TS = "Stella-Ts"
HEADER_FORMAT = "Stella-Format"


class InvalidAudioFrame(ValueError):
    """A frame whose body or headers do not match the bus audio format."""


@dataclass(frozen=True, slots=True)
class AudioFrame:
    """One 20 ms frame as it travels on ``stella.audio.<sid>.in|out``."""

    pcm: bytes
    seq: int
    ts_us: int  # capture time, microseconds since the epoch (UTC)

    def __post_init__(self) -> None:
        if len(self.pcm) != FRAME_BYTES:
            raise InvalidAudioFrame(f"a frame holds {FRAME_BYTES} bytes, got {len(self.pcm)}")
        if self.seq < 0:
            raise InvalidAudioFrame("sequence numbers start at 0")

    def headers(self) -> dict[str, str]:
        return {HEADER_SEQ: str(self.seq), HEADER_TS: str(self.ts_us), HEADER_FORMAT: FORMAT}

    @classmethod
    def from_message(cls, body: bytes, headers: dict[str, str] | None) -> AudioFrame:
        headers = headers or {}
        fmt = headers.get(HEADER_FORMAT, FORMAT)
        if fmt != FORMAT:
            raise InvalidAudioFrame(f"unsupported audio format {fmt!r}, expected {FORMAT!r}")
        try:
            seq = int(headers[HEADER_SEQ])
            ts_us = int(headers[HEADER_TS])
        except (KeyError, ValueError) as exc:
            raise InvalidAudioFrame(f"missing or bad audio header: {exc}") from exc
        return cls(pcm=body, seq=seq, ts_us=ts_us)


def frames_duration_ms(n_frames: int) -> int:
    return n_frames * FRAME_MS


def split_frames(pcm: bytes) -> tuple[list[bytes], bytes]:
    """Cut PCM into whole frames; return them and the leftover bytes (< one frame)."""
    whole = len(pcm) - len(pcm) % FRAME_BYTES
    frames = [pcm[i : i + FRAME_BYTES] for i in range(0, whole, FRAME_BYTES)]
    return frames, pcm[whole:]


def padded_frames(pcm: bytes) -> list[bytes]:
    """Cut PCM into whole frames, the last one padded with silence (audio that must go out)."""
    frames, rest = split_frames(pcm)
    if rest:
        frames.append(rest + b"\x00" * (FRAME_BYTES - len(rest)))
    return frames
