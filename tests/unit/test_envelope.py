import json
from datetime import UTC, datetime

import pytest

from stella_contracts import (
    AgentText,
    Envelope,
    EnvelopeFactory,
    Event,
    InvalidEnvelope,
    ToolCall,
    UserText,
)


def test_factory_numbers_per_session_and_ids_are_uuid7_in_order() -> None:
    f = EnvelopeFactory("gateway", "gw-1")
    a1 = f.wrap("a", UserText(text="one"))
    b1 = f.wrap("b", UserText(text="x"))
    a2 = f.wrap("a", AgentText(text="two"))
    assert (a1.seq, b1.seq, a2.seq) == (0, 0, 1)
    assert a1.id.version == 7 and a2.id.version == 7
    assert a1.id < b1.id < a2.id
    assert a1.ts.tzinfo is not None and a1.source.service == "gateway"
    f.forget("a")
    assert f.wrap("a", UserText(text="again")).seq == 0


def test_json_round_trip_keeps_the_typed_payload() -> None:
    env = EnvelopeFactory("t", "1").wrap(
        "s1",
        ToolCall(call_id="c1", name="create_task", arguments={"title": "t", "n": [1, 2]}),
        trace="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    )
    back = Envelope.from_json(env.to_json())
    assert back == env
    assert isinstance(back.payload, ToolCall)
    assert back.payload_as(ToolCall).arguments == {"title": "t", "n": [1, 2]}
    raw = json.loads(env.to_json())
    assert set(raw) == {"v", "id", "type", "session_id", "ts", "source", "seq", "trace", "payload"}
    assert raw["v"] == 1 and raw["type"] == "tool.call"
    assert env.subject == "stella.session.s1.tool.call"


def _raw(**over: object) -> bytes:
    base: dict[str, object] = {
        "v": 1,
        "id": "01a21b4f-ee59-734d-8113-57a086485e4e",
        "type": "user.text",
        "session_id": "s1",
        "ts": "2026-11-27T04:42:32.922013Z",
        "source": {"service": "x", "instance": "1"},
        "seq": 0,
        "trace": None,
        "payload": {"text": "hi"},
    }
    base.update(over)
    return json.dumps(base).encode()


def test_valid_raw_envelope_parses() -> None:
    env = Envelope.from_json(_raw())
    assert env.payload_as(UserText).text == "hi"
    assert env.ts == datetime(2026, 11, 27, 4, 42, 32, 922013, tzinfo=UTC)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{nope", "not JSON"),
        (b"[1,2]", "JSON object"),
        (_raw(type="user.shout"), "unknown event type 'user.shout'"),
        (_raw(payload={"txt": "hi"}), "text"),
        (_raw(v=2), "schema version 2"),
        (_raw(trace="not-a-trace"), "trace"),
        (_raw(ts="2026-11-27T04:42:32"), "timezone"),
        (_raw(session_id="a.b"), "session id"),
        (_raw(seq=-1), "seq"),
        (_raw(extra=1), "extra"),
    ],
)
def test_invalid_envelopes_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidEnvelope) as info:
        Envelope.from_json(data)
    assert reason in info.value.reason


def test_payload_as_refuses_the_wrong_model() -> None:
    env = Envelope.from_json(_raw())
    with pytest.raises(TypeError):
        env.payload_as(AgentText)


def test_every_architecture_event_type_has_a_model() -> None:
    expected = {
        "lifecycle.created",
        "lifecycle.ended",
        "user.text",
        "stt.vad",
        "stt.transcript",
        "agent.text",
        "tts.request",
        "tts.done",
        "control.interrupt",
        "tool.call",
        "tool.result",
        "metrics.turn",
        "debug",
    }
    assert expected <= set(Event.known_types())


def test_defining_a_type_twice_is_an_error() -> None:
    with pytest.raises(TypeError):

        class Again(Event):
            TYPE = "user.text"
