"""The constrained decision object: its schema, earlier turns written in it, and reading it
while it streams in (pure functions, no model)."""

import json

import pytest

from stella_services.llm.decision import (
    ActionChosen,
    ArgumentsText,
    DecisionScanner,
    ReplyText,
    arguments_schema,
    decision_schema,
    render_decision,
    reply_action,
)

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def test_schema_has_one_variant_per_tool_and_the_reply() -> None:
    schema = decision_schema([("get_weather", WEATHER), ("ping", None)], allow_reply=True)
    variants = schema["anyOf"]
    assert [v["properties"]["action"] for v in variants] == [
        {"const": "get_weather"},
        {"const": "ping"},
        {"const": "reply"},
    ]
    assert variants[0]["properties"]["arguments"]["properties"] == WEATHER["properties"]
    assert variants[0]["properties"]["arguments"]["required"] == ["city"]
    assert variants[1]["properties"]["arguments"] == {
        "type": "object",
        "properties": {},
        "additionalProperties": False,
    }
    assert variants[2]["required"] == ["action", "reply"]
    assert all(v["additionalProperties"] is False for v in variants)
    # whitespace-free output, and unknown schema features do not drop the grammar
    assert schema["x-guidance"] == {"whitespace_flexible": False, "lenient": True}


def test_schema_without_reply_or_with_one_tool_is_that_variant_alone() -> None:
    only = decision_schema([("get_weather", WEATHER)], allow_reply=False)
    assert "anyOf" not in only
    assert only["properties"]["action"] == {"const": "get_weather"}
    reply_only = decision_schema([], allow_reply=True, reply="reply_1")
    assert reply_only["properties"]["action"] == {"const": "reply_1"}
    with pytest.raises(ValueError):
        decision_schema([], allow_reply=False)


def test_arguments_schema_keeps_what_the_tool_allows() -> None:
    open_ended = {"type": "object", "properties": {}, "additionalProperties": True}
    assert arguments_schema(open_ended)["additionalProperties"] is True
    assert arguments_schema(WEATHER)["additionalProperties"] is False
    assert "additionalProperties" not in WEATHER  # the tool's own schema is not changed


def test_reply_action_steps_aside_for_a_tool_named_reply() -> None:
    assert reply_action(["get_weather"]) == "reply"
    assert reply_action(["reply"]) == "reply_1"
    assert reply_action(["reply", "reply_1"]) == "reply_2"


def test_render_decision_is_compact_json() -> None:
    assert render_decision("get_weather", '{"city": "Paris"}') == (
        '{"action":"get_weather","arguments":{"city":"Paris"}}'
    )
    assert render_decision("ping", "") == '{"action":"ping","arguments":{}}'
    assert render_decision("ping", "not json") == '{"action":"ping","arguments":{}}'
    assert render_decision("reply", reply='Il fait "beau" à Paris') == (
        '{"action":"reply","reply":"Il fait \\"beau\\" à Paris"}'
    )


def feed_all(text: str, size: int) -> tuple[DecisionScanner, list[object]]:
    scanner = DecisionScanner()
    events: list[object] = []
    for i in range(0, len(text), size):
        events += scanner.feed(text[i : i + size])
    return scanner, events


@pytest.mark.parametrize("size", [1, 2, 3, 7, 1000])
def test_scanner_streams_the_reply_decoded_whatever_the_piece_size(size: int) -> None:
    reply = 'Line one\nsays "hi" \\ café 😀 \t done'
    text = json.dumps({"action": "reply", "reply": reply})
    scanner, events = feed_all(text, size)
    assert events[0] == ActionChosen("reply")
    texts = [e.text for e in events if isinstance(e, ReplyText)]
    assert "".join(texts) == reply
    assert scanner.reply == reply
    assert scanner.done
    if size < len(text):
        assert len(texts) > 1  # it really streamed


def test_scanner_streams_the_reply_as_it_grows() -> None:
    scanner = DecisionScanner()
    assert scanner.feed('{"action":"re') == []
    assert scanner.feed('ply","reply":"Hel') == [ActionChosen("reply"), ReplyText("Hel")]
    assert scanner.feed("lo") == [ReplyText("lo")]
    assert scanner.feed("\\") == []  # an escape is held back until it is complete
    assert scanner.feed("n") == [ReplyText("\n")]
    assert scanner.feed("\\u00") == []
    assert scanner.feed('e9"}') == [ReplyText("é")]
    assert scanner.done


@pytest.mark.parametrize("size", [1, 4, 1000])
def test_scanner_reads_a_tool_call(size: int) -> None:
    arguments = {"title": "Call {mom}", "tags": ["a", "b]"], "n": 2, "x": {"y": None}}
    text = json.dumps({"action": "create_task", "arguments": arguments}, separators=(",", ":"))
    scanner, events = feed_all(text, size)
    assert events[0] == ActionChosen("create_task")
    raw = "".join(e.text for e in events if isinstance(e, ArgumentsText))
    assert json.loads(raw) == arguments
    assert scanner.arguments == arguments
    assert not any(isinstance(e, ReplyText) for e in events)
    assert scanner.done


def test_scanner_is_lenient_about_whitespace_order_and_unknown_keys() -> None:
    text = '{\n  "note": [1, {"a": "}"}],\n  "arguments": {"q": 1} ,\n  "action": "search"\n} tail'
    scanner, events = feed_all(text, 1)
    assert scanner.action == "search"
    assert scanner.arguments == {"q": 1}
    assert events[-1] == ActionChosen("search")
    assert scanner.done


def test_scanner_on_a_cut_answer_keeps_what_came() -> None:
    scanner = DecisionScanner()
    scanner.feed('{"action":"create_task","arguments":{"title":"Bu')
    assert scanner.action == "create_task"
    assert scanner.arguments is None  # not complete JSON yet
    assert not scanner.done


def test_scanner_on_free_text_finds_no_action() -> None:
    scanner, events = feed_all("Sure, Paris.", 3)
    assert events == []
    assert scanner.action is None
    assert scanner.text == "Sure, Paris."
