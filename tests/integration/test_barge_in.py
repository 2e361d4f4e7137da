"""Barge-in with real models: talking over the agent stops it; a short "mhm" does not."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from stella_contracts import ControlInterrupt, TtsDone
from stella_services.runtime.bus import Bus
from stella_services.runtime.sessions import open_session
from tests.support.history import TEST_SECRET
from tests.support.processes import ServiceProcess
from tests.support.speech import silence, speech_pcm, stream_audio
from tests.support.voice import VoiceClient

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
Start = Callable[[str, dict[str, str]], ServiceProcess]


@pytest.fixture
def voice_platform(recorder_env: dict[str, str], start_service: Start) -> dict[str, str]:
    env = {
        **recorder_env,
        "STELLA_AGENT_PATH": str(ROOT / "examples"),
        "STELLA_STT_PROVIDER": "whisper",
        "STELLA_AGENT": "demo_agents.talker:TalkerAgent",
    }
    start_service("stt", env)
    start_service("tts", env)
    start_service("agent-runner", env)
    return env


async def talking_agent(bus: Bus) -> VoiceClient:
    session = await open_session(
        bus, "talker-agent", TEST_SECRET, audio=True, session_id=str(uuid.uuid4())
    )
    client = await VoiceClient(bus, session.session_id).attach()
    await asyncio.wait_for(client.turns.get(), 30)  # on_connect asked for the greeting
    while len(client.frames) < 50:  # a second of it is playing
        await asyncio.sleep(0.02)
    return client


async def test_speech_over_the_agent_interrupts_it(
    bus: Bus, voice_platform: dict[str, str]
) -> None:
    client = await talking_agent(bus)
    await stream_audio(bus, client.session_id, speech_pcm("Wait, stop, I have a question."))
    await stream_audio(bus, client.session_id, silence(1000))
    await client.quiet(0.5)
    interrupts = client.of("control.interrupt")
    assert interrupts, "the agent was not interrupted"
    payload = interrupts[0].payload
    assert isinstance(payload, ControlInterrupt) and payload.reason.startswith("barge_in")
    interrupted_at = interrupts[0].ts.timestamp()
    late = [t for t, _ in client.frames if t > interrupted_at + 0.25]
    assert not late or late[0] > interrupted_at + 1.0  # only the answer to the question follows
    done = [e.payload for e in client.of("tts.done")]
    assert isinstance(done[0], TtsDone) and done[0].interrupted
    assert 0 < len(done[0].spoken_text) < len(done[0].text)
    # the question itself then gets its answer
    replies = [e.payload.text for e in client.of("agent.text")]  # type: ignore[attr-defined]
    assert any(r.startswith("You said:") and "question" in r.lower() for r in replies)


async def test_a_short_mhm_does_not_interrupt(bus: Bus, voice_platform: dict[str, str]) -> None:
    client = await talking_agent(bus)
    await stream_audio(bus, client.session_id, speech_pcm("Mhm."))
    await stream_audio(bus, client.session_id, silence(800))
    started = time.time()
    done: list[TtsDone] = []
    while not done and time.time() - started < 60:
        done = [e.payload for e in client.of("tts.done")]  # type: ignore[misc]
        await asyncio.sleep(0.1)
    heard = [e.payload.text for e in client.of("stt.transcript")]  # type: ignore[attr-defined]
    assert client.of("control.interrupt") == [], heard
    assert done and not done[0].interrupted and done[0].spoken_text == done[0].text
    assert [e for e in client.of("agent.text") if e.payload.text.startswith("You said")] == []  # type: ignore[attr-defined]
