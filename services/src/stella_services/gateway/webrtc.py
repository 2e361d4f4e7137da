"""Embedded WebRTC (aiortc): the browser's Opus in, resampled to the bus's 16 kHz frames;
the agent's frames out as a paced track whose queue empties on ``control.interrupt``."""

from __future__ import annotations

import asyncio
import fractions
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable

import aioice.ice
import av
from aiortc import (
    MediaStreamTrack,
    RTCConfiguration,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import MediaStreamError

from stella_contracts import Envelope
from stella_contracts.audio import FRAME_BYTES, FRAME_MS, SAMPLE_RATE, SAMPLES_PER_FRAME
from stella_services.gateway.candidates import host_addresses, keep_candidates
from stella_services.gateway.live_sessions import LiveSession, LiveSessions
from stella_services.gateway.media import Uplink
from stella_services.runtime.bus import Bus

log = logging.getLogger(__name__)

MAX_QUEUED_FRAMES = 500
SILENCE = b"\x00" * FRAME_BYTES


def restrict_host_candidates(allowed: list[str]) -> None:
    """aioice offers every interface by default; make it offer only ``allowed``.

    aiortc has no option for this, so the module function aioice calls is replaced.
    """

    def addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return host_addresses(allowed, use_ipv4, use_ipv6)

    aioice.ice.get_host_addresses = addresses


class AgentVoiceTrack(MediaStreamTrack):
    """20 ms frames at their real pace; silence when the agent is quiet."""

    kind = "audio"

    def __init__(self) -> None:
        super().__init__()
        self._frames: deque[bytes] = deque(maxlen=MAX_QUEUED_FRAMES)
        self._start: float | None = None
        self._pts = 0

    def push(self, pcm: bytes) -> None:
        self._frames.append(pcm)

    def flush(self) -> int:
        n = len(self._frames)
        self._frames.clear()
        return n

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._start is None:
            self._start = time.monotonic()
        due = self._start + self._pts / SAMPLE_RATE
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        pcm = self._frames.popleft() if self._frames else SILENCE
        frame = av.AudioFrame(format="s16", layout="mono", samples=SAMPLES_PER_FRAME)
        frame.planes[0].update(pcm)
        frame.sample_rate = SAMPLE_RATE
        frame.pts = self._pts
        frame.time_base = fractions.Fraction(1, SAMPLE_RATE)
        self._pts += SAMPLES_PER_FRAME
        return frame


class _TrackSink:
    wants_audio = True

    def __init__(self, track: AgentVoiceTrack, hang_up: Callable[[], Awaitable[None]]) -> None:
        self.track = track
        self._hang_up = hang_up

    async def agent_audio(self, pcm: bytes) -> None:
        self.track.push(pcm)

    async def session_event(self, envelope: Envelope, raw: bytes) -> None:
        return None  # events travel over the WebSocket; this link carries audio

    async def interrupted(self) -> None:
        self.track.flush()

    async def close(self) -> None:
        await self._hang_up()


def to_bus_pcm(resampler: av.AudioResampler, frame: av.AudioFrame) -> bytes:
    """Any decoded frame (Opus is 48 kHz stereo) as 16 kHz mono s16le."""
    return b"".join(bytes(out.planes[0])[: out.samples * 2] for out in resampler.resample(frame))


class WebRtcPeers:
    def __init__(self, bus: Bus, sessions: LiveSessions, allowed_hosts: list[str]) -> None:
        self.bus = bus
        self.sessions = sessions
        self.allowed = set(allowed_hosts)
        self.peers: set[RTCPeerConnection] = set()
        restrict_host_candidates(allowed_hosts)

    async def answer(self, live: LiveSession, offer_sdp: str) -> tuple[str, str]:
        """Accept an offer for ``live``; returns the answer (sdp, type)."""
        sdp, dropped = keep_candidates(offer_sdp, self.allowed)
        if dropped:
            log.info("dropped %d ICE candidate(s) outside %s", dropped, sorted(self.allowed))
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.peers.add(pc)
        voice = AgentVoiceTrack()
        uplink = Uplink(self.bus, live.session_id)
        key = id(pc)
        tasks: list[asyncio.Task[None]] = []

        async def close() -> None:
            for task in tasks:
                task.cancel()
            voice.stop()
            self.sessions.detach(live, key)
            self.peers.discard(pc)
            await pc.close()

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                tasks.append(asyncio.create_task(self._uplink(track, uplink)))

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await close()

        pc.addTrack(voice)
        await self.sessions.attach(live, key, _TrackSink(voice, close))
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            answer = await pc.createAnswer()
            await pc.setLocalDescription(answer)  # gathers candidates: loopback only
        except Exception:
            await close()
            raise
        local = pc.localDescription
        answer_sdp, _ = keep_candidates(local.sdp, self.allowed)
        return answer_sdp, local.type

    async def _uplink(self, track: MediaStreamTrack, uplink: Uplink) -> None:
        resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
        try:
            while True:
                frame = await track.recv()
                if not isinstance(frame, av.AudioFrame):
                    continue
                pcm = to_bus_pcm(resampler, frame)
                if pcm:
                    await uplink.audio(pcm)
        except MediaStreamError:
            return

    async def close(self) -> None:
        for pc in list(self.peers):
            await pc.close()
        self.peers.clear()


FRAME_SECONDS = FRAME_MS / 1000
