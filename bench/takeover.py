"""Take-over figures: a voice call over two replicas each of stt, tts and the guide's agent
runner; after a spoken turn, the replica serving the call in one role is SIGKILLed. Measured:
kill → another replica has taken the session (``lifecycle.claimed``, resumed), and kill →
the first audio of the answer to the user's next utterance (spoken once the session is taken
over), beside the same call's voice-to-voice before the kill."""

from __future__ import annotations

import asyncio
import time
import uuid

from bench.figures import Figure, percentile
from bench.platform import BenchPlatform
from stella_contracts import EndReason, SessionClaimed, SessionEnded, audio
from stella_services.runtime.bus import Bus
from stella_services.runtime.sessions import open_session
from stella_services.runtime.settings import ServiceSettings
from tests.support.processes import ServiceProcess
from tests.support.scripted_openai import Rule, ScriptedOpenAI
from tests.support.speech import silence, speech_pcm, stream_audio
from tests.support.voice import VoiceClient
from tests.support.waiting import until

ROLES = ("stt", "tts", "agent-runner")
ROUNDS = 3  # kills per role
QUESTION = "Can you book a table for two at seven?"
REPLY = "Sure. I booked a table for two at seven."


def _holder(client: VoiceClient, service: str) -> SessionClaimed:
    claims = [e.payload for e in client.of("lifecycle.claimed")]
    return [c for c in claims if isinstance(c, SessionClaimed) and c.service == service][-1]


async def _answer_audio_after(bus: Bus, client: VoiceClient) -> tuple[float, float]:
    """Speak the question; (wall time the speech ended, wall time of the answer's first frame)."""
    turns = len(client.of("agent.turn_done"))
    spoken_end = await stream_audio(bus, client.session_id, silence(300) + speech_pcm(QUESTION))
    await stream_audio(bus, client.session_id, silence(1200))
    await until(lambda: client.of("agent.turn_done")[turns:], "the answer")
    await client.caught_up()
    first = await until(
        lambda: [t for t, _ in client.frames if t >= spoken_end], "the answer's audio"
    )
    return spoken_end, first[0]


async def _round(
    platform: BenchPlatform, bus: Bus, role: str, replicas: dict[str, list[ServiceProcess]]
) -> tuple[float, float, float, float]:
    # the client holds the call's gateway lease, as a gateway does: only live calls move
    client = await (await VoiceClient(bus, str(uuid.uuid4())).attach()).run_call()
    await open_session(
        bus,
        "my-custom-agent",
        platform.env["STELLA_SECRET"],
        audio=True,
        session_id=client.session_id,
    )
    await until(lambda: client.of("agent.turn_done"), "the greeting")
    end, first = await _answer_audio_after(bus, client)
    before = first - end
    gone = _holder(client, role).instance
    [victim] = [p for p in replicas[role] if gone.endswith(f"-{p.pid}")]
    killed_at = time.time()
    victim.kill()
    await until(
        lambda: [c for c in [_holder(client, role)] if c.instance != gone and c.resumed],
        f"a {role} take-over",
    )
    taken_at = time.time()
    end_after, first_after = await _answer_audio_after(bus, client)
    replicas[role].remove(victim)
    replicas[role].append(platform.start(role, victim.env))  # back to two, as a supervisor would
    await bus.emit(client.session_id, SessionEnded(reason=EndReason.CLIENT))
    await client.hang_up()
    return taken_at - killed_at, first_after - killed_at, before, first_after - end_after


async def _measure(platform: BenchPlatform) -> list[Figure]:
    with ScriptedOpenAI([Rule(text=REPLY)]) as llm:
        agent_env = {**platform.example_agent_env(llm.env()), "STELLA_STT_PROVIDER": "whisper"}
        platform.start("recorder")
        replicas = {
            "stt": [platform.start("stt", agent_env) for _ in range(2)],
            "tts": [platform.start("tts", agent_env) for _ in range(2)],
            "agent-runner": [platform.start("agent-runner", agent_env) for _ in range(2)],
        }
        bus = await Bus.connect(ServiceSettings(nats_url=platform.nats_url), "bench")
        figures: list[Figure] = []
        baseline: list[float] = []
        spoken_s = len(silence(300) + speech_pcm(QUESTION)) / (
            audio.SAMPLE_WIDTH * audio.SAMPLE_RATE
        )
        try:
            for role in ROLES:
                taken, answered, after = [], [], []
                for _ in range(ROUNDS):
                    t, a, b, v = await _round(platform, bus, role, replicas)
                    taken.append(t * 1000)
                    answered.append(a * 1000)
                    baseline.append(b * 1000)
                    after.append(v * 1000)
                method = (
                    f"{ROUNDS} SIGKILLs of the {role} replica serving a voice call (2 replicas, "
                    "lease 2 s); the user speaks again once the session is taken over"
                )
                figures += [
                    Figure(
                        f"take-over {role}: kill → taken, p50",
                        percentile(taken, 50),
                        "ms",
                        method,
                        "< lease + 2000",
                    ),
                    Figure(f"take-over {role}: kill → taken, max", max(taken), "ms", method),
                    Figure(
                        f"take-over {role}: kill → next answer's first audio, p50",
                        percentile(answered, 50),
                        "ms",
                        method,
                    ),
                    Figure(
                        f"take-over {role}: kill → next answer's first audio, max",
                        max(answered),
                        "ms",
                        method + f" (includes the {spoken_s:.1f} s question)",
                    ),
                    Figure(
                        f"take-over {role}: voice-to-voice of the turn after, p50",
                        percentile(after, 50),
                        "ms",
                        "speech end → first audio, on the replica that took over",
                    ),
                ]
        finally:
            await bus.close()
        figures.append(
            Figure(
                "take-over calls: voice-to-voice before the kill, p50",
                percentile(baseline, 50),
                "ms",
                "the same calls' turn before each kill (speech end → first audio)",
            )
        )
        return figures


def run(platform: BenchPlatform) -> list[Figure]:
    return asyncio.run(_measure(platform))
