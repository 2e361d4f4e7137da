"""LiveKit, as far as it runs here (docs/testing.md: no LiveKit server can run on these machines).

Real: token minting and verification with livekit-api, the bridge's audio conversion with
livekit.rtc's resampler, AudioSource pacing, and a gateway configured for LiveKit whose
server does not answer (ConnectError → the session ends with the reason). The end-to-end
test against a real server runs only when LIVEKIT_URL/_API_KEY/_API_SECRET are set.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from livekit import api, rtc

from stella_services.gateway.livekit_bridge import (
    LiveKitBridge,
    LiveKitConfig,
    UserAudio,
    agent_frame,
    room_token,
)
from stella_services.runtime.nats_server import free_port
from tests.support.gateway import TEST_API_KEY, GatewayClient, WsTranscript, gateway_url
from tests.support.history import TEST_SECRET
from tests.support.processes import ServiceProcess
from tests.support.speech import dominant_hz

ROOT = Path(__file__).resolve().parents[2]
CONFIG = LiveKitConfig(
    "ws://127.0.0.1:7880", "APIkey123", "a-livekit-secret-of-enough-length-0123456789"
)


def test_participant_token_grants_only_its_room() -> None:
    token = room_token(CONFIG, "room-abc", "user-abc", ttl_s=120)
    claims = api.TokenVerifier(CONFIG.api_key, CONFIG.api_secret).verify(token)
    assert claims.identity == "user-abc"
    video = claims.video
    assert video is not None
    assert video.room == "room-abc" and video.room_join
    assert video.can_publish and video.can_subscribe
    assert not (video.room_create or video.room_list or video.room_admin or video.room_record)
    assert not video.agent
    agent = api.TokenVerifier(CONFIG.api_key, CONFIG.api_secret).verify(
        room_token(CONFIG, "room-abc", "stella-agent-abc", ttl_s=60, agent=True)
    )
    assert agent.video is not None and agent.video.agent and agent.video.room == "room-abc"


def test_a_token_signed_with_another_secret_or_expired_is_refused() -> None:
    token = room_token(CONFIG, "room-abc", "user-abc", ttl_s=120)
    with pytest.raises(Exception):  # noqa: B017 - livekit-api raises jwt's errors
        api.TokenVerifier(CONFIG.api_key, "another-secret-0123456789abcdef0123").verify(token)
    old = room_token(CONFIG, "room-abc", "user-abc", ttl_s=-600)
    with pytest.raises(Exception):  # noqa: B017
        api.TokenVerifier(CONFIG.api_key, CONFIG.api_secret).verify(old)


def tone(hz: float, rate: int, seconds: float, channels: int) -> bytes:
    t = np.arange(int(rate * seconds)) / rate
    mono = (np.sin(2 * np.pi * hz * t) * 12_000).astype(np.int16)
    return np.repeat(mono, channels).tobytes()


def test_user_audio_48k_stereo_becomes_16k_mono_with_the_same_pitch() -> None:
    convert = UserAudio()
    out = b""
    pcm = tone(440, 48_000, 1.0, 2)
    step = 480 * 2 * 2  # 10 ms frames, as LiveKit delivers
    for offset in range(0, len(pcm), step):
        chunk = pcm[offset : offset + step]
        out += convert.convert(rtc.AudioFrame(chunk, 48_000, 2, len(chunk) // 4))
    samples = len(out) // 2
    assert 15_000 <= samples <= 16_000  # 1 s at 16 kHz, less the resampler's latency
    assert abs(dominant_hz(out) - 440) < 10
    level = np.sqrt(np.mean(np.frombuffer(out, np.int16)[2000:].astype(np.float64) ** 2))
    assert 7_000 < level < 9_500  # a 12 000-peak sine keeps its RMS (~8 485)


def test_user_audio_at_the_bus_rate_passes_through() -> None:
    pcm = tone(300, 16_000, 0.02, 1)
    assert UserAudio().convert(rtc.AudioFrame(pcm, 16_000, 1, 320)) == pcm


def test_agent_frames_are_bus_frames() -> None:
    frame = agent_frame(b"\x01\x00" * 320)
    assert (frame.sample_rate, frame.num_channels, frame.samples_per_channel) == (16_000, 1, 320)
    with pytest.raises(ValueError):
        agent_frame(b"\x00" * 100)


async def test_audio_source_paces_the_agents_frames() -> None:
    source = rtc.AudioSource(16_000, 1, queue_size_ms=100)
    start = time.monotonic()
    for _ in range(50):  # 1 s of audio
        await source.capture_frame(agent_frame(b"\x00\x00" * 320))
    elapsed = time.monotonic() - start
    # capture_frame waits once 100 ms are queued: the frames leave at their own pace
    assert elapsed >= 0.7, elapsed
    source.clear_queue()
    assert source.queued_duration < 0.05
    await source.aclose()


async def test_connect_error_when_livekit_does_not_answer() -> None:
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()  # accepts TCP, never speaks WebSocket
    port = silent.getsockname()[1]
    config = LiveKitConfig(f"ws://127.0.0.1:{port}", CONFIG.api_key, CONFIG.api_secret, 1.5)
    bridge = LiveKitBridge(bus=None, sessions=None, config=config)  # type: ignore[arg-type]
    room = rtc.Room()
    start = time.monotonic()
    with pytest.raises(rtc.ConnectError):
        await bridge.connect(room, room_token(config, "r", "x", 60))
    assert time.monotonic() - start < 10
    silent.close()


@pytest.fixture
def livekit_gateway(nats_url: str, tmp_path: Path) -> Iterator[GatewayClient]:
    """A gateway configured for a LiveKit that refuses connections (a closed loopback port)."""
    env = {
        "NATS_URL": nats_url,
        "STELLA_DATA_DIR": str(tmp_path / "data"),
        "STELLA_HISTORY_ADDR": f"127.0.0.1:{free_port()}",
        "STELLA_SECRET": TEST_SECRET,
        "STELLA_AGENT_PATH": str(ROOT / "examples"),
        "LIVEKIT_URL": f"ws://127.0.0.1:{free_port()}",
        "LIVEKIT_API_KEY": CONFIG.api_key,
        "LIVEKIT_API_SECRET": CONFIG.api_secret,
    }
    speech = [ServiceProcess(name, env, tmp_path / "logs").start(120) for name in ("stt", "tts")]
    runner = ServiceProcess(
        "agent-runner",
        {**env, "STELLA_AGENT": "demo_agents.echo:EchoAgent", "STELLA_AGENT_NAME": "lk-echo"},
        tmp_path / "logs",
    ).start()
    gateway = ServiceProcess(
        "gateway",
        {**env, "STELLA_API_KEYS": TEST_API_KEY, "STELLA_GATEWAY_PORT": "0"},
        tmp_path / "logs",
    ).start()
    try:
        yield GatewayClient(gateway_url(gateway), process=gateway)
    finally:
        gateway.stop()
        runner.stop()
        for proc in speech:
            proc.stop()


@pytest.mark.slow  # a voice session: stt and tts load their models
async def test_session_with_livekit_returns_a_room_token_and_ends_when_livekit_is_down(
    livekit_gateway: GatewayClient,
) -> None:
    created = await livekit_gateway.create("lk-echo")
    lk: dict[str, Any] = created["connect"]["livekit"]
    assert lk["url"].startswith("ws://127.0.0.1:")
    assert lk["room_name"] == created["room_name"]
    claims = api.TokenVerifier(CONFIG.api_key, CONFIG.api_secret).verify(lk["token"])
    assert claims.video is not None and claims.video.room == created["room_name"]
    assert claims.identity == f"user-{created['session_id']}"
    ws = await livekit_gateway.ws(created, audio=False)
    ended = await WsTranscript().read_until(ws, lambda e: e["type"] == "lifecycle.ended", 30)
    assert ended["payload"]["reason"] == "error"
    assert "LiveKit" in ended["payload"]["detail"]


needs_livekit = pytest.mark.skipif(
    not all(os.environ.get(v) for v in ("LIVEKIT_URL", "LIVEKIT_API_KEY", "LIVEKIT_API_SECRET")),
    reason="no LiveKit server here (none is installable from the registries): set LIVEKIT_URL, "
    "LIVEKIT_API_KEY and LIVEKIT_API_SECRET to run it against a real one",
)


@needs_livekit
async def test_a_real_livekit_room_carries_the_agents_voice(nats_url: str, tmp_path: Path) -> None:
    """With a real LiveKit: the user joins with the returned token and hears the greeting."""
    env = {
        "NATS_URL": nats_url,
        "STELLA_DATA_DIR": str(tmp_path / "data"),
        "STELLA_HISTORY_ADDR": f"127.0.0.1:{free_port()}",
        "STELLA_SECRET": TEST_SECRET,
        "STELLA_AGENT_PATH": str(ROOT / "examples"),
    }
    procs = [
        ServiceProcess("tts", env, tmp_path / "logs").start(120),
        ServiceProcess(
            "agent-runner",
            {**env, "STELLA_AGENT": "demo_agents.echo:EchoAgent", "STELLA_AGENT_NAME": "lk-echo"},
            tmp_path / "logs",
        ).start(),
        ServiceProcess(
            "gateway",
            {**env, "STELLA_API_KEYS": TEST_API_KEY, "STELLA_GATEWAY_PORT": "0"},
            tmp_path / "logs",
        ).start(),
    ]
    try:
        gw = GatewayClient(gateway_url(procs[-1]))
        created = await gw.create("lk-echo")
        lk = created["connect"]["livekit"]
        room = rtc.Room()
        heard: list[bytes] = []
        got_track = asyncio.Event()
        readers: list[asyncio.Task[None]] = []

        @room.on("track_subscribed")
        def on_track(track: rtc.Track, *_: object) -> None:
            async def read() -> None:
                async for event in rtc.AudioStream(track, sample_rate=16_000, num_channels=1):
                    heard.append(bytes(event.frame.data))

            readers.append(asyncio.ensure_future(read()))
            got_track.set()

        await asyncio.wait_for(room.connect(lk["url"], lk["token"]), 15)
        await asyncio.wait_for(got_track.wait(), 30)
        await asyncio.sleep(5)
        await room.disconnect()
        pcm = b"".join(heard)
        assert np.sqrt(np.mean(np.frombuffer(pcm, np.int16).astype(np.float64) ** 2)) > 100
    finally:
        for proc in reversed(procs):
            proc.stop()
