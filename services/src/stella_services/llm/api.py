"""The OpenAI HTTP API of the llm service (FastAPI): ``POST /v1/chat/completions`` (JSON or
server-sent events), ``GET /v1/models``, ``GET /v1/models/{id}``, and ``GET /health``.

Errors always have OpenAI's shape (``{"error": {message, type, param, code}}``), so the
``openai`` client raises its usual exceptions: 422 for a body that is not a chat request,
400 for one this server cannot honour, 429 when too many wait, 5xx when the model fails.
Any ``model`` name is accepted and served by the local model; answers carry its real id.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from contextlib import aclosing
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from stella_services.llm.chat import Chat
from stella_services.llm.completion import model_card
from stella_services.llm.engine import EngineError
from stella_services.llm.wire import ChatRequest, RequestProblem, error_body

Json = dict[str, Any]
T = TypeVar("T")
DISCONNECT_POLL_S = 0.25
CLIENT_CLOSED = 499  # nginx's status for a client that went away; nobody reads it


def _sse(body: Json | str) -> bytes:
    data = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


def validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    """The first problem of a body that failed validation, and the parameter it concerns."""
    errors = exc.errors()
    if not errors:
        return "invalid request body", None
    first = errors[0]
    loc = [str(p) for p in first.get("loc", ()) if p != "body"]
    param = ".".join(loc) or None
    message = str(first.get("msg", "invalid value"))
    return (f"{param}: {message}" if param else message), param


def create_app(chat: Chat, created: int) -> FastAPI:
    app = FastAPI(title="stella-llm", openapi_url=None, docs_url=None, redoc_url=None)

    @app.exception_handler(RequestValidationError)
    async def invalid_body(_: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = validation_message(exc)
        return JSONResponse(error_body(message, param=param), status_code=422)

    @app.exception_handler(RequestProblem)
    async def refused(_: Request, exc: RequestProblem) -> JSONResponse:
        return JSONResponse(error_body(exc.message, param=exc.param), status_code=400)

    @app.exception_handler(EngineError)
    async def engine_failed(_: Request, exc: EngineError) -> JSONResponse:
        return JSONResponse(error_body(exc.message, exc.kind), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        kind = "not_found_error" if exc.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(str(exc.detail), kind), status_code=exc.status_code)

    @app.get("/health")
    async def health() -> Json:
        engine = chat.engine
        return {
            "status": "ok",
            "model": chat.model_id,
            "generating": engine.generating,
            "waiting": engine.waiting,
        }

    @app.get("/v1/models")
    async def models() -> Json:
        return {"object": "list", "data": [model_card(chat.model_id, created)]}

    @app.get("/v1/models/{model_id:path}")
    async def model(model_id: str) -> JSONResponse:
        if model_id != chat.model_id:
            body = error_body(f"The model '{model_id}' does not exist", code="model_not_found")
            return JSONResponse(body, status_code=404)
        return JSONResponse(model_card(chat.model_id, created))

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(request: ChatRequest, raw: Request) -> Json | Response:
        if not request.stream:
            return await until_disconnected(chat.complete(request), raw)
        ident = chat.identity(request)
        chunks = chat.chunks(request, ident)
        # the first chunk comes after the model started: a refusal or a full queue is then
        # still an HTTP status, not an error inside a 200 stream
        try:
            first = await until_disconnected(anext(chunks), raw)
        except BaseException:
            await chunks.aclose()
            raise
        if isinstance(first, Response):  # gone while waiting for the model
            await chunks.aclose()
            return first

        async def events() -> AsyncIterator[bytes]:
            async with aclosing(chunks):
                yield _sse(first)
                try:
                    async for item in chunks:
                        yield _sse(item)
                except EngineError as exc:
                    yield _sse(error_body(exc.message, exc.kind))
                yield _sse("[DONE]")

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    return app


async def until_disconnected(work: Awaitable[T], raw: Request) -> T | Response:
    """``work``'s result; cancelled if the client goes away first (an agent interrupted by
    the user drops its request, also while it waits in the queue), so the model does not
    go on generating for nobody."""
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if not task.done() and await raw.is_disconnected():
                task.cancel()
                return Response(status_code=CLIENT_CLOSED)
        return task.result()
    finally:
        task.cancel()  # no-op once done; stops the work if this handler itself is cancelled
