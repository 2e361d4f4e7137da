"""Voice through the gateway's WebSocket with real models: PCM in → stt → the guide's agent →
tts → PCM out, transcribed back; and ``stella call`` doing the same from a WAV file."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.gateway import (
    QUESTION,
    TEST_API_KEY,
    GatewayClient,
    VoicePlatform,
    WsTranscript,
    voice_platform,
)
from tests.support.speech import rms, silence, speech_pcm, words
from tests.support.voice import transcribe

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def platform(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VoicePlatform]:
    with voice_platform(nats_url, tmp_path_factory.mktemp("gateway-voice")) as running:
        yield running


async def test_websocket_audio_in_gets_the_agents_voice_out(platform: VoicePlatform) -> None:
    gw = GatewayClient(platform.url)
    created = await gw.create("my-custom-agent")
    ws = await gw.ws(created)
    seen = WsTranscript()
    await seen.read_until(ws, lambda e: e["type"] == "agent.turn_done", timeout=60)  # greeting
    greeting_frames = len(seen.audio)

    async def speak() -> None:
        pcm = silence(300) + speech_pcm(QUESTION) + silence(1500)
        start = time.monotonic()
        for n in range(0, len(pcm), 640):
            await ws.send(pcm[n : n + 640])
            await asyncio.sleep(max(0.0, start + (n // 640 + 1) * 0.02 - time.monotonic()))

    talking = asyncio.create_task(speak())
    heard = await seen.read_until(
        ws, lambda e: e["type"] == "stt.transcript" and e["payload"]["is_final"], timeout=60
    )
    assert "france" in words(heard["payload"]["text"]), heard
    await seen.read_until(ws, lambda e: e["type"] == "agent.turn_done", timeout=60)
    await talking
    await seen.read_quiet(ws)
    reply = b"".join(seen.audio[greeting_frames:])
    assert all(len(f) == 640 for f in seen.audio), "frames are 20 ms of 16 kHz s16le"
    assert len(reply) / 32_000 > 1.0 and rms(reply) > 300
    assert "paris" in words(transcribe(reply))
    await ws.close()


def test_stella_call_speaks_a_wav_and_saves_the_answer(platform: VoicePlatform) -> None:
    question = platform.tmp / "question.wav"
    with wave.open(str(question), "wb") as w:  # 24 kHz stereo: the command converts it
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(24_000)
        import numpy as np
        import soxr

        mono = np.frombuffer(speech_pcm(QUESTION), dtype="<i2").astype(np.float32)
        up = soxr.resample(mono, 16_000, 24_000).astype("<i2")
        w.writeframes(np.repeat(up, 2).tobytes())
    out = platform.tmp / "answer.wav"
    result = subprocess.run(
        [sys.executable, "-m", "stella_services", "call", str(question), "--out", str(out)],
        env={
            **os.environ,
            "STELLA_GATEWAY_URL": platform.url,
            "STELLA_API_KEY": TEST_API_KEY,
            "COLUMNS": "200",
        },
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Paris" in result.stdout, result.stdout
    assert "france" in words(result.stdout), result.stdout
    assert "voice to voice" in result.stdout  # the latency table
    with wave.open(str(out), "rb") as w:
        assert w.getframerate() == 16_000 and w.getnchannels() == 1
        pcm = w.readframes(w.getnframes())
    assert "paris" in words(transcribe(pcm))


def test_stella_call_explains_a_bad_file_and_a_bad_key(platform: VoicePlatform) -> None:
    junk = Path(platform.tmp / "junk.wav")
    junk.write_bytes(b"not a wav")
    env = {**os.environ, "STELLA_GATEWAY_URL": platform.url, "STELLA_API_KEY": TEST_API_KEY}
    bad = subprocess.run(
        [sys.executable, "-m", "stella_services", "call", str(junk)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 1 and "not a PCM WAV" in bad.stderr
    wav = platform.tmp / "q.wav"
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16_000)
        w.writeframes(silence(200))
    refused = subprocess.run(
        [sys.executable, "-m", "stella_services", "call", str(wav), "--key", "sk-stella-wrong"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1 and "401" in refused.stderr


# --- the OpenAPI contract ------------------------------------------------------------------


def test_schemathesis_finds_no_server_error(platform: VoicePlatform, tmp_path: Path) -> None:
    """Property-based requests from /openapi.json against the whole platform (agents,
    speech, recorder all up): never a 5xx."""
    result = subprocess.run(
        [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{platform.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--header",
            f"Authorization: Bearer {TEST_API_KEY}",
            "--max-examples",
            "40",
            "--generation-deterministic",
            "--request-timeout",
            "30",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    end_running_sessions(platform.url)  # its stateful phase opens real sessions
    assert result.returncode == 0, output[-8000:]
    assert "No issues found" in output or "passed" in output, output[-3000:]


def end_running_sessions(url: str) -> None:
    """DELETE every session still active (the fuzzer's), so later tests start from none."""
    import httpx

    with httpx.Client(base_url=url, headers=GatewayClient(url).auth, timeout=30) as http:
        cursor = None
        while True:
            params = {"limit": 100, **({"cursor": cursor} if cursor else {})}
            page = http.get("/v1/sessions", params=params).json()
            for session in page["sessions"]:
                if session["status"] == "active":
                    http.delete(f"/v1/sessions/{session['session_id']}")
            cursor = page["next_cursor"]
            if not cursor:
                return


async def test_after_100_sessions_no_service_holds_anything(platform: VoicePlatform) -> None:
    """100 sessions (voice and text) opened through the REST API, some with clients that
    talk, ended every way there is; then no replica of any service holds a session, a
    task or a subscription for one (``stella status``)."""
    import json

    from stella_services.runtime.bus import Bus
    from stella_services.runtime.settings import ServiceSettings
    from tests.support.status import gather_status, wait_until_released

    gw = GatewayClient(platform.url)
    busy = asyncio.Semaphore(8)

    async def create(audio: bool) -> dict[str, Any]:
        async with gw.http() as http:
            for _ in range(60):  # a runner at capacity is a 503: back off, as a client would
                response = await http.post(
                    "/v1/sessions", json={"agent": "my-custom-agent", "audio": audio}
                )
                if response.status_code != 503:
                    break
                await asyncio.sleep(0.5)
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def one(n: int) -> str:
        async with busy:
            created = await create(audio=n % 5 != 0)
            sid: str = created["session_id"]
            way = n % 4
            if way == 0:  # the API ends it
                async with gw.http() as http:
                    assert (await http.delete(f"/v1/sessions/{sid}")).status_code == 200
            elif way == 1:  # the client says so
                ws = await gw.ws(created)
                await ws.send(json.dumps({"type": "user.text", "text": "hello"}))
                await ws.send(json.dumps({"type": "session.end"}))
                await WsTranscript().read_until(ws, lambda e: e["type"] == "lifecycle.ended")
            elif way == 2:  # the client goes away (after the greeting's first audio)
                ws = await gw.ws(created)
                await asyncio.sleep(0.3)
                await ws.close()
            else:  # speaks a little, then the API ends it
                ws = await gw.ws(created)
                await ws.send(silence(200))
                async with gw.http() as http:
                    await http.delete(f"/v1/sessions/{sid}")
                await WsTranscript().read_until(ws, lambda e: e["type"] == "lifecycle.ended")
            return sid

    ids = await asyncio.gather(*(one(n) for n in range(100)))
    assert len(set(ids)) == 100
    bus = await Bus.connect(ServiceSettings(nats_url=platform.env["NATS_URL"]), "test")
    try:
        statuses = await wait_until_released(
            bus.nc,
            {"gateway": 1, "stt": 1, "tts": 1, "agent-runner": 1, "tool-executor": 1},
            timeout=60,
        )
        served = {s.service: s.served_total for s in statuses}
        assert served["agent-runner"] >= 100 and served["stt"] >= 80, served
        everyone = await gather_status(bus.nc, timeout=1.0)
        assert not [s for s in everyone if s.sessions], everyone
    finally:
        await bus.close()
