"""The event store against the real embedded ClickHouse engine (chdb)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from stella_contracts import (
    AgentText,
    Envelope,
    EnvelopeFactory,
    SttTranscript,
    SttVad,
    ToolCall,
    UserText,
    VadState,
)
from stella_services.recorder.sql import NotReadOnly
from stella_services.recorder.store import EventStore, event_row


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[EventStore]:
    s = EventStore(f"chdb://{tmp_path / 'ch'}")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


def rows(envs: list[Envelope]) -> list[tuple[object, ...]]:
    return [event_row(e, e.model_dump_json()) for e in envs]


async def test_migrations_are_applied_once(tmp_path: Path) -> None:
    first = EventStore(f"chdb://{tmp_path / 'ch'}")
    assert await first.open() == ["0001_events"]
    await first.close()
    again = EventStore(f"chdb://{tmp_path / 'ch'}")
    assert await again.open() == []
    result = await again.query("SELECT version FROM stella.schema_migrations", 10)
    assert [list(r) for r in result.rows] == [["0001_events"]]
    await again.close()


async def test_history_orders_limits_and_filters(store: EventStore) -> None:
    f = EnvelopeFactory("test", "1")
    envs = [
        f.wrap("s1", UserText(text="hello")),
        f.wrap("s1", SttVad(state=VadState.SPEECH_ENDED, audio_ms=900)),
        f.wrap("s1", SttTranscript(text="make a task", is_final=True)),
        f.wrap("s1", ToolCall(call_id="c", name="create_task", arguments={"title": "x"})),
        f.wrap("s1", AgentText(text="Done.")),
        f.wrap("other", UserText(text="not mine")),
    ]
    await store.insert(rows(list(reversed(envs))))  # insertion order must not matter

    chat = await store.history("s1", 100, include_debug=False)
    assert [(m.role, m.message_type, m.content) for m in chat] == [
        ("user", "user_text", "hello"),
        ("user", "transcript", "make a task"),
        ("assistant", "agent_text", "Done."),
    ]
    assert chat[0].id == str(envs[0].id)
    assert Envelope.model_validate_json(chat[0].envelope) == envs[0]

    full = await store.history("s1", 100, include_debug=True)
    assert [m.message_type for m in full] == [
        "user_text",
        "stt.vad",
        "transcript",
        "tool.call",
        "agent_text",
    ]
    newest_two = await store.history("s1", 2, include_debug=True)
    assert [m.message_type for m in newest_two] == ["tool.call", "agent_text"]
    assert await store.history("nobody", 100, include_debug=True) == []
    with pytest.raises(ValueError, match="between 1 and 500"):
        await store.history("s1", 501, include_debug=False)


async def test_same_timestamp_orders_by_id(store: EventStore) -> None:
    f = EnvelopeFactory("test", "1")
    a = f.wrap("s2", UserText(text="first"))
    b = f.wrap("s2", AgentText(text="second"))
    b = b.model_copy(update={"ts": a.ts})
    await store.insert(rows([b, a]))
    assert [m.content for m in await store.history("s2", 10, False)] == ["first", "second"]


async def test_a_duplicate_insert_reads_once(store: EventStore) -> None:
    env = EnvelopeFactory("test", "1").wrap("s3", UserText(text="once"))
    await store.insert(rows([env]))
    await store.insert(rows([env]))  # e.g. a replay outside the de-duplication window
    assert [m.content for m in await store.history("s3", 10, False)] == ["once"]
    assert await store.existing_ids([env.id]) == {str(env.id)}


async def test_query_reads_and_refuses_writes(store: EventStore) -> None:
    f = EnvelopeFactory("test", "1")
    env = f.wrap("s4", UserText(text="x"))
    env = env.model_copy(update={"ts": env.ts - timedelta(seconds=1)})
    await store.insert(rows([env]))
    result = await store.query(
        "SELECT session_id, type, JSONExtractString(payload, 'text') AS text FROM stella.events",
        10,
    )
    assert result.columns == ["session_id", "type", "text"]
    assert [list(r) for r in result.rows] == [["s4", "user.text", "x"]]
    limited = await store.query("SELECT number FROM system.numbers LIMIT 50", 10)
    assert len(limited.rows) == 10 and limited.truncated
    with pytest.raises(NotReadOnly):
        await store.query("DROP TABLE stella.events", 10)
    # the engine itself runs analytics read-only, even if the guard were bypassed
    with pytest.raises(Exception, match="readonly"):
        store._query("CREATE TABLE stella.x (a UInt8) ENGINE = Memory", 10)
