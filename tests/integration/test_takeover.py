"""Crash-proof calls: two replicas each of stt, tts and the agent's runner; one voice call;
after a turn the replica serving the call in each role is SIGKILLed in turn, and every time
another replica takes the session over (its lease lapsed) and the user's next spoken turn is
answered — by the guide's ``MyCustomAgent`` (state in ``self.history``) and by a
``process()`` agent (history from the recorder), both remembering what was said before the
kill and neither greeting twice."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import ClientConnection

from stella_contracts import AgentText, Envelope, SessionClaimed, TtsDone
from stella_sdk.runtime.replica import GATEWAY_GONE
from stella_services.runtime.bus import Bus
from stella_services.runtime.sessions import open_session
from tests.support.gateway import TEST_API_KEY, GatewayClient, WsTranscript, gateway_url
from tests.support.guide import guide_env
from tests.support.history import TEST_SECRET
from tests.support.processes import ServiceProcess
from tests.support.scripted_openai import Rule, ScriptedOpenAI
from tests.support.speech import silence, speech_pcm, stream_audio
from tests.support.status import gather_status, wait_until_released
from tests.support.voice import VoiceClient
from tests.support.waiting import DEADLINE_S, until

pytestmark = pytest.mark.slow
Start = Callable[[str, dict[str, str]], ServiceProcess]
INTRO = "Nice to meet you, Alice."
REMEMBERED = "Your name is Alice."
FORGOTTEN = "I do not know your name."
AGENTS = {
    "my-custom-agent": "src.agent:MyCustomAgent",  # the guide's agent: state in self.history
    "my-agent": "demo_agents.history_agent:MyAgent",  # process() + get_chat_history()
}


@pytest.fixture
def llm() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI(
        [
            Rule(when_user_contains="Alice", text=INTRO),
            Rule(when_earlier_contains="Alice", text=REMEMBERED),
            Rule(text=FORGOTTEN),
        ]
    ) as server:
        yield server


@pytest.fixture
def replicas(
    recorder_env: dict[str, str], start_service: Start, llm: ScriptedOpenAI, tmp_path: Path
) -> Callable[[str], dict[str, list[ServiceProcess]]]:
    env = {
        **guide_env(recorder_env, llm, tmp_path),
        "CLICKHOUSE_URL": "",
        "STELLA_SECRET": TEST_SECRET,
        "STELLA_DRAIN_TIMEOUT_S": "2",
        "STELLA_STT_PROVIDER": "whisper",
    }

    def start(agent: str) -> dict[str, list[ServiceProcess]]:
        start_service("recorder", env)
        runner = {**env, "STELLA_AGENT": AGENTS[agent]}
        return {
            "stt": [start_service("stt", env) for _ in range(2)],
            "tts": [start_service("tts", env) for _ in range(2)],
            "agent-runner": [start_service("agent-runner", runner) for _ in range(2)],
        }

    return start


def holder(client: VoiceClient, service: str) -> SessionClaimed:
    claims = [e.payload for e in client.of("lifecycle.claimed")]
    return [c for c in claims if isinstance(c, SessionClaimed) and c.service == service][-1]


def process_of(processes: list[ServiceProcess], instance: str) -> ServiceProcess:
    [proc] = [p for p in processes if instance.endswith(f"-{p.pid}")]
    return proc


async def say(bus: Bus, client: VoiceClient, text: str) -> str:
    """Speak ``text``; return the agent's answer to it (its ``agent.text``)."""

    def user_turns() -> list[Envelope]:  # a resumed agent's on_connect is a turn too
        done = client.of("agent.turn_done")
        return [e for e in done if e.payload.turn_id != "connect"]  # type: ignore[attr-defined]

    turns_before = len(user_turns())
    await stream_audio(bus, client.session_id, silence(300) + speech_pcm(text))
    await stream_audio(bus, client.session_id, silence(1500))
    done = await until(lambda: user_turns()[turns_before:], f"the answer to {text!r}")
    turn_id = done[0].payload.turn_id  # type: ignore[attr-defined]
    if any(e.payload.turn_id == turn_id for e in client.of("tts.request")):  # type: ignore[attr-defined]
        await client.said(turn_id)  # spoken to its end before anything is killed
    texts = [
        e.payload.text
        for e in client.of("agent.text")
        if isinstance(e.payload, AgentText) and e.payload.turn_id == turn_id
    ]
    return " ".join(texts)


@pytest.mark.parametrize("agent", sorted(AGENTS))
async def test_a_call_survives_the_kill_of_each_replica_serving_it(
    bus: Bus, replicas: Callable[[str], dict[str, list[ServiceProcess]]], agent: str
) -> None:
    processes = replicas(agent)
    client = await (await VoiceClient(bus, str(uuid.uuid4())).attach()).run_call()
    await open_session(bus, agent, TEST_SECRET, audio=True, session_id=client.session_id)
    await asyncio.wait_for(client.turns.get(), DEADLINE_S)  # the greeting
    if client.of("tts.request"):
        await client.said("connect")  # heard to its end: speaking over it would interrupt it
    greeting = [e for e in client.of("agent.text") if e.payload.turn_id == "connect"]  # type: ignore[attr-defined]
    assert await say(bus, client, "Hello, my name is Alice.") == INTRO

    for service in ("stt", "tts", "agent-runner"):
        served_by = holder(client, service)
        process_of(processes[service], served_by.instance).kill()

        def taker(role: str = service, gone: str = served_by.instance) -> list[SessionClaimed]:
            return [c for c in [holder(client, role)] if c.instance != gone]

        taken = await until(taker, f"another {service} replica taking the session over")
        assert taken[0].resumed and taken[0].handoff_from == served_by.instance
        answer = await say(bus, client, "Do you remember what my name is?")
        assert answer == REMEMBERED, f"after the {service} kill: {answer!r}"

    # nobody greeted twice: the resumed agent's on_connect said nothing
    again = [e for e in client.of("agent.text") if e.payload.turn_id == "connect"]  # type: ignore[attr-defined]
    assert len(again) == len(greeting) >= 1
    await client.hang_up()
    # every reply was spoken to its end, also by the replica that took over
    spoken = [e.payload for e in client.of("tts.done") if isinstance(e.payload, TtsDone)]
    assert not any(d.dropped or d.interrupted for d in spoken), spoken


async def test_a_call_whose_gateway_died_is_let_go_and_never_taken_over(
    bus: Bus, replicas: Callable[[str], dict[str, list[ServiceProcess]]], start_service: Start
) -> None:
    """The gateway holds the call (its connection): SIGKILL it and the call is over. The
    runner ends it (the recording says why) and every replica lets it go; with the runner
    killed too, stt and tts still let it go, and a new replica never revives it."""
    processes = replicas("my-custom-agent")
    gateway_env = {
        **processes["stt"][0].env,
        "STELLA_API_KEYS": TEST_API_KEY,
        "STELLA_GATEWAY_PORT": "0",
    }

    async def call() -> tuple[ServiceProcess, VoiceClient]:
        gateway = start_service("gateway", gateway_env)
        created = await GatewayClient(gateway_url(gateway)).create("my-custom-agent")
        client = await VoiceClient(bus, created["session_id"]).attach()
        return gateway, client  # created: stt, tts and a runner hold it already

    async def holding(client: VoiceClient, service: str) -> str:
        statuses = await gather_status(bus.nc, service, timeout=1.0, expect=2)
        [instance] = [s.instance for s in statuses if client.session_id in s.sessions]
        return instance

    gateway, first = await call()
    gateway.kill()
    ended = await until(lambda: first.of("lifecycle.ended"), "the runner ending the call")
    assert ended[0].payload.detail == GATEWAY_GONE  # type: ignore[attr-defined]
    await wait_until_released(bus.nc, {"stt": 2, "tts": 2, "agent-runner": 2})

    # the gateway and the call's runner and stt replica die at once: whoever sees a lapse
    # before the gateway's lease lapsed may take the call over, but everyone lets it go
    gateway, second = await call()
    gateway.kill()
    for service in ("agent-runner", "stt"):
        process_of(processes[service], await holding(second, service)).kill()
    start_service("stt", processes["stt"][0].env)  # a newcomer that sees the lapsed leases
    await wait_until_released(bus.nc, {"stt": 2, "tts": 2, "agent-runner": 1})


async def test_a_call_moves_between_gateways_and_survives_its_gateways_death(
    bus: Bus, replicas: Callable[[str], dict[str, list[ServiceProcess]]], start_service: Start
) -> None:
    """Two gateways, no affinity: a client that reconnects through the other gateway keeps
    its call (the first lets it go); when the gateway running it is SIGKILLed, the client
    reconnects through the one left with the same media token and the call goes on there.
    Every next spoken turn is answered with what was said before; nobody ends the call."""
    processes = replicas("my-custom-agent")
    gateway_env = {
        **processes["stt"][0].env,
        "STELLA_API_KEYS": TEST_API_KEY,
        "STELLA_GATEWAY_PORT": "0",
    }
    a, b = (start_service("gateway", gateway_env) for _ in range(2))
    created = await GatewayClient(gateway_url(a)).create("my-custom-agent")
    sid = created["session_id"]
    watcher = await VoiceClient(bus, sid).attach()
    seen = WsTranscript()

    async def connect(gateway: ServiceProcess) -> ClientConnection:
        """The call's WebSocket through ``gateway`` (the same media token)."""
        url = created["connect"]["websocket"].split("/v1/")[1]
        ws_base = "ws" + gateway_url(gateway).removeprefix("http")
        return await GatewayClient(gateway_url(gateway)).ws(
            {**created, "connect": {**created["connect"], "websocket": f"{ws_base}/v1/{url}"}}
        )

    async def talk(ws: ClientConnection, text: str) -> str:
        """Speak at the pace of speech; the text of the agent's answer to it."""
        turns = len(seen.of("agent.turn_done"))
        pcm = silence(300) + speech_pcm(text) + silence(1500)
        start = asyncio.get_running_loop().time()
        for n in range(0, len(pcm), 640):
            await ws.send(pcm[n : n + 640])
            pause = start + (n // 640 + 1) * 0.02 - asyncio.get_running_loop().time()
            await asyncio.sleep(max(0.0, pause))
        done = await seen.read_until(
            ws, lambda e: e["type"] == "agent.turn_done" and len(seen.of(e["type"])) > turns
        )
        turn_id = done["payload"]["turn_id"]
        said = [e for e in seen.of("agent.text") if e["payload"]["turn_id"] == turn_id]
        return " ".join(e["payload"]["text"] for e in said)

    async def running(gateway: ServiceProcess) -> list[str]:
        statuses = await gather_status(bus.nc, "gateway", timeout=1.0)
        return [
            s.instance
            for s in statuses
            if sid in s.sessions and s.instance.endswith(f"-{gateway.pid}")
        ]

    ws = await connect(a)
    await seen.read_until(ws, lambda e: e["type"] == "agent.turn_done")  # the greeting
    assert await talk(ws, "Hello, my name is Alice.") == INTRO
    await ws.close()
    ws = await connect(b)  # a's gateway is alive: it hands the call over
    await until(lambda: running(b), "the second gateway running the call")
    assert not await running(a)
    assert await talk(ws, "Do you remember what my name is?") == REMEMBERED

    b.kill()
    ws = await connect(a)  # adopted again once b's lease lapsed
    assert await talk(ws, "Do you remember what my name is?") == REMEMBERED
    assert not watcher.of("lifecycle.ended")
    await ws.send('{"type": "session.end"}')
    await until(lambda: watcher.of("lifecycle.ended"), "the call's end")
    await wait_until_released(bus.nc, {"stt": 2, "tts": 2, "agent-runner": 2})
