"""The whole voice loop with real models: speech frames in → stt → the guide's agent (with a
scripted LLM and its tool) → tts → frames out, transcribed back; latency in ClickHouse."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from stella_contracts import TurnMetrics
from stella_services.runtime.bus import Bus
from stella_services.runtime.sessions import open_session
from tests.support.history import TEST_SECRET, HistoryClient
from tests.support.processes import ServiceProcess
from tests.support.scripted_openai import Rule, ScriptedOpenAI, ToolCallReply
from tests.support.speech import silence, speech_pcm, stream_audio, words
from tests.support.voice import VoiceClient, transcribe
from tests.support.waiting import DEADLINE_S, until

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
Start = Callable[[str, dict[str, str]], ServiceProcess]
REPLY = "Done. I created a task to buy milk."


@pytest.fixture
def llm() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI(
        [
            Rule(when_tool_result_for="create_task", text=REPLY),
            Rule(
                when_user_contains="task",
                tool_calls=(
                    ToolCallReply(
                        name="create_task",
                        arguments={"title": "Buy milk", "description": "tomorrow"},
                    ),
                ),
            ),
            Rule(text="Sorry, could you say that again?"),
        ]
    ) as server:
        yield server


@pytest.fixture
def platform(
    recorder_env: dict[str, str], start_service: Start, llm: ScriptedOpenAI, tmp_path: Path
) -> dict[str, str]:
    env = {
        **recorder_env,
        **llm.env(),
        "LIVEKIT_URL": "",
        "LIVEKIT_API_KEY": "",
        "LIVEKIT_API_SECRET": "",
        "ROOM_NAME": "",
        "TASKS_DB": str(tmp_path / "a.db"),
        "STELLA_AGENT_PATH": os.pathsep.join(
            [str(ROOT / "examples" / "my-agent"), str(ROOT / "examples")]
        ),
        "STELLA_STT_PROVIDER": "whisper",
    }
    start_service("recorder", env)
    start_service("stt", env)
    start_service("tts", env)
    start_service("tool-executor", {**env, "STELLA_TOOL_MODULES": "src.tools"})
    start_service("agent-runner", {**env, "STELLA_AGENT": "src.agent:MyCustomAgent"})
    return env


async def test_spoken_question_gets_a_spoken_answer(bus: Bus, platform: dict[str, str]) -> None:
    # listening before the session exists: the greeting can start before open_session returns
    client = await VoiceClient(bus, str(__import__("uuid").uuid4())).attach()
    session = await open_session(
        bus, "my-custom-agent", TEST_SECRET, audio=True, session_id=client.session_id
    )
    greeting = await asyncio.wait_for(client.turns.get(), DEADLINE_S)
    assert not greeting.error
    await client.caught_up()  # this agent publishes its own audio, then ends the turn
    heard_greeting = transcribe(client.audio_after(0))
    assert {"help", "today"} <= set(words(heard_greeting)), heard_greeting

    speech_end = await stream_audio(
        bus, session.session_id, silence(300) + speech_pcm("Please create a task to buy milk.")
    )
    await stream_audio(bus, session.session_id, silence(1500))
    turn = await asyncio.wait_for(client.turns.get(), DEADLINE_S)
    assert not turn.error and turn.replies == 1
    await client.caught_up()
    answer = transcribe(client.audio_after(speech_end))
    assert {"created", "task", "buy", "milk"} <= set(words(answer)), answer

    finals = [e.payload.text for e in client.of("stt.transcript") if e.payload.is_final]  # type: ignore[attr-defined]
    assert len(finals) == 1 and {"task", "buy", "milk"} <= set(words(finals[0]))
    # the agent-runner sends the turn's metrics after agent.turn_done (with tts: after tts.done)
    metrics = [e.payload for e in await until(lambda: client.of("metrics.turn"), "metrics.turn")]
    assert len(metrics) == 1 and isinstance(metrics[0], TurnMetrics)
    m = metrics[0]
    assert m.user_speech_end_us and m.final_transcript_us and m.first_audio_out_us
    print("turn latency", m.deltas_ms)
    assert m.deltas_ms["voice_to_voice_ms"] > 0  # first audio after the speech ended
    history = HistoryClient(platform["STELLA_HISTORY_ADDR"])
    sql = (
        f"SELECT count() FROM stella.events WHERE session_id = '{session.session_id}' "
        "AND type = 'metrics.turn'"
    )
    assert history.wait_for(sql, 1) == 1
    history.close()
