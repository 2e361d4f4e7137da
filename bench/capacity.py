"""How many sessions one machine holds: concurrent voice sessions (local STT and TTS) while
voice-to-voice p95 stays within 1.5 s, and text-only sessions while a text turn's p95
stays within 500 ms. Concurrency steps up level by level and stops at the first level
over its bound (or with a turn left unanswered). One replica of every service, the
guide's ``MyCustomAgent`` and a scripted OpenAI-compatible LLM in its own process; voice
with kokoro (the default) and then with piper speaking.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from nats.aio.msg import Msg
from rich.console import Console

from bench.figures import Figure, percentile
from bench.platform import BenchPlatform
from bench.speech import voiced_end
from stella_contracts import (
    AgentText,
    AgentTurnDone,
    EndReason,
    Envelope,
    TurnMetrics,
    UserText,
    audio,
    subjects,
)
from stella_services.runtime.bus import Bus
from stella_services.runtime.sessions import end_session, new_session_id, open_session
from stella_services.runtime.settings import ServiceSettings
from stella_services.runtime.status import gather_status
from tests.support.speech import speech_pcm

ROOT = Path(__file__).resolve().parents[1]


def _levels(variable: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """Concurrency levels, or those in ``variable`` (e.g. "1,2": a quicker look)."""
    given = os.environ.get(variable)
    if given is None:
        return default
    return tuple(int(x) for x in given.split(",") if x.strip())


AGENT = "my-custom-agent"
REPLY = "Sure. I can help with that right away, one moment please."
QUESTIONS = [
    "What time do you open tomorrow?",
    "Can you book a table for two at seven?",
    "Please remind me to call the dentist.",
    "Is there parking near the station?",
]

VOICE_LEVELS = _levels("STELLA_BENCH_VOICE_LEVELS", (1, 2, 4, 6, 8, 10, 12, 16))
VOICE_P95_MS = 1500.0
VOICE_TURNS = 3  # per session and level, at least
VOICE_SAMPLES = 20  # turns per level, at least: p95 of 20 forgives one outlier, of 12 none
ANSWER_TIMEOUT_S = 15.0

TEXT_LEVELS = _levels("STELLA_BENCH_TEXT_LEVELS", (10, 25, 50, 100, 200, 300, 400, 600))
TEXT_P95_MS = 500.0
TEXT_SECONDS = 12.0  # each level: every session talks for this long
THINK_S = 1.0  # a user reads the answer for a second before typing the next message
TEXT_TIMEOUT_S = 10.0

console = Console(stderr=True)


class ScriptedLLM:
    """The scripted OpenAI-compatible server as its own process, so serving the agents'
    requests does not share the load generator's interpreter."""

    def __init__(self, root: Path, reply: str) -> None:
        script = root / "llm-script.json"
        script.write_text(json.dumps([{"reply": {"text": reply}}]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.scripted_openai", "--script", str(script)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("SCRIPTED_OPENAI_READY"):
            self.stop()
            raise RuntimeError(f"scripted LLM did not start: {line!r}")
        self.base_url = line.split()[1]

    def env(self) -> dict[str, str]:
        return {"OPENAI_BASE_URL": self.base_url, "OPENAI_API_KEY": "bench"}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# -- voice ---------------------------------------------------------------------------


@dataclass
class Microphone:
    """Streams a session's audio in real time, silence between what the user says."""

    bus: Bus
    session_id: str
    pending: bytearray = field(default_factory=bytearray)
    consumed: int = 0  # bytes of said audio sent so far
    queued: int = 0  # bytes of said audio handed to us so far
    marks: list[tuple[int, asyncio.Future[float]]] = field(default_factory=list)

    def say(self, pcm: bytes, mark: int) -> asyncio.Future[float]:
        """Queue ``pcm``; the future gets the time its byte ``mark`` went out."""
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.marks.append((self.queued + mark, future))
        self.pending += pcm
        self.queued += len(pcm)
        return future

    async def run(self) -> None:
        """One 20 ms frame at a time, in real time, like a microphone."""
        subject = subjects.audio_in(self.session_id)
        seq = 0
        next_at = time.monotonic()
        while True:
            delay = next_at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            said = bytes(self.pending[: audio.FRAME_BYTES])
            del self.pending[: audio.FRAME_BYTES]
            self.consumed += len(said)
            frame = said + bytes(audio.FRAME_BYTES - len(said))  # silence after the words
            headers = audio.AudioFrame(pcm=frame, seq=seq, ts_us=time.time_ns() // 1000)
            await self.bus.nc.publish(subject, frame, headers=headers.headers())
            sent = time.monotonic()
            seq += 1
            for mark, future in [m for m in self.marks if m[0] <= self.consumed]:
                self.marks.remove((mark, future))
                if not future.done():
                    future.set_result(sent)  # the frame holding the mark has left
            next_at += audio.FRAME_MS / 1000


@dataclass
class VoiceUser:
    bus: Bus
    clips: list[bytes]
    session_id: str = field(default_factory=new_session_id)
    frames: list[float] = field(default_factory=list)
    turns_done: int = 0
    latencies: list[float] = field(default_factory=list)
    unanswered: int = 0
    metrics: list[TurnMetrics] = field(default_factory=list)

    async def on_frame(self, msg: Msg) -> None:
        self.frames.append(time.monotonic())

    async def on_event(self, msg: Msg) -> None:
        env = Envelope.from_json(msg.data)
        if isinstance(env.payload, AgentTurnDone):
            self.turns_done += 1
        elif isinstance(env.payload, TurnMetrics):
            self.metrics.append(env.payload)

    async def wait(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def frames_beyond(self, n: int) -> Callable[[], bool]:
        return lambda: len(self.frames) > n

    def turns_beyond(self, n: int) -> Callable[[], bool]:
        return lambda: self.turns_done > n

    def quiet_for(self, seconds: float) -> Callable[[], bool]:
        return lambda: not self.frames or time.monotonic() - self.frames[-1] > seconds

    async def converse(self, secret: str, turns: int) -> None:
        nc = self.bus.nc
        subs = [
            await nc.subscribe(subjects.audio_out(self.session_id), cb=self.on_frame),
            await nc.subscribe(subjects.session_events(self.session_id), cb=self.on_event),
        ]
        await open_session(
            self.bus, AGENT, secret, audio=True, session_id=self.session_id, timeout=30
        )
        mic = Microphone(self.bus, self.session_id)
        streaming = asyncio.create_task(mic.run())
        try:
            await self.wait(lambda: self.turns_done >= 1, ANSWER_TIMEOUT_S)  # the greeting
            await self.wait(self.quiet_for(1.0), 30)
            for turn in range(turns):
                await asyncio.sleep(random.uniform(0, 1.0))  # users do not speak in step
                pcm = self.clips[turn % len(self.clips)]
                seen, done_before = len(self.frames), self.turns_done
                speech_end = await mic.say(pcm, voiced_end(pcm))
                answered = await self.wait(
                    self.frames_beyond(seen), ANSWER_TIMEOUT_S + len(pcm) / 32_000
                )
                if not answered:
                    self.unanswered += 1
                    continue
                first = next(t for t in self.frames[seen:] if t > speech_end)
                self.latencies.append((first - speech_end) * 1000)
                await self.wait(self.turns_beyond(done_before), 30)
                await self.wait(self.quiet_for(1.0), 30)  # the reply has played
        finally:
            streaming.cancel()
            await end_session(self.bus, self.session_id, EndReason.CLIENT)
            for sub in subs:
                await sub.unsubscribe()


def _breakdown(metrics: list[TurnMetrics]) -> str:
    """p50/p95 of each leg of the turns' latency ledgers (metrics.turn)."""
    legs = []
    for key in ("stt_final_ms", "agent_text_ms", "synthesis_ms", "audio_out_ms"):
        values = [m.deltas_ms[key] for m in metrics if key in m.deltas_ms]
        if values:
            name = key.removesuffix("_ms")
            legs.append(f"{name} {percentile(values, 50):.0f}/{percentile(values, 95):.0f}")
    return ", ".join(legs) or "no metrics.turn"


async def _released(bus: Bus) -> None:
    """Between levels: every replica has let go of the last level's sessions."""
    for _ in range(100):
        if not any(s.holds_anything for s in await gather_status(bus.nc, timeout=0.3)):
            return
        await asyncio.sleep(0.1)


async def _voice_capacity(platform: BenchPlatform, engine: str) -> list[Figure]:
    bus = await Bus.connect(ServiceSettings(nats_url=platform.nats_url), "bench")
    secret = platform.env["STELLA_SECRET"]
    clips = [speech_pcm(q) for q in QUESTIONS]
    figures: list[Figure] = []
    held = 0
    for level in VOICE_LEVELS:
        users = [VoiceUser(bus, clips[i % 2 :] + clips[: i % 2]) for i in range(level)]
        turns = max(VOICE_TURNS, -(-VOICE_SAMPLES // level))
        await asyncio.gather(*(u.converse(secret, turns) for u in users))
        await _released(bus)
        latencies = [x for u in users for x in u.latencies]
        unanswered = sum(u.unanswered for u in users)
        p50 = percentile(latencies, 50) if latencies else float("nan")
        p95 = percentile(latencies, 95) if latencies else float("inf")
        parts = _breakdown([m for u in users for m in u.metrics])
        console.print(
            f"voice ({engine}) x{level}: p50 {p50:.0f} ms, p95 {p95:.0f} ms, "
            f"{len(latencies)} turns, {unanswered} unanswered; {parts}",
            soft_wrap=True,
        )
        figures.append(
            Figure(
                f"  voice ({engine}) x{level}: voice-to-voice p95",
                p95,
                "ms",
                f"p50 {p50:.0f} ms; {len(latencies)} turns answered, {unanswered} not; "
                f"parts p50/p95 {parts}",
            )
        )
        if unanswered or p95 > VOICE_P95_MS:
            break
        held = level
    await bus.close()
    how = (
        f"levels {', '.join(map(str, VOICE_LEVELS))} concurrent voice sessions, each "
        f"asking {VOICE_TURNS} or more spoken questions ({VOICE_SAMPLES} or more a level; "
        "kokoro voice, microphone-paced) to the guide's "
        f"MyCustomAgent: one stt (sherpa, whisper tiny.en), one tts ({engine}), one runner, "
        "the recorder, a scripted LLM; the largest level whose every turn was answered "
        f"with p95 (last voiced input sample → first agent frame) ≤ {VOICE_P95_MS:.0f} ms"
    )
    name = f"voice sessions held, p95 ≤ 1.5 s ({engine})"
    return [Figure(name, held, "sessions", how), *figures]


# -- text ----------------------------------------------------------------------------


@dataclass
class TextLoad:
    """Every session's replies, through one subscription (not one per session)."""

    replies: defaultdict[str, asyncio.Queue[float]] = field(
        default_factory=lambda: defaultdict(asyncio.Queue)
    )

    async def on_text(self, msg: Msg) -> None:
        env = Envelope.from_json(msg.data)
        if isinstance(env.payload, AgentText) and env.payload.is_final:
            self.replies[env.session_id].put_nowait(time.monotonic())


async def _text_user(
    bus: Bus, load: TextLoad, secret: str, until: float, latencies: list[float]
) -> int:
    """One text session until ``until``; returns how many messages got no answer."""
    sid = new_session_id()
    replies = load.replies[sid]
    await open_session(bus, AGENT, secret, session_id=sid, timeout=30)
    unanswered = 0
    try:
        await asyncio.wait_for(replies.get(), TEXT_TIMEOUT_S)  # the greeting
        await asyncio.sleep(random.uniform(0, THINK_S))
        while time.monotonic() < until:
            sent = time.monotonic()
            await bus.emit(sid, UserText(text="What time do you open tomorrow?"))
            try:
                answered = await asyncio.wait_for(replies.get(), TEXT_TIMEOUT_S)
                latencies.append((answered - sent) * 1000)
            except TimeoutError:
                unanswered += 1
            await asyncio.sleep(THINK_S)
    except TimeoutError:
        unanswered += 1
    finally:
        await end_session(bus, sid, EndReason.CLIENT)
        load.replies.pop(sid, None)
    return unanswered


async def _text_capacity(platform: BenchPlatform) -> list[Figure]:
    bus = await Bus.connect(ServiceSettings(nats_url=platform.nats_url), "bench")
    secret = platform.env["STELLA_SECRET"]
    load = TextLoad()
    sub = await bus.nc.subscribe(subjects.any_session_event(AgentText.TYPE), cb=load.on_text)
    figures: list[Figure] = []
    held = 0
    for level in TEXT_LEVELS:
        latencies: list[float] = []
        until = time.monotonic() + TEXT_SECONDS
        missed = await asyncio.gather(
            *(_text_user(bus, load, secret, until, latencies) for _ in range(level))
        )
        await _released(bus)
        unanswered = sum(missed)
        p50 = percentile(latencies, 50) if latencies else float("nan")
        p95 = percentile(latencies, 95) if latencies else float("inf")
        rate = len(latencies) / TEXT_SECONDS
        console.print(
            f"text x{level}: p50 {p50:.0f} ms, p95 {p95:.0f} ms, "
            f"{rate:.0f} turns/s, {unanswered} unanswered",
            soft_wrap=True,
        )
        figures.append(
            Figure(
                f"  text x{level}: turn p95",
                p95,
                "ms",
                f"p50 {p50:.0f} ms; {len(latencies)} turns ({rate:.0f}/s), {unanswered} unanswered",
            )
        )
        if unanswered or p95 > TEXT_P95_MS:
            break
        held = level
    await sub.unsubscribe()
    await bus.close()
    how = (
        f"levels {', '.join(map(str, TEXT_LEVELS))} concurrent text sessions; each sends a "
        f"message, waits for the answer, reads it for {THINK_S:g} s, for {TEXT_SECONDS:g} s: "
        "user.text published → the agent's final agent.text received; the guide's "
        "MyCustomAgent, one runner, the recorder, a scripted LLM answering at once (so this "
        f"is the platform's own cost); the largest level with p95 ≤ {TEXT_P95_MS:.0f} ms "
        "and every message answered"
    )
    return [Figure("text sessions held, p95 ≤ 500 ms", held, "sessions", how), *figures]


def run(platform: BenchPlatform) -> list[Figure]:
    llm = ScriptedLLM(platform.root, REPLY)
    try:
        # the bound is the latency, not a setting
        platform.env["STELLA_MAX_SESSIONS"] = "1000"
        platform.start("recorder")
        platform.start("stt")
        tts = platform.start("tts")
        platform.start("agent-runner", platform.example_agent_env(llm.env()))
        figures = asyncio.run(_voice_capacity(platform, "kokoro"))
        tts.stop()  # the fast engine, for comparison
        platform.start("tts", {"STELLA_TTS_PROVIDER": "piper"})
        figures += asyncio.run(_voice_capacity(platform, "piper"))
        figures += asyncio.run(_text_capacity(platform))
    finally:
        llm.stop()
    return figures
