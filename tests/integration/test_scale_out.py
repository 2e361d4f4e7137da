"""Scale-out with real models: 2 stt, 2 tts, 2 agent-runners, 2 tool-executors, 50 voice
sessions at once (kokoro-spoken questions in, Whisper tiny.en, piper out, a scripted LLM
that calls a tool). Every session gets a spoken answer, each from exactly one replica of
each service, load lands on both replicas of each, and a runner stopped with SIGTERM
mid-test answers its own sessions and exits only once they have ended.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest
from nats.aio.msg import Msg

from stella_contracts import EndReason, SttTranscript, ToolResult, TtsDone, audio, subjects
from stella_services.runtime.bus import Bus
from stella_services.runtime.sessions import (
    OpenedSession,
    end_session,
    new_session_id,
    open_session,
)
from tests.support.events import EventLog
from tests.support.history import TEST_SECRET
from tests.support.processes import ServiceProcess
from tests.support.scripted_openai import Rule, ScriptedOpenAI, ToolCallReply
from tests.support.speech import silence, speech_pcm
from tests.support.status import gather_status, wait_until_draining, wait_until_released

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
Start = Callable[[str, dict[str, str]], ServiceProcess]
HOST = os.uname().nodename
SESSIONS = 50
LATE = 6  # opened after one runner was told to stop
QUESTION = "Please add two and three."
ANSWER = 'The sum is {"sum": 5}.'
BURST = 5  # frames published per wake-up: 100 ms of audio, paced in real time


@pytest.fixture
def llm() -> Iterator[ScriptedOpenAI]:
    # whatever the user is heard to say, the model asks for the tool, then answers
    rules = [
        Rule(when_tool_result_for="add", text="The sum is {tool_result}."),
        Rule(tool_calls=(ToolCallReply("add", {"a": 2, "b": 3}),)),
    ]
    with ScriptedOpenAI(rules) as server:
        yield server


class Ears:
    """Counts the agent's frames per session (cheaply: 50 sessions of 50 frames a second)."""

    def __init__(self) -> None:
        self.frames: defaultdict[str, list[float]] = defaultdict(list)

    async def on_frame(self, session_id: str, msg: Msg) -> None:
        self.frames[session_id].append(time.time())

    def after(self, session_id: str, wall: float) -> int:
        return sum(1 for t in self.frames[session_id] if t > wall)


async def speak(bus: Bus, session_id: str, pcm: bytes, delay: float) -> float:
    """After ``delay``, the user says ``pcm`` (then 1.2 s of silence) in real time, like a
    microphone; returns the wall time the speech ended."""
    await asyncio.sleep(delay)
    speech = audio.padded_frames(pcm)
    frames = speech + audio.padded_frames(silence(1200))
    subject = subjects.audio_in(session_id)
    start = time.monotonic()
    ended = 0.0
    for i in range(0, len(frames), BURST):
        wait = start + i * audio.FRAME_MS / 1000 - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        for seq in range(i, min(i + BURST, len(frames))):
            header = audio.AudioFrame(pcm=frames[seq], seq=seq, ts_us=time.time_ns() // 1000)
            await bus.nc.publish(subject, frames[seq], headers=header.headers())
            if seq == len(speech) - 1:
                ended = time.time()
    return ended


async def test_fifty_voice_sessions_over_two_replicas_of_everything(
    bus: Bus, recorder_env: dict[str, str], start_service: Start, llm: ScriptedOpenAI
) -> None:
    env = {
        **recorder_env,
        **llm.env(),
        "STELLA_STT_THREADS": "1",  # two replicas share two cores
        "STELLA_TTS_PROVIDER": "piper",
        "STELLA_AGENT_PATH": str(ROOT / "examples"),
        "STELLA_TOOL_MODULES": "demo_agents.tool_lab",
        "STELLA_AGENT": "demo_agents.tool_lab:ToolLabAgent",
        "STELLA_TOOLS_MODE": "remote",
    }
    # the runner told to stop waits for its sessions however long the test takes
    runner_env = {**env, "STELLA_DRAIN_TIMEOUT_S": "300"}
    question = speech_pcm(QUESTION)  # kokoro, before the services take the cores
    kinds = ["stt", "tts", "tool-executor", "agent-runner"]
    started = await asyncio.gather(
        *(
            asyncio.to_thread(start_service, k, runner_env if k == "agent-runner" else env)
            for k in kinds
            for _ in range(2)
        )
    )
    procs = {k: started[2 * i : 2 * i + 2] for i, k in enumerate(kinds)}
    replicas = dict.fromkeys(kinds, 2)
    await wait_until_released(bus.nc, replicas)  # all eight answer, holding nothing

    run = Run(bus, await EventLog(bus).attach(), Ears(), procs)
    try:
        await run.converse(question)
        await wait_until_released(bus.nc, {**replicas, "agent-runner": 1})
    finally:  # whatever failed, end the sessions so no service waits for them at teardown
        for s in run.opened:
            await end_session(bus, s.session_id, EndReason.CLIENT)
        await run.log.close()


@dataclass
class Run:
    bus: Bus
    log: EventLog
    ears: Ears
    procs: dict[str, list[ServiceProcess]]
    opened: list[OpenedSession] = field(default_factory=list)  # and not yet ended

    def name(self, kind: str, index: int) -> str:
        return f"{kind}/{HOST}-{self.procs[kind][index].pid}"

    def names(self, kind: str) -> set[str]:
        return {self.name(kind, i) for i in range(len(self.procs[kind]))}

    async def open_voice(self) -> OpenedSession:
        sid = new_session_id()  # listening before the session exists: no frame is missed
        await self.bus.nc.subscribe(subjects.audio_out(sid), cb=partial(self.ears.on_frame, sid))
        # 56 sessions opened at once on two loaded cores: give each step time
        session = await open_session(
            self.bus, "tool-lab-agent", TEST_SECRET, audio=True, session_id=sid, timeout=30
        )
        self.opened.append(session)
        return session

    async def open_many(self, n: int) -> list[OpenedSession]:
        sessions = list(await asyncio.gather(*(self.open_voice() for _ in range(n))))
        assert await self.log.wait_until(lambda: all(self.greeted(s) for s in sessions), 120)
        return sessions

    def greeted(self, s: OpenedSession) -> bool:
        return any(isinstance(e.payload, TtsDone) for e in self.log.of(s.session_id, "tts.done"))

    def answered(self, s: OpenedSession) -> bool:
        return any(
            isinstance(e.payload, TtsDone) and e.payload.text == ANSWER
            for e in self.log.of(s.session_id, "tts.done")
        )

    async def converse(self, question: bytes) -> None:
        log = self.log
        sessions = await self.open_many(SESSIONS)

        # one runner is told to stop while all fifty are open
        runner_a = self.procs["agent-runner"][0]
        on_a = [s for s in sessions if s.runner == self.name("agent-runner", 0)]
        assert 0 < len(on_a) < SESSIONS
        assert runner_a.process is not None
        runner_a.process.send_signal(signal.SIGTERM)
        await wait_until_draining(self.bus.nc, "agent-runner", f"{HOST}-{runner_a.pid}", 2)
        late = await self.open_many(LATE)
        # a draining runner takes nothing new
        assert {s.runner for s in late} == {self.name("agent-runner", 1)}
        everyone = sessions + late

        # every user asks, a little apart, as real users would
        ends = await asyncio.gather(
            *(speak(self.bus, s.session_id, question, 0.1 * i) for i, s in enumerate(everyone))
        )
        speech_end = dict(zip([s.session_id for s in everyone], ends, strict=True))
        done = await log.wait_until(lambda: all(self.answered(s) for s in everyone), 150)
        missing = [s.session_id for s in everyone if not self.answered(s)]
        assert done, f"{len(missing)} session(s) got no spoken answer, e.g. {missing[:3]}"
        assert runner_a.process.poll() is None  # its sessions are still open: it waits

        for s in everyone:
            self.check_served_once(s, speech_end[s.session_id])

        # the load was spread over both replicas of every service
        for kind, served_by in (("stt", "stt"), ("tts", "tts"), ("agent-runner", "runner")):
            assert {getattr(s, served_by) for s in sessions} == self.names(kind), kind
        results = [e.payload for s in everyone for e in log.of(s.session_id, "tool.result")]
        executed = {r.executed_by for r in results if isinstance(r, ToolResult)}
        assert executed == self.names("tool-executor")
        statuses = await gather_status(self.bus.nc, timeout=1.0)
        held = {(s.service, s.pid): len(s.sessions) for s in statuses}
        assert held[("agent-runner", runner_a.pid)] == len(on_a)
        for kind in ("stt", "tts"):
            assert all(held[(kind, p.pid)] > 0 for p in self.procs[kind]), kind

        # the end: the drained runner leaves once its sessions have ended
        for s in everyone:
            await end_session(self.bus, s.session_id, EndReason.CLIENT)
        self.opened.clear()
        assert await asyncio.to_thread(runner_a.process.wait, 30) == 0

    def check_served_once(self, s: OpenedSession, speech_end: float) -> None:
        sid, log = s.session_id, self.log
        finals = [
            e.payload
            for e in log.of(sid, "stt.transcript")
            if isinstance(e.payload, SttTranscript) and e.payload.is_final
        ]
        assert len(finals) == 1, finals  # one question heard, once
        # a reply spoken: the whole answer, heard, and frames on audio.out after the question
        [reply] = [
            e.payload
            for e in log.of(sid, "tts.done")
            if isinstance(e.payload, TtsDone) and e.payload.text == ANSWER
        ]
        assert not reply.interrupted and reply.spoken_text == ANSWER and reply.audio_ms > 500
        assert self.ears.after(sid, speech_end) >= reply.audio_ms // audio.FRAME_MS
        # served once: by one replica of each service, the one that took the session
        assert log.sources(sid, "stt.transcript") == {s.stt}
        assert log.sources(sid, "stt.vad") == {s.stt}
        assert log.sources(sid, "tts.done") == {s.tts}
        assert log.sources(sid, "agent.text") == {s.runner}
        claims = [str(e.source) for e in log.of(sid, "lifecycle.claimed")]
        assert sorted(claims) == sorted([s.stt, s.tts, s.runner])
        [result] = [e.payload for e in log.of(sid, "tool.result")]
        assert isinstance(result, ToolResult) and result.ok
