"""Tool calling for models that cannot do it natively: the model answers with one JSON object,
constrained by a JSON schema, that says what it decided.

    {"action":"get_weather","arguments":{"city":"Paris"}}   a tool call
    {"action":"reply","reply":"It is sunny in Paris."}       an answer to the user

``decision_schema`` builds the schema (one variant per tool, so each tool's arguments must
match its own parameters), ``render_decision`` writes earlier turns in the same form, and
``DecisionScanner`` reads the object while it is generated, so the reply can be streamed as
it grows. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

Json = dict[str, Any]

ACTION = "action"
ARGUMENTS = "arguments"
REPLY = "reply"
COMPACT = (",", ":")


def reply_action(tool_names: Iterable[str]) -> str:
    """The action that means "answer the user": ``reply`` unless a tool is called that."""
    taken = set(tool_names)
    candidate, n = REPLY, 1
    while candidate in taken:
        candidate, n = f"{REPLY}_{n}", n + 1
    return candidate


def arguments_schema(parameters: Json | None) -> Json:
    """A tool's parameters as the schema of ``arguments``: an object, with no keys beyond
    those declared unless the tool allows them (a strict executor refuses extra ones)."""
    schema = dict(parameters or {})
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    schema.setdefault("additionalProperties", False)
    return schema


def decision_schema(
    tools: Sequence[tuple[str, Json | None]], allow_reply: bool, reply: str = REPLY
) -> Json:
    """The schema of the model's answer: a call of one of ``tools`` (name, parameters), or
    (when ``allow_reply``) a reply. Compact JSON: whitespace would only cost tokens."""
    variants: list[Json] = [
        {
            "type": "object",
            "properties": {ACTION: {"const": name}, ARGUMENTS: arguments_schema(params)},
            "required": [ACTION, ARGUMENTS],
            "additionalProperties": False,
        }
        for name, params in tools
    ]
    if allow_reply:
        variants.append(
            {
                "type": "object",
                "properties": {ACTION: {"const": reply}, REPLY: {"type": "string"}},
                "required": [ACTION, REPLY],
                "additionalProperties": False,
            }
        )
    if not variants:
        raise ValueError("a decision needs at least one tool or the reply")
    schema: Json = dict(variants[0]) if len(variants) == 1 else {"anyOf": variants}
    # llguidance (llama.cpp's grammar engine here) reads this key: no free whitespace, and
    # schema features it does not know (an odd "format") are ignored: refused, the whole
    # grammar would be dropped and the model would write free text
    schema["x-guidance"] = {"whitespace_flexible": False, "lenient": True}
    return schema


def render_decision(action: str, arguments: Json | str | None = None, reply: str = "") -> str:
    """An earlier turn written as the model would have written it (compact JSON)."""
    if arguments is None:
        return json.dumps({ACTION: action, REPLY: reply}, separators=COMPACT, ensure_ascii=False)
    if isinstance(arguments, str):  # as OpenAI clients send it back: JSON text
        try:
            arguments = json.loads(arguments or "{}")
        except json.JSONDecodeError:
            arguments = {}
    return json.dumps(
        {ACTION: action, ARGUMENTS: arguments}, separators=COMPACT, ensure_ascii=False
    )


# --- reading the object while it streams in ---------------------------------------------


@dataclass(frozen=True, slots=True)
class ActionChosen:
    name: str


@dataclass(frozen=True, slots=True)
class ReplyText:
    text: str


@dataclass(frozen=True, slots=True)
class ArgumentsText:
    text: str  # raw JSON text of the arguments value; the pieces concatenate to valid JSON


Event = ActionChosen | ReplyText | ArgumentsText

_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_WS = " \t\r\n"


@dataclass
class _StringReader:
    """Decodes one JSON string's characters as they come; holds back an unfinished escape."""

    escape: str | None = None  # "" right after the backslash, then the \\u hex digits
    high_surrogate: int | None = None

    def take(self, ch: str) -> tuple[str, bool]:
        """(decoded text, string closed)."""
        if self.escape is None:
            if ch == "\\":
                self.escape = ""
                return "", False
            if ch == '"':
                return self._flush(), True
            return self._flush() + ch, False
        if self.escape == "":
            if ch == "u":
                self.escape = "u"
                return "", False
            self.escape = None
            return self._flush() + _ESCAPES.get(ch, ch), False
        self.escape += ch
        if len(self.escape) < 5:
            return "", False
        try:
            unit = int(self.escape[1:], 16)
        except ValueError:
            unit = 0xFFFD
        self.escape = None
        if 0xD800 <= unit < 0xDC00:
            pending = self._flush()
            self.high_surrogate = unit
            return pending, False
        if 0xDC00 <= unit < 0xE000 and self.high_surrogate is not None:
            pair = 0x10000 + ((self.high_surrogate - 0xD800) << 10) + (unit - 0xDC00)
            self.high_surrogate = None
            return chr(pair), False
        return self._flush() + chr(unit), False

    def _flush(self) -> str:
        if self.high_surrogate is None:
            return ""
        self.high_surrogate = None
        return "\ufffd"  # a lone high surrogate cannot be encoded; say so visibly


@dataclass
class DecisionScanner:
    """Feeds on the generated text, piece by piece, and reports what became known: the
    action (once its string closes), reply text (decoded, as it grows) and the raw text of
    the arguments (as it grows). Lenient about whitespace and key order; anything after the
    object is ignored."""

    action: str | None = None
    reply: str = ""
    arguments_text: str = ""
    done: bool = False
    text: str = ""  # everything fed, for a fallback when no object came
    _state: str = "start"
    _key: str = ""
    _string: _StringReader = field(default_factory=_StringReader)
    _action_buf: str = ""
    _depth: int = 0
    _in_string: bool = False
    _escaped: bool = False

    def feed(self, piece: str) -> list[Event]:
        self.text += piece
        events: list[Event] = []
        for ch in piece:
            self._step(ch, events)
        return _merge(events)

    @property
    def arguments(self) -> Json | None:
        """The arguments once they form a complete JSON object, else None."""
        try:
            value = json.loads(self.arguments_text)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None

    def _step(self, ch: str, events: list[Event]) -> None:
        state = self._state
        if state == "done":
            return
        if state in ("start", "key_or_end", "colon", "value", "after_value") and ch in _WS:
            return
        if state == "start":
            if ch == "{":
                self._state = "key_or_end"
        elif state == "key_or_end":
            if ch == '"':
                self._state, self._key, self._string = "key", "", _StringReader()
            elif ch == "}":
                self._finish()
        elif state == "key":
            text, closed = self._string.take(ch)
            self._key += text
            if closed:
                self._state = "colon"
        elif state == "colon":
            if ch == ":":
                self._state = "value"
        elif state == "value":
            self._start_value(ch, events)
        elif state == "string":
            self._string_char(ch, events)
        elif state == "raw":
            self._raw_char(ch, events)
        elif state == "after_value":
            if ch == ",":
                self._state = "key_or_end"
            elif ch == "}":
                self._finish()

    def _start_value(self, ch: str, events: list[Event]) -> None:
        if ch == '"' and self._key in (ACTION, REPLY):
            self._state, self._string, self._action_buf = "string", _StringReader(), ""
            return
        self._state, self._depth, self._in_string, self._escaped = "raw", 0, False, False
        self._raw_char(ch, events)

    def _string_char(self, ch: str, events: list[Event]) -> None:
        text, closed = self._string.take(ch)
        if self._key == ACTION:
            self._action_buf += text
            if closed:
                self.action = self._action_buf
                events.append(ActionChosen(self.action))
        elif text:
            self.reply += text
            events.append(ReplyText(text))
        if closed:
            self._state = "after_value"

    def _raw_char(self, ch: str, events: list[Event]) -> None:
        if self._in_string:
            if self._escaped:
                self._escaped = False
            elif ch == "\\":
                self._escaped = True
            elif ch == '"':
                self._in_string = False
        elif ch == '"':
            self._in_string = True
        elif ch in "{[":
            self._depth += 1
        elif ch in "}]":
            if self._depth == 0:  # a scalar value ended at its object's close
                self._finish()
                return
            self._depth -= 1
        elif ch == "," and self._depth == 0:
            self._state = "key_or_end"
            return
        self._emit_raw(ch, events)
        if self._depth == 0 and not self._in_string and ch in "}]":
            self._state = "after_value"

    def _emit_raw(self, ch: str, events: list[Event]) -> None:
        if self._key == ARGUMENTS:
            self.arguments_text += ch
            events.append(ArgumentsText(ch))

    def _finish(self) -> None:
        self._state = "done"
        self.done = True


def _merge(events: list[Event]) -> list[Event]:
    """One event per run of the same kind (a feed usually carries one token's text)."""
    merged: list[Event] = []
    for event in events:
        last = merged[-1] if merged else None
        if isinstance(event, ReplyText) and isinstance(last, ReplyText):
            merged[-1] = ReplyText(last.text + event.text)
        elif isinstance(event, ArgumentsText) and isinstance(last, ArgumentsText):
            merged[-1] = ArgumentsText(last.text + event.text)
        else:
            merged.append(event)
    return merged
