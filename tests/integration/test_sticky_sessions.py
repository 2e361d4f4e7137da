"""Sticky sessions over replicas, draining, and freeing everything when a session ends.

Speech here comes from the ``openai`` providers talking to the scripted OpenAI server (real
processes, real NATS, real silero VAD; no Whisper or kokoro weights to load), so these
tests are about who serves what, not about speech quality.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from nats.aio.msg import Msg

from stella_contracts import (
    EndReason,
    ServiceStatus,
    SessionClaimed,
    SessionEnded,
    SynthesisRequest,
    ToolErrorKind,
    ToolInvocation,
    ToolOutcome,
    ToolResult,
    TtsRequest,
    UserText,
    audio,
    new_id,
    subjects,
)
from stella_contracts.speech import HEADER_ERROR, HEADER_FINAL
from stella_services.runtime.bus import Bus
from stella_services.runtime.claims import ClaimFailed, request_claim
from stella_services.runtime.sessions import (
    DispatchFailed,
    SpeechClaimFailed,
    end_session,
    open_session,
)
from tests.support.conversation import Conversation
from tests.support.events import EventLog
from tests.support.history import TEST_SECRET
from tests.support.processes import ServiceProcess
from tests.support.scripted_openai import Rule, ScriptedOpenAI, ToolCallReply, speech_pcm
from tests.support.status import gather_status, wait_until_draining, wait_until_released
from tests.support.waiting import until

ROOT = Path(__file__).resolve().parents[2]
Start = Callable[[str, dict[str, str]], ServiceProcess]
HOST = os.uname().nodename


def name(service: str, proc: ServiceProcess) -> str:
    return f"{service}/{HOST}-{proc.pid}"


def stella(args: list[str], env: dict[str, str]) -> str:
    """The `stella` command line, as a user runs it; returns what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "stella_services", *args],
        env={**env, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout


@pytest.fixture
def llm() -> Iterator[ScriptedOpenAI]:
    rules = [
        Rule(when_tool_result_for="add", text="The sum is {tool_result}."),
        Rule(when_user_contains="add", tool_calls=(ToolCallReply("add", {"a": 2, "b": 3}),)),
        Rule(text="Say add."),
    ]
    # 10 ms of audio per character: speech is short, so many sessions finish quickly
    with ScriptedOpenAI(rules, speech_ms_per_char=10, transcripts=["please add"] * 200) as s:
        yield s


@pytest.fixture
def env(recorder_env: dict[str, str], llm: ScriptedOpenAI) -> dict[str, str]:
    return {
        **recorder_env,
        **llm.env(),
        "STELLA_TTS_PROVIDER": "openai",
        "STELLA_STT_PROVIDER": "openai",
        "STELLA_AGENT_PATH": str(ROOT / "examples"),
        "STELLA_TOOL_MODULES": "demo_agents.tool_lab",
        "STELLA_AGENT": "demo_agents.tool_lab:ToolLabAgent",
        "STELLA_TOOLS_MODE": "remote",
    }


async def test_each_session_is_spoken_by_the_one_tts_replica_that_claimed_it(
    bus: Bus, env: dict[str, str], start_service: Start
) -> None:
    replicas = [start_service("tts", env) for _ in range(2)]
    names = {name("tts", r) for r in replicas}
    log = await EventLog(bus).attach()
    sids = [str(new_id()) for _ in range(20)]
    taken = await asyncio.gather(*(request_claim(bus.nc, "tts", s) for s in sids))
    claimed = dict(zip(sids, taken, strict=True))
    assert set(claimed.values()) == names  # both replicas took sessions
    for sid in sids:  # two requests each: both go to the claimer, and only to it
        await bus.emit(sid, TtsRequest(text="One.", turn_id="t1"))
        await bus.emit(sid, TtsRequest(text="Two.", turn_id="t2"))
    assert await log.wait_until(lambda: all(len(log.of(s, "tts.done")) >= 2 for s in sids))
    await asyncio.sleep(0.3)  # a second replica speaking would show up by now
    for sid in sids:
        assert [e.payload.turn_id for e in log.of(sid, "tts.done")] == ["t1", "t2"]  # type: ignore[attr-defined]
        assert log.sources(sid, "tts.done") == {claimed[sid]}
        [claim] = [e.payload for e in log.of(sid, "lifecycle.claimed")]
        assert isinstance(claim, SessionClaimed)
        assert f"tts/{claim.instance}" == claimed[sid] and claim.handoff_from == ""
    # the status agrees: each session is held by exactly one replica
    statuses = await gather_status(bus.nc, "tts", expect=2)
    held = Counter(sid for s in statuses for sid in s.sessions)
    assert set(held) == set(sids) and set(held.values()) == {1}
    assert all(s.subscriptions == len(s.sessions) for s in statuses)  # one per session
    # and so does `stella status`
    cli = {**os.environ, "NATS_URL": env["NATS_URL"]}
    out = await asyncio.to_thread(stella, ["status", "--service", "tts", "--json"], cli)
    from_cli = [ServiceStatus.model_validate_json(line) for line in out.splitlines()]
    assert {s.instance: s.sessions for s in from_cli} == {s.instance: s.sessions for s in statuses}
    table = await asyncio.to_thread(stella, ["status"], cli)
    assert "2 replica(s)" in table and table.count("serving") == 2
    assert all(f"{s.instance}" in table for s in statuses)
    for sid in sids:
        await end_session(bus, sid, EndReason.CLIENT)
    await wait_until_released(bus.nc, {"tts": 2})
    await log.close()


async def test_a_voice_session_with_no_speech_replica_fails_loudly_or_waits_for_one(
    bus: Bus, env: dict[str, str], start_service: Start
) -> None:
    log = await EventLog(bus).attach()
    with pytest.raises(SpeechClaimFailed) as failed:
        await open_session(bus, "nobody", TEST_SECRET, audio=True, timeout=0.5)
    assert "no stt replica is running" in str(failed.value)
    assert "no tts replica is running" in str(failed.value)
    [sid] = [s for s in log.by_session if log.of(s, "lifecycle.created")]
    assert await log.wait_until(lambda: bool(log.of(sid, "lifecycle.ended")))
    ended = log.of(sid, "lifecycle.ended")[0].payload
    assert isinstance(ended, SessionEnded) and ended.reason is EndReason.ERROR
    assert "no stt replica" in ended.detail

    # a session that has ended is never taken late (its opener gave up, say): not by
    # speech replicas, not by a runner
    tts = await asyncio.to_thread(start_service, "tts", env)
    start_service("agent-runner", {**env, "STELLA_AGENT": "demo_agents.echo:EchoAgent"})
    gone = str(new_id())
    await end_session(bus, gone, EndReason.CLIENT)
    with pytest.raises(ClaimFailed, match="session ended"):
        await request_claim(bus.nc, "tts", gone, timeout=5)
    with pytest.raises(DispatchFailed, match="session ended"):
        await open_session(bus, "echo-agent", TEST_SECRET, session_id=gone)
    await wait_until_released(bus.nc, {"tts": 1, "agent-runner": 1})
    tts.stop()

    # a replica that starts while a claim is still waiting gets the session
    late = str(new_id())
    waiting = asyncio.create_task(request_claim(bus.nc, "tts", late, timeout=60))
    await asyncio.sleep(0.5)
    assert not waiting.done()
    late_tts = await asyncio.to_thread(start_service, "tts", env)
    assert await waiting == name("tts", late_tts)
    await end_session(bus, late, EndReason.CLIENT)
    await wait_until_released(bus.nc, {"tts": 1})
    await log.close()


async def test_a_draining_tts_serves_its_sessions_takes_no_new_ones_and_hands_on_the_rest(
    bus: Bus, env: dict[str, str], start_service: Start
) -> None:
    a = start_service("tts", {**env, "STELLA_DRAIN_TIMEOUT_S": "4"})
    b = start_service("tts", env)
    a_name, b_name = name("tts", a), name("tts", b)
    a_instance, b_instance = a_name.split("/")[1], b_name.split("/")[1]
    log = await EventLog(bus).attach()
    sids = [str(new_id()) for _ in range(12)]
    claimed = {s: await request_claim(bus.nc, "tts", s) for s in sids}
    on_a = [s for s in sids if claimed[s] == a_name]
    assert len(on_a) >= 2, claimed  # 12 sessions over two replicas: both took some

    assert a.process is not None
    a.process.send_signal(signal.SIGTERM)
    statuses = await wait_until_draining(bus.nc, "tts", a_instance, 2)
    assert {s.instance: s.draining for s in statuses} == {a_instance: True, b_instance: False}
    # new sessions all go to the replica that is not draining
    later = [str(new_id()) for _ in range(6)]
    assert {await request_claim(bus.nc, "tts", s) for s in later} == {b_name}
    # the draining replica still speaks for the sessions it holds
    await bus.emit(on_a[0], TtsRequest(text="Still here.", turn_id="d1"))
    assert await log.wait_until(lambda: bool(log.of(on_a[0], "tts.done")))
    assert log.sources(on_a[0], "tts.done") == {a_name}
    # one of its sessions ends; the others are still open at the deadline: handed on
    await end_session(bus, on_a[0], EndReason.CLIENT)
    exit_code = await asyncio.to_thread(a.process.wait, 30)
    assert exit_code == 0
    for sid in on_a[1:]:
        claims = [e.payload for e in log.of(sid, "lifecycle.claimed")]
        assert [(c.instance, c.handoff_from) for c in claims] == [  # type: ignore[attr-defined]
            (a_instance, ""),
            (b_instance, a_instance),
        ]
    assert log.sources(on_a[0], "lifecycle.claimed") == {a_name}  # ended before: not moved
    # a handed-on session is spoken by its new replica alone
    await bus.emit(on_a[1], TtsRequest(text="Moved.", turn_id="m1"))
    assert await log.wait_until(
        lambda: any(e.payload.turn_id == "m1" for e in log.of(on_a[1], "tts.done"))  # type: ignore[attr-defined]
    )
    moved = [e for e in log.of(on_a[1], "tts.done") if e.payload.turn_id == "m1"]  # type: ignore[attr-defined]
    assert [str(e.source) for e in moved] == [b_name]
    for sid in sids + later:
        await end_session(bus, sid, EndReason.CLIENT)
    await wait_until_released(bus.nc, {"tts": 1})
    await log.close()


async def test_ended_sessions_leave_nothing_held_in_any_service(
    bus: Bus, env: dict[str, str], start_service: Start, llm: ScriptedOpenAI
) -> None:
    services = ["stt", "tts", "tool-executor", "agent-runner"]
    for service in services:
        start_service(service, env)
    replicas = dict.fromkeys(services, 1)
    log = await EventLog(bus).attach()
    # a first round warms up what a connection makes once (nats-py's request inbox...)
    await converse(bus, log, 5)
    warm = {s.service: s for s in await wait_until_released(bus.nc, replicas)}
    during = await converse(bus, log, 30)
    for service in ("stt", "tts", "agent-runner"):
        assert len(during[service].sessions) == 30, service
        assert during[service].subscriptions >= 30, service
    after = {s.service: s for s in await wait_until_released(bus.nc, replicas)}
    for service in services:
        # nothing the services do not count themselves was left behind either
        assert after[service].process_subscriptions == warm[service].process_subscriptions
        # a few tasks come and go with the connection (pings, publish acks); a leak of one
        # per session would be 30
        assert after[service].process_tasks <= warm[service].process_tasks + 5, service
    assert {after[s].served_total for s in ("stt", "tts", "agent-runner")} == {35}
    assert after["tool-executor"].served_total >= 35
    await log.close()


async def converse(bus: Bus, log: EventLog, n: int) -> dict[str, ServiceStatus]:
    """``n`` voice sessions at once: greeting, a typed turn through the tool-executor with a
    spoken reply, audio in for the listener; the status while they are open; then the end."""
    sessions = await asyncio.gather(
        *(open_session(bus, "tool-lab-agent", TEST_SECRET, audio=True) for _ in range(n))
    )
    sids = [s.session_id for s in sessions]
    assert all(s.stt and s.tts and s.runner for s in sessions)

    def turns(k: int) -> Callable[[], bool]:
        return lambda: all(len(log.of(s, "agent.turn_done")) >= k for s in sids)

    assert await log.wait_until(turns(1))  # every greeting
    for sid in sids:
        await bus.emit(sid, UserText(text="please add"))
    assert await log.wait_until(turns(2))
    sound = speech_pcm("please add two and three", ms_per_char=40)
    await asyncio.gather(*(stream(bus, sid, sound) for sid in sids))
    during: dict[str, ServiceStatus] = {}
    for service in ("stt", "tts", "agent-runner"):
        # one replica each: wait for its answer (a busy replica may take seconds), not 1 s
        [during[service]] = await gather_status(bus.nc, service, expect=1, timeout=60)
        assert set(sids) <= set(during[service].sessions), service
    results = [e.payload for sid in sids for e in log.of(sid, "tool.result")]
    assert len(results) == n and all(isinstance(r, ToolResult) and r.ok for r in results)
    for sid in sids:
        await end_session(bus, sid, EndReason.CLIENT)
    return during


async def stream(bus: Bus, session_id: str, pcm: bytes) -> None:
    """Audio in, a second of silence after it, at about ten times real time."""
    for i, frame in enumerate(audio.padded_frames(pcm + b"\x00" * 32_000)):
        headers = audio.AudioFrame(pcm=frame, seq=i, ts_us=0).headers()
        await bus.nc.publish(subjects.audio_in(session_id), frame, headers=headers)
        if i % 10 == 9:
            await asyncio.sleep(0.02)


async def test_a_draining_runner_finishes_its_sessions_before_it_exits(
    bus: Bus, recorder_env: dict[str, str], start_service: Start
) -> None:
    env = {
        **recorder_env,
        "STELLA_AGENT_PATH": str(ROOT / "examples"),
        "STELLA_AGENT_NAME": "echo-drain",
        "STELLA_AGENT": "demo_agents.echo:EchoAgent",
        "STELLA_DRAIN_TIMEOUT_S": "60",
    }
    a, b = start_service("agent-runner", env), start_service("agent-runner", env)
    convos = [await Conversation.open(bus, "echo-drain") for _ in range(10)]
    on_a = [c for c in convos if c.session.runner == name("agent-runner", a)]
    assert on_a and len(on_a) < 10
    assert a.process is not None
    a.process.send_signal(signal.SIGTERM)
    statuses = await wait_until_draining(bus.nc, "agent-runner", f"{HOST}-{a.pid}", 2)
    [draining] = [s for s in statuses if s.draining]
    assert draining.pid == a.pid and len(draining.sessions) == len(on_a)
    # new sessions go to the other runner; the draining one still answers its own
    later = [await Conversation.open(bus, "echo-drain") for _ in range(4)]
    assert {c.session.runner for c in later} == {name("agent-runner", b)}
    for c in on_a:
        await c.turn_done()
        assert await c.say("still there?") == "echo: still there?"
    await asyncio.sleep(1.0)
    assert a.process.poll() is None  # sessions are open: it waits for them
    for c in on_a:
        await end_session(bus, c.session.session_id, EndReason.CLIENT)
    assert await asyncio.to_thread(a.process.wait, 20) == 0  # and leaves once they ended
    for c in convos + later:
        await end_session(bus, c.session.session_id, EndReason.CLIENT)
        await c.close()
    await wait_until_released(bus.nc, {"agent-runner": 1})


async def test_a_draining_tool_executor_answers_the_calls_it_has(
    bus: Bus, recorder_env: dict[str, str], start_service: Start
) -> None:
    env = {
        **recorder_env,
        "STELLA_TOOL_MODULES": "tests.support.tools",
        "STELLA_AGENT_PATH": str(ROOT),
        "STELLA_DRAIN_TIMEOUT_S": "20",
    }
    a, b = start_service("tool-executor", env), start_service("tool-executor", env)

    async def call(seconds: float) -> ToolOutcome:
        invocation = ToolInvocation(
            session_id="s-tools",
            call_id=f"call-{new_id().hex}",
            name="pause",
            arguments={"seconds": seconds},
            deadline_ms=20_000,
        )
        reply = await bus.nc.request(
            subjects.tool("pause"), invocation.model_dump_json().encode(), timeout=25
        )
        return ToolOutcome.model_validate_json(reply.data)

    slow: list[asyncio.Task[ToolOutcome]] = []
    for _ in range(12):  # slow calls until both executors are busy with some
        slow.append(asyncio.create_task(call(3.0)))
        await asyncio.sleep(0.05)
        busy = await gather_status(bus.nc, "tool-executor", expect=2)
        if len(busy) == 2 and all(s.tasks for s in busy):
            break
    assert all(s.tasks for s in busy) and all(s.sessions == ["s-tools"] for s in busy), busy
    assert a.process is not None
    a.process.send_signal(signal.SIGTERM)
    # it says it drains only once it has asked the server to stop routing calls to it
    await wait_until_draining(bus.nc, "tool-executor", f"{HOST}-{a.pid}", 2)
    quick = await asyncio.gather(*(call(0.01) for _ in range(6)))
    assert {o.executed_by for o in quick} == {name("tool-executor", b)}  # nothing new for a
    outcomes = await asyncio.gather(*slow)
    assert all(o.ok and o.result == {"waited": 3.0} for o in outcomes)
    assert {o.executed_by for o in outcomes} == {name("tool-executor", a), name("tool-executor", b)}
    assert await asyncio.to_thread(a.process.wait, 20) == 0
    await wait_until_released(bus.nc, {"tool-executor": 1})

    # past its drain deadline an executor still answers: the call could not finish
    c = start_service("tool-executor", {**env, "STELLA_DRAIN_TIMEOUT_S": "0.5"})
    b.stop()
    cut = asyncio.create_task(call(10.0))

    async def running() -> bool:  # the call has reached c before c is told to stop
        return any(s.tasks for s in await gather_status(bus.nc, "tool-executor", expect=1))

    await until(running, "the 10 s call to be running")
    assert c.process is not None
    c.process.send_signal(signal.SIGTERM)
    outcome = await cut
    assert not outcome.ok and outcome.error is not None
    assert outcome.error.kind is ToolErrorKind.UNAVAILABLE
    assert outcome.executed_by == name("tool-executor", c)


async def test_a_session_end_stops_its_synthesis_streams(
    bus: Bus, env: dict[str, str], start_service: Start
) -> None:
    """``stella.tts.synthesize`` is stateless, but what it does for a session still ends
    with the session: the rest of a long reply is not synthesized for nobody."""
    start_service("tts", env)
    sid = str(new_id())
    text = " ".join(f"This is sentence number {i} of a very long answer." for i in range(80))
    chunks: asyncio.Queue[Msg] = asyncio.Queue()

    async def collect(msg: Msg) -> None:
        chunks.put_nowait(msg)

    inbox = bus.nc.new_inbox()
    await bus.nc.subscribe(inbox, cb=collect)
    request = SynthesisRequest(session_id=sid, text=text)
    await bus.nc.publish(subjects.tts_synthesize(), request.model_dump_json().encode(), reply=inbox)
    first = await asyncio.wait_for(chunks.get(), 10)
    assert first.data  # audio is coming
    [during] = await gather_status(bus.nc, "tts", expect=1)
    assert during.sessions == [sid] and during.tasks == 1
    await end_session(bus, sid, EndReason.CLIENT)
    received = [first]
    while not (received[-1].headers or {}).get(HEADER_FINAL):
        received.append(await asyncio.wait_for(chunks.get(), 10))
    assert received[-1].headers[HEADER_ERROR] == "interrupted"  # type: ignore[index]
    assert len(received) - 1 < 80  # far from every sentence was synthesized
    await wait_until_released(bus.nc, {"tts": 1})
