"""LiveKit, the production transport: room tokens, and the gateway as the agent participant.

The user joins the session's room with a token whose grants name only that room; the
gateway joins the same room, feeds the user's microphone track to ``audio.<sid>.in`` and
publishes the agent's frames as its own track.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from livekit import api, rtc

from stella_contracts import EndReason, Envelope
from stella_contracts.audio import FRAME_BYTES, SAMPLE_RATE, SAMPLES_PER_FRAME
from stella_services.gateway.live_sessions import LiveSession, LiveSessions
from stella_services.gateway.media import Uplink
from stella_services.runtime.bus import Bus

log = logging.getLogger(__name__)

AGENT_IDENTITY_PREFIX = "stella-agent-"


@dataclass(frozen=True, slots=True)
class LiveKitConfig:
    url: str
    api_key: str
    api_secret: str
    connect_timeout_s: float = 10.0


def room_token(
    config: LiveKitConfig, room: str, identity: str, ttl_s: float, *, agent: bool = False
) -> str:
    """A participant token that can join ``room`` and nothing else."""
    grants = api.VideoGrants(
        room_join=True,
        room=room,
        can_publish=True,
        can_subscribe=True,
        can_publish_data=True,
        agent=agent,
    )
    return (
        api.AccessToken(config.api_key, config.api_secret)
        .with_identity(identity)
        .with_name("STELLA agent" if agent else identity)
        .with_grants(grants)
        .with_ttl(timedelta(seconds=ttl_s))
        .to_jwt()
    )


class UserAudio:
    """LiveKit frames of any rate and channel count → the bus's 16 kHz mono s16le bytes."""

    def __init__(self) -> None:
        self._resampler: rtc.AudioResampler | None = None
        self._rate = 0

    def convert(self, frame: rtc.AudioFrame) -> bytes:
        samples = np.frombuffer(frame.data, dtype=np.int16)
        if frame.num_channels > 1:  # average the channels: a phone's stereo is one voice
            samples = samples.reshape(-1, frame.num_channels).mean(axis=1).astype(np.int16)
        if frame.sample_rate == SAMPLE_RATE:
            return samples.tobytes()
        if self._resampler is None or self._rate != frame.sample_rate:
            self._resampler = rtc.AudioResampler(frame.sample_rate, SAMPLE_RATE, num_channels=1)
            self._rate = frame.sample_rate
        mono = rtc.AudioFrame(samples.tobytes(), frame.sample_rate, 1, len(samples))
        return b"".join(bytes(out.data) for out in self._resampler.push(mono))


def agent_frame(pcm: bytes) -> rtc.AudioFrame:
    """One bus frame as a LiveKit frame (same rate; no conversion needed)."""
    if len(pcm) != FRAME_BYTES:
        raise ValueError(f"a bus frame holds {FRAME_BYTES} bytes, got {len(pcm)}")
    return rtc.AudioFrame(pcm, SAMPLE_RATE, 1, SAMPLES_PER_FRAME)


class _RoomSink:
    wants_audio = True

    def __init__(self, source: rtc.AudioSource, hang_up: Callable[[], Awaitable[None]]) -> None:
        self.source = source
        self._hang_up = hang_up

    async def agent_audio(self, pcm: bytes) -> None:
        # capture_frame waits while LiveKit's queue is full: the frames keep their pace
        await self.source.capture_frame(agent_frame(pcm))

    async def session_event(self, envelope: Envelope, raw: bytes) -> None:
        return None

    async def interrupted(self) -> None:
        self.source.clear_queue()

    async def close(self) -> None:
        await self._hang_up()


class LiveKitBridge:
    def __init__(self, bus: Bus, sessions: LiveSessions, config: LiveKitConfig) -> None:
        self.bus = bus
        self.sessions = sessions
        self.config = config
        self._joins: set[asyncio.Task[None]] = set()

    def participant_token(self, live: LiveSession, ttl_s: float) -> str:
        return room_token(self.config, live.room_name, f"user-{live.session_id}", ttl_s)

    def join_soon(self, live: LiveSession) -> None:
        task = asyncio.create_task(self._join(live), name=f"livekit-{live.session_id}")
        self._joins.add(task)
        task.add_done_callback(self._joins.discard)

    async def connect(self, room: rtc.Room, token: str) -> None:
        """Connect with a deadline; every failure becomes ``rtc.ConnectError``."""
        try:
            await asyncio.wait_for(
                room.connect(self.config.url, token), self.config.connect_timeout_s
            )
        except TimeoutError as exc:
            waited = self.config.connect_timeout_s
            raise rtc.ConnectError(
                f"LiveKit at {self.config.url} did not answer in {waited:g} s"
            ) from exc

    async def _join(self, live: LiveSession) -> None:
        identity = AGENT_IDENTITY_PREFIX + live.session_id
        token = room_token(
            self.config, live.room_name, identity, self.config.connect_timeout_s + 60, agent=True
        )
        room = rtc.Room()
        try:
            await self.connect(room, token)
        except rtc.ConnectError as exc:
            log.error(
                "session %s: cannot join LiveKit room %s: %s", live.session_id, live.room_name, exc
            )
            await self.sessions.end(live.session_id, EndReason.ERROR, f"LiveKit: {exc}")
            return
        source = rtc.AudioSource(SAMPLE_RATE, 1)
        track = rtc.LocalAudioTrack.create_audio_track("agent-voice", source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await room.local_participant.publish_track(track, options)
        uplink = Uplink(self.bus, live.session_id)
        readers: list[asyncio.Task[None]] = []

        @room.on("track_subscribed")
        def on_track(
            track: rtc.Track, pub: rtc.RemoteTrackPublication, who: rtc.RemoteParticipant
        ) -> None:
            if track.kind == rtc.TrackKind.KIND_AUDIO:
                readers.append(asyncio.create_task(self._uplink(track, uplink)))

        async def close() -> None:
            for task in readers:
                task.cancel()
            self.sessions.detach(live, id(room))
            await source.aclose()
            await room.disconnect()

        await self.sessions.attach(live, id(room), _RoomSink(source, close))

    async def _uplink(self, track: rtc.Track, uplink: Uplink) -> None:
        convert = UserAudio()
        async for event in rtc.AudioStream(track, sample_rate=48_000, num_channels=1):
            pcm = convert.convert(event.frame)
            if pcm:
                await uplink.audio(pcm)

    async def close(self) -> None:
        for task in list(self._joins):
            task.cancel()
