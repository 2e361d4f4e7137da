"""The recorder as a real process on real NATS: gRPC history, analytics, dead letters."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from stella_contracts import (
    AgentText,
    DeadLetter,
    Debug,
    Envelope,
    SttTranscript,
    ToolCall,
    ToolResult,
    UserText,
    subjects,
)
from stella_contracts.proto import history_pb2
from stella_services.runtime import tokens
from stella_services.runtime.bus import Bus
from tests.support.history import TEST_SECRET, HistoryClient
from tests.support.processes import ServiceProcess

Start = Callable[[str, dict[str, str]], ServiceProcess]


@pytest.fixture
def recorder(recorder_env: dict[str, str], start_service: Start) -> HistoryClient:
    start_service("recorder", recorder_env)
    client = HistoryClient(recorder_env["STELLA_HISTORY_ADDR"])
    yield client  # type: ignore[misc]
    client.close()


async def emit_conversation(bus: Bus, sid: str) -> list[Envelope]:
    sent = []
    for event in (
        UserText(text="Please create a task to buy milk"),
        ToolCall(call_id="call_1", name="create_task", arguments={"title": "Buy milk"}),
        ToolResult(call_id="call_1", name="create_task", ok=True, result={"task_id": 1}),
        SttTranscript(text="and call mom", is_final=False),
        SttTranscript(text="And call mom.", is_final=True),
        AgentText(text="Done: task 1 created.", turn_id="t1"),
        Debug(message="llm took 420 ms"),
    ):
        sent.append(await bus.emit(sid, event))
    return sent


def count(client: HistoryClient, sid: str) -> str:
    return f"SELECT count() FROM stella.events WHERE session_id = '{sid}'"


async def test_get_chat_history_field_by_field(bus: Bus, recorder: HistoryClient, uid: str) -> None:
    sid = f"hist-{uid}"
    sent = await emit_conversation(bus, sid)
    assert recorder.wait_for(count(recorder, sid), len(sent)) == len(sent)

    messages = recorder.history(sid)
    assert [(m.role, m.message_type, m.content) for m in messages] == [
        ("user", "user_text", "Please create a task to buy milk"),
        ("user", "transcript", "And call mom."),
        ("assistant", "agent_text", "Done: task 1 created."),
    ]
    first = messages[0]
    assert first.id == str(sent[0].id)
    stamp = datetime.fromisoformat(first.timestamp.replace("Z", "+00:00"))
    assert stamp == sent[0].ts
    assert first.timestamp.endswith("Z")
    assert json.loads(first.envelope) == json.loads(sent[0].to_json())

    debug = recorder.history(sid, include_debug=True)
    assert [m.message_type for m in debug] == [
        "user_text",
        "tool.call",
        "tool.result",
        "transcript_partial",
        "transcript",
        "agent_text",
        "debug",
    ]
    assert [m.role for m in debug] == [
        "user",
        "system",
        "system",
        "user",
        "user",
        "assistant",
        "system",
    ]
    assert debug[1].content == 'create_task({"title":"Buy milk"})'
    timestamps = [m.timestamp for m in debug]
    assert timestamps == sorted(timestamps)

    assert [m.content for m in recorder.history(sid, limit=2)] == [
        "And call mom.",
        "Done: task 1 created.",
    ]
    assert [m.message_type for m in recorder.history(sid, limit=1, include_debug=True)] == ["debug"]
    assert recorder.history(f"nobody-{uid}") == []


@pytest.mark.parametrize("limit", [0, -5, 501])
async def test_limit_out_of_bounds_is_invalid_argument(recorder: HistoryClient, limit: int) -> None:
    with pytest.raises(grpc.RpcError) as info:
        recorder.history("any", limit=limit)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "between 1 and 500" in (info.value.details() or "")


async def test_limit_500_is_allowed(bus: Bus, recorder: HistoryClient, uid: str) -> None:
    sid = f"big-{uid}"
    futures = [await bus.publish_nowait(bus.wrap(sid, UserText(text=f"m{i}"))) for i in range(520)]
    await asyncio.gather(*futures)
    assert recorder.wait_for(count(recorder, sid), 520) == 520
    got = recorder.history(sid, limit=500)
    assert len(got) == 500
    assert got[0].content == "m20" and got[-1].content == "m519"
    assert len(recorder.history(sid)) == 100  # the default


async def test_query_reads_and_refuses(bus: Bus, recorder: HistoryClient, uid: str) -> None:
    sid = f"q-{uid}"
    await emit_conversation(bus, sid)
    assert recorder.wait_for(count(recorder, sid), 7) == 7
    reply = recorder.query(
        f"SELECT type, count() AS n FROM stella.events WHERE session_id = '{sid}' "
        "GROUP BY type ORDER BY type"
    )
    assert [(c.name, c.type) for c in reply.columns] == [
        ("type", "LowCardinality(String)"),
        ("n", "UInt64"),
    ]
    rows = {r.values[0].string_value: r.values[1].number_value for r in reply.rows}
    assert rows == {
        "agent.text": 1,
        "debug": 1,
        "stt.transcript": 2,
        "tool.call": 1,
        "tool.result": 1,
        "user.text": 1,
    }
    for bad, why in [
        ("DELETE FROM stella.events WHERE 1", "only read queries"),
        ("SELECT * FROM nowhere.table", "nowhere"),
    ]:
        with pytest.raises(grpc.RpcError) as info:
            recorder.query(bad)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert why in (info.value.details() or "")


async def test_malformed_message_goes_to_dead_letter_and_recording_goes_on(
    bus: Bus, recorder: HistoryClient, uid: str
) -> None:
    sid = f"dl-{uid}"
    letters: asyncio.Queue[DeadLetter] = asyncio.Queue()

    async def on_letter(msg: object) -> None:
        letters.put_nowait(DeadLetter.model_validate_json(msg.data))  # type: ignore[attr-defined]

    sub = await bus.nc.subscribe(subjects.deadletter("recorder"), cb=on_letter)
    await bus.emit(sid, UserText(text="before"))
    await bus.js.publish(
        subjects.session_event(sid, "user.text"), b'{"this is": "not an envelope"}'
    )
    wrong_place = bus.wrap(sid, UserText(text="misfiled")).to_json()
    await bus.js.publish(subjects.session_event(sid, "agent.text"), wrong_place)
    await bus.emit(sid, UserText(text="after"))

    got = [await asyncio.wait_for(letters.get(), 15) for _ in range(2)]
    await sub.unsubscribe()
    assert {g.service for g in got} == {"recorder"}
    assert got[0].subject == subjects.session_event(sid, "user.text")
    assert "unknown event type None" in got[0].reason
    assert got[0].data == b'{"this is": "not an envelope"}'
    assert got[1].subject == subjects.session_event(sid, "agent.text")
    assert "arrived on" in got[1].reason
    assert recorder.wait_for(count(recorder, sid), 2) == 2
    assert [m.content for m in recorder.history(sid)] == ["before", "after"]


async def test_reflection_and_health(recorder: HistoryClient) -> None:
    reflect = reflection_pb2_grpc.ServerReflectionStub(recorder.channel)
    replies = reflect.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    names = {s.name for r in replies for s in r.list_services_response.service}
    assert "stella.history.v1.HistoryService" in names
    health = health_pb2_grpc.HealthStub(recorder.channel)
    status = health.Check(
        health_pb2.HealthCheckRequest(service="stella.history.v1.HistoryService"), timeout=5
    )
    assert status.status == health_pb2.HealthCheckResponse.SERVING


async def test_history_is_private_to_its_session(
    bus: Bus, recorder: HistoryClient, recorder_env: dict[str, str], uid: str
) -> None:
    mine, theirs = f"priv-a-{uid}", f"priv-b-{uid}"
    await bus.emit(mine, UserText(text="my secret"))
    await bus.emit(theirs, UserText(text="their secret"))
    assert recorder.wait_for(count(recorder, theirs), 1) == 1
    addr = recorder_env["STELLA_HISTORY_ADDR"]

    own = HistoryClient(addr, tokens.mint(TEST_SECRET, mine, tokens.Scope.HISTORY, 60))
    assert [m.content for m in own.history(mine)] == ["my secret"]
    cases = [
        (HistoryClient(addr, "not-a-token"), grpc.StatusCode.UNAUTHENTICATED, "invalid token"),
        (
            HistoryClient(addr, tokens.mint(TEST_SECRET, mine, tokens.Scope.HISTORY, -5)),
            grpc.StatusCode.UNAUTHENTICATED,
            "expired",
        ),
        (
            HistoryClient(
                addr,
                tokens.mint(
                    "another-platform-secret-0123456789-abcdef", mine, tokens.Scope.HISTORY, 60
                ),
            ),
            grpc.StatusCode.UNAUTHENTICATED,
            "invalid token",
        ),
        (own, grpc.StatusCode.PERMISSION_DENIED, "not"),
    ]
    for client, code, text in cases:
        with pytest.raises(grpc.RpcError) as info:
            client.history(theirs)
        assert info.value.code() == code and text in (info.value.details() or "")
    with pytest.raises(grpc.RpcError) as info:
        recorder.stub.GetChatHistory(history_pb2.GetChatHistoryRequest(session_id=mine), timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "authorization" in (info.value.details() or "")
    # a session token cannot run analytics
    with pytest.raises(grpc.RpcError) as info:
        own.query("SELECT 1")
    assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
    for client, _, _ in cases:
        client.close()
