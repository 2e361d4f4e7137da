"""A scripted OpenAI-compatible server, so tests drive the real ``openai`` client deterministically.

Rules are tried in order and the first match answers. Point a client (or an agent process, via
``OPENAI_BASE_URL``) at ``ScriptedOpenAI(rules).start()``; or run a separate process with
``python -m tests.support.scripted_openai --port N --script FILE.json``.

A rule as JSON (all conditions optional; several conditions must all hold)::

    {"when_tool_result_for": "create_task", "reply": {"text": "Done: {tool_result}"}}
    {"when_user_contains": "remind me", "reply": {"tool_calls": [
        {"name": "create_task", "arguments": {"title": "call mum"}}]}}
    {"reply": {"text": "Sorry?"}}

Put ``when_tool_result_for`` rules before the ``when_user_contains`` rule that asked for the tool:
the follow-up request still carries the same user message, so the asking rule would match again.

Audio, for the speech providers:

* ``POST /v1/audio/speech`` answers ``response_format`` ``pcm`` (24 kHz s16le mono, as OpenAI) or
  ``wav`` with a deterministic rising sweep lasting ``speech_ms_per_char`` per input character
  (:func:`speech_pcm` gives the exact bytes). Bodies are kept in ``speech_requests``.
* ``POST /v1/audio/transcriptions`` (multipart) answers the ``transcripts`` in order, one per
  request, and fails once they run out. Each request is kept in ``transcription_requests`` with
  its form fields and the uploaded file's bytes.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import email.message
import io
import itertools
import json
import math
import re
import signal
import socket
import sys
import threading
import time
import wave
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any, Self

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse

HOST = "127.0.0.1"  # loopback only: this server answers anything without auth
READY_LINE = "SCRIPTED_OPENAI_READY"
DEFAULT_MODEL = "scripted-model"
TOOL_RESULT = "{tool_result}"
# Tool-call arguments are streamed in pieces this long so clients must reassemble them.
ARGUMENT_PIECE = 8
# /v1/audio/speech with response_format "pcm": raw s16le mono at 24 kHz, as OpenAI sends it
SPEECH_RATE = 24_000
SPEECH_MS_PER_CHAR = 60.0
PCM_CONTENT_TYPE = "audio/pcm"
WAV_CONTENT_TYPE = "audio/wav"
SPEECH_PIECE = 4_800  # bytes per streamed body chunk (100 ms)

Json = dict[str, Any]


class ScriptError(ValueError):
    """A rule or script file is malformed."""


@dataclass(frozen=True)
class ToolCallReply:
    name: str
    # A dict is sent as JSON; a str is sent verbatim (to test clients against bad JSON).
    arguments: Mapping[str, Any] | str = field(default_factory=dict)

    def arguments_json(self) -> str:
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(self.arguments, separators=(",", ":"))


_RULE_KEYS = {
    "when_user_contains",
    "when_earlier_contains",
    "when_tool_result_for",
    "reply",
    "text",
    "tool_calls",
    "ttft_delay",
    "token_delay",
}


@dataclass(frozen=True)
class Rule:
    """Match conditions (None = any) and the reply: text, tool calls, or both."""

    text: str | None = None
    tool_calls: tuple[ToolCallReply, ...] = ()
    when_user_contains: str | None = None
    # Text in any message before the last user message (what the model was told earlier).
    when_earlier_contains: str | None = None
    # A tool name, or a tool_call_id, with a ``role: tool`` message after the last user message.
    when_tool_result_for: str | None = None
    # Override the server's delays for this reply only.
    ttft_delay: float | None = None
    token_delay: float | None = None

    def __post_init__(self) -> None:
        if self.text is None and not self.tool_calls:
            raise ScriptError(f"rule has no reply (text or tool_calls): {self!r}")

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        """Accepts ``{..., "reply": {"text"|"tool_calls": ...}}`` or the reply keys inline."""
        unknown = set(data) - _RULE_KEYS
        if unknown:  # a typo would otherwise silently turn a rule into a fallback
            raise ScriptError(f"unknown rule keys {sorted(unknown)} in {dict(data)!r}")
        reply: Mapping[str, Any] = data.get("reply", data)
        calls = reply.get("tool_calls") or []
        if not isinstance(calls, list):
            raise ScriptError(f"tool_calls must be a list: {dict(data)!r}")
        try:
            tool_calls = tuple(
                ToolCallReply(name=c["name"], arguments=c.get("arguments", {})) for c in calls
            )
        except (KeyError, TypeError) as e:
            raise ScriptError(f"each tool call needs a name: {dict(data)!r}") from e
        return cls(
            text=reply.get("text"),
            tool_calls=tool_calls,
            when_user_contains=data.get("when_user_contains"),
            when_earlier_contains=data.get("when_earlier_contains"),
            when_tool_result_for=data.get("when_tool_result_for"),
            ttft_delay=data.get("ttft_delay"),
            token_delay=data.get("token_delay"),
        )

    def matches(self, messages: Sequence[Json]) -> bool:
        if self.when_user_contains is not None:
            user = last_user_text(messages)
            if user is None or self.when_user_contains not in user:
                return False
        earlier = self.when_earlier_contains
        if earlier is not None and not any(earlier in t for t in earlier_texts(messages)):
            return False
        if self.when_tool_result_for is not None:
            return self.when_tool_result_for in pending_tool_results(messages)
        return True


RuleLike = Rule | Mapping[str, Any]


def to_rules(rules: Sequence[RuleLike]) -> list[Rule]:
    return [r if isinstance(r, Rule) else Rule.from_dict(r) for r in rules]


def content_text(content: Any) -> str:
    """Message content is a string or a list of parts; only text parts matter here."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        )
    return ""


def last_user_text(messages: Sequence[Json]) -> str | None:
    for m in reversed(messages):
        if m.get("role") == "user":
            return content_text(m.get("content"))
    return None


def earlier_texts(messages: Sequence[Json]) -> list[str]:
    """Every message's text before the last user message."""
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=0)
    return [content_text(m.get("content")) for m in messages[:last_user]]


def last_tool_text(messages: Sequence[Json]) -> str | None:
    for m in reversed(messages):
        if m.get("role") == "tool":
            return content_text(m.get("content"))
    return None


def pending_tool_results(messages: Sequence[Json]) -> set[str]:
    """Names and ids of tool calls answered since the last user message.

    Earlier turns are ignored so an old tool result does not keep matching later turns.
    """
    start = 0
    for i, m in enumerate(messages):
        if m.get("role") == "user":
            start = i
    names: dict[str, str] = {}
    found: set[str] = set()
    for m in messages[start:]:
        if m.get("role") == "assistant":
            for call in m.get("tool_calls") or []:
                if isinstance(call, dict):
                    fn = call.get("function") or {}
                    names[str(call.get("id"))] = str(fn.get("name"))
        elif m.get("role") == "tool":
            call_id = str(m.get("tool_call_id"))
            found.add(call_id)
            if call_id in names:
                found.add(names[call_id])
    return found


def split_tokens(text: str) -> list[str]:
    """Word-sized pieces whose concatenation is exactly ``text``."""
    return re.findall(r"\S+\s*|\s+", text)


def error_body(message: str, type_: str, code: str, param: str | None = None) -> Json:
    return {"error": {"message": message, "type": type_, "code": code, "param": param}}


def error_response(status: int, message: str, type_: str, code: str) -> JSONResponse:
    # The openai client would retry a 500 with back-off; a scripted failure should fail at once.
    return JSONResponse(
        error_body(message, type_, code), status_code=status, headers={"x-should-retry": "false"}
    )


def speech_pcm(text: str, ms_per_char: float = SPEECH_MS_PER_CHAR) -> bytes:
    """What the speech endpoint serves for ``text``: a sweep from 200 to 800 Hz at 0.3 full
    scale, ``ms_per_char`` per character of ``text``, as 24 kHz s16le mono."""
    n = round(len(text) * ms_per_char * SPEECH_RATE / 1000)
    if n == 0:
        return b""
    t = [i / SPEECH_RATE for i in range(n)]
    span = n / SPEECH_RATE
    low, high = 200.0, 800.0
    values = (
        round(0.3 * 32767 * math.sin(2 * math.pi * (low * x + (high - low) * x * x / (2 * span))))
        for x in t
    )
    return b"".join(v.to_bytes(2, "little", signed=True) for v in values)


def wav_file(pcm: bytes, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)
    return buffer.getvalue()


@dataclass(frozen=True)
class FormFile:
    filename: str | None
    content_type: str | None
    data: bytes


def parse_multipart(content_type: str, body: bytes) -> tuple[dict[str, str], dict[str, FormFile]]:
    """``multipart/form-data`` into its fields and files (python-multipart is not a dependency).

    Raises ``ValueError`` on a body that is not well-formed multipart.
    """
    header = email.message.Message()
    header["content-type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        raise ValueError(f"not multipart/form-data with a boundary: {content_type!r}")
    delimiter = b"\r\n--" + boundary.encode()
    pieces = (b"\r\n" + body).split(delimiter)
    if len(pieces) < 2 or not pieces[-1].startswith(b"--"):
        raise ValueError("multipart body has no closing boundary")
    fields: dict[str, str] = {}
    files: dict[str, FormFile] = {}
    for piece in pieces[1:-1]:
        head, sep, data = piece.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("multipart part has no header end")
        part = email.message.Message()
        for line in head.decode("utf-8").split("\r\n"):
            key, colon, value = line.partition(":")
            if not colon:
                raise ValueError(f"bad multipart header line {line!r}")
            part[key.strip()] = value.strip()
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise ValueError("multipart part without a name")
        filename = part.get_filename()
        if filename is None and part.get("content-type") is None:
            fields[name] = data.decode("utf-8")
        else:
            files[name] = FormFile(filename, part.get("content-type"), data)
    return fields, files


@dataclass(frozen=True)
class TranscriptionRequest:
    """One ``/v1/audio/transcriptions`` request: its form fields and the uploaded file."""

    fields: dict[str, str]
    filename: str | None
    content_type: str | None
    audio: bytes

    def to_json(self) -> Json:
        return {
            "fields": self.fields,
            "filename": self.filename,
            "content_type": self.content_type,
            "audio_base64": base64.b64encode(self.audio).decode("ascii"),
        }


@dataclass
class _Reply:
    """One planned answer, shared by the streaming and non-streaming shapes."""

    id: str
    model: str
    text: str | None
    tool_calls: list[Json]
    ttft_delay: float
    token_delay: float
    prompt_tokens: int

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.tool_calls else "stop"

    def completion_tokens(self) -> int:
        args = sum(len(c["function"]["arguments"]) for c in self.tool_calls)
        return len(split_tokens(self.text or "")) + len(self.tool_calls) + args // ARGUMENT_PIECE

    def usage(self) -> Json:
        done = self.completion_tokens()
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": done,
            "total_tokens": self.prompt_tokens + done,
        }

    def completion(self) -> Json:
        message: Json = {"role": "assistant", "content": self.text, "refusal": None}
        if self.tool_calls:
            message["tool_calls"] = self.tool_calls
        return {
            "id": self.id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": self.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": self.usage(),
        }

    def deltas(self) -> Iterator[Json]:
        """Stream deltas after the role delta: text tokens, then each call's head and arguments."""
        for token in split_tokens(self.text or ""):
            yield {"content": token}
        for index, call in enumerate(self.tool_calls):
            fn = call["function"]
            head = {"name": fn["name"], "arguments": ""}
            yield {
                "tool_calls": [
                    {"index": index, "id": call["id"], "type": "function", "function": head}
                ]
            }
            args: str = fn["arguments"]
            for at in range(0, len(args), ARGUMENT_PIECE):
                piece = {"arguments": args[at : at + ARGUMENT_PIECE]}
                yield {"tool_calls": [{"index": index, "function": piece}]}

    def chunk(
        self, delta: Json | None, finish: str | None = None, usage: Json | None = None
    ) -> str:
        choices = (
            []
            if delta is None
            else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
        )
        body: Json = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "choices": choices,
        }
        if usage is not None:
            body["usage"] = usage
        return f"data: {json.dumps(body)}\n\n"

    async def stream(self, include_usage: bool) -> AsyncIterator[str]:
        await asyncio.sleep(self.ttft_delay)
        yield self.chunk({"role": "assistant", "content": ""})
        for i, delta in enumerate(self.deltas()):
            if i and self.token_delay:
                await asyncio.sleep(self.token_delay)
            yield self.chunk(delta)
        yield self.chunk({}, finish=self.finish_reason)
        if include_usage:
            yield self.chunk(None, usage=self.usage())
        yield "data: [DONE]\n\n"


class ScriptedOpenAI:
    """The scripted server on 127.0.0.1 in a background thread; works from sync or async tests."""

    def __init__(
        self,
        rules: Sequence[RuleLike] = (),
        *,
        token_delay: float = 0.0,
        ttft_delay: float = 0.0,
        model: str = DEFAULT_MODEL,
        port: int = 0,
        transcripts: Sequence[str] = (),
        speech_ms_per_char: float = SPEECH_MS_PER_CHAR,
    ) -> None:
        self._rules = to_rules(rules)
        self._transcripts = list(transcripts)
        self.speech_ms_per_char = speech_ms_per_char
        self._speech_requests: list[Json] = []
        self._transcription_requests: list[TranscriptionRequest] = []
        self.token_delay = token_delay
        self.ttft_delay = ttft_delay
        self.model = model
        self._port = port
        self._lock = threading.Lock()
        self._requests: list[Json] = []
        self._ids = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._bound_port: int | None = None
        self.app = self._build_app()

    # -- public API --------------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._bound_port is None:
            raise RuntimeError("ScriptedOpenAI is not started")
        return self._bound_port

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    @property
    def requests(self) -> list[Json]:
        """Bodies of every chat-completion request received (parsed JSON), oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def speech_requests(self) -> list[Json]:
        """Bodies of every ``/v1/audio/speech`` request received (parsed JSON), oldest first."""
        with self._lock:
            return list(self._speech_requests)

    @property
    def transcription_requests(self) -> list[TranscriptionRequest]:
        """Every ``/v1/audio/transcriptions`` request received, oldest first."""
        with self._lock:
            return list(self._transcription_requests)

    def set_transcripts(self, transcripts: Sequence[str]) -> None:
        """The texts the next transcription requests answer, one each, in order."""
        with self._lock:
            self._transcripts = list(transcripts)

    def env(self) -> dict[str, str]:
        """Environment for an agent process that should use this server."""
        return {"OPENAI_BASE_URL": self.base_url, "OPENAI_API_KEY": "test"}

    def set_rules(self, rules: Sequence[RuleLike]) -> None:
        parsed = to_rules(rules)
        with self._lock:
            self._rules = parsed

    def start(self, timeout: float = 10.0) -> str:
        if self._thread is not None:
            raise RuntimeError("ScriptedOpenAI is already started")
        # Bind before the thread starts so the port is ours (no free-port race) and known at once.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((HOST, self._port))
        self._socket = sock
        self._bound_port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            host=HOST,
            port=self.port,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name="scripted-openai", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("scripted OpenAI server did not start")
            time.sleep(0.01)
        return self.base_url

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        self._server, self._thread, self._socket = None, None, None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- HTTP --------------------------------------------------------------------------------

    def _build_app(self) -> FastAPI:
        app = FastAPI(title="scripted-openai", openapi_url=None, docs_url=None, redoc_url=None)

        @app.get("/v1/models")
        async def models() -> Json:
            return {
                "object": "list",
                "data": [{"id": self.model, "object": "model", "created": 0, "owned_by": "tests"}],
            }

        @app.get("/scripted/requests")
        async def recorded() -> list[Json]:
            # Lets a test read what an agent in another process sent to a subprocess server.
            return self.requests

        @app.get("/scripted/speech_requests")
        async def recorded_speech() -> list[Json]:
            return self.speech_requests

        @app.get("/scripted/transcription_requests")
        async def recorded_transcriptions() -> list[Json]:
            return [r.to_json() for r in self.transcription_requests]

        @app.post("/v1/chat/completions", response_model=None)
        async def chat(request: Request) -> JSONResponse | StreamingResponse:
            return await self._chat(request)

        @app.post("/v1/audio/speech", response_model=None)
        async def speech(request: Request) -> JSONResponse | StreamingResponse:
            return await self._speech(request)

        @app.post("/v1/audio/transcriptions", response_model=None)
        async def transcriptions(request: Request) -> Response:
            return await self._transcription(request)

        return app

    async def _speech(self, request: Request) -> JSONResponse | StreamingResponse:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return error_response(
                400, "request body is not JSON", "invalid_request_error", "invalid_json"
            )
        if not isinstance(body, dict):
            return error_response(
                400, "request body must be a JSON object", "invalid_request_error", "invalid_body"
            )
        with self._lock:
            self._speech_requests.append(body)
        for key in ("model", "input", "voice"):
            if not body.get(key):
                return error_response(
                    400, f"'{key}' is required", "invalid_request_error", f"missing_{key}"
                )
        text = body["input"]
        if not isinstance(text, str):
            return error_response(
                400, "'input' must be a string", "invalid_request_error", "invalid_input"
            )
        fmt = body.get("response_format", "mp3")
        pcm = speech_pcm(text, self.speech_ms_per_char)
        if fmt == "pcm":
            data, media_type = pcm, PCM_CONTENT_TYPE
        elif fmt == "wav":
            data, media_type = wav_file(pcm, SPEECH_RATE), WAV_CONTENT_TYPE
        else:
            return error_response(
                400,
                f"scripted OpenAI serves response_format pcm or wav, not {fmt!r}",
                "invalid_request_error",
                "unsupported_response_format",
            )

        async def pieces() -> AsyncIterator[bytes]:
            for at in range(0, len(data), SPEECH_PIECE):  # chunked, like the real endpoint
                yield data[at : at + SPEECH_PIECE]

        return StreamingResponse(pieces(), media_type=media_type)

    async def _transcription(self, request: Request) -> Response:
        try:
            fields, files = parse_multipart(
                request.headers.get("content-type", ""), await request.body()
            )
        except (ValueError, UnicodeDecodeError) as e:
            return error_response(
                400, f"request body is not multipart: {e}", "invalid_request_error", "invalid_body"
            )
        upload = files.get("file")
        with self._lock:
            self._transcription_requests.append(
                TranscriptionRequest(
                    fields=fields,
                    filename=upload.filename if upload else None,
                    content_type=upload.content_type if upload else None,
                    audio=upload.data if upload else b"",
                )
            )
            text = self._transcripts.pop(0) if upload and self._transcripts else None
        if upload is None:
            return error_response(400, "'file' is required", "invalid_request_error", "no_file")
        if not fields.get("model"):
            return error_response(400, "'model' is required", "invalid_request_error", "no_model")
        if text is None:
            return error_response(
                500,
                "scripted OpenAI: no transcript left for this request (set_transcripts)",
                "server_error",
                "no_transcript",
            )
        fmt = fields.get("response_format", "json")
        if fmt == "text":
            return PlainTextResponse(text)
        if fmt != "json":
            return error_response(
                400,
                f"scripted OpenAI answers response_format json or text, not {fmt!r}",
                "invalid_request_error",
                "unsupported_response_format",
            )
        return JSONResponse({"text": text})

    async def _chat(self, request: Request) -> JSONResponse | StreamingResponse:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return error_response(
                400, "request body is not JSON", "invalid_request_error", "invalid_json"
            )
        if not isinstance(body, dict):
            return error_response(
                400, "request body must be a JSON object", "invalid_request_error", "invalid_body"
            )
        with self._lock:
            self._requests.append(body)
            rules = self._rules
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return error_response(
                400,
                "'messages' must be a non-empty list",
                "invalid_request_error",
                "missing_messages",
            )
        if not all(isinstance(m, dict) for m in messages):
            return error_response(
                400, "each message must be an object", "invalid_request_error", "invalid_messages"
            )

        rule = next((r for r in rules if r.matches(messages)), None)
        if rule is None:
            user = last_user_text(messages)
            said = "no user message" if user is None else f"last user message {user!r}"
            tools = sorted(pending_tool_results(messages))
            return error_response(
                500,
                f"scripted OpenAI: no rule matches ({said}; tool results since then: {tools}); "
                f"{len(rules)} rules tried",
                "server_error",
                "no_matching_rule",
            )

        n = next(self._ids)
        text = rule.text
        if text is not None and TOOL_RESULT in text:
            result = last_tool_text(messages)
            if result is None:
                return error_response(
                    500,
                    f"scripted OpenAI: rule text uses {TOOL_RESULT} but the request has no tool "
                    f"message (rule {rule!r})",
                    "server_error",
                    "no_tool_result",
                )
            text = text.replace(TOOL_RESULT, result)
        reply = _Reply(
            id=f"chatcmpl-scripted-{n}",
            model=str(body.get("model") or self.model),
            text=text,
            tool_calls=[
                {
                    "id": f"call_scripted_{n}_{i}",
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments_json()},
                }
                for i, c in enumerate(rule.tool_calls)
            ],
            ttft_delay=self.ttft_delay if rule.ttft_delay is None else rule.ttft_delay,
            token_delay=self.token_delay if rule.token_delay is None else rule.token_delay,
            prompt_tokens=sum(len(split_tokens(content_text(m.get("content")))) for m in messages),
        )
        if body.get("stream"):
            options = body.get("stream_options") or {}
            include_usage = isinstance(options, dict) and bool(options.get("include_usage"))
            return StreamingResponse(
                reply.stream(include_usage),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache"},
            )
        await asyncio.sleep(reply.ttft_delay)
        return JSONResponse(reply.completion())


# -- subprocess mode -----------------------------------------------------------------------------


@dataclass
class Script:
    rules: list[Rule]
    token_delay: float = 0.0
    ttft_delay: float = 0.0
    transcripts: list[str] = field(default_factory=list)


def load_script(path: Path) -> Script:
    """A JSON list of rules, or ``{"rules": [...], "token_delay": s, "ttft_delay": s,
    "transcripts": [...]}``."""
    data = json.loads(path.read_text())
    if isinstance(data, list):
        return Script(to_rules(data))
    if isinstance(data, dict) and isinstance(data.get("rules"), list):
        transcripts = data.get("transcripts", [])
        if not isinstance(transcripts, list) or not all(isinstance(t, str) for t in transcripts):
            raise ScriptError(f"{path}: 'transcripts' must be a list of strings")
        return Script(
            to_rules(data["rules"]),
            token_delay=float(data.get("token_delay", 0.0)),
            ttft_delay=float(data.get("ttft_delay", 0.0)),
            transcripts=transcripts,
        )
    raise ScriptError(f"{path}: expected a list of rules or an object with 'rules'")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Scripted OpenAI-compatible server on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--script", type=Path, required=True, help="JSON file of rules")
    parser.add_argument("--token-delay", type=float, help="seconds between streamed chunks")
    parser.add_argument("--ttft-delay", type=float, help="seconds before the first chunk")
    args = parser.parse_args(argv)

    script = load_script(args.script)
    server = ScriptedOpenAI(
        script.rules,
        port=args.port,
        token_delay=script.token_delay if args.token_delay is None else args.token_delay,
        ttft_delay=script.ttft_delay if args.ttft_delay is None else args.ttft_delay,
        transcripts=script.transcripts,
    )
    done = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    print(f"{READY_LINE} {server.base_url}", flush=True)
    try:
        while not done.wait(0.2):  # a timed wait lets the signal handler run promptly
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
