"""Speech figures: STT real-time factor, TTS time to first audio, voice-to-voice latency
over 20+ turns through the whole platform, and CPU seconds per minute of conversation."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import numpy as np
from nats.aio.msg import Msg

from bench.figures import Figure, percentile
from bench.platform import BenchPlatform
from stella_contracts import AgentTurnDone, Envelope, TtsRequest, TurnMetrics, audio, subjects
from stella_services.runtime.bus import Bus
from stella_services.runtime.claims import request_claim
from stella_services.runtime.sessions import open_session
from stella_services.runtime.settings import ServiceSettings
from tests.support.scripted_openai import Rule, ScriptedOpenAI
from tests.support.speech import silence, speech_pcm

QUESTIONS = [
    "What time do you open tomorrow?",
    "Can you book a table for two at seven?",
    "Please remind me to call the dentist.",
    "Is there parking near the station?",
    "How long does delivery take to Berlin?",
]
TURNS = 20
REPLY = "Sure. I can help with that right away, one moment please."
TWO_SENTENCES = "Sure, that works. Your order will arrive tomorrow before noon."


def voiced_end(pcm: bytes) -> int:
    """Bytes up to the last clearly voiced sample (kokoro pads its clips with quiet)."""
    samples = np.abs(np.frombuffer(pcm, dtype="<i2").astype(np.int32))
    loud = np.nonzero(samples > 0.02 * samples.max())[0]
    return int(loud[-1] + 1) * 2 if len(loud) else len(pcm)


def stt_rtf() -> list[Figure]:
    from stella_services.stt.recognizers import create_recognizer

    clips = [speech_pcm(q) for q in QUESTIONS]
    arrays = [np.frombuffer(c, dtype="<i2").astype(np.float32) / 32768 for c in clips]
    seconds = sum(len(a) for a in arrays) / audio.SAMPLE_RATE
    figures = []
    for provider in ("sherpa", "whisper"):
        recognizer = create_recognizer(provider, 2)
        recognizer.transcribe(arrays[0])  # warm-up
        start = time.perf_counter()
        for a in arrays:
            recognizer.transcribe(a)
        took = time.perf_counter() - start
        figures.append(
            Figure(
                f"STT real-time factor ({provider})",
                took / seconds,
                "x real time",
                f"{len(arrays)} kokoro-spoken questions ({seconds:.1f} s), decoded one by one, "
                "2 threads, in-process",
                "< 0.2",
            )
        )
    return figures


async def _tts_first_audio(platform: BenchPlatform, engine: str = "kokoro") -> list[Figure]:
    bus = await Bus.connect(ServiceSettings(nats_url=platform.nats_url), "bench")
    samples = []
    for i in range(10):
        sid = str(uuid.uuid4())
        first: asyncio.Future[float] = asyncio.get_running_loop().create_future()

        async def on_frame(msg: Msg, fut: asyncio.Future[float] = first) -> None:
            if not fut.done():
                fut.set_result(time.perf_counter())

        sub = await bus.nc.subscribe(subjects.audio_out(sid), cb=on_frame)
        await request_claim(bus.nc, "tts", sid)
        asked = time.perf_counter()
        await bus.emit(sid, TtsRequest(text=TWO_SENTENCES, turn_id=f"t{i}"))
        samples.append((await asyncio.wait_for(first, 30) - asked) * 1000)
        await sub.unsubscribe()
        await asyncio.sleep(4)  # let it finish speaking
    await bus.close()
    return [
        Figure(
            f"TTS time to first audio, two-sentence reply (p50, {engine})",
            percentile(samples, 50),
            "ms",
            f"{engine} via the tts service: tts.request published → first 20 ms "
            f"frame on audio.out, {len(samples)} replies",
            "≤ 300",
        )
    ]


def _cpu_seconds(pids: list[int]) -> float:
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
        except (FileNotFoundError, IndexError):
            pass
    return total


async def voice_to_voice(
    platform: BenchPlatform,
    pids: list[int],
    turns: int = TURNS,
    llm_label: str = "a scripted OpenAI-compatible LLM",
    prefix: str = "",
) -> list[Figure]:
    bus = await Bus.connect(ServiceSettings(nats_url=platform.nats_url), "bench")
    secret = platform.env["STELLA_SECRET"]
    clips = [(q, speech_pcm(q)) for q in QUESTIONS]
    session = await open_session(bus, "my-custom-agent", secret, audio=True)
    sid = session.session_id
    frames: list[float] = []
    metrics: list[TurnMetrics] = []
    turns_done: list[float] = []

    async def on_frame(msg: Msg) -> None:
        frames.append(time.perf_counter())

    async def on_event(msg: Msg) -> None:
        env = Envelope.from_json(msg.data)
        if isinstance(env.payload, TurnMetrics):
            metrics.append(env.payload)
        elif isinstance(env.payload, AgentTurnDone):
            turns_done.append(time.perf_counter())

    await bus.nc.subscribe(subjects.audio_out(sid), cb=on_frame)
    await bus.nc.subscribe(subjects.session_events(sid), cb=on_event)
    frame_s = audio.FRAME_MS / 1000
    subject = subjects.audio_in(sid)
    seq = 0

    next_at = time.perf_counter()

    async def send(pcm: bytes) -> float:
        """Frames out at real time across calls, like a microphone (never faster)."""
        nonlocal seq, next_at
        chunks = audio.padded_frames(pcm)
        next_at = max(next_at, time.perf_counter() - frame_s)
        for chunk in chunks:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            await bus.nc.publish(
                subject,
                chunk,
                headers=audio.AudioFrame(
                    pcm=chunk, seq=seq, ts_us=time.time_ns() // 1000
                ).headers(),
            )
            seq += 1
            next_at += frame_s
        return time.perf_counter()

    async def quiet(for_s: float) -> None:
        while True:
            last = frames[-1] if frames else 0.0
            if time.perf_counter() - last > for_s:
                return
            await send(silence(100))

    while not turns_done:  # the greeting
        await send(silence(100))
    await quiet(1.0)
    latencies = []
    answer_s = 15 if not prefix else 60  # a local LLM on two cores takes seconds
    cpu_before, wall_before = _cpu_seconds(pids), time.perf_counter()
    for turn in range(turns):
        _, pcm = clips[turn % len(clips)]
        end = voiced_end(pcm)
        await send(pcm[:end])
        speech_end = time.perf_counter()
        seen = len(frames)
        await send(pcm[end:])
        while len(frames) == seen and time.perf_counter() - speech_end < answer_s:
            await send(silence(20))
        if len(frames) > seen:
            latencies.append((frames[seen] - speech_end) * 1000)
        done_before = len(turns_done)
        while len(turns_done) == done_before and time.perf_counter() - speech_end < 20:
            await send(silence(100))
        await quiet(1.0)  # the whole reply has played before the user speaks again
    if os.environ.get("STELLA_BENCH_DEBUG"):
        print("latencies", [round(x) for x in latencies])
        for m in metrics:
            print("metrics", m.deltas_ms)
    minutes = (time.perf_counter() - wall_before) / 60
    cpu = (_cpu_seconds(pids) - cpu_before) / minutes
    await bus.close()
    how = (
        f"{len(latencies)} turns in one voice session: kokoro-spoken questions streamed in "
        "real time to audio.in → stt (silero + whisper tiny.en via sherpa-onnx) → the "
        f"guide's MyCustomAgent with {llm_label} → tts (kokoro) → "
        "audio.out; from the last voiced input sample to the first agent frame out"
    )
    deltas = {
        k: [m.deltas_ms[k] for m in metrics if k in m.deltas_ms]
        for k in ("stt_final_ms", "agent_text_ms", "synthesis_ms")
    }
    parts = ", ".join(f"{k} p50 {percentile(v, 50):.0f}" for k, v in deltas.items() if v)
    return [
        Figure(
            f"{prefix}voice-to-voice latency p50",
            percentile(latencies, 50),
            "ms",
            how,
            "" if prefix else "≤ 800",
        ),
        Figure(f"{prefix}voice-to-voice latency p95", percentile(latencies, 95), "ms", how),
        Figure(
            "  turns answered",
            len(latencies),
            f"of {turns}",
            f"a first agent frame within {answer_s} s of the end of the question",
        ),
        Figure("  turn breakdown (metrics.turn)", len(metrics), "turns", parts or "none"),
        Figure(
            "CPU seconds per minute of conversation",
            cpu,
            "CPU s/min",
            "user+system time of NATS and every STELLA process during those turns "
            "(/proc/<pid>/stat), per minute of wall time",
        ),
    ]


def run(platform: BenchPlatform) -> list[Figure]:
    figures = [] if os.environ.get("STELLA_BENCH_DEBUG") else stt_rtf()
    llm = ScriptedOpenAI([Rule(text=REPLY)])
    llm.start()
    try:
        procs = [
            platform.start("recorder"),
            platform.start("stt"),
            platform.start("tts"),
            platform.start("agent-runner", platform.example_agent_env(llm.env())),
        ]
        if not os.environ.get("STELLA_BENCH_DEBUG"):
            figures += asyncio.run(_tts_first_audio(platform))
        pids = [p.pid for p in procs] + platform.nats_pids
        figures += asyncio.run(voice_to_voice(platform, pids))
        if not os.environ.get("STELLA_BENCH_DEBUG"):  # the fast engine, for comparison
            procs[2].stop()
            platform.start("tts", {"STELLA_TTS_PROVIDER": "piper"})
            figures += asyncio.run(_tts_first_audio(platform, "piper"))
    finally:
        llm.stop()
    return figures
