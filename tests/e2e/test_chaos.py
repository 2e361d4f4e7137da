"""Chaos: 20 concurrent voice calls through `stella up --cluster 3 --replicas 2` (the guide's
agent; a scripted LLM that calls the guide's `search_database` tool on every turn). During
them one replica each of stt, tts, agent-runner, tool-executor and gateway, and one NATS
node, is SIGKILLed (and restarted by `stella up`). After each kill every call's next spoken
turn is answered; a caller whose gateway died reconnects through the other one. Afterwards
every call's events are in ClickHouse exactly once and no replica holds anything."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from stella_contracts import subjects
from stella_services.runtime.bus import Bus
from stella_services.runtime.nats_server import free_port
from stella_services.runtime.settings import ServiceSettings
from stella_services.runtime.status import gather_status
from tests.support.events import EventLog
from tests.support.gateway import TEST_API_KEY, GatewayClient, WsTranscript
from tests.support.history import TEST_SECRET, HistoryClient
from tests.support.scripted_openai import Rule, ScriptedOpenAI, ToolCallReply
from tests.support.speech import silence, speech_pcm
from tests.support.status import wait_until_released
from tests.support.up import RunningUp, start_up
from tests.support.waiting import DEADLINE_S, until

pytestmark = pytest.mark.slow
CALLS = 20
QUESTION = "Please search the database for my invoices."
ANSWER = "I found two invoices."
SESSION_ROLES = ("stt", "tts", "agent-runner", "gateway")  # those that hold calls


@dataclass
class Call:
    """One caller: speaks over the call's WebSocket, and reconnects through another gateway
    when the one it talks to dies."""

    created: dict[str, Any]
    gateways: list[str]
    seen: WsTranscript = field(default_factory=WsTranscript)
    ws: ClientConnection | None = None

    @property
    def session_id(self) -> str:
        return str(self.created["session_id"])

    async def connect(self) -> None:
        path = "/v1/" + self.created["connect"]["websocket"].split("/v1/", 1)[1]

        async def attempt() -> ClientConnection | None:
            for url in self.gateways:
                connect = {**self.created["connect"], "websocket": "ws" + url[4:] + path}
                try:
                    return await GatewayClient(url).ws({**self.created, "connect": connect})
                except (OSError, ConnectionClosed):
                    continue  # that gateway is down (or not yet back): the next one
            return None

        self.ws = await until(attempt, f"a gateway taking the call {self.session_id}")

    def answers(self) -> list[dict[str, Any]]:
        """The ``agent.turn_done``s of spoken turns (an agent taken over runs a silent
        ``connect`` turn of its own)."""
        done = self.seen.of("agent.turn_done")
        return [e for e in done if e["payload"]["turn_id"] != "connect"]

    def _answered(self, turns: int) -> Callable[[dict[str, Any]], bool]:
        def done(event: dict[str, Any]) -> bool:
            return event["type"] == "agent.turn_done" and len(self.answers()) > turns

        return done

    async def turn(self, pcm: bytes) -> str:
        """Speak ``pcm`` at the pace of speech; the text of the answer (reconnecting and
        speaking again if the gateway went away meanwhile)."""
        while True:
            if self.ws is None:
                await self.connect()
            assert self.ws is not None
            turns = len(self.answers())
            try:
                loop = asyncio.get_running_loop()
                start = loop.time()
                for n in range(0, len(pcm), 640):
                    await self.ws.send(pcm[n : n + 640])
                    await asyncio.sleep(max(0.0, start + (n // 640 + 1) * 0.02 - loop.time()))
                await self.seen.read_until(self.ws, self._answered(turns))
            except ConnectionClosed:
                self.ws = None
                continue
            turn_id = self.answers()[turns]["payload"]["turn_id"]
            said = [e for e in self.seen.of("agent.text") if e["payload"]["turn_id"] == turn_id]
            return " ".join(e["payload"]["text"] for e in said)


@pytest.fixture
def llm() -> Iterator[ScriptedOpenAI]:
    with ScriptedOpenAI(
        [
            Rule(when_tool_result_for="search_database", text=ANSWER),
            Rule(
                when_user_contains="invoices",
                tool_calls=(ToolCallReply("search_database", {"query": "invoices"}),),
            ),
            Rule(text="Could you say that again?"),
        ]
    ) as server:
        yield server


def pids(banner: str, name: str) -> list[int]:
    """The pids `stella up` printed for ``name`` (``stt-1``; a cluster's nats-servers)."""
    if name == "nats-server":
        found = re.search(r"nats-server cluster of \d+ at \S+ \(pids ([\d, ]+)\)", banner)
        assert found is not None, banner
        return [int(p) for p in found.group(1).split(",")]
    found = re.search(rf"{name} ready \(pid (\d+)\)", banner)
    assert found is not None, banner
    return [int(found.group(1))]


@pytest.mark.timeout(2400)  # 20 calls, seven rounds of speech, six kills on two cores
async def test_twenty_calls_survive_a_kill_in_every_role(
    llm: ScriptedOpenAI, tmp_path: Path
) -> None:
    history_addr = f"127.0.0.1:{free_port()}"
    up: RunningUp = await asyncio.to_thread(
        start_up,
        {
            **os.environ,
            **llm.env(),
            "STELLA_DATA_DIR": str(tmp_path / "stella"),
            "STELLA_HISTORY_ADDR": history_addr,
            "STELLA_API_KEYS": TEST_API_KEY,
            "STELLA_SECRET": TEST_SECRET,
            "CLICKHOUSE_URL": "",
            "COLUMNS": "250",
        },
        tmp_path,
        600,
        ["--cluster", "3", "--replicas", "2"],
    )
    err = tmp_path / "up.err"
    try:
        found = re.search(r"gateways\s+(\S+), (\S+)", up.banner)
        nats = re.search(r"nats-server cluster of \d+ at (\S+)", up.banner)
        assert found is not None and nats is not None, up.banner
        gateways = [found.group(1), found.group(2)]
        bus = await Bus.connect(ServiceSettings(nats_url=nats.group(1), instance="chaos"), "test")
        log = await EventLog(bus).attach()
        question = silence(300) + speech_pcm(QUESTION) + silence(1500)

        calls = []
        for n in range(CALLS):  # half the calls on each gateway
            mine = gateways[n % 2 :] + gateways[: n % 2]
            created = await GatewayClient(mine[0]).create("my-custom-agent")
            calls.append(Call(created, mine))
        sids = {c.session_id for c in calls}
        for call in calls:
            await call.connect()
        await asyncio.gather(
            *(
                c.seen.read_until(c.ws, lambda e: e["type"] == "agent.turn_done")  # type: ignore[arg-type]
                for c in calls
            )
        )  # every greeting

        async def every_call_answers(after: str) -> None:
            answers = await asyncio.gather(*(c.turn(question) for c in calls))
            wrong = [(c.session_id, a) for c, a in zip(calls, answers, strict=True) if a != ANSWER]
            assert not wrong, f"after {after}: {wrong}"

        async def held_by_live_replicas(role: str, dead: str) -> bool:
            statuses = await gather_status(bus.nc, role, timeout=1.0, expect=2)
            held = {s for st in statuses if st.instance != dead for s in st.sessions}
            return len(statuses) == 2 and sids <= held

        async def restarted(name: str, offset: int) -> int:
            """Wait for `stella up` to say it restarted ``name``; the offset past that."""

            def said() -> re.Match[str] | None:
                return re.compile(rf"{name} restarted \(pid \d+\)").search(err.read_text(), offset)

            return int((await until(said, f"stella up restarting {name}")).end())

        await every_call_answers("the greeting")
        offset = len(err.read_text())
        for victim in ("stt-1", "tts-1", "agent-runner-1", "tool-executor-1", "gateway-1"):
            [pid] = pids(up.banner, victim)
            os.kill(pid, signal.SIGKILL)
            role = victim.rsplit("-", 1)[0]
            offset = await restarted(victim, offset)
            if role == "gateway":  # its callers reconnect (the other gateway adopts the call)
                await every_call_answers(f"the kill of {victim}")
            elif role in SESSION_ROLES:  # taken over before anyone speaks again
                dead = f"-{pid}"
                await until(
                    lambda r=role, d=dead: held_by_live_replicas(r, d),  # type: ignore[misc]
                    f"the calls of {victim} taken over",
                )
            if role != "gateway":
                await every_call_answers(f"the kill of {victim}")
        node = pids(up.banner, "nats-server")[0]
        os.kill(node, signal.SIGKILL)
        await restarted("nats-server-1", offset)
        await every_call_answers("the kill of a NATS node")

        for call in calls:
            assert call.ws is not None
            await call.ws.send('{"type": "session.end"}')
        assert await log.wait_until(lambda: all(log.of(s, "lifecycle.ended") for s in sids))
        await wait_until_released(
            bus.nc, {"stt": 2, "tts": 2, "agent-runner": 2, "gateway": 2}, DEADLINE_S
        )
        # every event once in ClickHouse: as many rows as distinct ids, as many as the event
        # stream holds (it keeps each once, by Nats-Msg-Id), and none that was seen missing
        history = HistoryClient(history_addr)
        try:
            for sid in sids:
                info = await bus.js.stream_info(
                    subjects.EVENTS_STREAM, subjects_filter=subjects.session_events(sid)
                )
                kept = sum((info.state.subjects or {}).values())
                stored = await asyncio.to_thread(
                    history.wait_for,
                    f"SELECT count() FROM stella.events WHERE session_id = '{sid}'",
                    kept,
                    DEADLINE_S,
                )
                unique = history.scalar(
                    f"SELECT uniqExact(id) FROM stella.events WHERE session_id = '{sid}'"
                )
                seen = len({e.id for e in log.by_session[sid]})
                assert stored == unique == kept >= seen, (sid, stored, unique, kept, seen)
        finally:
            history.close()
        await log.close()
        await bus.close()
    finally:
        assert up.stop() == 0, err.read_text()[-3000:]
