"""Barge-in with real models: talking over the agent stops it; a short "mhm" does not."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from stella_contracts import AgentText, ControlInterrupt
from stella_services.runtime.bus import Bus
from stella_services.runtime.sessions import open_session
from tests.support.history import TEST_SECRET
from tests.support.processes import ServiceProcess
from tests.support.speech import silence, speech_pcm, stream_audio
from tests.support.voice import VoiceClient
from tests.support.waiting import DEADLINE_S, until

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
    # listening before the session exists: the greeting's turn_done can come before
    # open_session returns, and a subscription made after it would never see it
    client = await VoiceClient(bus, str(uuid.uuid4())).attach()
    await open_session(bus, "talker-agent", TEST_SECRET, audio=True, session_id=client.session_id)
    await asyncio.wait_for(client.turns.get(), DEADLINE_S)  # on_connect asked for the greeting
    await until(lambda: len(client.frames) >= 50, "a second of the greeting to play")
    return client


async def test_speech_over_the_agent_interrupts_it(
    bus: Bus, voice_platform: dict[str, str]
) -> None:
    client = await talking_agent(bus)
    await stream_audio(bus, client.session_id, speech_pcm("Wait, stop, I have a question."))
    await stream_audio(bus, client.session_id, silence(1000))
    interrupts = await until(lambda: client.of("control.interrupt"), "the agent to be interrupted")
    payload = interrupts[0].payload
    assert isinstance(payload, ControlInterrupt) and payload.reason.startswith("barge_in")
    done = await until(client.spoken, "tts.done of the greeting")
    assert done[0].interrupted
    assert 0 < len(done[0].spoken_text) < len(done[0].text)
    # the question itself then gets its answer, spoken to the end
    answer = await until(lambda: answers(client), "the answer to the question")
    await client.said(answer[0].turn_id)  # every frame that follows the interrupt is in
    interrupted_at = interrupts[0].ts.timestamp()
    late = [t for t, _ in client.frames if t > interrupted_at + 0.25]
    assert not late or late[0] > interrupted_at + 1.0  # only the answer to the question follows


def answers(client: VoiceClient) -> list[AgentText]:
    """Echoes of the question ("You said: ... question ..."), not of a part before it."""
    said = [e.payload for e in client.of("agent.text") if isinstance(e.payload, AgentText)]
    return [a for a in said if a.text.startswith("You said:") and "question" in a.text.lower()]


async def test_a_short_mhm_does_not_interrupt(bus: Bus, voice_platform: dict[str, str]) -> None:
    client = await talking_agent(bus)
    await stream_audio(bus, client.session_id, speech_pcm("Mhm."))
    await stream_audio(bus, client.session_id, silence(800))
    done = await until(client.spoken, "tts.done of the greeting")
    heard = [e.payload.text for e in client.of("stt.transcript")]  # type: ignore[attr-defined]
    assert client.of("control.interrupt") == [], heard
    assert not done[0].interrupted and done[0].spoken_text == done[0].text
    assert [e for e in client.of("agent.text") if e.payload.text.startswith("You said")] == []  # type: ignore[attr-defined]
