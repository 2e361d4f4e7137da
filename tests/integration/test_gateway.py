"""The gateway's REST API and WebSocket against real NATS, recorder (ClickHouse) and an agent
runner: auth, validation, session lifecycle, text over the WebSocket."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from stella_services.runtime import tokens
from stella_services.runtime.nats_server import free_port
from tests.support.gateway import TEST_API_KEY, GatewayClient, WsTranscript, gateway_url
from tests.support.history import TEST_SECRET, HistoryClient
from tests.support.processes import ServiceProcess
from tests.support.waiting import DEADLINE_S, until

ROOT = Path(__file__).resolve().parents[2]
AGENT = "echo-agent"


@pytest.fixture(scope="module")
def platform(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """recorder + echo agent runner + gateway (idle timeout 4 s, disconnect grace 0.5 s)."""
    tmp = tmp_path_factory.mktemp("gateway")
    env = {
        "NATS_URL": nats_url,
        "STELLA_DATA_DIR": str(tmp / "data"),
        "STELLA_HISTORY_ADDR": f"127.0.0.1:{free_port()}",
        "STELLA_CONSUMER": f"recorder-{tmp.name}",
        "CLICKHOUSE_URL": "",
        "STELLA_SECRET": TEST_SECRET,
        "STELLA_AGENT_PATH": str(ROOT / "examples"),
    }
    started: list[ServiceProcess] = []
    try:
        for name, extra in (
            ("recorder", {}),
            (
                "agent-runner",
                {"STELLA_AGENT": "demo_agents.echo:EchoAgent", "STELLA_AGENT_NAME": AGENT},
            ),
            (
                "gateway",
                {
                    "STELLA_API_KEYS": TEST_API_KEY,
                    "STELLA_GATEWAY_PORT": "0",
                    "STELLA_IDLE_TIMEOUT_S": "4",
                    "STELLA_DISCONNECT_GRACE_S": "0.5",
                },
            ),
        ):
            started.append(ServiceProcess(name, {**env, **extra}, tmp / "logs").start())
        yield {"env": env, "gateway": GatewayClient(gateway_url(started[-1]), process=started[-1])}
    finally:
        for proc in reversed(started):
            proc.stop()


@pytest.fixture
def gw(platform: dict[str, Any]) -> GatewayClient:
    client: GatewayClient = platform["gateway"]
    return client


@pytest.fixture
def history(platform: dict[str, Any]) -> HistoryClient:
    return HistoryClient(platform["env"]["STELLA_HISTORY_ADDR"])


# --- auth ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer sk-stella-wrong"},
        {"X-API-Key": "nope"},
        {"Authorization": "Basic abc"},
    ],
)
async def test_without_a_valid_key_the_api_answers_401(
    gw: GatewayClient, headers: dict[str, str]
) -> None:
    async with httpx.AsyncClient(base_url=gw.url, headers=headers) as client:
        for method, path in (
            ("POST", "/v1/sessions"),
            ("GET", "/v1/sessions"),
            ("GET", "/v1/sessions/x"),
        ):
            response = await client.request(method, path, json={"agent": AGENT})
            assert response.status_code == 401, (method, path, response.text)
            body = response.json()["error"]
            assert body["code"] == "unauthorized" and body["message"]


async def test_x_api_key_header_is_accepted(gw: GatewayClient) -> None:
    async with httpx.AsyncClient(base_url=gw.url, headers={"X-API-Key": TEST_API_KEY}) as client:
        response = await client.get("/v1/sessions", params={"limit": 1})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({}, "body.agent"),
        ({"agent": 5}, "body.agent"),
        ({"agent": "has space"}, "body.agent"),
        ({"agent": AGENT, "metadata": {"k": 1}}, "body.metadata.k"),
        ({"agent": AGENT, "surprise": True}, "body.surprise"),
        ({"agent": AGENT, "audio": "loud"}, "body.audio"),
    ],
)
async def test_bad_bodies_are_422_with_a_message_naming_the_field(
    gw: GatewayClient, body: dict[str, Any], where: str
) -> None:
    async with gw.http() as client:
        response = await client.post("/v1/sessions", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert where in error["message"], error["message"]


async def test_a_body_that_is_not_json_is_422(gw: GatewayClient) -> None:
    async with gw.http() as client:
        response = await client.post(
            "/v1/sessions", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


async def test_a_body_over_the_limit_is_413_declared_or_chunked(gw: GatewayClient) -> None:
    """5 MB against the default 1 MiB limit: refused by its Content-Length before it is read,
    and refused as it streams when it comes chunked without a length."""
    big = b'{"agent": "' + b"x" * (5 << 20) + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 64 << 10):
            yield big[start : start + (64 << 10)]

    async with gw.http() as client:
        declared = await client.post(
            "/v1/sessions", content=big, headers={"Content-Type": "application/json"}
        )
        chunked = await client.post(
            "/v1/sessions", content=chunks(), headers={"Content-Type": "application/json"}
        )
        small = await client.post("/v1/sessions", json={"agent": ""})
    for response in (declared, chunked):
        assert response.status_code == 413, response.text
        error = response.json()["error"]
        assert error["code"] == "too_large" and str(1 << 20) in error["message"]
    assert small.status_code == 422  # a body under the limit is read and validated as before


async def test_an_agent_with_no_runner_is_404_and_the_session_is_ended(gw: GatewayClient) -> None:
    async with gw.http() as client:
        response = await client.post(
            "/v1/sessions", json={"agent": "nobody-runs-this", "audio": False}
        )
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "agent_not_found" and "nobody-runs-this" in error["message"]


# --- media tokens ------------------------------------------------------------------------


async def _ws_refused(url: str) -> str:
    """The WebSocket is refused before it opens (HTTP 403) or closed at once with 1008."""
    from websockets.asyncio.client import connect

    try:
        async with connect(url) as ws:
            await asyncio.wait_for(ws.recv(), DEADLINE_S)
    except InvalidStatus as exc:
        return f"http {exc.response.status_code}"
    except ConnectionClosed as exc:
        assert exc.rcvd is not None and exc.rcvd.code == 1008, exc
        return exc.rcvd.reason
    raise AssertionError("the WebSocket was accepted")


async def test_a_token_for_session_a_cannot_open_session_b(gw: GatewayClient) -> None:
    a = await gw.create(AGENT, audio=False)
    b = await gw.create(AGENT, audio=False)
    ws_b = b["connect"]["websocket"]
    await _ws_refused(f"{ws_b}?token={a['connect']['token']}")
    async with httpx.AsyncClient(base_url=gw.url) as client:
        response = await client.post(
            f"/v1/sessions/{b['session_id']}/webrtc",
            json={"sdp": "v=0", "type": "offer"},
            headers={"Authorization": f"Bearer {a['connect']['token']}"},
        )
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "forbidden"
    # and A's own token is good for A
    ws = await gw.ws(a, audio=False)
    await ws.send(json.dumps({"type": "user.text", "text": "ping"}))
    seen = WsTranscript()
    await seen.read_until(ws, lambda e: e["type"] == "agent.text")
    await ws.close()


async def test_expired_forged_and_missing_tokens_are_refused(gw: GatewayClient) -> None:
    created = await gw.create(AGENT, audio=False)
    sid = created["session_id"]
    ws_url = created["connect"]["websocket"]
    expired = tokens.mint(TEST_SECRET, sid, tokens.Scope.MEDIA, -120)
    forged = tokens.mint("another-secret-of-at-least-32-characters!!", sid, tokens.Scope.MEDIA, 60)
    history_scope = tokens.mint(TEST_SECRET, sid, tokens.Scope.HISTORY, 60)
    for token in (expired, forged, history_scope):
        await _ws_refused(f"{ws_url}?token={token}")
    await _ws_refused(ws_url)
    async with httpx.AsyncClient(base_url=gw.url) as client:
        response = await client.post(
            f"/v1/sessions/{sid}/webrtc",
            json={"sdp": "v=0", "type": "offer"},
            headers={"Authorization": f"Bearer {expired}"},
        )
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


# --- sessions REST -----------------------------------------------------------------------


async def test_create_get_list_end_and_transcript(
    gw: GatewayClient, history: HistoryClient
) -> None:
    created = await gw.create(AGENT, audio=False, metadata={"customer": "c-42"})
    sid = created["session_id"]
    assert created["status"] == "active" and created["agent"] == AGENT
    assert created["room_name"] and created["expires_at"]
    assert created["connect"]["webrtc_offer"].endswith(f"/v1/sessions/{sid}/webrtc")
    assert created["connect"]["livekit"] is None  # no LiveKit configured here

    ws = await gw.ws(created, audio=False)
    seen = WsTranscript()
    await seen.read_until(ws, lambda e: e["type"] == "agent.turn_done")  # the greeting
    await ws.send(json.dumps({"type": "user.text", "text": "the sky is green"}))
    await seen.read_until(
        ws, lambda e: e["type"] == "agent.text" and "sky is green" in e["payload"]["text"]
    )

    async with gw.http() as client:
        got = (await client.get(f"/v1/sessions/{sid}")).json()
        assert got["status"] == "active" and got["metadata"] == {"customer": "c-42"}
        ended = await client.delete(f"/v1/sessions/{sid}")
        assert ended.status_code == 200 and ended.json()["status"] == "ended"
        assert ended.json()["end_reason"] == "api"
        last = await seen.read_until(ws, lambda e: e["type"] == "lifecycle.ended")
        assert last["payload"]["reason"] == "api"
        again = await client.delete(f"/v1/sessions/{sid}")
        assert again.status_code == 200 and again.json()["status"] == "ended"

        history.wait_for(
            f"SELECT count() FROM stella.events WHERE session_id = '{sid}' "
            "AND type = 'lifecycle.ended'",
            1,
        )
        recorded = (await client.get(f"/v1/sessions/{sid}")).json()
        assert recorded["status"] == "ended" and recorded["end_reason"] == "api"
        transcript = (await client.get(f"/v1/sessions/{sid}/transcript")).json()["messages"]
        said = [(m["role"], m["content"]) for m in transcript]
        assert ("user", "the sky is green") in said
        assert any(r == "assistant" and "sky is green" in c for r, c in said), said
        missing = await client.get("/v1/sessions/no-such-session")
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "session_not_found"


async def test_sessions_are_listed_newest_first_in_pages(
    gw: GatewayClient, history: HistoryClient
) -> None:
    ids = [(await gw.create(AGENT, audio=False))["session_id"] for _ in range(3)]
    history.wait_for(
        "SELECT count() FROM stella.events WHERE type = 'lifecycle.created' AND session_id IN "
        f"({', '.join(repr(i) for i in ids)})",
        3,
    )
    seen: list[str] = []
    cursor = None
    async with gw.http() as client:
        for _ in range(50):
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = (await client.get("/v1/sessions", params=params)).json()
            assert len(page["sessions"]) <= 2
            seen += [s["session_id"] for s in page["sessions"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        bad = await client.get("/v1/sessions", params={"cursor": "!!garbage"})
    assert bad.status_code == 422
    assert len(seen) == len(set(seen)), "a session appeared on two pages"
    assert seen[:3] == ids[::-1], "the newest come first"
    for sid in ids:
        async with gw.http() as client:
            await client.delete(f"/v1/sessions/{sid}")


# --- lifecycle ---------------------------------------------------------------------------


async def test_idle_timeout_ends_a_session(gw: GatewayClient) -> None:
    created = await gw.create(AGENT, audio=False)
    ws = await gw.ws(created, audio=False)
    seen = WsTranscript()
    ended = await seen.read_until(ws, lambda e: e["type"] == "lifecycle.ended")
    assert ended["payload"]["reason"] == "idle_timeout"
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(ws.recv(), DEADLINE_S)
    async with gw.http() as client:
        got = (await client.get(f"/v1/sessions/{created['session_id']}")).json()
    assert got["status"] == "ended" and got["end_reason"] == "idle_timeout"


async def test_activity_keeps_a_session_alive_past_the_idle_timeout(gw: GatewayClient) -> None:
    created = await gw.create(AGENT, audio=False)
    ws = await gw.ws(created, audio=False)
    seen = WsTranscript()
    for n in range(4):  # 4 turns 2 s apart: 8 s, twice the idle timeout
        await ws.send(json.dumps({"type": "user.text", "text": f"turn {n}"}))
        await seen.read_until(ws, lambda e: e["type"] == "agent.turn_done")
        await asyncio.sleep(2)
    assert not seen.of("lifecycle.ended")
    await ws.send(json.dumps({"type": "session.end"}))
    ended = await seen.read_until(ws, lambda e: e["type"] == "lifecycle.ended")
    assert ended["payload"]["reason"] == "client"


async def test_a_client_that_disconnects_ends_its_session(gw: GatewayClient) -> None:
    created = await gw.create(AGENT, audio=False)
    ws = await gw.ws(created, audio=False)
    await ws.close()
    async with gw.http() as client:

        async def ended() -> dict[str, Any] | None:
            got: dict[str, Any] = (await client.get(f"/v1/sessions/{created['session_id']}")).json()
            return got if got["status"] == "ended" else None

        got = await until(ended, "the session to end")
    assert got["end_reason"] == "client"


async def test_bad_websocket_messages_get_errors_and_the_session_goes_on(gw: GatewayClient) -> None:
    created = await gw.create(AGENT, audio=False)
    ws = await gw.ws(created, audio=False)
    seen = WsTranscript()
    await ws.send("not json")
    error = await seen.read_until(ws, lambda e: e["type"] == "error")
    assert error["code"] == "bad_message"
    await ws.send(b"\x00\x01\x02")  # an odd number of bytes is no PCM s16le
    error = await seen.read_until(ws, lambda e: e["type"] == "error")
    assert error["code"] == "bad_audio"
    await ws.send(json.dumps({"type": "user.text", "text": "still here"}))
    await seen.read_until(
        ws, lambda e: e["type"] == "agent.text" and "still here" in e["payload"]["text"]
    )
    await ws.send(json.dumps({"type": "session.end"}))
    await seen.read_until(ws, lambda e: e["type"] == "lifecycle.ended")


async def test_maximum_duration_ends_a_busy_session(platform: dict[str, Any]) -> None:
    """Even with activity every half second, a session ends at STELLA_MAX_DURATION_S."""
    env = platform["env"]
    short = ServiceProcess(
        "gateway",
        {
            **env,
            "STELLA_API_KEYS": TEST_API_KEY,
            "STELLA_GATEWAY_PORT": "0",
            "STELLA_MAX_DURATION_S": "3",
            "STELLA_INSTANCE": "gateway-short",
        },
        Path(env["STELLA_DATA_DIR"]).parent / "logs-short",
    ).start()
    try:
        gw = GatewayClient(gateway_url(short))
        created = await gw.create(AGENT, audio=False)
        assert created["expires_at"]
        ws = await gw.ws(created, audio=False)
        seen = WsTranscript()

        async def chatter() -> None:
            for n in range(20):
                await ws.send(json.dumps({"type": "user.text", "text": f"still talking {n}"}))
                await asyncio.sleep(0.5)

        talking = asyncio.create_task(chatter())
        ended = await seen.read_until(ws, lambda e: e["type"] == "lifecycle.ended")
        talking.cancel()
        assert ended["payload"]["reason"] == "max_duration"
    finally:
        short.stop()
